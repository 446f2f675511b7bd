"""Every access question, answered in one place: "may this actor do this to this thing?".

Functions here are pure: callers load the facts (the actor's role in an institution, and so on) and ask. A refusal is
raised as a typed error. Where the actor may not even know the thing exists, the answer is ``NotFound``, so that
existence does not leak; otherwise it is ``Forbidden``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from rooms.classroom import RoomRole
from rooms.errors import Conflict, DomainError, Forbidden, NotAuthenticated, NotFound
from server.db.models import CircleRole, InstitutionRole, JoinPolicy, MemberType, Visibility


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: int
    is_site_admin: bool


class SiteAction(enum.StrEnum):
    CREATE_INSTITUTION = "create_institution"
    CREATE_CIRCLE = "create_circle"
    GRANT_SITE_ADMIN = "grant_site_admin"


class InstitutionAction(enum.StrEnum):
    VIEW = "view"
    RENAME = "rename"
    MANAGE_MEMBERS = "manage_members"
    CREATE_CIRCLE = "create_circle"


_INSTITUTION_RULES: dict[InstitutionAction, frozenset[InstitutionRole]] = {
    InstitutionAction.VIEW: frozenset(InstitutionRole),
    InstitutionAction.RENAME: frozenset({InstitutionRole.OWNER, InstitutionRole.ADMIN}),
    InstitutionAction.MANAGE_MEMBERS: frozenset({InstitutionRole.OWNER, InstitutionRole.ADMIN}),
    InstitutionAction.CREATE_CIRCLE: frozenset({InstitutionRole.OWNER, InstitutionRole.ADMIN, InstitutionRole.TEACHER}),
}

# Which roles a manager may hand out or take away: admins run the teaching staff, owners run everything.
_MANAGEABLE: dict[InstitutionRole, frozenset[InstitutionRole]] = {
    InstitutionRole.OWNER: frozenset(InstitutionRole),
    InstitutionRole.ADMIN: frozenset({InstitutionRole.TEACHER, InstitutionRole.STAFF}),
}


def check_site(actor: Actor, action: SiteAction) -> None:
    if action is SiteAction.CREATE_CIRCLE:
        return  # any signed-in user may start a circle of their own
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


def allows(check: Callable[[], None]) -> bool:
    """A check as a yes/no answer, for deciding what to show rather than whether to refuse."""
    try:
        check()
    except DomainError:
        return False
    return True


def check_set_verified(actor: Actor, *, administers_user: bool, is_self: bool = False) -> None:
    if is_self and not actor.is_site_admin:
        raise Forbidden("you cannot verify yourself; ask a site admin or another institution admin")
    if not (actor.is_site_admin or administers_user):
        raise Forbidden("only site admins and the user's institution admins may verify a user")


# --- circles -------------------------------------------------------------------------------------------------------


class CircleAction(enum.StrEnum):
    VIEW = "view"  # the circle's page: name, description, policies
    READ = "read"  # the feed, posts and comments
    DIRECTORY = "directory"  # the member list with profile tags
    JOIN = "join"  # open join
    APPLY = "apply"  # submit an application
    ACCEPT_INVITE = "accept_invite"
    CONTRIBUTE = "contribute"  # post, comment, react
    MODERATE = "moderate"  # delete others' posts and comments, pin
    INVITE = "invite"  # create and revoke invite links
    MANAGE = "manage"  # settings, sections, the form, reviews, members, bans
    OVERSEE = "oversee"  # read what managers read: the review queue, bans, the audit log, who is behind nicknames
    ARCHIVE = "archive"
    TRANSFER = "transfer"  # hand the ownership to another member
    LEAVE = "leave"
    CHAT = "chat"  # read the circle's chat
    SEND_MESSAGE = "send_message"


@dataclass(frozen=True, slots=True)
class CircleFacts:
    visibility: Visibility
    join_policy: JoinPolicy
    archived: bool


@dataclass(frozen=True, slots=True)
class Standing:
    """The viewer's relation to one circle."""

    role: CircleRole | None = None
    banned: bool = False
    institution_admin: bool = False  # owner or admin of the institution that owns the circle


