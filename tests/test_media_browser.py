"""Browser interop: real Chromium publishes its fake camera and microphone through the relay to two Chromium pages.

The page (``tests/fixtures/media_page.html``) signals over a bare websocket served here, whose test-only handler
calls the :class:`media.relay.Relay` methods the Socket.IO hub will call. Assertions use the receivers' own
``getStats()``: decoded video frames and received audio packets keep increasing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from media.relay import MediaError, Relay, RelayConfig
from rooms.classroom import Media
from tests import services

CHROMIUM = os.environ.get("QUANZI_TEST_CHROMIUM", "/usr/bin/chromium")
PAGE = Path(__file__).parent / "fixtures" / "media_page.html"
ROOM = "browser-room"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Plain host candidates instead of mDNS names: the relay runs on this machine and needs no name resolution.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

SOCKETS: web.AppKey[dict[str, web.WebSocketResponse]] = web.AppKey("sockets", dict)
RELAY: web.AppKey[Relay] = web.AppKey("relay", Relay)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE)


async def signalling(request: web.Request) -> web.WebSocketResponse:
    """Test-only stand-in for the hub: one websocket per page, each message a Relay call."""
    relay = request.app[RELAY]
    sockets = request.app[SOCKETS]
    peer_id = request.query["peer"]
    user_id = int(request.query["user"])
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    sockets[peer_id] = ws
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            reply: dict[str, Any] | None = None
            try:
                if data["type"] == "join":
                    reply = {"ok": True, **await relay.join(ROOM, peer_id, user_id)}
                elif data["type"] == "offer":
                    reply = {"ok": True, **await relay.offer(peer_id, data["sdp"], data["tracks"])}
                elif data["type"] == "answer":
                    await relay.answer(peer_id, data["sdp"])
                elif data["type"] == "candidate":
                    await relay.candidate(peer_id, data["candidate"])
            except MediaError as exc:
                reply = {"ok": False, "error": {"code": exc.code, "message": str(exc)}}
            if data["type"] in ("join", "offer"):
                await ws.send_str(json.dumps({"type": "reply", **(reply or {"ok": True})}))
    finally:
        sockets.pop(peer_id, None)
        await relay.leave(peer_id)
    return ws


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, Relay]]:
    app = web.Application()
    sockets: dict[str, web.WebSocketResponse] = {}

    async def signal(peer_id: str, event: str, payload: dict[str, Any]) -> None:
        ws = sockets.get(peer_id)
        if ws is not None and not ws.closed:
            await ws.send_str(json.dumps({"type": event, **payload}))

    relay = Relay(RelayConfig(), signal)
    app[SOCKETS] = sockets
    app[RELAY] = relay
    app.router.add_get("/media_page.html", page)
    app.router.add_get("/ws", signalling)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield test_server, relay
    finally:
        await relay.close()
        await test_server.close()


def _require_chromium() -> None:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        services.unavailable(f"Chromium at {CHROMIUM}", "not installed")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        services.unavailable("Playwright for Python", exc)


async def _stats(page: Any) -> dict[str, int]:
    result: dict[str, int] = await page.evaluate("window.mediaStats()")
    return result


async def _until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds}s waiting for: {what}")
        await asyncio.sleep(0.2)


async def test_chromium_publishes_and_two_chromium_pages_receive(server: tuple[TestServer, Relay]) -> None:
    _require_chromium()
    from playwright.async_api import async_playwright

    test_server, relay = server
    relay.set_allowed(ROOM, 1, frozenset({Media.CAMERA, Media.MICROPHONE}))
    base = f"http://127.0.0.1:{test_server.port}/media_page.html"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context()
            publisher = await context.new_page()
            await publisher.goto(f"{base}?role=publish&peer=pub&user=1")
            receivers = []
            for n in (2, 3):
                receiver = await context.new_page()
                await receiver.goto(f"{base}?role=receive&peer=recv{n}&user={n}")
                receivers.append(receiver)

            async def decoding() -> bool:
                for receiver in receivers:
                    stats = await _stats(receiver)
                    if stats["framesDecoded"] < 10 or stats["audioPacketsReceived"] < 10:
                        return False
                return True

            try:
                await _until(decoding, 30, "both receivers decode video and receive audio")
            except BaseException:
                for p in (publisher, *receivers):
                    print(await p.evaluate("window.mediaState"), await _stats(p))
                print(relay.stats())
                raise
            first = [await _stats(receiver) for receiver in receivers]
            await asyncio.sleep(3)
            second = [await _stats(receiver) for receiver in receivers]
            for before, after in zip(first, second, strict=True):
                assert after["framesDecoded"] - before["framesDecoded"] > 30, (before, after)
                assert after["audioPacketsReceived"] - before["audioPacketsReceived"] > 50, (before, after)
            for receiver in receivers:
                state = await receiver.evaluate("window.mediaState")
                assert state["errors"] == []
                assert sorted((info["user_id"], info["kind"]) for info in state["tracks"].values()) == [
                    (1, "camera"),
                    (1, "microphone"),
                ]
            assert (await publisher.evaluate("window.mediaState"))["errors"] == []
            stats = relay.stats()
            assert stats["peers"] == 3 and stats["subscriptions"] == 4
            await context.close()
        finally:
            await browser.close()


@pytest.mark.parametrize("audio", [False, True], ids=["camera-only", "camera-and-microphone"])
async def test_a_receiver_that_starts_publishing_keeps_receiving(server: tuple[TestServer, Relay], audio: bool) -> None:
    """The student publishes; the teacher, already receiving, turns on its own camera (its own offer, new m-lines).

    Camera only: the relay's renegotiation with the student used to renumber the student's m-line (aiortc's VP8 97
    where Chromium had picked 96, whose RTX was 97); Chromium followed and the relay dropped every packet as bad RTX.
    With the microphone: the relay's offer reassigned extension id 1 on the student's active m-line, which Chromium
    refuses. Neither page munges its SDP.
    """
    _require_chromium()
    from playwright.async_api import async_playwright

    test_server, relay = server
    for user in (1, 2):
        relay.set_allowed(ROOM, user, frozenset({Media.CAMERA, Media.MICROPHONE}))
    base = f"http://127.0.0.1:{test_server.port}/media_page.html"
    only = "" if audio else "&audio=0"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context()
            student = await context.new_page()
            await student.goto(f"{base}?role=publish&peer=student&user=1{only}")
            teacher = await context.new_page()
            await teacher.goto(f"{base}?role=receive&peer=teacher&user=2{only}")

            async def teacher_decodes() -> bool:
                return (await _stats(teacher))["framesDecoded"] >= 10

            async def both_decode() -> bool:
                return (await _stats(student))["framesDecoded"] >= 10 and await teacher_decodes()

            try:
                await _until(teacher_decodes, 30, "the teacher decodes the student's camera")
                await teacher.evaluate("window.startPublishing()")
                await _until(both_decode, 30, "the student decodes the teacher's camera")
            except BaseException:
                for p in (student, teacher):
                    print(await p.evaluate("window.mediaState"), await _stats(p))
                print(relay.stats())
                raise
            first = [await _stats(p) for p in (student, teacher)]
            await asyncio.sleep(3)
            second = [await _stats(p) for p in (student, teacher)]
            for before, after in zip(first, second, strict=True):
                assert after["framesDecoded"] - before["framesDecoded"] > 30, (before, after)
            for p in (student, teacher):
                assert (await p.evaluate("window.mediaState"))["errors"] == []
            await context.close()
        finally:
            await browser.close()


@asynccontextmanager
async def _classroom(
    server: tuple[TestServer, Relay], users: int
) -> AsyncIterator[tuple[Any, Callable[[str], Awaitable[Any]]]]:
    """Chromium, users 1..``users`` allowed to publish, and the teacher (user 2) publishing its camera. Yields the
    teacher's page and ``open_page(query)``, which opens one more page of the fixture with that query string."""
    _require_chromium()
    from playwright.async_api import async_playwright

    test_server, relay = server
    for user in range(1, users + 1):
        relay.set_allowed(ROOM, user, frozenset({Media.CAMERA, Media.MICROPHONE}))
    base = f"http://127.0.0.1:{test_server.port}/media_page.html"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context()

            async def open_page(query: str) -> Any:
                page = await context.new_page()
                await page.goto(f"{base}?{query}")
                return page

            teacher = await open_page("role=publish&peer=teacher&user=2&audio=0")
            await _until(lambda: _has_sources(relay, 1), 30, "the teacher publishes")
            yield teacher, open_page
        finally:
            await browser.close()


