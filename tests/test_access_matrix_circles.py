"""Every circle route, called by every kind of caller, against a table of the statuses each must get.

The table is ``CASES``: one row per (method, path template) and variant, with a request factory and the expected
status for each role in ``ROLES`` order, written out twice: once for a public circle and once for a private one.
Both circles belong to an institution. The roles are:

- ``anonymous``: no credentials;
- ``non_member``: signed in, no standing in the circle;
- ``member``, ``teacher``, ``admin``, ``owner``: the circle roles;
- ``inst_admin``: an admin of the owning institution who is not a member of the circle;
- ``banned``: a user banned from the circle (and so not a member).

The expected answers come from docs/circles.md (and ``server/policy.py`` where the docs are silent), written out by
hand: the table is not computed from the policy it tests. On a private circle, anyone without standing gets 404 on
everything, exactly as for a circle that does not exist, except when they accept an invite with its token.

Setup writes straight into the database (users, circles, memberships, bans, posts, invites), so it does not lean on
the routes under test and stays fast. Factories build fresh targets (a fresh circle where the call changes the
caller's standing or the whole circle; fresh members, posts, comments, invites, applications and bans otherwise),
so rows do not depend on each other and their order does not matter.

A circle's live classes (``/api/circles/{circle_id}/classes`` and ``/api/classes/{class_id}``) are in this table too:
they belong to the circle, and who may do what follows from the circle role (``server.policy.check_class``). The
classes are written straight into the database like the rest; a class is taught by the ``teacher`` (the circle's
teacher, named the session's teacher) unless the row says otherwise.

The matrix runs as one test per backend and circle visibility and reports every wrong cell at once. Whether every
route has a row (here or in the institution table) is checked in ``test_access_matrix.py``; the circle routes must
have theirs here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from server import keys
from server.api import all_routes
from server.db import circles as circles_db
from server.db import classes as classes_db
from server.db import feed as feed_db
from server.db import institutions as institutions_db
from server.db import users as users_db
from server.db.models import (
    ChatHistory,
    CircleKind,
    CircleRole,
    ClassState,
    InstitutionRole,
    JoinPolicy,
    Visibility,
    utcnow,
)
from server.settings import Settings
from tests.conftest import Database, make_settings
from tests.helpers import Api, Person, Reply

Client = TestClient[web.Request, web.Application]

ROLES = ("anonymous", "non_member", "member", "teacher", "admin", "owner", "inst_admin", "banned")
CIRCLE_ROLES = {"member": CircleRole.MEMBER, "teacher": CircleRole.TEACHER, "admin": CircleRole.ADMIN,
                "owner": CircleRole.OWNER}
# Who has no standing at all: on a private circle these must learn nothing, not even that it exists.
OUTSIDERS = ("anonymous", "non_member", "banned")
CIRCLE_PREFIXES = ("/api/circles", "/api/me/circles", "/api/invites/", "/api/classes/")
UNKNOWN_CIRCLE = "NoSuchCircle"  # well-formed (12 letters), so the router passes it to the handler
UNKNOWN_CLASS = 987_654
UNKNOWN_TOKEN = "NoSuchInviteToken_0123456789"
_serial = itertools.count(1)


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    # Each run signs in seven people from one address; the sign-in rate limit is not what the matrix is about.
    return make_settings(database, tmp_path, login_attempts_per_ip=10_000, login_attempts_per_account=10_000)


Check = Callable[[Any], str | None]  # looks at a successful reply's body; returns a problem, or None


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None  # the caller is always the row's role
    check: Check | None = None


@dataclass(frozen=True)
class InviteRef:
    id: int
    token: str


@dataclass
class World:
    """Seven signed-in people and one institution; circles are made per scenario with every role's standing."""

    api: Api
    client: Client
    visibility: Visibility
    people: dict[str, Person] = field(default_factory=dict)
    institution_id: int = 0
    circle_id: str = ""  # the scenario's shared circle: rows that leave it as it was use this one
    circle_name: str = ""
    post_id: int = 0  # a post in the shared circle, by its owner, with a comment on it
    invite: InviteRef = InviteRef(0, "")  # a member invite of the shared circle
    class_id: int = 0  # a scheduled class in the shared circle, taught by the teacher, with a draft poll

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        async with self.client.app[keys.DB]() as db, db.begin():
            yield db

    def caller(self, role: str) -> Person | None:
        return None if role == "anonymous" else self.people[role]

    def id_of(self, role: str) -> int:
        """The role's own user id (for the anonymous caller, the member's: any id does)."""
        return self.people["member" if role == "anonymous" else role].id

    @property
    def shared_policy(self) -> JoinPolicy:
        return JoinPolicy.OPEN if self.visibility is Visibility.PUBLIC else JoinPolicy.INVITE

    async def new_user(self, db: AsyncSession | None = None) -> int:
        """A fresh account nobody signs in as."""
        if db is None:
            async with self.db() as db:
                return await self.new_user(db)
        n = next(_serial)
        user = await users_db.add_user(db, email=f"circle-target{n}@example.org", password_hash="!",
                                       display_name=f"Target {n}")
        return user.id

    async def new_circle(self, join_policy: JoinPolicy | None = None, *, name: str | None = None,
                         archived: bool = False) -> str:
        """A circle of the scenario's visibility, owned by the institution, where every role has its standing."""
        async with self.db() as db:
            circle = await circles_db.add_circle(
                db, name=name or f"Fresh circle {next(_serial)}", kind=CircleKind.COURSE,
                visibility=self.visibility, join_policy=join_policy or self.shared_policy, member_cap=500,
                chat_history=ChatHistory.ALL, institution_id=self.institution_id, created_by=self.people["owner"].id,
                archived_at=utcnow() if archived else None)
            for role, circle_role in CIRCLE_ROLES.items():
                await circles_db.add_member(db, circle.id, self.people[role].id, circle_role)
            await circles_db.add_ban(db, circle.id, self.people["banned"].id, self.people["owner"].id, "matrix")
            return circle.id

    async def new_member(self, role: CircleRole, circle_id: str | None = None) -> int:
        """A fresh user holding ``role`` in the circle (the shared one by default)."""
        async with self.db() as db:
            user_id = await self.new_user(db)
            await circles_db.add_member(db, circle_id or self.circle_id, user_id, role)
            return user_id

    async def new_post(self, author_id: int | None = None) -> int:
        """A fresh post in the shared circle, by ``author_id`` or else by a fresh member."""
        author_id = author_id or await self.new_member(CircleRole.MEMBER)
        async with self.db() as db:
            post = await feed_db.add_post(db, circle_id=self.circle_id, author_id=author_id, title=None,
                                          body="A post to act on", section_id=None)
            return post.id

    async def new_comment(self, author_id: int | None = None) -> int:
        """A fresh comment on the shared post, by ``author_id`` or else by a fresh member."""
        author_id = author_id or await self.new_member(CircleRole.MEMBER)
        async with self.db() as db:
            comment = await feed_db.add_comment(db, post_id=self.post_id, author_id=author_id,
                                                body="A comment to act on", parent_id=None)
            return comment.id

    async def new_invite(self, role: CircleRole, circle_id: str | None = None, *, revoked: bool = False) -> InviteRef:
        async with self.db() as db:
            invite = await circles_db.add_invite(
                db, circle_id=circle_id or self.circle_id, role=role, max_uses=None, expires_at=None,
                created_by=self.people["owner"].id, revoked_at=utcnow() if revoked else None)
            return InviteRef(invite.id, invite.token)

    async def new_application(self) -> int:
        """A fresh user's pending application to the shared circle."""
        async with self.db() as db:
            request = await circles_db.add_request(db, self.circle_id, await self.new_user(db), {})
            return request.id

    async def new_banned_user(self) -> int:
        async with self.db() as db:
            user_id = await self.new_user(db)
            await circles_db.add_ban(db, self.circle_id, user_id, self.people["owner"].id, "matrix")
            return user_id

    async def new_sections(self, circle_id: str, count: int) -> list[int]:
        async with self.db() as db:
            return [(await circles_db.add_section(db, circle_id, f"Section {i}", i)).id for i in range(count)]

    async def new_class(self, state: ClassState = ClassState.SCHEDULED, *, teacher_id: int | None = None,
                        circle_id: str | None = None) -> int:
        """A class in the circle (the shared one by default), taught by ``teacher_id`` or else by the teacher. An
        ended class ran at its scheduled time, yesterday."""
        ended = state is ClassState.ENDED
        start = utcnow() + (timedelta(days=-1) if ended else timedelta(days=1))
        end = start + timedelta(hours=1)
        async with self.db() as db:
            session = await classes_db.add_session(
                db, [teacher_id or self.people["teacher"].id], circle_id=circle_id or self.circle_id,
                title=f"Class {next(_serial)}", description="", scheduled_start=start, scheduled_end=end,
                state=state, settings={}, created_by=self.people["owner"].id,
                started_at=start if ended else None, ended_at=end if ended else None)
            return session.id

    async def new_poll(self, class_id: int, state: str = "draft") -> int:
        async with self.db() as db:
            poll = await classes_db.add_poll(db, session_id=class_id, question=f"Poll {next(_serial)}?",
                                             options=["Yes", "No"], multiple=False, correct=None, state=state,
                                             created_by=self.people["teacher"].id)
            return poll.id


