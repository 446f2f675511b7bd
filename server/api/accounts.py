"""Account routes: register, sign in (cookie or bearer token), sign out, the signed-in user and profiles."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.api.identity import clear_session_cookie, client_ip, set_session_cookie, signed_in
from server.api.routes import Route
from server.api.schemas import (
    LoginIn,
    MeOut,
    PasswordChangeIn,
    ProfileIn,
    RegisterIn,
    SessionOut,
    SiteAdminIn,
    TokenOut,
    UserOut,
    UserPublicOut,
    VerifiedIn,
)
from server.api.wire import ok, parse_body, path_int, transaction
from server.db.models import SessionKind
from server.services import accounts


def _limits(request: web.Request) -> accounts.LoginLimits:
    settings = request.app[keys.SETTINGS]
    return accounts.LoginLimits(
        settings.login_attempts_per_account, settings.login_attempts_per_ip, settings.login_window_seconds
    )


async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterIn)
    async with transaction(request) as db:
        user = await accounts.register(
            db, request.app[keys.PASSWORDS], email=body.email, password=body.password, display_name=body.display_name
        )
        session = await accounts.start_session(
            db, request.app[keys.SIGNER], user, SessionKind.COOKIE, request.app[keys.SETTINGS].session_ttl_seconds
        )
    response = ok(SessionOut(user=UserOut.model_validate(user), csrf_token=session.csrf_token,
                             expires_at=session.expires_at), status=201)
    set_session_cookie(request, response, session)
    return response


async def _login(request: web.Request, kind: SessionKind) -> accounts.SignedIn:
    body = await parse_body(request, LoginIn)
    async with transaction(request) as db:
        user = await accounts.login(
            db, request.app[keys.PASSWORDS], request.app[keys.LIMITER], _limits(request),
            email=body.email, password=body.password, client_ip=client_ip(request),
        )
        return await accounts.start_session(
            db, request.app[keys.SIGNER], user, kind, request.app[keys.SETTINGS].session_ttl_seconds
        )


async def login(request: web.Request) -> web.Response:
    session = await _login(request, SessionKind.COOKIE)
    response = ok(SessionOut(user=UserOut.model_validate(session.user), csrf_token=session.csrf_token,
                             expires_at=session.expires_at))
    set_session_cookie(request, response, session)
    return response


async def issue_token(request: web.Request) -> web.Response:
    session = await _login(request, SessionKind.BEARER)
    return ok(TokenOut(user=UserOut.model_validate(session.user), token=session.token,
                       expires_at=session.expires_at), status=201)


async def logout(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        await accounts.logout(db, await signed_in(request, db))
    response = web.Response(status=204)
    clear_session_cookie(response)
    return response


async def me(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        identity = await signed_in(request, db)
    csrf = identity.session.csrf_token if identity.session.kind is SessionKind.COOKIE else None
    return ok(MeOut(user=UserOut.model_validate(identity.user), csrf_token=csrf))


async def update_me(request: web.Request) -> web.Response:
    body = await parse_body(request, ProfileIn)
    async with transaction(request) as db:
        user = await accounts.update_profile(db, await signed_in(request, db), body.changes())
    return ok(UserOut.model_validate(user))


async def change_password(request: web.Request) -> web.Response:
    body = await parse_body(request, PasswordChangeIn)
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        await accounts.change_password(
            db, request.app[keys.PASSWORDS], identity, current=body.current_password, new=body.new_password
        )
    return web.Response(status=204)


async def get_user(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        await signed_in(request, db)
        user = await accounts.get_user(db, path_int(request, "user_id"))
    return ok(UserPublicOut.model_validate(user))


async def set_verified(request: web.Request) -> web.Response:
    body = await parse_body(request, VerifiedIn)
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        user = await accounts.set_verified(db, identity.actor, path_int(request, "user_id"), body.verified)
    return ok(UserPublicOut.model_validate(user))


async def set_site_admin(request: web.Request) -> web.Response:
    body = await parse_body(request, SiteAdminIn)
    async with transaction(request) as db:
        identity = await signed_in(request, db)
        user = await accounts.set_site_admin(db, identity.actor, path_int(request, "user_id"), body.site_admin)
    return ok(UserOut.model_validate(user))


ROUTES = [
    Route("POST", "/api/auth/register", register, "Create an account and sign in with a cookie session",
          "accounts", auth="public", body=RegisterIn, response=SessionOut, status=201),
    Route("POST", "/api/auth/login", login, "Sign in: HttpOnly cookie session plus its CSRF token",
          "accounts", auth="public", body=LoginIn, response=SessionOut),
    Route("POST", "/api/auth/token", issue_token, "Sign in for an API client: a bearer token",
          "accounts", auth="public", body=LoginIn, response=TokenOut, status=201),
    Route("POST", "/api/auth/logout", logout, "End the current session on the server", "accounts", status=204),
    Route("GET", "/api/me", me, "The signed-in user", "accounts", response=MeOut),
    Route("PATCH", "/api/me", update_me, "Edit your profile", "accounts", body=ProfileIn, response=UserOut),
    Route("POST", "/api/me/password", change_password, "Change your password; other sessions end", "accounts",
          body=PasswordChangeIn, status=204),
    Route("GET", "/api/users/{user_id}", get_user, "A user's public profile", "accounts",
          response=UserPublicOut),
    Route("PUT", "/api/users/{user_id}/verified", set_verified,
          "Set the verified flag (site admins, or admins of an institution the user belongs to)", "accounts",
          body=VerifiedIn, response=UserPublicOut),
    Route("PUT", "/api/users/{user_id}/site-admin", set_site_admin, "Grant or revoke site admin (site admins)",
          "accounts", body=SiteAdminIn, response=UserOut),
]
