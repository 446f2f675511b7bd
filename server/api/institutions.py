"""Institution routes: create (site admins), list, rename, and manage staff roles."""

from __future__ import annotations

from aiohttp import web

from server.api.identity import signed_in
from server.api.routes import Route
from server.api.schemas import (
    InstitutionIn,
    InstitutionListOut,
    InstitutionOut,
    InstitutionRenameIn,
    MemberAddIn,
    MemberListOut,
    MemberOut,
    MemberRoleIn,
)
from server.api.wire import ok, parse_body, path_int, transaction
from server.services import institutions
from server.services.institutions import InstitutionView


def _out(view: InstitutionView) -> InstitutionOut:
    inst = view.institution
    return InstitutionOut(id=inst.id, name=inst.name, created_at=inst.created_at, my_role=view.my_role)


async def create(request: web.Request) -> web.Response:
    body = await parse_body(request, InstitutionIn)
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        view = await institutions.create(db, identity.actor, name=body.name, owner_id=body.owner_id)
    return ok(_out(view), status=201)


async def list_mine(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        views = await institutions.list_mine(db, identity.actor)
    return ok(InstitutionListOut(institutions=[_out(v) for v in views]))


async def get(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        view = await institutions.get(db, identity.actor, path_int(request, "institution_id"))
    return ok(_out(view))


async def rename(request: web.Request) -> web.Response:
    body = await parse_body(request, InstitutionRenameIn)
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        view = await institutions.rename(db, identity.actor, path_int(request, "institution_id"), body.name)
    return ok(_out(view))


async def list_members(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        rows = await institutions.members(db, identity.actor, path_int(request, "institution_id"))
    return ok(MemberListOut(members=[MemberOut.of(member, user) for member, user in rows]))


async def add_member(request: web.Request) -> web.Response:
    body = await parse_body(request, MemberAddIn)
    institution_id = path_int(request, "institution_id")
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        member, user = await institutions.add_member(db, identity.actor, institution_id, body.role,
                                                     user_id=body.user_id, email=body.email)
    return ok(MemberOut.of(member, user), status=201)


async def set_role(request: web.Request) -> web.Response:
    body = await parse_body(request, MemberRoleIn)
    institution_id, user_id = path_int(request, "institution_id"), path_int(request, "user_id")
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        member, user = await institutions.set_role(db, identity.actor, institution_id, user_id, body.role)
    return ok(MemberOut.of(member, user))


async def remove_member(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        await institutions.remove_member(
            db, identity.actor, path_int(request, "institution_id"), path_int(request, "user_id")
        )
    return web.Response(status=204)


ROUTES = [
    Route("POST", "/api/institutions", create, "Create an institution (site admins)", "institutions",
          body=InstitutionIn, response=InstitutionOut, status=201),
    Route("GET", "/api/institutions", list_mine, "Institutions you belong to (site admins: all)", "institutions",
          response=InstitutionListOut),
    Route("GET", "/api/institutions/{institution_id}", get, "One institution", "institutions",
          response=InstitutionOut),
    Route("PATCH", "/api/institutions/{institution_id}", rename, "Rename (owners, admins)", "institutions",
          body=InstitutionRenameIn, response=InstitutionOut),
    Route("GET", "/api/institutions/{institution_id}/members", list_members, "Staff and their roles",
          "institutions", response=MemberListOut),
    Route("POST", "/api/institutions/{institution_id}/members", add_member,
          "Add a member by user_id or email (owners: any role; admins: teacher, staff)", "institutions",
          body=MemberAddIn, response=MemberOut, status=201),
    Route("PATCH", "/api/institutions/{institution_id}/members/{user_id}", set_role, "Change a member's role",
          "institutions", body=MemberRoleIn, response=MemberOut),
    Route("DELETE", "/api/institutions/{institution_id}/members/{user_id}", remove_member,
          "Remove a member, or leave (the last owner cannot)", "institutions", status=204),
]
