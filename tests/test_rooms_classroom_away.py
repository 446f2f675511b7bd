"""Dropped connections in rooms/classroom.py: ``Room.drop`` keeps a seat while its owner is away, ``expire_away``
ends it after the grace period; and the lookups the hub relies on (``placement``, ``role_of``, the ``away`` flag of
``participant_view``).

Rooms here are live unless a row says otherwise: teacher 1, students 10 and 11 seated (11 with a hand up and the screen
granted, 10 muted), observer 20 seated, and, with the lobby on, student 30 in the lobby. Times are plain seconds.
"""

from __future__ import annotations

from typing import Any

import pytest

from rooms.classroom import Media, Phase, Placement, Room, RoomRole, Settings
from rooms.errors import DomainError

TEACHER, ASSISTANT, STUDENT, OBSERVER = RoomRole.TEACHER, RoomRole.ASSISTANT, RoomRole.STUDENT, RoomRole.OBSERVER
JOINED, LOBBY, WAITING = Placement.JOINED, Placement.LOBBY, Placement.WAITING_FOR_START
MIC, CAM, SCREEN = Media.MICROPHONE, Media.CAMERA, Media.SCREEN
GRACE = 30.0


def room(*, lobby: bool = False, mute_on_entry: bool = False) -> Room:
    r = Room(settings=Settings(lobby=lobby, mute_on_entry=mute_on_entry))
    r.join(1, TEACHER)
    r.start(TEACHER)
    for user_id, role in ((10, STUDENT), (11, STUDENT), (20, OBSERVER)):
        r.join(user_id, role)
        if lobby and role is STUDENT:
            r.admit(TEACHER, user_id)
    r.raise_hand(11)
    r.grant(TEACHER, 11, SCREEN)
    r.mute(TEACHER, 10)
    if lobby:
        assert r.join(30, STUDENT) is LOBBY
    return r


def waiting_room() -> Room:
    """Not started: teacher 1 seated, student 10 and observer 20 waiting (10 on two devices)."""
    r = Room()
    r.join(1, TEACHER)
    r.join(10, STUDENT)
    r.join(10, STUDENT)
    r.join(20, OBSERVER)
    return r


def without(data: dict[str, Any], user_id: int) -> dict[str, Any]:
    """``to_dict`` with one participant's entry taken out (to compare the rest of the room)."""
    return {**data, "participants": [p for p in data["participants"] if p["user_id"] != user_id]}


# --- drop ---


@pytest.mark.parametrize("user_id", [1, 10, 11, 20])
def test_a_drop_keeps_the_seat_hand_and_permissions_while_away(user_id: int) -> None:
    r = room()
    before = r.to_dict()
    view = r.participant_view(user_id)
    r.drop(user_id, 100.0)
    assert r.placement(user_id) is JOINED
    assert r.role_of(user_id) is RoomRole(view["role"])
    p = r.participants[user_id]
    assert (p.connections, p.away_since) == (0, 100.0)
    assert r.hands == [11]
    assert without(r.to_dict(), user_id) == without(before, user_id)  # nobody else is touched
    entry = next(e for e in r.to_dict()["participants"] if e["user_id"] == user_id)
    old = next(e for e in before["participants"] if e["user_id"] == user_id)
    assert entry == {**old, "connections": 0, "away_since": 100.0}
    # Away, they publish nothing, and everyone can see they are away.
    assert r.publishing(user_id) == frozenset()
    assert r.participant_view(user_id) == {**view, "away": True, "may_publish": []}


@pytest.mark.parametrize("user_id", [1, 10, 11])
def test_back_within_the_grace_period_the_room_is_as_they_left_it(user_id: int) -> None:
    r = room()
    before = r.to_dict()
    view = r.participant_view(user_id)
    r.drop(user_id, 100.0)
    assert r.expire_away(100.0 + GRACE - 0.001, GRACE) == []
    assert r.join(user_id, RoomRole(view["role"])) is JOINED
    assert r.to_dict() == before
    assert r.participant_view(user_id) == view and view["away"] is False


def test_one_device_dropping_of_two_is_no_absence() -> None:
    r = room()
    r.join(11, STUDENT)  # a second device
    before = r.participant_view(11)
    r.drop(11, 100.0)
    p = r.participants[11]
    assert (p.connections, p.away_since) == (1, None)
    assert r.participant_view(11) == before
    assert r.expire_away(1e9, GRACE) == []
    r.drop(11, 200.0)
    assert r.participants[11].away_since == 200.0
    assert r.expire_away(200.0 + GRACE, GRACE) == [11]


