"""Accounts: registration, sign-in and sign-out, sessions, profiles and the verified flag."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rooms.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound, RateLimited
from server import policy
from server.db import institutions as institutions_db
from server.db import users as users_db
from server.db.models import AuthSession, SessionKind, User, utcnow
from server.ratelimit import RateLimiter
from server.security import Passwords, TokenSigner, new_csrf_token, same_secret

SESSION_PURPOSE = "session"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request, and through which credential."""

    user: User
    session: AuthSession

    @property
    def actor(self) -> policy.Actor:
        return policy.Actor(user_id=self.user.id, is_site_admin=self.user.is_site_admin)


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LoginLimits:
    per_account: int
    per_ip: int
    window_seconds: int


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "an account with this email already exists"


class WrongCredentials(NotAuthenticated):
    code = "wrong_credentials"
    default_message = "wrong email or password"


class SessionInvalid(NotAuthenticated):
    code = "session_invalid"
    default_message = "the session is unknown, expired or signed out; sign in again"


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    default_message = "missing or wrong X-CSRF-Token header"


async def register(
    db: AsyncSession, passwords: Passwords, *, email: str, password: str, display_name: str,
    is_site_admin: bool = False,
) -> User:
    if await users_db.email_taken(db, email):
        raise EmailTaken()
    password_hash = await passwords.hash(password)
    try:
        return await users_db.add_user(
            db, email=email, password_hash=password_hash, display_name=display_name, is_site_admin=is_site_admin
        )
    except IntegrityError:
        raise EmailTaken() from None  # a concurrent registration won the unique index


async def login(
    db: AsyncSession, passwords: Passwords, limiter: RateLimiter, limits: LoginLimits, *,
    email: str, password: str, client_ip: str,
) -> User:
    rate = limits.per_ip / limits.window_seconds
    wait = await limiter.hit(f"login:ip:{client_ip}", per_second=rate, burst=limits.per_ip)
    if not wait:
        rate = limits.per_account / limits.window_seconds
        wait = await limiter.hit(
            f"login:account:{users_db.email_key(email)}", per_second=rate, burst=limits.per_account
        )
    if wait:
        raise RateLimited(wait, "too many sign-in attempts; wait and try again")
    user = await users_db.get_user_by_email(db, email)
    if not await passwords.verify(user.password_hash if user else None, password) or user is None:
        raise WrongCredentials()
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await passwords.hash(password)
    return user


async def start_session(
    db: AsyncSession, signer: TokenSigner, user: User, kind: SessionKind, ttl_seconds: int
) -> SignedIn:
    issued = signer.issue(SESSION_PURPOSE)
    expires_at = utcnow() + timedelta(seconds=ttl_seconds)
    csrf = new_csrf_token()
    await users_db.add_session(
        db, id_hash=issued.id_hash, user_id=user.id, kind=kind, csrf_token=csrf, expires_at=expires_at
    )
    return SignedIn(user=user, token=issued.token, csrf_token=csrf, expires_at=expires_at)


async def identify(db: AsyncSession, signer: TokenSigner, token: str, kind: SessionKind) -> Identity:
    id_hash = signer.open(SESSION_PURPOSE, token)
    found = None if id_hash is None else await users_db.get_session_user(db, id_hash)
    if found is None or found[0].kind is not kind or found[0].expires_at <= utcnow():
        raise SessionInvalid()
    return Identity(user=found[1], session=found[0])


def check_csrf(identity: Identity, header_value: str | None) -> None:
    """Cookie-borne sessions must echo their CSRF token on every state-changing request."""
    if identity.session.kind is SessionKind.COOKIE and not (
        header_value and same_secret(header_value, identity.session.csrf_token)
    ):
        raise CsrfFailed()


async def logout(db: AsyncSession, identity: Identity) -> None:
    await users_db.delete_session(db, identity.session.id_hash)


async def change_password(
    db: AsyncSession, passwords: Passwords, identity: Identity, *, current: str, new: str
) -> None:
    if not await passwords.verify(identity.user.password_hash, current):
        raise WrongCredentials("the current password is wrong")
    identity.user.password_hash = await passwords.hash(new)
    await users_db.delete_other_sessions(db, identity.user.id, keep_id_hash=identity.session.id_hash)


PROFILE_FIELDS = ("display_name", "real_name", "position", "education", "industry", "custom_fields")


async def update_profile(db: AsyncSession, identity: Identity, changes: dict[str, Any]) -> User:
    user = identity.user
    for name, value in changes.items():
        if name not in PROFILE_FIELDS:
            raise InvalidInput(f"{name} is not a profile field")
        setattr(user, name, value)
    await db.flush()
    return user


async def get_user(db: AsyncSession, user_id: int) -> User:
    user = await users_db.get_user(db, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


async def set_verified(db: AsyncSession, actor: policy.Actor, user_id: int, verified: bool) -> User:
    user = await get_user(db, user_id)
    administers = not actor.is_site_admin and await institutions_db.administers_user(db, actor.user_id, user_id)
    policy.check_set_verified(actor, administers_user=administers, is_self=user_id == actor.user_id)
    user.verified = verified
    await db.flush()
    return user


async def set_site_admin(db: AsyncSession, actor: policy.Actor, user_id: int, site_admin: bool) -> User:
    policy.check_site(actor, policy.SiteAction.GRANT_SITE_ADMIN)
    user = await get_user(db, user_id)
    if user.id == actor.user_id and not site_admin:
        raise Conflict("a site admin cannot remove their own site-admin flag", code="self_demotion")
    user.is_site_admin = site_admin
    await db.flush()
    return user
