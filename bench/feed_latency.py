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
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: server, and bench.common

from sqlalchemy.ext.asyncio import AsyncEngine

from bench import common
from bench.common import Outcome, Row, loadavg, percentile, sqlite_time
from server import policy
from server.db.circles import new_circle_id
from server.db.engine import SessionFactory, make_session_factory
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


class SQLiteBackend(common.SQLiteBackend[Iterator[Chunk]]):
    def __init__(self, keep: bool) -> None:
        super().__init__("bench_feed", keep)

    def _load(self, chunks: Iterator[Chunk]) -> None:
        with self.bulk_connection() as connection:
            connection.execute("PRAGMA cache_size=-262144")
            posts_sql = f"INSERT INTO posts ({', '.join(POST_COLUMNS)}) VALUES ({', '.join('?' * len(POST_COLUMNS))})"
            reactions_sql = f"INSERT INTO reactions ({', '.join(REACTION_COLUMNS)}) VALUES (?, ?, ?, ?)"
            comments_sql = (f"INSERT INTO comments ({', '.join(COMMENT_COLUMNS)}) "
                            f"VALUES ({', '.join('?' * len(COMMENT_COLUMNS))})")
            for chunk in chunks:
                connection.execute("BEGIN")
                connection.executemany(posts_sql, ((*p[:6], sqlite_time(p[6]), sqlite_time(p[7]),
                                                    sqlite_time(p[8])) for p in chunk.posts))
                connection.executemany(reactions_sql, ((*r[:3], sqlite_time(r[3])) for r in chunk.reactions))
                connection.executemany(comments_sql, ((*c[:5], sqlite_time(c[5]), None) for c in chunk.comments))
                connection.execute("COMMIT")

    async def bulk_load(self, rows: Iterator[Chunk]) -> None:
        await asyncio.to_thread(self._load, rows)


class PostgresBackend(common.PostgresBackend[Iterator[Chunk]]):
    def __init__(self, url: str, keep: bool) -> None:
        super().__init__(url, keep, prefix="bench_feed", setting="shared_buffers",
                         tables=("users", "circles", "circle_sections", "circle_members", "posts", "reactions",
                                 "comments"))

    async def bulk_load(self, rows: Iterator[Chunk]) -> None:
        async with self.connect() as connection:
            for chunk in rows:
                async with connection.transaction():
                    await connection.copy_records_to_table("posts", records=chunk.posts, columns=POST_COLUMNS,
                                                           schema_name=self.schema)
                    await connection.copy_records_to_table("reactions", records=chunk.reactions,
                                                           columns=REACTION_COLUMNS, schema_name=self.schema)
                    await connection.copy_records_to_table("comments", records=chunk.comments,
                                                           columns=COMMENT_COLUMNS, schema_name=self.schema)
            await self.move_sequences(connection, ("posts", "comments"))  # ids were given explicitly


Backend = common.Backend[Iterator[Chunk]]


# --- measuring ------------------------------------------------------------------------------------------------------


TABLE = common.Table(labels=(("backend", 18), ("path", 8), ("page kind", 14)), count=("pages", 6), goal_ms=GOAL_MS)
HEADER = TABLE.header()


@dataclass
class Timings:
    wall: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def rows(self, backend: str, path: str) -> list[Row]:
        rows = [Row(TABLE, (backend, path, kind), self.wall[kind], self.cpu[kind]) for kind in KINDS]
        rows.append(Row(TABLE, (backend, path, "all"), [s for r in rows for s in r.seconds],
                        [s for r in rows for s in r.cpu]))
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
    async with common.http_client(backend, data.circle_id, CircleRole.MEMBER, "Reader", "bench_feed") as http:
        url = http.server.make_url(f"/api/circles/{data.circle_id}/posts")
        timings = Timings()
        for index, kind in enumerate(plan(warmup, rng) + plan(requests, rng)):
            section, before = page_args(kind, data, rng)
            params = {"limit": str(PAGE_SIZE)}
            if section is not None:
                params["section_id"] = str(section)
            if before is not None:
                params["before"] = str(before)
            cpu, started = time.process_time(), time.perf_counter()
            async with http.client.get(url, params=params, headers=http.headers) as response:
                body = await response.read()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            assert response.status == 200, body[:500]
            if index >= warmup:
                timings.wall[kind].append(elapsed)
                timings.cpu[kind].append(cpu)
        return timings


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


async def breakdown(
    engine: AsyncEngine, factory: SessionFactory, data: Circle1M, pages: int, rng: random.Random
) -> tuple[dict[str, dict[str, list[float]]], list[common.Sample]]:
    """Per page kind, per statement: how long each of the feed's queries takes; and one sample of each statement."""
    actor = policy.Actor(user_id=data.member_ids[7], is_site_admin=False)
    result: dict[str, dict[str, list[float]]] = {}
    with common.StatementTimer(engine, query_name) as timer:
        for kind in KINDS:
            timer.times, timer.kind = defaultdict(list), kind
            for _ in range(pages):
                section, before = page_args(kind, data, rng)
                async with factory() as db, db.begin():
                    await feed_service.feed(db, actor, data.circle_id, section_id=section, before=before,
                                            limit=PAGE_SIZE)
            result[kind] = dict(timer.times)
    return result, list(timer.samples.values())


def explain_title(sample: common.Sample) -> str:
    return f"{query_name(sample.statement)} (from a {sample.kind} page)"


# --- one backend, start to finish -----------------------------------------------------------------------------------


async def run_backend(backend: Backend, args: argparse.Namespace) -> Outcome:
    rng = random.Random(args.seed)
    data = Circle1M(posts=args.posts)
    load: dict[str, float] = {}
    rows: list[Row] = []
    label = backend.name
    print(f"\n=== {label}: {args.posts:,} posts ===")
    started = time.perf_counter()
    async with common.migrated(backend) as engine:
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
                await common.explain(engine, samples, explain_title)
    return Outcome(rows, load)


def main() -> None:
    common.drop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pages", type=int, default=2000, help="measured pages per backend (all kinds together)")
    parser.add_argument("--warmup", type=int, default=200, help="pages before measuring (also checked for correctness)")
    parser.add_argument("--http-requests", type=int, default=400, help="requests through HTTP; 0 skips it")
    parser.add_argument("--breakdown-pages", type=int, default=50,
                        help="pages per kind for the per-query table; 0 skips it")
    parser.add_argument("--explain", action="store_true", help="print the plan of each query the feed issues")
    common.add_database_arguments(parser, seed=20241)
    args = parser.parse_args()
    if args.posts < 10 * PAGE_SIZE * SECTIONS:
        parser.error(f"--posts must be at least {10 * PAGE_SIZE * SECTIONS}")

    print(common.machine())
    outcomes = common.run_each(args.backend, lambda: SQLiteBackend(args.keep),
                               lambda: PostgresBackend(args.postgres_url, args.keep),
                               lambda backend: run_backend(backend, args))
    common.print_results("feed page of 20, one transaction per page", TABLE, outcomes)


if __name__ == "__main__":
    main()
