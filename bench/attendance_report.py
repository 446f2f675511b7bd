#!/usr/bin/env python
"""Attendance report latency for one class of a big circle, on SQLite and PostgreSQL. A benchmark, not a test.

    python bench/attendance_report.py [--students 500] [--sessions 100] [--backend sqlite|postgres|both]
                                      [--reports 500] [--http-requests 200] [--explain]

For each backend it builds a fresh database (a SQLite file in a temporary directory; on PostgreSQL a fresh schema
``bench_attendance_<random>``, dropped at the end even on failure), migrates it with ``server.db.migrate.upgrade``,
and loads one course circle: an owner, an admin, two teachers, N students and a few former students (who attended
early classes and have left the circle), with S ended one-hour classes, one a day. Users, the circle, its members and
the sessions go through the ORM; the attendance intervals are bulk-loaded (PostgreSQL: asyncpg
``copy_records_to_table``; SQLite: ``executemany`` in one transaction). Then ANALYZE (SQLite) or VACUUM (ANALYZE)
(PostgreSQL).

Each student has a habit (how often they miss a class, are late, leave early, drop out or join from a second
device), so per class: some are absent, most arrive within a few minutes of the start, some arrive more than ten
minutes late, some leave early, some drop and rejoin (within the 30 s grace period, or after minutes away), some
join from a phone as well for part of the class. That is one to three intervals per student and class.

Then it times the real code path, ``server.services.classes.report`` (the whole register of one class: every member
of the circle, one session) inside a fresh ``async with session_factory() as db, db.begin():`` per report, as the
HTTP handler does, as the class's teacher, for a random class each time. The first ``--warmup`` reports are checked
line by line against ``rooms.attendance.record`` run in Python over the generated intervals (same statuses, the same
seconds within 10 ms). Every report's SQL statements are counted with a SQLAlchemy ``before_cursor_execute`` listener;
the count must not depend on the number of students (try ``--students 50``).

Then (unless ``--http-requests 0``) the same through the full HTTP stack: ``create_app`` on an
``aiohttp.test_utils.TestServer`` over the same database, a user registered through ``POST /api/auth/register``,
made an admin of the circle, a bearer token from ``POST /api/auth/token``, and ``GET /api/classes/{id}/attendance``
and ``GET /api/classes/{id}/attendance.csv``. The client runs in the same process and event loop, so HTTP figures
include the client's own cost (parsing a ~100 KB JSON body, for one).

Each row gives wall-time percentiles per report and this process's CPU time per report (all its threads, so SQLite's
work in aiosqlite's thread counts; PostgreSQL's server process does not). Finally a per-statement table (median / p99
of each statement of a report) and, with ``--explain``, the plans (EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE,
BUFFERS) on PostgreSQL).

The PostgreSQL server comes from ``--postgres-url`` (default ``$QUANZI_TEST_POSTGRES_URL`` or
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
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
from collections.abc import AsyncIterator, Callable
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

from rooms import attendance as register
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
    ClassSession,
    ClassState,
    ClassTeacher,
    JoinPolicy,
    User,
    Visibility,
)
from server.services import classes as classes_service
from server.settings import Settings, sqlite_url

DEFAULT_POSTGRES_URL = os.environ.get("QUANZI_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
GOAL_MS = 200.0
GRACE = 30.0  # the default QUANZI_CLASS_GRACE_SECONDS
FORMER_STUDENTS = 10  # attended the first classes, then left the circle: the report names them from users
CLASS_LENGTH = timedelta(hours=1)
BASE_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
INTERVAL_COLUMNS = ("id", "session_id", "user_id", "connection", "joined_at", "left_at", "reason")
PATHS = ("service", "HTTP json", "HTTP csv")


# --- the data set ---------------------------------------------------------------------------------------------------


@dataclass
class Course:
    """What the loader put in: enough to choose valid arguments and to check the reports."""

    students: int
    sessions: int
    circle_id: str = ""
    owner_id: int = 0
    teacher_id: int = 0  # teaches every class
    co_teacher_id: int = 0  # teaches every fourth class as well
    student_ids: list[int] = field(default_factory=list)
    former_ids: list[int] = field(default_factory=list)
    session_ids: list[int] = field(default_factory=list)
    schedule: dict[int, tuple[datetime, datetime, datetime]] = field(default_factory=dict)  # start, end, ended_at
    intervals: list[tuple[Any, ...]] = field(default_factory=list)  # rows in INTERVAL_COLUMNS order
    by_session: dict[int, dict[int, list[register.Interval]]] = field(default_factory=dict)  # epoch seconds

    @property
    def members(self) -> int:
        return self.students + 4  # owner, admin, two teachers

    def formers_in(self, session_id: int) -> int:
        """Former students who were in this class: the report lists them too."""
        return sum(1 for uid in self.former_ids if uid in self.by_session[session_id])


@dataclass(frozen=True)
class Habit:
    absent: float
    late: float
    leaves_early: float
    drops: float
    second_device: float


def habit(rng: random.Random) -> Habit:
    """A student's own tendencies: most attend reliably, a few rarely come or are often late."""
    return Habit(absent=rng.choice((0.02, 0.05, 0.05, 0.1, 0.3)), late=rng.choice((0.03, 0.08, 0.15, 0.3)),
                 leaves_early=rng.choice((0.03, 0.08, 0.2)), drops=rng.choice((0.1, 0.25, 0.5)),
                 second_device=rng.choice((0.0, 0.05, 0.2)))


