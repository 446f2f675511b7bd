"""The attendance register computed in the database: a student's intervals merged (gaps up to the grace period
closed), clipped to the schedule and summed, for every student of a session in one statement.

The merge is the "gaps and islands" pattern: ordered by arrival, an interval starts a new island when it begins more
than ``grace`` seconds after every earlier interval of that student has ended. Times are compared as epoch seconds,
which SQLite and PostgreSQL spell differently (``epoch`` below).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, case, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from server.db.models import (
    AttendanceInterval,
    CircleMember,
    CircleRole,
    ClassSession,
    ClassState,
    MemberType,
    User,
)


class epoch(FunctionElement[float]):  # reads as a SQL function
    """Seconds since 1970 of a timestamp column, as a float."""

    type = Float()
    inherit_cache = True


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch, "postgresql")
def _epoch_postgresql(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@dataclass(frozen=True, slots=True)
class Attended:
    """A student's merged intervals, summarised: what ``rooms.attendance.summarise`` needs."""

    session_id: int
    user_id: int
    first_join: float
    last_leave: float
    first_inside: float | None  # first moment present inside the schedule
    attended: float  # seconds inside the schedule


def _greater(a: ColumnElement[float], b: ColumnElement[float]) -> ColumnElement[float]:
    return case((a > b, a), else_=b)


def _lesser(a: ColumnElement[float], b: ColumnElement[float]) -> ColumnElement[float]:
    return case((a < b, a), else_=b)


async def attended(
    db: AsyncSession, windows: dict[int, tuple[float, float]], now: datetime, grace: float
) -> list[Attended]:
    """One row per (session, person who was there), for each session with the window (epoch seconds, start and
    end) its register measures. Open intervals count up to ``now``."""
    if not windows:
        return []
    session_ids = list(windows)
    iv = AttendanceInterval
    base = (
        select(iv.session_id, iv.user_id, epoch(iv.joined_at).label("s"),
               epoch(func.coalesce(iv.left_at, literal(now, iv.left_at.type))).label("e"))
        .where(iv.session_id.in_(session_ids))
        .cte("iv")
    )
    ended_before = func.max(base.c.e).over(partition_by=(base.c.session_id, base.c.user_id),
                                           order_by=(base.c.s, base.c.e), rows=(None, -1))
    marked = select(base.c.session_id, base.c.user_id, base.c.s, base.c.e,
                    case((base.c.s - ended_before <= grace, 0), else_=1).label("fresh")).cte("marked")
    island = func.sum(marked.c.fresh).over(partition_by=(marked.c.session_id, marked.c.user_id),
                                           order_by=(marked.c.s, marked.c.e), rows=(None, 0))
    numbered = select(marked.c.session_id, marked.c.user_id, marked.c.s, marked.c.e,
                      island.label("island")).cte("numbered")
    merged = (
        select(numbered.c.session_id, numbered.c.user_id, func.min(numbered.c.s).label("s"),
               func.max(numbered.c.e).label("e"))
        .group_by(numbered.c.session_id, numbered.c.user_id, numbered.c.island)
        .cte("merged")
    )
    # One row per session (SQLite has no VALUES with column names): the window each session's register measures.
    each = [select(literal(sid, Integer).label("session_id"), literal(float(a), Float).label("w_start"),
                   literal(float(b), Float).label("w_end")) for sid, (a, b) in windows.items()]
    bounds = (each[0] if len(each) == 1 else union_all(*each)).cte("bounds")
    clipped = (
        select(merged.c.session_id, merged.c.user_id, merged.c.s, merged.c.e,
               _greater(merged.c.s, bounds.c.w_start).label("cs"), _lesser(merged.c.e, bounds.c.w_end).label("ce"))
        .join(bounds, bounds.c.session_id == merged.c.session_id)
        .cte("clipped")
    )
    inside = clipped.c.ce > clipped.c.cs
    query = (
        select(clipped.c.session_id, clipped.c.user_id, func.min(clipped.c.s), func.max(clipped.c.e),
               func.min(case((inside, clipped.c.cs), else_=None)),
               func.sum(case((inside, clipped.c.ce - clipped.c.cs), else_=0.0)))
        .group_by(clipped.c.session_id, clipped.c.user_id)
    )
    rows = await db.execute(query)
    return [Attended(int(sid), int(uid), float(first), float(last), None if inner is None else float(inner),
                     float(total or 0.0))
            for sid, uid, first, last, inner, total in rows]


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    name: str  # the circle nickname when set, else the display name
    role: CircleRole
    member_type: MemberType
    joined_at: datetime


async def roster(db: AsyncSession, circle_id: str) -> list[Member]:
    """Every member of the circle, by name."""
    rows = await db.execute(
        select(User.id, User.display_name, CircleMember.nickname, CircleMember.role, CircleMember.member_type,
               CircleMember.joined_at)
        .join(CircleMember, CircleMember.user_id == User.id)
        .where(CircleMember.circle_id == circle_id).order_by(User.display_name, User.id)
    )
    return [Member(int(uid), nickname or name, role, member_type, joined_at)
            for uid, name, nickname, role, member_type, joined_at in rows]


async def names(db: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = await db.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))
    return {int(uid): name for uid, name in rows}


async def ended_sessions(db: AsyncSession, circle_id: str) -> list[ClassSession]:
    rows = await db.execute(select(ClassSession).where(ClassSession.circle_id == circle_id,
                                                       ClassSession.state == ClassState.ENDED)
                            .order_by(ClassSession.scheduled_start))
    return list(rows.scalars())
