"""What the database benchmarks (``feed_latency.py``, ``attendance_report.py``) share. Not a benchmark itself.

- the backends: a fresh database per run (a SQLite file in a temporary directory, or a fresh PostgreSQL schema
  ``<prefix>_<random>``), created, analyzed and dropped at the end (also on an error or ``kill``, see
  ``drop_on_sigterm``); each benchmark subclasses them with its own ``bulk_load``;
- ``migrated``: the fresh database migrated with ``server.db.migrate.upgrade``, with an engine over it;
- ``http_client``: the app on an ``aiohttp`` test server over that database, with a registered user in the circle;
- running: ``run_each`` (the backends ``--backend`` names, one after the other), ``add_database_arguments``,
  ``print_results`` (the closing summary of every backend's ``Outcome``);
- measuring: ``percentile``, ``loadavg``, the results table (``Table``, ``Row``), ``StatementTimer`` (times every SQL
  statement through SQLAlchemy's cursor events) and ``explain``.

Run the benchmarks as scripts (``python bench/<script>.py``, from any directory): each puts the repository root on
``sys.path`` and imports this module as ``bench.common``.

Nothing here holds a connection between calls: each backend connects when it needs to and closes again.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import tempfile
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from server.app import create_app
from server.db.engine import make_engine, make_session_factory
from server.db.migrate import upgrade
from server.db.models import CircleMember, CircleRole
from server.settings import Settings, sqlite_url

DEFAULT_POSTGRES_URL = os.environ.get("QUANZI_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

Rows = TypeVar("Rows")  # what a benchmark's bulk_load takes
Result = TypeVar("Result")  # what a benchmark's run of one backend gives


# --- backends -------------------------------------------------------------------------------------------------------


class Backend(ABC, Generic[Rows]):
    """A fresh database for one run: ``create`` it, ``bulk_load`` a benchmark's rows, ``analyze``, ``drop``."""

    name: str
    url: str
    schema: str | None = None

    async def create(self) -> None:
        """Make the empty database (before it is migrated)."""

    @abstractmethod
    async def bulk_load(self, rows: Rows) -> None:
        """Load a benchmark's bulk rows into the migrated database (each benchmark writes its own)."""

    @abstractmethod
    async def analyze(self) -> None:
        """Gather the planner's statistics after the load."""

    @abstractmethod
    async def drop(self) -> None:
        """Remove the database, unless it is to be kept."""

    def describe(self) -> str:
        return self.url if self.schema is None else f"{self.url} (schema {self.schema})"