def stay(rng: random.Random, h: Habit, start: datetime, ended_at: datetime) -> list[tuple[datetime, datetime, str]]:
    """One student's intervals in one class: (joined, left, reason), one to three of them."""
    if rng.random() < h.absent:
        return []
    if rng.random() < h.late:
        arrive = start + timedelta(seconds=rng.uniform(11 * 60, 35 * 60))
    else:
        arrive = start + timedelta(seconds=rng.uniform(-5 * 60, 8 * 60))
    if rng.random() < h.leaves_early:
        leave, reason = start + timedelta(seconds=rng.uniform(25 * 60, 50 * 60)), "left"
        leave = max(leave, arrive + timedelta(minutes=3))
    else:
        leave, reason = ended_at, "ended"
    if rng.random() < h.drops:  # the connection drops and comes back: within the grace period, or minutes later
        cut = arrive + (leave - arrive) * rng.uniform(0.1, 0.9)
        gap = timedelta(seconds=rng.uniform(2, 25) if rng.random() < 0.7 else rng.uniform(60, 900))
        back = min(cut + gap, leave - timedelta(seconds=1))
        return [(arrive, cut, "disconnected"), (back, leave, reason)]
    intervals = [(arrive, leave, reason)]
    if rng.random() < h.second_device:  # the phone joins too, for a while
        on = arrive + (leave - arrive) * rng.uniform(0.0, 0.6)
        intervals.append((on, min(on + timedelta(minutes=rng.uniform(3, 25)), leave), "left"))
    return intervals


def generate_intervals(course: Course, seed: int) -> None:
    """Every interval of every class, in memory (about 1.3 per student and class); the same seed gives the same rows
    on both backends."""
    rng = random.Random(seed)
    habits = {uid: habit(rng) for uid in course.student_ids + course.former_ids}
    next_id = 0
    for index, session_id in enumerate(course.session_ids):
        start, _end, ended_at = course.schedule[session_id]
        people: list[tuple[int, list[tuple[datetime, datetime, str]]]] = []
        teachers = [course.teacher_id] + ([course.co_teacher_id] if index % 4 == 0 else [])
        for uid in teachers:
            people.append((uid, [(start - timedelta(minutes=10), ended_at, "ended")]))
        attendees = course.student_ids + (course.former_ids if index < 20 else [])
        people += [(uid, stay(rng, habits[uid], start, ended_at)) for uid in attendees]
        per_user: dict[int, list[register.Interval]] = {}
        for uid, intervals in people:
            for joined, left, reason in intervals:
                next_id += 1
                course.intervals.append((next_id, session_id, uid, secrets.token_hex(8), joined, left, reason))
                per_user.setdefault(uid, []).append(register.Interval(joined.timestamp(), left.timestamp()))
        course.by_session[session_id] = per_user


