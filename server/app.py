"""The app factory: builds every part from :class:`Settings`, wires it, and owns its start-up and shutdown.

Each resource is one ``cleanup_ctx`` entry with a single ``yield``, so start-up and shutdown mirror each other and
tests can build as many independent apps as they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from server import keys
from server.api import all_routes
from server.api.openapi import build_document
from server.api.routes import add_routes
from server.api.web import add_static
from server.api.wire import error_middleware
from server.db import users as users_db
from server.db.engine import make_engine, make_session_factory
from server.db.models import utcnow
from server.hub.setup import attach_hub
from server.ratelimit import MemoryRateLimiter, RedisRateLimiter
from server.security import ClaimSigner, Passwords, TokenSigner
from server.settings import Settings

log = logging.getLogger(__name__)
VERSION = "0.1.0"
SESSION_PURGE_INTERVAL_SECONDS = 3600.0


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[keys.SETTINGS] = settings
    app[keys.PASSWORDS] = Passwords(settings.password_hash_time_cost, settings.password_hash_memory_kib)
    app[keys.SIGNER] = TokenSigner(settings.secret_key)
    app[keys.SOCKET_TOKENS] = ClaimSigner(settings.secret_key, "socket")
    routes = all_routes()
    add_routes(app, routes)
    add_static(app)
    app[keys.OPENAPI] = build_document(routes, VERSION)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_session_purger)
    attach_hub(app)  # after the database and Redis entries: its handlers use both
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    engine = make_engine(settings.database_url, settings.database_schema)
    app[keys.ENGINE] = engine
    app[keys.DB] = make_session_factory(engine)
    app[keys.DB_READ] = make_session_factory(engine, read_only=True)
    yield
    await engine.dispose()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    url = app[keys.SETTINGS].redis_url
    if url is None:
        app[keys.LIMITER] = MemoryRateLimiter()
        yield
        return
    redis: Redis = Redis.from_url(url)
    await redis.ping()  # fail at start-up, not at the first request
    app[keys.REDIS] = redis
    app[keys.LIMITER] = RedisRateLimiter(redis, prefix=app[keys.SETTINGS].redis_prefix + "rl:")
    yield
    await redis.aclose()


async def _session_purger(app: web.Application) -> AsyncIterator[None]:
    stop = asyncio.Event()

    async def purge_until_stopped() -> None:
        # Stopped by the event, never cancelled mid-query: a cancelled aiosqlite call would outlive the loop.
        while not stop.is_set():
            try:
                async with app[keys.DB]() as db, db.begin():
                    removed = await users_db.purge_expired_sessions(db, utcnow())
                if removed:
                    log.info("purged %d expired sessions", removed)
            except Exception:
                log.exception("session purge failed; retrying later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SESSION_PURGE_INTERVAL_SECONDS)

    task = asyncio.create_task(purge_until_stopped(), name="session-purger")
    yield
    stop.set()
    await task
