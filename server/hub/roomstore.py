"""Live room state stores (``rooms.store.RoomStore``): in memory for one process, Redis for several.

Both keep a room in its ``Room.to_dict`` JSON form and rebuild it for every change, so a change that raises leaves
the stored room as it was, and the single-process store behaves exactly as the shared one does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import WatchError

from rooms.classroom import Room

T = TypeVar("T")
ROOM_TTL_SECONDS = 24 * 3600  # a room nobody touched for a day is gone; the database still knows the class


def _dump(room: Room) -> str:
    return json.dumps(room.to_dict(), separators=(",", ":"))


def _load(raw: str | bytes) -> Room:
    return Room.from_dict(json.loads(raw))


class MemoryRoomStore:
    def __init__(self) -> None:
        self._rooms: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def update(self, room_id: str, initial: Callable[[], Room], change: Callable[[Room], T]) -> T:
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            raw = self._rooms.get(room_id)
            room = _load(raw) if raw is not None else initial()
            result = change(room)
            self._rooms[room_id] = _dump(room)
            return result

    async def get(self, room_id: str) -> Room | None:
        raw = self._rooms.get(room_id)
        return _load(raw) if raw is not None else None

    async def discard(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)
        self._locks.pop(room_id, None)


class RedisRoomStore:
    """Optimistic: WATCH the room's key, change a copy, write it in MULTI; if another process wrote in between,
    the write is refused and the change runs again on the fresh room."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, room_id: str) -> str:
        return f"{self._prefix}room:{room_id}"

    async def update(self, room_id: str, initial: Callable[[], Room], change: Callable[[Room], T]) -> T:
        key = self._key(room_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    room = _load(raw) if raw is not None else initial()
                    result = change(room)  # raises before anything is written
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    pipe.set(key, _dump(room), ex=ROOM_TTL_SECONDS)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue
                finally:
                    await pipe.reset()  # type: ignore[no-untyped-call]

    async def get(self, room_id: str) -> Room | None:
        raw = await self._redis.get(self._key(room_id))
        return _load(raw) if raw is not None else None

    async def discard(self, room_id: str) -> None:
        await self._redis.delete(self._key(room_id))
