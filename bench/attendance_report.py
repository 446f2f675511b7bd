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
import random
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: server, and bench.common

from sqlalchemy.ext.asyncio import AsyncEngine

from bench import common
from bench.common import Outcome, Row, loadavg, percentile, sqlite_time
from rooms import attendance as register
from server import policy
from server.db.circles import new_circle_id
from server.db.engine import SessionFactory, make_session_factory
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


class SQLiteBackend(common.SQLiteBackend[list[tuple[Any, ...]]]):
    def __init__(self, keep: bool) -> None:
        super().__init__("bench_attendance", keep, size_digits=1)

    def _load(self, rows: list[tuple[Any, ...]]) -> None:
        with self.bulk_connection() as connection:
            sql = (f"INSERT INTO attendance_intervals ({', '.join(INTERVAL_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(INTERVAL_COLUMNS))})")
            connection.execute("BEGIN")
            connection.executemany(sql, ((*r[:4], sqlite_time(r[4]), sqlite_time(r[5]), r[6]) for r in rows))
            connection.execute("COMMIT")

    async def bulk_load(self, rows: list[tuple[Any, ...]]) -> None:
        await asyncio.to_thread(self._load, rows)


class PostgresBackend(common.PostgresBackend[list[tuple[Any, ...]]]):
    def __init__(self, url: str, keep: bool) -> None:
        super().__init__(url, keep, prefix="bench_attendance", setting="work_mem",
                         tables=("users", "circles", "circle_members", "class_sessions", "class_teachers",
                                 "attendance_intervals"))

    async def bulk_load(self, rows: list[tuple[Any, ...]]) -> None:
        async with self.connect() as connection:
            async with connection.transaction():
                await connection.copy_records_to_table("attendance_intervals", records=rows, columns=INTERVAL_COLUMNS,
                                                       schema_name=self.schema)
            await self.move_sequences(connection, ("attendance_intervals",))  # ids were given explicitly


Backend = common.Backend[list[tuple[Any, ...]]]


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


TABLE = common.Table(labels=(("backend", 10), ("path", 10)), count=("reports", 7), goal_ms=GOAL_MS)
HEADER = TABLE.header()


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


@dataclass
class Timings:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)  # per report (service path only)


async def measure_service(engine: AsyncEngine, factory: SessionFactory, course: Course, reports: int, warmup: int,
                          rng: random.Random) -> tuple[Timings, common.StatementTimer]:
    actor = policy.Actor(user_id=course.teacher_id, is_site_admin=False)
    timings = Timings()
    with common.StatementTimer(engine, query_name) as timer:
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
    async with common.http_client(backend, course.circle_id, CircleRole.ADMIN, "Admin", "bench_attendance",
                                  class_grace_seconds=GRACE) as http:
        result = {path: Timings() for path in PATHS[1:]}
        for path in PATHS[1:]:
            suffix = "/attendance.csv" if path.endswith("csv") else "/attendance"
            for index in range(warmup + requests):
                session_id = rng.choice(course.session_ids)
                cpu, started = time.process_time(), time.perf_counter()
                async with http.client.get(http.server.make_url(f"/api/classes/{session_id}{suffix}"),
                                           headers=http.headers) as response:
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


def explain_title(sample: common.Sample) -> str:
    return query_name(sample.statement)


# --- one backend, start to finish -----------------------------------------------------------------------------------


async def run_backend(backend: Backend, args: argparse.Namespace) -> Outcome:
    rng = random.Random(args.seed)
    course = Course(students=args.students, sessions=args.sessions)
    load: dict[str, float] = {}
    rows: list[Row] = []
    label = backend.name
    print(f"\n=== {label}: {args.students:,} students, {args.sessions:,} ended classes ===")
    started = time.perf_counter()
    async with common.migrated(backend) as engine:
        factory = make_session_factory(engine)
        await seed_orm(factory, course)
        generate_intervals(course, args.seed)
        step = time.perf_counter()
        await backend.bulk_load(course.intervals)
        await backend.analyze()
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
        rows.append(Row(TABLE, (label, "service"), service.wall, service.cpu))
        print(HEADER)
        print(rows[-1].line())
        if args.http_requests:
            step = time.perf_counter()
            http = await measure_http(backend, course, args.http_requests, max(5, args.warmup // 4), rng)
            load["measure http"] = time.perf_counter() - step
            for path, timings in http.items():
                rows.append(Row(TABLE, (label, path), timings.wall, timings.cpu))
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
            await common.explain(engine, timer.samples.values(), explain_title)
        return Outcome(rows, load, note=f"statements per report {', '.join(map(str, counts))}; ")


def main() -> None:
    common.drop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=100, help="ended classes in the circle")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--reports", type=int, default=500, help="measured reports per backend on the service path")
    parser.add_argument("--warmup", type=int, default=20, help="reports before measuring (checked line by line)")
    parser.add_argument("--http-requests", type=int, default=200,
                        help="requests per route (JSON, CSV) through HTTP; 0 skips it")
    parser.add_argument("--explain", action="store_true", help="print the plan of each statement a report sends")
    common.add_database_arguments(parser, seed=20261201)
    args = parser.parse_args()
    if args.students < 1 or args.sessions < 1 or args.reports < 1:
        parser.error("--students, --sessions and --reports must be at least 1")

    print(common.machine())
    outcomes = common.run_each(args.backend, lambda: SQLiteBackend(args.keep),
                               lambda: PostgresBackend(args.postgres_url, args.keep),
                               lambda backend: run_backend(backend, args))
    common.print_results(f"attendance report of one class: {args.students + 4} members, one transaction each",
                         TABLE, outcomes)


if __name__ == "__main__":
    main()