async def build_world(api: Api, client: Client, visibility: Visibility) -> World:
    world = World(api, client, visibility)
    for role in ROLES[1:]:
        world.people[role] = await api.register(role.replace("_", " ").title())
    async with world.db() as db:
        institution = await institutions_db.add_institution(db, "Matrix Institution", None)
        world.institution_id = institution.id
        await institutions_db.put_member(db, institution.id, world.people["inst_admin"].id, InstitutionRole.ADMIN)
    world.circle_name = f"Shared {visibility.value} circle"
    world.circle_id = await world.new_circle(name=world.circle_name)
    world.post_id = await world.new_post(world.people["owner"].id)
    await world.new_comment(world.people["owner"].id)
    world.invite = await world.new_invite(CircleRole.MEMBER)
    world.class_id = await world.new_class()
    await world.new_poll(world.class_id, "draft")
    await world.new_poll(world.class_id, "closed")
    return world


# --- request factories --------------------------------------------------------------------------------------------

Factory = Callable[[World, str], Awaitable[Call]]


def _c(w: World, suffix: str = "", circle_id: str | None = None) -> str:
    return f"/api/circles/{circle_id or w.circle_id}{suffix}"


def _post(w: World, post_id: int, suffix: str = "") -> str:
    return _c(w, f"/posts/{post_id}{suffix}")


# circles


async def create_personal_circle(w: World, role: str) -> Call:
    return Call("POST", "/api/circles", {"name": f"Own circle {next(_serial)}", "visibility": w.visibility.value})


async def create_institution_circle(w: World, role: str) -> Call:
    return Call("POST", "/api/circles", {"name": f"Institution circle {next(_serial)}",
                                         "visibility": w.visibility.value, "institution_id": w.institution_id})


async def discover(w: World, role: str) -> Call:
    listed = w.visibility is Visibility.PUBLIC

    def check(body: Any) -> str | None:
        if (w.circle_id in {c["id"] for c in body["circles"]}) != listed:
            return f"the {w.visibility.value} circle is {'missing from' if listed else 'listed in'} discover"
        return None

    return Call("GET", f"/api/circles?q={quote(w.circle_name)}", check=check)


async def my_circles(w: World, role: str) -> Call:
    def check(body: Any) -> str | None:
        listed = w.circle_id in {c["id"] for c in body["circles"]}
        if listed != (role in CIRCLE_ROLES):
            return f"the circle is {'listed' if listed else 'missing'} among the {role}'s circles"
        return None

    return Call("GET", "/api/me/circles", check=check)


async def get_circle(w: World, role: str) -> Call:
    return Call("GET", _c(w))


async def get_unknown_circle(w: World, role: str) -> Call:
    return Call("GET", _c(w, circle_id=UNKNOWN_CIRCLE))


async def edit_circle(w: World, role: str) -> Call:
    return Call("PATCH", _c(w), {"description": f"Edited by the {role}"})


async def archive(w: World, role: str) -> Call:
    return Call("PUT", _c(w, "/archived", await w.new_circle()), {"archived": True})


