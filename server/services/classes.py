"""Live classes in the database: scheduling, the lifecycle (scheduled → live → ended, or cancelled), attendance
intervals, polls, the in-class chat, the attendance report and the recap post.

The live room itself (who is in, hands, permissions) is ``rooms.classroom.Room`` behind the hub's state store; these
functions keep what must outlive it. The hub calls them inside its transaction and tells people after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rooms import attendance as register
from rooms import chat as chat_rules
from rooms.classroom import Media, Phase, Room, RoomRole, Settings
from rooms.errors import Conflict, InvalidInput, NotFound
from rooms.polls import Poll, PollResults, PollState
from server import policy
from server.db import attendance as attendance_db
from server.db import circles as circles_db
from server.db import classes as classes_db
from server.db import feed as feed_db
from server.db.models import ClassMessage, ClassPoll, ClassSession, ClassState
from server.services.circles import MAX_SECTIONS, CircleContext, open_circle

Action = policy.ClassAction
RECAP_SECTION = "Classes"
DEFAULT_SETTINGS: dict[str, Any] = {
    "lobby": False, "mute_on_entry": False, "students_may": ["camera", "microphone"], "max_participants": 300,
    "late_after_minutes": 10, "present_percent": 85,
}


@dataclass(frozen=True, slots=True)
class ClassContext:
    """A class session as one person stands towards it."""

    session: ClassSession
    circle: CircleContext
    teachers: list[int]
    actor: policy.Actor

    @property
    def teaches(self) -> bool:
        return self.actor.user_id in self.teachers

    def check(self, action: policy.ClassAction) -> None:
        policy.check_class(self.actor, self.circle.facts, self.circle.standing, action, teaches=self.teaches)


async def open_class(
    db: AsyncSession, actor: policy.Actor, class_id: int, action: policy.ClassAction, *, lock: bool = False
) -> ClassContext:
    session = await classes_db.get_session(db, class_id, lock=lock)
    if session is None:
        raise NotFound("no such class")
    try:
        circle = await open_circle(db, actor, session.circle_id, policy.CircleAction.VIEW)
    except NotFound:
        raise NotFound("no such class") from None  # a private circle's classes do not exist for strangers
    teachers = (await classes_db.teachers(db, [class_id]))[class_id]
    context = ClassContext(session, circle, teachers, actor)
    context.check(action)
    return context


def room_settings(session: ClassSession) -> Settings:
    s = {**DEFAULT_SETTINGS, **session.settings}
    return Settings(lobby=bool(s["lobby"]), mute_on_entry=bool(s["mute_on_entry"]),
                    students_may=frozenset(Media(m) for m in s["students_may"]),
                    max_participants=int(s["max_participants"]))


def attendance_rule(session: ClassSession) -> register.Rule:
    s = {**DEFAULT_SETTINGS, **session.settings}
    return register.Rule(present_share=int(s["present_percent"]) / 100, late_after=int(s["late_after_minutes"]) * 60.0)


def new_room(session: ClassSession) -> Room:
    """The room as the database knows it, for a store that holds none (first arrival, or a store that restarted)."""
    phase = {ClassState.SCHEDULED: Phase.SCHEDULED, ClassState.LIVE: Phase.LIVE}.get(session.state, Phase.ENDED)
    return Room(settings=room_settings(session), phase=phase)


async def room_role(db: AsyncSession, context: ClassContext) -> RoomRole:
    member = await circles_db.get_member(db, context.session.circle_id, context.actor.user_id)
    return policy.class_room_role(context.actor, context.circle.standing, teaches=context.teaches,
                                  member_type=member.member_type if member else None)


def require_open(session: ClassSession) -> None:
    if session.state is ClassState.ENDED:
        raise Conflict("this class has ended", code="class_ended")
    if session.state is ClassState.CANCELLED:
        raise Conflict("this class was cancelled", code="class_cancelled")


# --- scheduling ---


async def _check_teachers(db: AsyncSession, circle_id: str, teacher_ids: list[int]) -> None:
    members = await classes_db.member_types(db, circle_id, teacher_ids)
    for uid in teacher_ids:
        member = members.get(uid)
        if member is None or not policy.may_teach(policy.Standing(role=member.role)):
            raise InvalidInput("a class's teachers are the circle's teachers, admins or owner", code="not_a_teacher",
                               details=[{"field": "teacher_ids", "problem": f"user {uid} cannot teach here"}])


def _check_times(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InvalidInput("a class must end after it starts", code="invalid_schedule",
                           details=[{"field": "ends_at", "problem": "must be after starts_at"}])
    if (end - start).total_seconds() > 12 * 3600:
        raise InvalidInput("a class lasts at most 12 hours", code="invalid_schedule",
                           details=[{"field": "ends_at", "problem": "at most 12 hours after starts_at"}])


async def schedule(
    db: AsyncSession, actor: policy.Actor, circle_id: str, *, title: str, description: str, starts_at: datetime,
    ends_at: datetime, teacher_ids: list[int] | None, settings: dict[str, Any],
) -> ClassContext:
    circle = await open_circle(db, actor, circle_id, policy.CircleAction.CHAT)
    policy.check_class(actor, circle.facts, circle.standing, Action.SCHEDULE, teaches=False)
    if not teacher_ids and not policy.may_teach(circle.standing):
        raise InvalidInput("name the class's teachers: you do not teach in this circle", code="not_a_teacher",
                           details=[{"field": "teacher_ids", "problem": "required when you do not teach here"}])
    teachers = sorted(set(teacher_ids if teacher_ids else [actor.user_id]))
    await _check_teachers(db, circle_id, teachers)
    _check_times(starts_at, ends_at)
    session = await classes_db.add_session(
        db, teachers, circle_id=circle_id, title=title, description=description, scheduled_start=starts_at,
        scheduled_end=ends_at, settings={**DEFAULT_SETTINGS, **settings}, created_by=actor.user_id)
    return ClassContext(session, circle, teachers, actor)


async def update(db: AsyncSession, actor: policy.Actor, class_id: int, changes: dict[str, Any]) -> ClassContext:
    context = await open_class(db, actor, class_id, Action.SCHEDULE, lock=True)
    session = context.session
    if session.state is not ClassState.SCHEDULED:
        raise Conflict(f"a {session.state.value} class cannot be rescheduled", code="not_scheduled")
    teachers = context.teachers
    if "teacher_ids" in changes:
        teachers = sorted(set(changes.pop("teacher_ids") or [actor.user_id]))
        await _check_teachers(db, session.circle_id, teachers)
        await classes_db.set_teachers(db, class_id, teachers)
    start = changes.pop("starts_at", session.scheduled_start)
    end = changes.pop("ends_at", session.scheduled_end)
    _check_times(start, end)
    session.scheduled_start, session.scheduled_end = start, end
    if "settings" in changes:
        session.settings = {**session.settings, **changes.pop("settings")}
    for name, value in changes.items():
        setattr(session, name, value)
    await db.flush()
    return ClassContext(session, context.circle, teachers, actor)


async def cancel(db: AsyncSession, actor: policy.Actor, class_id: int) -> ClassContext:
    context = await open_class(db, actor, class_id, Action.SCHEDULE, lock=True)
    if context.session.state is not ClassState.SCHEDULED:
        raise Conflict(f"a {context.session.state.value} class cannot be cancelled", code="not_scheduled")
    context.session.state = ClassState.CANCELLED
    await circles_db.audit(db, context.session.circle_id, actor.user_id, "cancel_class", target_id=class_id)
    await db.flush()
    return context


async def listing(
    db: AsyncSession, actor: policy.Actor, circle_id: str, *, upcoming: bool, cursor: tuple[datetime, int] | None,
    limit: int, now: datetime,
) -> tuple[list[ClassSession], dict[int, list[int]]]:
    circle = await open_circle(db, actor, circle_id, policy.CircleAction.CHAT)
    policy.check_class(actor, circle.facts, circle.standing, Action.VIEW, teaches=False)
    sessions = await classes_db.list_sessions(db, circle_id, upcoming=upcoming, now=now, cursor=cursor, limit=limit)
    return sessions, await classes_db.teachers(db, [s.id for s in sessions])


# --- the lifecycle ---


async def start(db: AsyncSession, context: ClassContext, now: datetime) -> None:
    """Mark the class live; the caller has the session row locked and has asked the room whether this is allowed."""
    if context.session.state is not ClassState.SCHEDULED:
        require_open(context.session)
        raise Conflict("this class is live already", code="not_scheduled")
    context.session.state, context.session.started_at = ClassState.LIVE, now
    await db.flush()


@dataclass(frozen=True, slots=True)
class Ended:
    recap_post_id: int
    report: Report
    polls: list[PollView]
    closed_now: list[int]  # polls that were open until the end


async def end(db: AsyncSession, context: ClassContext, now: datetime, grace: float) -> Ended:
    """Close every open interval and poll, and post the recap in the circle."""
    session = context.session
    if session.state is not ClassState.LIVE:
        require_open(session)
        raise Conflict("this class has not started", code="class_not_live")
    session.state, session.ended_at = ClassState.ENDED, now
    await classes_db.close_intervals(db, session.id, now, "ended")
    closed_now = []
    for poll in await classes_db.polls(db, session.id, state=PollState.OPEN.value):
        poll.state, poll.closed_at = PollState.CLOSED.value, now
        closed_now.append(poll.id)
    await db.flush()
    report = await _report(db, context, now, grace)
    polls = await poll_views(db, session.id)
    post = await _post_recap(db, context, report, [p for p in polls if p.poll.state is PollState.CLOSED])
    session.recap_post_id = post
    await db.flush()
    return Ended(post, report, polls, closed_now)


async def _recap_section(db: AsyncSession, circle_id: str) -> int | None:
    sections = await circles_db.list_sections(db, circle_id)
    for section in sections:
        if section.name.lower() == RECAP_SECTION.lower():
            return section.id
    if len(sections) >= MAX_SECTIONS:
        return None  # the circle chose its five sections: the recap goes to the feed outside any section
    position = max((s.position for s in sections), default=-1) + 1
    return (await circles_db.add_section(db, circle_id, RECAP_SECTION, position)).id


def _minutes(seconds: float) -> str:
    return f"{round(seconds / 60)} min"


async def _post_recap(db: AsyncSession, context: ClassContext, report: Report, polls: list[PollView]) -> int:
    session = context.session
    started = session.started_at or session.scheduled_start
    ended = session.ended_at or started
    counts = report.counts
    lines = [
        f"Duration: {_minutes((ended - started).total_seconds())} "
        f"({started:%Y-%m-%d %H:%M} to {ended:%H:%M} UTC; scheduled {_minutes(report.scheduled_seconds)})",
        f"Attended: {report.attended} of {len(report.students)} students "
        f"(present {counts['present']}, late {counts['late']}, left early {counts['left_early']}); "
        f"absent: {counts['absent']}",
    ]
    for view in polls:
        results = view.results
        parts = [f"{option}: {n}" for option, n in zip(view.poll.options, results.counts, strict=True)]
        line = f'Poll "{view.poll.question}": {"; ".join(parts)} ({results.answered} answered'
        if results.correct_answers is not None:
            line += f", {results.correct_answers} correct"
        lines.append(line + ")")
    lines.append(f"Full attendance, for the class's teachers: /api/classes/{session.id}/attendance "
                 f"(CSV: /api/classes/{session.id}/attendance.csv)")
    post = await feed_db.add_post(db, circle_id=session.circle_id, author_id=context.actor.user_id,
                                  title=f"Class recap: {session.title}", body="\n".join(lines),
                                  section_id=await _recap_section(db, session.circle_id))
    return post.id


# --- attendance ---


async def arrive(db: AsyncSession, class_id: int, user_id: int, connection: str, now: datetime) -> None:
    await classes_db.open_interval(db, class_id, user_id, connection, now)


async def depart(
    db: AsyncSession, class_id: int, now: datetime, reason: str, *, user_id: int | None = None,
    connection: str | None = None,
) -> None:
    await classes_db.close_intervals(db, class_id, now, reason, user_id=user_id, connection=connection)


@dataclass(frozen=True, slots=True)
class ReportLine:
    user_id: int
    name: str
    circle_role: str | None  # None: not (or no longer) a member, yet they were there
    record: register.Record


@dataclass(frozen=True, slots=True)
class Report:
    session: ClassSession
    students: list[ReportLine]  # the register: members enrolled by the class's end, who learn rather than teach
    teachers: list[ReportLine]  # the session's teachers
    others: list[ReportLine]  # others who came: the circle's staff and fans, later members, past members
    measured_seconds: float  # the window the register measured: the class as it ran, or its schedule
    teacher_ids: list[int]

    @property
    def scheduled_seconds(self) -> float:
        return (self.session.scheduled_end - self.session.scheduled_start).total_seconds()

    @property
    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in register.Status}
        for line in self.students:
            counts[line.record.status.value] += 1
        return counts

    @property
    def attended(self) -> int:
        return sum(1 for line in self.students if line.record.status is not register.Status.ABSENT)


def register_window(session: ClassSession, now: datetime) -> register.Window:
    """What the register measures: the class as it ran (so far, while live), or its schedule before it starts."""
    return register.window(session.scheduled_start.timestamp(), session.scheduled_end.timestamp(),
                           session.started_at.timestamp() if session.started_at else None,
                           session.ended_at.timestamp() if session.ended_at else None, now.timestamp())


async def report(db: AsyncSession, actor: policy.Actor, class_id: int, now: datetime, grace: float) -> Report:
    context = await open_class(db, actor, class_id, Action.REPORT)
    return await _report(db, context, now, grace)


async def _report(db: AsyncSession, context: ClassContext, now: datetime, grace: float) -> Report:
    """Three statements whatever the class size: the roster, the merged intervals, names of non-members."""
    session = context.session
    span = register_window(session, now)
    rule = attendance_rule(session)
    closed_at = max(session.ended_at or session.scheduled_end, session.scheduled_end)
    rows = {row.user_id: row for row in await attendance_db.attended(db, {session.id: (span.start, span.end)}, now,
                                                                        grace)}
    roster = await attendance_db.roster(db, session.circle_id)
    known = {m.user_id for m in roster}
    strangers = await attendance_db.names(db, set(rows) - known)
    students: list[ReportLine] = []
    teachers: list[ReportLine] = []
    others: list[ReportLine] = []

    def line(uid: int, name: str, role: str | None) -> ReportLine:
        row = rows.get(uid)
        record = (register.summarise(row.first_join, row.last_leave, row.first_inside, row.attended, span.start,
                                     span.end, rule, span.late_from)
                  if row else register.Record(None, None, 0.0, 0.0, register.Status.ABSENT))
        return ReportLine(uid, name, role, record)

    for member in roster:
        entry = line(member.user_id, member.name, member.role.value)
        if member.user_id in context.teachers:
            teachers.append(entry)
        elif policy.on_register(member.role, member.member_type) and member.joined_at <= closed_at:
            students.append(entry)
        elif entry.record.first_join is not None:
            others.append(entry)  # staff and fans who came; members who joined the circle after the class
    for uid, name in sorted(strangers.items(), key=lambda item: item[1]):
        others.append(line(uid, name, None))
    return Report(session, students, teachers, others, span.end - span.start, context.teachers)


# --- polls ---


@dataclass(frozen=True, slots=True)
class PollView:
    poll: Poll
    id: int
    results: PollResults


def _poll(row: ClassPoll, answers: dict[int, list[int]]) -> Poll:
    poll = Poll(question=row.question, options=list(row.options), multiple=row.multiple,
                correct=frozenset(row.correct) if row.correct is not None else None, state=PollState(row.state))
    poll.answers = {uid: frozenset(choice) for uid, choice in answers.items()}
    return poll


async def poll_views(db: AsyncSession, class_id: int, *, state: PollState | None = None) -> list[PollView]:
    rows = await classes_db.polls(db, class_id, state=state.value if state else None)
    answers = await classes_db.answers(db, [row.id for row in rows])
    views = []
    for row in rows:
        poll = _poll(row, answers[row.id])
        views.append(PollView(poll, row.id, poll.results()))
    return views


async def create_poll(
    db: AsyncSession, context: ClassContext, *, question: str, options: list[str], multiple: bool,
    correct: list[int] | None,
) -> PollView:
    require_open(context.session)
    poll = Poll(question=question, options=options, multiple=multiple,  # validates, raising InvalidInput
                correct=frozenset(correct) if correct is not None else None)
    if correct is not None and len(set(correct)) != len(correct):
        raise InvalidInput("name each correct option once", code="poll_correct")
    row = await classes_db.add_poll(db, session_id=context.session.id, question=question, options=options,
                                    multiple=multiple, correct=sorted(set(correct)) if correct is not None else None,
                                    state=PollState.DRAFT.value, created_by=context.actor.user_id)
    return PollView(poll, row.id, poll.results())


async def _locked_poll(db: AsyncSession, class_id: int, poll_id: int) -> ClassPoll:
    row = await classes_db.get_poll(db, class_id, poll_id, lock=True)
    if row is None:
        raise NotFound("no such poll in this class", code="no_such_poll")
    return row


async def open_poll(db: AsyncSession, context: ClassContext, poll_id: int, now: datetime) -> PollView:
    if context.session.state is not ClassState.LIVE:
        require_open(context.session)
        raise Conflict("polls open during the class", code="class_not_live")
    row = await _locked_poll(db, context.session.id, poll_id)
    if await classes_db.polls(db, context.session.id, state=PollState.OPEN.value):
        raise Conflict("close the open poll first", code="poll_already_open")
    poll = _poll(row, {})
    poll.open()
    row.state, row.opened_at = poll.state.value, now
    await db.flush()
    return PollView(poll, row.id, poll.results())


async def close_poll(db: AsyncSession, context: ClassContext, poll_id: int, now: datetime) -> PollView:
    row = await _locked_poll(db, context.session.id, poll_id)
    poll = _poll(row, (await classes_db.answers(db, [row.id]))[row.id])
    poll.close()
    row.state, row.closed_at = poll.state.value, now
    await db.flush()
    return PollView(poll, row.id, poll.results())


async def answer_poll(
    db: AsyncSession, context: ClassContext, poll_id: int, choice: list[int], now: datetime
) -> PollView:
    """One answer per person; the poll row is locked so answers and the close queue rather than race."""
    row = await _locked_poll(db, context.session.id, poll_id)
    answers = (await classes_db.answers(db, [row.id]))[row.id]
    poll = _poll(row, answers)
    picked = poll.answer(context.actor.user_id, choice)  # open? answered already? a valid choice?
    await classes_db.add_answer(db, row.id, context.actor.user_id, sorted(picked), now)
    return PollView(poll, row.id, poll.results())


# --- in-class chat ---


@dataclass(frozen=True, slots=True)
class ChatTail:
    messages: list[ClassMessage]
    last_seq: int
    gap: bool


async def chat_history(
    db: AsyncSession, actor: policy.Actor, class_id: int, after: int, limit: int
) -> tuple[ClassContext, list[ClassMessage]]:
    """The in-class chat after ``after``, oldest first: for a client further behind than replay reaches, and for
    reading a class's chat once it is over."""
    context = await open_class(db, actor, class_id, Action.VIEW)
    return context, await classes_db.messages_after(db, class_id, after, limit)


async def chat_tail(db: AsyncSession, session: ClassSession, last_seen: int | None) -> ChatTail:
    plan = chat_rules.plan_replay(last_seen, session.chat_last_seq, 1)
    messages = await classes_db.messages_after(db, session.id, plan.after_seq, chat_rules.MAX_REPLAY)
    return ChatTail(messages, session.chat_last_seq, plan.gap)


async def send_message(
    db: AsyncSession, actor: policy.Actor, class_id: int, *, client_id: str, body: str, now: datetime
) -> tuple[ClassContext, ClassMessage, bool]:
    """Committed with the session's next number; a resend of a client id returns the original (created False)."""
    context = await open_class(db, actor, class_id, Action.JOIN, lock=True)
    existing = await classes_db.message_by_client_id(db, class_id, actor.user_id, client_id)
    if existing is not None:
        return context, existing, False
    if context.session.state is not ClassState.LIVE:
        require_open(context.session)
        raise Conflict("the class has not started", code="class_not_live")
    seq = await classes_db.next_chat_seq(db, class_id)
    message = await classes_db.add_message(db, session_id=class_id, seq=seq, author_id=actor.user_id,
                                           client_id=client_id, body=body, now=now)
    return context, message, True