async def seed_orm(factory: SessionFactory, course: Course) -> None:
    """Users, the circle, its members and the ended classes, through the ORM (so types are stored as the app stores
    them)."""
    async with factory() as db, db.begin():
        total = course.members + FORMER_STUDENTS
        users = [User(email=f"person{i}@bench.example", email_key=f"person{i}@bench.example", password_hash="!",
                      display_name=f"Person {i:04d}") for i in range(total)]
        db.add_all(users)
        await db.flush()
        circle = Circle(id=new_circle_id(), name="Benchmark course", description="One course, many classes",
                        kind=CircleKind.COURSE, visibility=Visibility.PRIVATE, join_policy=JoinPolicy.INVITE,
                        chat_history=ChatHistory.ALL, application_form=[], created_by=users[0].id)
        db.add(circle)
        await db.flush()
        roles = [CircleRole.OWNER, CircleRole.ADMIN, CircleRole.TEACHER, CircleRole.TEACHER]
        db.add_all(CircleMember(circle_id=circle.id, user_id=user.id,
                                role=roles[i] if i < len(roles) else CircleRole.MEMBER,
                                nickname=f"Nick {i}" if i % 5 == 0 else None,
                                joined_at=BASE_TIME - timedelta(days=7))  # enrolled before the first class
                   for i, user in enumerate(users[:course.members]))
        course.circle_id = circle.id
        course.owner_id, course.teacher_id, course.co_teacher_id = users[0].id, users[2].id, users[3].id
        course.student_ids = [user.id for user in users[4:course.members]]
        course.former_ids = [user.id for user in users[course.members:]]
        rng = random.Random(course.sessions)
        sessions = []
        for day in range(course.sessions):
            start = BASE_TIME + timedelta(days=day)
            ended_at = start + CLASS_LENGTH + timedelta(seconds=rng.uniform(0, 180))
            sessions.append(ClassSession(
                circle_id=circle.id, title=f"Lesson {day + 1}", description="", scheduled_start=start,
                scheduled_end=start + CLASS_LENGTH, state=ClassState.ENDED,
                settings=dict(classes_service.DEFAULT_SETTINGS), started_at=start, ended_at=ended_at,
                created_by=course.teacher_id))
        db.add_all(sessions)
        await db.flush()
        for day, session in enumerate(sessions):
            db.add(ClassTeacher(session_id=session.id, user_id=course.teacher_id))
            if day % 4 == 0:
                db.add(ClassTeacher(session_id=session.id, user_id=course.co_teacher_id))
            course.session_ids.append(session.id)
            course.schedule[session.id] = (session.scheduled_start, session.scheduled_end,
                                           session.ended_at or session.scheduled_end)


# --- backends -------------------------------------------------------------------------------------------------------


class Backend:
    name: str
    url: str
    schema: str | None = None

    async def create(self) -> None: ...
    async def bulk_load(self, rows: list[tuple[Any, ...]]) -> None: ...
    async def analyze(self) -> None: ...
    async def drop(self) -> None: ...

    def describe(self) -> str:
        return self.url if self.schema is None else f"{self.url} (schema {self.schema})"


def _sqlite_time(value: datetime | None) -> str | None:
    # What SQLAlchemy's SQLite DateTime stores: naive UTC text with microseconds.
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.directory = Path(tempfile.mkdtemp(prefix="bench_attendance_"))
        self.path = self.directory / "quanzi.db"
        self.url = sqlite_url(self.path)

    def _load(self, rows: list[tuple[Any, ...]]) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=OFF")  # bulk load only; the app's engine sets NORMAL again
            connection.execute("PRAGMA foreign_keys=ON")
            sql = (f"INSERT INTO attendance_intervals ({', '.join(INTERVAL_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(INTERVAL_COLUMNS))})")
            connection.execute("BEGIN")
            connection.executemany(sql, ((*r[:4], _sqlite_time(r[4]), _sqlite_time(r[5]), r[6]) for r in rows))
            connection.execute("COMMIT")
            connection.execute("ANALYZE")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()

    async def bulk_load(self, rows: list[tuple[Any, ...]]) -> None:
        await asyncio.to_thread(self._load, rows)

    async def drop(self) -> None:
        if self.keep:
            print(f"  kept {self.path}")
        else:
            shutil.rmtree(self.directory, ignore_errors=True)

    def describe(self) -> str:
        size = sum(p.stat().st_size for p in self.directory.iterdir()) if self.directory.exists() else 0
        return f"{self.path} ({size / 1e6:.1f} MB)"


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, url: str, keep: bool) -> None:
        self.url = url
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.schema = f"bench_attendance_{secrets.token_hex(4)}"
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
                  f"work_mem {await connection.fetchval('SHOW work_mem')}")
            await connection.execute(f'CREATE SCHEMA "{self.schema}"')
        finally:
            await connection.close()

    async def bulk_load(self, rows: list[tuple[Any, ...]]) -> None:
        async with self._connect() as connection:
            async with connection.transaction():
                await connection.copy_records_to_table("attendance_intervals", records=rows, columns=INTERVAL_COLUMNS,
                                                       schema_name=self.schema)
            await connection.execute(f"SELECT setval(pg_get_serial_sequence('{self.schema}.attendance_intervals', "
                                     "'id'), (SELECT coalesce(max(id), 1) FROM attendance_intervals))")
            for table in ("users", "circles", "circle_members", "class_sessions", "class_teachers",
                          "attendance_intervals"):
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


