"""A whole live lesson over real sockets, on SQLite and PostgreSQL, and the register and recap it leaves behind.

A teacher schedules a class with the lobby on; one student arrives before the start and waits; the teacher starts;
a second student arrives and waits in the lobby until admitted; hands go up in order and the teacher calls on the
first (which grants the microphone); mute all; a poll opens, the students answer, a late joiner receives the open
poll on joining and answers too, the teacher sees live results and closes it; a student is removed and cannot come
back; in-class chat is numbered and replayed; the class ends; the attendance report (JSON and CSV) and the recap
post in the circle's "Classes" section tell what happened.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings
from tests.conftest import Database, make_settings
from tests.helpers import Api, Person
from tests.test_chat import Conn, Hub, client_id, expect


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(database, tmp_path, login_attempts_per_ip=10_000, login_attempts_per_account=10_000)


async def circle_with(api: Api, owner: Person, *members: Person, teachers: tuple[Person, ...] = ()) -> str:
    created = expect(await api.call("POST", "/api/circles", owner, {
        "name": "Evening Physics", "kind": "course", "visibility": "private", "join_policy": "invite"}), 201)
    circle_id: str = created["id"]
    for role, people in (("member", members), ("teacher", teachers)):
        for person in people:
            invite = expect(await api.call("POST", f"/api/circles/{circle_id}/invites", owner, {"role": role}), 201)
            expect(await api.call("POST", f"/api/invites/{invite['token']}/accept", person), 201)
    return circle_id


def schedule_body(**overrides: Any) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    body: dict[str, Any] = {"title": "Optics 1", "starts_at": start.isoformat(),
                            "ends_at": (start + timedelta(minutes=60)).isoformat(),
                            "settings": {"lobby": True, "late_after_minutes": 10, "present_percent": 85}}
    body.update(overrides)
    return body


def ids(participants: list[dict[str, Any]]) -> list[int]:
    return [p["user_id"] for p in participants]


async def test_a_whole_lesson(api: Api, hub: Hub) -> None:
    teacher, ana, ben, cai, dora = [await api.register(n) for n in ("Teacher", "Ana", "Ben", "Cai", "Dora")]
    circle_id = await circle_with(api, teacher, ana, ben, cai, dora)

    # --- scheduling ---
    scheduled = expect(await api.call("POST", f"/api/circles/{circle_id}/classes", teacher, schedule_body()), 201)
    class_id = scheduled["id"]
    assert scheduled["state"] == "scheduled" and scheduled["teacher_ids"] == [teacher.id]
    assert scheduled["settings"]["lobby"] is True
    upcoming = expect(await api.call("GET", f"/api/circles/{circle_id}/classes?when=upcoming", ana))
    assert [c["id"] for c in upcoming["classes"]] == [class_id]
    poll = expect(await api.call("POST", f"/api/classes/{class_id}/polls", teacher, {
        "question": "Which is bent more by a prism?", "options": ["red", "violet"], "correct": [1]}), 201)
    assert poll["state"] == "draft"

    # --- arriving: Ana before the start waits; the teacher is seated ---
    t = await hub.connect(teacher)
    a = await hub.connect(ana)
    joined_a = await a.ok("join_class", {"class_id": class_id})
    assert joined_a["placement"] == "waiting_for_start" and joined_a["role"] == "student"
    joined_t = await t.ok("join_class", {"class_id": class_id})
    assert joined_t["placement"] == "joined" and joined_t["role"] == "teacher"
    assert joined_t["room"]["waiting"] == [ana.id]

    started = await t.ok("start_class", {"class_id": class_id})
    assert started["room"]["phase"] == "live"
    # With the lobby on, those who waited for the start wait for admission.
    assert started["room"]["lobby"] == [ana.id]
    assert (await a.next("class_started"))["class_id"] == class_id
    lobby = await t.next("lobby_changed")
    assert [p["user_id"] for p in lobby["lobby"]] == [ana.id] and lobby["lobby"][0]["name"] == "Ana"

    await t.ok("admit", {"class_id": class_id, "user_id": ana.id})
    assert (await a.next("class_admitted"))["class_id"] == class_id
    joined_a = await a.ok("join_class", {"class_id": class_id})  # the full snapshot, now seated
    assert joined_a["placement"] == "joined" and ana.id in ids(joined_a["room"]["participants"])
    assert (await t.next("participant_joined"))["participant"]["user_id"] == ana.id

    b = await hub.connect(ben)
    assert (await b.ok("join_class", {"class_id": class_id}))["placement"] == "lobby"
    await t.until("lobby_changed", lambda fact: [p["user_id"] for p in fact["lobby"]] == [ben.id])
    await t.ok("admit", {"class_id": class_id, "user_id": ben.id})
    await b.next("class_admitted")
    await b.ok("join_class", {"class_id": class_id})

    # --- hands: first come, first served; calling on grants the microphone ---
    await b.ok("raise_hand", {"class_id": class_id})
    await a.ok("raise_hand", {"class_id": class_id})
    hands = await t.until("hands_changed", lambda fact: len(fact["hands"]) == 2)
    assert hands[-1]["hands"] == [ben.id, ana.id]
    await t.ok("mute", {"class_id": class_id, "user_id": ben.id})
    muted = await t.until("participants_changed", lambda f: f["participants"][0]["force_muted"])
    assert "microphone" not in muted[-1]["participants"][0]["may_publish"]
    await t.ok("call_on", {"class_id": class_id, "user_id": ben.id})
    assert (await a.until("hands_changed", lambda f: f["hands"] == [ana.id]))[-1]["hands"] == [ana.id]
    changed = await a.until("participants_changed",
                            lambda f: f["participants"][0]["user_id"] == ben.id and not f["participants"][0][
                                "force_muted"])
    assert "microphone" in changed[-1]["participants"][0]["may_publish"]
    assert (await b.next("called_on"))["user_id"] == ben.id

    # --- mute all: every student's microphone off until a teacher grants it again ---
    all_muted = await t.ok("mute_all", {"class_id": class_id})
    students = [p for p in all_muted["room"]["participants"] if p["role"] == "student"]
    assert {p["user_id"] for p in students} == {ana.id, ben.id}
    assert all(p["force_muted"] and "microphone" not in p["may_publish"] for p in students)
    fact = await b.until("participants_changed", lambda f: len(f["participants"]) == 2)
    assert all(p["force_muted"] for p in fact[-1]["participants"])

    # --- reactions arrive as counts, not one event each ---
    for _ in range(3):
        await a.ok("react", {"class_id": class_id, "kind": "clap"})
    await b.ok("react", {"class_id": class_id, "kind": "clap"})
    total = 0
    while total < 4:
        total += (await t.next("reactions"))["counts"].get("clap", 0)
    assert total == 4

    # --- in-class chat: numbered, acknowledged, broadcast in order ---
    sent = await a.ok("send_class_message", {"class_id": class_id, "client_id": client_id(), "body": "hello class"})
    assert sent["seq"] == 1 and not sent["duplicate"]
    assert (await t.next("class_message_posted"))["body"] == "hello class"
    again = await a.ok("send_class_message", {"class_id": class_id, "client_id": sent["message"]["client_id"],
                                             "body": "hello class"})
    assert again["seq"] == 1 and again["duplicate"]
    await t.ok("send_class_message", {"class_id": class_id, "client_id": client_id(), "body": "welcome"})

    # --- the poll: opened, answered, a late joiner gets it, live results for teachers, final for all ---
    opened = await t.ok("open_poll", {"class_id": class_id, "poll_id": poll["id"]})
    assert opened["poll"]["state"] == "open"
    seen_by_student = (await a.next("poll_opened"))["poll"]
    assert seen_by_student["correct"] is None and seen_by_student["results"] is None  # no spoilers
    await a.ok("answer_poll", {"class_id": class_id, "poll_id": poll["id"], "choice": [1]})
    await a.refused("answer_poll", {"class_id": class_id, "poll_id": poll["id"], "choice": [0]}, "already_answered")
    await b.ok("answer_poll", {"class_id": class_id, "poll_id": poll["id"], "choice": [0]})
    live = await t.until("poll_results", lambda f: f["poll"]["results"]["answered"] == 2)
    assert live[-1]["poll"]["results"]["counts"] == [1, 1]

    c = await hub.connect(cai)  # late, and the lobby is on
    assert (await c.ok("join_class", {"class_id": class_id}))["placement"] == "lobby"
    await t.until("lobby_changed", lambda f: [p["user_id"] for p in f["lobby"]] == [cai.id])
    await t.ok("admit", {"class_id": class_id, "user_id": cai.id})
    await c.next("class_admitted")
    late = await c.ok("join_class", {"class_id": class_id, "last_seq": 0})
    assert late["poll"]["id"] == poll["id"] and late["poll"]["state"] == "open"
    assert [m["body"] for m in late["chat"]["messages"]] == ["hello class", "welcome"]
    assert late["names"][str(teacher.id)] == "Teacher"
    await c.ok("answer_poll", {"class_id": class_id, "poll_id": poll["id"], "choice": [1]})
    await t.until("poll_results", lambda f: f["poll"]["results"]["answered"] == 3)

    closed = await t.ok("close_poll", {"class_id": class_id, "poll_id": poll["id"]})
    assert closed["poll"]["results"] == {"counts": [1, 2], "answered": 3, "correct_answers": 2}
    final = (await b.next("poll_closed"))["poll"]
    assert final["correct"] == [1] and final["results"]["counts"] == [1, 2]

    # --- removal: out at once, and not back into this session ---
    await t.ok("remove_participant", {"class_id": class_id, "user_id": ben.id})
    assert (await b.next("class_left")) == {"class_id": class_id, "reason": "removed"}
    left = await a.until("participant_left", lambda f: f["user_id"] == ben.id)
    assert left[-1]["reason"] == "removed"
    await b.refused("join_class", {"class_id": class_id}, "removed")
    await b.refused("raise_hand", {"class_id": class_id}, "not_joined")

    # --- the end: everyone out, intervals closed, the recap posted ---
    ended = await t.ok("end_class", {"class_id": class_id})
    recap_id = ended["recap_post_id"]
    for conn in (a, c):
        assert (await conn.next("class_ended"))["recap_post_id"] == recap_id
        assert (await conn.next("class_left"))["reason"] == "ended"
    await a.refused("join_class", {"class_id": class_id}, "class_ended")
    assert expect(await api.call("GET", f"/api/classes/{class_id}", ana))["state"] == "ended"

    report = expect(await api.call("GET", f"/api/classes/{class_id}/attendance", teacher))
    by_id = {line["user_id"]: line for line in report["students"]}
    assert set(by_id) == {ana.id, ben.id, cai.id, dora.id}  # Dora never came: she is on the register too
    assert by_id[dora.id]["status"] == "absent" and by_id[dora.id]["first_join"] is None
    # The register measures the class as it ran (seconds here): nobody was late, and who counts as present depends
    # on how much of those seconds each had (tests/test_attendance_window.py pins the rule down with set times).
    for uid in (ana.id, ben.id, cai.id):
        assert by_id[uid]["first_join"] is not None and by_id[uid]["last_leave"] is not None
        assert 0 < by_id[uid]["share"] <= 1 and by_id[uid]["status"] in ("present", "left_early")
    assert by_id[ben.id]["last_leave"] < by_id[ana.id]["last_leave"]  # removed before the end
    assert report["counts"]["late"] == 0 and report["counts"]["absent"] == 1
    assert report["counts"]["present"] + report["counts"]["left_early"] == 3
    assert report["measured_minutes"] < report["scheduled_minutes"] == 60
    assert [line["user_id"] for line in report["teachers"]] == [teacher.id]
    expect(await api.call("GET", f"/api/classes/{class_id}/attendance", ana), 403)

    csv_reply = await api.call("GET", f"/api/classes/{class_id}/attendance.csv", teacher)
    assert csv_reply.status == 200 and csv_reply.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_reply.raw.decode())))
    students = (("Ana", ana), ("Ben", ben), ("Cai", cai), ("Dora", dora))
    assert {(r["name"], r["status"]) for r in rows if r["class_role"] == "student"} == {
        (name, by_id[person.id]["status"]) for name, person in students}

    feed = expect(await api.call("GET", f"/api/circles/{circle_id}/posts", ana))
    recap = next(p for p in feed["posts"] if p["id"] == recap_id)
    sections = expect(await api.call("GET", f"/api/circles/{circle_id}/sections", ana))["sections"]
    assert recap["section_id"] == next(s["id"] for s in sections if s["name"] == "Classes")
    assert recap["title"] == "Class recap: Optics 1"
    assert "Attended: 3 of 4 students" in recap["body"] and "absent: 1" in recap["body"]
    assert 'Poll "Which is bent more by a prism?": red: 1; violet: 2 (3 answered, 2 correct)' in recap["body"]
    assert f"/api/classes/{class_id}/attendance" in recap["body"]
    past = expect(await api.call("GET", f"/api/circles/{circle_id}/classes?when=past", ana))
    assert past["classes"][0]["recap_post_id"] == recap_id
    chat = expect(await api.call("GET", f"/api/classes/{class_id}/messages?after=0&limit=1", dora))
    assert [m["body"] for m in chat["messages"]] == ["hello class"] and chat["next_after"] == 1
    chat = expect(await api.call("GET", f"/api/classes/{class_id}/messages?after=1", dora))
    assert [(m["seq"], m["body"]) for m in chat["messages"]] == [(2, "welcome")] and chat["next_after"] is None


@dataclass
class Lesson:
    """A teacher and Ana in a private circle, a class without a lobby, and the teacher's connection."""

    teacher: Person
    ana: Person
    circle_id: str
    class_id: int
    t: Conn


