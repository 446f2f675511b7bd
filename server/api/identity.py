"""Who is calling: a bearer token (API clients) or the session cookie (browsers, with CSRF on unsafe methods)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from rooms.errors import NotAuthenticated
from server import keys
from server.api.wire import UNSAFE_METHODS
from server.db.models import SessionKind
from server.policy import Actor
from server.services import accounts
from server.services.accounts import SignedIn

COOKIE_NAME = "quanzi_session"
CSRF_HEADER = "X-CSRF-Token"


async def signed_in(request: web.Request, db: AsyncSession) -> accounts.Identity:
    """The caller's identity, or NotAuthenticated. A cookie session must carry its CSRF token on unsafe methods."""
    signer = request.app[keys.SIGNER]
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise accounts.SessionInvalid("the Authorization header must be 'Bearer <token>'")
        return await accounts.identify(db, signer, token.strip(), SessionKind.BEARER)
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        raise NotAuthenticated()
    identity = await accounts.identify(db, signer, cookie, SessionKind.COOKIE)
    if request.method in UNSAFE_METHODS:
        accounts.check_csrf(identity, request.headers.get(CSRF_HEADER))
    return identity


async def maybe_signed_in(request: web.Request, db: AsyncSession) -> accounts.Identity | None:
    """The caller's identity if they present one; a stale cookie reads as anonymous, a bad bearer token is refused."""
    if "Authorization" in request.headers:
        return await signed_in(request, db)
    if not request.cookies.get(COOKIE_NAME):
        return None
    try:
        return await signed_in(request, db)
    except accounts.SessionInvalid:
        return None


def actor_of(identity: accounts.Identity | None) -> Actor | None:
    return identity.actor if identity is not None else None


async def user_actor(request: web.Request, db: AsyncSession) -> Actor:
    return (await signed_in(request, db)).actor


async def any_actor(request: web.Request, db: AsyncSession) -> Actor | None:
    return actor_of(await maybe_signed_in(request, db))


def public_origin(request: web.Request) -> str:
    """The origin people reach this server at, for links handed out (invites, QR codes)."""
    if request.app[keys.SETTINGS].trust_forwarded:
        proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
        return f"{proto}://{host}"
    return f"{request.scheme}://{request.host}"


def client_ip(request: web.Request) -> str:
    if request.app[keys.SETTINGS].trust_forwarded:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return request.remote or "unknown"


def set_session_cookie(request: web.Request, response: web.StreamResponse, session: SignedIn) -> None:
    settings = request.app[keys.SETTINGS]
    response.set_cookie(
        COOKIE_NAME, session.token, max_age=settings.session_ttl_seconds, httponly=True, samesite="Lax",
        secure=settings.cookie_secure, path="/",
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE_NAME, path="/")
