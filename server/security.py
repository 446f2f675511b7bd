"""Passwords (Argon2), signed opaque tokens and constant-time checks. No I/O beyond a worker thread for hashing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Argon2id hashing, run off the event loop: a hash takes tens of milliseconds of CPU by design."""

    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verified when the account does not exist, so a wrong email costs as long as a wrong password.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)

    def _verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash or self._decoy, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str  # what the client holds: "<id>.<signature>"
    id_hash: str  # what the database keeps


class TokenSigner:
    """Opaque random identifiers with an HMAC tag, so forged tokens are refused before any database lookup."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(("quanzi-token:" + secret_key).encode()).digest()

    def issue(self, purpose: str) -> IssuedToken:
        ident = secrets.token_urlsafe(32)
        return IssuedToken(f"{ident}.{self._tag(purpose, ident)}", hash_identifier(ident))

    def open(self, purpose: str, token: str) -> str | None:
        """The stored hash for a genuine token, or None for anything forged or malformed."""
        ident, dot, tag = token.partition(".")
        if not dot or not ident or len(token) > 200:
            return None
        if not hmac.compare_digest(tag, self._tag(purpose, ident)):
            return None
        return hash_identifier(ident)

    def _tag(self, purpose: str, ident: str) -> str:
        mac = hmac.new(self._key, f"{purpose}:{ident}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()


class ClaimSigner:
    """Short-lived signed claims (a user id and an expiry) that need no database: socket handshake tokens."""

    def __init__(self, secret_key: str, purpose: str) -> None:
        self._key = hashlib.sha256(f"quanzi-claims:{purpose}:{secret_key}".encode()).digest()

    def sign(self, subject: int, expires_at: float) -> str:
        body = f"{subject}.{int(expires_at)}"
        return f"{body}.{self._tag(body)}"

    def verify(self, token: str, now: float) -> tuple[int | None, str]:
        """(subject, "ok"), or (None, reason) with reason "malformed", "forged" or "expired"."""
        parts = token.split(".") if len(token) <= 200 else []
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit() and parts[2]):
            return None, "malformed"
        subject, expiry, tag = parts
        if not hmac.compare_digest(tag, self._tag(f"{subject}.{expiry}")):
            return None, "forged"
        if int(expiry) <= now:
            return None, "expired"
        return int(subject), "ok"

    def _tag(self, body: str) -> str:
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()


def hash_identifier(ident: str) -> str:
    return hashlib.sha256(ident.encode()).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
