"""Who is online in each circle: connection counts per member, in memory for one process or in Redis for many."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Protocol

from redis.asyncio import Redis


class Presence(Protocol):
    async def arrive(self, circle_id: str, user_id: int) -> bool:
        """Count one more connection; True when the member just came online."""
        ...

    async def depart(self, circle_id: str, user_id: int) -> bool:
        """Count one connection fewer; True when the member just went offline."""
        ...

    async def online(self, circle_id: str) -> list[int]: ...


class MemoryPresence:
    def __init__(self) -> None:
        self._counts: defaultdict[str, Counter[int]] = defaultdict(Counter)

    async def arrive(self, circle_id: str, user_id: int) -> bool:
        self._counts[circle_id][user_id] += 1
        return self._counts[circle_id][user_id] == 1

    async def depart(self, circle_id: str, user_id: int) -> bool:
        counts = self._counts[circle_id]
        if counts[user_id] <= 0:
            return False
        counts[user_id] -= 1
        if counts[user_id] == 0:
            del counts[user_id]
            if not counts:
                del self._counts[circle_id]
            return True
        return False

    async def online(self, circle_id: str) -> list[int]:
        return sorted(self._counts.get(circle_id, {}))


_DEPART = """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return left == 0 and 1 or 0
end
return 0
"""


class RedisPresence:
    """Shared by every process. A process that dies without cleaning up leaves counts behind until restart."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._depart = redis.register_script(_DEPART)

    def _key(self, circle_id: str) -> str:
        return f"{self._prefix}presence:{circle_id}"

    async def arrive(self, circle_id: str, user_id: int) -> bool:
        return int(await self._redis.hincrby(self._key(circle_id), str(user_id), 1)) == 1

    async def depart(self, circle_id: str, user_id: int) -> bool:
        return bool(int(await self._depart(keys=[self._key(circle_id)], args=[str(user_id)])))

    async def online(self, circle_id: str) -> list[int]:
        members = await self._redis.hkeys(self._key(circle_id))
        return sorted(int(uid) for uid in members)
