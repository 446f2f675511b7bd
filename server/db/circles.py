"""Queries over circles, their sections, members, bans, applications, invites and audit log."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.institutions import ADMIN_ROLES
from server.db.models import (
    CIRCLE_ID_LENGTH,
    ApplicationStatus,
    AuditEntry,
    Circle,
    CircleBan,
    CircleMember,
    CircleRole,
    CircleSection,
    InstitutionMember,
    InstitutionRole,
    Invite,
    JoinRequest,
    User,
    Visibility,
    utcnow,
)

_ID_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no look-alikes: links get read aloud


def new_circle_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(CIRCLE_ID_LENGTH))  # ~70 bits


@dataclass(frozen=True, slots=True)
class CircleRow:
    circle: Circle
    role: CircleRole | None
    banned: bool
    institution_role: InstitutionRole | None


async def load_circle(db: AsyncSession, circle_id: str, user_id: int | None, *, lock: bool = False) -> CircleRow | None:
    """The circle and the viewer's standing in it, in one query; ``lock`` serialises writers on this circle."""
    uid = user_id if user_id is not None else -1
    query = (
        select(Circle, CircleMember.role, CircleBan.user_id, InstitutionMember.role)
        .outerjoin(CircleMember, and_(CircleMember.circle_id == Circle.id, CircleMember.user_id == uid))
        .outerjoin(CircleBan, and_(CircleBan.circle_id == Circle.id, CircleBan.user_id == uid))
        .outerjoin(InstitutionMember, and_(InstitutionMember.institution_id == Circle.institution_id,
                                           InstitutionMember.user_id == uid))
        .where(Circle.id == circle_id)
    )
    if lock:
        query = query.with_for_update(of=Circle)
    row = (await db.execute(query)).first()
    if row is None:
        return None
    return CircleRow(row[0], row[1], row[2] is not None, row[3])


def is_institution_admin(role: InstitutionRole | None) -> bool:
    return role in ADMIN_ROLES


async def add_circle(db: AsyncSession, **fields: Any) -> Circle:
    circle = Circle(id=new_circle_id(), application_form=[], **fields)
    db.add(circle)
    await db.flush()
    return circle


async def list_public(
    db: AsyncSession, query: str | None, after: tuple[datetime, str] | None, limit: int
) -> list[Circle]:
    stmt = select(Circle).where(Circle.visibility == Visibility.PUBLIC, Circle.archived_at.is_(None))
    if query:
        pattern = f"%{_escape_like(query.lower())}%"
        stmt = stmt.where(or_(func.lower(Circle.name).like(pattern, escape="\\"),
                              func.lower(Circle.description).like(pattern, escape="\\")))
    if after is not None:
        stmt = stmt.where(tuple_(Circle.created_at, Circle.id) < tuple_(*after))
    stmt = stmt.order_by(Circle.created_at.desc(), Circle.id.desc()).limit(limit)
    return list((await db.execute(stmt)).scalars())


async def list_for_user(db: AsyncSession, user_id: int) -> list[tuple[Circle, CircleMember]]:
    rows = await db.execute(
        select(Circle, CircleMember).join(CircleMember, CircleMember.circle_id == Circle.id)
        .where(CircleMember.user_id == user_id).order_by(CircleMember.joined_at.desc())
    )
    return [(circle, member) for circle, member in rows]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- sections ---


async def list_sections(db: AsyncSession, circle_id: str) -> list[CircleSection]:
    rows = await db.execute(
        select(CircleSection).where(CircleSection.circle_id == circle_id)
        .order_by(CircleSection.position, CircleSection.id)
    )
    return list(rows.scalars())


async def get_section(db: AsyncSession, circle_id: str, section_id: int) -> CircleSection | None:
    section = await db.get(CircleSection, section_id)
    return section if section is not None and section.circle_id == circle_id else None


