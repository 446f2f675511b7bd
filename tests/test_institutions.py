"""Institutions over real HTTP against the real app, on SQLite and PostgreSQL.

Site admins are made by the CLI (or a database update) in production; here by the same update. Everything else,
including setting up members and roles, goes through the API. After every refusal the state is read back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from server import keys
from server.db.models import User
from tests.helpers import Api, Person, Reply

Client = TestClient[web.Request, web.Application]


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def assert_error(reply: Reply, status: int, code: str, case: object = None) -> None:
    assert reply.status == status, (case, reply.status, reply.body)
    assert isinstance(reply.body, dict) and isinstance(reply.body.get("error"), dict), (case, reply.body)
    assert reply.body["error"]["code"] == code, (case, reply.body)
    assert isinstance(reply.body["error"].get("message"), str), (case, reply.body)


async def me(api: Api, person: Person) -> dict[str, Any]:
    reply = await api.call("GET", "/api/me", person)
    assert reply.status == 200, reply.body
    user: dict[str, Any] = reply.body["user"]
    return user


async def make_site_admin(client: Client, person: Person) -> None:
    async with client.app[keys.DB]() as db, db.begin():
        await db.execute(update(User).where(User.id == person.id).values(is_site_admin=True))


async def create(api: Api, admin: Person, name: str, owner: Person | None = None) -> int:
    body: dict[str, Any] = {"name": name}
    if owner is not None:
        body["owner_id"] = owner.id
    reply = await api.call("POST", "/api/institutions", admin, body)
    assert reply.status == 201, reply.body
    institution_id: int = reply.body["id"]
    return institution_id


async def add(api: Api, by: Person, institution_id: int, person: Person, role: str, *,
              by_email: bool = False) -> Reply:
    body: dict[str, Any] = {"email": person.email} if by_email else {"user_id": person.id}
    return await api.call("POST", f"/api/institutions/{institution_id}/members", by, {**body, "role": role})


async def added(api: Api, by: Person, institution_id: int, person: Person, role: str) -> None:
    reply = await add(api, by, institution_id, person, role)
    assert reply.status == 201, reply.body


async def roles(api: Api, who: Person, institution_id: int) -> dict[int, str]:
    """The member list as {user id: role}, read as ``who``."""
    reply = await api.call("GET", f"/api/institutions/{institution_id}/members", who)
    assert reply.status == 200, reply.body
    return {member["user"]["id"]: member["role"] for member in reply.body["members"]}


async def mine(api: Api, who: Person) -> dict[int, tuple[str, str | None]]:
    """GET /api/institutions as {id: (name, my_role)}."""
    reply = await api.call("GET", "/api/institutions", who)
    assert reply.status == 200, reply.body
    return {inst["id"]: (inst["name"], inst["my_role"]) for inst in reply.body["institutions"]}


async def name_of(api: Api, who: Person, institution_id: int) -> str:
    reply = await api.call("GET", f"/api/institutions/{institution_id}", who)
    assert reply.status == 200, reply.body
    name: str = reply.body["name"]
    return name


async def verified(api: Api, who: Person, user: Person) -> bool:
    reply = await api.call("GET", f"/api/users/{user.id}", who)
    assert reply.status == 200, reply.body
    flag: bool = reply.body["verified"]
    return flag


@pytest.fixture
async def site_admin(api: Api, client: Client) -> Person:
    person = await api.register("Site Admin")
    await make_site_admin(client, person)
    assert (await me(api, person))["is_site_admin"] is True
    return person


@dataclass
class School:
    id: int
    owner: Person
    admin: Person
    teacher: Person
    staff: Person
    outsider: Person

    def expected_roles(self) -> dict[int, str]:
        return {self.owner.id: "owner", self.admin.id: "admin", self.teacher.id: "teacher", self.staff.id: "staff"}


@pytest.fixture
async def school(api: Api, site_admin: Person) -> School:
    """Hilltop School: created by the site admin for its owner, who then appoints one of each other role."""
    owner, admin, teacher, staff, outsider = [
        await api.register(name) for name in ("Olivia Owner", "Adam Admin", "Tina Teacher", "Sam Staff", "Nora Out")
    ]
    institution_id = await create(api, site_admin, "Hilltop School", owner)
    for person, role in ((admin, "admin"), (teacher, "teacher"), (staff, "staff")):
        await added(api, owner, institution_id, person, role)
    s = School(institution_id, owner, admin, teacher, staff, outsider)
    assert await roles(api, owner, institution_id) == s.expected_roles()
    return s


# ---------------------------------------------------------------------------------------------------------------
# Creating and listing


async def test_site_admin_creates_an_institution_for_another_owner(api: Api, site_admin: Person) -> None:
    owner = await api.register("Olivia")
    reply = await api.call("POST", "/api/institutions", site_admin, {"name": "Hilltop School", "owner_id": owner.id})
    assert reply.status == 201, reply.body
    assert reply.body["name"] == "Hilltop School"
    assert reply.body["my_role"] is None  # the site admin made it but is not a member
    institution_id = reply.body["id"]
    assert await mine(api, owner) == {institution_id: ("Hilltop School", "owner")}
    assert await roles(api, owner, institution_id) == {owner.id: "owner"}
    assert await name_of(api, owner, institution_id) == "Hilltop School"


async def test_site_admin_without_owner_id_becomes_the_owner(api: Api, site_admin: Person) -> None:
    reply = await api.call("POST", "/api/institutions", site_admin, {"name": "Own School"})
    assert reply.status == 201, reply.body
    assert reply.body["my_role"] == "owner"
    assert await roles(api, site_admin, reply.body["id"]) == {site_admin.id: "owner"}


async def test_only_site_admins_create_institutions(api: Api, school: School, site_admin: Person) -> None:
    before = await mine(api, site_admin)
    for who in (school.outsider, school.owner, school.admin):
        reply = await api.call("POST", "/api/institutions", who, {"name": "Rogue School"})
        assert_error(reply, 403, "forbidden", who.name)
        reply = await api.call("POST", "/api/institutions", who, {"name": "Rogue School", "owner_id": who.id})
        assert_error(reply, 403, "forbidden", who.name)
    reply = await api.call("POST", "/api/institutions", None, {"name": "Anonymous School"})
    assert reply.status == 401
    assert await mine(api, site_admin) == before  # site admins see every institution: none was added


async def test_create_with_an_unknown_owner_is_refused(api: Api, site_admin: Person) -> None:
    reply = await api.call("POST", "/api/institutions", site_admin, {"name": "Ghost School", "owner_id": 99999})
    assert_error(reply, 404, "unknown_user")
    assert await mine(api, site_admin) == {}


async def test_list_shows_only_my_institutions_with_my_role(api: Api, site_admin: Person) -> None:
    olivia, tina, nora = await api.register("Olivia"), await api.register("Tina"), await api.register("Nora")
    hilltop = await create(api, site_admin, "Hilltop", olivia)
    riverside = await create(api, site_admin, "Riverside", nora)
    lakeside = await create(api, site_admin, "Lakeside", nora)
    await added(api, olivia, hilltop, tina, "teacher")
    await added(api, nora, riverside, tina, "staff")

    assert await mine(api, olivia) == {hilltop: ("Hilltop", "owner")}
    assert await mine(api, tina) == {hilltop: ("Hilltop", "teacher"), riverside: ("Riverside", "staff")}
    assert await mine(api, nora) == {riverside: ("Riverside", "owner"), lakeside: ("Lakeside", "owner")}
    # Site admins see every institution, with their own role (none here).
    assert await mine(api, site_admin) == {
        hilltop: ("Hilltop", None), riverside: ("Riverside", None), lakeside: ("Lakeside", None),
    }
    # And one that is not mine cannot be read, as if it did not exist.
    for path in (f"/api/institutions/{lakeside}", f"/api/institutions/{lakeside}/members"):
        assert_error(await api.call("GET", path, olivia), 404, "not_found", path)


# ---------------------------------------------------------------------------------------------------------------
# Renaming


async def test_rename_by_role(api: Api, school: School, site_admin: Person) -> None:
    path = f"/api/institutions/{school.id}"
    for who in (school.teacher, school.staff):
        reply = await api.call("PATCH", path, who, {"name": "Renamed"})
        assert_error(reply, 403, "forbidden", who.name)
        assert await name_of(api, school.owner, school.id) == "Hilltop School"
    for who, name in ((school.owner, "Hilltop Academy"), (school.admin, "Hilltop College"),
                      (site_admin, "Hilltop University")):
        reply = await api.call("PATCH", path, who, {"name": name})
        assert reply.status == 200, (who.name, reply.body)
        assert reply.body["name"] == name
        assert await name_of(api, school.teacher, school.id) == name
    assert await mine(api, school.staff) == {school.id: ("Hilltop University", "staff")}


async def test_a_non_member_cannot_tell_an_institution_exists(api: Api, school: School) -> None:
    outsider = school.outsider
    reply = await api.call("PATCH", f"/api/institutions/{school.id}", outsider, {"name": "Renamed"})
    assert_error(reply, 404, "not_found")
    missing = await api.call("PATCH", "/api/institutions/99999", outsider, {"name": "Renamed"})
    assert (reply.status, reply.body) == (missing.status, missing.body)  # the same answer as for no institution
    reply = await api.call("GET", f"/api/institutions/{school.id}", outsider)
    missing = await api.call("GET", "/api/institutions/99999", outsider)
    assert_error(reply, 404, "not_found")
    assert (reply.status, reply.body) == (missing.status, missing.body)
    assert await name_of(api, school.owner, school.id) == "Hilltop School"


# ---------------------------------------------------------------------------------------------------------------
# Adding members


async def test_add_member_by_email_and_by_user_id(api: Api, school: School) -> None:
    by_email, by_id = await api.register("By Email"), await api.register("By Id")
    upper = Person(by_email.id, by_email.email.upper(), by_email.token, by_email.name)
    reply = await add(api, school.owner, school.id, upper, "teacher", by_email=True)
    assert reply.status == 201, reply.body
    assert (reply.body["user"]["id"], reply.body["role"]) == (by_email.id, "teacher")
    reply = await add(api, school.admin, school.id, by_id, "staff")
    assert reply.status == 201, reply.body
    assert (reply.body["user"]["id"], reply.body["role"]) == (by_id.id, "staff")
    assert await roles(api, school.owner, school.id) == {
        **school.expected_roles(), by_email.id: "teacher", by_id.id: "staff",
    }
    assert await mine(api, by_email) == {school.id: ("Hilltop School", "teacher")}


async def test_add_member_needs_exactly_one_of_user_id_and_email(api: Api, school: School) -> None:
    newcomer = await api.register("Newcomer")
    path = f"/api/institutions/{school.id}/members"
    for body in ({"user_id": newcomer.id, "email": newcomer.email, "role": "teacher"}, {"role": "teacher"}):
        reply = await api.call("POST", path, school.owner, body)
        assert_error(reply, 422, "invalid_input", body)
        problems = [item["problem"] for item in reply.body["error"]["details"]]
        assert any("exactly one of user_id and email" in problem for problem in problems), reply.body
    assert await roles(api, school.owner, school.id) == school.expected_roles()


async def test_adding_an_existing_member_is_a_409(api: Api, school: School) -> None:
    for person in (school.teacher, school.admin):
        for role in ("staff", "teacher", "admin"):
            reply = await add(api, school.owner, school.id, person, role)
            assert_error(reply, 409, "already_member", (person.name, role))
    reply = await add(api, school.admin, school.id, school.staff, "teacher", by_email=True)
    assert_error(reply, 409, "already_member")
    assert await roles(api, school.owner, school.id) == school.expected_roles()


async def test_admins_add_teachers_and_staff_owners_add_any_role(api: Api, school: School) -> None:
    teacher, staff, admin, owner = [await api.register() for _ in range(4)]
    await added(api, school.admin, school.id, teacher, "teacher")
    await added(api, school.admin, school.id, staff, "staff")
    for person, role in ((admin, "admin"), (owner, "owner"), (school.admin, "owner")):
        reply = await add(api, school.admin, school.id, person, role)
        assert_error(reply, 403, "forbidden", role)
    expected = {**school.expected_roles(), teacher.id: "teacher", staff.id: "staff"}
    assert await roles(api, school.owner, school.id) == expected
    await added(api, school.owner, school.id, admin, "admin")
    await added(api, school.owner, school.id, owner, "owner")
    assert await roles(api, school.owner, school.id) == {**expected, admin.id: "admin", owner.id: "owner"}
    assert await mine(api, owner) == {school.id: ("Hilltop School", "owner")}


async def test_teachers_staff_and_outsiders_cannot_add_members(api: Api, school: School) -> None:
    newcomer = await api.register("Newcomer")
    for who in (school.teacher, school.staff):
        reply = await add(api, who, school.id, newcomer, "staff")
        assert_error(reply, 403, "forbidden", who.name)
    reply = await add(api, school.outsider, school.id, newcomer, "staff")
    assert_error(reply, 404, "not_found")
    reply = await add(api, school.outsider, school.id, school.outsider, "owner")
    assert_error(reply, 404, "not_found")
    assert await roles(api, school.owner, school.id) == school.expected_roles()
    assert await mine(api, newcomer) == {}


async def test_adding_an_unknown_user_is_a_404(api: Api, school: School) -> None:
    path = f"/api/institutions/{school.id}/members"
    for body in ({"email": "nobody@example.org", "role": "teacher"}, {"user_id": 99999, "role": "teacher"}):
        reply = await api.call("POST", path, school.owner, body)
        assert_error(reply, 404, "unknown_user", body)
    reply = await api.call("PATCH", f"{path}/99999", school.owner, {"role": "staff"})
    assert_error(reply, 404, "unknown_user")
    assert await roles(api, school.owner, school.id) == school.expected_roles()


# ---------------------------------------------------------------------------------------------------------------
# Changing roles, removing, leaving


async def test_change_role(api: Api, school: School) -> None:
    path = f"/api/institutions/{school.id}/members"
    reply = await api.call("PATCH", f"{path}/{school.teacher.id}", school.owner, {"role": "staff"})
    assert reply.status == 200, reply.body
    assert (reply.body["user"]["id"], reply.body["role"]) == (school.teacher.id, "staff")
    reply = await api.call("PATCH", f"{path}/{school.staff.id}", school.admin, {"role": "teacher"})
    assert reply.status == 200, reply.body
    reply = await api.call("PATCH", f"{path}/{school.admin.id}", school.owner, {"role": "owner"})
    assert reply.status == 200, reply.body
    assert await roles(api, school.owner, school.id) == {
        school.owner.id: "owner", school.admin.id: "owner", school.teacher.id: "staff", school.staff.id: "teacher",
    }
    assert await mine(api, school.admin) == {school.id: ("Hilltop School", "owner")}


async def test_role_changes_beyond_ones_rank_are_refused(api: Api, school: School) -> None:
    path = f"/api/institutions/{school.id}/members"
    for who, target, role in (
        (school.admin, school.teacher, "admin"),  # admins may not hand out admin
        (school.admin, school.teacher, "owner"),
        (school.admin, school.owner, "staff"),  # nor touch owners
        (school.admin, school.admin, "owner"),  # nor promote themselves
        (school.teacher, school.staff, "teacher"),  # teachers manage nobody
        (school.staff, school.staff, "admin"),
    ):
        reply = await api.call("PATCH", f"{path}/{target.id}", who, {"role": role})
        assert_error(reply, 403, "forbidden", (who.name, target.name, role))
    reply = await api.call("PATCH", f"{path}/{school.teacher.id}", school.outsider, {"role": "staff"})
    assert_error(reply, 404, "not_found")
    reply = await api.call("PATCH", f"{path}/{school.outsider.id}", school.owner, {"role": "staff"})
    assert_error(reply, 404, "not_a_member")
    assert await roles(api, school.owner, school.id) == school.expected_roles()


async def test_remove_member(api: Api, school: School) -> None:
    path = f"/api/institutions/{school.id}/members"
    assert (await api.call("DELETE", f"{path}/{school.staff.id}", school.owner)).status == 204
    assert (await api.call("DELETE", f"{path}/{school.teacher.id}", school.admin)).status == 204
    expected = {school.owner.id: "owner", school.admin.id: "admin"}
    assert await roles(api, school.owner, school.id) == expected
    assert await mine(api, school.staff) == {}
    assert_error(await api.call("GET", f"/api/institutions/{school.id}", school.staff), 404, "not_found")
    # Removing someone who is not (or no longer) a member.
    reply = await api.call("DELETE", f"{path}/{school.staff.id}", school.owner)
    assert_error(reply, 404, "not_a_member")
    assert await roles(api, school.owner, school.id) == expected


async def test_removals_beyond_ones_rank_are_refused(api: Api, school: School) -> None:
    path = f"/api/institutions/{school.id}/members"
    for who, target in ((school.admin, school.owner), (school.teacher, school.staff), (school.staff, school.teacher),
                        (school.teacher, school.admin)):
        reply = await api.call("DELETE", f"{path}/{target.id}", who)
        assert_error(reply, 403, "forbidden", (who.name, target.name))
    reply = await api.call("DELETE", f"{path}/{school.teacher.id}", school.outsider)
    assert_error(reply, 404, "not_found")
    assert await roles(api, school.owner, school.id) == school.expected_roles()


async def test_members_may_leave(api: Api, school: School) -> None:
    path = f"/api/institutions/{school.id}/members"
    for person in (school.teacher, school.staff, school.admin):
        reply = await api.call("DELETE", f"{path}/{person.id}", person)
        assert reply.status == 204, (person.name, reply.body)
        assert await mine(api, person) == {}
    assert await roles(api, school.owner, school.id) == {school.owner.id: "owner"}


async def test_the_last_owner_cannot_leave_or_be_demoted(api: Api, school: School, site_admin: Person) -> None:
    owner_path = f"/api/institutions/{school.id}/members/{school.owner.id}"
    assert_error(await api.call("DELETE", owner_path, school.owner), 409, "last_owner")
    for role in ("admin", "teacher", "staff"):
        assert_error(await api.call("PATCH", owner_path, school.owner, {"role": role}), 409, "last_owner", role)
    # Not even a site admin may leave an institution without an owner.
    assert_error(await api.call("DELETE", owner_path, site_admin), 409, "last_owner")
    assert_error(await api.call("PATCH", owner_path, site_admin, {"role": "admin"}), 409, "last_owner")
    assert await roles(api, school.owner, school.id) == school.expected_roles()

    # Once there is a second owner, the first may step down, or leave; the second is then the last one.
    co_owner = await api.register("Co-owner")
    await added(api, school.owner, school.id, co_owner, "owner")
    reply = await api.call("PATCH", owner_path, school.owner, {"role": "admin"})
    assert reply.status == 200, reply.body
    reply = await api.call("PATCH", owner_path, co_owner, {"role": "owner"})
    assert reply.status == 200, reply.body
    assert (await api.call("DELETE", owner_path, school.owner)).status == 204
    assert await mine(api, school.owner) == {}
    assert await roles(api, co_owner, school.id) == {
        co_owner.id: "owner", school.admin.id: "admin", school.teacher.id: "teacher", school.staff.id: "staff",
    }
    co_owner_path = f"/api/institutions/{school.id}/members/{co_owner.id}"
    assert_error(await api.call("DELETE", co_owner_path, co_owner), 409, "last_owner")
    assert_error(await api.call("PATCH", co_owner_path, co_owner, {"role": "staff"}), 409, "last_owner")
    assert await mine(api, co_owner) == {school.id: ("Hilltop School", "owner")}


# ---------------------------------------------------------------------------------------------------------------
# The verified flag


async def test_institution_admins_and_site_admins_verify(api: Api, school: School, site_admin: Person) -> None:
    for who, target in ((school.admin, school.teacher), (school.owner, school.staff), (site_admin, school.outsider)):
        reply = await api.call("PUT", f"/api/users/{target.id}/verified", who, {"verified": True})
        assert reply.status == 200, (who.name, reply.body)
        assert reply.body["verified"] is True
        assert await verified(api, school.outsider, target) is True
        assert (await me(api, target))["verified"] is True
    reply = await api.call("PUT", f"/api/users/{school.teacher.id}/verified", school.admin, {"verified": False})
    assert reply.status == 200, reply.body
    assert await verified(api, school.outsider, school.teacher) is False
    reply = await api.call("PUT", "/api/users/99999/verified", site_admin, {"verified": True})
    assert_error(reply, 404, "not_found")


async def test_verify_refusals(api: Api, school: School) -> None:
    for who, target in (
        (school.admin, school.outsider),  # institution admins: only members of their institution
        (school.owner, school.outsider),
        (school.outsider, school.teacher),  # plain users: nobody
        (school.outsider, school.outsider),
        (school.teacher, school.staff),  # teachers and staff are not institution admins
        (school.staff, school.teacher),
        (school.teacher, school.teacher),
        (school.admin, school.admin),  # an institution admin cannot verify themselves
        (school.owner, school.owner),
    ):
        reply = await api.call("PUT", f"/api/users/{target.id}/verified", who, {"verified": True})
        assert_error(reply, 403, "forbidden", (who.name, target.name))
    for person in (school.teacher, school.staff, school.outsider, school.admin, school.owner):
        assert await verified(api, school.outsider, person) is False
    # The right follows the membership: once the staff member has left, the admin may no longer verify them.
    reply = await api.call("DELETE", f"/api/institutions/{school.id}/members/{school.staff.id}", school.staff)
    assert reply.status == 204, reply.body
    reply = await api.call("PUT", f"/api/users/{school.staff.id}/verified", school.admin, {"verified": True})
    assert_error(reply, 403, "forbidden")
    assert await verified(api, school.owner, school.staff) is False


# ---------------------------------------------------------------------------------------------------------------
# The site-admin flag


async def test_only_site_admins_grant_site_admin(api: Api, school: School) -> None:
    for who, target in ((school.outsider, school.outsider), (school.owner, school.owner),
                        (school.owner, school.outsider), (school.admin, school.teacher)):
        reply = await api.call("PUT", f"/api/users/{target.id}/site-admin", who, {"site_admin": True})
        assert_error(reply, 403, "forbidden", (who.name, target.name))
    for person in (school.outsider, school.owner, school.teacher):
        assert (await me(api, person))["is_site_admin"] is False
        reply = await api.call("POST", "/api/institutions", person, {"name": "Rogue School"})
        assert_error(reply, 403, "forbidden", person.name)


async def test_site_admin_grants_and_revokes_site_admin(api: Api, site_admin: Person) -> None:
    nora = await api.register("Nora")
    reply = await api.call("PUT", f"/api/users/{nora.id}/site-admin", site_admin, {"site_admin": True})
    assert reply.status == 200, reply.body
    assert reply.body["is_site_admin"] is True
    assert (await me(api, nora))["is_site_admin"] is True
    first = await api.call("POST", "/api/institutions", nora, {"name": "Nora's School"})
    assert first.status == 201, first.body

    reply = await api.call("PUT", f"/api/users/{nora.id}/site-admin", site_admin, {"site_admin": False})
    assert reply.status == 200, reply.body
    assert (await me(api, nora))["is_site_admin"] is False
    reply = await api.call("POST", "/api/institutions", nora, {"name": "Another School"})
    assert_error(reply, 403, "forbidden")
    assert await mine(api, site_admin) == {first.body["id"]: ("Nora's School", None)}


async def test_a_site_admin_cannot_remove_their_own_flag(api: Api, site_admin: Person) -> None:
    reply = await api.call("PUT", f"/api/users/{site_admin.id}/site-admin", site_admin, {"site_admin": False})
    assert_error(reply, 409, "self_demotion")
    assert (await me(api, site_admin))["is_site_admin"] is True
    reply = await api.call("POST", "/api/institutions", site_admin, {"name": "Still Allowed"})
    assert reply.status == 201, reply.body
