"""Engines and sessions for SQLite (aiosqlite) and PostgreSQL (asyncpg), with the same code on both."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

SessionFactory = async_sessionmaker[AsyncSession]


def make_engine(database_url: str, schema: str | None = None, *, pool_size: int = 10) -> AsyncEngine:
    """One engine per process. SQLite gets WAL, foreign keys and a busy timeout; PostgreSQL an optional schema."""
    if database_url.startswith("sqlite"):
        # Keys stay as written (not \u-escaped), so JSON paths in queries match them on SQLite too.
        engine = create_async_engine(database_url, connect_args={"timeout": 30}, json_serializer=_json_dumps)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=connect_args
    )


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def make_session_factory(engine: AsyncEngine, *, read_only: bool = False) -> SessionFactory:
    """Sessions for units of work; ``read_only`` ones let SQLite readers run beside a writer (see below)."""
    bound = engine.execution_options(quanzi_read_only=True) if read_only else engine
    return async_sessionmaker(bound, expire_on_commit=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # aiosqlite's default isolation makes pysqlite issue BEGIN itself; take that over so BEGIN IMMEDIATE below
    # serialises writers up front instead of failing them with "database is locked" at their first write.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Connection) -> None:
    # Writers take the write lock up front; readers (WAL) need none and read a consistent snapshot beside them.
    read_only = connection.get_execution_options().get("quanzi_read_only", False)
    connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")