async def add_section(db: AsyncSession, circle_id: str, name: str, position: int) -> CircleSection:
    section = CircleSection(circle_id=circle_id, name=name, position=position)
    db.add(section)
    await db.flush()
    return section


async def delete_section(db: AsyncSession, section: CircleSection) -> None:
    await db.delete(section)
    await db.flush()


# --- members ---


async def get_member(db: AsyncSession, circle_id: str, user_id: int) -> CircleMember | None:
    return await db.get(CircleMember, (circle_id, user_id))


async def count_members(db: AsyncSession, circle_id: str) -> int:
    found = await db.execute(select(func.count()).where(CircleMember.circle_id == circle_id))
    return int(found.scalar_one())


async def add_member(db: AsyncSession, circle_id: str, user_id: int, role: CircleRole) -> CircleMember:
    member = CircleMember(circle_id=circle_id, user_id=user_id, role=role)
    db.add(member)
    await db.flush()
    return member


async def remove_member(db: AsyncSession, circle_id: str, user_id: int) -> None:
    await db.execute(delete(CircleMember).where(CircleMember.circle_id == circle_id, CircleMember.user_id == user_id))


@dataclass(frozen=True, slots=True)
class DirectoryFilter:
    query: str | None = None
    position: str | None = None
    education: str | None = None
    industry: str | None = None
    field: tuple[str, str] | None = None  # a custom profile field: (key, value)
    role: CircleRole | None = None


async def directory(
    db: AsyncSession, circle_id: str, where: DirectoryFilter, after_user_id: int | None, limit: int
) -> list[tuple[CircleMember, User]]:
    stmt = (
        select(CircleMember, User).join(User, User.id == CircleMember.user_id)
        .where(CircleMember.circle_id == circle_id)
    )
    if where.query:
        pattern = f"%{_escape_like(where.query.lower())}%"
        stmt = stmt.where(or_(func.lower(User.display_name).like(pattern, escape="\\"),
                              func.lower(CircleMember.nickname).like(pattern, escape="\\")))
    for column, value in ((User.position, where.position), (User.education, where.education),
                          (User.industry, where.industry)):
        if value:
            stmt = stmt.where(func.lower(column) == value.lower())
    if where.field is not None:
        key, value = where.field
        stmt = stmt.where(func.lower(User.custom_fields[key].as_string()) == value.lower())
    if where.role is not None:
        stmt = stmt.where(CircleMember.role == where.role)
    if after_user_id is not None:
        stmt = stmt.where(CircleMember.user_id > after_user_id)
    rows = await db.execute(stmt.order_by(CircleMember.user_id).limit(limit))
    return [(member, user) for member, user in rows]


# --- bans ---


async def add_ban(db: AsyncSession, circle_id: str, user_id: int, banned_by: int, reason: str) -> CircleBan:
    ban = CircleBan(circle_id=circle_id, user_id=user_id, banned_by=banned_by, reason=reason)
    db.add(ban)
    await db.flush()
    return ban


async def get_ban(db: AsyncSession, circle_id: str, user_id: int) -> CircleBan | None:
    return await db.get(CircleBan, (circle_id, user_id))


async def list_bans(db: AsyncSession, circle_id: str) -> list[tuple[CircleBan, User]]:
    rows = await db.execute(
        select(CircleBan, User).join(User, User.id == CircleBan.user_id)
        .where(CircleBan.circle_id == circle_id).order_by(CircleBan.created_at.desc())
    )
    return [(ban, user) for ban, user in rows]


async def delete_ban(db: AsyncSession, circle_id: str, user_id: int) -> bool:
    result = await db.execute(delete(CircleBan).where(CircleBan.circle_id == circle_id, CircleBan.user_id == user_id))
    return bool(getattr(result, "rowcount", 0))


# --- applications ---


async def add_request(db: AsyncSession, circle_id: str, user_id: int, answers: dict[str, Any]) -> JoinRequest:
    request = JoinRequest(circle_id=circle_id, user_id=user_id, answers=answers, status=ApplicationStatus.PENDING)
    db.add(request)
    await db.flush()
    return request


