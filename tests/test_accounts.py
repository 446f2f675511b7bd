"""Accounts over real HTTP against the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from server import keys
from server.db.models import AuthSession, utcnow
from tests.helpers import PASSWORD, Api, Browser


@pytest.fixture
async def browser(client: TestClient[web.Request, web.Application]) -> AsyncIterator[Browser]:
    b = Browser(client)
    yield b
    await b.close()


async def test_browser_journey_register_login_me_edit_logout(browser: Browser) -> None:
    reply = await browser.call("POST", "/api/auth/register",
                               json={"email": "Mei.Lin@Example.org", "password": PASSWORD, "display_name": "Mei"})
    assert reply.status == 201
    assert reply.body["user"]["email"] == "Mei.Lin@example.org"
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie

    await browser.call("POST", "/api/auth/logout")
    reply = await browser.call("POST", "/api/auth/login", json={"email": "mei.lin@example.org", "password": PASSWORD})
    assert reply.status == 200, reply.body
    me = await browser.call("GET", "/api/me")
    assert me.status == 200
    assert me.body["user"]["display_name"] == "Mei"
    assert me.body["csrf_token"] == browser.csrf

    edit = await browser.call("PATCH", "/api/me", json={
        "real_name": "Lin Mei", "position": "Lecturer", "education": "MSc", "industry": "education",
        "custom_fields": {"city": "Hangzhou"},
    })
    assert edit.status == 200, edit.body
    me = await browser.call("GET", "/api/me")
    user = me.body["user"]
    assert (user["real_name"], user["position"], user["industry"]) == ("Lin Mei", "Lecturer", "education")
    assert user["custom_fields"] == {"city": "Hangzhou"}

    old_cookie = browser.session_cookie()
    assert old_cookie
    assert (await browser.call("POST", "/api/auth/logout")).status == 204
    assert (await browser.call("GET", "/api/me")).status == 401
    # Replaying the old cookie after logout is refused: the session is gone on the server.
    browser.session.cookie_jar.update_cookies({"quanzi_session": old_cookie}, browser.base)
    replay = await browser.call("GET", "/api/me")
    assert replay.status == 401
    assert replay.body["error"]["code"] == "session_invalid"


async def test_cookie_session_needs_csrf_token_on_changes(browser: Browser, api: Api) -> None:
    await browser.call("POST", "/api/auth/register",
                       json={"email": "csrf@example.org", "password": PASSWORD, "display_name": "Before"})
    for header in (None, "wrong-token"):
        reply = await browser.call("PATCH", "/api/me", json={"display_name": "After"}, csrf=False,
                                   headers={"X-CSRF-Token": header} if header else None)
        assert reply.status == 403
        assert reply.body["error"]["code"] == "csrf_failed"
    assert (await browser.call("GET", "/api/me")).body["user"]["display_name"] == "Before"
    assert (await browser.call("PATCH", "/api/me", json={"display_name": "After"})).status == 200


async def test_bearer_tokens_need_no_csrf_and_logout_revokes_them(api: Api) -> None:
    person = await api.register("Token User")
    reply = await api.call("PATCH", "/api/me", person, {"display_name": "Renamed"})
    assert reply.status == 200 and reply.body["display_name"] == "Renamed"
    assert (await api.call("POST", "/api/auth/logout", person)).status == 204
    reply = await api.call("GET", "/api/me", person)
    assert reply.status == 401 and reply.error_code == "session_invalid"


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer abc.def", "Basic dXNlcjpwYXNz", "Bearer "])
async def test_forged_or_malformed_credentials_are_refused(api: Api, header: str) -> None:
    reply = await api.call("GET", "/api/me", headers={"Authorization": header})
    assert reply.status == 401
    assert reply.error_code == "session_invalid"


async def test_forged_signature_on_a_real_identifier_is_refused(api: Api) -> None:
    person = await api.register()
    ident, _, tag = person.token.partition(".")
    forged = f"{ident}.{tag[::-1]}"
    reply = await api.call("GET", "/api/me", headers={"Authorization": f"Bearer {forged}"})
    assert reply.status == 401


async def test_expired_session_is_refused(api: Api, client: TestClient[web.Request, web.Application]) -> None:
    person = await api.register()
    async with client.app[keys.DB]() as db, db.begin():
        await db.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    reply = await api.call("GET", "/api/me", person)
    assert reply.status == 401 and reply.error_code == "session_invalid"


async def test_password_change_ends_other_sessions(api: Api) -> None:
    person = await api.register()
    other_device = await api.sign_in(person.email)
    reply = await api.call("POST", "/api/me/password", person,
                           {"current_password": PASSWORD, "new_password": "a new long password"})
    assert reply.status == 204
    assert (await api.call("GET", "/api/me", person)).status == 200
    assert (await api.call("GET", "/api/me", other_device)).status == 401
    wrong = await api.call("POST", "/api/auth/token", json={"email": person.email, "password": PASSWORD})
    assert wrong.status == 401 and wrong.error_code == "wrong_credentials"
    await api.sign_in(person.email, "a new long password")


async def test_public_profile_hides_email_and_real_name(api: Api) -> None:
    alice, bob = await api.register("Alice"), await api.register("Bob")
    await api.call("PATCH", "/api/me", alice, {"real_name": "Alice Wang", "industry": "education"})
    reply = await api.call("GET", f"/api/users/{alice.id}", bob)
    assert reply.status == 200
    assert reply.body["industry"] == "education"
    assert "email" not in reply.body and "real_name" not in reply.body
    assert (await api.call("GET", f"/api/users/{alice.id}")).status == 401
    assert (await api.call("GET", "/api/users/99999", bob)).status == 404
