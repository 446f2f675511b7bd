"""Circles and the membership funnel over real HTTP against the real app, on SQLite and PostgreSQL.

Covered: creating (personal and institutional), editing, archiving and discovering circles; visibility; the ways in
(open join, application, invite) and the refusals on each; bans; leaving, removal, roles and ownership transfer; the
member directory; and the audit log. The feed itself is tested elsewhere: posts appear here only as things to pin
and delete for the audit log.

Site admins (needed to create institutions) and expired invites are set up by a database update, as in
``test_institutions.py``; everything else goes through the API. After every refusal the state is read back over
the API to show that nothing changed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from server import keys
from server.db.models import Invite, User, utcnow
from server.settings import Settings
from tests.conftest import Database, make_settings
from tests.helpers import Api, Person, Reply

Client = TestClient[web.Request, web.Application]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    # Some tests sign in a dozen people from one address; the sign-in rate limit is not what they are about.
    return make_settings(database, tmp_path, login_attempts_per_ip=10_000, login_attempts_per_account=10_000)


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def assert_error(reply: Reply, status: int, code: str | None = None) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert isinstance(reply.body, dict) and isinstance(reply.body.get("error"), dict), reply.body
    if code is not None:
        assert reply.error_code == code, reply.body


def expect(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body)
    return reply.body


async def new_circle(api: Api, owner: Person, name: str = "Circle", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = expect(await api.call("POST", "/api/circles", owner, {"name": name, **fields}), 201)
    return body


async def get_circle(api: Api, who: Person | None, circle_id: str) -> dict[str, Any]:
    body: dict[str, Any] = expect(await api.call("GET", f"/api/circles/{circle_id}", who))
    return body


async def directory(api: Api, who: Person, circle_id: str, **query: Any) -> list[dict[str, Any]]:
    """One page of the member list (the default limit of 50 holds every test's circle)."""
    suffix = f"?{urlencode(query)}" if query else ""
    body = expect(await api.call("GET", f"/api/circles/{circle_id}/members{suffix}", who))
    members: list[dict[str, Any]] = body["members"]
    return members


async def roles(api: Api, who: Person, circle_id: str) -> dict[int, str]:
    """The member list as {user id: role}."""
    return {m["user_id"]: m["role"] for m in await directory(api, who, circle_id)}


async def join(api: Api, who: Person, circle_id: str) -> None:
    reply = await api.call("POST", f"/api/circles/{circle_id}/join", who)
    assert reply.status == 201, reply.body
    assert reply.body["user_id"] == who.id and reply.body["role"] == "member"


async def set_role(api: Api, by: Person, circle_id: str, person: Person, role: str) -> None:
    expect(await api.call("PATCH", f"/api/circles/{circle_id}/members/{person.id}", by, {"role": role}))


async def make_invite(api: Api, by: Person, circle_id: str, **body: Any) -> dict[str, Any]:
    invite: dict[str, Any] = expect(await api.call("POST", f"/api/circles/{circle_id}/invites", by, body), 201)
    return invite


async def accept(api: Api, who: Person | None, token: str) -> Reply:
    return await api.call("POST", f"/api/invites/{token}/accept", who)


async def preview(api: Api, token: str) -> dict[str, Any]:
    body: dict[str, Any] = expect(await api.call("GET", f"/api/invites/{token}"))
    return body


async def invite_ids(api: Api, who: Person, circle_id: str) -> set[int]:
    body = expect(await api.call("GET", f"/api/circles/{circle_id}/invites", who))
    return {i["id"] for i in body["invites"]}


async def my_circles(api: Api, who: Person) -> dict[str, str | None]:
    """GET /api/me/circles as {circle id: my_role}."""
    body = expect(await api.call("GET", "/api/me/circles", who))
    return {c["id"]: c["my_role"] for c in body["circles"]}


async def my_applications(api: Api, who: Person, circle_id: str) -> list[dict[str, Any]]:
    body = expect(await api.call("GET", f"/api/circles/{circle_id}/applications/mine", who))
    found: list[dict[str, Any]] = body["applications"]
    return found


async def queue(api: Api, admin: Person, circle_id: str, status: str | None = None) -> list[dict[str, Any]]:
    suffix = f"?status={status}" if status else ""
    body = expect(await api.call("GET", f"/api/circles/{circle_id}/applications{suffix}", admin))
    found: list[dict[str, Any]] = body["applications"]
    return found


async def form(api: Api, who: Person | None, circle_id: str) -> list[dict[str, Any]]:
    body = expect(await api.call("GET", f"/api/circles/{circle_id}/application-form", who))
    questions: list[dict[str, Any]] = body["questions"]
    return questions


async def discover(api: Api, **query: Any) -> list[dict[str, Any]]:
    suffix = f"?{urlencode(query)}" if query else ""
    body = expect(await api.call("GET", f"/api/circles{suffix}"))
    circles: list[dict[str, Any]] = body["circles"]
    return circles


async def audit(api: Api, who: Person, circle_id: str) -> list[dict[str, Any]]:
    body = expect(await api.call("GET", f"/api/circles/{circle_id}/audit", who))
    entries: list[dict[str, Any]] = body["entries"]
    return entries


async def bans(api: Api, admin: Person, circle_id: str) -> set[int]:
    body = expect(await api.call("GET", f"/api/circles/{circle_id}/bans", admin))
    return {b["user_id"] for b in body["bans"]}


async def make_site_admin(client: Client, person: Person) -> None:
    async with client.app[keys.DB]() as db, db.begin():
        await db.execute(update(User).where(User.id == person.id).values(is_site_admin=True))


async def institution_with_staff(api: Api, client: Client) -> tuple[int, dict[str, Person]]:
    """An institution with one person in each role, plus an outsider: (institution id, {role: person})."""
    site_admin = await api.register("Site Admin")
    await make_site_admin(client, site_admin)
    people = {role: await api.register(f"Inst {role}") for role in ("owner", "admin", "teacher", "staff", "outsider")}
    body = expect(await api.call("POST", "/api/institutions", site_admin,
                                 {"name": "Zhejiang Night School", "owner_id": people["owner"].id}), 201)
    institution_id: int = body["id"]
    for role in ("admin", "teacher", "staff"):
        expect(await api.call("POST", f"/api/institutions/{institution_id}/members", people["owner"],
                              {"user_id": people[role].id, "role": role}), 201)
    return institution_id, people


async def circle_with(api: Api, *roles_wanted: str, **fields: Any) -> tuple[str, dict[str, Person]]:
    """A circle with an owner and one person per role in ``roles_wanted`` (admin, teacher, member, outsider)."""
    people = {"owner": await api.register("Owner")}
    circle_id = (await new_circle(api, people["owner"], "Team", **fields))["id"]
    for role in roles_wanted:
        person = people[role] = await api.register(role.capitalize())
        if role == "outsider":
            continue
        invite = await make_invite(api, people["owner"], circle_id, role=role)
        expect(await accept(api, person, invite["token"]), 201)
    return circle_id, people


async def set_expired(client: Client, invite_id: int) -> None:
    async with client.app[keys.DB]() as db, db.begin():
        await db.execute(update(Invite).where(Invite.id == invite_id)
                         .values(expires_at=utcnow() - timedelta(seconds=1)))


# ---------------------------------------------------------------------------------------------------------------
# Creating, editing, archiving, discovering


async def test_create_personal_circle_makes_the_creator_its_owner(api: Api) -> None:
    owner, stranger = await api.register("Mei"), await api.register("Stranger")
    circle = await new_circle(api, owner, "Pottery club", description="Wheels and kilns", kind="community",
                              visibility="public", join_policy="open", member_cap=30, chat_history="since_join")
    assert circle["my_role"] == "owner"
    assert len(circle["id"]) == 12 and circle["institution_id"] is None and circle["archived"] is False
    assert (circle["name"], circle["description"], circle["member_cap"], circle["chat_history"]) == (
        "Pottery club", "Wheels and kilns", 30, "since_join")

    assert (await get_circle(api, owner, circle["id"]))["my_role"] == "owner"
    seen = await get_circle(api, stranger, circle["id"])
    assert seen["my_role"] is None and seen["name"] == "Pottery club"
    assert (await get_circle(api, None, circle["id"]))["my_role"] is None
    assert await my_circles(api, owner) == {circle["id"]: "owner"}
    assert await my_circles(api, stranger) == {}
    assert await roles(api, owner, circle["id"]) == {owner.id: "owner"}

    assert_error(await api.call("POST", "/api/circles", None, {"name": "Ghost"}), 401)
    assert_error(await api.call("POST", "/api/circles", owner, {"name": "Tiny", "member_cap": 1}), 422)
    assert [c["name"] for c in await discover(api)] == ["Pottery club"]
    defaults = await new_circle(api, stranger, "Defaults")
    assert (defaults["kind"], defaults["visibility"], defaults["join_policy"], defaults["member_cap"],
            defaults["chat_history"]) == ("community", "public", "open", 500, "all")


async def test_institution_circles_by_institution_role(api: Api, client: Client) -> None:
    institution_id, people = await institution_with_staff(api, client)
    created = {}
    for role in ("owner", "admin", "teacher"):
        circle = await new_circle(api, people[role], f"Course by {role}", kind="course", institution_id=institution_id)
        assert circle["institution_id"] == institution_id and circle["my_role"] == "owner"
        created[role] = circle["id"]

    assert_error(await api.call("POST", "/api/circles", people["staff"],
                                {"name": "By staff", "institution_id": institution_id}), 403)
    assert_error(await api.call("POST", "/api/circles", people["outsider"],
                                {"name": "By outsider", "institution_id": institution_id}), 404)
    assert_error(await api.call("POST", "/api/circles", people["owner"],
                                {"name": "Nowhere", "institution_id": institution_id + 100}), 404)
    assert sorted(c["name"] for c in await discover(api)) == ["Course by admin", "Course by owner",
                                                             "Course by teacher"]
    assert await my_circles(api, people["staff"]) == {}
    assert await my_circles(api, people["outsider"]) == {}

    # The institution's admin runs the teacher's circle as its owner would, without being a member of it.
    teacher_circle = created["teacher"]
    reply = await api.call("PATCH", f"/api/circles/{teacher_circle}", people["admin"], {"name": "Renamed by admin"})
    assert expect(reply)["name"] == "Renamed by admin"
    assert_error(await api.call("PATCH", f"/api/circles/{teacher_circle}", people["staff"], {"name": "Staff"}), 403)
    assert (await get_circle(api, None, teacher_circle))["name"] == "Renamed by admin"


async def test_edit_by_admins_only(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "teacher", "member", "outsider")
    reply = await api.call("PATCH", f"/api/circles/{circle_id}", p["admin"],
                           {"name": "Night owls", "description": "After ten", "join_policy": "application"})
    body = expect(reply)
    assert (body["name"], body["description"], body["join_policy"], body["my_role"]) == (
        "Night owls", "After ten", "application", "admin")

    for who in ("teacher", "member", "outsider"):
        assert_error(await api.call("PATCH", f"/api/circles/{circle_id}", p[who], {"name": who}), 403)
    assert_error(await api.call("PATCH", f"/api/circles/{circle_id}", None, {"name": "anon"}), 401)
    assert_error(await api.call("PATCH", f"/api/circles/{circle_id}", p["owner"], {"name": None}), 422)
    # Four members already: a cap of three would be broken on arrival.
    assert_error(await api.call("PATCH", f"/api/circles/{circle_id}", p["owner"], {"member_cap": 3}),
                 409, "cap_below_members")
    now = await get_circle(api, p["member"], circle_id)
    assert (now["name"], now["description"], now["join_policy"], now["member_cap"]) == (
        "Night owls", "After ten", "application", 500)
    assert expect(await api.call("PATCH", f"/api/circles/{circle_id}", p["owner"], {"member_cap": 4}))[
        "member_cap"] == 4


async def test_archive_makes_the_circle_read_only_and_unarchive_restores(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "member", "outsider", join_policy="open")
    posts = f"/api/circles/{circle_id}/posts"
    assert_error(await api.call("PUT", f"/api/circles/{circle_id}/archived", p["admin"], {"archived": True}), 403)
    assert (await get_circle(api, p["member"], circle_id))["archived"] is False

    body = expect(await api.call("PUT", f"/api/circles/{circle_id}/archived", p["owner"], {"archived": True}))
    assert body["archived"] is True
    assert (await get_circle(api, p["outsider"], circle_id))["archived"] is True  # still readable
    assert_error(await api.call("POST", f"/api/circles/{circle_id}/join", p["outsider"]), 409, "circle_archived")
    assert_error(await api.call("POST", posts, p["member"], {"body": "hello?"}), 409, "circle_archived")
    assert_error(await api.call("PATCH", f"/api/circles/{circle_id}", p["admin"], {"name": "x"}), 409,
                 "circle_archived")
    assert_error(await api.call("POST", f"/api/circles/{circle_id}/invites", p["owner"], {}), 409, "circle_archived")
    assert await discover(api) == []
    assert set(await roles(api, p["member"], circle_id)) == {p["owner"].id, p["admin"].id, p["member"].id}
    assert expect(await api.call("GET", posts, p["member"]))["posts"] == []

    body = expect(await api.call("PUT", f"/api/circles/{circle_id}/archived", p["owner"], {"archived": False}))
    assert body["archived"] is False
    await join(api, p["outsider"], circle_id)
    expect(await api.call("POST", posts, p["member"], {"body": "we are back"}), 201)
    assert [c["id"] for c in await discover(api)] == [circle_id]


async def test_discover_lists_public_live_circles_and_searches_case_insensitively(api: Api) -> None:
    owner = await api.register()
    garden = (await new_circle(api, owner, "Rooftop GARDEN"))["id"]
    described = (await new_circle(api, owner, "Saturday mornings", description="We tend a Garden in Xihu"))["id"]
    other = (await new_circle(api, owner, "Chess"))["id"]
    await new_circle(api, owner, "Unlisted garden", visibility="unlisted")
    await new_circle(api, owner, "Private garden", visibility="private")
    archived = (await new_circle(api, owner, "Archived garden"))["id"]
    expect(await api.call("PUT", f"/api/circles/{archived}/archived", owner, {"archived": True}))
    percent = (await new_circle(api, owner, "100% cotton"))["id"]

    assert {c["id"] for c in await discover(api)} == {garden, described, other, percent}
    assert all(c["visibility"] == "public" and not c["archived"] for c in await discover(api))
    assert {c["id"] for c in await discover(api, q="garden")} == {garden, described}
    assert {c["id"] for c in await discover(api, q="gArDeN")} == {garden, described}
    assert {c["id"] for c in await discover(api, q="xihu")} == {described}
    assert await discover(api, q="nothing like this") == []
    # LIKE wildcards in the search are matched literally.
    assert {c["id"] for c in await discover(api, q="0%")} == {percent}
    assert await discover(api, q="_") == []
    # Discover is public, and shows nobody's role.
    assert all(c["my_role"] is None for c in await discover(api))


async def test_discover_pages_return_every_circle_exactly_once(api: Api) -> None:
    owner = await api.register()
    made = [(await new_circle(api, owner, f"Circle {n}"))["id"] for n in range(7)]
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            query["before"] = cursor
        body = expect(await api.call("GET", f"/api/circles?{urlencode(query)}"))
        seen += [c["id"] for c in body["circles"]]
        pages += 1
        if pages == 1:  # a circle created while someone pages is not shown on later pages, nor shifts them
            await new_circle(api, owner, "Latecomer")
        cursor = body["next_before"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert seen == list(reversed(made))  # newest first, each exactly once
    assert_error(await api.call("GET", "/api/circles?before=not-a-cursor!"), 422, "bad_cursor")


async def test_my_circles_lists_memberships_with_roles(api: Api) -> None:
    alice, bob = await api.register("Alice"), await api.register("Bob")
    own = (await new_circle(api, alice, "Alice's"))["id"]
    bobs = (await new_circle(api, bob, "Bob's"))["id"]
    other = (await new_circle(api, bob, "Bob's second"))["id"]
    await join(api, alice, bobs)
    invite = await make_invite(api, bob, other, role="admin")
    expect(await accept(api, alice, invite["token"]), 201)
    assert await my_circles(api, alice) == {own: "owner", bobs: "member", other: "admin"}
    expect(await api.call("DELETE", f"/api/circles/{bobs}/members/{alice.id}", alice), 204)
    assert await my_circles(api, alice) == {own: "owner", other: "admin"}
    assert_error(await api.call("GET", "/api/me/circles"), 401)


# ---------------------------------------------------------------------------------------------------------------
# Visibility


async def test_private_circle_does_not_exist_to_outsiders(api: Api) -> None:
    circle_id, p = await circle_with(api, "member", "outsider", visibility="private", join_policy="open")
    base = f"/api/circles/{circle_id}"
    for who in (p["outsider"], None):
        assert_error(await api.call("GET", base, who), 404)
        assert_error(await api.call("GET", f"{base}/application-form", who), 404)
    assert_error(await api.call("POST", f"{base}/join", p["outsider"]), 404)
    assert_error(await api.call("POST", f"{base}/applications", p["outsider"], {"answers": {}}), 404)
    assert_error(await api.call("GET", f"{base}/members", p["outsider"]), 404)
    # Signed out, anything that needs an account is 401, whatever the circle: a 401 reveals nothing.
    assert_error(await api.call("POST", f"{base}/join"), 401)
    assert_error(await api.call("GET", f"{base}/members"), 401)
    assert_error(await api.call("POST", "/api/circles/nosuchcircle/join"), 401)

    assert (await get_circle(api, p["member"], circle_id))["my_role"] == "member"
    assert await discover(api) == []
    assert await my_circles(api, p["outsider"]) == {}
    assert set(await roles(api, p["owner"], circle_id)) == {p["owner"].id, p["member"].id}

    # An invite is the way into a private circle: its preview shows the name even to a signed-out link holder.
    invite = await make_invite(api, p["owner"], circle_id)
    seen = await preview(api, invite["token"])
    assert seen["circle"]["name"] == "Team" and seen["status"] == "valid"
    expect(await accept(api, p["outsider"], invite["token"]), 201)
    assert (await get_circle(api, p["outsider"], circle_id))["my_role"] == "member"
    assert set(await roles(api, p["outsider"], circle_id)) == {p["owner"].id, p["member"].id, p["outsider"].id}


async def test_unlisted_circle_is_reached_by_its_link_but_not_listed(api: Api) -> None:
    owner, visitor = await api.register("Owner"), await api.register("Visitor")
    circle = await new_circle(api, owner, "Secret supper club", visibility="unlisted")
    assert (await get_circle(api, visitor, circle["id"]))["name"] == "Secret supper club"
    assert (await get_circle(api, None, circle["id"]))["name"] == "Secret supper club"
    assert await discover(api) == []
    assert await discover(api, q="supper") == []
    await join(api, visitor, circle["id"])
    assert await my_circles(api, visitor) == {circle["id"]: "member"}
    assert_error(await api.call("GET", "/api/circles/AAAAAAAAAAAA", visitor), 404)


# ---------------------------------------------------------------------------------------------------------------
# Open join


async def test_open_join_and_refusals(api: Api) -> None:
    owner, joiner = await api.register("Owner"), await api.register("Joiner")
    open_id = (await new_circle(api, owner, "Open", join_policy="open"))["id"]
    await join(api, joiner, open_id)
    assert (await get_circle(api, joiner, open_id))["my_role"] == "member"
    assert_error(await api.call("POST", f"/api/circles/{open_id}/join", joiner), 409, "already_member")
    assert_error(await api.call("POST", f"/api/circles/{open_id}/join", owner), 409, "already_member")
    assert await roles(api, owner, open_id) == {owner.id: "owner", joiner.id: "member"}

    for policy in ("application", "invite"):
        circle_id = (await new_circle(api, owner, policy, join_policy=policy))["id"]
        assert_error(await api.call("POST", f"/api/circles/{circle_id}/join", joiner), 403, "join_policy")
        assert await roles(api, owner, circle_id) == {owner.id: "owner"}
    assert await my_circles(api, joiner) == {open_id: "member"}


# ---------------------------------------------------------------------------------------------------------------
# Applications

QUESTIONS = [
    {"id": "why", "label": "Why do you want to join?", "kind": "text"},
    {"id": "level", "label": "Your level", "kind": "choice", "options": ["beginner", "advanced"]},
    {"id": "note", "label": "Anything else?", "kind": "text", "required": False},
]


async def application_circle(api: Api) -> tuple[str, dict[str, Person]]:
    circle_id, p = await circle_with(api, "admin", "member", join_policy="application")
    expect(await api.call("PUT", f"/api/circles/{circle_id}/application-form", p["admin"], {"questions": QUESTIONS}))
    return circle_id, p


async def test_admins_define_the_application_form_and_bad_forms_are_refused(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "member", join_policy="application")
    url = f"/api/circles/{circle_id}/application-form"
    assert await form(api, None, circle_id) == []
    body = expect(await api.call("PUT", url, p["admin"], {"questions": QUESTIONS}))
    stored = body["questions"]
    assert [q["id"] for q in stored] == ["why", "level", "note"]
    assert stored[1]["options"] == ["beginner", "advanced"] and stored[1]["required"] is True
    assert stored[2]["required"] is False
    assert await form(api, None, circle_id) == stored

    bad_forms = [
        [{"id": "level", "label": "Level", "kind": "choice", "options": ["only one"]}],
        [{"id": "level", "label": "Level", "kind": "choice"}],
        [{"id": "why", "label": "A", "kind": "text"}, {"id": "why", "label": "B", "kind": "text"}],
        [{"id": "why", "label": "A", "kind": "text", "options": ["x", "y"]}],
        [{"id": "Bad Id", "label": "A", "kind": "text"}],
        [{"id": "why", "label": "A", "kind": "essay"}],
    ]
    for questions in bad_forms:
        assert_error(await api.call("PUT", url, p["owner"], {"questions": questions}), 422)
    assert_error(await api.call("PUT", url, p["member"], {"questions": []}), 403)
    assert_error(await api.call("PUT", url, None, {"questions": []}), 401)
    assert await form(api, p["member"], circle_id) == stored


BAD_ANSWERS: list[tuple[dict[str, str], set[str]]] = [
    ({"level": "beginner"}, {"why"}),  # a required answer missing
    ({"why": "", "level": "beginner"}, {"why"}),  # an empty answer is no answer
    ({"why": "fun", "level": "expert"}, {"level"}),  # not one of the options
    ({"why": "fun", "level": "beginner", "shoe_size": "42"}, {"shoe_size"}),  # no such question
    ({}, {"why", "level"}),
]


async def test_answers_that_do_not_fit_the_form_are_refused(api: Api) -> None:
    circle_id, p = await application_circle(api)
    applicant = await api.register("Applicant")
    for answers, fields in BAD_ANSWERS:
        reply = await api.call("POST", f"/api/circles/{circle_id}/applications", applicant, {"answers": answers})
        assert_error(reply, 422, "invalid_answers")
        assert {d["field"] for d in reply.body["error"]["details"]} == fields, answers
    assert await my_applications(api, applicant, circle_id) == []
    assert await queue(api, p["admin"], circle_id) == []
    # The optional question may be left out; the answers are kept as given.
    reply = await api.call("POST", f"/api/circles/{circle_id}/applications", applicant,
                           {"answers": {"why": "fun", "level": "beginner"}})
    assert expect(reply, 201)["answers"] == {"why": "fun", "level": "beginner"}


async def test_application_approved_makes_a_member(api: Api) -> None:
    circle_id, p = await application_circle(api)
    applicant = await api.register("Applicant")
    apps = f"/api/circles/{circle_id}/applications"
    assert_error(await api.call("POST", apps, p["member"], {"answers": {"why": "x", "level": "advanced"}}),
                 409, "already_member")
    assert_error(await api.call("POST", apps, None, {"answers": {}}), 401)

    reply = await api.call("POST", apps, applicant, {"answers": {"why": "I love it", "level": "advanced"}})
    application = expect(reply, 201)
    assert application["status"] == "pending" and application["applicant"]["id"] == applicant.id
    assert application["answers"] == {"why": "I love it", "level": "advanced"}
    assert_error(await api.call("POST", apps, applicant, {"answers": {"why": "again", "level": "beginner"}}),
                 409, "already_applied")

    pending = await queue(api, p["admin"], circle_id)
    assert [(a["id"], a["applicant"]["id"], a["answers"]) for a in pending] == [
        (application["id"], applicant.id, {"why": "I love it", "level": "advanced"})]
    assert_error(await api.call("GET", apps, p["member"]), 403)
    assert_error(await api.call("POST", f"{apps}/{application['id']}/approve", p["member"], {}), 403)
    assert applicant.id not in await roles(api, p["owner"], circle_id)

    body = expect(await api.call("POST", f"{apps}/{application['id']}/approve", p["admin"], {}))
    assert body["status"] == "approved" and body["reviewed_at"] is not None
    assert (await roles(api, p["owner"], circle_id))[applicant.id] == "member"
    assert (await get_circle(api, applicant, circle_id))["my_role"] == "member"
    assert [a["status"] for a in await my_applications(api, applicant, circle_id)] == ["approved"]
    assert await queue(api, p["admin"], circle_id) == []

    for verb in ("approve", "reject"):
        assert_error(await api.call("POST", f"{apps}/{application['id']}/{verb}", p["owner"], {"reason": "x"}),
                     409, "already_reviewed")
    assert [a["status"] for a in await my_applications(api, applicant, circle_id)] == ["approved"]
    assert (await roles(api, p["owner"], circle_id))[applicant.id] == "member"
    assert_error(await api.call("POST", f"{apps}/999999/approve", p["owner"], {}), 404)


async def test_application_rejected_with_a_reason_the_applicant_sees(api: Api) -> None:
    circle_id, p = await application_circle(api)
    applicant = await api.register("Applicant")
    apps = f"/api/circles/{circle_id}/applications"
    first = expect(await api.call("POST", apps, applicant, {"answers": {"why": "hm", "level": "beginner"}}), 201)

    body = expect(await api.call("POST", f"{apps}/{first['id']}/reject", p["admin"],
                                 {"reason": "Come back after the spring term"}))
    assert body["status"] == "rejected" and body["reason"] == "Come back after the spring term"
    assert applicant.id not in await roles(api, p["owner"], circle_id)
    assert (await get_circle(api, applicant, circle_id))["my_role"] is None
    mine = await my_applications(api, applicant, circle_id)
    assert [(a["id"], a["status"], a["reason"]) for a in mine] == [
        (first["id"], "rejected", "Come back after the spring term")]
    assert await queue(api, p["admin"], circle_id) == []
    assert [a["id"] for a in await queue(api, p["admin"], circle_id, "rejected")] == [first["id"]]

    for verb in ("approve", "reject"):
        assert_error(await api.call("POST", f"{apps}/{first['id']}/{verb}", p["owner"], {}), 409, "already_reviewed")
    assert applicant.id not in await roles(api, p["owner"], circle_id)
    assert [a["status"] for a in await my_applications(api, applicant, circle_id)] == ["rejected"]

    # A rejection is not a ban: the applicant may try again.
    second = expect(await api.call("POST", apps, applicant, {"answers": {"why": "spring", "level": "advanced"}}), 201)
    assert [a["id"] for a in await queue(api, p["admin"], circle_id)] == [second["id"]]


# ---------------------------------------------------------------------------------------------------------------
# Invites


async def test_who_may_create_invites_for_which_role(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "teacher", "member", "outsider", join_policy="invite")
    url = f"/api/circles/{circle_id}/invites"
    setup_invites = await invite_ids(api, p["owner"], circle_id)  # circle_with brought people in by invite
    made = {}
    default = await make_invite(api, p["teacher"], circle_id)
    assert default["role"] == "member" and default["revoked"] is False and default["uses"] == 0
    assert default["url"].endswith(f"/join/{default['token']}")
    assert default["expires_at"] is not None  # a week by default
    made["teacher/member"] = default["id"]
    made["admin/teacher"] = (await make_invite(api, p["admin"], circle_id, role="teacher"))["id"]
    made["owner/admin"] = (await make_invite(api, p["owner"], circle_id, role="admin"))["id"]

    refusals = [("teacher", "teacher"), ("teacher", "admin"), ("admin", "admin"), ("admin", "owner"),
                ("owner", "owner")]
    for who, role in refusals:
        assert_error(await api.call("POST", url, p[who], {"role": role}), 403)
    assert_error(await api.call("POST", url, p["member"], {}), 403)
    assert_error(await api.call("POST", url, p["outsider"], {}), 403)
    assert_error(await api.call("POST", url, None, {}), 401)

    listed = expect(await api.call("GET", url, p["owner"]))["invites"]
    assert {i["id"] for i in listed} == set(made.values()) | setup_invites
    # A teacher sees only the invites a teacher could make: never a link that makes someone admin.
    by_teacher = expect(await api.call("GET", url, p["teacher"]))["invites"]
    assert {i["id"] for i in by_teacher} == {i["id"] for i in listed if i["role"] == "member"}
    assert made["teacher/member"] in {i["id"] for i in by_teacher}
    for invite in listed:
        if invite["role"] != "member":
            assert_error(await api.call("GET", f"{url}/{invite['id']}/qr.png", p["teacher"]), 403)
            assert_error(await api.call("DELETE", f"{url}/{invite['id']}", p["teacher"]), 403)
    assert_error(await api.call("GET", url, p["member"]), 403)

    admin_invite = next(i for i in listed if i["id"] == made["owner/admin"])
    newcomer = await api.register("Newcomer")
    joined = expect(await accept(api, newcomer, admin_invite["token"]), 201)
    assert joined["role"] == "admin"
    assert (await roles(api, p["owner"], circle_id))[newcomer.id] == "admin"


async def test_invite_preview_and_accept(api: Api) -> None:
    circle_id, p = await circle_with(api, "member", join_policy="invite")
    setup_invites = await invite_ids(api, p["owner"], circle_id)
    invite = await make_invite(api, p["owner"], circle_id)
    token = invite["token"]
    seen = await preview(api, token)  # anonymous: the link holder has no account yet
    assert seen["status"] == "valid" and seen["role"] == "member"
    assert seen["circle"]["id"] == circle_id and seen["circle"]["name"] == "Team"
    assert_error(await api.call("GET", "/api/invites/no-such-token"), 404)

    guest = await api.register("Guest")
    assert_error(await accept(api, None, token), 401)
    assert_error(await accept(api, guest, "no-such-token"), 404)
    assert guest.id not in await roles(api, p["owner"], circle_id)

    body = expect(await accept(api, guest, token), 201)
    assert (body["circle_id"], body["user_id"], body["role"]) == (circle_id, guest.id, "member")
    assert_error(await accept(api, guest, token), 409, "already_member")
    assert_error(await accept(api, p["member"], token), 409, "already_member")
    listed = expect(await api.call("GET", f"/api/circles/{circle_id}/invites", p["owner"]))["invites"]
    assert [(i["id"], i["uses"]) for i in listed if i["id"] not in setup_invites] == [(invite["id"], 1)]
    assert await my_circles(api, guest) == {circle_id: "member"}


async def test_invite_with_max_uses_admits_that_many(api: Api) -> None:
    circle_id, p = await circle_with(api, join_policy="invite")
    invite = await make_invite(api, p["owner"], circle_id, max_uses=2)
    first, second, third = [await api.register(f"Guest {n}") for n in range(3)]
    expect(await accept(api, first, invite["token"]), 201)
    assert (await preview(api, invite["token"]))["status"] == "valid"
    expect(await accept(api, second, invite["token"]), 201)
    assert (await preview(api, invite["token"]))["status"] == "used_up"
    assert_error(await accept(api, third, invite["token"]), 410, "invite_used_up")
    assert set(await roles(api, p["owner"], circle_id)) == {p["owner"].id, first.id, second.id}
    listed = expect(await api.call("GET", f"/api/circles/{circle_id}/invites", p["owner"]))["invites"]
    assert [(i["uses"], i["max_uses"]) for i in listed] == [(2, 2)]


async def test_expired_and_revoked_invites_are_refused(api: Api, client: Client) -> None:
    circle_id, p = await circle_with(api, join_policy="invite")
    invite = await make_invite(api, p["owner"], circle_id, expires_in_seconds=3600)
    await set_expired(client, invite["id"])
    guest = await api.register("Guest")
    assert (await preview(api, invite["token"]))["status"] == "expired"
    assert_error(await accept(api, guest, invite["token"]), 410, "invite_expired")
    assert set(await roles(api, p["owner"], circle_id)) == {p["owner"].id}
    assert await my_circles(api, guest) == {}
    # An invite without expiry keeps working.
    forever = await make_invite(api, p["owner"], circle_id, expires_in_seconds=None)
    assert forever["expires_at"] is None
    expect(await accept(api, guest, forever["token"]), 201)

    member = guest
    invite = await make_invite(api, p["owner"], circle_id, role="teacher")
    url = f"/api/circles/{circle_id}/invites/{invite['id']}"
    assert_error(await api.call("DELETE", url, member), 403)
    assert (await preview(api, invite["token"]))["status"] == "valid"

    body = expect(await api.call("DELETE", url, p["owner"]))
    assert body["revoked"] is True
    late = await api.register("Late")
    assert (await preview(api, invite["token"]))["status"] == "revoked"
    assert_error(await accept(api, late, invite["token"]), 410, "invite_revoked")
    assert set(await roles(api, p["owner"], circle_id)) == {p["owner"].id, member.id}
    assert_error(await api.call("DELETE", f"/api/circles/{circle_id}/invites/999999", p["owner"]), 404)


async def test_full_circle_refuses_every_way_in(api: Api) -> None:
    owner, first, late = await api.register("Owner"), await api.register("First"), await api.register("Late")
    circle_id = (await new_circle(api, owner, "Pair", member_cap=2, join_policy="open"))["id"]
    invite = await make_invite(api, owner, circle_id)
    await join(api, first, circle_id)
    assert (await preview(api, invite["token"]))["status"] == "full"
    assert_error(await accept(api, late, invite["token"]), 409, "circle_full")
    assert_error(await api.call("POST", f"/api/circles/{circle_id}/join", late), 409, "circle_full")

    # Approving an application cannot overfill it either.
    expect(await api.call("PATCH", f"/api/circles/{circle_id}", owner, {"join_policy": "application"}))
    application = expect(await api.call("POST", f"/api/circles/{circle_id}/applications", late, {"answers": {}}), 201)
    assert_error(await api.call("POST", f"/api/circles/{circle_id}/applications/{application['id']}/approve", owner,
                                {}), 409, "circle_full")
    assert [a["status"] for a in await my_applications(api, late, circle_id)] == ["pending"]
    assert set(await roles(api, owner, circle_id)) == {owner.id, first.id}
    listed = expect(await api.call("GET", f"/api/circles/{circle_id}/invites", owner))["invites"]
    assert listed[0]["uses"] == 0


async def test_invite_qr_codes_for_moderators(api: Api) -> None:
    circle_id, p = await circle_with(api, "teacher", "member", join_policy="invite")
    invite = await make_invite(api, p["owner"], circle_id)
    base = f"/api/circles/{circle_id}/invites/{invite['id']}"

    svg = await api.call("GET", f"{base}/qr.svg", p["teacher"])
    assert svg.status == 200
    assert svg.headers["Content-Type"].startswith("image/svg+xml")
    root = ElementTree.fromstring(svg.raw)
    assert root.tag.rsplit("}", 1)[-1] == "svg"

    png = await api.call("GET", f"{base}/qr.png", p["owner"])
    assert png.status == 200
    assert png.headers["Content-Type"].startswith("image/png")
    assert png.raw.startswith(PNG_SIGNATURE) and len(png.raw) > 100

    for kind in ("qr.svg", "qr.png"):
        assert_error(await api.call("GET", f"{base}/{kind}", p["member"]), 403)
        assert_error(await api.call("GET", f"{base}/{kind}"), 401)
        assert_error(await api.call("GET", f"/api/circles/{circle_id}/invites/999999/{kind}", p["owner"]), 404)
    # Another circle's invite is not reachable through this circle.
    other = (await new_circle(api, p["owner"], "Other"))["id"]
    assert_error(await api.call("GET", f"/api/circles/{other}/invites/{invite['id']}/qr.svg", p["owner"]), 404)


# ---------------------------------------------------------------------------------------------------------------
# Bans


async def test_banned_user_is_refused_on_every_way_in_until_unbanned(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "member", join_policy="open")
    pest = p["member"]
    invite = await make_invite(api, p["owner"], circle_id)
    body = expect(await api.call("POST", f"/api/circles/{circle_id}/bans", p["admin"],
                                 {"user_id": pest.id, "reason": "spam"}), 201)
    assert (body["user_id"], body["reason"]) == (pest.id, "spam")
    assert pest.id not in await roles(api, p["owner"], circle_id)
    assert await my_circles(api, pest) == {}
    assert await bans(api, p["admin"], circle_id) == {pest.id}

    assert_error(await api.call("POST", f"/api/circles/{circle_id}/join", pest), 403, "banned")
    assert_error(await accept(api, pest, invite["token"]), 403, "banned")
    expect(await api.call("PATCH", f"/api/circles/{circle_id}", p["owner"], {"join_policy": "application"}))
    assert_error(await api.call("POST", f"/api/circles/{circle_id}/applications", pest, {"answers": {}}),
                 403, "banned")
    assert await my_applications(api, pest, circle_id) == []
    assert pest.id not in await roles(api, p["owner"], circle_id)
    listed = expect(await api.call("GET", f"/api/circles/{circle_id}/invites", p["owner"]))["invites"]
    assert listed[0]["uses"] == 0  # the refused accept took no use

    expect(await api.call("DELETE", f"/api/circles/{circle_id}/bans/{pest.id}", p["admin"]), 204)
    assert await bans(api, p["admin"], circle_id) == set()
    expect(await api.call("PATCH", f"/api/circles/{circle_id}", p["owner"], {"join_policy": "open"}))
    await join(api, pest, circle_id)
    assert (await roles(api, p["owner"], circle_id))[pest.id] == "member"


async def test_ban_rejects_a_pending_application(api: Api) -> None:
    circle_id, p = await application_circle(api)
    applicant = await api.register("Applicant")
    application = expect(await api.call("POST", f"/api/circles/{circle_id}/applications", applicant,
                                        {"answers": {"why": "x", "level": "beginner"}}), 201)
    expect(await api.call("POST", f"/api/circles/{circle_id}/bans", p["owner"], {"user_id": applicant.id}), 201)
    mine = await my_applications(api, applicant, circle_id)
    assert [(a["id"], a["status"]) for a in mine] == [(application["id"], "rejected")]
    assert await queue(api, p["admin"], circle_id) == []
    assert_error(await api.call("POST", f"/api/circles/{circle_id}/applications/{application['id']}/approve",
                                p["owner"], {}), 409, "already_reviewed")
    assert applicant.id not in await roles(api, p["owner"], circle_id)


async def test_who_may_ban_whom(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "teacher", "member")
    url = f"/api/circles/{circle_id}/bans"
    before = await roles(api, p["owner"], circle_id)
    assert_error(await api.call("POST", url, p["admin"], {"user_id": p["owner"].id}), 403, "owner_protected")
    second_admin = await api.register("Second admin")
    await join(api, second_admin, circle_id)
    await set_role(api, p["owner"], circle_id, second_admin, "admin")
    before[second_admin.id] = "admin"
    assert_error(await api.call("POST", url, p["admin"], {"user_id": second_admin.id}), 403)
    assert_error(await api.call("POST", url, p["admin"], {"user_id": p["admin"].id}), 409, "self_ban")
    assert_error(await api.call("POST", url, p["teacher"], {"user_id": p["member"].id}), 403)
    assert_error(await api.call("POST", url, p["member"], {"user_id": p["teacher"].id}), 403)
    assert_error(await api.call("POST", url, p["owner"], {"user_id": 999999}), 404, "unknown_user")
    assert await roles(api, p["owner"], circle_id) == before
    assert await bans(api, p["owner"], circle_id) == set()

    expect(await api.call("POST", url, p["owner"], {"user_id": second_admin.id}), 201)
    assert_error(await api.call("POST", url, p["owner"], {"user_id": second_admin.id}), 409, "already_banned")
    assert_error(await api.call("DELETE", f"{url}/{p['member'].id}", p["owner"]), 404, "not_banned")
    assert_error(await api.call("DELETE", f"{url}/{second_admin.id}", p["member"]), 403)
    assert_error(await api.call("GET", url, p["member"]), 403)
    assert await bans(api, p["owner"], circle_id) == {second_admin.id}


# ---------------------------------------------------------------------------------------------------------------
# Membership: leaving, removal, roles, personal settings, ownership


async def test_leave_and_the_owner_must_transfer_first(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "member")
    expect(await api.call("DELETE", f"/api/circles/{circle_id}/members/{p['member'].id}", p["member"]), 204)
    assert p["member"].id not in await roles(api, p["owner"], circle_id)
    assert await my_circles(api, p["member"]) == {}
    assert_error(await api.call("DELETE", f"/api/circles/{circle_id}/members/{p['member'].id}", p["member"]), 403)

    assert_error(await api.call("DELETE", f"/api/circles/{circle_id}/members/{p['owner'].id}", p["owner"]),
                 409, "owner_must_transfer")
    assert (await roles(api, p["owner"], circle_id))[p["owner"].id] == "owner"
    assert await my_circles(api, p["owner"]) == {circle_id: "owner"}


async def test_removal_rules(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "teacher", "member")
    other_admin, other_member = await api.register("Admin 2"), await api.register("Member 2")
    for person in (other_admin, other_member):
        await join(api, person, circle_id)
    await set_role(api, p["owner"], circle_id, other_admin, "admin")
    members = f"/api/circles/{circle_id}/members"
    before = await roles(api, p["owner"], circle_id)

    assert_error(await api.call("DELETE", f"{members}/{other_admin.id}", p["admin"]), 403)
    assert_error(await api.call("DELETE", f"{members}/{p['owner'].id}", p["admin"]), 403, "owner_protected")
    assert_error(await api.call("DELETE", f"{members}/{other_member.id}", p["member"]), 403)
    assert_error(await api.call("DELETE", f"{members}/{other_member.id}", p["teacher"]), 403)
    assert_error(await api.call("DELETE", f"{members}/{other_member.id}"), 401)
    outsider = await api.register("Outsider")
    assert_error(await api.call("DELETE", f"{members}/{outsider.id}", p["owner"]), 404, "not_a_member")
    assert await roles(api, p["owner"], circle_id) == before

    expect(await api.call("DELETE", f"{members}/{other_member.id}", p["admin"]), 204)
    expect(await api.call("DELETE", f"{members}/{p['teacher'].id}", p["admin"]), 204)
    expect(await api.call("DELETE", f"{members}/{other_admin.id}", p["owner"]), 204)
    assert await roles(api, p["owner"], circle_id) == {p["owner"].id: "owner", p["admin"].id: "admin",
                                                       p["member"].id: "member"}
    assert await my_circles(api, other_member) == {}


async def test_role_change_rules(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "member")
    alice, bob = await api.register("Alice"), await api.register("Bob")
    for person in (alice, bob):
        await join(api, person, circle_id)
    url = f"/api/circles/{circle_id}/members"

    body = expect(await api.call("PATCH", f"{url}/{alice.id}", p["owner"], {"role": "admin"}))
    assert body["role"] == "admin"
    before = await roles(api, p["owner"], circle_id)
    assert_error(await api.call("PATCH", f"{url}/{bob.id}", p["admin"], {"role": "admin"}), 403)
    assert_error(await api.call("PATCH", f"{url}/{alice.id}", p["admin"], {"role": "member"}), 403)
    assert_error(await api.call("PATCH", f"{url}/{bob.id}", p["owner"], {"role": "owner"}), 403)
    assert_error(await api.call("PATCH", f"{url}/{p['owner'].id}", p["admin"], {"role": "member"}), 403)
    assert_error(await api.call("PATCH", f"{url}/{bob.id}", p["member"], {"role": "teacher"}), 403)
    assert await roles(api, p["owner"], circle_id) == before

    assert expect(await api.call("PATCH", f"{url}/{bob.id}", p["admin"], {"role": "teacher"}))["role"] == "teacher"
    assert expect(await api.call("PATCH", f"{url}/{bob.id}", p["admin"], {"role": "member"}))["role"] == "member"
    assert expect(await api.call("PATCH", f"{url}/{alice.id}", p["owner"], {"role": "member"}))["role"] == "member"
    assert (await roles(api, p["owner"], circle_id))[alice.id] == "member"

    # Member types: customers and fans, set by admins.
    buyer, follower = alice, bob
    assert expect(await api.call("PATCH", f"{url}/{buyer.id}", p["admin"], {"member_type": "customer"}))[
        "member_type"] == "customer"
    assert expect(await api.call("PATCH", f"{url}/{follower.id}", p["admin"], {"member_type": "fan"}))[
        "member_type"] == "fan"
    assert_error(await api.call("PATCH", f"{url}/{p['member'].id}", p["member"], {"member_type": "fan"}), 403)
    assert_error(await api.call("PATCH", f"{url}/{buyer.id}", p["admin"], {"member_type": "vip"}), 422)
    types = {m["user_id"]: (m["member_type"], m["role"]) for m in await directory(api, p["member"], circle_id)}
    assert types[buyer.id] == ("customer", "member") and types[follower.id] == ("fan", "member")
    assert types[p["member"].id] == ("member", "member")


async def test_my_nickname_and_notification_level_keep_my_membership(api: Api) -> None:
    circle_id, p = await circle_with(api, "member", "outsider")
    me = f"/api/circles/{circle_id}/members/me"
    body = expect(await api.call("PATCH", me, p["member"], {"nickname": "Little Dragon", "notification_level": "none"}))
    assert (body["nickname"], body["notification_level"], body["role"]) == ("Little Dragon", "none", "member")
    assert await my_circles(api, p["member"]) == {circle_id: "member"}
    entry = next(m for m in await directory(api, p["owner"], circle_id) if m["user_id"] == p["member"].id)
    assert (entry["name"], entry["nickname"], entry["role"]) == ("Little Dragon", "Little Dragon", "member")

    assert_error(await api.call("PATCH", me, p["member"], {"notification_level": None}), 422)
    assert_error(await api.call("PATCH", me, p["member"], {"notification_level": "sometimes"}), 422)
    assert_error(await api.call("PATCH", me, p["outsider"], {"nickname": "Lurker"}), 403, "not_a_member")
    assert await my_circles(api, p["outsider"]) == {}
    # Clearing the nickname shows the display name again.
    expect(await api.call("PATCH", me, p["member"], {"nickname": None}))
    entry = next(m for m in await directory(api, p["owner"], circle_id) if m["user_id"] == p["member"].id)
    assert (entry["name"], entry["nickname"]) == ("Member", None)


async def test_the_owner_can_set_their_own_nickname(api: Api) -> None:
    owner = await api.register("Owner")
    circle_id = (await new_circle(api, owner, "Mine"))["id"]
    reply = await api.call("PATCH", f"/api/circles/{circle_id}/members/me", owner,
                           {"nickname": "Host", "notification_level": "mentions"})
    body = expect(reply)
    assert (body["nickname"], body["notification_level"], body["role"]) == ("Host", "mentions", "owner")
    assert (await directory(api, owner, circle_id))[0]["name"] == "Host"


async def test_transfer_ownership(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "member", "outsider")
    url = f"/api/circles/{circle_id}/transfer"
    before = await roles(api, p["owner"], circle_id)
    assert_error(await api.call("POST", url, p["admin"], {"user_id": p["admin"].id}), 403)
    assert_error(await api.call("POST", url, p["owner"], {"user_id": p["outsider"].id}), 404, "not_a_member")
    assert_error(await api.call("POST", url, p["owner"], {"user_id": p["owner"].id}), 409, "already_owner")
    assert await roles(api, p["owner"], circle_id) == before

    body = expect(await api.call("POST", url, p["owner"], {"user_id": p["member"].id}))
    assert body["role"] == "owner" and body["user_id"] == p["member"].id
    assert await roles(api, p["member"], circle_id) == {p["owner"].id: "admin", p["admin"].id: "admin",
                                                        p["member"].id: "owner"}
    assert_error(await api.call("PUT", f"/api/circles/{circle_id}/archived", p["owner"], {"archived": True}), 403)
    assert (await get_circle(api, p["owner"], circle_id))["archived"] is False
    assert expect(await api.call("PUT", f"/api/circles/{circle_id}/archived", p["member"], {"archived": True}))[
        "archived"] is True
    # The former owner, now an admin, may leave.
    expect(await api.call("DELETE", f"/api/circles/{circle_id}/members/{p['owner'].id}", p["owner"]), 204)
    assert await my_circles(api, p["member"]) == {circle_id: "owner"}


# ---------------------------------------------------------------------------------------------------------------
# The member directory


async def profile(api: Api, who: Person, **fields: Any) -> None:
    expect(await api.call("PATCH", "/api/me", who, fields))


async def test_directory_search_and_filters(api: Api) -> None:
    owner = await api.register("Owner")
    circle_id = (await new_circle(api, owner, "Alumni"))["id"]
    wang = await api.register("Wang Fang")
    li = await api.register("Li Na")
    zhao = await api.register("Zhao Lei")
    for person in (wang, li, zhao):
        await join(api, person, circle_id)
    await profile(api, wang, position="Engineer", education="MSc", industry="Software",
                  custom_fields={"city": "Hangzhou", "team": "red"})
    await profile(api, li, position="Teacher", education="BA", industry="Education",
                  custom_fields={"city": "Shanghai"})
    await profile(api, zhao, position="Engineer", education="PhD", industry="Education",
                  custom_fields={"city": "hangzhou"})
    expect(await api.call("PATCH", f"/api/circles/{circle_id}/members/me", li, {"nickname": "Teacher Moon"}))

    async def ids(**query: Any) -> set[int]:
        return {m["user_id"] for m in await directory(api, wang, circle_id, **query)}

    assert await ids() == {owner.id, wang.id, li.id, zhao.id}
    assert await ids(q="wang") == {wang.id}
    assert await ids(q="ZHAO lei") == {zhao.id}
    assert await ids(q="moon") == {li.id}  # by nickname
    assert await ids(q="li na") == {li.id}  # by display name, though a nickname is set
    assert await ids(q="nobody") == set()
    assert await ids(position="engineer") == {wang.id, zhao.id}
    assert await ids(education="phd") == {zhao.id}
    assert await ids(industry="Education") == {li.id, zhao.id}
    assert await ids(industry="education", position="Engineer") == {zhao.id}
    assert await ids(field="city:Hangzhou") == {wang.id, zhao.id}
    assert await ids(field="team:red") == {wang.id}
    assert await ids(field="city:Beijing") == set()
    assert await ids(field="country:China") == set()
    assert await ids(q="a", field="city:Shanghai") == {li.id}
    assert await ids(role="owner") == {owner.id}
    entry = next(m for m in await directory(api, wang, circle_id, q="zhao"))
    assert (entry["position"], entry["education"], entry["industry"], entry["custom_fields"]) == (
        "Engineer", "PhD", "Education", {"city": "hangzhou"})
    assert_error(await api.call("GET", f"/api/circles/{circle_id}/members?field=nocolon", wang), 422)
    assert_error(await api.call("GET", f"/api/circles/{circle_id}/members?shoe=42", wang), 422)


async def test_directory_custom_field_filter_matches_any_accepted_key(api: Api) -> None:
    """Every key PATCH /api/me accepts can be filtered on; keys a JSON path would have to escape are refused."""
    owner = await api.register("Owner")
    circle_id = (await new_circle(api, owner, "Keys"))["id"]
    keys_tried = ["home.city", "city's", "$[0]", "城市"]
    await profile(api, owner, custom_fields={key: "Hangzhou" for key in keys_tried})
    missed = [key for key in keys_tried
              if [m["user_id"] for m in await directory(api, owner, circle_id, field=f"{key}:Hangzhou")] != [owner.id]]
    assert missed == []
    for bad_key in ('the "city"', "back\\slash"):
        reply = await api.call("PATCH", "/api/me", owner, {"custom_fields": {bad_key: "x"}})
        assert reply.status == 422, (bad_key, reply.body)
        reply = await api.call("GET", f"/api/circles/{circle_id}/members?{urlencode({'field': bad_key + ':x'})}",
                               owner)
        assert reply.status == 422, (bad_key, reply.body)
    me = await api.call("GET", "/api/me", owner)
    assert set(me.body["user"]["custom_fields"]) == set(keys_tried)


async def test_directory_pages_return_everyone_exactly_once(api: Api) -> None:
    owner = await api.register("Owner")
    circle_id = (await new_circle(api, owner, "Big"))["id"]
    people = [owner] + [await api.register(f"Member {n}") for n in range(6)]
    for person in people[1:]:
        await join(api, person, circle_id)
    seen: list[int] = []
    after: int | None = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": 3}
        if after is not None:
            query["after"] = after
        body = expect(await api.call("GET", f"/api/circles/{circle_id}/members?{urlencode(query)}", owner))
        seen += [m["user_id"] for m in body["members"]]
        pages += 1
        after = body["next_after"]
        if after is None:
            break
        assert pages < 10
    assert pages == 3
    assert sorted(seen) == sorted(p.id for p in people) and len(seen) == len(set(seen))


async def test_directory_reveals_identity_only_to_managers(api: Api, client: Client) -> None:
    institution_id, staff = await institution_with_staff(api, client)
    owner = staff["teacher"]
    circle_id = (await new_circle(api, owner, "Course", institution_id=institution_id))["id"]
    admin, teacher, member, outsider = (await api.register("Circle admin"), await api.register("Circle teacher"),
                                        await api.register("Student"), await api.register("Outsider"))
    for person, role in ((admin, "admin"), (teacher, "teacher"), (member, "member")):
        await join(api, person, circle_id)
        if role != "member":
            await set_role(api, owner, circle_id, person, role)
    await profile(api, member, real_name="Chen Xiaoming")
    expect(await api.call("PATCH", f"/api/circles/{circle_id}/members/me", member, {"nickname": "Fox"}))

    def student(entries: list[dict[str, Any]]) -> dict[str, Any]:
        return next(m for m in entries if m["user_id"] == member.id)

    for viewer in (member, teacher):
        entry = student(await directory(api, viewer, circle_id))
        assert entry["name"] == "Fox" and entry["identity"] is None
        assert "email" not in entry and "real_name" not in entry
    for viewer in (admin, owner, staff["admin"], staff["owner"]):
        entry = student(await directory(api, viewer, circle_id))
        assert entry["name"] == "Fox"
        assert entry["identity"] == {"display_name": "Student", "real_name": "Chen Xiaoming", "email": member.email}
    # Institution staff and teachers who are not circle members are outsiders here.
    for viewer in (outsider, staff["staff"]):
        assert_error(await api.call("GET", f"/api/circles/{circle_id}/members", viewer), 403, "not_a_member")
    assert_error(await api.call("GET", f"/api/circles/{circle_id}/members"), 401)


async def test_admins_still_see_identities_in_an_archived_circle(api: Api) -> None:
    """Archiving makes a circle read-only; reading the member list is still reading, for admins as before."""
    circle_id, p = await circle_with(api, "admin", "member")
    expect(await api.call("PUT", f"/api/circles/{circle_id}/archived", p["owner"], {"archived": True}))
    entry = next(m for m in await directory(api, p["admin"], circle_id) if m["user_id"] == p["member"].id)
    assert entry["identity"] is not None and entry["identity"]["email"] == p["member"].email
    entry = next(m for m in await directory(api, p["member"], circle_id) if m["user_id"] == p["admin"].id)
    assert entry["identity"] is None


# ---------------------------------------------------------------------------------------------------------------
# The audit log


async def test_audit_log_records_moderation_newest_first(api: Api) -> None:
    circle_id, p = await circle_with(api, "admin", "member", join_policy="open")
    owner, admin = p["owner"], p["admin"]
    base = f"/api/circles/{circle_id}"
    removed, banned, applicant, rejected, writer = [
        await api.register(name) for name in ("Removed", "Banned", "Applicant", "Rejected", "Writer")]
    for person in (removed, banned, writer):
        await join(api, person, circle_id)
    expect(await api.call("PATCH", base, owner, {"join_policy": "application"}))
    approved_app = expect(await api.call("POST", f"{base}/applications", applicant, {"answers": {}}), 201)
    rejected_app = expect(await api.call("POST", f"{base}/applications", rejected, {"answers": {}}), 201)
    pinned_post = expect(await api.call("POST", f"{base}/posts", writer, {"body": "Read me first"}), 201)
    doomed_post = expect(await api.call("POST", f"{base}/posts", writer, {"body": "Buy cheap watches"}), 201)
    own_post = expect(await api.call("POST", f"{base}/posts", admin, {"body": "My own words"}), 201)
    assert await audit(api, admin, circle_id) == []

    expect(await api.call("DELETE", f"{base}/members/{removed.id}", admin), 204)
    expect(await api.call("POST", f"{base}/bans", admin, {"user_id": banned.id, "reason": "spam"}), 201)
    expect(await api.call("DELETE", f"{base}/bans/{banned.id}", owner), 204)
    expect(await api.call("POST", f"{base}/applications/{approved_app['id']}/approve", admin, {}))
    expect(await api.call("POST", f"{base}/applications/{rejected_app['id']}/reject", owner, {"reason": "full"}))
    body = expect(await api.call("PUT", f"{base}/posts/{pinned_post['id']}/pinned", admin, {"pinned": True}))
    assert body["pinned"] is True
    expect(await api.call("DELETE", f"{base}/posts/{doomed_post['id']}", admin), 204)
    expect(await api.call("DELETE", f"{base}/posts/{own_post['id']}", admin), 204)  # one's own: not moderation
    expect(await api.call("POST", f"{base}/transfer", owner, {"user_id": admin.id}))

    entries = await audit(api, admin, circle_id)
    assert [(e["action"], e["actor_id"], e["target_user_id"]) for e in entries] == [
        ("transfer_ownership", owner.id, admin.id),
        ("delete_post", admin.id, writer.id),
        ("pin", admin.id, writer.id),
        ("reject", owner.id, rejected.id),
        ("approve", admin.id, applicant.id),
        ("unban", owner.id, banned.id),
        ("ban", admin.id, banned.id),
        ("remove", admin.id, removed.id),
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["pin"]["target_id"] == pinned_post["id"]
    assert by_action["delete_post"]["target_id"] == doomed_post["id"]
    assert by_action["reject"]["target_id"] == rejected_app["id"]
    assert by_action["reject"]["details"]["reason"] == "full"
    assert by_action["ban"]["details"]["reason"] == "spam"
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)

    # The former owner is an admin now, and still reads the log; members and outsiders do not.
    assert [e["id"] for e in await audit(api, owner, circle_id)] == ids
    assert_error(await api.call("GET", f"{base}/audit", p["member"]), 403)
    assert_error(await api.call("GET", f"{base}/audit", removed), 403)
    assert_error(await api.call("GET", f"{base}/audit"), 401)

    first = expect(await api.call("GET", f"{base}/audit?limit=5", admin))
    assert [e["id"] for e in first["entries"]] == ids[:5]
    rest = expect(await api.call("GET", f"{base}/audit?limit=5&before={first['next_before']}", admin))
    assert [e["id"] for e in rest["entries"]] == ids[5:]