# --- checking a report against the pure rules -----------------------------------------------------------------------


def check_report(report: classes_service.Report, course: Course, session_id: int) -> None:
    span = classes_service.register_window(report.session, datetime.now(UTC))  # the class as it ran
    rule = classes_service.attendance_rule(report.session)
    intervals = course.by_session[session_id]
    lines = report.students + report.teachers + report.others
    on_register = {line.user_id for line in report.students}
    assert on_register == set(course.student_ids), f"{len(on_register)} on the register, not {len(course.student_ids)}"
    staff = {course.owner_id, course.teacher_id, course.co_teacher_id} | set(course.former_ids)
    assert {line.user_id for line in report.others} <= staff, "others are the circle's staff and former members"
    teachers = {line.user_id for line in report.teachers}
    assert course.teacher_id in teachers, "the teacher is not among the report's teachers"
    for line in lines:
        wanted = register.record(intervals.get(line.user_id, []), span.start, span.end, rule, GRACE, span.late_from)
        got = line.record
        assert got.status is wanted.status, f"user {line.user_id}: {got.status} != {wanted.status}"
        assert abs(got.attended_seconds - wanted.attended_seconds) < 0.01, (
            f"user {line.user_id}: attended {got.attended_seconds} != {wanted.attended_seconds}")
        if wanted.first_join is not None:
            assert got.first_join is not None and abs(got.first_join - wanted.first_join) < 0.01
            assert got.last_leave is not None and wanted.last_leave is not None
            assert abs(got.last_leave - wanted.last_leave) < 0.01


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
    seconds: list[float]
    cpu: list[float]

    def line(self) -> str:
        ms = [s * 1000 for s in self.seconds]
        p99 = percentile(ms, 99)
        verdict = "yes" if p99 <= GOAL_MS else "NO"
        return (f"{self.backend:<10} {self.path:<10} {len(ms):>7} {percentile(ms, 50):>8.2f} "
                f"{percentile(ms, 90):>8.2f} {p99:>8.2f} {max(ms):>8.2f}   {verdict:<10} "
                f"{percentile(self.cpu, 50) * 1000:>8.2f} {percentile(self.cpu, 99) * 1000:>8.2f}")


HEADER = (f"{'backend':<10} {'path':<10} {'reports':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}   "
          f"p99<=200ms {'cpu p50':>8} {'cpu p99':>8}")


def query_name(statement: str) -> str:
    s = " ".join(statement.split()).lower()
    if s.startswith("begin"):
        return "BEGIN"
    if " over (" in s:
        return "attended (merged intervals)"
    if "from class_sessions" in s:
        return "get_session"
    if "from circles" in s:
        return "open_circle (load_circle)"
    if "from class_teachers" in s:
        return "teachers"
    if "from users join circle_members" in s:
        return "roster"
    if "from users" in s:
        return "names (former members)"
    return s[:40]


def statement_shape(statement: str) -> str:
    shape = re.sub(r"\$\d+", "$n", " ".join(statement.split()))
    return re.sub(r"\((?:\?|\$n(?:::\w+)?)(?:, (?:\?|\$n(?:::\w+)?))*\)", "(...)", shape)