_MODERATORS = frozenset({CircleRole.OWNER, CircleRole.ADMIN, CircleRole.TEACHER})
_MANAGERS = frozenset({CircleRole.OWNER, CircleRole.ADMIN})
_CIRCLE_RULES: dict[CircleAction, frozenset[CircleRole]] = {
    CircleAction.DIRECTORY: frozenset(CircleRole),
    CircleAction.CONTRIBUTE: frozenset(CircleRole),
    CircleAction.LEAVE: frozenset(CircleRole),
    CircleAction.CHAT: frozenset(CircleRole),
    CircleAction.SEND_MESSAGE: frozenset(CircleRole),
    CircleAction.MODERATE: _MODERATORS,
    CircleAction.INVITE: _MODERATORS,
    CircleAction.MANAGE: _MANAGERS,
    CircleAction.OVERSEE: _MANAGERS,
    CircleAction.ARCHIVE: frozenset({CircleRole.OWNER}),
    CircleAction.TRANSFER: frozenset({CircleRole.OWNER}),
}
_OPEN_TO_ALL = frozenset({CircleAction.VIEW, CircleAction.READ})
_WAYS_IN = {CircleAction.JOIN: JoinPolicy.OPEN, CircleAction.APPLY: JoinPolicy.APPLICATION}
_ALLOWED_WHEN_ARCHIVED = frozenset({CircleAction.VIEW, CircleAction.READ, CircleAction.DIRECTORY,
                                    CircleAction.ARCHIVE, CircleAction.LEAVE, CircleAction.CHAT,
                                    CircleAction.OVERSEE})
# Roles each manager may hand out (or take away) through invites and role changes; ownership moves by transfer only.
_GRANTABLE: dict[CircleRole, frozenset[CircleRole]] = {
    CircleRole.OWNER: frozenset({CircleRole.ADMIN, CircleRole.TEACHER, CircleRole.MEMBER}),
    CircleRole.ADMIN: frozenset({CircleRole.TEACHER, CircleRole.MEMBER}),
    CircleRole.TEACHER: frozenset({CircleRole.MEMBER}),
}


def _staff(actor: Actor | None, standing: Standing) -> bool:
    """Site admins and the owning institution's admins act in a circle as its owner would."""
    return actor is not None and (actor.is_site_admin or standing.institution_admin)


def _effective_role(actor: Actor | None, standing: Standing) -> CircleRole | None:
    return CircleRole.OWNER if _staff(actor, standing) else standing.role


def check_circle(actor: Actor | None, circle: CircleFacts, standing: Standing, action: CircleAction) -> None:
    if actor is None and action not in _OPEN_TO_ALL:
        raise NotAuthenticated()
    role = _effective_role(actor, standing)
    # Holding an invite token is what lets a stranger reach a private circle.
    if circle.visibility is Visibility.PRIVATE and role is None and action is not CircleAction.ACCEPT_INVITE:
        raise NotFound("no such circle")
    if circle.archived and action not in _ALLOWED_WHEN_ARCHIVED:
        raise Conflict("this circle is archived and read-only", code="circle_archived")
    if action is CircleAction.VIEW:
        return
    if action is CircleAction.READ:
        if circle.visibility is Visibility.PUBLIC or role is not None:
            return
        raise Forbidden("only members read this circle", code="not_a_member")
    if action in (CircleAction.JOIN, CircleAction.APPLY, CircleAction.ACCEPT_INVITE):
        if standing.banned:
            raise Forbidden("you are banned from this circle", code="banned")
        if standing.role is not None:
            raise Conflict("you are already a member", code="already_member")
        wanted = _WAYS_IN.get(action)
        if wanted is not None and circle.join_policy is not wanted:
            raise Forbidden(f"this circle admits by {circle.join_policy.value}", code="join_policy")
        return
    if action is CircleAction.LEAVE and standing.role is CircleRole.OWNER:
        raise Conflict("the owner must transfer the circle before leaving", code="owner_must_transfer")
    allowed = _CIRCLE_RULES[action]
    if role is None:
        raise Forbidden("only members may do this", code="not_a_member")
    if action is CircleAction.LEAVE:
        role = standing.role  # staff acting as owner are not members and have nothing to leave
        if role is None:
            raise Forbidden("you are not a member", code="not_a_member")
    if role not in allowed:
        raise Forbidden(f"a circle {role.value} may not {action.value}")


def check_grant(actor: Actor, standing: Standing, role: CircleRole, *, current: CircleRole | None = None) -> None:
    """Whether the viewer may give ``role`` (by invite or role change) to someone who now has ``current``."""
    for wanted in (role, current):
        if wanted is not None and not may_grant(actor, standing, wanted):
            mine = _effective_role(actor, standing)
            raise Forbidden(f"a circle {mine} may not grant or change the {wanted.value} role")