def sqlite_time(value: datetime | None) -> str | None:
    """What SQLAlchemy's SQLite DateTime stores: naive UTC text with microseconds."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SQLiteBackend(Backend[Rows]):
    """A SQLite file ``quanzi.db`` in a fresh temporary directory named ``<prefix>_...``.

    ``size_digits``: decimals of the file size in MB that ``describe`` prints.
    """

    name = "sqlite"

    def __init__(self, prefix: str, keep: bool, size_digits: int = 0) -> None:
        self.keep = keep
        self.size_digits = size_digits
        self.directory = Path(tempfile.mkdtemp(prefix=f"{prefix}_"))
        self.path = self.directory / "quanzi.db"
        self.url = sqlite_url(self.path)

    @contextmanager
    def bulk_connection(self) -> Iterator[sqlite3.Connection]:
        """A plain sqlite3 connection for a bulk load (autocommit: the loader says BEGIN and COMMIT itself).

        Synchronous writes are off for the load only (the app's engine sets NORMAL again); foreign keys are checked.
        """
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute("PRAGMA foreign_keys=ON")
            yield connection
        finally:
            connection.close()

    def _analyze(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("ANALYZE")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()

    async def analyze(self) -> None:
        await asyncio.to_thread(self._analyze)

    async def drop(self) -> None:
        if self.keep:
            print(f"  kept {self.path}")
        else:
            shutil.rmtree(self.directory, ignore_errors=True)

    def describe(self) -> str:
        size = sum(p.stat().st_size for p in self.directory.iterdir()) if self.directory.exists() else 0
        return f"{self.path} ({size / 1e6:.{self.size_digits}f} MB)"


class PostgresBackend(Backend[Rows]):
    """A fresh schema ``<prefix>_<random>`` on the server at ``url`` (a ``postgresql+asyncpg://`` URL).

    ``setting``: the server setting ``create`` prints after the version; ``tables``: what ``analyze`` VACUUM ANALYZEs.
    """

    name = "postgres"

    def __init__(self, url: str, keep: bool, *, prefix: str, setting: str, tables: Sequence[str]) -> None:
        self.url = url
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.schema = f"{prefix}_{secrets.token_hex(4)}"
        self.keep = keep
        self.setting = setting
        self.tables = tuple(tables)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[asyncpg.Connection]:
        """An asyncpg connection with the benchmark's schema on its search path, closed on leaving."""
        connection = await asyncpg.connect(self.dsn, server_settings={"search_path": str(self.schema)})
        try:
            yield connection
        finally:
            await connection.close()

    async def move_sequences(self, connection: asyncpg.Connection, tables: Iterable[str]) -> None:
        """After rows were loaded with explicit ids: move each table's ``id`` sequence past them."""
        for table in tables:
            await connection.execute(f"SELECT setval(pg_get_serial_sequence('{self.schema}.{table}', 'id'), "
                                     f"(SELECT coalesce(max(id), 1) FROM {table}))")

    async def create(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            print(f"  PostgreSQL {await connection.fetchval('SHOW server_version')}, "
                  f"{self.setting} {await connection.fetchval(f'SHOW {self.setting}')}")
            await connection.execute(f'CREATE SCHEMA "{self.schema}"')
        finally:
            await connection.close()

    async def analyze(self) -> None:
        async with self.connect() as connection:
            # VACUUM too, so index-only scans see an all-visible table, as on a settled production database.
            for table in self.tables:
                await connection.execute(f"VACUUM (ANALYZE) {table}")

    async def drop(self) -> None:
        if self.keep:
            print(f"  kept schema {self.schema}")
            return
        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await connection.close()


def run_each(
    choice: str,
    sqlite: Callable[[], Backend[Rows]],
    postgres: Callable[[], Backend[Rows]],
    run: Callable[[Backend[Rows]], Coroutine[Any, Any, Result]],
) -> list[Result]:
    """Run the benchmark on each backend ``--backend`` asks for (``sqlite``, ``postgres`` or ``both``), in that order:
    each backend made only when its turn comes, and run start to finish in an event loop of its own."""
    makers: list[Callable[[], Backend[Rows]]] = []
    if choice in ("sqlite", "both"):
        makers.append(sqlite)
    if choice in ("postgres", "both"):
        makers.append(postgres)
    return [asyncio.run(run(make())) for make in makers]


@asynccontextmanager
async def migrated(backend: Backend[Any]) -> AsyncIterator[AsyncEngine]:
    """Create the backend's database, migrate it and give an engine over it; dispose and drop it at the end, also
    on an error (or a ``kill``, with ``drop_on_sigterm``)."""
    try:
        await backend.create()
        engine = make_engine(backend.url, backend.schema)
        try:
            await upgrade(engine)
            yield engine
        finally:
            await engine.dispose()
    finally:
        await backend.drop()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # so a plain `kill` still runs the clean-up (drop the schema, remove the file)


def drop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so that a killed benchmark still drops its database."""
    signal.signal(signal.SIGTERM, _interrupt)


def add_database_arguments(parser: argparse.ArgumentParser, seed: int) -> None:
    """``--postgres-url``, ``--seed`` and ``--keep``."""
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--keep", action="store_true", help="keep the database (SQLite file / PostgreSQL schema)")


# --- the HTTP path --------------------------------------------------------------------------------------------------


@dataclass
class HttpClient:
    """A client of the app's test server, signed in as a user who is a member of the circle."""

    client: aiohttp.ClientSession
    server: TestServer
    headers: dict[str, str]  # the bearer token


@asynccontextmanager
async def http_client(
    backend: Backend[Any], circle_id: str, role: CircleRole, display_name: str, prefix: str, **settings: Any
) -> AsyncIterator[HttpClient]:
    """``create_app`` on a ``TestServer`` over the backend's database (its data dir in a temporary directory
    ``<prefix>_http_...``; ``settings``: more ``Settings``), a user registered through ``POST /api/auth/register``
    (email ``<display_name lower case>-<random>@bench.example``), made a member of the circle with ``role``, and a
    bearer token from ``POST /api/auth/token``."""
    with tempfile.TemporaryDirectory(prefix=f"{prefix}_http_") as data_dir:
        app_settings = Settings(secret_key=secrets.token_urlsafe(48), data_dir=Path(data_dir),
                                database_url=backend.url, database_schema=backend.schema,
                                password_hash_time_cost=1, password_hash_memory_kib=1024, **settings)
        server = TestServer(create_app(app_settings), host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
                email = f"{display_name.lower()}-{secrets.token_hex(4)}@bench.example"
                password = secrets.token_urlsafe(16)
                async with client.post(server.make_url("/api/auth/register"),
                                       json={"email": email, "password": password, "display_name": display_name}) as r:
                    assert r.status == 201, await r.text()
                    user_id = (await r.json())["user"]["id"]
                async with client.post(server.make_url("/api/auth/token"),
                                       json={"email": email, "password": password}) as r:
                    assert r.status == 201, await r.text()
                    token = (await r.json())["token"]
                engine = make_engine(backend.url, backend.schema)
                try:
                    async with make_session_factory(engine)() as db, db.begin():
                        db.add(CircleMember(circle_id=circle_id, user_id=user_id, role=role))
                finally:
                    await engine.dispose()
                yield HttpClient(client, server, {"Authorization": f"Bearer {token}"})
        finally:
            await server.close()


# --- measuring ------------------------------------------------------------------------------------------------------


def machine() -> str:
    """Python and SQLite versions, CPUs, the time and the load average: the first line of a benchmark's output."""
    return (f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {loadavg()}")


def loadavg() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of non-empty ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Table:
    """The layout of a results table: the label columns (title, width), the count column, and the p99 goal."""

    labels: tuple[tuple[str, int], ...]
    count: tuple[str, int]
    goal_ms: float

    @property
    def goal(self) -> str:
        return f"p99<={self.goal_ms:g}ms"

    def header(self) -> str:
        labels = "".join(f"{title:<{width}} " for title, width in self.labels)
        title, width = self.count
        return (f"{labels}{title:>{width}} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}   "
                f"{self.goal} {'cpu p50':>8} {'cpu p99':>8}")

    def line(self, labels: Sequence[str], seconds: list[float], cpu: list[float]) -> str:
        ms = [s * 1000 for s in seconds]
        p99 = percentile(ms, 99)
        verdict = "yes" if p99 <= self.goal_ms else "NO"
        cells = "".join(f"{label:<{width}} " for label, (_, width) in zip(labels, self.labels, strict=True))
        return (f"{cells}{len(ms):>{self.count[1]}} {percentile(ms, 50):>8.2f} "
                f"{percentile(ms, 90):>8.2f} {p99:>8.2f} {max(ms):>8.2f}   {verdict:<{len(self.goal)}} "
                f"{percentile(cpu, 50) * 1000:>8.2f} {percentile(cpu, 99) * 1000:>8.2f}")


@dataclass
class Row:
    """One line of results: its labels (backend first), wall time and this process's CPU time per operation (all
    its threads: less sensitive to a busy machine)."""

    table: Table
    labels: tuple[str, ...]
    seconds: list[float]
    cpu: list[float]

    @property
    def backend(self) -> str:
        return self.labels[0]

    def line(self) -> str:
        return self.table.line(self.labels, self.seconds, self.cpu)


@dataclass
class Outcome:
    """One backend's run: its result rows, how long each step took (``load``: step -> seconds), and ``note``, put
    before those steps in the summary line."""

    rows: list[Row]
    load: dict[str, float]
    note: str = ""


def print_results(title: str, table: Table, outcomes: Sequence[Outcome]) -> None:
    """The closing summary: every backend's rows under one header, then a line per backend with its steps' times."""
    print(f"\n=== results ({title}) ===")
    print(table.header())
    for outcome in outcomes:
        for row in outcome.rows:
            print(row.line())
    print()
    width = table.labels[0][1]
    for outcome in outcomes:
        backend = outcome.rows[0].backend if outcome.rows else "?"
        print(f"{backend:<{width}} {outcome.note}"
              + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in outcome.load.items()))


# --- where the time goes: per-statement timings and plans ------------------------------------------------------------


def statement_shape(statement: str) -> str:
    """The statement with its IN lists and parameter numbers folded, so pages of any size share one shape."""
    shape = re.sub(r"\$\d+", "$n", " ".join(statement.split()))
    return re.sub(r"\((?:\?|\$n(?:::\w+)?)(?:, (?:\?|\$n(?:::\w+)?))*\)", "(...)", shape)


@dataclass(frozen=True)
class Sample:
    """One statement as sent, with the label of what was being measured then (``StatementTimer.kind``)."""

    kind: str
    statement: str
    parameters: Any


class StatementTimer:
    """Counts and times every statement sent through an engine (cursor execute, which includes fetching the rows),
    by ``query_name(statement)``, and keeps one sample of each statement shape (BEGIN aside). Listens only inside
    ``with``."""

    def __init__(self, engine: AsyncEngine, query_name: Callable[[str], str]) -> None:
        self.engine = engine
        self.query_name = query_name
        self.times: dict[str, list[float]] = defaultdict(list)
        self.count = 0
        self.kind = ""  # set by the caller: recorded with each sample
        self.samples: dict[str, Sample] = {}  # statement shape -> its first sample

    def __enter__(self) -> StatementTimer:
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(self.engine.sync_engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._before)
        event.remove(self.engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool) -> None:
        self.count += 1
        if context is not None:
            context._bench_started = time.perf_counter()

    def _after(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool) -> None:
        started = getattr(context, "_bench_started", None)
        if started is None:
            return
        name = self.query_name(statement)
        self.times[name].append(time.perf_counter() - started)
        if name != "BEGIN":
            self.samples.setdefault(statement_shape(statement), Sample(self.kind, statement, parameters))


async def explain(engine: AsyncEngine, samples: Iterable[Sample], title: Callable[[Sample], str]) -> None:
    """Print the plan of each sample statement with its own parameters (EXPLAIN QUERY PLAN on SQLite, EXPLAIN
    (ANALYZE, BUFFERS) on PostgreSQL), under ``-- <title(sample)>``; rolled back at the end."""
    sqlite = engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
    async with engine.connect() as connection:
        for sample in samples:
            statement, parameters = sample.statement, sample.parameters
            rows = (await connection.exec_driver_sql(prefix + statement, tuple(parameters))).all()
            print(f"\n  -- {title(sample)}\n  {' '.join(statement.split())}\n  params {tuple(parameters)}")
            for row in rows:
                print("    " + (str(row[-1]) if sqlite else str(row[0])))
        await connection.rollback()
