"""The membership funnel and the member list: open join, applications, invites, roles, bans, ownership."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from rooms.errors import Conflict, Gone, InvalidInput, NotFound
from server import policy
from server.db import circles as circles_db
from server.db import users as users_db
from server.db.models import (
    ApplicationStatus,
    AuditEntry,
    Circle,
    CircleBan,
    CircleMember,
    CircleRole,
    Invite,
    JoinRequest,
    MemberType,
    User,
    utcnow,
)
from server.services.circles import CircleContext, open_circle

Action = policy.CircleAction
InviteStatus = Literal["valid", "revoked", "expired", "used_up", "full"]


async def _admit(db: AsyncSession, context: CircleContext, user_id: int, role: CircleRole) -> CircleMember:
    """Add a member under the circle's lock: the cap holds however many people join at once."""
    circle = context.circle
    if await circles_db.count_members(db, circle.id) >= circle.member_cap:
        raise Conflict("this circle is full", code="circle_full")
    member = await circles_db.add_member(db, circle.id, user_id, role)
    member.joined_seq = circle.chat_last_seq  # what a "since joining" history policy counts from
    pending = await circles_db.pending_request(db, circle.id, user_id)
    if pending is not None:  # joined another way while the application waited
        pending.status, pending.reviewed_at, pending.reason = ApplicationStatus.APPROVED, utcnow(), "joined"
    return member


async def join(db: AsyncSession, actor: policy.Actor, circle_id: str) -> CircleMember:
    context = await open_circle(db, actor, circle_id, Action.JOIN, lock=True)
    return await _admit(db, context, actor.user_id, CircleRole.MEMBER)


# --- applications ---


def _check_answers(form: list[dict[str, Any]], answers: dict[str, Any]) -> dict[str, Any]:
    questions = {question["id"]: question for question in form}
    problems = [{"field": key, "problem": "no such question"} for key in answers if key not in questions]
    for qid, question in questions.items():
        answer = answers.get(qid)
        if answer is None or answer == "":
            if question.get("required", False):
                problems.append({"field": qid, "problem": "an answer is required"})
            continue
        if question["kind"] == "choice" and answer not in question["options"]:
            problems.append({"field": qid, "problem": f"must be one of {question['options']}"})
        elif question["kind"] == "text" and not isinstance(answer, str):
            problems.append({"field": qid, "problem": "must be text"})
    if problems:
        raise InvalidInput("the answers do not fit the application form", code="invalid_answers", details=problems)
    return {qid: answers[qid] for qid in questions if qid in answers}


async def apply(
    db: AsyncSession, actor: policy.Actor, circle_id: str, answers: dict[str, Any]
) -> tuple[JoinRequest, User]:
    context = await open_circle(db, actor, circle_id, Action.APPLY, lock=True)
    if await circles_db.pending_request(db, circle_id, actor.user_id) is not None:
        raise Conflict("you have an application waiting for review", code="already_applied")
    checked = _check_answers(context.circle.application_form, answers)
    return await circles_db.add_request(db, circle_id, actor.user_id, checked), await _user(db, actor.user_id)


async def _user(db: AsyncSession, user_id: int) -> User:
    user = await users_db.get_user(db, user_id)
    if user is None:
        raise NotFound("no such user", code="unknown_user")
    return user


async def my_applications(db: AsyncSession, actor: policy.Actor, circle_id: str) -> list[tuple[JoinRequest, User]]:
    await open_circle(db, actor, circle_id, Action.VIEW)
    return await circles_db.list_requests(db, circle_id, None, user_id=actor.user_id)


async def review_queue(
    db: AsyncSession, actor: policy.Actor, circle_id: str, status: ApplicationStatus | None
) -> list[tuple[JoinRequest, User]]:
    await open_circle(db, actor, circle_id, Action.OVERSEE)
    return await circles_db.list_requests(db, circle_id, status)


async def review(
    db: AsyncSession, actor: policy.Actor, circle_id: str, request_id: int, *, approve: bool, reason: str | None
) -> tuple[JoinRequest, User]:
    context = await open_circle(db, actor, circle_id, Action.MANAGE, lock=True)
    request = await circles_db.get_request(db, circle_id, request_id, lock=True)
    if request is None:
        raise NotFound("no such application")
    if request.status is not ApplicationStatus.PENDING:
        raise Conflict(f"this application was already {request.status.value}", code="already_reviewed")
    if approve and await circles_db.get_member(db, circle_id, request.user_id) is None:
        await _admit(db, context, request.user_id, CircleRole.MEMBER)
    request.status = ApplicationStatus.APPROVED if approve else ApplicationStatus.REJECTED
    request.reason, request.reviewed_by, request.reviewed_at = reason, actor.user_id, utcnow()
    await circles_db.audit(db, circle_id, actor.user_id, "approve" if approve else "reject",
                           target_user_id=request.user_id, target_id=request.id, details={"reason": reason or ""})
    await db.flush()
    return request, await _user(db, request.user_id)