def may_grant(actor: Actor, standing: Standing, role: CircleRole) -> bool:
    mine = _effective_role(actor, standing)
    return mine is not None and role in _GRANTABLE.get(mine, frozenset())


def check_remove_member(actor: Actor, standing: Standing, target: CircleRole) -> None:
    """Removing or banning a member: managers only, and only members below them; never the owner."""
    if target is CircleRole.OWNER:
        raise Forbidden("the owner cannot be removed; transfer the circle first", code="owner_protected")
    check_grant(actor, standing, target)


def check_send_message(
    actor: Actor, standing: Standing, *, read_only: bool, muted_until: datetime | None, now: datetime
) -> None:
    """Beyond SEND_MESSAGE: a muted member keeps reading but may not send; announcement mode leaves it to staff."""
    role = _effective_role(actor, standing)
    if muted_until is not None and muted_until > now and not _staff(actor, standing):
        raise Forbidden("you are muted in this circle", code="muted", details={"until": muted_until.isoformat()})
    if read_only and role not in _MODERATORS:
        raise Forbidden("only teachers and admins post while the chat is in announcement mode", code="read_only")


def sees_whole_history(actor: Actor, standing: Standing, history_for_all: bool) -> bool:
    """New members may read chat from before they joined only if the circle says so; its staff always may."""
    return history_for_all or _effective_role(actor, standing) in _MANAGERS


def check_author(actor: Actor, author_id: int | None) -> None:
    if author_id != actor.user_id:
        raise Forbidden("only the author may edit this", code="not_author")


def check_delete_content(actor: Actor, circle: CircleFacts, standing: Standing, author_id: int | None) -> None:
    if author_id == actor.user_id:
        check_circle(actor, circle, standing, CircleAction.VIEW)
        return
    check_circle(actor, circle, standing, CircleAction.MODERATE)


# --- live classes --------------------------------------------------------------------------------------------------


class ClassAction(enum.StrEnum):
    VIEW = "view"  # the circle's schedule and a session's page, its polls' final results
    SCHEDULE = "schedule"  # schedule, edit, cancel; prepare polls
    JOIN = "join"  # enter the live room (what one may do inside is the room's role, ``class_room_role``)
    REPORT = "report"  # the attendance report and its CSV, live poll results


def check_class(actor: Actor, circle: CircleFacts, standing: Standing, action: ClassAction, *, teaches: bool) -> None:
    """Classes belong to their circle: its members see and join them; its moderators schedule them; the session's
    teachers, the circle's managers and the institution's admins read the register."""
    if action is ClassAction.VIEW:
        check_circle(actor, circle, standing, CircleAction.CHAT)
    elif action is ClassAction.JOIN:
        check_circle(actor, circle, standing, CircleAction.CONTRIBUTE)
    elif action is ClassAction.SCHEDULE:
        check_circle(actor, circle, standing, CircleAction.CHAT)  # a stranger to a private circle gets NotFound
        if not teaches:
            check_circle(actor, circle, standing, CircleAction.MODERATE)
        elif circle.archived:
            raise Conflict("this circle is archived and read-only", code="circle_archived")
    else:
        check_circle(actor, circle, standing, CircleAction.CHAT)
        if not teaches:
            check_circle(actor, circle, standing, CircleAction.OVERSEE)


def may_teach(standing: Standing) -> bool:
    """Who may be named a session's teacher: the circle's teachers, admins and owner."""
    return standing.role in _MODERATORS


def on_register(role: CircleRole, member_type: MemberType) -> bool:
    """Who a class's register counts: the circle's members who learn (its staff teach or assist, fans observe)."""
    return role is CircleRole.MEMBER and member_type is not MemberType.FAN


def class_room_role(actor: Actor, standing: Standing, *, teaches: bool, member_type: MemberType | None) -> RoomRole:
    """The role a person takes in a live room: the session's named teachers teach; the circle's other moderators
    and the institution's admins assist; fans (who follow a circle without being enrolled) observe; members learn."""
    if teaches:
        return RoomRole.TEACHER
    if _effective_role(actor, standing) in _MODERATORS:
        return RoomRole.ASSISTANT
    if member_type is MemberType.FAN:
        return RoomRole.OBSERVER
    return RoomRole.STUDENT
