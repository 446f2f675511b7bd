#!/usr/bin/env python
"""Feed page latency on one circle with many posts, on SQLite and PostgreSQL. A benchmark, not a test.

    python bench/feed_latency.py [--posts 1000000] [--backend sqlite|postgres|both] [--pages 2000]

For each backend it builds a fresh database (a SQLite file in a temporary directory; on PostgreSQL a fresh schema
``bench_feed_<random>``, dropped at the end even on failure), migrates it with ``server.db.migrate.upgrade``, bulk-loads
one circle (N posts over 5 sections, 50 members, reactions, comments, a few pinned posts), runs ANALYZE, and then times
the real code path, ``server.services.feed.feed`` inside a fresh ``async with session_factory() as db, db.begin():``
per page, exactly as the HTTP handler does. Page kinds:

- ``first``: the first page of the whole feed (this one also loads the pinned posts);
- ``deep``: a page before a random cursor anywhere in the feed;
- ``section_first``: the first page of a random section (pinned posts of that section too);
- ``section_deep``: a page of a random section before a random cursor.

Then (unless ``--http-requests 0``) the same mix through the full HTTP stack: ``create_app`` on an
``aiohttp.test_utils.TestServer`` over the same database, a user registered through ``POST /api/auth/register``, a
bearer token from ``POST /api/auth/token``, and ``GET /api/circles/{id}/posts``. The client runs in the same process
and event loop, so HTTP figures include the client's own cost.

Each row gives wall-time percentiles per page and, as ``cpu p50``/``cpu p99``, this process's CPU time per page (all
its threads, so aiosqlite's worker thread and SQLite itself count; PostgreSQL's server process does not). On a machine
busy with other work the wall time grows while the CPU time barely moves.

Finally a per-query breakdown (time of each SQL statement the feed issues, through SQLAlchemy's cursor events) and, with
``--explain``, the query plans (EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL).

The PostgreSQL server comes from ``--postgres-url`` (default ``$QUANZI_TEST_POSTGRES_URL`` or
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from server import policy
from server.app import create_app
from server.db.circles import new_circle_id
from server.db.engine import SessionFactory, make_engine, make_session_factory
from server.db.migrate import upgrade
from server.db.models import (
    ChatHistory,
    Circle,
    CircleKind,
    CircleMember,
    CircleRole,
    CircleSection,
    JoinPolicy,
    ReactionKind,
    User,
    Visibility,
)
from server.services import feed as feed_service
from server.settings import Settings, sqlite_url

DEFAULT_POSTGRES_URL = os.environ.get("QUANZI_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
GOAL_MS = 5.0
PAGE_SIZE = 20
SECTIONS = 5
MEMBERS = 50
PINNED = 5
CHUNK = 50_000
KINDS = ("first", "deep", "section_first", "section_deep")
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
POST_COLUMNS = ("id", "circle_id", "section_id", "author_id", "title", "body", "pinned_at", "created_at", "edited_at")
REACTION_COLUMNS = ("post_id", "user_id", "kind", "created_at")
COMMENT_COLUMNS = ("id", "post_id", "parent_id", "author_id", "body", "created_at", "edited_at")
REACTION_KINDS = [kind.value for kind in ReactionKind]
WORDS = (
    "lesson homework question answer week exam notes slides lecture reading chapter problem solution group project "
    "deadline review thanks please share link video recording practice quiz grade feedback idea discussion example "
    "today tomorrow morning evening library online room class teacher student course module unit topic draft"
).split()


# --- the data set ---------------------------------------------------------------------------------------------------


@dataclass
class Circle1M:
    """What the loader put in: enough for the measurement to choose valid arguments and check answers."""

    posts: int
    circle_id: str = ""
    section_ids: list[int] = field(default_factory=list)
    member_ids: list[int] = field(default_factory=list)
    pinned: dict[int, int] = field(default_factory=dict)  # post id -> section id
    reactions: int = 0
    comments: int = 0


@dataclass
class Chunk:
    posts: list[tuple[Any, ...]]
    reactions: list[tuple[Any, ...]]
    comments: list[tuple[Any, ...]]


def generate(data: Circle1M, seed: int) -> Iterator[Chunk]:
    """Posts 1..N, oldest first, in chunks; ~10% of posts get 1-5 reactions and ~5% get 1-6 comments (some replies).

    The same seed gives the same rows on both backends. Datetimes are aware UTC; the SQLite writer turns them into the
    text SQLAlchemy stores.
    """
    rng = random.Random(seed)
    bodies = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 90))).capitalize() + "." for _ in range(64)]
    titles = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))).capitalize() for _ in range(64)]
    pinned_ids = {round(data.posts * (i + 1) / (PINNED + 1)) for i in range(PINNED)}
    members, sections, circle_id = data.member_ids, data.section_ids, data.circle_id
    comment_id = 0
    for start in range(1, data.posts + 1, CHUNK):
        chunk = Chunk([], [], [])
        for post_id in range(start, min(start + CHUNK, data.posts + 1)):
            created = BASE_TIME + timedelta(seconds=30 * post_id)
            section = sections[rng.randrange(SECTIONS)] if rng.random() < 0.9 else None
            if post_id in pinned_ids:
                section = sections[len(data.pinned) % SECTIONS]
                data.pinned[post_id] = section
            pinned_at = created + timedelta(hours=1) if post_id in pinned_ids else None
            edited_at = created + timedelta(minutes=5) if rng.random() < 0.03 else None
            title = rng.choice(titles) if rng.random() < 0.4 else None
            chunk.posts.append((post_id, circle_id, section, rng.choice(members), title, rng.choice(bodies),
                                pinned_at, created, edited_at))
            if rng.random() < 0.10:
                pairs = {(rng.choice(members), rng.choice(REACTION_KINDS)) for _ in range(rng.randint(1, 5))}
                chunk.reactions.extend((post_id, user, kind, created + timedelta(seconds=60)) for user, kind in pairs)
            if rng.random() < 0.05:
                tops: list[int] = []
                for i in range(rng.randint(1, 6)):
                    comment_id += 1
                    parent = rng.choice(tops) if tops and rng.random() < 0.3 else None
                    if parent is None:
                        tops.append(comment_id)
                    chunk.comments.append((comment_id, post_id, parent, rng.choice(members), rng.choice(bodies)[:300],
                                           created + timedelta(minutes=10 + i), None))
        data.reactions += len(chunk.reactions)
        data.comments += len(chunk.comments)
        yield chunk


async def seed_small(factory: SessionFactory, data: Circle1M) -> None:
    """Users, the circle, its sections and members, through the ORM (so types are stored as the app stores them)."""
    async with factory() as db, db.begin():
        users = [User(email=f"member{i}@bench.example", email_key=f"member{i}@bench.example", password_hash="!",
                      display_name=f"Member {i}", verified=i % 3 == 0) for i in range(MEMBERS)]
        db.add_all(users)
        await db.flush()
        circle = Circle(id=new_circle_id(), name="Benchmark circle", description="One circle, many posts",
                        kind=CircleKind.COMMUNITY, visibility=Visibility.PRIVATE, join_policy=JoinPolicy.INVITE,
                        chat_history=ChatHistory.ALL, application_form=[], created_by=users[0].id)
        db.add(circle)
        await db.flush()
        sections = [CircleSection(circle_id=circle.id, name=f"Section {i}", position=i) for i in range(SECTIONS)]
        db.add_all(sections)
        roles = [CircleRole.OWNER, CircleRole.ADMIN, CircleRole.TEACHER]
        db.add_all(CircleMember(circle_id=circle.id, user_id=user.id,
                                role=roles[i] if i < len(roles) else CircleRole.MEMBER,
                                nickname=f"Nick {i}" if i % 4 == 0 else None) for i, user in enumerate(users))
        await db.flush()
        data.circle_id = circle.id
        data.section_ids = [section.id for section in sections]
        data.member_ids = [user.id for user in users]


# --- backends -------------------------------------------------------------------------------------------------------


class Backend:
    name: str
    url: str
    schema: str | None = None

    async def create(self) -> None: ...
    async def bulk_load(self, chunks: Iterator[Chunk]) -> None: ...
    async def analyze(self) -> None: ...
    async def drop(self) -> None: ...

    def describe(self) -> str:
        return self.url if self.schema is None else f"{self.url} (schema {self.schema})"


def _sqlite_time(value: datetime | None) -> str | None:
    # What SQLAlchemy's SQLite DateTime stores: naive UTC text with microseconds.
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.directory = Path(tempfile.mkdtemp(prefix="bench_feed_"))
        self.path = self.directory / "quanzi.db"
        self.url = sqlite_url(self.path)

    def _load(self, chunks: Iterator[Chunk]) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=OFF")  # bulk load only; the app's engine sets NORMAL again
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA cache_size=-262144")
            posts_sql = f"INSERT INTO posts ({', '.join(POST_COLUMNS)}) VALUES ({', '.join('?' * len(POST_COLUMNS))})"
            reactions_sql = f"INSERT INTO reactions ({', '.join(REACTION_COLUMNS)}) VALUES (?, ?, ?, ?)"
            comments_sql = (f"INSERT INTO comments ({', '.join(COMMENT_COLUMNS)}) "
                            f"VALUES ({', '.join('?' * len(COMMENT_COLUMNS))})")
            for chunk in chunks:
                connection.execute("BEGIN")
                connection.executemany(posts_sql, ((*p[:6], _sqlite_time(p[6]), _sqlite_time(p[7]),
                                                    _sqlite_time(p[8])) for p in chunk.posts))
                connection.executemany(reactions_sql, ((*r[:3], _sqlite_time(r[3])) for r in chunk.reactions))
                connection.executemany(comments_sql, ((*c[:5], _sqlite_time(c[5]), None) for c in chunk.comments))
                connection.execute("COMMIT")
        finally:
            connection.close()

    async def bulk_load(self, chunks: Iterator[Chunk]) -> None:
        await asyncio.to_thread(self._load, chunks)

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
        return f"{self.path} ({size / 1e6:.0f} MB)"


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, url: str, keep: bool) -> None:
        self.url = url
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.schema = f"bench_feed_{secrets.token_hex(4)}"
        self.keep = keep

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[asyncpg.Connection]:
        connection = await asyncpg.connect(self.dsn, server_settings={"search_path": str(self.schema)})
        try:
            yield connection
        finally:
            await connection.close()

    async def create(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            print(f"  PostgreSQL {await connection.fetchval('SHOW server_version')}, "
                  f"shared_buffers {await connection.fetchval('SHOW shared_buffers')}")
            await connection.execute(f'CREATE SCHEMA "{self.schema}"')
        finally:
            await connection.close()

    async def bulk_load(self, chunks: Iterator[Chunk]) -> None:
        async with self._connect() as connection:
            for chunk in chunks:
                async with connection.transaction():
                    await connection.copy_records_to_table("posts", records=chunk.posts, columns=POST_COLUMNS,
                                                           schema_name=self.schema)
                    await connection.copy_records_to_table("reactions", records=chunk.reactions,
                                                           columns=REACTION_COLUMNS, schema_name=self.schema)
                    await connection.copy_records_to_table("comments", records=chunk.comments,
                                                           columns=COMMENT_COLUMNS, schema_name=self.schema)
            for table in ("posts", "comments"):  # ids were given explicitly: move the sequences past them
                await connection.execute(f"SELECT setval(pg_get_serial_sequence('{self.schema}.{table}', 'id'), "
                                         f"(SELECT coalesce(max(id), 1) FROM {table}))")

    async def analyze(self) -> None:
        async with self._connect() as connection:
            # VACUUM too, so index-only scans see an all-visible table, as on a settled production database.
            for table in ("users", "circles", "circle_sections", "circle_members", "posts", "reactions", "comments"):
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


# --- measuring ------------------------------------------------------------------------------------------------------


def loadavg() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Row:
    backend: str
    path: str
    kind: str
    seconds: list[float]  # wall time per page
    cpu: list[float]  # this process's CPU time per page (all its threads): less sensitive to a busy machine

    def line(self) -> str:
        ms = [s * 1000 for s in self.seconds]
        p99 = percentile(ms, 99)
        verdict = "yes" if p99 <= GOAL_MS else "NO"
        return (f"{self.backend:<18} {self.path:<8} {self.kind:<14} {len(ms):>6} {percentile(ms, 50):>8.2f} "
                f"{percentile(ms, 90):>8.2f} {p99:>8.2f} {max(ms):>8.2f}   {verdict:<8} "
                f"{percentile(self.cpu, 50) * 1000:>8.2f} {percentile(self.cpu, 99) * 1000:>8.2f}")


HEADER = (f"{'backend':<18} {'path':<8} {'page kind':<14} {'pages':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8}   p99<=5ms {'cpu p50':>8} {'cpu p99':>8}")


@dataclass
class Timings:
    wall: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def rows(self, backend: str, path: str) -> list[Row]:
        rows = [Row(backend, path, kind, self.wall[kind], self.cpu[kind]) for kind in KINDS]
        rows.append(Row(backend, path, "all", [s for r in rows for s in r.seconds], [s for r in rows for s in r.cpu]))
        return rows


def page_args(kind: str, data: Circle1M, rng: random.Random) -> tuple[int | None, int | None]:
    """(section_id, before) for one page of this kind."""
    section = rng.choice(data.section_ids) if kind.startswith("section") else None
    before = rng.randint(PAGE_SIZE + 1, data.posts) if kind.endswith("deep") else None
    return section, before


def check_page(page: feed_service.FeedPage, data: Circle1M, section: int | None, before: int | None) -> None:
    ids = [view.post.id for view in page.posts]
    assert ids == sorted(ids, reverse=True), "feed not newest first"
    assert all(view.post.pinned_at is None for view in page.posts), "pinned post in the page"
    assert before is None or all(i < before for i in ids), "cursor not respected"
    assert section is None or all(view.post.section_id == section for view in page.posts), "section not respected"
    if before is None:
        expected = {p for p, s in data.pinned.items() if section is None or s == section}
        assert {view.post.id for view in page.pinned} == expected, "pinned posts missing"
    assert len(ids) == PAGE_SIZE or (before is not None and before < 10 * PAGE_SIZE * SECTIONS), "short page"


def plan(pages: int, rng: random.Random) -> list[str]:
    kinds = [KINDS[i % len(KINDS)] for i in range(pages)]
    rng.shuffle(kinds)
    return kinds


async def measure_service(factory: SessionFactory, data: Circle1M, pages: int, warmup: int,
                          rng: random.Random) -> Timings:
    actor = policy.Actor(user_id=data.member_ids[7], is_site_admin=False)  # a plain member
    timings = Timings()
    for index, kind in enumerate(plan(warmup, rng) + plan(pages, rng)):
        section, before = page_args(kind, data, rng)
        cpu, started = time.process_time(), time.perf_counter()
        async with factory() as db, db.begin():
            page = await feed_service.feed(db, actor, data.circle_id, section_id=section, before=before,
                                           limit=PAGE_SIZE)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        if index < warmup:
            check_page(page, data, section, before)
        else:
            timings.wall[kind].append(elapsed)
            timings.cpu[kind].append(cpu)
    return timings


async def measure_http(backend: Backend, data: Circle1M, requests: int, warmup: int,
                       rng: random.Random) -> Timings:
    with tempfile.TemporaryDirectory(prefix="bench_feed_http_") as data_dir:
        settings = Settings(secret_key=secrets.token_urlsafe(48), data_dir=Path(data_dir),
                            database_url=backend.url, database_schema=backend.schema,
                            password_hash_time_cost=1, password_hash_memory_kib=1024)
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
                email, password = f"reader-{secrets.token_hex(4)}@bench.example", secrets.token_urlsafe(16)
                async with client.post(server.make_url("/api/auth/register"),
                                       json={"email": email, "password": password, "display_name": "Reader"}) as r:
                    assert r.status == 201, await r.text()
                    user_id = (await r.json())["user"]["id"]
                async with client.post(server.make_url("/api/auth/token"),
                                       json={"email": email, "password": password}) as r:
                    assert r.status == 201, await r.text()
                    token = (await r.json())["token"]
                engine = make_engine(backend.url, backend.schema)
                try:
                    async with make_session_factory(engine)() as db, db.begin():
                        db.add(CircleMember(circle_id=data.circle_id, user_id=user_id, role=CircleRole.MEMBER))
                finally:
                    await engine.dispose()
                headers = {"Authorization": f"Bearer {token}"}
                url = server.make_url(f"/api/circles/{data.circle_id}/posts")
                timings = Timings()
                for index, kind in enumerate(plan(warmup, rng) + plan(requests, rng)):
                    section, before = page_args(kind, data, rng)
                    params = {"limit": str(PAGE_SIZE)}
                    if section is not None:
                        params["section_id"] = str(section)
                    if before is not None:
                        params["before"] = str(before)
                    cpu, started = time.process_time(), time.perf_counter()
                    async with client.get(url, params=params, headers=headers) as response:
                        body = await response.read()
                    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
                    assert response.status == 200, body[:500]
                    if index >= warmup:
                        timings.wall[kind].append(elapsed)
                        timings.cpu[kind].append(cpu)
                return timings
        finally:
            await server.close()


# --- where the time goes: per-statement timings and plans ------------------------------------------------------------


def query_name(statement: str) -> str:
    s = " ".join(statement.split()).lower()
    if s.startswith("begin"):
        return "BEGIN"
    if "from circles" in s:
        return "open_circle (load_circle)"
    if "from posts" in s and "pinned_at is not null" in s:
        return "pinned_posts"
    if "from posts" in s:
        return "feed_page"
    if "from reactions" in s and "group by" in s:
        return "post_stats: reaction counts"
    if "from reactions" in s:
        return "post_stats: my reactions"
    if "from comments" in s:
        return "post_stats: comment counts"
    if "from users" in s:
        return "authors"
    return s[:40]


def statement_shape(statement: str) -> str:
    """The statement with its IN lists and parameter numbers folded, so pages of any size share one shape."""
    shape = re.sub(r"\$\d+", "$n", " ".join(statement.split()))
    return re.sub(r"\((?:\?|\$n(?:::\w+)?)(?:, (?:\?|\$n(?:::\w+)?))*\)", "(...)", shape)


class StatementTimer:
    """Times every statement sent through an engine (cursor execute, which includes fetching the rows)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.times: dict[str, list[float]] = defaultdict(list)
        self.kind = ""
        self.samples: dict[str, tuple[str, str, Any]] = {}  # statement shape -> (page kind, statement, parameters)

    def __enter__(self) -> StatementTimer:
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(self.engine.sync_engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._before)
        event.remove(self.engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool) -> None:
        if context is not None:
            context._bench_started = time.perf_counter()

    def _after(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool) -> None:
        started = getattr(context, "_bench_started", None)
        if started is None:
            return
        name = query_name(statement)
        self.times[name].append(time.perf_counter() - started)
        if name != "BEGIN":
            self.samples.setdefault(statement_shape(statement), (self.kind, statement, parameters))