# --- invites ---


@dataclass(frozen=True, slots=True)
class InvitePreview:
    invite: Invite
    circle: Circle
    status: InviteStatus


async def create_invite(
    db: AsyncSession, actor: policy.Actor, circle_id: str, *, role: CircleRole, max_uses: int | None,
    expires_in_seconds: int | None,
) -> Invite:
    context = await open_circle(db, actor, circle_id, Action.INVITE)
    policy.check_grant(actor, context.standing, role)
    expires_at = utcnow() + timedelta(seconds=expires_in_seconds) if expires_in_seconds else None
    return await circles_db.add_invite(db, circle_id=circle_id, role=role, max_uses=max_uses, expires_at=expires_at,
                                       created_by=actor.user_id)


async def invites(db: AsyncSession, actor: policy.Actor, circle_id: str) -> list[Invite]:
    """The invites the viewer could have made: a teacher sees member invites, not the links that make admins."""
    context = await open_circle(db, actor, circle_id, Action.INVITE)
    found = await circles_db.list_invites(db, circle_id)
    return [invite for invite in found if policy.may_grant(actor, context.standing, invite.role)]


async def get_invite(db: AsyncSession, actor: policy.Actor, circle_id: str, invite_id: int) -> Invite:
    context = await open_circle(db, actor, circle_id, Action.INVITE)
    invite = await circles_db.get_invite(db, circle_id, invite_id)
    if invite is None:
        raise NotFound("no such invite")
    policy.check_grant(actor, context.standing, invite.role)
    return invite


async def revoke_invite(db: AsyncSession, actor: policy.Actor, circle_id: str, invite_id: int) -> Invite:
    invite = await get_invite(db, actor, circle_id, invite_id)
    if invite.revoked_at is None:
        invite.revoked_at = utcnow()
        await circles_db.audit(db, circle_id, actor.user_id, "revoke_invite", target_id=invite.id)
    await db.flush()
    return invite


async def _invite_status(db: AsyncSession, invite: Invite, circle: Circle) -> InviteStatus:
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at is not None and invite.expires_at <= utcnow():
        return "expired"
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        return "used_up"
    if await circles_db.count_members(db, circle.id) >= circle.member_cap:
        return "full"
    return "valid"


async def preview_invite(db: AsyncSession, token: str) -> InvitePreview:
    """What a link holder sees before joining: the circle's name and whether the invite still works."""
    invite = await circles_db.get_invite_by_token(db, token)
    circle = None if invite is None else await db.get(Circle, invite.circle_id)
    if invite is None or circle is None:
        raise NotFound("no such invite")
    return InvitePreview(invite, circle, await _invite_status(db, invite, circle))


_GONE = {
    "revoked": "this invite was revoked",
    "expired": "this invite has expired",
    "used_up": "this invite has been used as many times as allowed",
}


async def accept_invite(db: AsyncSession, actor: policy.Actor, token: str) -> CircleMember:
    invite = await circles_db.get_invite_by_token(db, token)
    if invite is None:
        raise NotFound("no such invite")
    context = await open_circle(db, actor, invite.circle_id, Action.ACCEPT_INVITE, lock=True)
    status = await _invite_status(db, invite, context.circle)
    if status == "full":
        raise Conflict("this circle is full", code="circle_full")
    if status != "valid":
        raise Gone(_GONE[status], code=f"invite_{status}")
    if not await circles_db.spend_invite(db, invite.id, utcnow()):
        raise Gone(_GONE["used_up"], code="invite_used_up")  # a concurrent join took the last use
    return await _admit(db, context, actor.user_id, invite.role)


# --- members ---


async def directory(
    db: AsyncSession, actor: policy.Actor, circle_id: str, where: circles_db.DirectoryFilter,
    after_user_id: int | None, limit: int,
) -> tuple[CircleContext, list[tuple[CircleMember, User]]]:
    context = await open_circle(db, actor, circle_id, Action.DIRECTORY)
    return context, await circles_db.directory(db, circle_id, where, after_user_id, limit)


async def my_membership(db: AsyncSession, actor: policy.Actor, circle_id: str) -> CircleMember:
    await open_circle(db, actor, circle_id, Action.DIRECTORY)
    member = await circles_db.get_member(db, circle_id, actor.user_id)
    if member is None:
        raise NotFound("you are not a member of this circle", code="not_a_member")
    return member


