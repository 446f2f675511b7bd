"""Queries over circle chat: sequence allocation, messages by sequence range, read positions."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import ChatMessage, Circle, CircleMember, NotificationLevel


async def next_seq(db: AsyncSession, circle_id: str) -> int:
    """Take the circle's next sequence number. The row stays locked until the transaction ends, so concurrent
    senders queue here and a rolled-back send gives its number back: numbers stay gapless."""
    result = await db.execute(
        update(Circle).where(Circle.id == circle_id).values(chat_last_seq=Circle.chat_last_seq + 1)
        .returning(Circle.chat_last_seq)
    )
    return int(result.scalar_one())


async def last_seq(db: AsyncSession, circle_id: str) -> int:
    found = await db.execute(select(Circle.chat_last_seq).where(Circle.id == circle_id))
    return int(found.scalar_one())


async def add_message(
    db: AsyncSession, *, circle_id: str, seq: int, author_id: int, client_id: str, body: str, mentions: list[int]
) -> ChatMessage:
    message = ChatMessage(circle_id=circle_id, seq=seq, author_id=author_id, client_id=client_id, body=body,
                          mentions=mentions)
    db.add(message)
    await db.flush()
    return message


async def by_client_id(db: AsyncSession, circle_id: str, author_id: int, client_id: str) -> ChatMessage | None:
    found = await db.execute(select(ChatMessage).where(
        ChatMessage.circle_id == circle_id, ChatMessage.author_id == author_id, ChatMessage.client_id == client_id))
    return found.scalar_one_or_none()


async def by_seq(db: AsyncSession, circle_id: str, seq: int) -> ChatMessage | None:
    found = await db.execute(select(ChatMessage).where(ChatMessage.circle_id == circle_id, ChatMessage.seq == seq))
    return found.scalar_one_or_none()


async def after(db: AsyncSession, circle_id: str, after_seq: int, limit: int) -> list[ChatMessage]:
    """Messages numbered above ``after_seq``, oldest first."""
    rows = await db.execute(
        select(ChatMessage).where(ChatMessage.circle_id == circle_id, ChatMessage.seq > after_seq)
        .order_by(ChatMessage.seq).limit(limit)
    )
    return list(rows.scalars())


async def before(db: AsyncSession, circle_id: str, before_seq: int, floor_seq: int, limit: int) -> list[ChatMessage]:
    """Up to ``limit`` messages numbered below ``before_seq`` and at or above ``floor_seq``, newest first."""
    rows = await db.execute(
        select(ChatMessage)
        .where(ChatMessage.circle_id == circle_id, ChatMessage.seq < before_seq, ChatMessage.seq >= floor_seq)
        .order_by(ChatMessage.seq.desc()).limit(limit)
    )
    return list(rows.scalars())


async def notification_levels(db: AsyncSession, circle_id: str, user_ids: list[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = await db.execute(
        select(CircleMember.user_id, CircleMember.notification_level)
        .where(CircleMember.circle_id == circle_id, CircleMember.user_id.in_(user_ids))
    )
    return {uid: NotificationLevel(level).value for uid, level in rows}


async def unread(db: AsyncSession, circle_id: str, after_seq: int) -> int:
    found = await db.execute(select(func.count()).where(
        ChatMessage.circle_id == circle_id, ChatMessage.seq > after_seq, ChatMessage.deleted_at.is_(None)))
    return int(found.scalar_one())