async def breakdown(
    engine: AsyncEngine, factory: SessionFactory, data: Circle1M, pages: int, rng: random.Random
) -> tuple[dict[str, dict[str, list[float]]], list[tuple[str, str, Any]]]:
    """Per page kind, per statement: how long each of the feed's queries takes; and one sample of each statement."""
    actor = policy.Actor(user_id=data.member_ids[7], is_site_admin=False)
    result: dict[str, dict[str, list[float]]] = {}
    with StatementTimer(engine) as timer:
        for kind in KINDS:
            timer.times, timer.kind = defaultdict(list), kind
            for _ in range(pages):
                section, before = page_args(kind, data, rng)
                async with factory() as db, db.begin():
                    await feed_service.feed(db, actor, data.circle_id, section_id=section, before=before,
                                            limit=PAGE_SIZE)
            result[kind] = dict(timer.times)
    return result, list(timer.samples.values())


async def explain(engine: AsyncEngine, samples: list[tuple[str, str, Any]]) -> None:
    """The plan of each distinct statement the feed sent, with the parameters of one real page."""
    sqlite = engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
    async with engine.connect() as connection:
        for kind, statement, parameters in samples:
            rows = (await connection.exec_driver_sql(prefix + statement, tuple(parameters))).all()
            print(f"\n  -- {query_name(statement)} (from a {kind} page)\n  {' '.join(statement.split())}\n"
                  f"  params {tuple(parameters)}")
            for row in rows:
                print("    " + (str(row[-1]) if sqlite else str(row[0])))
        await connection.rollback()