async def test_a_page_that_publishes_on_joining_a_room_with_publishers(server: tuple[TestServer, Relay]) -> None:
    """The relay's first offer comes with the join reply, so a page that publishes at once answers it first.

    When it was pushed after the reply, a page that published at once (camera only) offered before it had applied
    the relay's offer: the offers crossed, and after the rollback Chromium kept header extension ids of its first
    offer that collided with the relay's in the bundle ("A BUNDLE group contains a codec collision for header
    extension id=4"); every later offer of that page failed.
    """
    async with _classroom(server, 2) as (teacher, open_page):
        student = await open_page("role=publish&peer=student&user=1&audio=0")
        await _until(lambda: _both_decode(student, teacher), 30, "the teacher and the student decode each other")
        state = await student.evaluate("window.mediaState")
        assert state["firstOfferInReply"] is True and state["glare"] == 0
        await _flowing(student, teacher)


async def test_offers_that_cross_later_are_resolved(server: tuple[TestServer, Relay]) -> None:
    """Glare after the first exchange: the relay offers the student a guest's camera while the student's own
    offer (its camera) is on its way. The student, the polite side, rolls back, answers, offers again; everyone
    then decodes everyone, and no page logged an error."""
    async with _classroom(server, 3) as (teacher, open_page):
        student = await open_page("role=receive&peer=student&user=1&glare=1")
        await _until(lambda: _decodes(student, 10), 30, "the student decodes the teacher")
        guest = await open_page("role=publish&peer=guest&user=3&audio=0")
        await _until(lambda: _held(student), 30, "the relay's offer of the guest's camera reaches the student")
        await student.evaluate("window.startPublishing()")
        await _until(lambda: _decodes(teacher, 10), 30, "the teacher decodes the student")
        await _until(lambda: _decodes(student, 40), 30, "the student decodes the teacher and the guest")
        assert (await student.evaluate("window.mediaState"))["glare"] >= 1, "the offers crossed"
        await _flowing(student, teacher, guest)
        assert len({t["user_id"] for t in (await student.evaluate("window.mediaState"))["tracks"].values()}) == 2


async def _has_sources(relay: Relay, count: int) -> bool:
    return int(relay.stats()["sources"]) >= count


async def _decodes(page: Any, frames: int) -> bool:
    return (await _stats(page))["framesDecoded"] >= frames


async def _held(page: Any) -> bool:
    return int((await page.evaluate("window.mediaState"))["held"]) >= 1


async def _both_decode(one: Any, other: Any) -> bool:
    return await _decodes(one, 10) and await _decodes(other, 10)


async def _flowing(*pages: Any) -> None:
    """Every page keeps decoding (by more than 30 frames in 3 s) and logged no error."""
    first = [await _stats(p) for p in pages]
    await asyncio.sleep(3)
    second = [await _stats(p) for p in pages]
    for page, before, after in zip(pages, first, second, strict=True):
        assert after["framesDecoded"] - before["framesDecoded"] > 30, (before, after)
        assert (await page.evaluate("window.mediaState"))["errors"] == []