async def pending_request(db: AsyncSession, circle_id: str, user_id: int) -> JoinRequest | None:
    found = await db.execute(select(JoinRequest).where(
        JoinRequest.circle_id == circle_id, JoinRequest.user_id == user_id,
        JoinRequest.status == ApplicationStatus.PENDING))
    return found.scalar_one_or_none()


async def get_request(db: AsyncSession, circle_id: str, request_id: int, *, lock: bool = False) -> JoinRequest | None:
    stmt = select(JoinRequest).where(JoinRequest.id == request_id, JoinRequest.circle_id == circle_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await db.execute(stmt)).scalar_one_or_none()


async def list_requests(
    db: AsyncSession, circle_id: str, status: ApplicationStatus | None, user_id: int | None = None
) -> list[tuple[JoinRequest, User]]:
    stmt = select(JoinRequest, User).join(User, User.id == JoinRequest.user_id).where(
        JoinRequest.circle_id == circle_id)
    if status is not None:
        stmt = stmt.where(JoinRequest.status == status)
    if user_id is not None:
        stmt = stmt.where(JoinRequest.user_id == user_id)
    rows = await db.execute(stmt.order_by(JoinRequest.created_at, JoinRequest.id))
    return [(request, user) for request, user in rows]


async def reject_pending_requests(db: AsyncSession, circle_id: str, user_id: int, reviewer: int, reason: str) -> None:
    await db.execute(
        update(JoinRequest)
        .where(JoinRequest.circle_id == circle_id, JoinRequest.user_id == user_id,
               JoinRequest.status == ApplicationStatus.PENDING)
        .values(status=ApplicationStatus.REJECTED, reason=reason, reviewed_by=reviewer, reviewed_at=utcnow())
    )


# --- invites ---


async def add_invite(db: AsyncSession, **fields: Any) -> Invite:
    invite = Invite(token=secrets.token_urlsafe(24), **fields)
    db.add(invite)
    await db.flush()
    return invite


async def get_invite_by_token(db: AsyncSession, token: str) -> Invite | None:
    return (await db.execute(select(Invite).where(Invite.token == token))).scalar_one_or_none()


async def get_invite(db: AsyncSession, circle_id: str, invite_id: int) -> Invite | None:
    invite = await db.get(Invite, invite_id)
    return invite if invite is not None and invite.circle_id == circle_id else None


async def list_invites(db: AsyncSession, circle_id: str) -> list[Invite]:
    rows = await db.execute(select(Invite).where(Invite.circle_id == circle_id).order_by(Invite.id.desc()))
    return list(rows.scalars())


async def spend_invite(db: AsyncSession, invite_id: int, now: datetime) -> bool:
    """Take one use, atomically: false when the invite was revoked, expired or used up meanwhile."""
    result = await db.execute(
        update(Invite)
        .where(Invite.id == invite_id, Invite.revoked_at.is_(None),
               or_(Invite.expires_at.is_(None), Invite.expires_at > now),
               or_(Invite.max_uses.is_(None), Invite.uses < Invite.max_uses))
        .values(uses=Invite.uses + 1)
    )
    return bool(getattr(result, "rowcount", 0))


# --- audit log ---


async def audit(
    db: AsyncSession, circle_id: str, actor_id: int, action: str, *, target_user_id: int | None = None,
    target_id: int | None = None, details: dict[str, Any] | None = None,
) -> None:
    db.add(AuditEntry(circle_id=circle_id, actor_id=actor_id, action=action, target_user_id=target_user_id,
                      target_id=target_id, details=details or {}))
    await db.flush()


async def audit_log(db: AsyncSession, circle_id: str, before_id: int | None, limit: int) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(AuditEntry.circle_id == circle_id)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return list((await db.execute(stmt.order_by(AuditEntry.id.desc()).limit(limit))).scalars())
