"""Rate limits as a burst followed by a sustained rate (GCRA), in memory for one process or in Redis for many."""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis


class RateLimiter(Protocol):
    async def hit(self, key: str, *, per_second: float, burst: int) -> float:
        """Record one event under ``key``: 0.0 if allowed, else the seconds until the next would be."""
        ...


class MemoryRateLimiter:
    """For a single process. Keys whose budget has fully refilled are dropped as the table grows."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._tat: dict[str, float] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, *, per_second: float, burst: int) -> float:
        now = time.monotonic()
        interval = 1.0 / per_second
        tat = max(self._tat.get(key, now), now)
        allow_at = tat + interval - burst * interval
        if allow_at > now:
            return allow_at - now
        self._tat[key] = tat + interval
        if len(self._tat) > self._max_keys:
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        return 0.0


# One round trip, atomic, clocked by the Redis server so every process agrees on "now".
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + interval - burst * interval
if allow_at > now then
  return tostring(allow_at - now)
end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil((tat + interval - now) * 1000))
return '0'
"""


class RedisRateLimiter:
    """Shared by every process that uses the same Redis, so limits hold behind a load balancer."""

    def __init__(self, redis: Redis, prefix: str = "quanzi:rl:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_GCRA)

    async def hit(self, key: str, *, per_second: float, burst: int) -> float:
        result = await self._script(keys=[self._prefix + key], args=[repr(1.0 / per_second), burst])
        return float(result)