def test_a_seat_kept_while_away_survives_a_lock_and_the_lobby() -> None:
    r = room(lobby=True)
    r.drop(11, 100.0)
    r.set_locked(TEACHER, True)
    assert r.join(11, STUDENT) is JOINED  # not refused, not sent to the lobby
    assert r.hands == [11] and SCREEN in r.publishing(11)


def test_someone_removed_while_away_cannot_come_back() -> None:
    r = room()
    r.drop(11, 100.0)
    r.remove(TEACHER, 11)
    assert 11 not in r.participants and r.hands == []
    before = r.to_dict()
    with pytest.raises(DomainError) as caught:
        r.join(11, STUDENT)
    assert caught.value.instance_code == "removed"
    assert r.to_dict() == before
    assert r.expire_away(1e9, GRACE) == []


@pytest.mark.parametrize(("joins", "drops", "placement"), [
    (1, 1, None),  # waiting, dropped: nothing to keep
    (2, 1, WAITING),  # another device still waits
    (2, 2, None),
])
def test_a_drop_before_the_start_takes_the_waiting_out(joins: int, drops: int, placement: Placement | None) -> None:
    r = Room()
    r.join(1, TEACHER)
    for _ in range(joins):
        assert r.join(10, STUDENT) is WAITING
    for n in range(drops):
        r.drop(10, 100.0 + n)
    assert r.placement(10) is placement
    assert (10 in r.waiting) is (placement is WAITING)
    assert (10 in r.devices) is (placement is WAITING)
    assert 10 not in r.participants
    r.start(TEACHER)
    assert (10 in r.participants) is (placement is WAITING)


def test_a_drop_from_the_lobby_takes_them_out_of_it() -> None:
    r = room(lobby=True)
    r.drop(30, 100.0)
    assert r.placement(30) is None and r.lobby == {} and 30 not in r.devices
    with pytest.raises(DomainError) as caught:
        r.admit(TEACHER, 30)
    assert caught.value.instance_code == "not_in_lobby"


@pytest.mark.parametrize("user_id", [99, 0])
def test_a_drop_of_someone_not_in_the_room_changes_nothing(user_id: int) -> None:
    r = room(lobby=True)
    before = r.to_dict()
    r.drop(user_id, 100.0)
    assert r.to_dict() == before


def test_leaving_while_away_takes_the_seat() -> None:
    r = room()
    r.drop(11, 100.0)
    assert r.leave(11) is True
    assert 11 not in r.participants and r.hands == []


# --- expire_away ---


@pytest.mark.parametrize(("away_since", "now", "grace", "gone"), [
    (100.0, 100.0, GRACE, False),
    (100.0, 129.999, GRACE, False),
    (100.0, 130.0, GRACE, True),  # exactly the grace period
    (100.0, 1000.0, GRACE, True),
    (100.0, 100.0, 0.0, True),  # no grace at all
    (100.0, 101.0, 1.0, True),
    (100.0, 100.5, 1.0, False),
    (100.0, 50.0, GRACE, False),  # a clock that went back does not expire anyone
])
def test_expire_away_at_the_grace_boundary(away_since: float, now: float, grace: float, gone: bool) -> None:
    r = room()
    r.drop(11, away_since)
    assert r.expire_away(now, grace) == ([11] if gone else [])
    assert (11 in r.participants) is not gone
    assert (r.hands == []) is gone
    assert r.placement(11) is (None if gone else JOINED)
    assert r.role_of(11) is (None if gone else STUDENT)


def test_expire_away_takes_only_those_away_long_enough_in_seating_order() -> None:
    r = room()
    r.raise_hand(10)
    r.drop(20, 90.0)
    r.drop(11, 100.0)
    r.drop(10, 125.0)
    r.drop(1, 95.0)
    assert r.expire_away(125.0, GRACE) == [1, 20]
    assert set(r.participants) == {10, 11} and r.hands == [11, 10]
    assert r.expire_away(130.0, GRACE) == [11]
    assert r.hands == [10]
    assert r.expire_away(130.0, GRACE) == []  # once
    assert r.expire_away(155.0, GRACE) == [10]
    assert r.participants == {} and r.hands == []


def test_expire_away_leaves_the_connected_the_waiting_and_the_lobby_alone() -> None:
    r = room(lobby=True)
    before = r.to_dict()
    assert r.expire_away(1e12, 0.0) == []
    assert r.to_dict() == before
    w = waiting_room()
    before = w.to_dict()
    assert w.expire_away(1e12, 0.0) == []
    assert w.to_dict() == before