async def lesson(api: Api, hub: Hub, *, started: bool = True) -> Lesson:
    teacher = await api.register("Teacher")
    ana = await api.register("Ana")
    circle_id = await circle_with(api, teacher, ana)
    class_id = expect(await api.call("POST", f"/api/circles/{circle_id}/classes", teacher,
                                     schedule_body(settings={"lobby": False})), 201)["id"]
    t = await hub.connect(teacher)
    if started:
        await t.ok("join_class", {"class_id": class_id})
        await t.ok("start_class", {"class_id": class_id})
    return Lesson(teacher, ana, circle_id, class_id, t)


async def test_a_second_device_and_a_quick_reconnect_leave_one_seat(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub)
    ana, class_id, t, teacher = ls.ana, ls.class_id, ls.t, ls.teacher
    phone = await hub.connect(ana)
    laptop = await hub.connect(ana)
    assert (await phone.ok("join_class", {"class_id": class_id}))["placement"] == "joined"
    assert (await laptop.ok("join_class", {"class_id": class_id}))["placement"] == "joined"
    await phone.ok("raise_hand", {"class_id": class_id})
    await phone.close()  # one device gone: still in, hand still up
    # The server handles the phone's disconnect on its own schedule, unordered with the other connections'
    # requests: were it handled after the laptop's leave below, that leave would not be the last connection's.
    await _until_connections(api, class_id, ana.id, 1)
    sentinel = await t.ok("lock_class", {"class_id": class_id, "locked": False})
    assert ana.id in ids(sentinel["room"]["participants"]) and sentinel["room"]["hands"] == [ana.id]
    await t.until("class_locked", lambda f: True)
    assert [f for f in t.pending("participant_left") if f["user_id"] == ana.id] == []
    await laptop.ok("leave_class", {"class_id": class_id})  # the last one, by choice: out at once
    left = await t.until("participant_left", lambda f: f["user_id"] == ana.id)
    assert left[-1]["reason"] == "left"
    await asyncio.sleep(0)  # nothing to wait for: the report is read after the leave was committed
    report = expect(await api.call("GET", f"/api/classes/{class_id}/attendance", teacher))
    line = next(x for x in report["students"] if x["user_id"] == ana.id)
    assert line["first_join"] is not None and line["last_leave"] is not None


