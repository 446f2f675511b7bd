"""Typed application state: what ``create_app`` builds and handlers read. No module holds these globally."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.engine import SessionFactory
from server.ratelimit import RateLimiter
from server.security import ClaimSigner, Passwords, TokenSigner
from server.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
DB = web.AppKey("db", SessionFactory)
DB_READ = web.AppKey("db_read", SessionFactory)  # for GET requests: never writes
LIMITER = web.AppKey("limiter", RateLimiter)
PASSWORDS = web.AppKey("passwords", Passwords)
SIGNER = web.AppKey("signer", TokenSigner)
REDIS = web.AppKey("redis", Redis)
OPENAPI = web.AppKey("openapi", dict[str, Any])
SOCKET_TOKENS = web.AppKey("socket_tokens", ClaimSigner)
