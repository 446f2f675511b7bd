"""The one path every broadcast takes, so delivery cost can be measured and improved in one place.

Rooms are named by what they hold: ``circle:<id>`` (everyone reading a circle's chat), ``user:<id>`` (every
connection of one person), ``class:<id>`` (everyone seated in a live class), ``class:<id>:teachers`` (its teachers
and assistants) and ``class:<id>:lobby`` (those waiting for the start or for admission). Besides events, a broadcast
can carry a *control*: an instruction every process carries out for each of its own connections in a room (take a
removed member out of a circle, seat an admitted student), since a connection's rooms live on its own process.

With Redis configured, every broadcast is published on one Redis channel and every process, the sender's included,
delivers it from there to its own connections: all processes then see broadcasts in the same order, and numbered chat
messages are released to clients in sequence order (``rooms.chat.InOrder``) even when two processes committed them a
moment apart. Without Redis, the same ordering runs in the one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import socketio
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from rooms.chat import InOrder

log = logging.getLogger(__name__)
Envelope = dict[str, Any]
Control = Callable[..., Awaitable[None]]  # (sid, *args)
RECONNECT_DELAY_SECONDS = 1.0


def circle_room(circle_id: str) -> str:
    return f"circle:{circle_id}"


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


def class_room(class_id: int) -> str:
    return f"class:{class_id}"


def teachers_room(class_id: int) -> str:
    return f"class:{class_id}:teachers"


def lobby_room(class_id: int) -> str:
    return f"class:{class_id}:lobby"


class Broadcaster:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio
        self._order = InOrder()
        self._pending: set[asyncio.Task[None]] = set()
        self._redis: Redis | None = None
        self._channel = ""
        self._listener: asyncio.Task[None] | None = None
        self._overdue_timer: asyncio.TimerHandle | None = None
        self._controls: dict[str, Control] = {}

    def on_control(self, kind: str, handler: Control) -> None:
        """What this process does, per connection of its own, when a control of ``kind`` arrives."""
        self._controls[kind] = handler

    # --- lifecycle ---

    async def start(self, redis: Redis | None, channel: str) -> None:
        if redis is None:
            return
        self._redis, self._channel = redis, channel
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(channel)  # subscribed before serving: nothing published after start-up is missed
        self._listener = asyncio.create_task(self._listen(pubsub), name="broadcast-listener")

    async def stop(self) -> None:
        await self.drain()
        if self._overdue_timer is not None:
            self._overdue_timer.cancel()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    # --- sending ---

    async def to_circle(
        self, circle_id: str, event: str, data: dict[str, Any], *, skip_sid: str | None = None, seq: int | None = None
    ) -> None:
        """Broadcast to a circle's readers; give ``seq`` for numbered messages that must arrive in order."""
        await self.to_room(circle_room(circle_id), event, data, skip_sid=skip_sid, seq=seq)

    async def to_room(
        self, room: str, event: str, data: dict[str, Any], *, skip_sid: str | None = None, seq: int | None = None
    ) -> None:
        await self._send({"event": event, "data": data, "room": room, "skip_sid": skip_sid, "seq": seq})

    async def to_users(self, user_ids: Iterable[int], event: str, data: dict[str, Any]) -> None:
        rooms = [user_room(uid) for uid in user_ids]
        if rooms:
            await self._send({"event": event, "data": data, "room": rooms, "skip_sid": None, "seq": None})

    async def evict(self, user_id: int, circle_id: str) -> None:
        """Every connection of ``user_id``, on every process, stops receiving ``circle_id`` (removed, banned, left)."""
        await self.control(user_room(user_id), "evict", user_id, circle_id)

    async def control(self, room: str, kind: str, *args: Any) -> None:
        """Run the ``kind`` handler, on every process, for each of its connections in ``room``."""
        await self._send({"event": None, "control": kind, "args": list(args), "room": room, "seq": None})

    def expect(self, circle_id: str, last_seq: int) -> None:
        """A reader joined knowing messages up to ``last_seq``: order this circle's messages from there on."""
        self.expect_room(circle_room(circle_id), last_seq)

    def expect_room(self, room: str, last_seq: int) -> None:
        self._order.expect(room, last_seq)

    def after_ack(self, delivery: Awaitable[None]) -> None:
        """Deliver once the current handler has returned, so the sender's acknowledgement goes out first."""
        task: asyncio.Task[None] = asyncio.ensure_future(delivery)
        self._pending.add(task)
        task.add_done_callback(self._finished)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _send(self, envelope: Envelope) -> None:
        if self._redis is None:
            await self._deliver(envelope)
        else:
            await self._redis.publish(self._channel, json.dumps(envelope, separators=(",", ":")))

    # --- delivering to this process's connections ---

    async def _deliver(self, envelope: Envelope) -> None:
        if envelope.get("control") is not None:
            await self._control_here(envelope)
            return
        seq = envelope.get("seq")
        if seq is None:
            await self._emit(envelope)
            return
        for ready in self._order.offer(str(envelope["room"]), int(seq), envelope, time.monotonic()):
            await self._emit(ready)  # type: ignore[arg-type]
        self._watch_overdue()

    async def _emit(self, envelope: Envelope) -> None:
        await self._sio.emit(envelope["event"], envelope["data"], to=envelope["room"], skip_sid=envelope["skip_sid"])

    async def _control_here(self, envelope: Envelope) -> None:
        handler = self._controls.get(envelope["control"])
        if handler is None:
            log.error("no handler for control %r", envelope["control"])
            return
        for sid, _ in list(self._sio.manager.get_participants("/", envelope["room"])):
            try:
                await handler(sid, *envelope["args"])
            except Exception:
                log.exception("control %r failed for %s", envelope["control"], sid)

    def _watch_overdue(self) -> None:
        if self._overdue_timer is None and self._order.waiting():
            self._overdue_timer = asyncio.get_running_loop().call_later(self._order.hold, self._release_overdue)

    def _release_overdue(self) -> None:
        self._overdue_timer = None
        ready = self._order.overdue(time.monotonic())
        if ready:
            log.warning("released %d broadcast(s) past a sequence gap that did not fill", len(ready))
            self.after_ack(self._emit_all(ready))
        self._watch_overdue()

    async def _emit_all(self, envelopes: list[object]) -> None:
        for envelope in envelopes:
            await self._emit(envelope)  # type: ignore[arg-type]

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._deliver(json.loads(message["data"]))
            except asyncio.CancelledError:
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                raise
            except Exception:
                log.exception("broadcast listener failed; resubscribing")
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
                with contextlib.suppress(Exception):
                    await pubsub.subscribe(self._channel)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("broadcast failed", exc_info=task.exception())
