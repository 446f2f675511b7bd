"""The edges of python-engineio and python-socketio this project adjusts, kept in one place.

- The handshake's Origin must be this server's own or one the settings allow, on polling and websocket alike.
- Per-message deflate stays off: it costs about a third more CPU per delivery and ~100 KB per connection.
- Shutdown closes every connection first, so the process does not wait on clients to leave.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import socketio
from aiohttp import web
from engineio.async_drivers import aiohttp as engineio_aiohttp


def origin_checker(allowed: tuple[str, ...], trust_forwarded: bool) -> Callable[[str | None, Mapping[str, Any]], bool]:
    """Same origin (from the Host header) plus the configured extra origins; anything else is refused."""
    extra = frozenset(allowed)

    def is_allowed(origin: str | None, environ: Mapping[str, Any]) -> bool:
        if origin is None:
            return True  # not a browser: such clients still need a valid token
        if origin in extra:
            return True
        scheme, host = environ.get("wsgi.url_scheme", "http"), environ.get("HTTP_HOST", "")
        if trust_forwarded:
            scheme = str(environ.get("HTTP_X_FORWARDED_PROTO", scheme)).split(",")[0].strip()
            host = str(environ.get("HTTP_X_FORWARDED_HOST", host)).split(",")[0].strip()
        return bool(host) and origin == f"{scheme}://{host}"

    return is_allowed


class PlainWebSocket(engineio_aiohttp.WebSocket):  # type: ignore[misc]
    """engine.io's aiohttp websocket with per-message deflate refused."""

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def use_plain_websockets(sio: socketio.AsyncServer) -> None:
    sio.eio._async["websocket"] = PlainWebSocket


async def disconnect_all(sio: socketio.AsyncServer) -> None:
    """Close every connection of this process, so shutdown need not wait for clients to leave on their own."""
    for sid, _ in list(sio.manager.get_participants("/", None)):
        with contextlib.suppress(Exception):
            await sio.disconnect(sid)
