"""A live class room's rules: who is in, the lobby, hands, media permissions, mutes, removal and the lock.

Pure and synchronous: the hub loads a ``Room`` from the state store, calls one method, saves it, and tells people
what changed. Methods raise typed errors (``rooms.errors``) and leave the room unchanged when they do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from rooms.errors import Conflict, Forbidden, InvalidInput, NotFound


class RoomRole(enum.StrEnum):
    TEACHER = "teacher"
    ASSISTANT = "assistant"  # a co-teacher: every teacher control but starting and ending the class
    STUDENT = "student"
    OBSERVER = "observer"  # watches; never publishes, never counted as a student


class Phase(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class Media(enum.StrEnum):
    MICROPHONE = "microphone"
    CAMERA = "camera"
    SCREEN = "screen"


class Placement(enum.StrEnum):
    JOINED = "joined"
    LOBBY = "lobby"  # waits for a teacher to admit or deny
    WAITING_FOR_START = "waiting_for_start"


STAFF = frozenset({RoomRole.TEACHER, RoomRole.ASSISTANT})


@dataclass(frozen=True, slots=True)
class Settings:
    lobby: bool = False
    mute_on_entry: bool = False
    students_may: frozenset[Media] = frozenset({Media.MICROPHONE, Media.CAMERA})
    max_participants: int = 300


@dataclass(slots=True)
class Participant:
    user_id: int
    role: RoomRole
    allowed: set[Media]
    force_muted: bool = False
    connections: int = 1
    away_since: float | None = None  # every connection dropped: the seat is kept for a grace period


def check_teacher(role: RoomRole | None, *, starting: bool = False) -> None:
    """Teacher controls are for teachers and assistants; starting and ending the class for teachers alone."""
    allowed = {RoomRole.TEACHER} if starting else STAFF
    if role not in allowed:
        raise Forbidden("only the class's teachers may do this", code="teacher_only")


@dataclass
class Room:
    settings: Settings = field(default_factory=Settings)
    phase: Phase = Phase.SCHEDULED
    locked: bool = False
    participants: dict[int, Participant] = field(default_factory=dict)
    waiting: dict[int, RoomRole] = field(default_factory=dict)  # arrived before the start, in arrival order
    lobby: dict[int, RoomRole] = field(default_factory=dict)  # waiting for admission, in arrival order
    removed: set[int] = field(default_factory=set)
    hands: list[int] = field(default_factory=list)  # raised hands, first come first served
    devices: dict[int, int] = field(default_factory=dict)  # connections of those waiting or in the lobby

    # --- arriving and leaving ---

    def join(self, user_id: int, role: RoomRole) -> Placement:
        if self.phase is Phase.ENDED:
            raise Conflict("this class has ended", code="class_ended")
        if user_id in self.removed:
            raise Forbidden("you were removed from this class", code="removed")
        if user_id in self.participants:
            participant = self.participants[user_id]
            participant.connections += 1  # another device, or back within the grace period
            participant.away_since = None
            return Placement.JOINED
        if user_id in self.waiting or user_id in self.lobby:
            self.devices[user_id] += 1
            return Placement.WAITING_FOR_START if user_id in self.waiting else Placement.LOBBY
        if role not in STAFF:
            if self.phase is Phase.SCHEDULED:
                self.waiting[user_id] = role
                self.devices[user_id] = 1
                return Placement.WAITING_FOR_START
            if self.locked:
                raise Forbidden("the class is locked", code="room_locked")
            if self.settings.lobby and role is RoomRole.STUDENT:
                self.lobby[user_id] = role
                self.devices[user_id] = 1
                return Placement.LOBBY
            self._check_capacity()
        self._seat(user_id, role)
        return Placement.JOINED

    def leave(self, user_id: int) -> bool:
        """One connection of ``user_id`` left; True when it was their last, so they are out of the room."""
        if user_id in self.devices:
            self.devices[user_id] -= 1
            if self.devices[user_id] <= 0:
                self._unqueue(user_id)
            return False
        participant = self.participants.get(user_id)
        if participant is None:
            return False
        participant.connections -= 1
        if participant.connections > 0:
            return False
        del self.participants[user_id]
        self._lower(user_id)
        return True

    def drop(self, user_id: int, now: float) -> None:
        """A connection was lost rather than closed: a participant keeps their seat, hand and permissions while
        away, so a reconnect within the grace period (``expire_away``) finds the room as they left it."""
        participant = self.participants.get(user_id)
        if participant is None:
            self.leave(user_id)  # waiting or in the lobby: nothing to keep
            return
        participant.connections = max(0, participant.connections - 1)
        if participant.connections == 0:
            participant.away_since = now

    def expire_away(self, now: float, grace: float) -> list[int]:
        """Participants away for longer than ``grace`` seconds lose their seat; returns who."""
        gone = [p.user_id for p in self.participants.values()
                if p.away_since is not None and now - p.away_since >= grace]
        for user_id in gone:
            del self.participants[user_id]
            self._lower(user_id)
        return gone

    def placement(self, user_id: int) -> Placement | None:
        if user_id in self.participants:
            return Placement.JOINED
        if user_id in self.lobby:
            return Placement.LOBBY
        if user_id in self.waiting:
            return Placement.WAITING_FOR_START
        return None

    def role_of(self, user_id: int) -> RoomRole | None:
        participant = self.participants.get(user_id)
        if participant is not None:
            return participant.role
        return self.lobby.get(user_id) or self.waiting.get(user_id)

    def start(self, actor: RoomRole | None) -> list[int]:
        """Teachers start the class; those who waited are seated, or wait in the lobby (when it is on, or when the
        class is already full, so a teacher can admit them once a seat frees up). Returns who was seated."""
        check_teacher(actor, starting=True)
        if self.phase is not Phase.SCHEDULED:
            raise Conflict(f"the class is {self.phase.value}", code="not_scheduled")
        self.phase = Phase.LIVE
        seated = []
        for user_id, role in list(self.waiting.items()):
            del self.waiting[user_id]
            full = len(self.participants) >= self.settings.max_participants
            if full or (self.settings.lobby and role is RoomRole.STUDENT):
                self.lobby[user_id] = role
            else:
                self._seat(user_id, role)
                seated.append(user_id)
        return seated

    def end(self, actor: RoomRole | None) -> list[int]:
        """End the class for everyone; returns who was in it."""
        check_teacher(actor, starting=True)
        self._require_live()
        everyone = list(self.participants)
        self.phase = Phase.ENDED
        self.participants.clear()
        self.waiting.clear()
        self.lobby.clear()
        self.devices.clear()
        self.hands.clear()
        return everyone

    def admit(self, actor: RoomRole | None, user_id: int) -> None:
        check_teacher(actor)
        self._require_live()
        role = self.lobby.get(user_id)
        if role is None:
            raise NotFound("that person is not waiting in the lobby", code="not_in_lobby")
        self._check_capacity()
        del self.lobby[user_id]
        self._seat(user_id, role)

    def deny(self, actor: RoomRole | None, user_id: int) -> None:
        check_teacher(actor)
        if user_id not in self.lobby:
            raise NotFound("that person is not waiting in the lobby", code="not_in_lobby")
        self._unqueue(user_id)

    def remove(self, actor: RoomRole | None, user_id: int) -> None:
        """Out of the class, and refused if they try to come back to this session."""
        check_teacher(actor)
        self._require_live()
        target = self.participants.get(user_id)
        if target is None and user_id not in self.lobby:
            raise NotFound("that person is not in the class", code="not_in_room")
        if target is not None and target.role is RoomRole.TEACHER:
            raise Forbidden("a teacher cannot be removed", code="teacher_protected")
        self.participants.pop(user_id, None)
        self._unqueue(user_id)
        self._lower(user_id)
        self.removed.add(user_id)

    def set_locked(self, actor: RoomRole | None, locked: bool) -> None:
        check_teacher(actor)
        self._require_live()
        self.locked = locked

    # --- hands ---

    def raise_hand(self, user_id: int) -> None:
        participant = self._participant(user_id)
        if participant.role is not RoomRole.STUDENT:
            raise Conflict("only students raise hands", code="not_a_student")
        if user_id not in self.hands:
            self.hands.append(user_id)

    def lower_hand(self, actor_id: int, actor: RoomRole | None, user_id: int) -> None:
        if actor_id != user_id:
            check_teacher(actor)
        if user_id not in self.hands:
            raise NotFound("that hand is not raised", code="hand_not_raised")
        self._lower(user_id)

    def call_on(self, actor: RoomRole | None, user_id: int) -> None:
        """Take the student's hand down and let them speak."""
        check_teacher(actor)
        self._require_live()
        participant = self._student(user_id)
        self._lower(user_id)
        participant.allowed.add(Media.MICROPHONE)
        participant.force_muted = False

    # --- media ---

    def grant(self, actor: RoomRole | None, user_id: int, media: Media) -> None:
        check_teacher(actor)
        self._require_live()
        participant = self._student(user_id)
        participant.allowed.add(media)
        if media is Media.MICROPHONE:
            participant.force_muted = False

    def revoke(self, actor: RoomRole | None, user_id: int, media: Media) -> None:
        check_teacher(actor)
        self._require_live()
        self._student(user_id).allowed.discard(media)

    def mute(self, actor: RoomRole | None, user_id: int) -> None:
        """Microphone off, and it stays off until a teacher grants it again."""
        check_teacher(actor)
        self._require_live()
        self._student(user_id).force_muted = True

    def mute_all(self, actor: RoomRole | None) -> list[int]:
        check_teacher(actor)
        self._require_live()
        muted = [p.user_id for p in self.participants.values() if p.role is RoomRole.STUDENT]
        for user_id in muted:
            self.participants[user_id].force_muted = True
        return muted

    def may_publish(self, user_id: int, media: Media) -> bool:
        participant = self.participants.get(user_id)
        if participant is None or self.phase is not Phase.LIVE or participant.away_since is not None:
            return False
        if participant.role in STAFF:
            return True
        if participant.role is RoomRole.OBSERVER:
            return False
        if media is Media.MICROPHONE and participant.force_muted:
            return False
        return media in participant.allowed

    # --- the snapshot a joining client receives, and the form the state store keeps ---

    def publishing(self, user_id: int) -> frozenset[Media]:
        return frozenset(m for m in Media if self.may_publish(user_id, m))

    def participant_view(self, user_id: int) -> dict[str, Any]:
        """What everyone in the room may know of one participant: role, what they may publish, mute and presence."""
        p = self.participants[user_id]
        may = sorted(m.value for m in self.publishing(user_id))
        return {"user_id": p.user_id, "role": p.role.value, "may_publish": may, "force_muted": p.force_muted,
                "away": p.away_since is not None}

    def snapshot(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "locked": self.locked,
            "participants": [self.participant_view(uid) for uid in self.participants],
            "hands": list(self.hands),
            "lobby": list(self.lobby),
            "waiting": list(self.waiting),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": {"lobby": self.settings.lobby, "mute_on_entry": self.settings.mute_on_entry,
                         "students_may": sorted(m.value for m in self.settings.students_may),
                         "max_participants": self.settings.max_participants},
            "phase": self.phase.value,
            "locked": self.locked,
            "participants": [{"user_id": p.user_id, "role": p.role.value, "allowed": sorted(m.value for m in p.allowed),
                              "force_muted": p.force_muted, "connections": p.connections,
                              "away_since": p.away_since}
                             for p in self.participants.values()],
            "waiting": [[uid, role.value] for uid, role in self.waiting.items()],
            "lobby": [[uid, role.value] for uid, role in self.lobby.items()],
            "removed": sorted(self.removed),
            "hands": list(self.hands),
            "devices": [[uid, count] for uid, count in self.devices.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Room:
        s = data["settings"]
        settings = Settings(lobby=s["lobby"], mute_on_entry=s["mute_on_entry"],
                            students_may=frozenset(Media(m) for m in s["students_may"]),
                            max_participants=s["max_participants"])
        return cls(
            settings=settings, phase=Phase(data["phase"]), locked=data["locked"],
            participants={p["user_id"]: Participant(p["user_id"], RoomRole(p["role"]), {Media(m) for m in p["allowed"]},
                                                    p["force_muted"], p["connections"], p.get("away_since"))
                          for p in data["participants"]},
            waiting={uid: RoomRole(role) for uid, role in data["waiting"]},
            lobby={uid: RoomRole(role) for uid, role in data["lobby"]},
            removed=set(data["removed"]), hands=list(data["hands"]),
            devices={uid: count for uid, count in data.get("devices", [])},
        )

    # --- helpers ---

    def _seat(self, user_id: int, role: RoomRole) -> None:
        allowed = set(self.settings.students_may) if role is RoomRole.STUDENT else set()
        if role in STAFF:
            allowed = set(Media)
        muted = role is RoomRole.STUDENT and self.settings.mute_on_entry
        connections = self.devices.pop(user_id, 1)  # every device that waited comes in with them
        self.participants[user_id] = Participant(user_id, role, allowed, force_muted=muted, connections=connections)

    def _unqueue(self, user_id: int) -> None:
        self.waiting.pop(user_id, None)
        self.lobby.pop(user_id, None)
        self.devices.pop(user_id, None)

    def _check_capacity(self) -> None:
        if len(self.participants) >= self.settings.max_participants:
            raise Conflict("the class is full", code="room_full")

    def _require_live(self) -> None:
        if self.phase is not Phase.LIVE:
            raise Conflict(f"the class is {self.phase.value}", code="class_not_live")

    def _participant(self, user_id: int) -> Participant:
        participant = self.participants.get(user_id)
        if participant is None:
            raise NotFound("that person is not in the class", code="not_in_room")
        return participant

    def _student(self, user_id: int) -> Participant:
        participant = self._participant(user_id)
        if participant.role is not RoomRole.STUDENT:
            raise InvalidInput("teacher controls apply to students", code="not_a_student")
        return participant

    def _lower(self, user_id: int) -> None:
        if user_id in self.hands:
            self.hands.remove(user_id)
