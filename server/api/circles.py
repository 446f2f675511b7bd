"""Circle routes: create, read, edit, archive, discover; sections; the application form."""

from __future__ import annotations

from aiohttp import web

from server.api.circle_schemas import (
    ArchivedIn,
    CircleIn,
    CircleListOut,
    CircleOut,
    CirclePatchIn,
    DiscoverQuery,
    FormIn,
    FormOut,
    SectionIn,
    SectionListOut,
    SectionOrderIn,
    SectionOut,
    discover_cursor,
)
from server.api.identity import any_actor, user_actor
from server.api.routes import Route
from server.api.wire import ok, parse_body, parse_query, path_circle_id, path_int, transaction
from server.policy import CircleAction
from server.services import circles


def _out(context: circles.CircleContext) -> CircleOut:
    return CircleOut.of(context.circle, context.standing.role)


async def create(request: web.Request) -> web.Response:
    body = await parse_body(request, CircleIn)
    async with transaction(request) as db:
        context = await circles.create(db, await user_actor(request, db), body.model_dump())
    return ok(_out(context), status=201)


async def discover(request: web.Request) -> web.Response:
    query = parse_query(request, DiscoverQuery)
    async with transaction(request) as db:
        found = await circles.discover(db, query.q, query.cursor(), query.limit + 1)
    page = found[: query.limit]
    cursor = discover_cursor(page[-1]) if len(found) > query.limit else None
    return ok(CircleListOut(circles=[CircleOut.of(c) for c in page], next_before=cursor))


async def mine(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        rows = await circles.mine(db, await user_actor(request, db))
    return ok(CircleListOut(circles=[CircleOut.of(circle, member.role) for circle, member in rows]))


async def get(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        context = await circles.open_circle(db, await any_actor(request, db), path_circle_id(request),
                                            CircleAction.VIEW)
    return ok(_out(context))


async def update(request: web.Request) -> web.Response:
    body = await parse_body(request, CirclePatchIn)
    async with transaction(request) as db:
        context = await circles.update(db, await user_actor(request, db), path_circle_id(request),
                                       body.model_dump(include=body.model_fields_set))
    return ok(_out(context))


async def set_archived(request: web.Request) -> web.Response:
    body = await parse_body(request, ArchivedIn)
    async with transaction(request) as db:
        context = await circles.set_archived(db, await user_actor(request, db), path_circle_id(request), body.archived)
    return ok(_out(context))


async def list_sections(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        found = await circles.sections(db, await any_actor(request, db), path_circle_id(request))
    return ok(SectionListOut.of(found))


async def add_section(request: web.Request) -> web.Response:
    body = await parse_body(request, SectionIn)
    async with transaction(request) as db:
        section = await circles.add_section(db, await user_actor(request, db), path_circle_id(request), body.name)
    return ok(SectionOut.model_validate(section), status=201)


async def rename_section(request: web.Request) -> web.Response:
    body = await parse_body(request, SectionIn)
    async with transaction(request) as db:
        section = await circles.rename_section(db, await user_actor(request, db), path_circle_id(request),
                                               path_int(request, "section_id"), body.name)
    return ok(SectionOut.model_validate(section))


async def reorder_sections(request: web.Request) -> web.Response:
    body = await parse_body(request, SectionOrderIn)
    async with transaction(request) as db:
        found = await circles.reorder_sections(db, await user_actor(request, db), path_circle_id(request),
                                               body.section_ids)
    return ok(SectionListOut.of(found))


async def delete_section(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        await circles.delete_section(db, await user_actor(request, db), path_circle_id(request),
                                     path_int(request, "section_id"))
    return web.Response(status=204)


async def get_form(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        questions = await circles.application_form(db, await any_actor(request, db), path_circle_id(request))
    return ok(FormOut(questions=questions))


async def set_form(request: web.Request) -> web.Response:
    body = await parse_body(request, FormIn)
    async with transaction(request) as db:
        questions = await circles.set_application_form(
            db, await user_actor(request, db), path_circle_id(request), [q.model_dump() for q in body.questions])
    return ok(FormOut(questions=questions))


C = "/api/circles/{circle_id}"
ROUTES = [
    Route("POST", "/api/circles", create, "Create a circle (yours, or an institution's)", "circles",
          body=CircleIn, response=CircleOut, status=201),
    Route("GET", "/api/circles", discover, "Discover public circles, searching name and description", "circles",
          auth="public", query=DiscoverQuery, response=CircleListOut),
    Route("GET", "/api/me/circles", mine, "The circles you belong to", "circles", response=CircleListOut),
    Route("GET", C, get, "A circle (private ones: members only)", "circles", auth="optional", response=CircleOut),
    Route("PATCH", C, update, "Edit a circle (admins)", "circles", body=CirclePatchIn, response=CircleOut),
    Route("PUT", f"{C}/archived", set_archived, "Archive or restore a circle (owner)", "circles",
          body=ArchivedIn, response=CircleOut),
    Route("GET", f"{C}/sections", list_sections, "Sections of the feed, in order", "circles", auth="optional",
          response=SectionListOut),
    Route("POST", f"{C}/sections", add_section, "Add a section (at most five)", "circles", body=SectionIn,
          response=SectionOut, status=201),
    Route("PUT", f"{C}/sections/order", reorder_sections, "Reorder every section", "circles",
          body=SectionOrderIn, response=SectionListOut),
    Route("PATCH", f"{C}/sections/{{section_id}}", rename_section, "Rename a section", "circles", body=SectionIn,
          response=SectionOut),
    Route("DELETE", f"{C}/sections/{{section_id}}", delete_section, "Delete a section; its posts stay",
          "circles", status=204),
    Route("GET", f"{C}/application-form", get_form, "The questions an applicant answers", "circles",
          auth="optional", response=FormOut),
    Route("PUT", f"{C}/application-form", set_form, "Define the application form (admins)", "circles",
          body=FormIn, response=FormOut),
]