async def _until_connections(api: Api, class_id: int, user_id: int, count: int) -> None:
    """Wait until the server's room counts ``count`` connections of ``user_id`` (what no event tells a client)."""
    from server.hub.setup import SIO

    namespace = api.client.app[SIO].namespace_handlers["/"]
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        room = await namespace.parts.rooms.get(str(class_id))
        participant = room.participants.get(user_id) if room is not None else None
        if participant is not None and participant.connections == count:
            return
        assert asyncio.get_running_loop().time() < deadline, f"the room never counted {count} connections"
        await asyncio.sleep(0.01)


async def test_students_arriving_before_the_start_are_seated_when_it_starts(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub, started=False)
    ana, class_id, t = ls.ana, ls.class_id, ls.t
    a = await hub.connect(ana)
    assert (await a.ok("join_class", {"class_id": class_id}))["placement"] == "waiting_for_start"
    await a.refused("send_class_message", {"class_id": class_id, "client_id": client_id(), "body": "hi"},
                    "not_joined")
    await t.ok("join_class", {"class_id": class_id})
    started = await t.ok("start_class", {"class_id": class_id})
    assert ana.id in ids(started["room"]["participants"])
    await a.next("class_admitted")
    sent = await a.ok("send_class_message", {"class_id": class_id, "client_id": client_id(), "body": "hi"})
    assert sent["seq"] == 1
    assert (await t.next("class_message_posted"))["author"] == {"user_id": ana.id, "name": "Ana"}


async def test_a_member_removed_from_the_circle_leaves_its_live_class(api: Api, hub: Hub) -> None:
    ls = await lesson(api, hub)
    teacher, ana, circle_id, class_id, t = ls.teacher, ls.ana, ls.circle_id, ls.class_id, ls.t
    a = await hub.connect(ana)
    await a.ok("join_class", {"class_id": class_id})
    await a.ok("raise_hand", {"class_id": class_id})
    expect(await api.call("DELETE", f"/api/circles/{circle_id}/members/{ana.id}", teacher), 204)
    assert (await a.next("class_left")) == {"class_id": class_id, "reason": "left_circle"}
    assert (await t.until("participant_left", lambda f: f["user_id"] == ana.id))[-1]["reason"] == "left_circle"
    snapshot = (await t.ok("lock_class", {"class_id": class_id, "locked": False}))["room"]
    assert ana.id not in ids(snapshot["participants"]) and snapshot["hands"] == []
    await a.refused("join_class", {"class_id": class_id}, "not_found")  # a private circle's class, for a stranger
