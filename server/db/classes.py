"""Queries over live classes: sessions and their teachers, attendance intervals, polls and answers, class chat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    AttendanceInterval,
    CircleMember,
    ClassMessage,
    ClassPoll,
    ClassSession,
    ClassState,
    ClassTeacher,
    PollAnswer,
)

# --- sessions ---


async def add_session(db: AsyncSession, teacher_ids: list[int], **fields: Any) -> ClassSession:
    session = ClassSession(**fields)
    db.add(session)
    await db.flush()
    db.add_all(ClassTeacher(session_id=session.id, user_id=uid) for uid in teacher_ids)
    await db.flush()
    return session


async def get_session(db: AsyncSession, session_id: int, *, lock: bool = False) -> ClassSession | None:
    query = select(ClassSession).where(ClassSession.id == session_id)
    if lock:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


async def teachers(db: AsyncSession, session_ids: list[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {sid: [] for sid in session_ids}
    if not session_ids:
        return found
    rows = await db.execute(select(ClassTeacher.session_id, ClassTeacher.user_id)
                            .where(ClassTeacher.session_id.in_(session_ids)).order_by(ClassTeacher.user_id))
    for session_id, user_id in rows:
        found[session_id].append(user_id)
    return found


async def set_teachers(db: AsyncSession, session_id: int, teacher_ids: list[int]) -> None:
    await db.execute(delete(ClassTeacher).where(ClassTeacher.session_id == session_id))
    db.add_all(ClassTeacher(session_id=session_id, user_id=uid) for uid in teacher_ids)
    await db.flush()


async def list_sessions(
    db: AsyncSession, circle_id: str, *, upcoming: bool, now: datetime, cursor: tuple[datetime, int] | None,
    limit: int,
) -> list[ClassSession]:
    """Upcoming (scheduled or live, soonest first) or past (ended or cancelled, latest first), by keyset."""
    query = select(ClassSession).where(ClassSession.circle_id == circle_id)
    if upcoming:
        query = query.where(ClassSession.state.in_([ClassState.SCHEDULED, ClassState.LIVE]))
        if cursor is not None:
            query = query.where((ClassSession.scheduled_start > cursor[0]) | (
                (ClassSession.scheduled_start == cursor[0]) & (ClassSession.id > cursor[1])))
        query = query.order_by(ClassSession.scheduled_start, ClassSession.id)
    else:
        query = query.where(ClassSession.state.in_([ClassState.ENDED, ClassState.CANCELLED]))
        if cursor is not None:
            query = query.where((ClassSession.scheduled_start < cursor[0]) | (
                (ClassSession.scheduled_start == cursor[0]) & (ClassSession.id < cursor[1])))
        query = query.order_by(ClassSession.scheduled_start.desc(), ClassSession.id.desc())
    return list((await db.execute(query.limit(limit))).scalars())


async def member_types(db: AsyncSession, circle_id: str, user_ids: list[int]) -> dict[int, CircleMember]:
    if not user_ids:
        return {}
    rows = await db.execute(select(CircleMember).where(CircleMember.circle_id == circle_id,
                                                       CircleMember.user_id.in_(user_ids)))
    return {m.user_id: m for m in rows.scalars()}


# --- attendance intervals ---


async def open_interval(db: AsyncSession, session_id: int, user_id: int, connection: str, now: datetime) -> None:
    db.add(AttendanceInterval(session_id=session_id, user_id=user_id, connection=connection, joined_at=now))
    await db.flush()


async def close_intervals(
    db: AsyncSession, session_id: int, now: datetime, reason: str, *, user_id: int | None = None,
    connection: str | None = None,
) -> int:
    """Close the open intervals of a session (of one user, of one connection); returns how many."""
    query = update(AttendanceInterval).where(AttendanceInterval.session_id == session_id,
                                             AttendanceInterval.left_at.is_(None))
    if user_id is not None:
        query = query.where(AttendanceInterval.user_id == user_id)
    if connection is not None:
        query = query.where(AttendanceInterval.connection == connection)
    result = await db.execute(query.values(left_at=now, reason=reason))
    return int(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


# --- polls ---


async def add_poll(db: AsyncSession, **fields: Any) -> ClassPoll:
    poll = ClassPoll(**fields)
    db.add(poll)
    await db.flush()
    return poll


async def get_poll(db: AsyncSession, session_id: int, poll_id: int, *, lock: bool = False) -> ClassPoll | None:
    query = select(ClassPoll).where(ClassPoll.session_id == session_id, ClassPoll.id == poll_id)
    if lock:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


async def polls(db: AsyncSession, session_id: int, *, state: str | None = None) -> list[ClassPoll]:
    query = select(ClassPoll).where(ClassPoll.session_id == session_id)
    if state is not None:
        query = query.where(ClassPoll.state == state)
    return list((await db.execute(query.order_by(ClassPoll.id))).scalars())


async def answers(db: AsyncSession, poll_ids: list[int]) -> dict[int, dict[int, list[int]]]:
    """poll id -> user id -> chosen option indexes."""
    found: dict[int, dict[int, list[int]]] = {pid: {} for pid in poll_ids}
    if not poll_ids:
        return found
    rows = await db.execute(select(PollAnswer.poll_id, PollAnswer.user_id, PollAnswer.choice)
                            .where(PollAnswer.poll_id.in_(poll_ids)))
    for poll_id, user_id, choice in rows:
        found[poll_id][user_id] = list(choice)
    return found


async def has_answered(db: AsyncSession, poll_id: int, user_id: int) -> bool:
    found = await db.execute(select(PollAnswer.user_id).where(PollAnswer.poll_id == poll_id,
                                                              PollAnswer.user_id == user_id))
    return found.first() is not None


async def add_answer(db: AsyncSession, poll_id: int, user_id: int, choice: list[int], now: datetime) -> None:
    db.add(PollAnswer(poll_id=poll_id, user_id=user_id, choice=choice, answered_at=now))
    await db.flush()


# --- class chat ---


async def next_chat_seq(db: AsyncSession, session_id: int) -> int:
    """As for circle chat: the session row stays locked until commit, so numbers are gapless."""
    result = await db.execute(
        update(ClassSession).where(ClassSession.id == session_id)
        .values(chat_last_seq=ClassSession.chat_last_seq + 1).returning(ClassSession.chat_last_seq)
    )
    return int(result.scalar_one())


async def message_by_client_id(
    db: AsyncSession, session_id: int, author_id: int, client_id: str
) -> ClassMessage | None:
    found = await db.execute(select(ClassMessage).where(
        ClassMessage.session_id == session_id, ClassMessage.author_id == author_id,
        ClassMessage.client_id == client_id))
    return found.scalar_one_or_none()


async def add_message(
    db: AsyncSession, *, session_id: int, seq: int, author_id: int, client_id: str, body: str, now: datetime
) -> ClassMessage:
    message = ClassMessage(session_id=session_id, seq=seq, author_id=author_id, client_id=client_id, body=body,
                           created_at=now)
    db.add(message)
    await db.flush()
    return message


async def messages_after(db: AsyncSession, session_id: int, after_seq: int, limit: int) -> list[ClassMessage]:
    rows = await db.execute(select(ClassMessage).where(ClassMessage.session_id == session_id,
                                                       ClassMessage.seq > after_seq)
                            .order_by(ClassMessage.seq).limit(limit))
    return list(rows.scalars())
