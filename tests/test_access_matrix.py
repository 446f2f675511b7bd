"""Every route of the app, called by every kind of caller, against a table of the statuses each must get.

The table is ``CASES``: one row per (method, path template) and variant, with a request factory that fills in ids
and a valid body, and the expected status for each role in ``ROLES`` order. Factories build fresh targets (a new
user to add, a new member to remove, a new institution where a change touches the owner count), so rows do not
depend on each other and their order does not matter.

The matrix runs as one test per backend and reports every wrong cell at once. The circle routes (their live classes
included) have a matrix of their own, with circle roles and a public and a private circle, in
``test_access_matrix_circles.py``. A route the
app serves that has a row in neither table fails ``test_the_matrix_covers_every_route``: a new route must say who may
call it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from server import keys
from server.api import all_routes
from server.app import create_app
from server.db import institutions as institutions_db
from server.db.models import InstitutionMember, InstitutionRole, User
from server.settings import Settings, sqlite_url
from tests.conftest import Database, make_settings
from tests.helpers import PASSWORD, Api, Person, Reply
from tests.test_access_matrix_circles import ROUTE_KEYS as CIRCLE_ROUTE_KEYS

ROLES = ("anonymous", "outsider", "staff", "teacher", "admin", "owner", "site_admin")
INSTITUTION_ROLES = ("owner", "admin", "teacher", "staff")
_serial = itertools.count(1)


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    # The matrix signs in a few dozen times from one address; the sign-in rate limit is not what it is about.
    return make_settings(database, tmp_path, login_attempts_per_ip=10_000, login_attempts_per_account=10_000)


class _Caller:
    """Marker: call as the row's role (the default)."""


AS_ROLE = _Caller()


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    who: Person | _Caller | None = AS_ROLE


@dataclass
class World:
    """One institution with four staff in four roles, an outsider, and a site admin who is not a member."""

    api: Api
    client: TestClient[web.Request, web.Application]
    people: dict[str, Person] = field(default_factory=dict)
    institution_id: int = 0

    @property
    def site_admin(self) -> Person:
        return self.people["site_admin"]

    def caller(self, role: str) -> Person | None:
        return None if role == "anonymous" else self.people[role]

    async def expect(self, status: int, method: str, path: str, who: Person | None, json: Any = None) -> Any:
        reply = await self.api.call(method, path, who, json)
        assert reply.status == status, f"setup {method} {path}: expected {status}, got {reply.status} {reply.body}"
        return reply.body

    async def new_user(self) -> tuple[int, str]:
        """A fresh account nobody is signed in as: (id, email)."""
        n = next(_serial)
        email = f"matrix{n}@example.org"
        body = await self.expect(201, "POST", "/api/auth/register", None,
                                 {"email": email, "password": PASSWORD, "display_name": f"Target {n}"})
        return int(body["user"]["id"]), email

    async def new_person(self) -> Person:
        """A fresh account with a bearer token."""
        return await self.api.register(f"Fresh {next(_serial)}")

    async def add_member(self, institution_id: int, user_id: int, role: str) -> None:
        """Straight into the database: the setup must not lean on the member routes the matrix is testing."""
        async with self.client.app[keys.DB]() as db, db.begin():
            await institutions_db.put_member(db, institution_id, user_id, InstitutionRole(role))

    async def new_member(self, role: str) -> int:
        """A fresh user with ``role`` in the shared institution (never an owner: the owner count stays one)."""
        assert role != "owner"
        user_id, _ = await self.new_user()
        await self.add_member(self.institution_id, user_id, role)
        return user_id

    async def new_institution(self, members: dict[int, str]) -> int:
        """A fresh institution owned by a fresh user, with ``members`` added: for rows that change the owners."""
        owner_id, _ = await self.new_user()
        body = await self.expect(201, "POST", "/api/institutions", self.site_admin,
                                 {"name": f"Institution {next(_serial)}", "owner_id": owner_id})
        institution_id = int(body["id"])
        for user_id, role in members.items():
            await self.add_member(institution_id, user_id, role)
        return institution_id

    async def new_institution_with(self, role: str) -> int:
        """A fresh institution in which the caller playing ``role`` holds that role (if it is an institution role)."""
        return await self.new_institution({self.people[role].id: role} if role in INSTITUTION_ROLES else {})


