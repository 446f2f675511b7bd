"""Bad input gets a clear 4xx JSON error ``{"error": {"code", "message", ...}}`` and changes nothing.

Every refusal is followed by a read-back over the API showing that the state is what it was before.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy import update

from server import keys
from server.app import create_app
from server.db.models import User
from tests import services
from tests.conftest import Database, make_settings
from tests.helpers import PASSWORD, Api, Person, Reply

SMALL_BODY_LIMIT = 2048


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def assert_error(reply: Reply, status: int, code: str | None = None, case: object = None) -> None:
    """A JSON error body of the documented shape, with the expected status and (if given) machine code.

    ``case`` names the input being tried, for the failure message.
    """
    assert reply.status == status, (case, reply.status, reply.body)
    assert reply.headers.get("Content-Type", "").startswith("application/json"), (case, reply.headers)
    assert isinstance(reply.body, dict) and set(reply.body) == {"error"}, (case, reply.body)
    error = reply.body["error"]
    assert isinstance(error, dict), (case, reply.body)
    assert isinstance(error.get("code"), str) and error["code"], (case, reply.body)
    assert isinstance(error.get("message"), str) and error["message"], (case, reply.body)
    if code is not None:
        assert error["code"] == code, (case, reply.body)


def problem_fields(reply: Reply) -> set[str | None]:
    """The field names a 422 ``invalid_input`` reply says are wrong."""
    details = reply.body["error"].get("details")
    assert isinstance(details, list) and details, reply.body
    return {item["field"] for item in details}


def registration(email: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"email": email, "password": PASSWORD, "display_name": "Mei"}
    body.update(overrides)
    return body


async def newest_user_id(api: Api) -> int:
    """Register a throwaway account and return its id: two probes one apart mean no account was made in between."""
    return (await api.register()).id


async def assert_not_registered(api: Api, email: str) -> None:
    """Nobody holds ``email``: signing in with it fails, and it can still be registered."""
    reply = await api.call("POST", "/api/auth/token", json={"email": email, "password": PASSWORD})
    assert_error(reply, 401, "wrong_credentials")
    reply = await api.call("POST", "/api/auth/register", json=registration(email))
    assert reply.status == 201, reply.body


async def me(api: Api, person: Person) -> dict[str, Any]:
    reply = await api.call("GET", "/api/me", person)
    assert reply.status == 200, reply.body
    user: dict[str, Any] = reply.body["user"]
    return user


async def make_site_admin(client: TestClient[web.Request, web.Application], person: Person) -> None:
    """Site admins are made by the CLI in production; here, by the same database update."""
    async with client.app[keys.DB]() as db, db.begin():
        await db.execute(update(User).where(User.id == person.id).values(is_site_admin=True))


# ---------------------------------------------------------------------------------------------------------------
# Registration: missing, wrongly typed, unknown and invalid fields


async def test_register_with_a_missing_field_is_refused(api: Api) -> None:
    before = await newest_user_id(api)
    for missing in ("email", "password", "display_name"):
        body = registration("missing@example.org")
        del body[missing]
        reply = await api.call("POST", "/api/auth/register", json=body)
        assert_error(reply, 422, "invalid_input", missing)
        assert missing in problem_fields(reply), missing
    reply = await api.call("POST", "/api/auth/register", json={})
    assert_error(reply, 422, "invalid_input")
    assert problem_fields(reply) == {"email", "password", "display_name"}
    assert await newest_user_id(api) == before + 1
    await assert_not_registered(api, "missing@example.org")


WRONG_TYPES: list[tuple[str, Any]] = [
    ("password", 12345678),
    ("password", True),
    ("password", None),
    ("password", ["correct horse battery"]),
    ("display_name", ["Mei"]),
    ("display_name", {"first": "Mei"}),
    ("display_name", 42),
    ("display_name", None),
    ("email", 42),
    ("email", None),
    ("email", ["typed@example.org"]),
]


async def test_register_with_a_wrongly_typed_field_is_refused(api: Api) -> None:
    before = await newest_user_id(api)
    for field, value in WRONG_TYPES:
        reply = await api.call("POST", "/api/auth/register", json={**registration("typed@example.org"), field: value})
        assert_error(reply, 422, "invalid_input", (field, value))
        assert field in problem_fields(reply), (field, value)
    assert await newest_user_id(api) == before + 1
    await assert_not_registered(api, "typed@example.org")


async def test_register_with_an_unknown_field_is_refused(api: Api) -> None:
    for extra in ({"is_site_admin": True}, {"verified": True}, {"id": 1}, {"role": "owner"}):
        reply = await api.call("POST", "/api/auth/register", json={**registration("extra@example.org"), **extra})
        assert_error(reply, 422, "invalid_input", extra)
        assert set(extra) <= problem_fields(reply), extra
    await assert_not_registered(api, "extra@example.org")
    user = await me(api, await api.sign_in("extra@example.org"))
    assert user["is_site_admin"] is False and user["verified"] is False


INVALID_EMAILS = [
    "not-an-email", "missing-at.example.org", "a@", "@example.org", "two@@example.org", "a b@example.org",
    "dot@example", "", " ", "x" * 250 + "@example.org",
]


async def test_register_with_an_invalid_email_is_refused(api: Api) -> None:
    before = await newest_user_id(api)
    for email in INVALID_EMAILS:
        reply = await api.call("POST", "/api/auth/register", json=registration(email))
        assert_error(reply, 422, "invalid_input", email)
        assert "email" in problem_fields(reply), email
    assert await newest_user_id(api) == before + 1


async def test_register_with_a_short_password_is_refused(api: Api) -> None:
    for password in ("", "short", "1234567", "seven77"):
        reply = await api.call("POST", "/api/auth/register",
                               json=registration("short@example.org", password=password))
        assert_error(reply, 422, "invalid_input", password)
        assert "password" in problem_fields(reply), password
    await assert_not_registered(api, "short@example.org")
    # The control: eight characters is long enough.
    reply = await api.call("POST", "/api/auth/register", json=registration("eight@example.org", password="12345678"))
    assert reply.status == 201, reply.body
    await api.sign_in("eight@example.org", "12345678")


async def test_duplicate_email_is_refused_whatever_its_case(api: Api) -> None:
    reply = await api.call("POST", "/api/auth/register", json=registration("Ada@Example.org", display_name="Ada"))
    assert reply.status == 201, reply.body
    for again in ("Ada@Example.org", "ada@example.org", "ADA@EXAMPLE.ORG", "aDa@Example.Org"):
        reply = await api.call("POST", "/api/auth/register",
                               json=registration(again, password="another long password", display_name="Impostor"))
        assert_error(reply, 409, "email_taken", again)
        assert "Set-Cookie" not in reply.headers, again
        # The first account is untouched: the second password does not sign in to it.
        wrong = await api.call("POST", "/api/auth/token", json={"email": again, "password": "another long password"})
        assert_error(wrong, 401, "wrong_credentials", again)
    person = await api.sign_in("ada@example.org")
    user = await me(api, person)
    assert (user["display_name"], user["email"]) == ("Ada", "Ada@example.org")


# ---------------------------------------------------------------------------------------------------------------
# Signing in


async def test_wrong_password_and_unknown_email_get_the_same_401(api: Api) -> None:
    person = await api.register()
    for path in ("/api/auth/token", "/api/auth/login"):
        wrong = await api.call("POST", path, json={"email": person.email, "password": "not the password"})
        unknown = await api.call("POST", path, json={"email": "nobody@example.org", "password": "not the password"})
        assert_error(wrong, 401, "wrong_credentials", path)
        assert_error(unknown, 401, "wrong_credentials", path)
        assert wrong.body == unknown.body  # nothing tells an attacker which of the two was wrong
        for reply in (wrong, unknown):
            assert "Set-Cookie" not in reply.headers, path
    await api.sign_in(person.email)  # the account itself still works


async def test_sign_in_with_bad_input_is_refused(api: Api) -> None:
    person = await api.register()
    for body in (
        {"email": person.email},
        {"password": PASSWORD},
        {"email": person.email, "password": ""},
        {"email": person.email, "password": ["correct horse battery"]},
        {"email": [person.email], "password": PASSWORD},
        {"email": "not-an-email", "password": PASSWORD},
        {"email": person.email, "password": PASSWORD, "remember_me": True},
    ):
        reply = await api.call("POST", "/api/auth/token", json=body)
        assert_error(reply, 422, "invalid_input", body)
        assert "token" not in reply.body, body


# ---------------------------------------------------------------------------------------------------------------
# Bodies that are not JSON objects

JSON_HEADERS = {"Content-Type": "application/json"}
MALFORMED = [
    b"{", b'{"email": "a@example.org",}', b"{'email': 'a@example.org'}", b"", b"not json", b"\xff\xfe\x00",
    b'{"email": "a@example.org"} trailing', b"{\"display_name\": \"\xc3\x28\"}",
]
NOT_AN_OBJECT = [b"[]", b'[{"display_name": "X"}]', b'"X"', b"42", b"null", b"true"]


async def test_malformed_json_is_a_400(api: Api) -> None:
    person = await api.register("Unchanged")
    before_user, before_me = await newest_user_id(api), await me(api, person)
    for data in MALFORMED:
        reply = await api.call("POST", "/api/auth/register", data=data, headers=JSON_HEADERS)
        assert_error(reply, 400, "malformed_json", data)
        reply = await api.call("PATCH", "/api/me", person, data=data, headers=JSON_HEADERS)
        assert_error(reply, 400, "malformed_json", data)
    assert await newest_user_id(api) == before_user + 1
    assert await me(api, person) == before_me


async def test_json_that_is_not_an_object_is_a_400(api: Api) -> None:
    person = await api.register("Unchanged")
    before_user, before_me = await newest_user_id(api), await me(api, person)
    for data in NOT_AN_OBJECT:
        reply = await api.call("POST", "/api/auth/register", data=data, headers=JSON_HEADERS)
        assert_error(reply, 400, "malformed_json", data)
        reply = await api.call("PATCH", "/api/me", person, data=data, headers=JSON_HEADERS)
        assert_error(reply, 400, "malformed_json", data)
    assert await newest_user_id(api) == before_user + 1
    assert await me(api, person) == before_me


@pytest.mark.parametrize("data", [
    b"[" * 50_000 + b"]" * 50_000,
    b'{"email": "deep@example.org", "password": "correct horse battery", "display_name": '
    + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b'{"email": "deep@example.org", "password": ' + b"1" * 5000 + b', "display_name": "Mei"}',
], ids=["nested-arrays", "nested-in-a-field", "5000-digit-number"])
async def test_json_too_deep_or_too_big_to_decode_is_a_4xx_not_a_crash(api: Api, data: bytes) -> None:
    """Valid JSON that Python's decoder gives up on (recursion depth, the int digit limit) is the client's fault."""
    reply = await api.call("POST", "/api/auth/register", data=data, headers=JSON_HEADERS)
    assert 400 <= reply.status < 500, (reply.status, reply.body)
    assert_error(reply, reply.status)
    await assert_not_registered(api, "deep@example.org")


# ---------------------------------------------------------------------------------------------------------------
# Oversize bodies


@pytest.fixture
async def small_api(aiohttp_client: Any, database: Database, tmp_path: Path) -> Api:
    """The real app with a 2 KiB body limit."""
    settings = make_settings(database, tmp_path, max_body_bytes=SMALL_BODY_LIMIT)
    return Api(await aiohttp_client(create_app(settings)))


def padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON padded with trailing whitespace to exactly ``size`` bytes: valid, and would be accepted."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


async def chunks(data: bytes, size: int = 512) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def send_chunked(api: Api, method: str, path: str, data: bytes, who: Person | None = None) -> Reply:
    """Send ``data`` with ``Transfer-Encoding: chunked`` and no Content-Length (an async generator body)."""
    headers = {**JSON_HEADERS, **(who.headers if who else {})}
    async with api.client.request(method, path, data=chunks(data), headers=headers) as response:
        assert "Content-Length" not in response.request_info.headers
        assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
        text = await response.text()
        body = json.loads(text) if text else None
        return Reply(response.status, body, dict(response.headers))


OVERSIZES = [SMALL_BODY_LIMIT + 1, 4 * SMALL_BODY_LIMIT, 64 * SMALL_BODY_LIMIT]


async def test_a_body_at_the_limit_is_accepted(small_api: Api) -> None:
    """The control for the oversize tests: the same padded bodies, at the limit, go through both ways."""
    data = padded(registration("limit@example.org"), SMALL_BODY_LIMIT)
    reply = await small_api.call("POST", "/api/auth/register", data=data, headers=JSON_HEADERS)
    assert reply.status == 201, reply.body
    reply = await send_chunked(small_api, "POST", "/api/auth/register",
                               padded(registration("limit-chunked@example.org"), SMALL_BODY_LIMIT))
    assert reply.status == 201, reply.body


async def test_oversize_body_with_content_length_is_a_413(small_api: Api) -> None:
    for size in OVERSIZES:
        data = padded(registration("big@example.org"), size)
        reply = await small_api.call("POST", "/api/auth/register", data=data, headers=JSON_HEADERS)
        assert_error(reply, 413, "payload_too_large", size)
    await assert_not_registered(small_api, "big@example.org")


async def test_oversize_chunked_body_without_content_length_is_a_413(small_api: Api) -> None:
    for size in OVERSIZES:
        reply = await send_chunked(small_api, "POST", "/api/auth/register",
                                   padded(registration("big@example.org"), size))
        assert_error(reply, 413, "payload_too_large", size)
    await assert_not_registered(small_api, "big@example.org")


async def test_oversize_profile_edit_changes_nothing(small_api: Api) -> None:
    person = await small_api.register("Small")
    before = await me(small_api, person)
    data = padded({"display_name": "Big"}, 2 * SMALL_BODY_LIMIT)
    reply = await small_api.call("PATCH", "/api/me", person, data=data, headers=JSON_HEADERS)
    assert_error(reply, 413, "payload_too_large", "content-length")
    reply = await send_chunked(small_api, "PATCH", "/api/me", data, person)
    assert_error(reply, 413, "payload_too_large", "chunked")
    assert await me(small_api, person) == before


# ---------------------------------------------------------------------------------------------------------------
# Profile edits (PATCH /api/me)


async def test_profile_edit_with_an_unknown_field_is_refused_whole(api: Api) -> None:
    person = await api.register("Plain")
    before = await me(api, person)
    for body in (
        {"verified": True},
        {"is_site_admin": True},
        {"display_name": "Sneaky", "is_site_admin": True},
        {"display_name": "Sneaky", "verified": True},
        {"email": "changed@example.org"},
        {"id": 999},
        {"password_hash": "x"},
    ):
        reply = await api.call("PATCH", "/api/me", person, body)
        assert_error(reply, 422, "invalid_input", body)
        assert set(body) - {"display_name"} <= problem_fields(reply), body
    after = await me(api, person)
    assert after == before
    assert after["verified"] is False and after["is_site_admin"] is False
    # The flags really are off: a site-admin-only action is still refused.
    reply = await api.call("POST", "/api/institutions", person, {"name": "Not mine to create"})
    assert_error(reply, 403, "forbidden")


async def test_profile_edit_with_a_bad_value_is_refused(api: Api) -> None:
    person = await api.register("Plain")
    before = await me(api, person)
    for body in (
        {"display_name": ["Mei"]},
        {"display_name": 5},
        {"display_name": None},
        {"display_name": ""},
        {"display_name": "   "},
        {"display_name": "x" * 81},
        {"real_name": 5},
        {"real_name": "x" * 121},
        {"position": ["Lecturer"]},
        {"industry": True},
        {"custom_fields": ["city", "Hangzhou"]},
        {"custom_fields": "city=Hangzhou"},
        {"display_name": "Fine", "education": 12},
    ):
        reply = await api.call("PATCH", "/api/me", person, body)
        assert_error(reply, 422, "invalid_input", body)
    assert await me(api, person) == before


async def check_display_name_refused(api: Api, names: list[str]) -> None:
    person = await api.register("Clean")
    before = await me(api, person)
    for name in names:
        reply = await api.call("PATCH", "/api/me", person, {"display_name": name})
        assert_error(reply, 422, "invalid_input", name)
        assert "display_name" in problem_fields(reply), name
        reply = await api.call("POST", "/api/auth/register", json=registration("ctrl@example.org", display_name=name))
        assert_error(reply, 422, "invalid_input", name)
    assert await me(api, person) == before
    await assert_not_registered(api, "ctrl@example.org")


async def test_control_characters_in_display_name_are_refused(api: Api) -> None:
    await check_display_name_refused(
        api, ["Mei\x00Lin", "Mei\nLin", "Mei\rLin", "Mei\tLin", "Mei\x1b[31mLin", "Mei\x08Lin", "\x07Mei"]
    )


async def test_delete_and_c1_control_characters_in_display_name_are_refused(api: Api) -> None:
    """DEL (U+007F) and the C1 controls (U+0080..U+009F, e.g. CSI U+009B) are control characters too."""
    await check_display_name_refused(api, ["Mei\x7fLin", "Mei\x9b31mLin", "Mei\x85Lin"])


def fields(n: int) -> dict[str, str]:
    return {f"field{i}": f"value {i}" for i in range(n)}


async def test_bad_custom_fields_are_refused(api: Api) -> None:
    person = await api.register()
    reply = await api.call("PATCH", "/api/me", person, {"custom_fields": {"kept": "yes"}})
    assert reply.status == 200, reply.body
    before = await me(api, person)
    for custom in (
        fields(21),
        fields(100),
        {"city": 5},
        {"city": ["Hangzhou"]},
        {"city": None},
        {"city": {"name": "Hangzhou"}},
        {"": "empty key"},
        {"k" * 41: "key too long"},
        {"city": "v" * 201},
    ):
        reply = await api.call("PATCH", "/api/me", person, {"display_name": "Changed", "custom_fields": custom})
        assert_error(reply, 422, "invalid_input", custom)
        assert any(field and field.startswith("custom_fields") for field in problem_fields(reply)), reply.body
    after = await me(api, person)
    assert after == before
    assert after["custom_fields"] == {"kept": "yes"}
    # The control: twenty fields are allowed.
    reply = await api.call("PATCH", "/api/me", person, {"custom_fields": fields(20)})
    assert reply.status == 200, reply.body
    assert (await me(api, person))["custom_fields"] == fields(20)


# ---------------------------------------------------------------------------------------------------------------
# Strict types: no coercion from strings


async def test_strings_are_not_coerced_to_booleans(
    api: Api, client: TestClient[web.Request, web.Application]
) -> None:
    admin, other = await api.register("Admin"), await api.register("Other")
    await make_site_admin(client, admin)
    for value in ("true", "1", 1, "yes", None):
        reply = await api.call("PUT", f"/api/users/{other.id}/verified", admin, {"verified": value})
        assert_error(reply, 422, "invalid_input", value)
        assert "verified" in problem_fields(reply), value
        reply = await api.call("PUT", f"/api/users/{other.id}/site-admin", admin, {"site_admin": value})
        assert_error(reply, 422, "invalid_input", value)
        assert "site_admin" in problem_fields(reply), value
    assert (await api.call("GET", f"/api/users/{other.id}", admin)).body["verified"] is False
    assert (await me(api, other))["is_site_admin"] is False


async def test_strings_are_not_coerced_to_integers(
    api: Api, client: TestClient[web.Request, web.Application]
) -> None:
    admin, other = await api.register("Admin"), await api.register("Other")
    await make_site_admin(client, admin)
    for owner_id in (str(other.id), float(other.id), [other.id], True):
        reply = await api.call("POST", "/api/institutions", admin, {"name": "School", "owner_id": owner_id})
        assert_error(reply, 422, "invalid_input", owner_id)
        assert "owner_id" in problem_fields(reply), owner_id
    listing = await api.call("GET", "/api/institutions", admin)
    assert listing.status == 200, listing.body
    assert listing.body["institutions"] == []


async def test_out_of_range_owner_id_is_a_4xx(api: Api, client: TestClient[web.Request, web.Application]) -> None:
    """An id past what the database column can hold names no user: a client error, not a crash."""
    admin = await api.register("Admin")
    await make_site_admin(client, admin)
    for owner_id in (2**31, 2**63):
        reply = await api.call("POST", "/api/institutions", admin, {"name": "School", "owner_id": owner_id})
        assert 400 <= reply.status < 500, (owner_id, reply.status, reply.body)
        assert_error(reply, reply.status, None, owner_id)
    listing = await api.call("GET", "/api/institutions", admin)
    assert listing.status == 200, listing.body
    assert listing.body["institutions"] == []


# ---------------------------------------------------------------------------------------------------------------
# Paths and methods


async def test_non_integer_ids_in_paths_are_a_json_404(api: Api) -> None:
    person = await api.register()
    before = await me(api, person)
    for method, path in (
        ("GET", "/api/users/abc"),
        ("GET", "/api/users/1.5"),
        ("GET", "/api/users/-1"),
        ("GET", "/api/users/1e3"),
        ("GET", "/api/users/0x1"),
        ("GET", "/api/users/%20"),
        ("PUT", "/api/users/abc/verified"),
        ("PUT", "/api/users/me/site-admin"),
        ("GET", "/api/institutions/abc"),
        ("PATCH", "/api/institutions/first"),
        ("GET", "/api/institutions/abc/members"),
        ("DELETE", "/api/institutions/1/members/me"),
    ):
        body = {"verified": True, "site_admin": True, "name": "X"} if method in ("PUT", "PATCH") else None
        reply = await api.call(method, path, person, body)
        assert_error(reply, 404, "not_found", (method, path))
    assert await me(api, person) == before


async def test_out_of_range_ids_in_paths_are_a_json_404(api: Api) -> None:
    """Digits the router accepts but the database column cannot hold: no such thing, not a crash."""
    person = await api.register()
    failures = []
    for n in (2**31, 2**63, 10**30):
        for path in (f"/api/users/{n}", f"/api/institutions/{n}", f"/api/institutions/{n}/members"):
            reply = await api.call("GET", path, person)
            if reply.status != 404 or reply.error_code is None:
                failures.append((path, reply.status, reply.body))
    assert not failures


async def test_unknown_route_is_a_json_404(api: Api) -> None:
    person = await api.register()
    for who in (None, person):
        for method, path in (
            ("GET", "/api/nope"), ("POST", "/api/nope"), ("GET", "/nope"), ("GET", "/api/users"),
            ("GET", "/api/me/nope"), ("GET", "/api/institutions/1/staff"), ("DELETE", "/api/auth"),
        ):
            reply = await api.call(method, path, who)
            assert_error(reply, 404, "not_found", (method, path, who is not None))


async def test_wrong_method_is_a_json_405_naming_the_allowed_ones(api: Api) -> None:
    person = await api.register("Method")
    before = await me(api, person)
    for method, path, allowed in (
        ("DELETE", "/api/me", {"GET", "PATCH"}),
        ("PUT", "/api/me", {"GET", "PATCH"}),
        ("GET", "/api/auth/register", {"POST"}),
        ("PUT", "/api/auth/login", {"POST"}),
        ("GET", "/api/users/1/verified", {"PUT"}),
        ("POST", "/api/institutions/1", {"GET", "PATCH"}),
    ):
        body = {"display_name": "Changed", "verified": True} if method != "GET" else None
        reply = await api.call(method, path, person, body)
        assert_error(reply, 405, "method_not_allowed", (method, path))
        assert {m.strip() for m in reply.headers["Allow"].split(",")} - {"HEAD"} == allowed, (method, path)
    assert await me(api, person) == before


# ---------------------------------------------------------------------------------------------------------------
# Sign-in rate limits


@pytest.fixture(params=["memory", "redis"])
async def limiter_settings(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """Both limiters: in memory (one process) and in Redis (shared); Redis keys are removed afterwards."""
    if request.param == "memory":
        yield {}
        return
    services.require_redis()
    prefix = services.unique_name("quanzi_test") + ":"
    yield {"redis_url": services.REDIS_URL, "redis_prefix": prefix}
    redis: Redis = Redis.from_url(services.REDIS_URL)
    try:
        keys_left = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys_left:
            await redis.delete(*keys_left)
    finally:
        await redis.aclose()


async def limited_api(aiohttp_client: Any, database: Database, tmp_path: Path, limiter: dict[str, Any],
                      **limits: int) -> Api:
    settings = make_settings(database, tmp_path, **limiter, **limits)
    return Api(await aiohttp_client(create_app(settings)))


async def register_only(api: Api, email: str) -> None:
    """Register without signing in, so that no sign-in attempt is spent."""
    reply = await api.call("POST", "/api/auth/register", json=registration(email))
    assert reply.status == 201, reply.body


def assert_rate_limited(reply: Reply) -> None:
    assert_error(reply, 429, "rate_limited")
    retry_after = reply.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), reply.headers
    assert int(retry_after) >= 1
    assert reply.body["error"]["details"]["retry_after"] == int(retry_after)
    assert "token" not in reply.body and "Set-Cookie" not in reply.headers


async def test_sign_in_is_rate_limited_per_account(
    aiohttp_client: Any, database: Database, tmp_path: Path, limiter_settings: dict[str, Any]
) -> None:
    api = await limited_api(aiohttp_client, database, tmp_path, limiter_settings,
                            login_attempts_per_account=3, login_attempts_per_ip=1000)
    await register_only(api, "victim@example.org")
    await register_only(api, "bystander@example.org")
    for _ in range(3):
        reply = await api.call("POST", "/api/auth/token", json={"email": "victim@example.org", "password": "guess!!!"})
        assert_error(reply, 401, "wrong_credentials")
    # The fourth attempt is refused before the password is looked at, even the right one, in any letter case.
    for email, path in (("victim@example.org", "/api/auth/token"), ("VICTIM@Example.org", "/api/auth/login")):
        reply = await api.call("POST", path, json={"email": email, "password": PASSWORD})
        assert_rate_limited(reply)
        assert reply.body["error"]["details"]["retry_after"] <= 15 * 60
    # Another account from the same address is not affected.
    await api.sign_in("bystander@example.org")


async def test_sign_in_is_rate_limited_per_ip(
    aiohttp_client: Any, database: Database, tmp_path: Path, limiter_settings: dict[str, Any]
) -> None:
    api = await limited_api(aiohttp_client, database, tmp_path, limiter_settings,
                            login_attempts_per_account=1000, login_attempts_per_ip=3)
    emails = [f"spray{i}@example.org" for i in range(4)]
    for email in emails:
        await register_only(api, email)
    for email in emails[:3]:
        reply = await api.call("POST", "/api/auth/token", json={"email": email, "password": "guess!!!"})
        assert_error(reply, 401, "wrong_credentials")
    # A fresh account, with its right password, from the same address: refused.
    reply = await api.call("POST", "/api/auth/token", json={"email": emails[3], "password": PASSWORD})
    assert_rate_limited(reply)
    reply = await api.call("POST", "/api/auth/token", json={"email": "unknown@example.org", "password": PASSWORD})
    assert_rate_limited(reply)
