"""Fixtures: a migrated database per backend (SQLite, PostgreSQL), settings, and the real app on a real socket."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.db.engine import make_engine
from server.db.migrate import upgrade
from server.db.models import Base
from server.settings import Settings, sqlite_url
from tests import services
from tests.helpers import Api

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


@dataclass(frozen=True)
class Database:
    backend: str
    url: str
    schema: str | None = None


async def _migrate(url: str, schema: str | None) -> None:
    engine = make_engine(url, schema)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy, which is much faster than migrating again."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    services.run_blocking(_migrate(sqlite_url(path), None))
    return path


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A schema of its own for this test run, migrated once and dropped at the end: the server is left clean."""
    services.require_postgres()
    schema = services.unique_name("quanzi_test")

    async def create() -> None:
        connection = await asyncpg.connect(services.asyncpg_dsn())
        try:
            await connection.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await connection.close()
        await _migrate(services.POSTGRES_URL, schema)

    async def drop() -> None:
        connection = await asyncpg.connect(services.asyncpg_dsn())
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()

    services.run_blocking(create())
    yield schema
    services.run_blocking(drop())


async def truncate_all(schema: str) -> None:
    tables = ", ".join(f'"{schema}"."{table.name}"' for table in Base.metadata.sorted_tables)
    connection = await asyncpg.connect(services.asyncpg_dsn())
    try:
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """Every test that takes this fixture runs once on SQLite and once on PostgreSQL, each on an empty schema."""
    if request.param == "sqlite":
        path = tmp_path / "quanzi.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield Database("sqlite", sqlite_url(path))
        return
    schema: str = request.getfixturevalue("postgres_schema")
    await truncate_all(schema)
    yield Database("postgres", services.POSTGRES_URL, schema)


def make_settings(database: Database, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "secret_key": TEST_SECRET,
        "data_dir": data_dir,
        "database_url": database.url,
        "database_schema": database.schema,
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(database, tmp_path)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> TestClient[web.Request, web.Application]:
    test_client: TestClient[web.Request, web.Application] = await aiohttp_client(create_app(settings))
    return test_client


@pytest.fixture
def api(client: TestClient[web.Request, web.Application]) -> Api:
    return Api(client)


@pytest.fixture
async def hub(api: Api) -> AsyncIterator[Any]:
    """Socket.IO connections to the test app (``tests.test_chat.Hub``), every one closed at teardown."""
    from tests.test_chat import Hub  # the socket client lives with the chat tests, which made it

    h = Hub(api)
    try:
        yield h
    finally:
        await h.close()