def test_after_the_grace_period_a_return_is_a_fresh_arrival() -> None:
    r = room(lobby=True, mute_on_entry=True)
    r.drop(11, 100.0)
    assert r.expire_away(200.0, GRACE) == [11]
    assert r.join(11, STUDENT) is LOBBY  # the lobby applies again
    r.admit(TEACHER, 11)
    p = r.participants[11]
    assert p.allowed == {MIC, CAM} and p.force_muted is True and p.away_since is None  # the settings', not theirs
    assert r.hands == []
    r.drop(10, 100.0)
    r.expire_away(200.0, GRACE)
    r.set_locked(TEACHER, True)
    with pytest.raises(DomainError) as caught:
        r.join(10, STUDENT)
    assert caught.value.instance_code == "room_locked"


def test_an_away_teacher_expires_too_and_comes_back_as_teacher() -> None:
    r = room()
    r.drop(1, 100.0)
    assert r.expire_away(200.0, GRACE) == [1]
    assert r.role_of(1) is None
    assert r.join(1, TEACHER) is JOINED  # staff are never locked out or queued
    assert r.participants[1].allowed == set(Media)


def test_the_away_time_survives_the_state_store() -> None:
    r = room()
    r.drop(11, 123.25)
    again = Room.from_dict(r.to_dict())
    assert again.participants[11].away_since == 123.25
    assert again.participant_view(11)["away"] is True
    assert again.expire_away(153.25, GRACE) == [11]
    # A room stored before the field existed reads as nobody away.
    old = r.to_dict()
    for entry in old["participants"]:
        del entry["away_since"]
    assert all(p.away_since is None for p in Room.from_dict(old).participants.values())


def test_an_ended_class_has_nobody_away() -> None:
    r = room()
    r.drop(11, 100.0)
    assert r.end(TEACHER) == [1, 10, 11, 20]
    assert r.expire_away(1e9, 0.0) == []
    assert r.phase is Phase.ENDED


# --- placement and role_of ---


@pytest.mark.parametrize(("build", "user_id", "placement", "role"), [
    (room, 1, JOINED, TEACHER),
    (room, 10, JOINED, STUDENT),
    (room, 20, JOINED, OBSERVER),
    (room, 99, None, None),
    (lambda: room(lobby=True), 30, LOBBY, STUDENT),
    (waiting_room, 1, JOINED, TEACHER),
    (waiting_room, 10, WAITING, STUDENT),
    (waiting_room, 20, WAITING, OBSERVER),
    (waiting_room, 11, None, None),
])
def test_placement_and_role_of(build: Any, user_id: int, placement: Placement | None, role: RoomRole | None) -> None:
    r = build()
    before = r.to_dict()
    assert r.placement(user_id) is placement
    assert r.role_of(user_id) is role
    assert r.to_dict() == before  # lookups change nothing


def test_placement_and_role_follow_the_room_through_its_life() -> None:
    r = Room(settings=Settings(lobby=True))
    r.join(1, TEACHER)
    r.join(2, ASSISTANT)
    r.join(10, STUDENT)
    assert (r.placement(10), r.role_of(10)) == (WAITING, STUDENT)
    assert (r.placement(2), r.role_of(2)) == (JOINED, ASSISTANT)
    r.start(TEACHER)
    assert (r.placement(10), r.role_of(10)) == (LOBBY, STUDENT)
    r.admit(ASSISTANT, 10)
    assert (r.placement(10), r.role_of(10)) == (JOINED, STUDENT)
    r.remove(TEACHER, 10)
    assert (r.placement(10), r.role_of(10)) == (None, None)  # removed: in no place
    r.join(11, STUDENT)
    r.deny(TEACHER, 11)
    assert (r.placement(11), r.role_of(11)) == (None, None)
    r.end(TEACHER)
    assert (r.placement(1), r.role_of(1)) == (None, None)


# --- participant_view ---


@pytest.mark.parametrize(("user_id", "expected"), [
    (1, {"role": "teacher", "may_publish": ["camera", "microphone", "screen"], "force_muted": False}),
    (10, {"role": "student", "may_publish": ["camera"], "force_muted": True}),
    (11, {"role": "student", "may_publish": ["camera", "microphone", "screen"], "force_muted": False}),
    (20, {"role": "observer", "may_publish": [], "force_muted": False}),
])
def test_participant_view_present_and_away(user_id: int, expected: dict[str, Any]) -> None:
    r = room()
    assert r.participant_view(user_id) == {"user_id": user_id, **expected, "away": False}
    r.drop(user_id, 100.0)
    assert r.participant_view(user_id) == {"user_id": user_id, **expected, "may_publish": [], "away": True}
    assert r.snapshot()["participants"] == [r.participant_view(uid) for uid in (1, 10, 11, 20)]
    r.join(user_id, RoomRole(expected["role"]))
    assert r.participant_view(user_id) == {"user_id": user_id, **expected, "away": False}


def test_participant_view_is_for_the_seated_only() -> None:
    r = room(lobby=True)
    for user_id in (30, 99):
        with pytest.raises(KeyError):
            r.participant_view(user_id)