async def restore(w: World, role: str) -> Call:
    return Call("PUT", _c(w, "/archived", await w.new_circle(archived=True)), {"archived": False})


async def list_sections(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/sections"))


async def add_section(w: World, role: str) -> Call:
    return Call("POST", _c(w, "/sections", await w.new_circle()), {"name": "News"})


async def reorder_sections(w: World, role: str) -> Call:
    circle_id = await w.new_circle()
    ids = await w.new_sections(circle_id, 2)
    return Call("PUT", _c(w, "/sections/order", circle_id), {"section_ids": ids[::-1]})


async def rename_section(w: World, role: str) -> Call:
    circle_id = await w.new_circle()
    (section_id,) = await w.new_sections(circle_id, 1)
    return Call("PATCH", _c(w, f"/sections/{section_id}", circle_id), {"name": "Renamed"})


async def delete_section(w: World, role: str) -> Call:
    circle_id = await w.new_circle()
    (section_id,) = await w.new_sections(circle_id, 1)
    return Call("DELETE", _c(w, f"/sections/{section_id}", circle_id))


async def get_form(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/application-form"))


async def set_form(w: World, role: str) -> Call:
    return Call("PUT", _c(w, "/application-form"),
                {"questions": [{"id": "why", "label": "Why do you want to join?", "kind": "text"}]})


# membership


async def join_open(w: World, role: str) -> Call:
    return Call("POST", _c(w, "/join", await w.new_circle(JoinPolicy.OPEN)))


async def join_by_application(w: World, role: str) -> Call:
    return Call("POST", _c(w, "/join", await w.new_circle(JoinPolicy.APPLICATION)))


async def apply(w: World, role: str) -> Call:
    return Call("POST", _c(w, "/applications", await w.new_circle(JoinPolicy.APPLICATION)), {"answers": {}})


async def my_applications(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/applications/mine"))


async def review_queue(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/applications"))


async def approve(w: World, role: str) -> Call:
    return Call("POST", _c(w, f"/applications/{await w.new_application()}/approve"), {})


async def reject(w: World, role: str) -> Call:
    return Call("POST", _c(w, f"/applications/{await w.new_application()}/reject"), {"reason": "Not this term"})


def _invite_as(role: CircleRole) -> Factory:
    async def factory(w: World, caller: str) -> Call:
        return Call("POST", _c(w, "/invites"), {"role": role.value, "max_uses": 5})

    factory.__name__ = f"invite_{role.value}"
    return factory


invite_member = _invite_as(CircleRole.MEMBER)
invite_teacher = _invite_as(CircleRole.TEACHER)
invite_admin = _invite_as(CircleRole.ADMIN)
invite_owner = _invite_as(CircleRole.OWNER)


async def list_invites(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/invites"))


async def revoke_member_invite(w: World, role: str) -> Call:
    return Call("DELETE", _c(w, f"/invites/{(await w.new_invite(CircleRole.MEMBER)).id}"))


async def revoke_admin_invite(w: World, role: str) -> Call:
    return Call("DELETE", _c(w, f"/invites/{(await w.new_invite(CircleRole.ADMIN)).id}"))


async def invite_qr_svg(w: World, role: str) -> Call:
    return Call("GET", _c(w, f"/invites/{w.invite.id}/qr.svg"))


async def invite_qr_png(w: World, role: str) -> Call:
    return Call("GET", _c(w, f"/invites/{w.invite.id}/qr.png"))


async def preview_invite(w: World, role: str) -> Call:
    return Call("GET", f"/api/invites/{w.invite.token}")


async def preview_unknown_invite(w: World, role: str) -> Call:
    return Call("GET", f"/api/invites/{UNKNOWN_TOKEN}")


async def accept_invite(w: World, role: str) -> Call:
    """A fresh circle that admits by invite only, and a valid member invite to it."""
    invite = await w.new_invite(CircleRole.MEMBER, await w.new_circle(JoinPolicy.INVITE))
    return Call("POST", f"/api/invites/{invite.token}/accept")


async def accept_revoked_invite(w: World, role: str) -> Call:
    invite = await w.new_invite(CircleRole.MEMBER, await w.new_circle(JoinPolicy.INVITE), revoked=True)
    return Call("POST", f"/api/invites/{invite.token}/accept")


async def accept_unknown_invite(w: World, role: str) -> Call:
    return Call("POST", f"/api/invites/{UNKNOWN_TOKEN}/accept")


async def member_list(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/members"))


async def my_membership(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/members/me"))


async def update_my_membership(w: World, role: str) -> Call:
    return Call("PATCH", _c(w, "/members/me"), {"nickname": f"Nick {next(_serial)}", "notification_level": "mentions"})


def _change_role(current: CircleRole, new: CircleRole) -> Factory:
    async def factory(w: World, role: str) -> Call:
        return Call("PATCH", _c(w, f"/members/{await w.new_member(current)}"), {"role": new.value})

    factory.__name__ = f"make_{current.value}_{new.value}"
    return factory


make_member_teacher = _change_role(CircleRole.MEMBER, CircleRole.TEACHER)
make_member_admin = _change_role(CircleRole.MEMBER, CircleRole.ADMIN)
make_admin_member = _change_role(CircleRole.ADMIN, CircleRole.MEMBER)
make_member_owner = _change_role(CircleRole.MEMBER, CircleRole.OWNER)


def _remove(target: CircleRole) -> Factory:
    async def factory(w: World, role: str) -> Call:
        return Call("DELETE", _c(w, f"/members/{await w.new_member(target)}"))

    factory.__name__ = f"remove_{target.value}"
    return factory


remove_member = _remove(CircleRole.MEMBER)
remove_teacher = _remove(CircleRole.TEACHER)
remove_admin = _remove(CircleRole.ADMIN)


async def remove_owner(w: World, role: str) -> Call:
    """The circle's owner as the target (for the owner, that is leaving), in a fresh circle in case it works."""
    return Call("DELETE", _c(w, f"/members/{w.people['owner'].id}", await w.new_circle()))


async def leave(w: World, role: str) -> Call:
    """Each caller removes themselves, from a fresh circle in which they hold their role."""
    return Call("DELETE", _c(w, f"/members/{w.id_of(role)}", await w.new_circle()))


async def list_bans(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/bans"))


async def ban_non_member(w: World, role: str) -> Call:
    return Call("POST", _c(w, "/bans"), {"user_id": await w.new_user(), "reason": "spam"})


async def ban_admin(w: World, role: str) -> Call:
    return Call("POST", _c(w, "/bans"), {"user_id": await w.new_member(CircleRole.ADMIN), "reason": "spam"})


async def ban_owner(w: World, role: str) -> Call:
    return Call("POST", _c(w, "/bans", await w.new_circle()), {"user_id": w.people["owner"].id, "reason": "spam"})


async def unban(w: World, role: str) -> Call:
    return Call("DELETE", _c(w, f"/bans/{await w.new_banned_user()}"))


async def transfer(w: World, role: str) -> Call:
    circle_id = await w.new_circle()
    return Call("POST", _c(w, "/transfer", circle_id),
                {"user_id": await w.new_member(CircleRole.MEMBER, circle_id)})


async def audit_log(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/audit"))


# chat


async def chat_history(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/messages"))


# feed


async def read_feed(w: World, role: str) -> Call:
    return Call("GET", _c(w, "/posts"))


async def create_post(w: World, role: str) -> Call:
    return Call("POST", _c(w, "/posts"), {"title": "Hello", "body": f"Posted by the {role}"})


async def get_post(w: World, role: str) -> Call:
    return Call("GET", _post(w, w.post_id))


async def edit_own_post(w: World, role: str) -> Call:
    """The caller's own post (a non-member's or banned user's from when they were a member)."""
    return Call("PATCH", _post(w, await w.new_post(w.id_of(role))), {"body": "Edited"})


async def edit_others_post(w: World, role: str) -> Call:
    return Call("PATCH", _post(w, await w.new_post()), {"body": "Edited"})


async def delete_own_post(w: World, role: str) -> Call:
    return Call("DELETE", _post(w, await w.new_post(w.id_of(role))))


async def delete_others_post(w: World, role: str) -> Call:
    return Call("DELETE", _post(w, await w.new_post()))


async def pin_post(w: World, role: str) -> Call:
    return Call("PUT", _post(w, await w.new_post(), "/pinned"), {"pinned": True})


async def react(w: World, role: str) -> Call:
    return Call("PUT", _post(w, await w.new_post(), "/reactions/like"))


async def unreact(w: World, role: str) -> Call:
    return Call("DELETE", _post(w, await w.new_post(), "/reactions/like"))


async def list_comments(w: World, role: str) -> Call:
    return Call("GET", _post(w, w.post_id, "/comments"))


async def add_comment(w: World, role: str) -> Call:
    return Call("POST", _post(w, w.post_id, "/comments"), {"body": f"Said by the {role}"})


async def edit_own_comment(w: World, role: str) -> Call:
    return Call("PATCH", _post(w, w.post_id, f"/comments/{await w.new_comment(w.id_of(role))}"), {"body": "Edited"})


async def edit_others_comment(w: World, role: str) -> Call:
    return Call("PATCH", _post(w, w.post_id, f"/comments/{await w.new_comment()}"), {"body": "Edited"})


async def delete_own_comment(w: World, role: str) -> Call:
    return Call("DELETE", _post(w, w.post_id, f"/comments/{await w.new_comment(w.id_of(role))}"))


async def delete_others_comment(w: World, role: str) -> Call:
    return Call("DELETE", _post(w, w.post_id, f"/comments/{await w.new_comment()}"))


# live classes


def _k(class_id: int, suffix: str = "") -> str:
    return f"/api/classes/{class_id}{suffix}"


def _class_body(**changes: Any) -> dict[str, Any]:
    start = utcnow() + timedelta(days=2)
    return {"title": "Fractions", "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat(),
            **changes}


async def schedule_class(w: World, role: str) -> Call:
    """Naming the circle's teacher as the class's teacher."""
    return Call("POST", _c(w, "/classes"), _class_body(teacher_ids=[w.people["teacher"].id]))


async def schedule_class_taught_by_me(w: World, role: str) -> Call:
    """No teachers named: the caller teaches, so the caller must be able to teach in the circle."""
    return Call("POST", _c(w, "/classes"), _class_body())


async def schedule_class_archived(w: World, role: str) -> Call:
    return Call("POST", _c(w, "/classes", await w.new_circle(archived=True)),
                _class_body(teacher_ids=[w.people["teacher"].id]))


async def list_classes(w: World, role: str) -> Call:
    def check(body: Any) -> str | None:
        if w.class_id not in {c["id"] for c in body["classes"]}:
            return "the shared class is missing from the upcoming classes"
        return None

    return Call("GET", _c(w, "/classes?when=upcoming&limit=100"), check=check)


async def get_class(w: World, role: str) -> Call:
    return Call("GET", _k(w.class_id))


async def get_unknown_class(w: World, role: str) -> Call:
    return Call("GET", _k(UNKNOWN_CLASS))


async def edit_class(w: World, role: str) -> Call:
    return Call("PATCH", _k(await w.new_class(teacher_id=w.people["owner"].id)), {"title": f"Edited by the {role}"})


async def edit_own_class(w: World, role: str) -> Call:
    """A class the caller teaches (for those who cannot teach in the circle, the teacher's)."""
    teacher = w.people[role] if role in ("teacher", "admin", "owner") else None
    return Call("PATCH", _k(await w.new_class(teacher_id=teacher.id if teacher else None)), {"title": "Edited"})


async def edit_ended_class(w: World, role: str) -> Call:
    return Call("PATCH", _k(await w.new_class(ClassState.ENDED)), {"title": "Too late"})


async def cancel_class(w: World, role: str) -> Call:
    return Call("POST", _k(await w.new_class(teacher_id=w.people["owner"].id), "/cancel"))


async def cancel_ended_class(w: World, role: str) -> Call:
    return Call("POST", _k(await w.new_class(ClassState.ENDED), "/cancel"))


async def class_chat_history(w: World, role: str) -> Call:
    return Call("GET", _k(w.class_id, "/messages?after=0&limit=10"))


async def list_polls(w: World, role: str) -> Call:
    """Drafts show to those who prepare polls only; a closed poll shows to everyone who sees the class."""
    staff = role in ("teacher", "admin", "owner", "inst_admin")

    def check(body: Any) -> str | None:
        states = sorted(p["state"] for p in body["polls"])
        wanted = ["closed", "draft"] if staff else ["closed"]
        return None if states == wanted else f"the polls shown are {states}, not {wanted}"

    return Call("GET", _k(w.class_id, "/polls"), check=check)


POLL = {"question": "Ready?", "options": ["Yes", "No"]}


async def create_poll(w: World, role: str) -> Call:
    return Call("POST", _k(w.class_id, "/polls"), POLL)


async def create_poll_ended_class(w: World, role: str) -> Call:
    return Call("POST", _k(await w.new_class(ClassState.ENDED), "/polls"), POLL)


def _report(suffix: str, *, taught_by_teacher: bool) -> Factory:
    async def factory(w: World, role: str) -> Call:
        teacher = None if taught_by_teacher else await w.new_member(CircleRole.TEACHER)
        return Call("GET", _k(await w.new_class(ClassState.ENDED, teacher_id=teacher), suffix))

    kind = "csv" if suffix.endswith(".csv") else "report"
    factory.__name__ = f"attendance_{kind}_{'own_class' if taught_by_teacher else 'other_teachers_class'}"
    return factory


attendance_own_class = _report("/attendance", taught_by_teacher=True)
attendance_other_class = _report("/attendance", taught_by_teacher=False)
attendance_csv_own_class = _report("/attendance.csv", taught_by_teacher=True)
attendance_csv_other_class = _report("/attendance.csv", taught_by_teacher=False)


# --- the table ----------------------------------------------------------------------------------------------------

Statuses = tuple[int, int, int, int, int, int, int, int]


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    build: Factory
    public: Statuses  # one status per role, in ROLES order, against a public circle
    private: Statuses  # the same against a private circle

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def name(self) -> str:
        return f"{self.method} {self.path} [{self.build.__name__}]"

    def expect(self, visibility: Visibility) -> Statuses:
        return self.public if visibility is Visibility.PUBLIC else self.private


def row(method: str, path: str, build: Factory, public: Statuses, private: Statuses) -> Case:
    for statuses in (public, private):
        assert len(statuses) == len(ROLES), f"{method} {path} [{build.__name__}]: {len(statuses)} statuses"
    return Case(method, path, build, public, private)


C = "/api/circles/{circle_id}"
INVITE = C + "/invites/{invite_id}"
MEMBER = C + "/members/{user_id}"
P = C + "/posts/{post_id}"
COMMENT = P + "/comments/{comment_id}"
K = "/api/classes/{class_id}"

CASES: list[Case] = [
    # Statuses per role in ROLES order, first against a public circle, then against a private one:
    #    public circle                             private circle
    #    anon non  mem  tch  adm  own  inst ban     anon non  mem  tch  adm  own  inst ban
    # --- circles
    row("POST",   "/api/circles",                           create_personal_circle,
        (401, 201, 201, 201, 201, 201, 201, 201), (401, 201, 201, 201, 201, 201, 201, 201)),
    row("POST",   "/api/circles",                           create_institution_circle,
        (401, 404, 404, 404, 404, 404, 201, 404), (401, 404, 404, 404, 404, 404, 201, 404)),
    row("GET",    "/api/circles",                           discover,
        (200, 200, 200, 200, 200, 200, 200, 200), (200, 200, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/api/me/circles",                        my_circles,
        (401, 200, 200, 200, 200, 200, 200, 200), (401, 200, 200, 200, 200, 200, 200, 200)),
    row("GET",    C,                                        get_circle,
        (200, 200, 200, 200, 200, 200, 200, 200), (404, 404, 200, 200, 200, 200, 200, 404)),
    row("GET",    C,                                        get_unknown_circle,
        (404, 404, 404, 404, 404, 404, 404, 404), (404, 404, 404, 404, 404, 404, 404, 404)),
    row("PATCH",  C,                                        edit_circle,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    row("PUT",    C + "/archived",                          archive,
        (401, 403, 403, 403, 403, 200, 200, 403), (401, 404, 403, 403, 403, 200, 200, 404)),
    row("PUT",    C + "/archived",                          restore,
        (401, 403, 403, 403, 403, 200, 200, 403), (401, 404, 403, 403, 403, 200, 200, 404)),
    row("GET",    C + "/sections",                          list_sections,
        (200, 200, 200, 200, 200, 200, 200, 200), (404, 404, 200, 200, 200, 200, 200, 404)),
    row("POST",   C + "/sections",                          add_section,
        (401, 403, 403, 403, 201, 201, 201, 403), (401, 404, 403, 403, 201, 201, 201, 404)),
    row("PUT",    C + "/sections/order",                    reorder_sections,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    row("PATCH",  C + "/sections/{section_id}",             rename_section,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    row("DELETE", C + "/sections/{section_id}",             delete_section,
        (401, 403, 403, 403, 204, 204, 204, 403), (401, 404, 403, 403, 204, 204, 204, 404)),
    row("GET",    C + "/application-form",                  get_form,
        (200, 200, 200, 200, 200, 200, 200, 200), (404, 404, 200, 200, 200, 200, 200, 404)),
    row("PUT",    C + "/application-form",                  set_form,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    # --- ways in
    # The institution admin acts as owner but is no member, so may join like anyone (the docs are silent).
    row("POST",   C + "/join",                              join_open,
        (401, 201, 409, 409, 409, 409, 201, 403), (401, 404, 409, 409, 409, 409, 201, 404)),
    row("POST",   C + "/join",                              join_by_application,
        (401, 403, 409, 409, 409, 409, 403, 403), (401, 404, 409, 409, 409, 409, 403, 404)),
    row("POST",   C + "/applications",                      apply,
        (401, 201, 409, 409, 409, 409, 201, 403), (401, 404, 409, 409, 409, 409, 201, 404)),
    row("GET",    C + "/applications/mine",                 my_applications,
        (401, 200, 200, 200, 200, 200, 200, 200), (401, 404, 200, 200, 200, 200, 200, 404)),
    row("GET",    C + "/applications",                      review_queue,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    row("POST",   C + "/applications/{application_id}/approve", approve,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    row("POST",   C + "/applications/{application_id}/reject", reject,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    # --- invites
    row("POST",   C + "/invites",                           invite_member,
        (401, 403, 403, 201, 201, 201, 201, 403), (401, 404, 403, 201, 201, 201, 201, 404)),
    row("POST",   C + "/invites",                           invite_teacher,
        (401, 403, 403, 403, 201, 201, 201, 403), (401, 404, 403, 403, 201, 201, 201, 404)),
    row("POST",   C + "/invites",                           invite_admin,
        (401, 403, 403, 403, 403, 201, 201, 403), (401, 404, 403, 403, 403, 201, 201, 404)),
    row("POST",   C + "/invites",                           invite_owner,
        (401, 403, 403, 403, 403, 403, 403, 403), (401, 404, 403, 403, 403, 403, 403, 404)),
    # Revoking follows the docs' "create and revoke invites" column: a teacher revokes member invites only, an admin
    # teacher and member invites. Listing (and the QR codes) is not in the docs: moderators see every invite.
    row("GET",    C + "/invites",                           list_invites,
        (401, 403, 403, 200, 200, 200, 200, 403), (401, 404, 403, 200, 200, 200, 200, 404)),
    row("DELETE", INVITE,                                   revoke_member_invite,
        (401, 403, 403, 200, 200, 200, 200, 403), (401, 404, 403, 200, 200, 200, 200, 404)),
    row("DELETE", INVITE,                                   revoke_admin_invite,
        (401, 403, 403, 403, 403, 200, 200, 403), (401, 404, 403, 403, 403, 200, 200, 404)),
    row("GET",    INVITE + "/qr.svg",                       invite_qr_svg,
        (401, 403, 403, 200, 200, 200, 200, 403), (401, 404, 403, 200, 200, 200, 200, 404)),
    row("GET",    INVITE + "/qr.png",                       invite_qr_png,
        (401, 403, 403, 200, 200, 200, 200, 403), (401, 404, 403, 200, 200, 200, 200, 404)),
    row("GET",    "/api/invites/{token}",                   preview_invite,
        (200, 200, 200, 200, 200, 200, 200, 200), (200, 200, 200, 200, 200, 200, 200, 200)),
    row("GET",    "/api/invites/{token}",                   preview_unknown_invite,
        (404, 404, 404, 404, 404, 404, 404, 404), (404, 404, 404, 404, 404, 404, 404, 404)),
    row("POST",   "/api/invites/{token}/accept",            accept_invite,
        (401, 201, 409, 409, 409, 409, 201, 403), (401, 201, 409, 409, 409, 409, 201, 403)),
    row("POST",   "/api/invites/{token}/accept",            accept_revoked_invite,
        (401, 410, 409, 409, 409, 409, 410, 403), (401, 410, 409, 409, 409, 409, 410, 403)),
    row("POST",   "/api/invites/{token}/accept",            accept_unknown_invite,
        (401, 404, 404, 404, 404, 404, 404, 404), (401, 404, 404, 404, 404, 404, 404, 404)),
    # --- members, roles, bans, ownership, the audit log
    row("GET",    C + "/members",                           member_list,
        (401, 403, 200, 200, 200, 200, 200, 403), (401, 404, 200, 200, 200, 200, 200, 404)),
    # The institution admin sees the circle but has no membership to edit: 404 not_a_member (the docs are silent).
    row("GET",    C + "/members/me",                        my_membership,
        (401, 403, 200, 200, 200, 200, 404, 403), (401, 404, 200, 200, 200, 200, 404, 404)),
    row("PATCH",  C + "/members/me",                        update_my_membership,
        (401, 403, 200, 200, 200, 200, 404, 403), (401, 404, 200, 200, 200, 200, 404, 404)),
    row("PATCH",  MEMBER,                                   make_member_teacher,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    row("PATCH",  MEMBER,                                   make_member_admin,
        (401, 403, 403, 403, 403, 200, 200, 403), (401, 404, 403, 403, 403, 200, 200, 404)),
    row("PATCH",  MEMBER,                                   make_admin_member,
        (401, 403, 403, 403, 403, 200, 200, 403), (401, 404, 403, 403, 403, 200, 200, 404)),
    row("PATCH",  MEMBER,                                   make_member_owner,
        (401, 403, 403, 403, 403, 403, 403, 403), (401, 404, 403, 403, 403, 403, 403, 404)),
    row("DELETE", MEMBER,                                   remove_member,
        (401, 403, 403, 403, 204, 204, 204, 403), (401, 404, 403, 403, 204, 204, 204, 404)),
    row("DELETE", MEMBER,                                   remove_teacher,
        (401, 403, 403, 403, 204, 204, 204, 403), (401, 404, 403, 403, 204, 204, 204, 404)),
    row("DELETE", MEMBER,                                   remove_admin,
        (401, 403, 403, 403, 403, 204, 204, 403), (401, 404, 403, 403, 403, 204, 204, 404)),
    row("DELETE", MEMBER,                                   remove_owner,
        (401, 403, 403, 403, 403, 409, 403, 403), (401, 404, 403, 403, 403, 409, 403, 404)),
    row("DELETE", MEMBER,                                   leave,
        (401, 403, 204, 204, 204, 409, 403, 403), (401, 404, 204, 204, 204, 409, 403, 404)),
    row("GET",    C + "/bans",                              list_bans,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    row("POST",   C + "/bans",                              ban_non_member,
        (401, 403, 403, 403, 201, 201, 201, 403), (401, 404, 403, 403, 201, 201, 201, 404)),
    row("POST",   C + "/bans",                              ban_admin,
        (401, 403, 403, 403, 403, 201, 201, 403), (401, 404, 403, 403, 403, 201, 201, 404)),
    row("POST",   C + "/bans",                              ban_owner,
        (401, 403, 403, 403, 403, 409, 403, 403), (401, 404, 403, 403, 403, 409, 403, 404)),
    row("DELETE", C + "/bans/{user_id}",                    unban,
        (401, 403, 403, 403, 204, 204, 204, 403), (401, 404, 403, 403, 204, 204, 204, 404)),
    row("POST",   C + "/transfer",                          transfer,
        (401, 403, 403, 403, 403, 200, 200, 403), (401, 404, 403, 403, 403, 200, 200, 404)),
    row("GET",    C + "/audit",                             audit_log,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    # --- the feed
    row("GET",    C + "/posts",                             read_feed,
        (200, 200, 200, 200, 200, 200, 200, 200), (404, 404, 200, 200, 200, 200, 200, 404)),
    row("POST",   C + "/posts",                             create_post,
        (401, 403, 201, 201, 201, 201, 201, 403), (401, 404, 201, 201, 201, 201, 201, 404)),
    row("GET",    P,                                        get_post,
        (200, 200, 200, 200, 200, 200, 200, 200), (404, 404, 200, 200, 200, 200, 200, 404)),
    row("PATCH",  P,                                        edit_own_post,
        (401, 403, 200, 200, 200, 200, 200, 403), (401, 404, 200, 200, 200, 200, 200, 404)),
    row("PATCH",  P,                                        edit_others_post,
        (401, 403, 403, 403, 403, 403, 403, 403), (401, 404, 403, 403, 403, 403, 403, 404)),
    # Deleting your own post or comment needs only sight of the circle, so a former member (here the non-member and
    # the banned user, as authors) may still delete theirs on a public circle; editing needs membership.
    row("DELETE", P,                                        delete_own_post,
        (401, 204, 204, 204, 204, 204, 204, 204), (401, 404, 204, 204, 204, 204, 204, 404)),
    row("DELETE", P,                                        delete_others_post,
        (401, 403, 403, 204, 204, 204, 204, 403), (401, 404, 403, 204, 204, 204, 204, 404)),
    row("PUT",    P + "/pinned",                            pin_post,
        (401, 403, 403, 200, 200, 200, 200, 403), (401, 404, 403, 200, 200, 200, 200, 404)),
    row("PUT",    P + "/reactions/{kind}",                  react,
        (401, 403, 200, 200, 200, 200, 200, 403), (401, 404, 200, 200, 200, 200, 200, 404)),
    row("DELETE", P + "/reactions/{kind}",                  unreact,
        (401, 403, 200, 200, 200, 200, 200, 403), (401, 404, 200, 200, 200, 200, 200, 404)),
    row("GET",    P + "/comments",                          list_comments,
        (200, 200, 200, 200, 200, 200, 200, 200), (404, 404, 200, 200, 200, 200, 200, 404)),
    row("POST",   P + "/comments",                          add_comment,
        (401, 403, 201, 201, 201, 201, 201, 403), (401, 404, 201, 201, 201, 201, 201, 404)),
    row("PATCH",  COMMENT,                                  edit_own_comment,
        (401, 403, 200, 200, 200, 200, 200, 403), (401, 404, 200, 200, 200, 200, 200, 404)),
    row("PATCH",  COMMENT,                                  edit_others_comment,
        (401, 403, 403, 403, 403, 403, 403, 403), (401, 404, 403, 403, 403, 403, 403, 404)),
    row("DELETE", COMMENT,                                  delete_own_comment,
        (401, 204, 204, 204, 204, 204, 204, 204), (401, 404, 204, 204, 204, 204, 204, 404)),
    row("DELETE", COMMENT,                                  delete_others_comment,
        (401, 403, 403, 204, 204, 204, 204, 403), (401, 404, 403, 204, 204, 204, 204, 404)),
    # --- the chat's history (the live chat runs over Socket.IO, outside this table)
    row("GET",    C + "/messages",                          chat_history,
        (401, 403, 200, 200, 200, 200, 200, 403), (401, 404, 200, 200, 200, 200, 200, 404)),
    # --- live classes: members see them; the circle's teachers, admins and owner (and the institution's admins)
    # schedule and prepare polls; the register is for the session's teachers and the circle's managers. Any circle
    # teacher may edit or cancel any class of the circle, not only their own. A class of a private circle does not
    # exist for its outsiders, exactly like one that does not exist at all.
    row("POST",   C + "/classes",                           schedule_class,
        (401, 403, 403, 201, 201, 201, 201, 403), (401, 404, 403, 201, 201, 201, 201, 404)),
    # Only the circle's teachers, admins and owner may teach a class: the institution admin, no member, must name one.
    row("POST",   C + "/classes",                           schedule_class_taught_by_me,
        (401, 403, 403, 201, 201, 201, 422, 403), (401, 404, 403, 201, 201, 201, 422, 404)),
    # As everywhere in an archived circle, its members learn it is read-only before whether their role would do.
    row("POST",   C + "/classes",                           schedule_class_archived,
        (401, 403, 409, 409, 409, 409, 409, 403), (401, 404, 409, 409, 409, 409, 409, 404)),
    row("GET",    C + "/classes",                           list_classes,
        (401, 403, 200, 200, 200, 200, 200, 403), (401, 404, 200, 200, 200, 200, 200, 404)),
    row("GET",    K,                                        get_class,
        (401, 403, 200, 200, 200, 200, 200, 403), (401, 404, 200, 200, 200, 200, 200, 404)),
    row("GET",    K,                                        get_unknown_class,
        (401, 404, 404, 404, 404, 404, 404, 404), (401, 404, 404, 404, 404, 404, 404, 404)),
    row("PATCH",  K,                                        edit_class,
        (401, 403, 403, 200, 200, 200, 200, 403), (401, 404, 403, 200, 200, 200, 200, 404)),
    row("PATCH",  K,                                        edit_own_class,
        (401, 403, 403, 200, 200, 200, 200, 403), (401, 404, 403, 200, 200, 200, 200, 404)),
    row("PATCH",  K,                                        edit_ended_class,
        (401, 403, 403, 409, 409, 409, 409, 403), (401, 404, 403, 409, 409, 409, 409, 404)),
    row("POST",   K + "/cancel",                            cancel_class,
        (401, 403, 403, 200, 200, 200, 200, 403), (401, 404, 403, 200, 200, 200, 200, 404)),
    row("POST",   K + "/cancel",                            cancel_ended_class,
        (401, 403, 403, 409, 409, 409, 409, 403), (401, 404, 403, 409, 409, 409, 409, 404)),
    row("GET",    K + "/messages",                          class_chat_history,
        (401, 403, 200, 200, 200, 200, 200, 403), (401, 404, 200, 200, 200, 200, 200, 404)),
    row("GET",    K + "/polls",                             list_polls,
        (401, 403, 200, 200, 200, 200, 200, 403), (401, 404, 200, 200, 200, 200, 200, 404)),
    row("POST",   K + "/polls",                             create_poll,
        (401, 403, 403, 201, 201, 201, 201, 403), (401, 404, 403, 201, 201, 201, 201, 404)),
    row("POST",   K + "/polls",                             create_poll_ended_class,
        (401, 403, 403, 409, 409, 409, 409, 403), (401, 404, 403, 409, 409, 409, 409, 404)),
    row("GET",    K + "/attendance",                        attendance_own_class,
        (401, 403, 403, 200, 200, 200, 200, 403), (401, 404, 403, 200, 200, 200, 200, 404)),
    row("GET",    K + "/attendance",                        attendance_other_class,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
    row("GET",    K + "/attendance.csv",                    attendance_csv_own_class,
        (401, 403, 403, 200, 200, 200, 200, 403), (401, 404, 403, 200, 200, 200, 200, 404)),
    row("GET",    K + "/attendance.csv",                    attendance_csv_other_class,
        (401, 403, 403, 403, 200, 200, 200, 403), (401, 404, 403, 403, 200, 200, 200, 404)),
]  # fmt: skip

# Every (method, path template) with a row here; test_access_matrix.py counts these as covered.
ROUTE_KEYS: frozenset[tuple[str, str]] = frozenset(case.key for case in CASES)


def _error(reply: Reply) -> str:
    if not isinstance(reply.body, dict) or not isinstance(reply.body.get("error"), dict):
        return ""
    error = reply.body["error"]
    return f"{error.get('code')}: {error.get('message')}"


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)))


def _is_circle_route(path: str) -> bool:
    return path == "/api/circles" or path.startswith(CIRCLE_PREFIXES)


# --- the static checks --------------------------------------------------------------------------------------------


def test_every_circle_route_has_a_row_here() -> None:
    """Each route under /api/circles, /api/me/circles, /api/invites/ and /api/classes/ has its rows in this table, and
    only those."""
    declared = {(r.method, r.path) for r in all_routes()}
    circle_routes = {key for key in declared if _is_circle_route(key[1])}
    problems = [f"{m} {p}: a circle route without a row in the circle matrix"
                for m, p in sorted(circle_routes - ROUTE_KEYS)]
    problems += [f"{m} {p}: a row in the circle matrix, but not a circle route the app declares"
                 for m, p in sorted(ROUTE_KEYS - circle_routes)]
    assert not problems, "\n".join(problems)


def test_the_table_keeps_its_own_rules() -> None:
    """The rules every row must follow, whatever the route: how each route's declared auth shows, and that a private
    circle never shows to those without standing (but through an invite token)."""
    auth = {(r.method, r.path): r.auth for r in all_routes()}
    non_member, banned = ROLES.index("non_member"), ROLES.index("banned")
    problems = []
    for case in CASES:
        declared = auth.get(case.key)
        for visibility in Visibility.PUBLIC, Visibility.PRIVATE:
            expect, where = case.expect(visibility), f"{case.name} ({visibility.value})"
            if declared == "public" and len(set(expect)) != 1:
                problems.append(f"{where}: public, yet the expected statuses differ by role: {expect}")
            if declared == "user" and expect[0] != 401:
                problems.append(f"{where}: needs a user, yet anonymous is expected to get {expect[0]}")
            if declared == "optional" and expect[0] != expect[non_member]:
                problems.append(f"{where}: anonymous should get what a signed-in non-member gets: {expect}")
            if 401 in expect[1:]:
                problems.append(f"{where}: a signed-in role is expected to get 401: {expect}")
        if case.path.startswith((C, K)):
            for role in (non_member, banned):
                if case.private[role] != 404:
                    problems.append(f"{case.name}: a private circle must not exist for the {ROLES[role]}: "
                                    f"{case.private}")
    assert not problems, "\n".join(problems)


# --- the matrix ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", [Visibility.PUBLIC, Visibility.PRIVATE], ids=["public", "private"])
async def test_circle_access_matrix(api: Api, client: Client, visibility: Visibility) -> None:
    world = await build_world(api, client, visibility)
    # What a circle that does not exist looks like: on a private circle, outsiders' 404s must be the very same.
    unknown = await api.call("GET", f"/api/circles/{UNKNOWN_CIRCLE}", world.people["non_member"])
    assert unknown.status == 404, unknown.body
    # And a class that does not exist: a private circle's classes must look the very same to them.
    unknown_class = await api.call("GET", f"/api/classes/{UNKNOWN_CLASS}", world.people["non_member"])
    assert unknown_class.status == 404, unknown_class.body
    failures: list[str] = []
    for case in CASES:
        pattern = _template_regex(case.path)
        for role, expected in zip(ROLES, case.expect(visibility), strict=True):
            cell = f"{case.name} as {role} on the {visibility.value} circle"
            try:
                call = await case.build(world, role)
            except Exception as exc:  # one broken setup must not hide the other cells
                failures.append(f"{cell}: setup failed: {exc!r}")
                continue
            if call.method != case.method or not pattern.fullmatch(call.path.partition("?")[0]):
                failures.append(f"{cell}: the factory built {call.method} {call.path}, not this route")
                continue
            reply = await api.call(call.method, call.path, world.caller(role), call.json)
            if reply.status != expected:
                failures.append(f"{cell}: expected {expected}, got {reply.status} {_error(reply)}".rstrip())
            elif expected < 300 and call.check is not None and (problem := call.check(reply.body)):
                failures.append(f"{cell}: {expected} as expected, but {problem}")
            elif (expected == 404 and visibility is Visibility.PRIVATE and role in OUTSIDERS
                  and case.path.startswith(C) and reply.body != unknown.body):
                failures.append(f"{cell}: 404, but not the same as for a circle that does not exist: "
                                f"{reply.body} vs {unknown.body}")
            elif (expected == 404 and visibility is Visibility.PRIVATE and role in OUTSIDERS
                  and case.path.startswith(K) and reply.body != unknown_class.body):
                failures.append(f"{cell}: 404, but not the same as for a class that does not exist: "
                                f"{reply.body} vs {unknown_class.body}")
    assert not failures, f"{len(failures)} cell(s) of the circle access matrix are wrong:\n" + "\n".join(failures)