async def build_world(api: Api, client: TestClient[web.Request, web.Application]) -> World:
    world = World(api, client)
    for role in ("site_admin", "outsider", *INSTITUTION_ROLES):
        world.people[role] = await api.register(role.replace("_", " ").title())
    async with client.app[keys.DB]() as db, db.begin():
        await db.execute(update(User).where(User.id == world.site_admin.id).values(is_site_admin=True))
    body = await world.expect(201, "POST", "/api/institutions", world.site_admin,
                              {"name": "Shared Institution", "owner_id": world.people["owner"].id})
    world.institution_id = int(body["id"])
    for role in ("admin", "teacher", "staff"):
        await world.add_member(world.institution_id, world.people[role].id, role)
    async with client.app[keys.DB]() as db:
        rows = await db.execute(select(InstitutionMember.user_id, InstitutionMember.role)
                                .where(InstitutionMember.institution_id == world.institution_id))
        roles = {user_id: role.value for user_id, role in rows}
    assert roles == {world.people[r].id: r for r in INSTITUTION_ROLES}, roles
    return world


# --- request factories --------------------------------------------------------------------------------------------

Factory = Callable[[World, str], Awaitable[Call]]
UNKNOWN_ID = 987_654


def _inst(w: World, suffix: str = "") -> str:
    return f"/api/institutions/{w.institution_id}{suffix}"


async def get_root(w: World, role: str) -> Call:
    return Call("GET", "/")


async def get_join_page(w: World, role: str) -> Call:
    return Call("GET", "/join/" + "AbCdEf0123456789_-xy")


async def get_healthz(w: World, role: str) -> Call:
    return Call("GET", "/healthz")


async def get_readyz(w: World, role: str) -> Call:
    return Call("GET", "/readyz")


async def get_openapi(w: World, role: str) -> Call:
    return Call("GET", "/api/openapi.json")


async def register(w: World, role: str) -> Call:
    n = next(_serial)
    return Call("POST", "/api/auth/register",
                {"email": f"fresh{n}@example.org", "password": PASSWORD, "display_name": f"Fresh {n}"})


async def login(w: World, role: str) -> Call:
    _, email = await w.new_user()
    return Call("POST", "/api/auth/login", {"email": email, "password": PASSWORD})


async def token(w: World, role: str) -> Call:
    _, email = await w.new_user()
    return Call("POST", "/api/auth/token", {"email": email, "password": PASSWORD})


async def logout(w: World, role: str) -> Call:
    # A second session of the role's own account, so the session the other rows use stays signed in.
    who = None if role == "anonymous" else await w.api.sign_in(w.people[role].email)
    return Call("POST", "/api/auth/logout", who=who)


async def get_me(w: World, role: str) -> Call:
    return Call("GET", "/api/me")


async def update_me(w: World, role: str) -> Call:
    return Call("PATCH", "/api/me", {"position": f"{role} position"})


async def change_password(w: World, role: str) -> Call:
    # The same password again: the account stays usable for the rows that sign in as it.
    return Call("POST", "/api/me/password", {"current_password": PASSWORD, "new_password": PASSWORD})


async def socket_token(w: World, role: str) -> Call:
    return Call("POST", "/api/socket-token")


async def get_user(w: World, role: str) -> Call:
    user_id, _ = await w.new_user()
    return Call("GET", f"/api/users/{user_id}")


async def get_unknown_user(w: World, role: str) -> Call:
    return Call("GET", f"/api/users/{UNKNOWN_ID}")


async def verify_member(w: World, role: str) -> Call:
    return Call("PUT", f"/api/users/{await w.new_member('staff')}/verified", {"verified": True})


async def verify_non_member(w: World, role: str) -> Call:
    user_id, _ = await w.new_user()
    return Call("PUT", f"/api/users/{user_id}/verified", {"verified": True})


async def grant_site_admin(w: World, role: str) -> Call:
    user_id, _ = await w.new_user()
    return Call("PUT", f"/api/users/{user_id}/site-admin", {"site_admin": True})


async def create_institution(w: World, role: str) -> Call:
    return Call("POST", "/api/institutions", {"name": f"New {next(_serial)}"})


async def create_institution_for_owner(w: World, role: str) -> Call:
    user_id, _ = await w.new_user()
    return Call("POST", "/api/institutions", {"name": f"New {next(_serial)}", "owner_id": user_id})


async def list_institutions(w: World, role: str) -> Call:
    return Call("GET", "/api/institutions")


