"""Queries over users and their signed-in sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AuthSession, SessionKind, User


def email_key(email: str) -> str:
    return email.strip().lower()


async def get_user(db: AsyncSession, user_id: int) -> User | None:
    return await db.get(User, user_id)


async def get_user_by_email(db: AsyncSession, email: str) -> User | None:
    return (await db.execute(select(User).where(User.email_key == email_key(email)))).scalar_one_or_none()


async def email_taken(db: AsyncSession, email: str) -> bool:
    found = await db.execute(select(User.id).where(User.email_key == email_key(email)))
    return found.first() is not None


async def add_user(
    db: AsyncSession, *, email: str, password_hash: str, display_name: str, is_site_admin: bool = False
) -> User:
    user = User(
        email=email.strip(),
        email_key=email_key(email),
        password_hash=password_hash,
        display_name=display_name,
        is_site_admin=is_site_admin,
        custom_fields={},
    )
    db.add(user)
    await db.flush()
    return user


async def add_session(
    db: AsyncSession, *, id_hash: str, user_id: int, kind: SessionKind, csrf_token: str, expires_at: datetime
) -> AuthSession:
    row = AuthSession(id_hash=id_hash, user_id=user_id, kind=kind, csrf_token=csrf_token, expires_at=expires_at)
    db.add(row)
    await db.flush()
    return row


async def get_session_user(db: AsyncSession, id_hash: str) -> tuple[AuthSession, User] | None:
    row = (
        await db.execute(
            select(AuthSession, User).join(User, User.id == AuthSession.user_id).where(AuthSession.id_hash == id_hash)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def delete_session(db: AsyncSession, id_hash: str) -> None:
    await db.execute(delete(AuthSession).where(AuthSession.id_hash == id_hash))


async def delete_other_sessions(db: AsyncSession, user_id: int, keep_id_hash: str | None) -> None:
    query = delete(AuthSession).where(AuthSession.user_id == user_id)
    if keep_id_hash is not None:
        query = query.where(AuthSession.id_hash != keep_id_hash)
    await db.execute(query)


async def purge_expired_sessions(db: AsyncSession, now: datetime) -> int:
    result = await db.execute(delete(AuthSession).where(AuthSession.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
