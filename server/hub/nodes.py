"""Which process carries a class's media. Peer connections live in one relay process, so everyone in a class must
signal media to the same one: the first process to need it claims the class, and the hub names it to clients.

Without Redis there is one process and nothing to claim. With Redis, each process that can be reached directly
(``QUANZI_NODE_URL``, e.g. a path the load balancer routes to that process alone) claims classes under its URL.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

CLAIM_TTL_SECONDS = 12 * 3600  # a class lasts at most 12 hours


class MediaNodes(Protocol):
    async def owner(self, class_id: int) -> str | None:
        """The URL of the process carrying this class's media, claimed now if none does; None: this process."""
        ...

    async def release(self, class_id: int) -> None: ...


class OneNode:
    async def owner(self, class_id: int) -> str | None:
        return None

    async def release(self, class_id: int) -> None:
        return None


class RedisNodes:
    def __init__(self, redis: Redis, prefix: str, me: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._me = me

    def _key(self, class_id: int) -> str:
        return f"{self._prefix}media-node:{class_id}"

    async def owner(self, class_id: int) -> str | None:
        key = self._key(class_id)
        await self._redis.set(key, self._me, nx=True, ex=CLAIM_TTL_SECONDS)
        raw = await self._redis.get(key)
        owner = raw.decode() if isinstance(raw, bytes) else raw
        return None if owner in (None, self._me) else str(owner)

    async def release(self, class_id: int) -> None:
        # Only the owner lets go: a class that ended is released once, by the process that carried it.
        key = self._key(class_id)
        raw = await self._redis.get(key)
        if (raw.decode() if isinstance(raw, bytes) else raw) == self._me:
            await self._redis.delete(key)
