"""Class routes: schedule, list, edit and cancel a circle's classes; their polls; the attendance report and its CSV.

The live room itself is on the Socket.IO hub (``docs/protocol.md``, "Live classes").
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from aiohttp import web

from rooms.attendance import Record
from rooms.errors import InvalidInput
from server import keys
from server.api.class_schemas import (
    AttendanceLineOut,
    AttendanceOut,
    ClassHistoryOut,
    ClassHistoryQuery,
    ClassIn,
    ClassListOut,
    ClassListQuery,
    ClassMessageOut,
    ClassOut,
    ClassPatchIn,
    PollIn,
    PollListOut,
    PollOut,
)
from server.api.identity import user_actor
from server.api.routes import Route
from server.api.wire import ok, parse_body, parse_query, path_circle_id, path_int, transaction
from server.db import feed as feed_db
from server.policy import ClassAction, allows
from server.services import classes


def _now() -> datetime:
    return datetime.now(UTC)


def _out(context: classes.ClassContext) -> ClassOut:
    return ClassOut.of(context.session, context.teachers)


async def schedule(request: web.Request) -> web.Response:
    body = await parse_body(request, ClassIn)
    async with transaction(request) as db:
        context = await classes.schedule(
            db, await user_actor(request, db), path_circle_id(request), title=body.title,
            description=body.description, starts_at=body.starts_at, ends_at=body.ends_at,
            teacher_ids=body.teacher_ids, settings=body.settings.stored())
    return ok(_out(context), status=201)


def _cursor(raw: str | None) -> tuple[datetime, int] | None:
    if raw is None:
        return None
    moment, _, ident = raw.rpartition("~")
    try:
        return datetime.fromisoformat(moment).astimezone(UTC), int(ident)
    except ValueError:
        raise InvalidInput("not a cursor this API gave out", code="bad_cursor",
                           details=[{"field": "cursor", "problem": "malformed"}]) from None


async def listing(request: web.Request) -> web.Response:
    query = parse_query(request, ClassListQuery)
    async with transaction(request) as db:
        sessions, teachers = await classes.listing(
            db, await user_actor(request, db), path_circle_id(request), upcoming=query.when == "upcoming",
            cursor=_cursor(query.cursor), limit=query.limit + 1, now=_now())
    page = sessions[: query.limit]
    more = len(sessions) > query.limit
    cursor = f"{page[-1].scheduled_start.isoformat()}~{page[-1].id}" if more else None
    return ok(ClassListOut(classes=[ClassOut.of(s, teachers[s.id]) for s in page], next_cursor=cursor))


async def get(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        context = await classes.open_class(db, await user_actor(request, db), path_int(request, "class_id"),
                                           ClassAction.VIEW)
    return ok(_out(context))


async def edit(request: web.Request) -> web.Response:
    body = await parse_body(request, ClassPatchIn)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if body.settings is not None:
        changes["settings"] = body.settings.stored()
    for required in ("title", "starts_at", "ends_at", "description"):
        if required in changes and changes[required] is None:
            raise InvalidInput(details=[{"field": required, "problem": "cannot be null"}])
    async with transaction(request) as db:
        context = await classes.update(db, await user_actor(request, db), path_int(request, "class_id"), changes)
    return ok(_out(context))


async def cancel(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        context = await classes.cancel(db, await user_actor(request, db), path_int(request, "class_id"))
    return ok(_out(context))


def _line(line: classes.ReportLine) -> AttendanceLineOut:
    record: Record = line.record

    def moment(value: float | None) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if value is not None else None

    return AttendanceLineOut(user_id=line.user_id, name=line.name, circle_role=line.circle_role,
                             first_join=moment(record.first_join), last_leave=moment(record.last_leave),
                             attended_minutes=round(record.attended_seconds / 60, 1), share=round(record.share, 3),
                             status=record.status.value)


async def _report(request: web.Request) -> classes.Report:
    async with transaction(request) as db:
        return await classes.report(db, await user_actor(request, db), path_int(request, "class_id"), _now(),
                                    request.app[keys.SETTINGS].class_grace_seconds)


async def attendance(request: web.Request) -> web.Response:
    report = await _report(request)
    return ok(AttendanceOut(class_=ClassOut.of(report.session, report.teacher_ids),
                            scheduled_minutes=round(report.scheduled_seconds / 60, 1),
                            measured_minutes=round(report.measured_seconds / 60, 1), counts=report.counts,
                            students=[_line(x) for x in report.students], teachers=[_line(x) for x in report.teachers],
                            others=[_line(x) for x in report.others]))


async def attendance_csv(request: web.Request) -> web.Response:
    report = await _report(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["user_id", "name", "circle_role", "class_role", "first_join", "last_leave", "attended_minutes",
                     "share_percent", "status"])
    for role, lines in (("student", report.students), ("teacher", report.teachers), ("other", report.others)):
        for line in lines:
            row = _line(line)
            writer.writerow([row.user_id, _safe_cell(row.name), row.circle_role or "", role,
                             row.first_join.isoformat() if row.first_join else "",
                             row.last_leave.isoformat() if row.last_leave else "", row.attended_minutes,
                             round(row.share * 100, 1), row.status])
    name = f"attendance-class-{report.session.id}.csv"
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _safe_cell(text: str) -> str:
    """Names that a spreadsheet would run as formulas are quoted as text (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def chat_history(request: web.Request) -> web.Response:
    query = parse_query(request, ClassHistoryQuery)
    async with transaction(request) as db:
        context, messages = await classes.chat_history(db, await user_actor(request, db),
                                                       path_int(request, "class_id"), query.after, query.limit + 1)
        page = messages[: query.limit]
        authors = await feed_db.authors(db, context.session.circle_id,
                                        {m.author_id for m in page if m.author_id is not None})
    names = {uid: author.name for uid, author in authors.items()}
    return ok(ClassHistoryOut(messages=[ClassMessageOut.of(m, names) for m in page],
                              next_after=page[-1].seq if len(messages) > query.limit else None))


async def list_polls(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        actor = await user_actor(request, db)
        context = await classes.open_class(db, actor, path_int(request, "class_id"), ClassAction.VIEW)
        views = await classes.poll_views(db, context.session.id)
    staff = allows(lambda: context.check(ClassAction.SCHEDULE))
    visible = [v for v in views if staff or v.poll.state.value != "draft"]
    return ok(PollListOut(polls=[PollOut.of(v, staff=staff, viewer=actor.user_id) for v in visible]))


async def create_poll(request: web.Request) -> web.Response:
    body = await parse_body(request, PollIn)
    async with transaction(request) as db:
        context = await classes.open_class(db, await user_actor(request, db), path_int(request, "class_id"),
                                           ClassAction.SCHEDULE, lock=True)
        view = await classes.create_poll(db, context, question=body.question, options=body.options,
                                         multiple=body.multiple, correct=body.correct)
    return ok(PollOut.of(view, staff=True), status=201)


C = "/api/circles/{circle_id}/classes"
K = "/api/classes/{class_id}"
T = "classes"
ROUTES = [
    Route("POST", C, schedule, "Schedule a class in the circle (its teachers, admins and owner)", T, body=ClassIn,
          response=ClassOut, status=201),
    Route("GET", C, listing, "The circle's classes: upcoming (soonest first) or past (latest first)", T,
          query=ClassListQuery, response=ClassListOut),
    Route("GET", K, get, "One class (members of its circle)", T, response=ClassOut),
    Route("PATCH", K, edit, "Reschedule or change a class before it starts", T, body=ClassPatchIn, response=ClassOut),
    Route("POST", f"{K}/cancel", cancel, "Cancel a class that has not started", T, response=ClassOut),
    Route("GET", f"{K}/messages", chat_history,
          "The in-class chat after a sequence number, oldest first (members of the circle)", T,
          query=ClassHistoryQuery, response=ClassHistoryOut),
    Route("GET", f"{K}/polls", list_polls,
          "The class's polls: all with live results for its teachers; opened ones for students, results once closed",
          T, response=PollListOut),
    Route("POST", f"{K}/polls", create_poll, "Prepare a poll or quiz for the class (its teachers)", T, body=PollIn,
          response=PollOut, status=201),
    Route("GET", f"{K}/attendance", attendance,
          "The attendance report: every member, present / late / left early / absent (teachers, circle and "
          "institution admins)", T, response=AttendanceOut),
    Route("GET", f"{K}/attendance.csv", attendance_csv, "The attendance report as CSV", T, content_type="text/csv"),
]
