"""Liveness (the process answers) and readiness (its database, and Redis when configured, answer)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import text

from server import keys
from server.api.routes import Route
from server.api.schemas import HealthOut
from server.api.wire import ok

CHECK_TIMEOUT_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    return ok(HealthOut(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), request.app[keys.ENGINE].connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the operator
        checks["database"] = f"unavailable: {type(exc).__name__}"
    redis = request.app.get(keys.REDIS)
    if redis is not None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return ok(HealthOut(status="ok" if ready else "unavailable", checks=checks), status=200 if ready else 503)


ROUTES = [
    Route("GET", "/healthz", healthz, "Liveness: the process is up", "health", auth="public", response=HealthOut),
    Route("GET", "/readyz", readyz, "Readiness: database (and Redis, if configured) reachable; else 503",
          "health", auth="public", response=HealthOut),
]
