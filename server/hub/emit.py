"""The one path every broadcast takes, so delivery cost can be measured and improved in one place.

Rooms are named by what they hold: ``circle:<id>`` (everyone reading a circle's chat) and ``user:<id>`` (every
connection of one person). With Redis configured, socket.io's Redis manager carries each emit to every process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

import socketio

log = logging.getLogger(__name__)


def circle_room(circle_id: str) -> str:
    return f"circle:{circle_id}"


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


class Broadcaster:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio
        self._pending: set[asyncio.Task[None]] = set()

    async def to_circle(self, circle_id: str, event: str, data: dict[str, Any], *, skip_sid: str | None = None) -> None:
        await self._sio.emit(event, data, to=circle_room(circle_id), skip_sid=skip_sid)

    async def to_users(self, user_ids: Iterable[int], event: str, data: dict[str, Any]) -> None:
        rooms = [user_room(uid) for uid in user_ids]
        if rooms:
            await self._sio.emit(event, data, to=rooms)

    def after_ack(self, delivery: Awaitable[None]) -> None:
        """Deliver once the current handler has returned, so the sender's acknowledgement goes out first."""
        task: asyncio.Task[None] = asyncio.ensure_future(delivery)
        self._pending.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("broadcast failed", exc_info=task.exception())

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