# --- one backend, start to finish -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    rows: list[Row]
    load: dict[str, float]
    data: Circle1M


async def run_backend(backend: Backend, args: argparse.Namespace) -> Outcome:
    rng = random.Random(args.seed)
    data = Circle1M(posts=args.posts)
    load: dict[str, float] = {}
    rows: list[Row] = []
    label = backend.name
    print(f"\n=== {label}: {args.posts:,} posts ===")
    try:
        started = time.perf_counter()
        await backend.create()
        engine = make_engine(backend.url, backend.schema)
        try:
            await upgrade(engine)
            load["migrate"] = time.perf_counter() - started
            factory = make_session_factory(engine)
            await seed_small(factory, data)

            step = time.perf_counter()
            await backend.bulk_load(generate(data, args.seed))
            load["bulk load"] = time.perf_counter() - step
            print(f"  loaded {data.posts:,} posts, {data.reactions:,} reactions, {data.comments:,} comments, "
                  f"{len(data.pinned)} pinned in {load['bulk load']:.1f} s")
            step = time.perf_counter()
            await backend.analyze()
            load["analyze"] = time.perf_counter() - step
            load["total build"] = time.perf_counter() - started
            print(f"  analyze {load['analyze']:.1f} s; database {backend.describe()}")
            # A fresh pool after the bulk load, as a freshly started server would have.
            await engine.dispose()

            print(f"  load average before measuring: {loadavg()}")
            step = time.perf_counter()
            timings = await measure_service(factory, data, args.pages, args.warmup, rng)
            load["measure service"] = time.perf_counter() - step
            rows += timings.rows(label, "service")
            print(HEADER)
            for row in rows:
                print(row.line())

            if args.http_requests:
                step = time.perf_counter()
                http = await measure_http(backend, data, args.http_requests, args.warmup // 4, rng)
                load["measure http"] = time.perf_counter() - step
                rows += http.rows(label, "HTTP")
                for row in rows[-len(KINDS) - 1:]:
                    print(row.line())

            print(f"  load average after measuring: {loadavg()}")
            if args.breakdown_pages:
                per_kind, samples = await breakdown(engine, factory, data, args.breakdown_pages, rng)
                print(f"\n  per-query time, ms (median / p99 over {args.breakdown_pages} pages per kind; "
                      "cursor execute incl. fetch):")
                names = sorted({name for kind in per_kind.values() for name in kind})
                print(f"  {'query':<30}" + "".join(f"{kind:>24}" for kind in KINDS))
                for name in names:
                    cells = []
                    for kind in KINDS:
                        values = per_kind[kind].get(name)
                        cells.append(f"{statistics.median(values) * 1000:>10.3f} / "
                                     f"{percentile(values, 99) * 1000:>8.3f}" if values else f"{'-':>21}")
                    print(f"  {name:<30}" + "".join(f"{cell:>24}" for cell in cells))
                # Medians of each query, summed: what the database part of a page costs, against the page's own time.
                sums = [sum(statistics.median(v) for v in per_kind[kind].values()) * 1000 for kind in KINDS]
                print(f"  {'sum of medians':<30}" + "".join(f"{total:>10.3f}{'':>14}" for total in sums))
                counts = [sum(len(v) for v in per_kind[kind].values()) / args.breakdown_pages for kind in KINDS]
                print(f"  {'statements per page':<30}" + "".join(f"{count:>10.1f}{'':>14}" for count in counts))
                print("  (COMMIT, and on PostgreSQL BEGIN too, go to the driver outside these statement events)")
                if args.explain:
                    await explain(engine, samples)
        finally:
            await engine.dispose()
    finally:
        await backend.drop()
    return Outcome(rows, load, data)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # so a plain `kill` still runs the clean-up (drop the schema, remove the file)


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pages", type=int, default=2000, help="measured pages per backend (all kinds together)")
    parser.add_argument("--warmup", type=int, default=200, help="pages before measuring (also checked for correctness)")
    parser.add_argument("--http-requests", type=int, default=400, help="requests through HTTP; 0 skips it")
    parser.add_argument("--breakdown-pages", type=int, default=50,
                        help="pages per kind for the per-query table; 0 skips it")
    parser.add_argument("--explain", action="store_true", help="print the plan of each query the feed issues")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--seed", type=int, default=20241)
    parser.add_argument("--keep", action="store_true", help="keep the database (SQLite file / PostgreSQL schema)")
    args = parser.parse_args()
    if args.posts < 10 * PAGE_SIZE * SECTIONS:
        parser.error(f"--posts must be at least {10 * PAGE_SIZE * SECTIONS}")

    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {loadavg()}")
    backends: list[Callable[[], Backend]] = []
    if args.backend in ("sqlite", "both"):
        backends.append(lambda: SQLiteBackend(args.keep))
    if args.backend in ("postgres", "both"):
        backends.append(lambda: PostgresBackend(args.postgres_url, args.keep))
    outcomes = [asyncio.run(run_backend(make(), args)) for make in backends]

    print("\n=== results (feed page of 20, one transaction per page) ===")
    print(HEADER)
    for outcome in outcomes:
        for row in outcome.rows:
            print(row.line())
    print()
    for outcome in outcomes:
        backend = outcome.rows[0].backend if outcome.rows else "?"
        print(f"{backend:<18} " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in outcome.load.items()))


if __name__ == "__main__":
    main()