async def get_institution(w: World, role: str) -> Call:
    return Call("GET", _inst(w))


async def get_unknown_institution(w: World, role: str) -> Call:
    return Call("GET", f"/api/institutions/{UNKNOWN_ID}")


async def rename_institution(w: World, role: str) -> Call:
    return Call("PATCH", _inst(w), {"name": f"Renamed {next(_serial)}"})


async def list_members(w: World, role: str) -> Call:
    return Call("GET", _inst(w, "/members"))


async def add_teacher(w: World, role: str) -> Call:
    user_id, _ = await w.new_user()
    return Call("POST", _inst(w, "/members"), {"user_id": user_id, "role": "teacher"})


async def add_staff_by_email(w: World, role: str) -> Call:
    _, email = await w.new_user()
    return Call("POST", _inst(w, "/members"), {"email": email, "role": "staff"})


async def add_unknown_email(w: World, role: str) -> Call:
    return Call("POST", _inst(w, "/members"), {"email": f"nobody{next(_serial)}@example.org", "role": "staff"})


async def add_admin(w: World, role: str) -> Call:
    user_id, _ = await w.new_user()
    return Call("POST", _inst(w, "/members"), {"user_id": user_id, "role": "admin"})


async def add_existing_member(w: World, role: str) -> Call:
    return Call("POST", _inst(w, "/members"), {"user_id": w.people["teacher"].id, "role": "staff"})


async def add_owner(w: World, role: str) -> Call:
    # Adding an owner changes the owner count, so it happens in an institution of its own.
    institution_id = await w.new_institution_with(role)
    user_id, _ = await w.new_user()
    return Call("POST", f"/api/institutions/{institution_id}/members", {"user_id": user_id, "role": "owner"})


async def set_teacher_to_staff(w: World, role: str) -> Call:
    return Call("PATCH", _inst(w, f"/members/{await w.new_member('teacher')}"), {"role": "staff"})


async def promote_teacher_to_admin(w: World, role: str) -> Call:
    return Call("PATCH", _inst(w, f"/members/{await w.new_member('teacher')}"), {"role": "admin"})


async def demote_last_owner(w: World, role: str) -> Call:
    return Call("PATCH", _inst(w, f"/members/{w.people['owner'].id}"), {"role": "admin"})


async def remove_staff(w: World, role: str) -> Call:
    return Call("DELETE", _inst(w, f"/members/{await w.new_member('staff')}"))


async def remove_admin(w: World, role: str) -> Call:
    return Call("DELETE", _inst(w, f"/members/{await w.new_member('admin')}"))


async def remove_last_owner(w: World, role: str) -> Call:
    return Call("DELETE", _inst(w, f"/members/{w.people['owner'].id}"))


async def leave(w: World, role: str) -> Call:
    """A fresh person holding ``role`` in a fresh institution removes themselves (an owner leaves a co-owner)."""
    if role == "anonymous":
        institution_id = await w.new_institution({})
        return Call("DELETE", f"/api/institutions/{institution_id}/members/{w.people['outsider'].id}")
    person = w.site_admin if role == "site_admin" else await w.new_person()
    institution_id = await w.new_institution({person.id: role} if role in INSTITUTION_ROLES else {})
    return Call("DELETE", f"/api/institutions/{institution_id}/members/{person.id}", who=person)


# --- the table ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    method: str
    path: str
    build: Factory
    expect: tuple[int, ...]  # one status per role, in ROLES order

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def name(self) -> str:
        return f"{self.method} {self.path} [{self.build.__name__}]"


def row(method: str, path: str, build: Factory, expect: tuple[int, ...]) -> Case:
    assert len(expect) == len(ROLES), f"{method} {path} [{build.__name__}]: {len(expect)} statuses, {len(ROLES)} roles"
    return Case(method, path, build, expect)


INST = "/api/institutions/{institution_id}"
MEMBERS = INST + "/members"
MEMBER = MEMBERS + "/{user_id}"