class StatementTimer:
    """Counts and times every statement sent through an engine (cursor execute, which includes fetching the rows)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.times: dict[str, list[float]] = defaultdict(list)
        self.count = 0
        self.samples: dict[str, tuple[str, Any]] = {}  # statement shape -> (statement, parameters)

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
        name = query_name(statement)
        self.times[name].append(time.perf_counter() - started)
        if name != "BEGIN":
            self.samples.setdefault(statement_shape(statement), (statement, parameters))


@dataclass
class Timings:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)  # per report (service path only)


async def measure_service(engine: AsyncEngine, factory: SessionFactory, course: Course, reports: int, warmup: int,
                          rng: random.Random) -> tuple[Timings, StatementTimer]:
    actor = policy.Actor(user_id=course.teacher_id, is_site_admin=False)
    timings = Timings()
    with StatementTimer(engine) as timer:
        for index in range(warmup + reports):
            session_id = rng.choice(course.session_ids)
            before = timer.count
            cpu, started = time.process_time(), time.perf_counter()
            async with factory() as db, db.begin():
                report = await classes_service.report(db, actor, session_id, datetime.now(UTC), GRACE)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            if index < warmup:
                check_report(report, course, session_id)
                timer.times.clear()  # the per-statement table is for measured reports only
            else:
                timings.wall.append(elapsed)
                timings.cpu.append(cpu)
                timings.statements.append(timer.count - before)
    return timings, timer


async def measure_http(backend: Backend, course: Course, requests: int, warmup: int,
                       rng: random.Random) -> dict[str, Timings]:
    with tempfile.TemporaryDirectory(prefix="bench_attendance_http_") as data_dir:
        settings = Settings(secret_key=secrets.token_urlsafe(48), data_dir=Path(data_dir),
                            database_url=backend.url, database_schema=backend.schema,
                            password_hash_time_cost=1, password_hash_memory_kib=1024, class_grace_seconds=GRACE)
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
                email, password = f"admin-{secrets.token_hex(4)}@bench.example", secrets.token_urlsafe(16)
                async with client.post(server.make_url("/api/auth/register"),
                                       json={"email": email, "password": password, "display_name": "Admin"}) as r:
                    assert r.status == 201, await r.text()
                    user_id = (await r.json())["user"]["id"]
                async with client.post(server.make_url("/api/auth/token"),
                                       json={"email": email, "password": password}) as r:
                    assert r.status == 201, await r.text()
                    token = (await r.json())["token"]
                engine = make_engine(backend.url, backend.schema)
                try:
                    async with make_session_factory(engine)() as db, db.begin():
                        db.add(CircleMember(circle_id=course.circle_id, user_id=user_id, role=CircleRole.ADMIN))
                finally:
                    await engine.dispose()
                headers = {"Authorization": f"Bearer {token}"}
                result = {path: Timings() for path in PATHS[1:]}
                for path in PATHS[1:]:
                    suffix = "/attendance.csv" if path.endswith("csv") else "/attendance"
                    for index in range(warmup + requests):
                        session_id = rng.choice(course.session_ids)
                        cpu, started = time.process_time(), time.perf_counter()
                        async with client.get(server.make_url(f"/api/classes/{session_id}{suffix}"),
                                              headers=headers) as response:
                            body = await response.read()
                        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
                        assert response.status == 200, body[:500]
                        if index < warmup:  # the register holds every student, whether they came or not
                            if suffix.endswith("csv"):
                                rows = list(csv.DictReader(io.StringIO(body.decode())))
                                students = [r for r in rows if r["class_role"] == "student"]
                            else:
                                students = json.loads(body)["students"]
                            expected = len(course.student_ids)
                            assert len(students) == expected, f"{len(students)} students, expected {expected}"
                        else:
                            result[path].wall.append(elapsed)
                            result[path].cpu.append(cpu)
                return result
        finally:
            await server.close()


async def explain(engine: AsyncEngine, samples: list[tuple[str, Any]]) -> None:
    """The plan of each distinct statement a report sent, with the parameters of one real report."""
    sqlite = engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
    async with engine.connect() as connection:
        for statement, parameters in samples:
            rows = (await connection.exec_driver_sql(prefix + statement, tuple(parameters))).all()
            print(f"\n  -- {query_name(statement)}\n  {' '.join(statement.split())}\n  params {tuple(parameters)}")
            for row in rows:
                print("    " + (str(row[-1]) if sqlite else str(row[0])))
        await connection.rollback()


# --- one backend, start to finish -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    rows: list[Row]
    load: dict[str, float]
    statements: list[int]


async def run_backend(backend: Backend, args: argparse.Namespace) -> Outcome:
    rng = random.Random(args.seed)
    course = Course(students=args.students, sessions=args.sessions)
    load: dict[str, float] = {}
    rows: list[Row] = []
    label = backend.name
    print(f"\n=== {label}: {args.students:,} students, {args.sessions:,} ended classes ===")
    try:
        started = time.perf_counter()
        await backend.create()
        engine = make_engine(backend.url, backend.schema)
        try:
            await upgrade(engine)
            factory = make_session_factory(engine)
            await seed_orm(factory, course)
            generate_intervals(course, args.seed)
            step = time.perf_counter()
            await backend.bulk_load(course.intervals)
            load["bulk load + analyze"] = time.perf_counter() - step
            load["total build"] = time.perf_counter() - started
            print(f"  loaded {len(course.intervals):,} intervals "
                  f"({len(course.intervals) / (args.sessions * (args.students + 1)):.2f} per person and class) "
                  f"in {load['bulk load + analyze']:.1f} s; database {backend.describe()}")
            await engine.dispose()  # a fresh pool after the bulk load, as a freshly started server would have

            print(f"  load average before measuring: {loadavg()}")
            reader = make_session_factory(engine, read_only=True)  # as GET handlers read
            step = time.perf_counter()
            service, timer = await measure_service(engine, reader, course, args.reports, args.warmup, rng)
            load["measure service"] = time.perf_counter() - step
            rows.append(Row(label, "service", service.wall, service.cpu))
            print(HEADER)
            print(rows[-1].line())
            if args.http_requests:
                step = time.perf_counter()
                http = await measure_http(backend, course, args.http_requests, max(5, args.warmup // 4), rng)
                load["measure http"] = time.perf_counter() - step
                for path, timings in http.items():
                    rows.append(Row(label, path, timings.wall, timings.cpu))
                    print(rows[-1].line())
            print(f"  load average after measuring: {loadavg()}")

            counts = sorted(set(service.statements))
            print(f"\n  SQL statements per report: {', '.join(map(str, counts))} "
                  f"(over {len(service.statements)} reports; COMMIT, and on PostgreSQL BEGIN too, go to the driver "
                  "outside the statement events)")
            print(f"  per-statement time, ms (median / p99 over {args.reports} reports):")
            for name, values in sorted(timer.times.items(), key=lambda item: -statistics.median(item[1])):
                print(f"    {name:<30} {statistics.median(values) * 1000:>8.3f} / {percentile(values, 99) * 1000:>8.3f}"
                      f"   ({len(values) / args.reports:.2f} per report)")
            total = sum(statistics.median(v) * len(v) / args.reports for v in timer.times.values()) * 1000
            print(f"    {'sum (median x count)':<30} {total:>8.3f}")
            if args.explain:
                await explain(engine, list(timer.samples.values()))
            return Outcome(rows, load, counts)
        finally:
            await engine.dispose()
    finally:
        await backend.drop()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # so a plain `kill` still runs the clean-up (drop the schema, remove the file)


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=100, help="ended classes in the circle")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--reports", type=int, default=500, help="measured reports per backend on the service path")
    parser.add_argument("--warmup", type=int, default=20, help="reports before measuring (checked line by line)")
    parser.add_argument("--http-requests", type=int, default=200,
                        help="requests per route (JSON, CSV) through HTTP; 0 skips it")
    parser.add_argument("--explain", action="store_true", help="print the plan of each statement a report sends")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--keep", action="store_true", help="keep the database (SQLite file / PostgreSQL schema)")
    args = parser.parse_args()
    if args.students < 1 or args.sessions < 1 or args.reports < 1:
        parser.error("--students, --sessions and --reports must be at least 1")

    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {loadavg()}")
    backends: list[Callable[[], Backend]] = []
    if args.backend in ("sqlite", "both"):
        backends.append(lambda: SQLiteBackend(args.keep))
    if args.backend in ("postgres", "both"):
        backends.append(lambda: PostgresBackend(args.postgres_url, args.keep))
    outcomes = [asyncio.run(run_backend(make(), args)) for make in backends]

    print(f"\n=== results (attendance report of one class: {args.students + 4} members, one transaction each) ===")
    print(HEADER)
    for outcome in outcomes:
        for row in outcome.rows:
            print(row.line())
    print()
    for outcome in outcomes:
        backend = outcome.rows[0].backend if outcome.rows else "?"
        print(f"{backend:<10} statements per report {', '.join(map(str, outcome.statements))}; "
              + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in outcome.load.items()))


if __name__ == "__main__":
    main()
