"""Circle chat over Socket.IO. Handlers decode, call one service in one transaction, then acknowledge and deliver."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rooms.chat import TypingThrottle
from rooms.errors import DomainError, InvalidInput, RateLimited
from server.api.chat_schemas import (
    AnnouncementModeIn,
    CircleIn,
    EditMessageIn,
    JoinCircleIn,
    MarkReadIn,
    MessageOut,
    MessageRefIn,
    MuteIn,
    SendMessageIn,
)
from server.db import feed as feed_db
from server.db.models import ChatMessage
from server.hub.base import STRIKES_BEFORE_DISCONNECT, Ack, HubBase, ack_error, validate
from server.hub.emit import circle_room
from server.policy import Actor
from server.services import chat

__all__ = ["SEND_BURST", "STRIKES_BEFORE_DISCONNECT", "ChatEvents"]

# A member sends in bursts of ten, then one message a second, in each circle.
SEND_BURST, SEND_PER_SECOND = 10, 1.0


class ChatEvents(HubBase):
    """The circle chat events of the hub's namespace."""

    typing: TypingThrottle

    def _init_chat(self) -> None:
        self.typing = TypingThrottle()
        self.parts.broadcaster.on_control("evict", self._evict)

    async def _evict(self, sid: str, user_id: int, circle_id: str) -> None:
        await self.leave_room(sid, circle_room(circle_id))
        session = await self.get_session(sid)
        if circle_id in session["circles"]:
            session["circles"].discard(circle_id)
            await self._depart(user_id, circle_id)
        await self.emit("circle_left", {"circle_id": circle_id}, to=sid)

    async def _chat_disconnect(self, sid: str) -> None:
        session = await self.get_session(sid)
        for circle_id in list(session.get("circles", ())):
            await self._depart(session["user_id"], circle_id)

    async def _depart(self, user_id: int, circle_id: str) -> None:
        if await self.parts.presence.depart(circle_id, user_id):
            await self.parts.broadcaster.to_circle(circle_id, "presence_changed",
                                                   {"circle_id": circle_id, "user_id": user_id, "online": False})

    # --- events ---

    async def on_join_circle(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: JoinCircleIn, db: AsyncSession) -> tuple[Ack, None]:
            await chat.check_can_read(db, actor, body.circle_id)
            # In the room before reading: a message committed meanwhile is in the reply, or broadcast, or both
            # (clients drop any seq at or below the reply's last_seq), never neither.
            await self.enter_room(sid, circle_room(body.circle_id))
            joined = await chat.join(db, actor, body.circle_id, body.last_seq)
            self.parts.broadcaster.expect(body.circle_id, joined.last_seq)
            messages = await _messages_out(db, body.circle_id, joined.messages)
            return {"circle_id": body.circle_id, "messages": messages, "last_seq": joined.last_seq,
                    "gap": joined.gap, "first_visible_seq": joined.first_visible_seq, "read_seq": joined.read_seq,
                    "unread": joined.unread, "announcement_mode": joined.announcement_mode,
                    "muted_until": joined.muted_until.isoformat() if joined.muted_until else None}, None

        ack = await self._request(sid, data, JoinCircleIn, work)
        session = await self.get_session(sid)
        if not ack["ok"]:
            circle_id = data.get("circle_id") if isinstance(data, dict) else None
            if isinstance(circle_id, str) and circle_id not in session["circles"]:
                await self.leave_room(sid, circle_room(circle_id))  # entered before a later step failed
            return ack
        circle_id = ack["circle_id"]
        if circle_id not in session["circles"]:
            session["circles"].add(circle_id)
            if await self.parts.presence.arrive(circle_id, session["user_id"]):
                self.parts.broadcaster.after_ack(self.parts.broadcaster.to_circle(
                    circle_id, "presence_changed",
                    {"circle_id": circle_id, "user_id": session["user_id"], "online": True}, skip_sid=sid))
        ack["online"] = await self.parts.presence.online(circle_id)
        return ack

    async def on_leave_circle(self, sid: str, data: Any = None) -> Ack:
        try:
            body = validate(CircleIn, data)
        except DomainError as exc:
            return ack_error(exc)
        session = await self.get_session(sid)
        await self.leave_room(sid, circle_room(body.circle_id))
        if body.circle_id in session["circles"]:
            session["circles"].discard(body.circle_id)
            await self._depart(session["user_id"], body.circle_id)
        return {"ok": True}

    async def on_send_message(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: SendMessageIn, db: AsyncSession) -> tuple[Ack, Any]:
            wait = await self.parts.limiter.hit(f"chat:{actor.user_id}:{body.circle_id}",
                                                per_second=SEND_PER_SECOND, burst=SEND_BURST)
            if wait:
                raise RateLimited(wait, "you are sending too fast in this circle")
            sent = await chat.send(db, actor, body.circle_id, client_id=body.client_id, body=body.body,
                                   mentions=body.mentions)
            message = (await _messages_out(db, body.circle_id, [sent.message]))[0]
            reply: Ack = {"seq": sent.message.seq, "message": message, "duplicate": not sent.created}
            if not sent.created:
                return reply, None

            async def deliver() -> None:
                await self.parts.broadcaster.to_circle(body.circle_id, "message_posted", message,
                                                       seq=sent.message.seq)
                await self.parts.broadcaster.to_users(sent.notify, "mentioned", {
                    "circle_id": body.circle_id, "seq": sent.message.seq, "by": actor.user_id})

            return reply, deliver

        return await self._request(sid, data, SendMessageIn, work)

    async def on_edit_message(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: EditMessageIn, db: AsyncSession) -> tuple[Ack, Any]:
            edited = await chat.edit(db, actor, body.circle_id, body.seq, body.body)
            message = (await _messages_out(db, body.circle_id, [edited]))[0]
            return {"message": message}, lambda: self.parts.broadcaster.to_circle(
                body.circle_id, "message_edited", message)

        return await self._request(sid, data, EditMessageIn, work)

    async def on_delete_message(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: MessageRefIn, db: AsyncSession) -> tuple[Ack, Any]:
            await chat.delete(db, actor, body.circle_id, body.seq)
            fact = {"circle_id": body.circle_id, "seq": body.seq}
            return {}, lambda: self.parts.broadcaster.to_circle(body.circle_id, "message_deleted", fact)

        return await self._request(sid, data, MessageRefIn, work)

    async def on_typing(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: CircleIn, db: AsyncSession) -> tuple[Ack, Any]:
            session = await self.get_session(sid)
            if body.circle_id not in session["circles"]:
                raise InvalidInput("join the circle's chat first", code="not_joined")
            if not self.typing.allow(body.circle_id, actor.user_id, time.monotonic()):
                return {"sent": False}, None
            fact = {"circle_id": body.circle_id, "user_id": actor.user_id}
            return {"sent": True}, lambda: self.parts.broadcaster.to_circle(
                body.circle_id, "member_typing", fact, skip_sid=sid)

        return await self._request(sid, data, CircleIn, work)

    async def on_mark_read(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: MarkReadIn, db: AsyncSession) -> tuple[Ack, Any]:
            read_seq, unread = await chat.mark_read(db, actor, body.circle_id, body.seq)
            fact = {"circle_id": body.circle_id, "read_seq": read_seq, "unread": unread}
            return fact, lambda: self.parts.broadcaster.to_users([actor.user_id], "read_position", fact)

        return await self._request(sid, data, MarkReadIn, work)

    async def on_mute_member(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: MuteIn, db: AsyncSession) -> tuple[Ack, Any]:
            member = await chat.mute(db, actor, body.circle_id, body.user_id, body.seconds)
            until = member.muted_until.isoformat() if member.muted_until else None
            fact = {"circle_id": body.circle_id, "user_id": body.user_id, "until": until}
            return fact, lambda: self.parts.broadcaster.to_users([body.user_id], "muted", fact)

        return await self._request(sid, data, MuteIn, work)

    async def on_set_announcement_mode(self, sid: str, data: Any = None) -> Ack:
        async def work(actor: Actor, body: AnnouncementModeIn, db: AsyncSession) -> tuple[Ack, Any]:
            await chat.set_read_only(db, actor, body.circle_id, body.on)
            fact = {"circle_id": body.circle_id, "on": body.on}
            return fact, lambda: self.parts.broadcaster.to_circle(body.circle_id, "announcement_mode_changed", fact)

        return await self._request(sid, data, AnnouncementModeIn, work)



async def _messages_out(db: AsyncSession, circle_id: str, messages: list[ChatMessage]) -> list[dict[str, Any]]:
    authors = await feed_db.authors(db, circle_id, {m.author_id for m in messages if m.author_id is not None})
    return [MessageOut.of(m, authors).model_dump(mode="json") for m in messages]
