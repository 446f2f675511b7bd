"""Circles: create, edit, archive, discover; their sections and application form; the viewer's standing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rooms.errors import Conflict, NotFound
from server import policy
from server.db import circles as circles_db
from server.db import institutions as institutions_db
from server.db.models import Circle, CircleMember, CircleRole, CircleSection, utcnow

MAX_SECTIONS = 5


@dataclass(frozen=True, slots=True)
class CircleContext:
    """A circle as one viewer stands towards it; every circle use case starts from one of these."""

    circle: Circle
    standing: policy.Standing
    actor: policy.Actor | None

    @property
    def facts(self) -> policy.CircleFacts:
        return policy.CircleFacts(self.circle.visibility, self.circle.join_policy, self.circle.archived_at is not None)

    @property
    def is_manager(self) -> bool:
        """Whether the viewer sees who is behind nicknames: circle admins and the institution's admins."""
        return policy.allows(lambda: self.check(policy.CircleAction.OVERSEE))

    def check(self, action: policy.CircleAction) -> None:
        policy.check_circle(self.actor, self.facts, self.standing, action)


async def open_circle(
    db: AsyncSession, actor: policy.Actor | None, circle_id: str, action: policy.CircleAction, *, lock: bool = False
) -> CircleContext:
    """Load a circle with the viewer's standing and check ``action``; ``lock`` serialises writers on the circle."""
    row = await circles_db.load_circle(db, circle_id, actor.user_id if actor else None, lock=lock)
    if row is None:
        raise NotFound("no such circle")
    standing = policy.Standing(
        role=row.role, banned=row.banned, institution_admin=circles_db.is_institution_admin(row.institution_role)
    )
    context = CircleContext(row.circle, standing, actor)
    context.check(action)
    return context


async def create(db: AsyncSession, actor: policy.Actor, fields: dict[str, Any]) -> CircleContext:
    institution_id = fields.get("institution_id")
    if institution_id is None:
        policy.check_site(actor, policy.SiteAction.CREATE_CIRCLE)
    else:
        if await institutions_db.get_institution(db, institution_id) is None:
            raise NotFound("no such institution")
        role = await institutions_db.member_role(db, institution_id, actor.user_id)
        policy.check_institution(actor, role, policy.InstitutionAction.CREATE_CIRCLE)
    circle = await circles_db.add_circle(db, created_by=actor.user_id, **fields)
    await circles_db.add_member(db, circle.id, actor.user_id, CircleRole.OWNER)
    return await open_circle(db, actor, circle.id, policy.CircleAction.VIEW)


async def update(db: AsyncSession, actor: policy.Actor, circle_id: str, changes: dict[str, Any]) -> CircleContext:
    context = await open_circle(db, actor, circle_id, policy.CircleAction.MANAGE, lock=True)
    if "member_cap" in changes and changes["member_cap"] < await circles_db.count_members(db, circle_id):
        raise Conflict("the circle already has more members than that cap", code="cap_below_members")
    for name, value in changes.items():
        setattr(context.circle, name, value)
    await db.flush()
    return context


async def set_archived(db: AsyncSession, actor: policy.Actor, circle_id: str, archived: bool) -> CircleContext:
    context = await open_circle(db, actor, circle_id, policy.CircleAction.ARCHIVE, lock=True)
    context.circle.archived_at = utcnow() if archived else None
    await circles_db.audit(db, circle_id, actor.user_id, "archive" if archived else "unarchive")
    await db.flush()
    return context


async def discover(
    db: AsyncSession, query: str | None, after: tuple[datetime, str] | None, limit: int
) -> list[Circle]:
    return await circles_db.list_public(db, query, after, limit)


async def mine(db: AsyncSession, actor: policy.Actor) -> list[tuple[Circle, CircleMember]]:
    return await circles_db.list_for_user(db, actor.user_id)


# --- sections ---


async def sections(db: AsyncSession, actor: policy.Actor | None, circle_id: str) -> list[CircleSection]:
    await open_circle(db, actor, circle_id, policy.CircleAction.VIEW)
    return await circles_db.list_sections(db, circle_id)


async def add_section(db: AsyncSession, actor: policy.Actor, circle_id: str, name: str) -> CircleSection:
    await open_circle(db, actor, circle_id, policy.CircleAction.MANAGE, lock=True)
    existing = await circles_db.list_sections(db, circle_id)
    if len(existing) >= MAX_SECTIONS:
        raise Conflict(f"a circle has at most {MAX_SECTIONS} sections", code="section_limit")
    if any(section.name.lower() == name.lower() for section in existing):
        raise Conflict("a section with this name exists", code="section_exists")
    position = max((section.position for section in existing), default=-1) + 1
    return await circles_db.add_section(db, circle_id, name, position)


async def rename_section(
    db: AsyncSession, actor: policy.Actor, circle_id: str, section_id: int, name: str
) -> CircleSection:
    await open_circle(db, actor, circle_id, policy.CircleAction.MANAGE, lock=True)
    existing = await circles_db.list_sections(db, circle_id)
    section = next((s for s in existing if s.id == section_id), None)
    if section is None:
        raise NotFound("no such section")
    if any(s.name.lower() == name.lower() and s.id != section_id for s in existing):
        raise Conflict("a section with this name exists", code="section_exists")
    section.name = name
    await db.flush()
    return section


async def reorder_sections(
    db: AsyncSession, actor: policy.Actor, circle_id: str, order: list[int]
) -> list[CircleSection]:
    await open_circle(db, actor, circle_id, policy.CircleAction.MANAGE, lock=True)
    existing = {section.id: section for section in await circles_db.list_sections(db, circle_id)}
    if sorted(order) != sorted(existing):
        raise Conflict("the order must list every section of the circle exactly once", code="section_order")
    for position, section_id in enumerate(order):
        existing[section_id].position = position
    await db.flush()
    return [existing[section_id] for section_id in order]


async def delete_section(db: AsyncSession, actor: policy.Actor, circle_id: str, section_id: int) -> None:
    await open_circle(db, actor, circle_id, policy.CircleAction.MANAGE, lock=True)
    section = await circles_db.get_section(db, circle_id, section_id)
    if section is None:
        raise NotFound("no such section")
    await circles_db.delete_section(db, section)  # its posts stay, outside any section


# --- the application form ---


async def application_form(db: AsyncSession, actor: policy.Actor | None, circle_id: str) -> list[dict[str, Any]]:
    context = await open_circle(db, actor, circle_id, policy.CircleAction.VIEW)
    return list(context.circle.application_form)


async def set_application_form(
    db: AsyncSession, actor: policy.Actor, circle_id: str, questions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    context = await open_circle(db, actor, circle_id, policy.CircleAction.MANAGE, lock=True)
    context.circle.application_form = questions
    await db.flush()
    return questions
