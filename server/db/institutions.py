"""Queries over institutions and their staff."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Institution, InstitutionMember, InstitutionRole, User

ADMIN_ROLES = (InstitutionRole.OWNER, InstitutionRole.ADMIN)


async def add_institution(db: AsyncSession, name: str, created_by: int | None) -> Institution:
    institution = Institution(name=name, created_by=created_by)
    db.add(institution)
    await db.flush()
    return institution


async def get_institution(db: AsyncSession, institution_id: int) -> Institution | None:
    return await db.get(Institution, institution_id)


async def list_institutions(db: AsyncSession, user_id: int | None) -> list[tuple[Institution, InstitutionRole | None]]:
    """The institutions a user belongs to with their role; every institution when ``user_id`` is None."""
    if user_id is None:
        rows = await db.execute(select(Institution).order_by(Institution.name, Institution.id))
        return [(inst, None) for inst in rows.scalars()]
    joined = await db.execute(
        select(Institution, InstitutionMember.role)
        .join(InstitutionMember, InstitutionMember.institution_id == Institution.id)
        .where(InstitutionMember.user_id == user_id)
        .order_by(Institution.name, Institution.id)
    )
    return [(inst, role) for inst, role in joined]


async def member_role(db: AsyncSession, institution_id: int, user_id: int) -> InstitutionRole | None:
    found = await db.execute(
        select(InstitutionMember.role).where(
            InstitutionMember.institution_id == institution_id, InstitutionMember.user_id == user_id
        )
    )
    return found.scalar_one_or_none()


async def list_members(db: AsyncSession, institution_id: int) -> list[tuple[InstitutionMember, User]]:
    rows = await db.execute(
        select(InstitutionMember, User)
        .join(User, User.id == InstitutionMember.user_id)
        .where(InstitutionMember.institution_id == institution_id)
        .order_by(InstitutionMember.added_at, User.id)
    )
    return [(member, user) for member, user in rows]


async def put_member(db: AsyncSession, institution_id: int, user_id: int, role: InstitutionRole) -> InstitutionMember:
    member = await db.get(InstitutionMember, (institution_id, user_id))
    if member is None:
        member = InstitutionMember(institution_id=institution_id, user_id=user_id, role=role)
        db.add(member)
    else:
        member.role = role
    await db.flush()
    return member


async def remove_member(db: AsyncSession, institution_id: int, user_id: int) -> None:
    await db.execute(
        delete(InstitutionMember).where(
            InstitutionMember.institution_id == institution_id, InstitutionMember.user_id == user_id
        )
    )


async def count_owners(db: AsyncSession, institution_id: int) -> int:
    found = await db.execute(
        select(func.count()).where(
            InstitutionMember.institution_id == institution_id, InstitutionMember.role == InstitutionRole.OWNER
        )
    )
    return int(found.scalar_one())


async def administers_user(db: AsyncSession, admin_id: int, user_id: int) -> bool:
    """Whether ``admin_id`` is an owner or admin of an institution that ``user_id`` belongs to."""
    theirs = select(InstitutionMember.institution_id).where(InstitutionMember.user_id == user_id)
    found = await db.execute(
        select(InstitutionMember.institution_id)
        .where(
            InstitutionMember.user_id == admin_id,
            InstitutionMember.role.in_(ADMIN_ROLES),
            InstitutionMember.institution_id.in_(theirs),
        )
        .limit(1)
    )
    return found.first() is not None
