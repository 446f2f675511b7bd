"""Every access question, answered in one place: "may this actor do this to this thing?".

Functions here are pure: callers load the facts (the actor's role in an institution, and so on) and ask. A refusal is
raised as a typed error. Where the actor may not even know the thing exists, the answer is ``NotFound``, so that
existence does not leak; otherwise it is ``Forbidden``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rooms.errors import Conflict, Forbidden, NotFound
from server.db.models import InstitutionRole


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: int
    is_site_admin: bool


class SiteAction(enum.StrEnum):
    CREATE_INSTITUTION = "create_institution"
    GRANT_SITE_ADMIN = "grant_site_admin"


class InstitutionAction(enum.StrEnum):
    VIEW = "view"
    RENAME = "rename"
    MANAGE_MEMBERS = "manage_members"


_INSTITUTION_RULES: dict[InstitutionAction, frozenset[InstitutionRole]] = {
    InstitutionAction.VIEW: frozenset(InstitutionRole),
    InstitutionAction.RENAME: frozenset({InstitutionRole.OWNER, InstitutionRole.ADMIN}),
    InstitutionAction.MANAGE_MEMBERS: frozenset({InstitutionRole.OWNER, InstitutionRole.ADMIN}),
}

# Which roles a manager may hand out or take away: admins run the teaching staff, owners run everything.
_MANAGEABLE: dict[InstitutionRole, frozenset[InstitutionRole]] = {
    InstitutionRole.OWNER: frozenset(InstitutionRole),
    InstitutionRole.ADMIN: frozenset({InstitutionRole.TEACHER, InstitutionRole.STAFF}),
}


def check_site(actor: Actor, action: SiteAction) -> None:
    if not actor.is_site_admin:
        raise Forbidden(f"only site admins may {action.value.replace('_', ' ')}")


def check_institution(actor: Actor, role: InstitutionRole | None, action: InstitutionAction) -> None:
    if actor.is_site_admin:
        return
    if role is None:
        raise NotFound("no such institution")
    if role not in _INSTITUTION_RULES[action]:
        raise Forbidden(f"an institution {role.value} may not {action.value.replace('_', ' ')}")


def check_institution_member_change(
    actor: Actor,
    actor_role: InstitutionRole | None,
    *,
    target_is_actor: bool,
    current: InstitutionRole | None,
    new: InstitutionRole | None,
    owners: int,
) -> None:
    """Adding (current None), changing, or removing (new None) one member of an institution."""
    leaving = target_is_actor and new is None and current is not None
    if leaving:
        check_institution(actor, actor_role, InstitutionAction.VIEW)  # anyone may leave
    else:
        check_institution(actor, actor_role, InstitutionAction.MANAGE_MEMBERS)
        allowed = _manageable_by(actor, actor_role)
        for role in (current, new):
            if role is not None and role not in allowed:
                raise Forbidden(f"an institution {actor_role} may not manage {role.value}s")
    if current is InstitutionRole.OWNER and new is not InstitutionRole.OWNER and owners <= 1:
        raise Conflict("an institution keeps at least one owner; add another owner first", code="last_owner")


def _manageable_by(actor: Actor, role: InstitutionRole | None) -> frozenset[InstitutionRole]:
    if actor.is_site_admin:
        return frozenset(InstitutionRole)
    return _MANAGEABLE.get(role, frozenset()) if role is not None else frozenset()


def check_set_verified(actor: Actor, *, administers_user: bool) -> None:
    if not (actor.is_site_admin or administers_user):
        raise Forbidden("only site admins and the user's institution admins may verify a user")
