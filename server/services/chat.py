"""Circle chat: send (committed, numbered, idempotent), edit, delete, replay on (re)join, history, mutes, read marks.

Functions return what happened; the hub decides whom to tell, after the caller's transaction has committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from rooms import chat as rules
from rooms.errors import Conflict, InvalidInput, NotFound
from server import policy
from server.db import chat as chat_db
from server.db import circles as circles_db
from server.db.models import ChatHistory, ChatMessage, CircleMember, utcnow
from server.services.circles import CircleContext, open_circle

Action = policy.CircleAction


@dataclass(frozen=True, slots=True)
class Joined:
    messages: list[ChatMessage]  # oldest first
    last_seq: int
    gap: bool  # the client was further behind than replay reaches: refetch history over HTTP
    first_visible_seq: int
    read_seq: int
    unread: int
    announcement_mode: bool  # only moderators send
    muted_until: datetime | None  # this member may not send until then


@dataclass(frozen=True, slots=True)
class Sent:
    message: ChatMessage
    created: bool  # False for a resend of a client id already stored: nothing to broadcast
    notify: set[int]  # members to tell about their mention


def _first_visible(actor: policy.Actor, context: CircleContext, member: CircleMember | None) -> int:
    whole = policy.sees_whole_history(actor, context.standing, context.circle.chat_history is ChatHistory.ALL)
    return rules.first_visible_seq(whole or member is None, member.joined_seq if member else 0)


async def _membership(db: AsyncSession, context: CircleContext, actor: policy.Actor) -> CircleMember | None:
    return await circles_db.get_member(db, context.circle.id, actor.user_id)


async def check_can_read(db: AsyncSession, actor: policy.Actor, circle_id: str) -> None:
    await open_circle(db, actor, circle_id, Action.CHAT)


async def join(db: AsyncSession, actor: policy.Actor, circle_id: str, last_seen: int | None) -> Joined:
    context = await open_circle(db, actor, circle_id, Action.CHAT)
    member = await _membership(db, context, actor)
    first = _first_visible(actor, context, member)
    last = context.circle.chat_last_seq
    plan = rules.plan_replay(last_seen, last, first)
    messages = await chat_db.after(db, circle_id, plan.after_seq, rules.MAX_REPLAY)
    read_seq = member.last_read_seq if member else last
    unread = await chat_db.unread(db, circle_id, max(read_seq, first - 1))
    muted = member.muted_until if member and member.muted_until and member.muted_until > utcnow() else None
    return Joined(messages, last, plan.gap, first, read_seq, unread, context.circle.chat_read_only, muted)


async def history(
    db: AsyncSession, actor: policy.Actor, circle_id: str, before: int | None, limit: int
) -> tuple[list[ChatMessage], int]:
    """Newest first, below ``before``; never below what the member may see. Also returns the first visible seq."""
    context = await open_circle(db, actor, circle_id, Action.CHAT)
    first = _first_visible(actor, context, await _membership(db, context, actor))
    upper = before if before is not None else context.circle.chat_last_seq + 1
    return await chat_db.before(db, circle_id, upper, first, limit), first


async def send(
    db: AsyncSession, actor: policy.Actor, circle_id: str, *, client_id: str, body: str, mentions: list[int]
) -> Sent:
    # Lock the circle before looking for a resend: overlapping retries of one client id then queue here and all
    # find the original, instead of racing to the unique index.
    context = await open_circle(db, actor, circle_id, Action.SEND_MESSAGE, lock=True)
    existing = await chat_db.by_client_id(db, circle_id, actor.user_id, client_id)
    if existing is not None:
        return Sent(existing, created=False, notify=set())
    member = await _membership(db, context, actor)
    policy.check_send_message(actor, context.standing, read_only=context.circle.chat_read_only,
                              muted_until=member.muted_until if member else None, now=utcnow())
    levels = await chat_db.notification_levels(db, circle_id, mentions)
    seq = await chat_db.next_seq(db, circle_id)
    message = await chat_db.add_message(db, circle_id=circle_id, seq=seq, author_id=actor.user_id,
                                        client_id=client_id, body=body, mentions=sorted(levels))
    return Sent(message, created=True, notify=rules.mention_targets(mentions, levels, actor.user_id))


async def _message(db: AsyncSession, circle_id: str, seq: int) -> ChatMessage:
    message = await chat_db.by_seq(db, circle_id, seq)
    if message is None or message.deleted_at is not None:
        raise NotFound("no such message")
    return message


async def edit(db: AsyncSession, actor: policy.Actor, circle_id: str, seq: int, body: str) -> ChatMessage:
    context = await open_circle(db, actor, circle_id, Action.SEND_MESSAGE)
    message = await _message(db, circle_id, seq)
    policy.check_author(actor, message.author_id)
    member = await _membership(db, context, actor)
    policy.check_send_message(actor, context.standing, read_only=False,
                              muted_until=member.muted_until if member else None, now=utcnow())
    message.body, message.edited_at = body, utcnow()
    await db.flush()
    return message


async def delete(db: AsyncSession, actor: policy.Actor, circle_id: str, seq: int) -> ChatMessage:
    context = await open_circle(db, actor, circle_id, Action.CHAT)
    message = await _message(db, circle_id, seq)
    policy.check_delete_content(actor, context.facts, context.standing, message.author_id)
    if message.author_id != actor.user_id:
        await circles_db.audit(db, circle_id, actor.user_id, "delete_message", target_user_id=message.author_id,
                               target_id=message.seq, details={"excerpt": message.body[:200]})
    message.deleted_at, message.body, message.mentions = utcnow(), "", []
    await db.flush()
    return message


async def mute(db: AsyncSession, actor: policy.Actor, circle_id: str, user_id: int, seconds: int) -> CircleMember:
    """Mute for ``seconds`` (0 lifts the mute). Moderators mute members below their own rank."""
    context = await open_circle(db, actor, circle_id, Action.MODERATE)
    target = await circles_db.get_member(db, circle_id, user_id)
    if target is None:
        raise NotFound("that user is not a member of this circle", code="not_a_member")
    if user_id == actor.user_id:
        raise Conflict("you cannot mute yourself", code="self_mute")
    policy.check_remove_member(actor, context.standing, target.role)
    target.muted_until = utcnow() + timedelta(seconds=seconds) if seconds else None
    await circles_db.audit(db, circle_id, actor.user_id, "mute" if seconds else "unmute", target_user_id=user_id,
                           details={"seconds": seconds})
    await db.flush()
    return target


async def set_read_only(db: AsyncSession, actor: policy.Actor, circle_id: str, read_only: bool) -> CircleContext:
    context = await open_circle(db, actor, circle_id, Action.MODERATE, lock=True)
    context.circle.chat_read_only = read_only
    await circles_db.audit(db, circle_id, actor.user_id, "announcement_mode_on" if read_only else
                           "announcement_mode_off")
    await db.flush()
    return context


async def mark_read(db: AsyncSession, actor: policy.Actor, circle_id: str, seq: int) -> tuple[int, int]:
    """Move the member's read position forward (never back); returns (read_seq, unread)."""
    context = await open_circle(db, actor, circle_id, Action.CHAT)
    member = await _membership(db, context, actor)
    if member is None:
        raise InvalidInput("only members keep a read position", code="not_a_member")
    member.last_read_seq = max(member.last_read_seq, min(seq, context.circle.chat_last_seq))
    await db.flush()
    first = _first_visible(actor, context, member)
    return member.last_read_seq, await chat_db.unread(db, circle_id, max(member.last_read_seq, first - 1))
