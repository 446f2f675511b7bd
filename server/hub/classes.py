"""Live class rooms over Socket.IO: joining (lobby, waiting for the start), teacher controls, hands, reactions,
polls and the in-class chat.

The room's rules are ``rooms.classroom.Room``, kept in the state store (``rooms.store.RoomStore``); what must outlive
the room (the session's state, attendance intervals, polls, chat) is committed through ``server.services.classes``
before anyone is told. A connection's own rooms live on its process, so seating or unseating someone is a broadcast
*control* (``server.hub.emit``) that each process carries out for its own connections of that person.

Socket.IO rooms: ``class:<id>`` (seated), ``class:<id>:teachers`` (seated teachers and assistants),
``class:<id>:lobby`` (waiting for the start or for admission).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from rooms.classroom import STAFF, Media, Placement, Room, RoomRole, check_teacher
from rooms.errors import Conflict, InvalidInput, RateLimited
from rooms.polls import PollState
from rooms.reactions import FLUSH_INTERVAL_SECONDS
from server.api.class_schemas import (
    AnswerIn,
    ClassMessageIn,
    ClassMessageOut,
    ClassOut,
    ClassRefIn,
    CreatePollIn,
    JoinClassIn,
    LockIn,
    LowerHandIn,
    MediaGrantIn,
    PollOut,
    PollRefIn,
    ReactIn,
    TargetIn,
)
from server.db import classes as classes_db
from server.db import feed as feed_db
from server.db.models import ClassMessage, ClassSession
from server.hub.base import Ack, Deliver, HubBase
from server.hub.emit import class_room, lobby_room, teachers_room, user_room
from server.policy import Actor, ClassAction
from server.services import classes

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# A participant reacts in bursts of ten, then five a second.
REACT_BURST, REACT_PER_SECOND = 10, 5.0
SEND_BURST, SEND_PER_SECOND = 10, 1.0


def _now() -> datetime:
    return datetime.now(UTC)


def _queued(room: Room, user_id: int) -> bool:
    """Waiting for the start or in the lobby: what the teachers' lobby list shows."""
    return room.placement(user_id) in (Placement.LOBBY, Placement.WAITING_FOR_START)


