"""The live class room's rules in rooms/classroom.py, table by table, and a hypothesis walk over random operations.

Every refusal is checked by its stable ``instance_code`` and by comparing ``to_dict()`` before and after: the module
promises that a method which raises leaves the room unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rooms.classroom import Media, Participant, Phase, Placement, Room, RoomRole, Settings
from rooms.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound

TEACHER, ASSISTANT, STUDENT, OBSERVER = RoomRole.TEACHER, RoomRole.ASSISTANT, RoomRole.STUDENT, RoomRole.OBSERVER
SCHEDULED, LIVE, ENDED = Phase.SCHEDULED, Phase.LIVE, Phase.ENDED
JOINED, LOBBY, WAITING = Placement.JOINED, Placement.LOBBY, Placement.WAITING_FOR_START
MIC, CAM, SCREEN = Media.MICROPHONE, Media.CAMERA, Media.SCREEN
ALL_MEDIA = frozenset(Media)


def refused(room: Room, code: str, call: Callable[[], object], kind: type[DomainError] = DomainError) -> None:
    """``call()`` raises ``kind`` with ``code``, and the room is exactly as it was."""
    before = room.to_dict()
    with pytest.raises(kind) as caught:
        call()
    assert caught.value.instance_code == code
    assert room.to_dict() == before


def live_room(room_settings: Settings | None = None, students: tuple[int, ...] = (10, 11, 12)) -> Room:
    """A started class: teacher 1, and ``students`` who joined after the start."""
    room = Room(settings=room_settings or Settings())
    room.join(1, TEACHER)
    room.start(TEACHER)
    for user_id in students:
        room.join(user_id, STUDENT)
    return room


def busy_room() -> Room:
    """Live, lobby on: teacher 1, assistant 2, students 10 and 11 seated with hands up, observer 20, student 30 in the
    lobby."""
    room = Room(settings=Settings(lobby=True))
    room.join(1, TEACHER)
    room.join(2, ASSISTANT)
    room.join(10, STUDENT)
    room.join(11, STUDENT)
    room.join(20, OBSERVER)
    room.start(TEACHER)
    room.admit(TEACHER, 10)
    room.admit(TEACHER, 11)
    room.join(30, STUDENT)
    room.raise_hand(10)
    room.raise_hand(11)
    return room


def scheduled_room() -> Room:
    """Not started: teacher 1 and assistant 2 seated, students 10 and 11 and observer 20 waiting."""
    room = Room()
    room.join(1, TEACHER)
    room.join(2, ASSISTANT)
    room.join(10, STUDENT)
    room.join(11, STUDENT)
    room.join(20, OBSERVER)
    return room


# --- joining ---


@pytest.mark.parametrize(("phase", "locked", "lobby", "full", "role", "removed", "expected"), [
    # before the start: staff sit down, everyone else waits (lobby and capacity apply at the start)
    (SCHEDULED, False, False, False, TEACHER, False, JOINED),
    (SCHEDULED, False, False, False, ASSISTANT, False, JOINED),
    (SCHEDULED, False, False, False, STUDENT, False, WAITING),
    (SCHEDULED, False, False, False, OBSERVER, False, WAITING),
    (SCHEDULED, False, True, False, STUDENT, False, WAITING),
    (SCHEDULED, False, False, True, STUDENT, False, WAITING),
    (SCHEDULED, False, False, True, TEACHER, False, JOINED),
    # live, open
    (LIVE, False, False, False, TEACHER, False, JOINED),
    (LIVE, False, False, False, ASSISTANT, False, JOINED),
    (LIVE, False, False, False, STUDENT, False, JOINED),
    (LIVE, False, False, False, OBSERVER, False, JOINED),
    # live, lobby on: only students wait for admission
    (LIVE, False, True, False, STUDENT, False, LOBBY),
    (LIVE, False, True, False, OBSERVER, False, JOINED),
    (LIVE, False, True, False, TEACHER, False, JOINED),
    (LIVE, False, True, False, ASSISTANT, False, JOINED),
    (LIVE, False, True, True, STUDENT, False, LOBBY),  # capacity is checked when admitted
    # live, locked: new students and observers refused, staff still come in
    (LIVE, True, False, False, STUDENT, False, "room_locked"),
    (LIVE, True, False, False, OBSERVER, False, "room_locked"),
    (LIVE, True, True, False, STUDENT, False, "room_locked"),
    (LIVE, True, False, False, TEACHER, False, JOINED),
    (LIVE, True, False, False, ASSISTANT, False, JOINED),
    (LIVE, True, False, True, STUDENT, False, "room_locked"),
    # live, full: staff are not counted against the limit
    (LIVE, False, False, True, STUDENT, False, "room_full"),
    (LIVE, False, False, True, OBSERVER, False, "room_full"),
    (LIVE, False, False, True, TEACHER, False, JOINED),
    (LIVE, False, False, True, ASSISTANT, False, JOINED),
    # removed: refused whatever else holds
    (LIVE, False, False, False, STUDENT, True, "removed"),
    (LIVE, False, False, False, ASSISTANT, True, "removed"),
    (LIVE, True, False, False, STUDENT, True, "removed"),
    (LIVE, False, True, False, STUDENT, True, "removed"),
    (LIVE, False, False, True, STUDENT, True, "removed"),
    # ended: nobody comes in, not even the teacher
    (ENDED, False, False, False, TEACHER, False, "class_ended"),
    (ENDED, False, False, False, ASSISTANT, False, "class_ended"),
    (ENDED, False, False, False, STUDENT, False, "class_ended"),
    (ENDED, False, False, False, OBSERVER, False, "class_ended"),
    (ENDED, True, True, False, STUDENT, True, "class_ended"),
])
def test_join(
    phase: Phase, locked: bool, lobby: bool, full: bool, role: RoomRole, removed: bool, expected: Placement | str,
) -> None:
    room = Room(settings=Settings(lobby=lobby, max_participants=1 if full else 300), phase=phase, locked=locked)
    if phase is not ENDED:
        room.participants[1] = Participant(1, TEACHER, set(Media))  # the one seat a full room has
    if removed:
        room.removed.add(10)
    if isinstance(expected, Placement):
        assert room.join(10, role) is expected
        where: dict[Placement, Any] = {JOINED: room.participants, LOBBY: room.lobby, WAITING: room.waiting}
        assert [p for p, people in where.items() if 10 in people] == [expected]
    else:
        kind = Conflict if expected in {"class_ended", "room_full"} else Forbidden
        refused(room, expected, lambda: room.join(10, role), kind)


@pytest.mark.parametrize(("role", "allowed"), [
    (TEACHER, ALL_MEDIA),
    (ASSISTANT, ALL_MEDIA),
    (STUDENT, frozenset({CAM})),  # the settings' students_may
    (OBSERVER, frozenset()),
])
def test_seated_permissions_follow_the_role(role: RoomRole, allowed: frozenset[Media]) -> None:
    room = live_room(Settings(students_may=frozenset({CAM})), students=())
    room.join(10, role)
    assert room.participants[10].allowed == set(allowed)
    assert room.participants[10].connections == 1
    assert not room.participants[10].force_muted


# --- starting and ending ---


def test_start_seats_the_waiting_in_arrival_order() -> None:
    room = scheduled_room()
    assert room.start(TEACHER) == [10, 11, 20]
    assert room.phase is LIVE
    assert list(room.participants) == [1, 2, 10, 11, 20]
    assert room.waiting == {}
    assert room.lobby == {}


def test_start_with_the_lobby_on_moves_waiting_students_to_the_lobby() -> None:
    room = Room(settings=Settings(lobby=True))
    room.join(1, TEACHER)
    room.join(11, STUDENT)
    room.join(20, OBSERVER)
    room.join(10, STUDENT)
    assert room.start(TEACHER) == [20]  # observers are not held in the lobby
    assert list(room.lobby.items()) == [(11, STUDENT), (10, STUDENT)]
    assert list(room.participants) == [1, 20]
    assert room.waiting == {}


def test_start_with_mute_on_entry_seats_waiting_students_force_muted() -> None:
    room = Room(settings=Settings(mute_on_entry=True))
    room.join(1, TEACHER)
    room.join(10, STUDENT)
    room.start(TEACHER)
    assert room.participants[10].force_muted
    assert not room.participants[1].force_muted


def test_start_does_not_lose_waiting_students_beyond_capacity() -> None:
    """When the waiting outnumber the free seats, the overflow waits in the lobby for a teacher to admit them."""
    room = Room(settings=Settings(max_participants=2))
    room.join(1, TEACHER)
    for user_id in (10, 11, 12):
        room.join(user_id, STUDENT)
    assert room.start(TEACHER) == [10]
    assert {11, 12} <= set(room.participants) | set(room.waiting) | set(room.lobby)
    assert list(room.lobby) == [11, 12]


@pytest.mark.parametrize("actor", [ASSISTANT, STUDENT, OBSERVER, None])
def test_only_the_teacher_starts(actor: RoomRole | None) -> None:
    room = scheduled_room()
    refused(room, "teacher_only", lambda: room.start(actor), Forbidden)


@pytest.mark.parametrize("phase", [LIVE, ENDED])
def test_start_needs_a_scheduled_class(phase: Phase) -> None:
    room = Room(phase=phase)
    refused(room, "not_scheduled", lambda: room.start(TEACHER), Conflict)


def test_end_clears_everyone_and_returns_who_was_in() -> None:
    room = busy_room()
    room.remove(TEACHER, 11)
    room.set_locked(TEACHER, True)
    assert room.end(TEACHER) == [1, 2, 20, 10]  # seated order: the observer sat down at the start
    assert room.phase is ENDED
    assert (room.participants, room.waiting, room.lobby, room.hands) == ({}, {}, {}, [])
    assert room.removed == {11}
    assert not room.may_publish(1, MIC)
    refused(room, "class_ended", lambda: room.join(1, TEACHER))


@pytest.mark.parametrize("actor", [ASSISTANT, STUDENT, OBSERVER, None])
def test_only_the_teacher_ends(actor: RoomRole | None) -> None:
    room = busy_room()
    refused(room, "teacher_only", lambda: room.end(actor), Forbidden)


@pytest.mark.parametrize("phase", [SCHEDULED, ENDED])
def test_end_needs_a_live_class(phase: Phase) -> None:
    room = scheduled_room() if phase is SCHEDULED else Room(phase=ENDED)
    refused(room, "class_not_live", lambda: room.end(TEACHER), Conflict)


# --- lobby, removal, lock ---


@pytest.mark.parametrize("actor", [TEACHER, ASSISTANT])
def test_admit_seats_from_the_lobby(actor: RoomRole) -> None:
    room = busy_room()
    room.admit(actor, 30)
    assert 30 not in room.lobby
    assert room.participants[30].role is STUDENT
    assert room.may_publish(30, MIC)


@pytest.mark.parametrize("actor", [TEACHER, ASSISTANT])
def test_deny_drops_from_the_lobby_without_barring(actor: RoomRole) -> None:
    room = busy_room()
    room.deny(actor, 30)
    assert 30 not in room.lobby
    assert 30 not in room.participants
    assert 30 not in room.removed
    assert room.join(30, STUDENT) is LOBBY  # denied is not removed: they may knock again


@pytest.mark.parametrize(("target", "method"), [
    (10, "admit"), (10, "deny"),  # already seated
    (99, "admit"), (99, "deny"),  # never here
    (1, "admit"), (1, "deny"),
])
def test_admit_and_deny_need_someone_in_the_lobby(target: int, method: str) -> None:
    room = busy_room()
    refused(room, "not_in_lobby", lambda: getattr(room, method)(TEACHER, target), NotFound)


def test_admit_refuses_a_full_room() -> None:
    room = busy_room()
    room.settings = Settings(lobby=True, max_participants=len(room.participants))
    refused(room, "room_full", lambda: room.admit(TEACHER, 30), Conflict)


def test_admit_needs_a_live_class() -> None:
    room = busy_room()
    room.end(TEACHER)
    refused(room, "class_not_live", lambda: room.admit(TEACHER, 30), Conflict)


@pytest.mark.parametrize(("actor", "target"), [
    (TEACHER, 10),  # a seated student with a raised hand
    (ASSISTANT, 11),
    (TEACHER, 30),  # a student in the lobby
    (TEACHER, 20),  # an observer
    (TEACHER, 2),  # an assistant
    (ASSISTANT, 2),
])
def test_remove_takes_them_out_for_the_session(actor: RoomRole, target: int) -> None:
    room = busy_room()
    role = room.participants[target].role if target in room.participants else room.lobby[target]
    room.remove(actor, target)
    assert target not in room.participants
    assert target not in room.lobby
    assert target not in room.hands
    assert target in room.removed
    refused(room, "removed", lambda: room.join(target, role), Forbidden)


@pytest.mark.parametrize("actor", [TEACHER, ASSISTANT])
def test_a_teacher_cannot_be_removed(actor: RoomRole) -> None:
    room = busy_room()
    refused(room, "teacher_protected", lambda: room.remove(actor, 1), Forbidden)


def test_remove_needs_someone_in_the_class() -> None:
    room = busy_room()
    refused(room, "not_in_room", lambda: room.remove(TEACHER, 99), NotFound)


def test_remove_takes_every_device_out() -> None:
    room = busy_room()
    room.join(10, STUDENT)
    room.remove(TEACHER, 10)
    assert 10 not in room.participants
    assert not room.leave(10)


def test_lock_refuses_new_students_but_not_teachers_or_second_devices() -> None:
    room = live_room(students=(10,))
    room.set_locked(TEACHER, True)
    refused(room, "room_locked", lambda: room.join(11, STUDENT), Forbidden)
    refused(room, "room_locked", lambda: room.join(20, OBSERVER), Forbidden)
    assert room.join(2, ASSISTANT) is JOINED
    assert room.join(3, TEACHER) is JOINED
    assert room.join(10, STUDENT) is JOINED  # already in: another device
    assert room.participants[10].connections == 2
    room.set_locked(ASSISTANT, False)
    assert room.join(11, STUDENT) is JOINED


def test_lock_needs_a_live_class() -> None:
    room = scheduled_room()
    refused(room, "class_not_live", lambda: room.set_locked(TEACHER, True), Conflict)


# --- devices ---


def test_a_participant_stays_until_their_last_connection_leaves() -> None:
    room = live_room(students=(10,))
    room.raise_hand(10)
    assert room.join(10, STUDENT) is JOINED
    assert room.join(10, STUDENT) is JOINED
    assert room.participants[10].connections == 3
    assert room.leave(10) is False
    assert room.leave(10) is False
    assert 10 in room.participants
    assert room.hands == [10]
    assert room.leave(10) is True
    assert 10 not in room.participants
    assert room.hands == []  # leaving takes the hand down
    assert room.leave(10) is False  # nobody left to go


def test_leaving_before_the_start_or_from_the_lobby() -> None:
    room = scheduled_room()
    assert room.leave(10) is False
    assert 10 not in room.waiting
    room = busy_room()
    assert room.leave(30) is False
    assert 30 not in room.lobby


@pytest.mark.parametrize("where", ["waiting", "lobby"])
def test_a_second_device_keeps_a_student_waiting(where: str) -> None:
    """Connections count while waiting too: closing one of two devices keeps a student waiting (or in the lobby)."""
    room = scheduled_room() if where == "waiting" else busy_room()
    user_id = 40
    room.join(user_id, STUDENT)
    room.join(user_id, STUDENT)  # laptop and phone
    room.leave(user_id)  # the phone goes
    assert user_id in getattr(room, where)


# --- hands ---


def test_hands_are_first_come_first_served_and_raising_twice_is_harmless() -> None:
    room = live_room()
    room.raise_hand(11)
    room.raise_hand(10)
    room.raise_hand(11)
    room.raise_hand(12)
    assert room.hands == [11, 10, 12]
    room.lower_hand(10, STUDENT, 10)
    assert room.hands == [11, 12]
    room.raise_hand(10)
    assert room.hands == [11, 12, 10]  # back of the queue


@pytest.mark.parametrize("role", [TEACHER, ASSISTANT, OBSERVER])
def test_only_students_raise_hands(role: RoomRole) -> None:
    room = live_room()
    room.join(5, role)
    refused(room, "not_a_student", lambda: room.raise_hand(5), Conflict)


def test_raising_a_hand_needs_a_seat() -> None:
    room = busy_room()
    refused(room, "not_in_room", lambda: room.raise_hand(30), NotFound)  # still in the lobby
    refused(room, "not_in_room", lambda: room.raise_hand(99), NotFound)


@pytest.mark.parametrize(("actor_id", "actor", "target", "expected"), [
    (10, STUDENT, 10, None),  # one's own hand
    (1, TEACHER, 10, None),
    (2, ASSISTANT, 11, None),
    (11, STUDENT, 10, "teacher_only"),  # someone else's hand
    (20, OBSERVER, 10, "teacher_only"),
    (99, None, 10, "teacher_only"),
    (12, STUDENT, 12, "hand_not_raised"),
    (1, TEACHER, 12, "hand_not_raised"),
    (11, STUDENT, 12, "teacher_only"),  # the permission is checked first
])
def test_lower_hand(actor_id: int, actor: RoomRole | None, target: int, expected: str | None) -> None:
    room = live_room()
    room.join(2, ASSISTANT)
    room.join(20, OBSERVER)
    room.raise_hand(10)
    room.raise_hand(11)
    if expected is None:
        room.lower_hand(actor_id, actor, target)
        assert target not in room.hands
        assert len(room.hands) == 1
    else:
        refused(room, expected, lambda: room.lower_hand(actor_id, actor, target))


@pytest.mark.parametrize("actor", [TEACHER, ASSISTANT])
def test_call_on_takes_the_hand_down_and_gives_the_microphone(actor: RoomRole) -> None:
    room = live_room(Settings(students_may=frozenset({CAM}), mute_on_entry=True))
    room.join(2, ASSISTANT)
    room.raise_hand(10)
    room.raise_hand(11)
    assert not room.may_publish(11, MIC)
    room.call_on(actor, 11)
    assert room.hands == [10]
    assert MIC in room.participants[11].allowed
    assert not room.participants[11].force_muted
    assert room.may_publish(11, MIC)
    assert not room.may_publish(10, MIC)


def test_call_on_needs_someone_seated() -> None:
    room = busy_room()
    refused(room, "not_in_room", lambda: room.call_on(TEACHER, 30), NotFound)


# --- media ---


@pytest.mark.parametrize(("role", "allowed", "force_muted", "media", "expected"), [
    (STUDENT, {MIC, CAM}, False, MIC, True),
    (STUDENT, {MIC, CAM}, False, CAM, True),
    (STUDENT, {MIC, CAM}, False, SCREEN, False),
    (STUDENT, {MIC, CAM}, True, MIC, False),  # a force-mute silences the microphone ...
    (STUDENT, {MIC, CAM}, True, CAM, True),  # ... and only the microphone
    (STUDENT, {CAM}, False, MIC, False),
    (STUDENT, set(), False, CAM, False),
    (STUDENT, {SCREEN}, False, SCREEN, True),
    (STUDENT, {SCREEN}, True, SCREEN, True),
    (TEACHER, set(), True, MIC, True),  # staff always publish
    (TEACHER, set(), False, SCREEN, True),
    (ASSISTANT, set(), True, MIC, True),
    (ASSISTANT, set(), False, CAM, True),
    (OBSERVER, set(ALL_MEDIA), False, MIC, False),  # observers never do
    (OBSERVER, set(ALL_MEDIA), False, CAM, False),
    (OBSERVER, set(ALL_MEDIA), False, SCREEN, False),
    (OBSERVER, {MIC}, True, MIC, False),
])
def test_may_publish(role: RoomRole, allowed: set[Media], force_muted: bool, media: Media, expected: bool) -> None:
    room = live_room(students=())
    room.participants[10] = Participant(10, role, set(allowed), force_muted=force_muted)
    assert room.may_publish(10, media) is expected


@pytest.mark.parametrize("media", list(Media))
def test_nobody_publishes_outside_a_live_class_or_outside_the_room(media: Media) -> None:
    room = scheduled_room()
    assert not room.may_publish(1, media)  # the teacher, seated before the start
    room.start(TEACHER)
    assert room.may_publish(1, media)
    assert not room.may_publish(99, media)
    room.end(TEACHER)
    assert not room.may_publish(1, media)


def test_mute_on_entry_seats_students_force_muted() -> None:
    room = live_room(Settings(mute_on_entry=True), students=(10,))
    room.join(2, ASSISTANT)
    room.join(20, OBSERVER)
    assert room.participants[10].force_muted
    assert not room.may_publish(10, MIC)
    assert room.may_publish(10, CAM)
    assert not room.participants[2].force_muted
    assert not room.participants[20].force_muted
    assert room.may_publish(1, MIC)


@pytest.mark.parametrize("actor", [TEACHER, ASSISTANT])
def test_mute_all_mutes_every_student_and_no_one_else(actor: RoomRole) -> None:
    room = busy_room()
    assert room.mute_all(actor) == [10, 11]
    assert {uid for uid, p in room.participants.items() if p.force_muted} == {10, 11}
    assert not room.may_publish(10, MIC)
    assert room.may_publish(10, CAM)
    assert room.may_publish(1, MIC)
    assert room.may_publish(2, MIC)
    room.admit(actor, 30)
    assert room.may_publish(30, MIC)  # muting is of those present, not a setting


def test_mute_then_grant_the_microphone() -> None:
    room = live_room(students=(10,))
    room.mute(TEACHER, 10)
    assert not room.may_publish(10, MIC)
    room.grant(TEACHER, 10, CAM)
    assert room.participants[10].force_muted  # granting something else keeps the mute
    room.grant(TEACHER, 10, MIC)
    assert not room.participants[10].force_muted
    assert room.may_publish(10, MIC)


def test_grant_and_revoke() -> None:
    room = live_room(Settings(students_may=frozenset()), students=(10,))
    assert not room.may_publish(10, SCREEN)
    room.grant(ASSISTANT, 10, SCREEN)
    assert room.may_publish(10, SCREEN)
    room.revoke(TEACHER, 10, SCREEN)
    assert not room.may_publish(10, SCREEN)
    room.revoke(TEACHER, 10, SCREEN)  # revoking what is not allowed is harmless
    assert room.participants[10].allowed == set()


@pytest.mark.parametrize(("method", "extra"), [("grant", (MIC,)), ("revoke", (CAM,)), ("mute", ())])
@pytest.mark.parametrize(("target", "code"), [
    (20, "not_a_student"),  # observer
    (2, "not_a_student"),  # assistant
    (1, "not_a_student"),  # teacher
    (30, "not_in_room"),  # in the lobby
    (99, "not_in_room"),
])
def test_media_controls_need_a_seated_student(method: str, extra: tuple[Media, ...], target: int, code: str) -> None:
    room = busy_room()
    refused(room, code, lambda: getattr(room, method)(TEACHER, target, *extra))


def test_observers_never_publish_whatever_the_teacher_does() -> None:
    room = busy_room()
    refused(room, "not_a_student", lambda: room.grant(TEACHER, 20, MIC), InvalidInput)
    refused(room, "not_a_student", lambda: room.call_on(TEACHER, 20), InvalidInput)
    assert not any(room.may_publish(20, m) for m in Media)


# --- every teacher control, refused for students and observers ---

Control = Callable[[Room, int, RoomRole | None], object]

CONTROLS: dict[str, tuple[Callable[[], Room], Control]] = {
    "start": (scheduled_room, lambda r, _, a: r.start(a)),
    "end": (busy_room, lambda r, _, a: r.end(a)),
    "admit": (busy_room, lambda r, _, a: r.admit(a, 30)),
    "deny": (busy_room, lambda r, _, a: r.deny(a, 30)),
    "remove": (busy_room, lambda r, _, a: r.remove(a, 11)),
    "lock": (busy_room, lambda r, _, a: r.set_locked(a, True)),
    "lower_hand": (busy_room, lambda r, i, a: r.lower_hand(i, a, 10)),
    "call_on": (busy_room, lambda r, _, a: r.call_on(a, 10)),
    "grant": (busy_room, lambda r, _, a: r.grant(a, 10, SCREEN)),
    "revoke": (busy_room, lambda r, _, a: r.revoke(a, 10, CAM)),
    "mute": (busy_room, lambda r, _, a: r.mute(a, 10)),
    "mute_all": (busy_room, lambda r, _, a: r.mute_all(a)),
}
TEACHER_ONLY = {"start", "end"}  # an assistant may do everything else


@pytest.mark.parametrize(("actor_id", "actor"), [(11, STUDENT), (20, OBSERVER), (99, None)])
@pytest.mark.parametrize("control", sorted(CONTROLS))
def test_teacher_controls_are_refused_for_students_and_observers(
    control: str, actor_id: int, actor: RoomRole | None,
) -> None:
    make, call = CONTROLS[control]
    room = make()
    refused(room, "teacher_only", lambda: call(room, actor_id, actor), Forbidden)


@pytest.mark.parametrize(("actor_id", "actor"), [(1, TEACHER), (2, ASSISTANT)])
@pytest.mark.parametrize("control", sorted(CONTROLS))
def test_teacher_controls_work_for_staff(control: str, actor_id: int, actor: RoomRole) -> None:
    make, call = CONTROLS[control]
    room = make()
    before = room.to_dict()
    if actor is ASSISTANT and control in TEACHER_ONLY:
        refused(room, "teacher_only", lambda: call(room, actor_id, actor), Forbidden)
    else:
        call(room, actor_id, actor)
        assert room.to_dict() != before


# --- refusals change nothing ---


REFUSALS: list[tuple[str, Callable[[Room], object], str]] = [
    ("join removed", lambda r: r.join(11, STUDENT), "removed"),
    ("admit seated", lambda r: r.admit(TEACHER, 10), "not_in_lobby"),
    ("deny stranger", lambda r: r.deny(TEACHER, 99), "not_in_lobby"),
    ("remove teacher", lambda r: r.remove(ASSISTANT, 1), "teacher_protected"),
    ("remove stranger", lambda r: r.remove(TEACHER, 99), "not_in_room"),
    ("start again", lambda r: r.start(TEACHER), "not_scheduled"),
    ("raise observer", lambda r: r.raise_hand(20), "not_a_student"),
    ("lower other", lambda r: r.lower_hand(12, STUDENT, 10), "teacher_only"),
    ("lower unraised", lambda r: r.lower_hand(12, STUDENT, 12), "hand_not_raised"),
    ("call_on lobby", lambda r: r.call_on(TEACHER, 30), "not_in_room"),
    ("grant assistant", lambda r: r.grant(TEACHER, 2, MIC), "not_a_student"),
    ("mute observer", lambda r: r.mute(TEACHER, 20), "not_a_student"),
    ("mute_all student", lambda r: r.mute_all(STUDENT), "teacher_only"),
]


@pytest.mark.parametrize(("name", "call", "code"), REFUSALS, ids=[name for name, _, _ in REFUSALS])
def test_a_refused_call_leaves_the_room_unchanged(name: str, call: Callable[[Room], object], code: str) -> None:
    room = busy_room()
    room.join(12, STUDENT)  # a seated student with no hand up
    room.remove(TEACHER, 11)
    room.mute(TEACHER, 10)
    refused(room, code, lambda: call(room))


# --- the snapshot and the stored form ---


def test_snapshot() -> None:
    room = Room(settings=Settings(lobby=True, mute_on_entry=True))
    room.join(1, TEACHER)
    room.join(20, OBSERVER)
    room.join(10, STUDENT)
    before = room.snapshot()
    assert before["phase"] == "scheduled"
    assert before["participants"] == [
        {"user_id": 1, "role": "teacher", "may_publish": [], "force_muted": False,
         "away": False},  # not live yet
    ]
    assert before["waiting"] == [20, 10]
    room.start(TEACHER)
    room.admit(TEACHER, 10)
    room.join(11, STUDENT)
    room.raise_hand(10)
    room.set_locked(TEACHER, True)
    assert room.snapshot() == {
        "phase": "live",
        "locked": True,
        "participants": [
            {"user_id": 1, "role": "teacher", "may_publish": ["camera", "microphone", "screen"],
             "force_muted": False, "away": False},
            {"user_id": 20, "role": "observer", "may_publish": [], "force_muted": False, "away": False},
            {"user_id": 10, "role": "student", "may_publish": ["camera"], "force_muted": True, "away": False},
        ],
        "hands": [10],
        "lobby": [11],
        "waiting": [],
    }
    json.dumps(room.snapshot())  # goes to the client as it is


def test_to_dict_from_dict_round_trips_a_busy_room() -> None:
    room = busy_room()
    room.join(10, STUDENT)
    room.mute(TEACHER, 11)
    room.grant(TEACHER, 10, SCREEN)
    room.remove(TEACHER, 20)
    room.set_locked(TEACHER, True)
    data = json.loads(json.dumps(room.to_dict()))
    again = Room.from_dict(data)
    assert again == room
    assert again.to_dict() == room.to_dict()
    assert again.snapshot() == room.snapshot()
    assert again.participants[10].connections == 2


ROLES = {1: TEACHER, 2: ASSISTANT, 3: STUDENT, 4: STUDENT, 5: STUDENT, 6: OBSERVER, 7: STUDENT}
users = st.sampled_from(sorted(ROLES))
staff_mostly = st.sampled_from([1, 2, 1, 2, 3, 6])  # teacher controls mostly by staff, so that most of them happen
media = st.sampled_from(list(Media))


# "join" twice: people arrive more than anything else happens; "end" by anyone: mostly refused, so most walks stay live
KINDS = st.sampled_from([
    "join", "join", "leave", "start", "end", "admit", "deny", "remove", "lock", "raise", "raise", "lower", "call_on",
    "grant", "revoke", "mute", "mute_all",
])


def draw_operation(data: st.DataObject, room: Room, step: int) -> tuple[Any, ...]:
    """One operation, aimed mostly at people the room knows, so that most calls do something."""
    kind = data.draw(KINDS, label=f"step {step}")

    def someone(among: list[int]) -> int:
        if not among or not data.draw(st.booleans()):
            return data.draw(users)
        return data.draw(st.sampled_from(among))

    known = sorted(set(room.participants) | set(room.lobby))
    if kind in {"leave", "raise", "lower"}:
        actor = someone(known)
    else:
        actor = data.draw(users if kind in {"join", "end"} else staff_mostly)
    match kind:
        case "admit":
            return (kind, actor, someone(sorted(room.lobby)))
        case "lower":
            return (kind, actor, someone(room.hands))
        case "lock":
            return (kind, actor, data.draw(st.booleans()))
        case "grant" | "revoke":
            return (kind, actor, someone(known), data.draw(media))
        case "deny" | "remove" | "call_on" | "mute":
            return (kind, actor, someone(known))
    return (kind, actor)


room_settings = st.builds(
    Settings, lobby=st.booleans(), mute_on_entry=st.booleans(),
    students_may=st.frozensets(media), max_participants=st.integers(1, 6),
)


def apply(room: Room, op: tuple[Any, ...]) -> None:
    name, actor_id, *rest = op
    actor = ROLES[actor_id]
    match name:
        case "join":
            room.join(actor_id, actor)
        case "leave":
            room.leave(actor_id)
        case "start":
            room.start(actor)
        case "end":
            room.end(actor)
        case "admit":
            room.admit(actor, rest[0])
        case "deny":
            room.deny(actor, rest[0])
        case "remove":
            room.remove(actor, rest[0])
        case "lock":
            room.set_locked(actor, rest[0])
        case "raise":
            room.raise_hand(actor_id)
        case "lower":
            room.lower_hand(actor_id, actor, rest[0])
        case "call_on":
            room.call_on(actor, rest[0])
        case "grant":
            room.grant(actor, rest[0], rest[1])
        case "revoke":
            room.revoke(actor, rest[0], rest[1])
        case "mute":
            room.mute(actor, rest[0])
        case "mute_all":
            room.mute_all(actor)
        case _:
            raise AssertionError(name)


def check_invariants(room: Room) -> None:
    seated, waiting, lobby = set(room.participants), set(room.waiting), set(room.lobby)
    assert not seated & waiting and not seated & lobby and not waiting & lobby
    assert not room.removed & (seated | lobby)
    assert len(set(room.hands)) == len(room.hands)
    assert all(room.participants[uid].role is STUDENT for uid in room.hands)
    assert all(p.connections >= 1 and p.user_id == uid for uid, p in room.participants.items())
    if room.phase is not SCHEDULED:
        assert not room.waiting
    if room.phase is ENDED:
        assert not seated and not lobby and not room.hands


@settings(max_examples=200)
@given(room_settings, st.integers(10, 40), st.integers(0, 5), st.data())
def test_random_operations_round_trip_and_refusals_change_nothing(
    start_settings: Settings, steps: int, start_at: int, data: st.DataObject,
) -> None:
    room = Room(settings=start_settings)
    for step in range(steps):
        op = ("start", 1) if step == start_at else draw_operation(data, room, step)
        before = room.to_dict()
        try:
            apply(room, op)
        except DomainError:
            assert room.to_dict() == before, op
        check_invariants(room)
        stored = room.to_dict()
        assert Room.from_dict(stored).to_dict() == stored
    again = Room.from_dict(json.loads(json.dumps(room.to_dict())))
    assert again == room
    assert again.snapshot() == room.snapshot()
