"""Rate limiting (GCRA): in memory for one process, in real Redis for many, and logins limited through Redis.

Every Redis test uses a key prefix of its own and deletes whatever it created.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from server.app import create_app
from server.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tests import services
from tests.conftest import Database, make_settings
from tests.helpers import PASSWORD, Api

Factory = Callable[[], Awaitable[RateLimiter]]


async def _delete_prefixed(redis: Redis, prefix: str) -> None:
    keys = [key async for key in redis.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    services.require_redis()
    client = Redis.from_url(services.REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix no other test (or run) uses; everything under it is deleted afterwards."""
    value = services.unique_name("quanzi_test") + ":"
    yield value
    await _delete_prefixed(redis, value)
    assert [key async for key in redis.scan_iter(match=value + "*")] == []


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> Factory:
    """Builds limiters of one kind. Redis limiters made by one test share its prefix (and so its budgets)."""
    if request.param == "memory":
        shared = MemoryRateLimiter()

        async def memory() -> RateLimiter:
            return shared

        return memory
    redis_client: Redis = request.getfixturevalue("redis")
    key_prefix: str = request.getfixturevalue("prefix")

    async def redis_limiter() -> RateLimiter:
        return RedisRateLimiter(redis_client, prefix=key_prefix)

    return redis_limiter


async def test_burst_is_allowed_then_refused_for_about_one_interval(make_limiter: Factory) -> None:
    limiter = await make_limiter()
    interval = 0.5  # 2 per second
    for n in range(3):
        assert await limiter.hit("k", per_second=2, burst=3) == 0.0, f"hit {n + 1} of a burst of 3 was refused"
    wait = await limiter.hit("k", per_second=2, burst=3)
    assert 0.5 * interval < wait <= interval + 1e-3
    # Being refused does not use up budget: asking again right away gives (about) the same answer.
    again = await limiter.hit("k", per_second=2, burst=3)
    assert 0 < again <= wait + 1e-3
    assert again > 0.5 * interval


async def test_burst_of_one_allows_a_single_event(make_limiter: Factory) -> None:
    limiter = await make_limiter()
    assert await limiter.hit("solo", per_second=1, burst=1) == 0.0
    wait = await limiter.hit("solo", per_second=1, burst=1)
    assert 0.5 < wait <= 1.0 + 1e-3


async def test_tokens_refill_over_time(make_limiter: Factory) -> None:
    limiter = await make_limiter()
    rate, burst = 20.0, 2  # one event every 50 ms, at most 2 at once
    assert await limiter.hit("r", per_second=rate, burst=burst) == 0.0
    assert await limiter.hit("r", per_second=rate, burst=burst) == 0.0
    assert await limiter.hit("r", per_second=rate, burst=burst) > 0
    await asyncio.sleep(0.12)
    assert await limiter.hit("r", per_second=rate, burst=burst) == 0.0
    # Refilling stops at the burst: a run of hits soon gets refused again.
    results = [await limiter.hit("r", per_second=rate, burst=burst) for _ in range(6)]
    assert any(result > 0 for result in results), results
    assert all(result <= 1 / rate * burst + 1e-3 for result in results), results


async def test_a_long_pause_restores_only_the_burst(make_limiter: Factory) -> None:
    limiter = await make_limiter()
    assert await limiter.hit("p", per_second=20, burst=2) == 0.0
    await asyncio.sleep(0.3)  # six intervals: the budget is full, and no fuller than 2
    allowed = 0
    for _ in range(5):
        if await limiter.hit("p", per_second=20, burst=2) == 0.0:
            allowed += 1
    assert allowed in (2, 3), allowed  # 3 only if the machine stalled an interval between hits


async def test_keys_are_independent(make_limiter: Factory) -> None:
    limiter = await make_limiter()
    assert await limiter.hit("alice", per_second=1, burst=1) == 0.0
    assert await limiter.hit("alice", per_second=1, burst=1) > 0
    assert await limiter.hit("bob", per_second=1, burst=1) == 0.0
    assert await limiter.hit("alice", per_second=1, burst=1) > 0
    assert await limiter.hit("bob", per_second=1, burst=1) > 0


async def test_slow_rates_like_the_login_window(make_limiter: Factory) -> None:
    # The login limits: 10 attempts, then one more every 90 s (10 per 15 minutes).
    limiter = await make_limiter()
    per_second = 10 / 900
    for _ in range(10):
        assert await limiter.hit("login", per_second=per_second, burst=10) == 0.0
    wait = await limiter.hit("login", per_second=per_second, burst=10)
    assert 85 < wait <= 90 + 1e-3


async def test_memory_limiter_forgets_only_refilled_keys() -> None:
    limiter = MemoryRateLimiter(max_keys=3)
    assert await limiter.hit("held", per_second=0.1, burst=1) == 0.0
    for n in range(20):  # many short-lived keys push the table past its size
        assert await limiter.hit(f"brief{n}", per_second=1e6, burst=1) == 0.0
    await asyncio.sleep(0.01)
    for n in range(20):
        await limiter.hit(f"later{n}", per_second=1e6, burst=1)
    wait = await limiter.hit("held", per_second=0.1, burst=1)
    assert 9 < wait <= 10 + 1e-3, "a key still waiting to refill must not be forgotten"