class ClassEvents(HubBase):
    """The live class events of the hub's namespace. Per connection, ``session["classes"]`` maps each class it
    joined to ``{"placement", "circle_id"}``."""

    _timers: set[asyncio.TimerHandle]

    def _init_classes(self) -> None:
        self._timers = set()
        self.parts.broadcaster.on_control("seat", self._seat_here)
        self.parts.broadcaster.on_control("unseat", self._unseat_here)

    def _close_classes(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _later(self, delay: float, work: Callable[[], Awaitable[None]]) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            self.parts.broadcaster.after_ack(work())

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    # --- the room ---

    async def _change(
        self, session: ClassSession, change: Callable[[Room], T], *, initial: Callable[[], Room] | None = None
    ) -> tuple[T, Room, list[int]]:
        """Apply ``change`` to the stored room; first, seats whose owners stayed away past the grace period go.
        ``initial`` builds the room when the store has none (by default, from the session as it is now)."""
        grace = self.parts.grace_seconds

        def apply(room: Room) -> tuple[T, Room, list[int]]:
            expired = room.expire_away(time.time(), grace)
            return change(room), room, expired

        return await self.parts.rooms.update(str(session.id), initial or (lambda: classes.new_room(session)), apply)

    async def _entry(self, sid: str, class_id: int, *, seated: bool = True) -> dict[str, Any]:
        session = await self.get_session(sid)
        entry: dict[str, Any] | None = session["classes"].get(class_id)
        if entry is None or (seated and entry["placement"] != Placement.JOINED.value):
            raise InvalidInput("join the class first", code="not_joined")
        return entry

    async def _names(self, db: AsyncSession, circle_id: str, user_ids: set[int]) -> dict[int, str]:
        authors = await feed_db.authors(db, circle_id, user_ids)
        return {uid: author.name for uid, author in authors.items()}

    async def _lobby_fact(self, db: AsyncSession, session: ClassSession, room: Room) -> dict[str, Any]:
        names = await self._names(db, session.circle_id, set(room.lobby) | set(room.waiting))
        return {"class_id": session.id,
                "lobby": [{"user_id": uid, "name": names.get(uid, "")} for uid in room.lobby],
                "waiting": [{"user_id": uid, "name": names.get(uid, "")} for uid in room.waiting]}

    async def _departures(self, class_id: int, user_ids: list[int], reason: str) -> None:
        for user_id in user_ids:
            await self.parts.broadcaster.to_room(class_room(class_id), "participant_left",
                                                 {"class_id": class_id, "user_id": user_id, "reason": reason})

    async def _send_hands(self, class_id: int, hands: list[int]) -> None:
        await self.parts.broadcaster.to_room(class_room(class_id), "hands_changed",
                                             {"class_id": class_id, "hands": hands})

    def _views(self, class_id: int, room: Room, user_ids: list[int]) -> dict[str, Any]:
        return {"class_id": class_id,
                "participants": [room.participant_view(uid) for uid in user_ids if uid in room.participants]}

    # --- joining and leaving ---

    async def on_join_class(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: JoinClassIn, db: AsyncSession) -> tuple[Ack, Deliver]:
            conn = await self.get_session(sid)
            context = await classes.open_class(db, actor, body.class_id, ClassAction.JOIN)
            session = context.session
            classes.require_open(session)
            role = await classes.room_role(db, context)
            uid = actor.user_id
            counted = body.class_id in conn["classes"]

            def join(room: Room) -> tuple[Placement | None, Placement]:
                before = room.placement(uid)
                if counted and before is not None:
                    return before, before  # this connection is in already: the snapshot again
                return before, room.join(uid, role)

            (before, placement), room, expired = await self._change(session, join)
            seated = placement is Placement.JOINED
            was_seated = counted and conn["classes"][body.class_id]["placement"] == Placement.JOINED.value
            if seated and not was_seated:
                await classes.arrive(db, session.id, uid, sid, _now())
            conn["classes"][body.class_id] = {"placement": placement.value, "circle_id": session.circle_id}
            await self._place(sid, body.class_id, placement, room.role_of(uid))
            tail = await classes.chat_tail(db, session, body.last_seq)
            self.parts.broadcaster.expect_room(class_room(session.id), tail.last_seq)
            names = await self._names(db, session.circle_id, set(room.participants) | set(room.lobby)
                                      | set(room.waiting) | {m.author_id for m in tail.messages if m.author_id})
            staff = room.role_of(uid) in STAFF
            open_polls = await classes.poll_views(db, session.id, state=PollState.OPEN)
            reply: Ack = {
                "class": ClassOut.of(session, context.teachers).model_dump(mode="json"),
                "role": (room.role_of(uid) or role).value, "placement": placement.value,
                "room": room.snapshot(), "names": {str(k): v for k, v in names.items()},
                "poll": PollOut.of(open_polls[0], staff=staff, viewer=uid).model_dump(mode="json")
                if open_polls and seated else None,
                "chat": {"messages": [ClassMessageOut.of(m, names).model_dump(mode="json") for m in tail.messages],
                         "last_seq": tail.last_seq, "gap": tail.gap},
                "media_node": await self._media_node(session.id),
            }
            # A connection asking again (for the snapshot) is no arrival; a return within the grace period is one.
            newly_seated = seated and not was_seated and (before is None or room.participants[uid].connections == 1)
            lobby_fact = await self._lobby_fact(db, session, room) if placement is not Placement.JOINED else None

            async def deliver() -> None:
                await self._departures(session.id, expired, "disconnected")
                if newly_seated:
                    await self.parts.broadcaster.to_room(class_room(session.id), "participant_joined", {
                        "class_id": session.id, "participant": room.participant_view(uid), "name": names.get(uid, "")},
                        skip_sid=sid)
                if lobby_fact is not None:
                    await self.parts.broadcaster.to_room(teachers_room(session.id), "lobby_changed", lobby_fact)

            return reply, deliver

        return await self._request(sid, data, JoinClassIn, work)

    async def _place(self, sid: str, class_id: int, placement: Placement, role: RoomRole | None) -> None:
        if placement is Placement.JOINED:
            await self.leave_room(sid, lobby_room(class_id))
            await self.enter_room(sid, class_room(class_id))
            if role in STAFF:
                await self.enter_room(sid, teachers_room(class_id))
        else:
            await self.enter_room(sid, lobby_room(class_id))

    async def _forget(self, sid: str, class_id: int) -> dict[str, Any] | None:
        session = await self.get_session(sid)
        entry: dict[str, Any] | None = session["classes"].pop(class_id, None)
        for room in (class_room(class_id), teachers_room(class_id), lobby_room(class_id)):
            await self.leave_room(sid, room)
        await self._media_gone(sid, class_id)
        return entry

    async def _media_gone(self, sid: str, class_id: int) -> None:
        """Overridden by the media events: the connection's peer goes with it."""

    async def _media_ended(self, class_id: int) -> None:
        """Overridden by the media events: the class's peers close."""

    async def _media_node(self, class_id: int) -> str | None:
        """Overridden by the media events: where this class's media is carried (None: this process)."""
        return None

    async def on_leave_class(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: ClassRefIn, db: AsyncSession) -> tuple[Ack, Deliver]:
            await self._entry(sid, body.class_id, seated=False)
            session = await self._session(db, body.class_id)
            await classes.depart(db, body.class_id, _now(), "left", connection=sid)

            def leave(room: Room) -> tuple[bool, bool]:
                queued = _queued(room, actor.user_id)
                return queued, room.leave(actor.user_id)

            (queued, gone), room, expired = await self._change(session, leave)
            await self._forget(sid, body.class_id)
            hands = list(room.hands)
            lobby_fact = await self._lobby_fact(db, session, room) if queued else None

            async def deliver() -> None:
                await self._departures(body.class_id, expired, "disconnected")  # seats that outstayed the grace
                if gone:
                    await self._departures(body.class_id, [actor.user_id], "left")
                    await self._send_hands(body.class_id, hands)
                if lobby_fact is not None:
                    await self.parts.broadcaster.to_room(teachers_room(body.class_id), "lobby_changed", lobby_fact)

            return {}, deliver

        return await self._request(sid, data, ClassRefIn, work)

    async def _session(self, db: AsyncSession, class_id: int) -> ClassSession:
        session = await classes_db.get_session(db, class_id)
        if session is None:
            raise InvalidInput("no such class", code="not_joined")
        return session

    async def _classes_disconnect(self, sid: str) -> None:
        """A dropped connection keeps its seat for the grace period; its attendance interval closes now."""
        conn = await self.get_session(sid)
        for class_id in list(conn.get("classes", {})):
            await self._media_gone(sid, class_id)
            uid: int = conn["user_id"]

            def drop(room: Room, uid: int = uid) -> bool:
                queued = _queued(room, uid)
                room.drop(uid, time.time())
                return queued

            try:
                async with self.parts.db() as db, db.begin():
                    session = await self._session(db, class_id)
                    await classes.depart(db, class_id, _now(), "disconnected", connection=sid)
                    queued, room, expired = await self._change(session, drop)
                    lobby_fact = await self._lobby_fact(db, session, room) if queued else None
            except Exception:
                log.exception("could not record %s leaving class %s", sid, class_id)
                continue
            changed = self._views(class_id, room, [uid])
            self.parts.broadcaster.after_ack(self._after_drop(session, changed, expired, lobby_fact))

    async def _after_drop(
        self, session: ClassSession, changed: dict[str, Any], expired: list[int], lobby_fact: dict[str, Any] | None
    ) -> None:
        await self._departures(session.id, expired, "disconnected")
        if changed["participants"]:
            await self.parts.broadcaster.to_room(class_room(session.id), "participants_changed", changed)
        if lobby_fact is not None:
            await self.parts.broadcaster.to_room(teachers_room(session.id), "lobby_changed", lobby_fact)
        self._later(self.parts.grace_seconds + 0.05, lambda: self._expire(session))

    async def _expire(self, session: ClassSession) -> None:
        _, room, expired = await self._change(session, lambda room: None)
        if expired:
            await self._departures(session.id, expired, "disconnected")
            await self._send_hands(session.id, list(room.hands))

    # --- controls carried out on every process for its own connections ---

    async def _seat_here(self, sid: str, class_id: int, user_id: int) -> None:
        conn = await self.get_session(sid)
        entry = conn["classes"].get(class_id)
        if entry is None or entry["placement"] == Placement.JOINED.value:
            return
        room = await self.parts.rooms.get(str(class_id))
        if room is None or room.placement(user_id) is not Placement.JOINED:
            return
        entry["placement"] = Placement.JOINED.value
        await self._place(sid, class_id, Placement.JOINED, room.role_of(user_id))
        async with self.parts.db() as db, db.begin():
            await classes.arrive(db, class_id, user_id, sid, _now())
        await self.emit("class_admitted", {"class_id": class_id}, to=sid)

    async def _unseat_here(self, sid: str, class_id: int, reason: str) -> None:
        if await self._forget(sid, class_id) is not None:
            await self.emit("class_left", {"class_id": class_id, "reason": reason}, to=sid)

    async def _evict_from_classes(self, sid: str, user_id: int, circle_id: str) -> None:
        """Removed, banned or gone from the circle: out of its live classes too, as if they had left."""
        conn = await self.get_session(sid)
        for class_id, entry in list(conn["classes"].items()):
            if entry["circle_id"] != circle_id:
                continue
            async with self.parts.db() as db, db.begin():
                session = await self._session(db, class_id)
                await classes.depart(db, class_id, _now(), "removed", connection=sid)
            gone, room, expired = await self._change(session, lambda room: room.leave(user_id))
            await self._unseat_here(sid, class_id, "left_circle")
            await self._departures(class_id, expired, "disconnected")
            if gone:
                await self._departures(class_id, [user_id], "left_circle")
                await self._send_hands(class_id, list(room.hands))

    # --- the lifecycle ---

    async def _staff_context(
        self, db: AsyncSession, actor: Actor, class_id: int, *, starting: bool = False
    ) -> tuple[classes.ClassContext, RoomRole]:
        context = await classes.open_class(db, actor, class_id, ClassAction.JOIN, lock=True)
        role = await classes.room_role(db, context)
        check_teacher(role, starting=starting)
        return context, role

    async def on_start_class(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: ClassRefIn, db: AsyncSession) -> tuple[Ack, Deliver]:
            context, role = await self._staff_context(db, actor, body.class_id, starting=True)
            unstarted = classes.new_room(context.session).to_dict()  # nobody joined yet: the store has no room
            await classes.start(db, context, _now())
            settings = classes.room_settings(context.session)  # as scheduled, even if edited after the first arrival

            def start(room: Room) -> list[int]:
                room.settings = settings
                return room.start(role)

            seated, room, expired = await self._change(context.session, start,
                                                       initial=lambda: Room.from_dict(unstarted))
            snapshot = room.snapshot()
            lobby_fact = await self._lobby_fact(db, context.session, room)
            names = await self._names(db, context.session.circle_id, set(room.participants))
            # One event for the whole room, seated and waiting alike: a participant_joined per seated student
            # would be a broadcast to the whole class per student, quadratic in the class's size.
            fact = {"class_id": body.class_id, "room": snapshot, "names": {str(k): v for k, v in names.items()}}

            async def deliver() -> None:
                b = self.parts.broadcaster
                await b.to_room(class_room(body.class_id), "class_started", fact)
                await b.to_room(lobby_room(body.class_id), "class_started", fact)
                for uid in seated:
                    await b.control(user_room(uid), "seat", body.class_id, uid)
                await b.to_room(teachers_room(body.class_id), "lobby_changed", lobby_fact)
                await self._departures(body.class_id, expired, "disconnected")

            return {"room": snapshot}, deliver

        return await self._request(sid, data, ClassRefIn, work)

    async def on_end_class(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: ClassRefIn, db: AsyncSession) -> tuple[Ack, Deliver]:
            context, role = await self._staff_context(db, actor, body.class_id, starting=True)
            unended = classes.new_room(context.session).to_dict()  # the store may have lost the room (restart)
            ended = await classes.end(db, context, _now(), self.parts.grace_seconds)
            await self._change(context.session, lambda room: room.end(role), initial=lambda: Room.from_dict(unended))
            fact = {"class_id": body.class_id, "recap_post_id": ended.recap_post_id}
            closed = [{"class_id": body.class_id, "poll": PollOut.of(view, staff=False).model_dump(mode="json")}
                      for view in ended.polls if view.id in ended.closed_now]

            async def deliver() -> None:
                b = self.parts.broadcaster
                for poll_fact in closed:
                    await b.to_room(class_room(body.class_id), "poll_closed", poll_fact)
                for room in (class_room(body.class_id), lobby_room(body.class_id)):
                    await b.to_room(room, "class_ended", fact)
                    await b.control(room, "unseat", body.class_id, "ended")
                await b.to_circle(context.session.circle_id, "class_ended", fact)
                await self._media_ended(body.class_id)
                await self.parts.rooms.discard(str(body.class_id))  # or the store keeps every class ever held

            return {"recap_post_id": ended.recap_post_id, "counts": ended.report.counts}, deliver

        return await self._request(sid, data, ClassRefIn, work)

    # --- teacher controls ---

    async def _control(
        self, sid: str, data: Any, model: type[M],
        act: Callable[[Room, RoomRole | None, M], T],
        announce: Callable[[M, T, Room, classes.ClassContext, AsyncSession], Awaitable[Deliver]],
        *, db_context: bool = True,
    ) -> Ack:
        """A change to the room by someone seated in it: the room's rules decide (by their role in it)."""

        async def work(actor: Actor, body: M, db: AsyncSession) -> tuple[Ack, Deliver]:
            class_id: int = body.class_id  # type: ignore[attr-defined]  # every class request names its class
            await self._entry(sid, class_id)
            context = await classes.open_class(db, actor, class_id, ClassAction.JOIN)
            result, room, expired = await self._change(
                context.session, lambda room: act(room, room.role_of(actor.user_id), body))
            deliver = await announce(body, result, room, context, db)

            async def both() -> None:
                await self._departures(class_id, expired, "disconnected")
                if deliver is not None:
                    await deliver()

            return {"room": room.snapshot()}, both

        return await self._request(sid, data, model, work)

    def _changed(self, class_id: int, room: Room, user_ids: list[int]) -> Deliver:
        fact = self._views(class_id, room, user_ids)
        return lambda: self.parts.broadcaster.to_room(class_room(class_id), "participants_changed", fact)

    async def on_admit(self, sid: str, data: Any = None) -> Ack:
        async def announce(body: TargetIn, _: None, room: Room, context: classes.ClassContext,
                           db: AsyncSession) -> Deliver:
            lobby_fact = await self._lobby_fact(db, context.session, room)
            name = (await self._names(db, context.session.circle_id, {body.user_id})).get(body.user_id, "")

            async def deliver() -> None:
                b = self.parts.broadcaster
                await b.to_room(class_room(body.class_id), "participant_joined", {
                    "class_id": body.class_id, "participant": room.participant_view(body.user_id), "name": name})
                await b.control(user_room(body.user_id), "seat", body.class_id, body.user_id)
                await b.to_room(teachers_room(body.class_id), "lobby_changed", lobby_fact)

            return deliver

        return await self._control(sid, data, TargetIn, lambda room, role, body: room.admit(role, body.user_id),
                                   announce)

    async def on_deny(self, sid: str, data: Any = None) -> Ack:
        async def announce(body: TargetIn, _: None, room: Room, context: classes.ClassContext,
                           db: AsyncSession) -> Deliver:
            lobby_fact = await self._lobby_fact(db, context.session, room)

            async def deliver() -> None:
                await self.parts.broadcaster.control(user_room(body.user_id), "unseat", body.class_id, "denied")
                await self.parts.broadcaster.to_room(teachers_room(body.class_id), "lobby_changed", lobby_fact)

            return deliver

        return await self._control(sid, data, TargetIn, lambda room, role, body: room.deny(role, body.user_id),
                                   announce)

    async def on_remove_participant(self, sid: str, data: Any = None) -> Ack:
        def remove(room: Room, role: RoomRole | None, body: TargetIn) -> bool:
            queued = _queued(room, body.user_id)
            room.remove(role, body.user_id)
            return queued

        async def announce(body: TargetIn, queued: bool, room: Room, context: classes.ClassContext,
                           db: AsyncSession) -> Deliver:
            await classes.depart(db, body.class_id, _now(), "removed", user_id=body.user_id)
            lobby_fact = await self._lobby_fact(db, context.session, room) if queued else None
            hands = list(room.hands)

            async def deliver() -> None:
                b = self.parts.broadcaster
                await b.control(user_room(body.user_id), "unseat", body.class_id, "removed")
                await self._departures(body.class_id, [body.user_id], "removed")
                await self._send_hands(body.class_id, hands)
                if lobby_fact is not None:
                    await b.to_room(teachers_room(body.class_id), "lobby_changed", lobby_fact)

            return deliver

        return await self._control(sid, data, TargetIn, remove, announce)

    async def on_lock_class(self, sid: str, data: Any = None) -> Ack:
        async def announce(body: LockIn, _: None, room: Room, context: classes.ClassContext,
                           db: AsyncSession) -> Deliver:
            fact = {"class_id": body.class_id, "locked": room.locked}
            return lambda: self.parts.broadcaster.to_room(class_room(body.class_id), "class_locked", fact)

        return await self._control(sid, data, LockIn, lambda room, role, body: room.set_locked(role, body.locked),
                                   announce)

    def _hands(self, class_id: int, room: Room) -> Deliver:
        hands = list(room.hands)
        return lambda: self._send_hands(class_id, hands)

    async def on_raise_hand(self, sid: str, data: Any = None) -> Ack:
        session = await self.get_session(sid)
        uid: int = session["user_id"]

        async def announce(body: ClassRefIn, _: None, room: Room, context: classes.ClassContext,
                           db: AsyncSession) -> Deliver:
            return self._hands(body.class_id, room)

        return await self._control(sid, data, ClassRefIn, lambda room, role, body: room.raise_hand(uid), announce)

    async def on_lower_hand(self, sid: str, data: Any = None) -> Ack:
        session = await self.get_session(sid)
        uid: int = session["user_id"]

        async def announce(body: LowerHandIn, _: None, room: Room, context: classes.ClassContext,
                           db: AsyncSession) -> Deliver:
            return self._hands(body.class_id, room)

        return await self._control(
            sid, data, LowerHandIn,
            lambda room, role, body: room.lower_hand(uid, role, body.user_id if body.user_id is not None else uid),
            announce)

    async def on_call_on(self, sid: str, data: Any = None) -> Ack:
        async def announce(body: TargetIn, _: None, room: Room, context: classes.ClassContext,
                           db: AsyncSession) -> Deliver:
            hands, changed = self._hands(body.class_id, room), self._changed(body.class_id, room, [body.user_id])
            called = {"class_id": body.class_id, "user_id": body.user_id}

            async def deliver() -> None:
                for step in (hands, changed):
                    if step is not None:
                        await step()
                await self.parts.broadcaster.to_room(class_room(body.class_id), "called_on", called)
                self._publishing_changed(body.class_id, room, [body.user_id])

            return deliver

        return await self._control(sid, data, TargetIn, lambda room, role, body: room.call_on(role, body.user_id),
                                   announce)

    async def _publishing(
        self, sid: str, data: Any, model: type[M], act: Callable[[Room, RoomRole | None, M], list[int] | None]
    ) -> Ack:
        """Grant, revoke, mute, mute all: tell the room, and the relay, whose publishing changed."""

        async def announce(body: M, result: list[int] | None, room: Room, context: classes.ClassContext,
                           db: AsyncSession) -> Deliver:
            targets = result if result is not None else [body.user_id]  # type: ignore[attr-defined]
            changed = self._changed(context.session.id, room, targets)

            async def deliver() -> None:
                if changed is not None:
                    await changed()
                self._publishing_changed(context.session.id, room, targets)

            return deliver

        return await self._control(sid, data, model, act, announce)

    async def on_grant_media(self, sid: str, data: Any = None) -> Ack:
        return await self._publishing(sid, data, MediaGrantIn,
                                      lambda room, role, body: room.grant(role, body.user_id, body.media))

    async def on_revoke_media(self, sid: str, data: Any = None) -> Ack:
        return await self._publishing(sid, data, MediaGrantIn,
                                      lambda room, role, body: room.revoke(role, body.user_id, body.media))

    async def on_mute(self, sid: str, data: Any = None) -> Ack:
        return await self._publishing(sid, data, TargetIn, lambda room, role, body: room.mute(role, body.user_id))

    async def on_mute_all(self, sid: str, data: Any = None) -> Ack:
        return await self._publishing(sid, data, ClassRefIn, lambda room, role, body: room.mute_all(role))

    def _publishing_changed(self, class_id: int, room: Room, user_ids: list[int]) -> None:
        """Where the media relay learns what each participant may publish now (see ``server.hub.media``)."""
        for uid in user_ids:
            self._allowed_media(class_id, uid, room.publishing(uid))

    def _allowed_media(self, class_id: int, user_id: int, kinds: frozenset[Media]) -> None:
        """Overridden by the media events; without a relay there is nothing to enforce."""

    # --- reactions ---

    async def on_react(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: ReactIn, db: AsyncSession) -> tuple[Ack, Deliver]:
            await self._entry(sid, body.class_id)
            wait = await self.parts.limiter.hit(f"react:{actor.user_id}:{body.class_id}",
                                                per_second=REACT_PER_SECOND, burst=REACT_BURST)
            if wait:
                raise RateLimited(wait, "you are reacting too fast")
            if self.reactions.add(body.class_id, body.kind):
                self._later(FLUSH_INTERVAL_SECONDS, self._flush_reactions)
            return {}, None

        return await self._request(sid, data, ReactIn, work)

    async def _flush_reactions(self) -> None:
        for class_id, counts in self.reactions.drain().items():
            await self.parts.broadcaster.to_room(class_room(class_id), "reactions",
                                                 {"class_id": class_id, "counts": counts})

    # --- polls ---

    async def _teaching(self, sid: str, db: AsyncSession, actor: Actor, class_id: int) -> classes.ClassContext:
        """Seated in the class as one of its teachers or assistants."""
        await self._entry(sid, class_id)
        context = await classes.open_class(db, actor, class_id, ClassAction.JOIN, lock=True)
        room = await self.parts.rooms.get(str(class_id))
        check_teacher(room.role_of(actor.user_id) if room else None)
        return context

    async def on_create_poll(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: CreatePollIn, db: AsyncSession) -> tuple[Ack, Deliver]:
            context = await self._teaching(sid, db, actor, body.class_id)
            view = await classes.create_poll(db, context, question=body.question, options=body.options,
                                             multiple=body.multiple, correct=body.correct)
            poll = PollOut.of(view, staff=True).model_dump(mode="json")
            fact = {"class_id": body.class_id, "poll": poll}
            return {"poll": poll}, lambda: self.parts.broadcaster.to_room(teachers_room(body.class_id),
                                                                           "poll_created", fact)

        return await self._request(sid, data, CreatePollIn, work)

    async def on_open_poll(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: PollRefIn, db: AsyncSession) -> tuple[Ack, Deliver]:
            context = await self._teaching(sid, db, actor, body.class_id)
            view = await classes.open_poll(db, context, body.poll_id, _now())
            public = {"class_id": body.class_id, "poll": PollOut.of(view, staff=False).model_dump(mode="json")}
            staff = {"class_id": body.class_id, "poll": PollOut.of(view, staff=True).model_dump(mode="json")}

            async def deliver() -> None:
                await self.parts.broadcaster.to_room(class_room(body.class_id), "poll_opened", public)
                await self.parts.broadcaster.to_room(teachers_room(body.class_id), "poll_results", staff)

            return {"poll": staff["poll"]}, deliver

        return await self._request(sid, data, PollRefIn, work)

    async def on_answer_poll(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: AnswerIn, db: AsyncSession) -> tuple[Ack, Deliver]:
            await self._entry(sid, body.class_id)
            context = await classes.open_class(db, actor, body.class_id, ClassAction.JOIN)
            room = await self.parts.rooms.get(str(body.class_id))
            if room is None or room.role_of(actor.user_id) is not RoomRole.STUDENT:
                raise Conflict("only students answer polls", code="not_a_student")
            view = await classes.answer_poll(db, context, body.poll_id, body.choice, _now())
            staff = {"class_id": body.class_id, "poll": PollOut.of(view, staff=True).model_dump(mode="json")}
            mine = PollOut.of(view, staff=False, viewer=actor.user_id).model_dump(mode="json")
            return {"poll": mine}, lambda: self.parts.broadcaster.to_room(teachers_room(body.class_id),
                                                                           "poll_results", staff)

        return await self._request(sid, data, AnswerIn, work)

    async def on_close_poll(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: PollRefIn, db: AsyncSession) -> tuple[Ack, Deliver]:
            context = await self._teaching(sid, db, actor, body.class_id)
            view = await classes.close_poll(db, context, body.poll_id, _now())
            fact = {"class_id": body.class_id, "poll": PollOut.of(view, staff=False).model_dump(mode="json")}
            return {"poll": fact["poll"]}, lambda: self.parts.broadcaster.to_room(class_room(body.class_id),
                                                                                   "poll_closed", fact)

        return await self._request(sid, data, PollRefIn, work)

    # --- in-class chat ---

    async def on_send_class_message(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: ClassMessageIn, db: AsyncSession) -> tuple[Ack, Deliver]:
            entry = await self._entry(sid, body.class_id)
            wait = await self.parts.limiter.hit(f"class-chat:{actor.user_id}:{body.class_id}",
                                                per_second=SEND_PER_SECOND, burst=SEND_BURST)
            if wait:
                raise RateLimited(wait, "you are sending too fast in this class")
            _, message, created = await classes.send_message(db, actor, body.class_id, client_id=body.client_id,
                                                             body=body.body, now=_now())
            out = await self._message_out(db, entry["circle_id"], message)
            reply: Ack = {"seq": message.seq, "message": out, "duplicate": not created}
            if not created:
                return reply, None
            return reply, lambda: self.parts.broadcaster.to_room(class_room(body.class_id), "class_message_posted",
                                                                  out, seq=message.seq)

        return await self._request(sid, data, ClassMessageIn, work)

    async def _message_out(self, db: AsyncSession, circle_id: str, message: ClassMessage) -> dict[str, Any]:
        names = await self._names(db, circle_id, {message.author_id} if message.author_id else set())
        return ClassMessageOut.of(message, names).model_dump(mode="json")