async def update_me(
    db: AsyncSession, actor: policy.Actor, circle_id: str, changes: dict[str, Any]
) -> CircleMember:
    await open_circle(db, actor, circle_id, Action.DIRECTORY)  # members (and staff, who have no membership)
    member = await circles_db.get_member(db, circle_id, actor.user_id)
    if member is None:
        raise NotFound("you are not a member of this circle", code="not_a_member")
    for name, value in changes.items():
        setattr(member, name, value)
    await db.flush()
    return member


async def _target(db: AsyncSession, circle_id: str, user_id: int) -> CircleMember:
    member = await circles_db.get_member(db, circle_id, user_id)
    if member is None:
        raise NotFound("that user is not a member of this circle", code="not_a_member")
    return member


async def update_member(
    db: AsyncSession, actor: policy.Actor, circle_id: str, user_id: int, *, role: CircleRole | None,
    member_type: MemberType | None,
) -> CircleMember:
    context = await open_circle(db, actor, circle_id, Action.MANAGE, lock=True)
    member = await _target(db, circle_id, user_id)
    if role is not None and role is not member.role:
        policy.check_grant(actor, context.standing, role, current=member.role)
        await circles_db.audit(db, circle_id, actor.user_id, "change_role", target_user_id=user_id,
                               details={"from": member.role.value, "to": role.value})
        member.role = role
    if member_type is not None:
        member.member_type = member_type
    await db.flush()
    return member


async def remove(db: AsyncSession, actor: policy.Actor, circle_id: str, user_id: int) -> None:
    """Remove a member, or leave when ``user_id`` is the caller."""
    if user_id == actor.user_id:
        await open_circle(db, actor, circle_id, Action.LEAVE, lock=True)
        await circles_db.remove_member(db, circle_id, user_id)
        return
    context = await open_circle(db, actor, circle_id, Action.MANAGE, lock=True)
    member = await _target(db, circle_id, user_id)
    policy.check_remove_member(actor, context.standing, member.role)
    await circles_db.remove_member(db, circle_id, user_id)
    await circles_db.audit(db, circle_id, actor.user_id, "remove", target_user_id=user_id)


async def ban(
    db: AsyncSession, actor: policy.Actor, circle_id: str, user_id: int, reason: str
) -> tuple[CircleBan, User]:
    context = await open_circle(db, actor, circle_id, Action.MANAGE, lock=True)
    if user_id == actor.user_id:
        raise Conflict("you cannot ban yourself", code="self_ban")
    user = await _user(db, user_id)
    if await circles_db.get_ban(db, circle_id, user_id) is not None:
        raise Conflict("already banned", code="already_banned")
    member = await circles_db.get_member(db, circle_id, user_id)
    if member is not None:
        policy.check_remove_member(actor, context.standing, member.role)
        await circles_db.remove_member(db, circle_id, user_id)
    await circles_db.reject_pending_requests(db, circle_id, user_id, actor.user_id, "banned")
    banned = await circles_db.add_ban(db, circle_id, user_id, actor.user_id, reason)
    await circles_db.audit(db, circle_id, actor.user_id, "ban", target_user_id=user_id, details={"reason": reason})
    return banned, user


async def unban(db: AsyncSession, actor: policy.Actor, circle_id: str, user_id: int) -> None:
    await open_circle(db, actor, circle_id, Action.MANAGE, lock=True)
    if not await circles_db.delete_ban(db, circle_id, user_id):
        raise NotFound("that user is not banned here", code="not_banned")
    await circles_db.audit(db, circle_id, actor.user_id, "unban", target_user_id=user_id)


async def bans(db: AsyncSession, actor: policy.Actor, circle_id: str) -> list[tuple[CircleBan, User]]:
    await open_circle(db, actor, circle_id, Action.OVERSEE)
    return await circles_db.list_bans(db, circle_id)


async def transfer(db: AsyncSession, actor: policy.Actor, circle_id: str, user_id: int) -> CircleMember:
    await open_circle(db, actor, circle_id, Action.TRANSFER, lock=True)
    target = await _target(db, circle_id, user_id)
    if target.role is CircleRole.OWNER:
        raise Conflict("that member already owns the circle", code="already_owner")
    owners = [m for m, _ in await circles_db.directory(
        db, circle_id, circles_db.DirectoryFilter(role=CircleRole.OWNER), None, 10)]
    for owner in owners:
        owner.role = CircleRole.ADMIN
    target.role = CircleRole.OWNER
    await circles_db.audit(db, circle_id, actor.user_id, "transfer_ownership", target_user_id=user_id)
    await db.flush()
    return target


async def audit_log(
    db: AsyncSession, actor: policy.Actor, circle_id: str, before_id: int | None, limit: int
) -> list[AuditEntry]:
    await open_circle(db, actor, circle_id, Action.OVERSEE)
    return await circles_db.audit_log(db, circle_id, before_id, limit)