async def test_redis_keys_expire_once_refilled(redis: Redis, prefix: str) -> None:
    limiter = RedisRateLimiter(redis, prefix=prefix)
    assert await limiter.hit("e", per_second=20, burst=2) == 0.0
    assert await limiter.hit("e", per_second=20, burst=2) == 0.0
    ttl = await redis.pttl(prefix + "e")
    assert 0 < ttl <= 100
    await asyncio.sleep(0.25)
    assert await redis.exists(prefix + "e") == 0


async def test_two_redis_limiters_on_separate_clients_share_one_budget(redis: Redis, prefix: str) -> None:
    # Two processes behind a load balancer: separate connections, one Redis, one budget per key.
    first_client = Redis.from_url(services.REDIS_URL)
    second_client = Redis.from_url(services.REDIS_URL)
    try:
        first = RedisRateLimiter(first_client, prefix=prefix)
        second = RedisRateLimiter(second_client, prefix=prefix)
        assert await first.hit("shared", per_second=1, burst=3) == 0.0
        assert await second.hit("shared", per_second=1, burst=3) == 0.0
        assert await first.hit("shared", per_second=1, burst=3) == 0.0
        refused_second = await second.hit("shared", per_second=1, burst=3)
        refused_first = await first.hit("shared", per_second=1, burst=3)
        assert 0.5 < refused_second <= 1 + 1e-3
        assert 0.5 < refused_first <= 1 + 1e-3
        # A different prefix is a different budget (another deployment on the same Redis).
        other = RedisRateLimiter(second_client, prefix=prefix + "other:")
        assert await other.hit("shared", per_second=1, burst=3) == 0.0
    finally:
        await first_client.aclose()
        await second_client.aclose()
    assert await redis.exists(prefix + "shared") == 1


async def test_concurrent_redis_hits_never_exceed_the_burst(redis: Redis, prefix: str) -> None:
    clients = [Redis.from_url(services.REDIS_URL) for _ in range(4)]
    try:
        limiters = [RedisRateLimiter(client, prefix=prefix) for client in clients]
        results = await asyncio.gather(*(
            limiters[n % len(limiters)].hit("race", per_second=0.5, burst=5) for n in range(40)
        ))
    finally:
        for client in clients:
            await client.aclose()
    assert sum(1 for result in results if result == 0.0) == 5


# --- the app, limiting logins through Redis ------------------------------------------------------------------


async def test_app_limits_logins_through_redis(
    aiohttp_client: Any, database: Database, tmp_path: Path, redis: Redis, prefix: str
) -> None:
    settings = make_settings(database, tmp_path, redis_url=services.REDIS_URL, redis_prefix=prefix,
                             login_attempts_per_account=2)
    api = Api(await aiohttp_client(create_app(settings)))

    ready = await api.call("GET", "/readyz")
    assert ready.status == 200, ready.body
    assert ready.body["checks"]["redis"] == "ok"
    assert ready.body["checks"]["database"] == "ok"

    person = await api.register(email="limited@example.org")  # signs in once: the first of two attempts
    wrong = await api.call("POST", "/api/auth/token", json={"email": person.email, "password": "wrong password"})
    assert wrong.status == 401 and wrong.error_code == "wrong_credentials"

    # Third attempt, right password, other spelling of the same address: refused before the password is checked.
    limited = await api.call("POST", "/api/auth/token", json={"email": "LIMITED@example.org", "password": PASSWORD})
    assert limited.status == 429, limited.body
    assert limited.error_code == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= settings.login_window_seconds
    assert limited.body["error"]["details"]["retry_after"] == retry_after

    # The budget lives in Redis under this app's prefix...
    keys = {key.decode() async for key in redis.scan_iter(match=prefix + "*")}
    assert keys, "no rate-limit keys were written to Redis"
    assert any("limited@example.org" in key for key in keys), keys
    assert all(key.startswith(prefix + "rl:") for key in keys), keys

    # ...so a second app (another process behind the same load balancer) refuses this account too,
    other_api = Api(await aiohttp_client(create_app(settings)))
    refused = await other_api.call("POST", "/api/auth/token", json={"email": person.email, "password": PASSWORD})
    assert refused.status == 429 and refused.error_code == "rate_limited"
    # while other accounts still sign in there.
    await other_api.register(email="unlimited@example.org")


async def test_readyz_without_redis_has_no_redis_check(aiohttp_client: Any, database: Database, tmp_path: Path) -> None:
    api = Api(await aiohttp_client(create_app(make_settings(database, tmp_path))))
    ready = await api.call("GET", "/readyz")
    assert ready.status == 200
    assert ready.body["checks"] == {"database": "ok"}
