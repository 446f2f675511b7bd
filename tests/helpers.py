"""Test clients that act like people: API users with bearer tokens, and a browser with its own cookie jar."""

from __future__ import annotations

import itertools
import json as json_module
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


@dataclass
class Person:
    id: int
    email: str
    token: str
    name: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code = self.body["error"].get("code")
            return str(code) if code is not None else None
        return None


class Api:
    """Requests as a given person (bearer token) or anonymously; the test client's cookie jar is kept empty."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client

    async def call(
        self, method: str, path: str, who: Person | None = None, json: Any = None, *,
        data: bytes | None = None, headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(who.headers if who else {})
        all_headers.update(headers or {})
        kwargs: dict[str, Any] = {"headers": all_headers}
        if data is not None:
            kwargs["data"] = data
        elif json is not None:
            kwargs["json"] = json
        async with self.client.request(method, path, **kwargs) as response:
            raw = await response.read()
            self.client.session.cookie_jar.clear()
            body: Any = None
            if raw:
                try:
                    body = json_module.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
            return Reply(response.status, body, dict(response.headers), raw)

    async def register(self, name: str | None = None, *, email: str | None = None, password: str = PASSWORD) -> Person:
        n = next(_counter)
        name = name or f"User {n}"
        email = email or f"user{n}@example.org"
        reply = await self.call("POST", "/api/auth/register",
                                json={"email": email, "password": password, "display_name": name})
        assert reply.status == 201, reply.body
        return await self.sign_in(email, password, name=name)

    async def sign_in(self, email: str, password: str = PASSWORD, *, name: str = "") -> Person:
        reply = await self.call("POST", "/api/auth/token", json={"email": email, "password": password})
        assert reply.status == 201, reply.body
        return Person(id=reply.body["user"]["id"], email=email, token=reply.body["token"], name=name)


class Browser:
    """A browser: its own cookie jar, and the CSRF token it was given, echoed on state-changing requests."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.base = client.make_url("/")
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf: str | None = None

    async def call(self, method: str, path: str, json: Any = None, *, csrf: bool = True,
                   headers: dict[str, str] | None = None) -> Reply:
        all_headers = dict(headers or {})
        if csrf and self.csrf and method in ("POST", "PUT", "PATCH", "DELETE"):
            all_headers["X-CSRF-Token"] = self.csrf
        async with self.session.request(method, self.base.join(aiohttp.client.URL(path.lstrip("/"))),
                                        json=json, headers=all_headers) as response:
            text = await response.text()
            body = await response.json(content_type=None) if text else None
            if isinstance(body, dict) and isinstance(body.get("csrf_token"), str):
                self.csrf = body["csrf_token"]
            return Reply(response.status, body, dict(response.headers))

    def session_cookie(self) -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == "quanzi_session":
                return cookie.value
        return None

    async def close(self) -> None:
        await self.session.close()
