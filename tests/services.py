"""The real services tests may use: PostgreSQL and Redis on this machine.

On a developer laptop without them, tests that need them skip. Under CI (``QUANZI_REQUIRE_SERVICES=1``) they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
import pytest
from redis.asyncio import Redis

T = TypeVar("T")

REQUIRE_SERVICES = os.environ.get("QUANZI_REQUIRE_SERVICES", "") not in ("", "0")
POSTGRES_URL = os.environ.get("QUANZI_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("QUANZI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when the calling thread already runs a loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def unavailable(what: str, why: BaseException | str) -> None:
    message = f"{what} is not reachable ({why})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; QUANZI_REQUIRE_SERVICES is set, so this is a failure", pytrace=False)
    pytest.skip(message)


def asyncpg_dsn(url: str = POSTGRES_URL) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _pg_probe() -> None:
    connection = await asyncio.wait_for(asyncpg.connect(asyncpg_dsn()), 5)
    await connection.close()


async def _redis_probe() -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(redis.ping(), 5)
    finally:
        await redis.aclose()


def require_postgres() -> None:
    try:
        run_blocking(_pg_probe())
    except Exception as exc:
        unavailable(f"PostgreSQL at {POSTGRES_URL}", exc)


def require_redis() -> None:
    try:
        run_blocking(_redis_probe())
    except Exception as exc:
        unavailable(f"Redis at {REDIS_URL}", exc)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
