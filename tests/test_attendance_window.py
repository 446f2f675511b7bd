"""The register with set times, on SQLite and PostgreSQL: what it measures (the class as it ran), who is late, who
left early, and that a reconnect within the grace period leaves no gap.

A class scheduled 10:00-11:00 that the teacher opened at 09:52 and ended at 10:40 lasted 48 minutes: those minutes
are what the shares are of. Lateness counts from 10:00, the later of the scheduled and the actual start. The
intervals are written as the hub writes them (one row per connection's stay), then the report is read over HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from rooms import attendance as register
from server import keys
from server.db.models import AttendanceInterval, ClassSession, ClassState
from tests.helpers import Api, Person
from tests.test_chat import expect
from tests.test_class_lesson import circle_with

# Tomorrow: the people join the circle now, before the class, so they are on its register.
DAY = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)


def at(hhmm: str, seconds: int = 0) -> datetime:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return DAY + timedelta(hours=hours, minutes=minutes, seconds=seconds)


async def test_the_register_measures_the_class_as_it_ran(api: Api) -> None:
    teacher = await api.register("Teacher")
    names = ("Early Bird", "Just In Time", "Late Comer", "Never Came", "Left At Twenty", "Dropped Twice")
    people: dict[str, Person] = {name: await api.register(name) for name in names}
    circle_id = await circle_with(api, teacher, *people.values())
    class_id = expect(await api.call("POST", f"/api/circles/{circle_id}/classes", teacher, {
        "title": "Set times", "starts_at": at("10:00").isoformat(), "ends_at": at("11:00").isoformat(),
        "settings": {"late_after_minutes": 10, "present_percent": 85}}), 201)["id"]
    stays = {  # (joined, left) per connection
        "Teacher": [(at("09:51"), at("10:40"))],
        "Early Bird": [(at("09:53"), at("10:40"))],  # 47 of 48 minutes
        "Just In Time": [(at("10:09"), at("10:40"))],  # not late (10:00 + 10 min), but only 31 minutes
        "Late Comer": [(at("10:11"), at("10:40"))],
        "Left At Twenty": [(at("09:55"), at("10:20"))],
        # Two drops: 20 s (within the 30 s grace: no gap) and 7 minutes (a gap), and a phone that overlapped.
        "Dropped Twice": [(at("09:54"), at("10:10")), (at("10:10", 20), at("10:25")), (at("10:32"), at("10:40")),
                          (at("10:00"), at("10:05"))],
    }
    async with api.client.app[keys.DB]() as db, db.begin():
        await db.execute(update(ClassSession).where(ClassSession.id == class_id).values(
            state=ClassState.ENDED, started_at=at("09:52"), ended_at=at("10:40")))
        for name, intervals in stays.items():
            uid = teacher.id if name == "Teacher" else people[name].id
            for n, (joined, left) in enumerate(intervals):
                db.add(AttendanceInterval(session_id=class_id, user_id=uid, connection=f"{name}-{n}",
                                          joined_at=joined, left_at=left, reason="ended"))

    report = expect(await api.call("GET", f"/api/classes/{class_id}/attendance", teacher))
    assert report["scheduled_minutes"] == 60 and report["measured_minutes"] == 48
    got = {line["name"]: (line["status"], line["attended_minutes"]) for line in report["students"]}
    assert got == {
        "Early Bird": ("present", 47.0),  # 47 of the 48 minutes: 0.98
        "Just In Time": ("left_early", 31.0),
        "Late Comer": ("late", 29.0),
        "Never Came": ("absent", 0.0),
        "Left At Twenty": ("left_early", 25.0),
        "Dropped Twice": ("left_early", 39.0),  # 09:54-10:25 (one stay) and 10:32-10:40: 0.81
    }
    assert [line["status"] for line in report["teachers"]] == ["present"]
    assert report["counts"] == {"present": 1, "late": 1, "left_early": 3, "absent": 1}
    came = [line for line in report["students"] if line["first_join"]]
    first = {line["name"]: datetime.fromisoformat(line["first_join"]) for line in came}
    last = {line["name"]: datetime.fromisoformat(line["last_leave"]) for line in came}

    def same(a: datetime, b: datetime) -> bool:
        return abs((a - b).total_seconds()) < 0.001  # SQLite's julianday arithmetic keeps microseconds, about

    assert same(first["Dropped Twice"], at("09:54")) and same(last["Dropped Twice"], at("10:40"))
    assert same(first["Early Bird"], at("09:53"))  # the real arrival, though only the minutes from 09:52 count


def test_the_window_rule() -> None:
    s, e = at("10:00").timestamp(), at("11:00").timestamp()
    assert register.window(s, e, None, None, now=s - 600) == register.Window(s, e, s)  # not started: the schedule
    early = register.window(s, e, s - 480, s + 2400, now=e + 1)
    assert early == register.Window(s - 480, s + 2400, s)  # opened early: nobody is late before 10:10
    late = register.window(s, e, s + 600, None, now=s + 1200)
    assert late == register.Window(s + 600, s + 1200, s + 600)  # live, opened late: so far, late from the opening