CASES: list[Case] = [
    # Statuses per role in ROLES order: anonymous, outsider, staff, teacher, admin, owner, site_admin.
    #   method    path template                      factory (variant)             anon  out  stf  tch  adm  own  site
    row("GET",    "/",                               get_root,                     (200, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/join/{token}",                   get_join_page,                (200, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/healthz",                        get_healthz,                  (200, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/readyz",                         get_readyz,                   (200, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/api/openapi.json",               get_openapi,                  (200, 200, 200, 200, 200, 200, 200)),
    row("POST",   "/api/auth/register",              register,                     (201, 201, 201, 201, 201, 201, 201)),
    row("POST",   "/api/auth/login",                 login,                        (200, 200, 200, 200, 200, 200, 200)),
    row("POST",   "/api/auth/token",                 token,                        (201, 201, 201, 201, 201, 201, 201)),
    row("POST",   "/api/auth/logout",                logout,                       (401, 204, 204, 204, 204, 204, 204)),
    row("GET",    "/api/me",                         get_me,                       (401, 200, 200, 200, 200, 200, 200)),
    row("PATCH",  "/api/me",                         update_me,                    (401, 200, 200, 200, 200, 200, 200)),
    row("POST",   "/api/me/password",                change_password,              (401, 204, 204, 204, 204, 204, 204)),
    row("POST",   "/api/socket-token",               socket_token,                 (401, 201, 201, 201, 201, 201, 201)),
    row("GET",    "/api/users/{user_id}",            get_user,                     (401, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/api/users/{user_id}",            get_unknown_user,             (401, 404, 404, 404, 404, 404, 404)),
    row("PUT",    "/api/users/{user_id}/verified",   verify_member,                (401, 403, 403, 403, 200, 200, 200)),
    row("PUT",    "/api/users/{user_id}/verified",   verify_non_member,            (401, 403, 403, 403, 403, 403, 200)),
    row("PUT",    "/api/users/{user_id}/site-admin", grant_site_admin,             (401, 403, 403, 403, 403, 403, 200)),
    row("POST",   "/api/institutions",               create_institution,           (401, 403, 403, 403, 403, 403, 201)),
    row("POST",   "/api/institutions",               create_institution_for_owner, (401, 403, 403, 403, 403, 403, 201)),
    row("GET",    "/api/institutions",               list_institutions,            (401, 200, 200, 200, 200, 200, 200)),
    row("GET",    INST,                              get_institution,              (401, 404, 200, 200, 200, 200, 200)),
    row("GET",    INST,                              get_unknown_institution,      (401, 404, 404, 404, 404, 404, 404)),
    row("PATCH",  INST,                              rename_institution,           (401, 404, 403, 403, 200, 200, 200)),
    row("GET",    MEMBERS,                           list_members,                 (401, 404, 200, 200, 200, 200, 200)),
    row("POST",   MEMBERS,                           add_teacher,                  (401, 404, 403, 403, 201, 201, 201)),
    row("POST",   MEMBERS,                           add_staff_by_email,           (401, 404, 403, 403, 201, 201, 201)),
    row("POST",   MEMBERS,                           add_unknown_email,            (401, 404, 403, 403, 404, 404, 404)),
    row("POST",   MEMBERS,                           add_admin,                    (401, 404, 403, 403, 403, 201, 201)),
    row("POST",   MEMBERS,                           add_owner,                    (401, 404, 403, 403, 403, 201, 201)),
    row("POST",   MEMBERS,                           add_existing_member,          (401, 404, 403, 403, 409, 409, 409)),
    row("PATCH",  MEMBER,                            set_teacher_to_staff,         (401, 404, 403, 403, 200, 200, 200)),
    row("PATCH",  MEMBER,                            promote_teacher_to_admin,     (401, 404, 403, 403, 403, 200, 200)),
    row("PATCH",  MEMBER,                            demote_last_owner,            (401, 404, 403, 403, 403, 409, 409)),
    row("DELETE", MEMBER,                            remove_staff,                 (401, 404, 403, 403, 204, 204, 204)),
    row("DELETE", MEMBER,                            remove_admin,                 (401, 404, 403, 403, 403, 204, 204)),
    row("DELETE", MEMBER,                            remove_last_owner,            (401, 404, 403, 403, 403, 409, 409)),
    row("DELETE", MEMBER,                            leave,                        (401, 404, 204, 204, 204, 204, 404)),
]  # fmt: skip


def _error(reply: Reply) -> str:
    if not isinstance(reply.body, dict) or not isinstance(reply.body.get("error"), dict):
        return ""
    error = reply.body["error"]
    details = error.get("details")
    return f"{error.get('code')}: {error.get('message')}" + (f" {details}" if details else "")


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)))


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) for every route the app's router serves, but the static files under /static/ and the
    Socket.IO endpoint (its events are checked by the chat tests against each role)."""
    found: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource) or resource.canonical == "/socket.io/":
            continue
        found.add((route.method, resource.canonical))  # the template, without the variables' regexes
    return found


def _coverage_problems(app: web.Application) -> list[str]:
    """A route is covered when it has a row here or in the circle matrix (test_access_matrix_circles.py)."""
    tabled = {case.key for case in CASES} | CIRCLE_ROUTE_KEYS
    served = served_routes(app)
    declared = {(r.method, r.path) for r in all_routes()}
    problems = []
    for key in sorted((served | declared) - tabled):
        where = "served and in all_routes()" if key in served and key in declared else (
            "served by the router" if key in served else "in all_routes()")
        problems.append(f"{key[0]} {key[1]}: {where}, but has no row in either access matrix")
    for method, path in sorted(tabled - served):
        problems.append(f"{method} {path}: has a row in an access matrix, but the app does not serve it")
    return problems


def test_the_matrix_covers_every_route(tmp_path: Path) -> None:
    """The router is complete once ``create_app`` returns, so this needs no database and no running server."""
    app = create_app(make_settings(Database("sqlite", sqlite_url(tmp_path / "unused.db")), tmp_path))
    assert served_routes(app) == {(r.method, r.path) for r in all_routes()}
    problems = _coverage_problems(app)
    assert not problems, "\n".join(problems)


def test_the_table_agrees_with_each_routes_declared_auth() -> None:
    """Public routes answer everyone alike; "user" routes refuse the anonymous caller with 401, and only them."""
    auth = {(r.method, r.path): r.auth for r in all_routes()}
    problems = []
    for case in CASES:
        declared = auth.get(case.key)
        if declared == "public" and len(set(case.expect)) != 1:
            problems.append(f"{case.name}: public, yet the expected statuses differ by role: {case.expect}")
        if declared == "user" and case.expect[0] != 401:
            problems.append(f"{case.name}: needs a user, yet anonymous is expected to get {case.expect[0]}")
        if declared == "user" and 401 in case.expect[1:]:
            problems.append(f"{case.name}: a signed-in role is expected to get 401: {case.expect}")
    assert not problems, "\n".join(problems)


async def test_access_matrix(api: Api, client: TestClient[web.Request, web.Application]) -> None:
    world = await build_world(api, client)
    failures: list[str] = []
    for case in CASES:
        pattern = _template_regex(case.path)
        for role, expected in zip(ROLES, case.expect, strict=True):
            cell = f"{case.name} as {role}"
            try:
                call = await case.build(world, role)
            except Exception as exc:  # one broken setup must not hide the other cells
                failures.append(f"{cell}: setup failed: {exc!r}")
                continue
            if call.method != case.method or not pattern.fullmatch(call.path):
                failures.append(f"{cell}: the factory built {call.method} {call.path}, not this route")
                continue
            who = world.caller(role) if isinstance(call.who, _Caller) else call.who
            if (who is None) != (role == "anonymous"):
                failures.append(f"{cell}: the factory called as {who!r}")
                continue
            reply = await api.call(call.method, call.path, who, call.json)
            if reply.status != expected:
                failures.append(f"{cell}: expected {expected}, got {reply.status} {_error(reply)}")
    assert not failures, f"{len(failures)} cell(s) of the access matrix are wrong:\n" + "\n".join(failures)


async def test_non_members_learn_nothing_about_emails_from_add_member(api: Api) -> None:
    """Adding by email must not tell an outsider whether an account exists: same answer for a real and a made-up
    email, and the same as for an institution that does not exist."""
    world = await build_world(api, api.client)
    outsider = world.people["outsider"]
    _, real_email = await world.new_user()
    replies = {
        "existing account": await api.call("POST", _inst(world, "/members"), outsider,
                                           {"email": real_email, "role": "staff"}),
        "no such account": await api.call("POST", _inst(world, "/members"), outsider,
                                          {"email": "nobody-at-all@example.org", "role": "staff"}),
        "no such institution": await api.call("POST", f"/api/institutions/{UNKNOWN_ID}/members", outsider,
                                              {"email": real_email, "role": "staff"}),
    }
    seen = {label: (reply.status, reply.error_code) for label, reply in replies.items()}
    assert len(set(seen.values())) == 1, f"the answers differ, so they leak: {seen}"
    assert seen["existing account"][0] == 404
