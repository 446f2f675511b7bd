"""A live class across two real ``quanzi serve`` processes sharing one PostgreSQL schema and one Redis.

The teacher is connected to process A, students to process B (and, where a test says so, one more on A). The room
lives in Redis (``RedisRoomStore``) and every broadcast and control crosses on the Redis channel, so what one
process's clients do must reach the other's: seating at the start, hands in order, teacher controls, polls, removal
and the end. The processes are those of tests/test_multiprocess.py (its ``cluster`` fixture, started once for this
module); like every test here it skips on a laptop without the services and fails under CI
(``QUANZI_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.test_chat import Conn
from tests.test_multiprocess import PASSWORD, Api, Cluster, Person, Process
from tests.test_multiprocess import cluster as cluster  # the module-scoped fixture, reused

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

WAIT = 10.0  # every wait for a broadcast is bounded by this
TEST_TIMEOUT = 30.0


@dataclass
class Lesson:
    cluster: Cluster
    api: dict[str, Api]
    circle: str
    class_id: int
    people: dict[str, Person]
    conns: dict[str, Conn] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # name -> the process its connection is on

    def ref(self, **fields: Any) -> dict[str, Any]:
        return {"class_id": self.class_id, **fields}

    def id(self, name: str) -> int:
        return self.people[name].user_id

    async def connect(self, name: str, on: str) -> Conn:
        """A new connection of ``name`` to process ``on``, with a socket token from that process."""
        process: Process = getattr(self.cluster, on.lower())
        body = await self.api[on].expect(201, "POST", "/api/socket-token", self.people[name].token)
        conn = Conn(None)
        async with asyncio.timeout(WAIT):
            await conn.sio.connect(process.base, auth={"token": body["token"]}, transports=["websocket"],
                                   wait_timeout=5)
        return conn


@asynccontextmanager
async def lesson(cluster: Cluster, where: dict[str, str], **settings: Any) -> AsyncIterator[Lesson]:
    """A public circle owned by "teacher", everyone else a member; a class scheduled (not started) on A; one
    connection per person on the process ``where`` names (not yet in the class). Closes every connection after."""
    run = secrets.token_hex(3)
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), timeout=timeout) as session:
        api = {"A": Api(session, cluster.a), "B": Api(session, cluster.b)}
        people = {name: Person(name, f"{name}-{run}@example.org") for name in where}

        async def enrol(person: Person) -> None:
            await api["A"].expect(201, "POST", "/api/auth/register", json={
                "email": person.email, "password": PASSWORD, "display_name": person.name.title()})
            body = await api[where[person.name]].expect(201, "POST", "/api/auth/token", json={
                "email": person.email, "password": PASSWORD})
            person.user_id, person.token = int(body["user"]["id"]), str(body["token"])

        await asyncio.gather(*(enrol(p) for p in people.values()))
        circle = (await api["A"].expect(201, "POST", "/api/circles", people["teacher"].token, {
            "name": f"Classes across processes {run}", "visibility": "public", "join_policy": "open"}))["id"]
        for name, on in where.items():
            if name != "teacher":
                await api[on].expect(201, "POST", f"/api/circles/{circle}/join", people[name].token)
        now = datetime.now(UTC)
        made = await api["A"].expect(201, "POST", f"/api/circles/{circle}/classes", people["teacher"].token, {
            "title": "Across processes", "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(minutes=59)).isoformat(), "settings": settings})
        ls = Lesson(cluster, api, str(circle), int(made["id"]), people, where=dict(where))
        try:
            for name, on in where.items():
                ls.conns[name] = await ls.connect(name, on)
            yield ls
        finally:
            for conn in ls.conns.values():
                await conn.close()


async def started(ls: Lesson) -> None:
    """The teacher joins and starts the class; then everyone else joins, seated at once."""
    t = ls.conns["teacher"]
    await t.ok("join_class", ls.ref())
    await t.ok("start_class", ls.ref())
    for name, conn in ls.conns.items():
        if name != "teacher":
            assert (await conn.ok("join_class", ls.ref()))["placement"] == "joined"
            assert (await t.next("participant_joined"))["participant"]["user_id"] == ls.id(name)


async def sentinel(ls: Lesson, *names: str) -> None:
    """A chat line from the teacher (A) that every named, seated connection must receive: what was broadcast
    before it has arrived by then, on either process."""
    body = f"sentinel {secrets.token_hex(3)}"
    await ls.conns["teacher"].ok("send_class_message", ls.ref(client_id=f"mp-{secrets.token_hex(6)}", body=body))
    for name in names:
        await ls.conns[name].until("class_message_posted", lambda m: m["body"] == body)


def waits(user_id: int) -> Callable[[Any], bool]:
    return lambda fact: user_id in [p["user_id"] for p in fact["waiting"]]


def hand_up(user_id: int) -> Callable[[Any], bool]:
    return lambda fact: user_id in fact["hands"]


def drained(conn: Conn, event: str) -> list[Any]:
    return conn.pending(event)


# ---------------------------------------------------------------------------------------------------------------


async def test_the_start_on_a_seats_students_waiting_on_b(cluster: Cluster) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lesson(cluster, {"teacher": "A", "s1": "B", "s2": "B"}) as ls:
        t, s1, s2 = ls.conns["teacher"], ls.conns["s1"], ls.conns["s2"]
        assert (await t.ok("join_class", ls.ref()))["placement"] == "joined"
        for name, conn in (("s1", s1), ("s2", s2)):
            joined = await conn.ok("join_class", ls.ref())
            assert (joined["placement"], joined["room"]["phase"]) == ("waiting_for_start", "scheduled")
            # The teacher, on the other process, sees who waits.
            await t.until("lobby_changed", waits(ls.id(name)))
        # Before the start, nothing of the class is theirs.
        await s1.refused("raise_hand", ls.ref(), "not_joined")

        started_ack = await t.ok("start_class", ls.ref())
        seated_ids = {p["user_id"] for p in started_ack["room"]["participants"]}
        assert seated_ids == {ls.id("teacher"), ls.id("s1"), ls.id("s2")}
        for conn in (s1, s2):
            assert await conn.next("class_admitted") == {"class_id": ls.class_id}
            assert (await conn.next("class_started"))["room"]["phase"] == "live"
        # The teacher's process learns who was seated, and their names, from the one class_started.
        told = await t.next("class_started")
        assert {p["user_id"] for p in told["room"]["participants"]} == seated_ids
        assert {told["names"][str(ls.id(name))] for name in ("s1", "s2")} == {"S1", "S2"}

        # Seated on B for real: B's connections act in the class, and both processes read the same room.
        await s1.ok("raise_hand", ls.ref())
        assert (await t.next("hands_changed"))["hands"] == [ls.id("s1")]
        rooms = [(await conn.ok("join_class", ls.ref()))["room"] for conn in (t, s1, s2)]
        assert rooms[0] == rooms[1] == rooms[2]
        assert rooms[0]["waiting"] == [] and rooms[0]["hands"] == [ls.id("s1")]
        status, body = await ls.api["B"].call("GET", f"/api/classes/{ls.class_id}", ls.people["s2"].token)
        assert (status, body["state"]) == (200, "live")


async def test_hands_and_teacher_controls_look_the_same_from_both_processes(cluster: Cluster) -> None:
    where = {"teacher": "A", "s1": "B", "s2": "B", "s3": "A"}
    async with asyncio.timeout(TEST_TIMEOUT), lesson(cluster, where) as ls:
        await started(ls)
        t = ls.conns["teacher"]
        everyone = list(ls.conns.values())
        s1, s2, s3 = (ls.id(n) for n in ("s1", "s2", "s3"))

        # Raised on B, on A, on B: one order, seen alike on both processes.
        expected = [[s1], [s1, s3], [s1, s3, s2]]
        on_a: list[list[int]] = []
        for name in ("s1", "s3", "s2"):  # each raised once the one before is known to the teacher
            await ls.conns[name].ok("raise_hand", ls.ref())
            on_a += [f["hands"] for f in await t.until("hands_changed", hand_up(ls.id(name)))]
        assert on_a == expected
        for conn in everyone[1:]:
            seen = [(await conn.next("hands_changed"))["hands"] for _ in range(3)]
            assert seen == expected, seen

        # The teacher on A acts on a student on B.
        await t.ok("call_on", ls.ref(user_id=s1))
        await t.ok("grant_media", ls.ref(user_id=s1, media="screen"))
        await t.ok("mute", ls.ref(user_id=s1))
        await t.ok("lower_hand", ls.ref(user_id=s2))
        await ls.conns["s3"].ok("lower_hand", ls.ref())  # a student on A lowers their own
        await sentinel(ls, *ls.conns)
        changes = {name: drained(conn, "participants_changed") for name, conn in ls.conns.items()}
        assert changes["teacher"] == changes["s1"] == changes["s2"] == changes["s3"], changes
        views = [c["participants"] for c in changes["teacher"]]
        assert [[(v["user_id"], v["may_publish"], v["force_muted"]) for v in change] for change in views] == [
            [(s1, ["camera", "microphone"], False)],  # called on: may speak
            [(s1, ["camera", "microphone", "screen"], False)],  # granted the screen
            [(s1, ["camera", "screen"], True)],  # muted
        ]
        hands = {name: [f["hands"] for f in drained(conn, "hands_changed")] for name, conn in ls.conns.items()}
        assert all(h == [[s3, s2], [s3], []] for h in hands.values()), hands
        called = {name: drained(conn, "called_on") for name, conn in ls.conns.items()}
        assert all(c == [{"class_id": ls.class_id, "user_id": s1}] for c in called.values()), called

        rooms = [(await conn.ok("join_class", ls.ref()))["room"] for conn in everyone]
        assert all(room == rooms[0] for room in rooms)
        assert rooms[0]["hands"] == []
        assert {p["user_id"]: p["force_muted"] for p in rooms[0]["participants"]}[s1] is True


async def test_a_poll_opened_on_a_is_answered_on_b_and_closed_for_all(cluster: Cluster) -> None:
    where = {"teacher": "A", "s1": "B", "s2": "B", "s3": "A"}
    async with asyncio.timeout(TEST_TIMEOUT), lesson(cluster, where) as ls:
        await started(ls)
        t = ls.conns["teacher"]
        students = [ls.conns[n] for n in ("s1", "s2", "s3")]
        poll = (await t.ok("create_poll", ls.ref(question="Which?", options=["a", "b", "c"])))["poll"]
        opened = await t.ok("open_poll", ls.ref(poll_id=poll["id"]))
        assert opened["poll"]["state"] == "open"
        for conn in students:
            fact = await conn.next("poll_opened")
            assert (fact["poll"]["id"], fact["poll"]["results"]) == (poll["id"], None)
        assert (await t.next("poll_results"))["poll"]["results"]["answered"] == 0

        await ls.conns["s1"].ok("answer_poll", ls.ref(poll_id=poll["id"], choice=[1]))
        first = await t.next("poll_results")
        assert (first["poll"]["results"]["answered"], first["poll"]["results"]["counts"]) == (1, [0, 1, 0])
        await ls.conns["s2"].ok("answer_poll", ls.ref(poll_id=poll["id"], choice=[2]))
        second = await t.next("poll_results")
        assert (second["poll"]["results"]["answered"], second["poll"]["results"]["counts"]) == (2, [0, 1, 1])
        # A second answer, from a new connection on the other process, is still a second answer.
        again = await ls.connect("s1", "A")
        try:
            await again.ok("join_class", ls.ref())
            await again.refused("answer_poll", ls.ref(poll_id=poll["id"], choice=[0]), "already_answered")
        finally:
            await again.close()

        closed = await t.ok("close_poll", ls.ref(poll_id=poll["id"]))
        assert closed["poll"]["results"]["counts"] == [0, 1, 1]
        for conn in (t, *students):
            fact = await conn.next("poll_closed")
            assert (fact["poll"]["state"], fact["poll"]["results"]["counts"]) == ("closed", [0, 1, 1])
        await ls.conns["s3"].refused("answer_poll", ls.ref(poll_id=poll["id"], choice=[0]), "poll_not_open")
        for on, who in (("A", "teacher"), ("B", "s2")):
            listed = await ls.api[on].expect(200, "GET", f"/api/classes/{ls.class_id}/polls", ls.people[who].token)
            assert [(p["state"], p["results"]["counts"]) for p in listed["polls"]] == [("closed", [0, 1, 1])]
        await sentinel(ls, *ls.conns)
        for conn in students:
            assert drained(conn, "poll_results") == []  # the tallies went to the teachers only


async def test_removal_and_the_end_on_a_reach_b(cluster: Cluster) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lesson(cluster, {"teacher": "A", "s1": "B", "s2": "B"}) as ls:
        await started(ls)
        t, s1, s2 = ls.conns["teacher"], ls.conns["s1"], ls.conns["s2"]
        await s2.ok("raise_hand", ls.ref())
        await t.until("hands_changed", lambda f: f["hands"] == [ls.id("s2")])

        await t.ok("remove_participant", ls.ref(user_id=ls.id("s2")))
        assert await s2.next("class_left") == {"class_id": ls.class_id, "reason": "removed"}
        left = {"class_id": ls.class_id, "user_id": ls.id("s2"), "reason": "removed"}
        assert await s1.next("participant_left") == left
        assert await t.next("participant_left") == left
        await s1.until("hands_changed", lambda f: f["hands"] == [])
        await s2.refused("raise_hand", ls.ref(), "not_joined")
        await s2.refused("join_class", ls.ref(), "removed")
        elsewhere = await ls.connect("s2", "A")
        try:
            await elsewhere.refused("join_class", ls.ref(), "removed")
        finally:
            await elsewhere.close()
        room = (await t.ok("join_class", ls.ref()))["room"]
        assert ls.id("s2") not in {p["user_id"] for p in room["participants"]}
        assert (await s1.ok("join_class", ls.ref()))["room"] == room

        ended = await t.ok("end_class", ls.ref())
        assert isinstance(ended["recap_post_id"], int)
        for conn in (t, s1):
            assert (await conn.next("class_ended"))["class_id"] == ls.class_id
            assert await conn.next("class_left") == {"class_id": ls.class_id, "reason": "ended"}
        await s1.refused("raise_hand", ls.ref(), "not_joined")
        await s1.refused("join_class", ls.ref(), "class_ended")
        status, body = await ls.api["B"].call("GET", f"/api/classes/{ls.class_id}", ls.people["s1"].token)
        assert (status, body["state"]) == (200, "ended")


async def test_a_class_s_media_is_carried_by_one_process_that_the_hub_names(cluster: Cluster) -> None:
    """The first process a class is joined on carries its media; the other sends clients there, and a connection
    there joins the class and its media (a second device of the same person, one seat)."""
    async with asyncio.timeout(TEST_TIMEOUT), lesson(cluster, {"teacher": "A", "s1": "B"}) as ls:
        await started(ls)
        t, s1 = ls.conns["teacher"], ls.conns["s1"]
        assert (await t.ok("join_class", ls.ref()))["media_node"] is None  # A carries it: the teacher is there
        named = (await s1.ok("join_class", ls.ref()))["media_node"]
        assert named == cluster.a.base
        refused = await s1.refused("media_join", ls.ref(), "use_media_node")
        assert refused["details"] == {"url": cluster.a.base}
        assert (await t.ok("media_join", ls.ref()))["ice_servers"] == []

        there = await ls.connect("s1", "A")  # where the hub sent them
        try:
            joined = await there.ok("join_class", ls.ref())
            assert joined["placement"] == "joined" and joined["media_node"] is None
            assert [p["user_id"] for p in joined["room"]["participants"]].count(ls.id("s1")) == 1
            await there.ok("media_join", ls.ref())
        finally:
            await there.close()
        await t.ok("end_class", ls.ref())


async def test_a_page_on_the_other_process_follows_the_class_s_media_node(cluster: Cluster) -> None:
    """The student's page is served by B; the class's media is carried by A (the teacher's camera is there). The
    page's media_join on B is refused with use_media_node, and the client opens a second connection to A, joins the
    class on it (the same seat) and signals its media there: it decodes the teacher's camera, and the teacher gets
    its camera back. Real Chromium, real processes; the two origins accept each other's pages."""
    from tests.browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, require_chromium
    from tests.test_class_media import MediaClient
    from tests.test_web_client import FRAMES_DECODED, RECORD_PEER_CONNECTIONS, rising

    require_chromium()
    from playwright.async_api import async_playwright

    async with asyncio.timeout(90), lesson(cluster, {"teacher": "A", "student": "B"}) as ls:
        await started(ls)
        teacher_media = MediaClient(ls.conns["teacher"], ls.class_id)
        try:
            await teacher_media.join()  # A claims the class's media
            await teacher_media.publish(video=True, audio=False)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                          args=CHROMIUM_ARGS)
                try:
                    context = await browser.new_context(viewport=LAPTOP, base_url=cluster.b.base)
                    await context.grant_permissions(["camera", "microphone"])
                    await context.add_init_script(RECORD_PEER_CONNECTIONS)
                    page = await context.new_page()
                    page.set_default_timeout(WAIT * 1000)
                    await page.goto("/#/signin")
                    await page.get_by_label("Email").fill(ls.people["student"].email)
                    await page.get_by_label("Password").fill(PASSWORD)
                    await page.get_by_role("button", name="Sign in").click()
                    await page.get_by_role("button", name="Sign out").wait_for()
                    await page.goto(f"/#/classes/{ls.class_id}")
                    await page.get_by_role("status").filter(has_text="You are in the class.").wait_for()
                    student = _Page("student", page)
                    await rising(student, FRAMES_DECODED, "Teacher")  # type: ignore[arg-type]
                    await page.get_by_role("button", name="Turn on camera").click()
                    frames = teacher_media.frames(ls.id("student"), "camera")
                    deadline = asyncio.get_running_loop().time() + WAIT
                    while teacher_media.frames(ls.id("student"), "camera") < frames + 20:
                        assert asyncio.get_running_loop().time() < deadline, "the teacher decodes the student"
                        await asyncio.sleep(0.2)
                    shown = await page.evaluate("window.__errorToasts")
                    assert [text for text in shown if "Media" in text] == [], shown
                finally:
                    await browser.close()
        finally:
            await teacher_media.close()
        await ls.conns["teacher"].ok("end_class", ls.ref())


@dataclass
class _Page:
    """What tests.test_web_client.rising() needs of a person: a name and a page."""

    name: str
    page: Any


def test_servers_logged_no_errors_during_the_classes(cluster: Cluster) -> None:
    for process in cluster.processes:
        assert process.process.poll() is None, process.output()
        stderr = process.stderr()
        assert "Traceback" not in stderr and " ERROR " not in stderr, process.output()
