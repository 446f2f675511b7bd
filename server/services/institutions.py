"""Institutions: the owners of circles, and their staff with roles owner / admin / teacher / staff."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from rooms.errors import Conflict, NotFound
from server import policy
from server.db import institutions as institutions_db
from server.db import users as users_db
from server.db.models import Institution, InstitutionMember, InstitutionRole, User


@dataclass(frozen=True, slots=True)
class InstitutionView:
    institution: Institution
    my_role: InstitutionRole | None


async def create(db: AsyncSession, actor: policy.Actor, *, name: str, owner_id: int | None) -> InstitutionView:
    policy.check_site(actor, policy.SiteAction.CREATE_INSTITUTION)
    owner = await users_db.get_user(db, owner_id if owner_id is not None else actor.user_id)
    if owner is None:
        raise NotFound("the owner must be an existing user", code="unknown_user")
    institution = await institutions_db.add_institution(db, name, created_by=actor.user_id)
    await institutions_db.put_member(db, institution.id, owner.id, InstitutionRole.OWNER)
    role = InstitutionRole.OWNER if owner.id == actor.user_id else None
    return InstitutionView(institution, role)


async def _load(
    db: AsyncSession, actor: policy.Actor, institution_id: int, action: policy.InstitutionAction
) -> InstitutionView:
    institution = await institutions_db.get_institution(db, institution_id)
    role = await institutions_db.member_role(db, institution_id, actor.user_id)
    if institution is None:
        raise NotFound("no such institution")
    policy.check_institution(actor, role, action)
    return InstitutionView(institution, role)


async def get(db: AsyncSession, actor: policy.Actor, institution_id: int) -> InstitutionView:
    return await _load(db, actor, institution_id, policy.InstitutionAction.VIEW)


async def list_mine(db: AsyncSession, actor: policy.Actor) -> list[InstitutionView]:
    rows = await institutions_db.list_institutions(db, None if actor.is_site_admin else actor.user_id)
    if actor.is_site_admin:
        mine = dict((inst.id, role) for inst, role in await institutions_db.list_institutions(db, actor.user_id))
        return [InstitutionView(inst, mine.get(inst.id)) for inst, _ in rows]
    return [InstitutionView(inst, role) for inst, role in rows]


async def rename(db: AsyncSession, actor: policy.Actor, institution_id: int, name: str) -> InstitutionView:
    view = await _load(db, actor, institution_id, policy.InstitutionAction.RENAME)
    view.institution.name = name
    await db.flush()
    return view


async def members(
    db: AsyncSession, actor: policy.Actor, institution_id: int
) -> list[tuple[InstitutionMember, User]]:
    await _load(db, actor, institution_id, policy.InstitutionAction.VIEW)
    return await institutions_db.list_members(db, institution_id)


async def add_member(
    db: AsyncSession, actor: policy.Actor, institution_id: int, role: InstitutionRole, *, user_id: int | None,
    email: str | None,
) -> tuple[InstitutionMember, User]:
    # Access first: an outsider must not learn which emails have accounts from the answer.
    await _load(db, actor, institution_id, policy.InstitutionAction.MANAGE_MEMBERS)
    user_id = await _resolve_user_id(db, user_id=user_id, email=email)
    user = await _authorize_change(db, actor, institution_id, user_id, role, adding=True)
    return await institutions_db.put_member(db, institution_id, user_id, role), user


async def set_role(
    db: AsyncSession, actor: policy.Actor, institution_id: int, user_id: int, role: InstitutionRole
) -> tuple[InstitutionMember, User]:
    user = await _authorize_change(db, actor, institution_id, user_id, role, adding=False)
    return await institutions_db.put_member(db, institution_id, user_id, role), user


async def remove_member(db: AsyncSession, actor: policy.Actor, institution_id: int, user_id: int) -> None:
    await _authorize_change(db, actor, institution_id, user_id, None, adding=False)
    await institutions_db.remove_member(db, institution_id, user_id)


async def _authorize_change(
    db: AsyncSession, actor: policy.Actor, institution_id: int, user_id: int, role: InstitutionRole | None, *,
    adding: bool,
) -> User:
    view = await _load(db, actor, institution_id, policy.InstitutionAction.VIEW)
    user = await users_db.get_user(db, user_id)
    if user is None:
        raise NotFound("no such user", code="unknown_user")
    current = await institutions_db.member_role(db, institution_id, user_id)
    policy.check_institution_member_change(
        actor, view.my_role, target_is_actor=user_id == actor.user_id, current=current, new=role,
        owners=await institutions_db.count_owners(db, institution_id),
    )
    if adding and current is not None:
        raise Conflict(f"already a member of this institution, as {current.value}", code="already_member")
    if not adding and current is None:
        raise NotFound("that user is not a member of this institution", code="not_a_member")
    return user


async def _resolve_user_id(db: AsyncSession, *, user_id: int | None, email: str | None) -> int:
    if user_id is not None:
        return user_id
    user = await users_db.get_user_by_email(db, email or "")
    if user is None:
        raise NotFound("no account with that email", code="unknown_user")
    return user.id
