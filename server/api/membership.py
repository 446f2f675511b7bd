"""Membership routes: join, apply and review, invites (with QR codes), the member list, roles, bans, ownership."""

from __future__ import annotations

import io

import segno
from aiohttp import web

from server.api.circle_schemas import (
    ApplicationIn,
    ApplicationListOut,
    ApplicationOut,
    ApplicationsQuery,
    AuditListOut,
    BanIn,
    BanListOut,
    BanOut,
    CircleOut,
    DirectoryEntryOut,
    DirectoryOut,
    DirectoryQuery,
    InviteIn,
    InviteListOut,
    InviteOut,
    InvitePreviewOut,
    MemberPatchIn,
    MembershipMeIn,
    MembershipOut,
    PageQuery,
    ReviewIn,
    TransferIn,
    invite_url,
)
from server.api.identity import public_origin, user_actor
from server.api.routes import Route
from server.api.wire import ok, parse_body, parse_query, path_circle_id, path_int, transaction
from server.db.circles import DirectoryFilter
from server.hub.setup import BROADCASTER
from server.services import membership


async def join(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        member = await membership.join(db, await user_actor(request, db), path_circle_id(request))
    return ok(MembershipOut.of(member), status=201)


async def leave_or_remove(request: web.Request) -> web.Response:
    circle_id, user_id = path_circle_id(request), path_int(request, "user_id")
    async with transaction(request) as db:
        await membership.remove(db, await user_actor(request, db), circle_id, user_id)
    await request.app[BROADCASTER].evict(user_id, circle_id)  # their open chats stop at once
    return web.Response(status=204)


async def apply(request: web.Request) -> web.Response:
    body = await parse_body(request, ApplicationIn)
    async with transaction(request) as db:
        application, user = await membership.apply(db, await user_actor(request, db), path_circle_id(request),
                                                    body.answers)
    return ok(ApplicationOut.of(application, user), status=201)


async def my_applications(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        rows = await membership.my_applications(db, await user_actor(request, db), path_circle_id(request))
    return ok(ApplicationListOut(applications=[ApplicationOut.of(a, u) for a, u in rows]))


async def review_queue(request: web.Request) -> web.Response:
    query = parse_query(request, ApplicationsQuery)
    async with transaction(request) as db:
        rows = await membership.review_queue(db, await user_actor(request, db), path_circle_id(request), query.status)
    return ok(ApplicationListOut(applications=[ApplicationOut.of(a, u) for a, u in rows]))


async def _review(request: web.Request, approve: bool) -> web.Response:
    body = await parse_body(request, ReviewIn)
    async with transaction(request) as db:
        application, user = await membership.review(
            db, await user_actor(request, db), path_circle_id(request), path_int(request, "application_id"),
            approve=approve, reason=body.reason)
    return ok(ApplicationOut.of(application, user))


async def approve(request: web.Request) -> web.Response:
    return await _review(request, approve=True)


async def reject(request: web.Request) -> web.Response:
    return await _review(request, approve=False)


async def create_invite(request: web.Request) -> web.Response:
    body = await parse_body(request, InviteIn)
    async with transaction(request) as db:
        invite = await membership.create_invite(
            db, await user_actor(request, db), path_circle_id(request), role=body.role, max_uses=body.max_uses,
            expires_in_seconds=body.expires_in_seconds)
    return ok(InviteOut.of(invite, public_origin(request)), status=201)


async def list_invites(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        found = await membership.invites(db, await user_actor(request, db), path_circle_id(request))
    origin = public_origin(request)
    return ok(InviteListOut(invites=[InviteOut.of(invite, origin) for invite in found]))


async def revoke_invite(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        invite = await membership.revoke_invite(db, await user_actor(request, db), path_circle_id(request),
                                                path_int(request, "invite_id"))
    return ok(InviteOut.of(invite, public_origin(request)))


async def _invite_qr(request: web.Request, kind: str) -> web.Response:
    async with transaction(request) as db:
        invite = await membership.get_invite(db, await user_actor(request, db), path_circle_id(request),
                                             path_int(request, "invite_id"))
    buffer = io.BytesIO()
    segno.make(invite_url(public_origin(request), invite.token), error="m").save(
        buffer, kind=kind, scale=8, border=4)
    content_type = "image/svg+xml" if kind == "svg" else "image/png"
    return web.Response(body=buffer.getvalue(), content_type=content_type,
                        headers={"Cache-Control": "private, max-age=300"})


async def invite_qr_svg(request: web.Request) -> web.Response:
    return await _invite_qr(request, "svg")


async def invite_qr_png(request: web.Request) -> web.Response:
    return await _invite_qr(request, "png")


async def preview_invite(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        found = await membership.preview_invite(db, request.match_info["token"])
    return ok(InvitePreviewOut(circle=CircleOut.of(found.circle), role=found.invite.role,
                               status=found.status))


async def accept_invite(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        member = await membership.accept_invite(db, await user_actor(request, db), request.match_info["token"])
    return ok(MembershipOut.of(member), status=201)


async def directory(request: web.Request) -> web.Response:
    query = parse_query(request, DirectoryQuery)
    where = DirectoryFilter(query=query.q, position=query.position, education=query.education,
                            industry=query.industry, field=query.custom_field(), role=query.role)
    async with transaction(request) as db:
        context, rows = await membership.directory(db, await user_actor(request, db), path_circle_id(request), where,
                                                   query.after, query.limit + 1)
    page = rows[: query.limit]
    reveal = context.is_manager
    return ok(DirectoryOut(members=[DirectoryEntryOut.of(m, u, reveal) for m, u in page],
                           next_after=page[-1][0].user_id if len(rows) > query.limit else None))


async def get_me(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        member = await membership.my_membership(db, await user_actor(request, db), path_circle_id(request))
    return ok(MembershipOut.of(member))


async def update_me(request: web.Request) -> web.Response:
    body = await parse_body(request, MembershipMeIn)
    async with transaction(request) as db:
        member = await membership.update_me(db, await user_actor(request, db), path_circle_id(request),
                                            body.model_dump(include=body.model_fields_set))
    return ok(MembershipOut.of(member))


async def update_member(request: web.Request) -> web.Response:
    body = await parse_body(request, MemberPatchIn)
    async with transaction(request) as db:
        member = await membership.update_member(
            db, await user_actor(request, db), path_circle_id(request), path_int(request, "user_id"),
            role=body.role, member_type=body.member_type)
    return ok(MembershipOut.of(member))


async def ban(request: web.Request) -> web.Response:
    body = await parse_body(request, BanIn)
    async with transaction(request) as db:
        banned, user = await membership.ban(db, await user_actor(request, db), path_circle_id(request), body.user_id,
                                            body.reason)
    await request.app[BROADCASTER].evict(user.id, banned.circle_id)
    return ok(BanOut(user_id=user.id, display_name=user.display_name, reason=banned.reason,
                     created_at=banned.created_at), status=201)


async def unban(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        await membership.unban(db, await user_actor(request, db), path_circle_id(request), path_int(request, "user_id"))
    return web.Response(status=204)


async def list_bans(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        rows = await membership.bans(db, await user_actor(request, db), path_circle_id(request))
    return ok(BanListOut(bans=[BanOut(user_id=u.id, display_name=u.display_name, reason=b.reason,
                                      created_at=b.created_at) for b, u in rows]))


async def transfer(request: web.Request) -> web.Response:
    body = await parse_body(request, TransferIn)
    async with transaction(request) as db:
        member = await membership.transfer(db, await user_actor(request, db), path_circle_id(request), body.user_id)
    return ok(MembershipOut.of(member))


async def audit_log(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    async with transaction(request) as db:
        entries = await membership.audit_log(db, await user_actor(request, db), path_circle_id(request), query.before,
                                             query.limit)
    return ok(AuditListOut.of(entries, query.limit))


C = "/api/circles/{circle_id}"
T = "membership"
ROUTES = [
    Route("POST", f"{C}/join", join, "Join an open circle", T, response=MembershipOut, status=201),
    Route("POST", f"{C}/applications", apply, "Apply to a circle that admits by application", T,
          body=ApplicationIn, response=ApplicationOut, status=201),
    Route("GET", f"{C}/applications/mine", my_applications, "Your applications to this circle and their status", T,
          response=ApplicationListOut),
    Route("GET", f"{C}/applications", review_queue, "The review queue (admins)", T, query=ApplicationsQuery,
          response=ApplicationListOut),
    Route("POST", f"{C}/applications/{{application_id}}/approve", approve, "Approve an application (admins)", T,
          body=ReviewIn, response=ApplicationOut),
    Route("POST", f"{C}/applications/{{application_id}}/reject", reject, "Reject with a reason (admins)", T,
          body=ReviewIn, response=ApplicationOut),
    Route("POST", f"{C}/invites", create_invite, "Create an invite link (moderators)", T, body=InviteIn,
          response=InviteOut, status=201),
    Route("GET", f"{C}/invites", list_invites, "Invite links of the circle (moderators)", T,
          response=InviteListOut),
    Route("DELETE", f"{C}/invites/{{invite_id}}", revoke_invite, "Revoke an invite", T, response=InviteOut),
    Route("GET", f"{C}/invites/{{invite_id}}/qr.svg", invite_qr_svg, "QR code of the invite link, SVG", T,
          content_type="image/svg+xml"),
    Route("GET", f"{C}/invites/{{invite_id}}/qr.png", invite_qr_png, "QR code of the invite link, PNG", T,
          content_type="image/png"),
    Route("GET", "/api/invites/{token}", preview_invite, "What an invite leads to, and whether it still works", T,
          auth="public", response=InvitePreviewOut),
    Route("POST", "/api/invites/{token}/accept", accept_invite, "Join through an invite", T,
          response=MembershipOut, status=201),
    Route("GET", f"{C}/members", directory, "The member list: search, tag and custom-field filters", T,
          query=DirectoryQuery, response=DirectoryOut),
    Route("GET", f"{C}/members/me", get_me, "Your membership here: role, nickname, notification level, mute", T,
          response=MembershipOut),
    Route("PATCH", f"{C}/members/me", update_me, "Your nickname and notification level here", T,
          body=MembershipMeIn, response=MembershipOut),
    Route("PATCH", f"{C}/members/{{user_id}}", update_member, "Change a member's role or type (admins)", T,
          body=MemberPatchIn, response=MembershipOut),
    Route("DELETE", f"{C}/members/{{user_id}}", leave_or_remove, "Remove a member (admins), or leave (yourself)", T,
          status=204),
    Route("GET", f"{C}/bans", list_bans, "Banned users (admins)", T, response=BanListOut),
    Route("POST", f"{C}/bans", ban, "Ban a user: removed, and refused on every way in (admins)", T, body=BanIn,
          response=BanOut, status=201),
    Route("DELETE", f"{C}/bans/{{user_id}}", unban, "Lift a ban (admins)", T, status=204),
    Route("POST", f"{C}/transfer", transfer, "Hand the circle to another member (owner)", T, body=TransferIn,
          response=MembershipOut),
    Route("GET", f"{C}/audit", audit_log, "Moderation log, newest first (admins)", T, query=PageQuery,
          response=AuditListOut),
]
