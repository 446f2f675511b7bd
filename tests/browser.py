"""Shared pieces of the browser tests: the real app on a real port, real Chromium driven by Playwright, and people.

Each person is a browser context of their own (their own cookies), sized as a phone or a laptop. Screenshots go to
``test-artifacts/screenshots/``. Chromium is Debian's (``/usr/bin/chromium``); Playwright's own browsers are never
downloaded. Without that binary the tests skip, or fail under ``QUANZI_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from server.app import create_app
from server.settings import sqlite_url
from tests import services
from tests.conftest import Database, make_settings

CHROMIUM = Path("/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
PASSWORD = "a long enough password"
WAIT_MS = 10_000  # what a user would tolerate before calling it broken; expect() returns as soon as it holds


def require_chromium() -> None:
    if importlib.util.find_spec("playwright") is None:
        services.unavailable("Playwright for Python", "not installed; pip install -e '.[dev]'")
    if not CHROMIUM.is_file():
        services.unavailable(f"Chromium at {CHROMIUM}", "not installed; apt-get install chromium")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def live_server(sqlite_template: Path, data_dir: Path, **overrides: Any) -> AsyncIterator[str]:
    """The real app on 127.0.0.1 (SQLite), in the test's event loop. Yields its base URL."""
    db_path = data_dir / "quanzi.db"
    shutil.copyfile(sqlite_template, db_path)
    settings = make_settings(Database("sqlite", sqlite_url(db_path)), data_dir,
                             login_attempts_per_ip=10_000, login_attempts_per_account=10_000, **overrides)
    runner = web.AppRunner(create_app(settings), shutdown_timeout=1.0)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium with fake camera and microphone."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Person:
    """Someone at a browser: their own context (cookies), one page, and the console errors it logged."""

    name: str
    email: str
    context: Any
    page: Any
    base_url: str
    errors: list[str]

    async def goto(self, path: str) -> None:
        await self.page.goto(self.base_url + path)

    async def unlabelled_controls(self) -> list[str]:
        """Controls on the page that have no accessible name (no label, aria-label, text or title)."""
        found: list[str] = await self.page.evaluate(_UNLABELLED_JS)
        return found

    async def shot(self, name: str, *, both: bool = True) -> None:
        """Screenshots of what this person sees, at phone and laptop size (the current size is restored).

        Every page worth a screenshot is also checked for controls without an accessible name."""
        assert await self.unlabelled_controls() == [], f"unlabelled controls on {name}"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        size = self.page.viewport_size
        sizes = [("phone", PHONE), ("laptop", LAPTOP)] if both else [("", size)]
        for label, viewport in sizes:
            await self.page.set_viewport_size(viewport)
            suffix = f"-{label}" if label else ""
            await self.page.screenshot(path=str(SCREENSHOTS / f"{name}{suffix}.png"), full_page=False)
        await self.page.set_viewport_size(size)


async def person(browser: Any, base_url: str, name: str, *, viewport: dict[str, int] = LAPTOP) -> Person:
    context = await browser.new_context(viewport=viewport, base_url=base_url, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{name}: page error: {error}"))
    page.on("console", lambda message: errors.append(f"{name}: console {message.type}: {message.text}")
            if message.type == "error" and not _expected_console_error(message.text) else None)
    email = f"{name.lower().replace(' ', '.')}@example.org"
    return Person(name, email, context, page, base_url, errors)


_UNLABELLED_JS = """() => [...document.querySelectorAll('input, select, textarea, button, a[href], summary')]
  .filter((el) => el.type !== 'hidden' && el.getClientRects().length > 0)
  .filter((el) => {
    const byId = (ids) => (ids || '').split(' ').map((id) => document.getElementById(id)?.textContent ?? '').join('');
    const name = el.getAttribute('aria-label') || byId(el.getAttribute('aria-labelledby'))
      || [...(el.labels ?? [])].map((l) => l.textContent).join('')
      || (['BUTTON', 'A', 'SUMMARY'].includes(el.tagName) ? el.textContent : '') || el.title;
    return !name.trim();
  })
  .map((el) => el.outerHTML.slice(0, 160))"""


def _expected_console_error(text: str) -> bool:
    # Chromium logs every non-2xx fetch (for example the 401 of /api/me before signing in) and failed requests
    # while the test takes the network away on purpose; neither is a client bug.
    return "Failed to load resource" in text or "net::ERR_INTERNET_DISCONNECTED" in text
