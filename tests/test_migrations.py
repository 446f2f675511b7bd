"""Migrations against the models, on SQLite and PostgreSQL.

``test_migrated_schema_matches_the_models`` is the one that fails when a model changes without a migration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.engine import make_engine
from server.db.migrate import alembic_config, current_revision, head_revision, upgrade
from server.db.models import Base
from server.settings import sqlite_url
from tests import services
from tests.conftest import Database

VERSION_TABLE = "alembic_version"


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    """An engine on the conftest's migrated database (a SQLite copy, or this run's PostgreSQL schema)."""
    eng = make_engine(database.url, database.schema)
    yield eng
    await eng.dispose()


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def schema_diff(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_diff)


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(_tables)


def _alembic(connection: Connection, verb: str, revision: str) -> None:
    """What server.db.migrate does for upgrades: the alembic command on a connection handed to env.py."""
    config = alembic_config()
    config.attributes["connection"] = connection
    getattr(command, verb)(config, revision)


async def alembic(engine: AsyncEngine, verb: str, revision: str) -> None:
    async with engine.connect() as connection:
        await connection.run_sync(_alembic, verb, revision)
        await connection.commit()


def model_tables() -> set[str]:
    return set(Base.metadata.tables)


# --- the conftest's migrated databases, both backends ----------------------------------------------------------


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    diff = await schema_diff(engine)
    assert diff == [], (
        "the models and the migrations disagree; add a migration (alembic revision --autogenerate) for:\n"
        + "\n".join(map(repr, diff))
    )


async def test_current_revision_is_the_head(engine: AsyncEngine) -> None:
    head = head_revision()
    assert head is not None
    assert await current_revision(engine) == head


async def test_migrations_form_a_single_line() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, f"several heads, merge them: {script.get_heads()}"
    assert len(script.get_bases()) == 1, f"several bases: {script.get_bases()}"


async def test_upgrading_again_is_a_no_op(engine: AsyncEngine, database: Database) -> None:
    head = head_revision()
    async with engine.connect() as connection:
        await connection.execute(text(
            "INSERT INTO users (email, email_key, password_hash, display_name, custom_fields, verified, "
            "is_site_admin, created_at, updated_at) VALUES ('keep@example.org', 'keep@example.org', 'x', 'Keep', "
            "'{}', false, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))
        await connection.commit()
    tables_before = await table_names(engine)

    await upgrade(engine)
    await upgrade(engine)

    assert await current_revision(engine) == head
    assert await table_names(engine) == tables_before
    assert await schema_diff(engine) == []
    async with engine.connect() as connection:
        emails = (await connection.execute(text("SELECT email FROM users"))).scalars().all()
        versions = (await connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).scalars().all()
    assert emails == ["keep@example.org"], "upgrading an up-to-date database must keep its data"
    assert versions == [head]


# --- fresh databases: down to nothing and back up ------------------------------------------------------------


@pytest.fixture
async def fresh_sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(sqlite_url(tmp_path / "fresh.db"))
    yield eng
    await eng.dispose()


@pytest.fixture
async def fresh_postgres() -> AsyncIterator[AsyncEngine]:
    """An empty schema of its own, dropped afterwards."""
    services.require_postgres()
    schema = services.unique_name("quanzi_mig")
    connection = await asyncpg.connect(services.asyncpg_dsn())
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await connection.close()
    eng = make_engine(services.POSTGRES_URL, schema)
    try:
        yield eng
    finally:
        await eng.dispose()
        connection = await asyncpg.connect(services.asyncpg_dsn())
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
def fresh(request: pytest.FixtureRequest) -> AsyncEngine:
    engine: AsyncEngine = request.getfixturevalue(f"fresh_{request.param}")
    return engine


async def test_fresh_database_upgrades_to_head_then_down_to_base_and_back(fresh: AsyncEngine) -> None:
    head = head_revision()
    assert await current_revision(fresh) is None
    assert await table_names(fresh) == set()

    await upgrade(fresh)
    assert await current_revision(fresh) == head
    assert model_tables() <= await table_names(fresh)
    assert await schema_diff(fresh) == []

    await alembic(fresh, "downgrade", "base")
    assert await current_revision(fresh) is None
    left = await table_names(fresh) - {VERSION_TABLE}
    assert left == set(), f"downgrade to base left tables behind: {left}"

    await alembic(fresh, "upgrade", "head")
    assert await current_revision(fresh) == head
    assert await schema_diff(fresh) == []


async def test_every_migration_steps_down_and_up_again(fresh: AsyncEngine) -> None:
    """The stairway: each revision applied, reverted and re-applied in turn, so every downgrade gets exercised
    against the schema it is meant to undo."""
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(reversed(list(script.walk_revisions())))
    assert revisions, "no migrations found"
    for revision in revisions:
        below = revision.down_revision
        assert below is None or isinstance(below, str), f"{revision.revision} is a merge; step it by hand"
        await alembic(fresh, "upgrade", revision.revision)
        assert await current_revision(fresh) == revision.revision
        await alembic(fresh, "downgrade", below or "base")
        assert await current_revision(fresh) == below
        await alembic(fresh, "upgrade", revision.revision)
        assert await current_revision(fresh) == revision.revision
    assert await current_revision(fresh) == head_revision()
    assert await schema_diff(fresh) == []
