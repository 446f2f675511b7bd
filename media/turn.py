"""Short-lived TURN credentials for coturn's ``use-auth-secret`` mode (the "TURN REST API" scheme).

coturn and the server share one secret; nothing is stored per user. The username carries its own expiry, so a
leaked credential stops working by itself. The server calls :func:`turn_credentials` when a client joins the media
of a room and hands the result to the browser inside its ICE servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from typing import Any

MAX_TTL = 3600
"""A credential lives at most an hour: long enough for a lesson's reconnects, short enough to be worthless if leaked."""


def turn_credentials(secret: str, user: str, ttl: int = MAX_TTL, now: float | None = None) -> dict[str, Any]:
    """The username and credential coturn's ``use-auth-secret`` accepts until ``now + ttl``.

    ``username`` is ``"<expiry-unix>:<user>"``; ``credential`` is ``base64(HMAC-SHA1(secret, username))``.
    ``ttl`` is in seconds, 1 to :data:`MAX_TTL`. ``now`` is for tests; it defaults to the current time.
    """
    if not secret:
        raise ValueError("the TURN secret is empty")
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL} seconds, got {ttl}")
    if ":" in user:
        # coturn splits the username at the first colon: a colon in the user part would be read as the expiry.
        raise ValueError("the TURN user must not contain ':'")
    issued = time.time() if now is None else now
    expiry = math.floor(issued) + ttl
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return {"username": username, "credential": base64.b64encode(digest).decode("ascii"), "ttl": ttl}


def ice_servers_with_turn(
    urls: list[str], secret: str, user: str, ttl: int = MAX_TTL, now: float | None = None
) -> dict[str, Any]:
    """One RTCIceServer dictionary (the shape browsers take) for the TURN ``urls`` with fresh credentials."""
    credentials = turn_credentials(secret, user, ttl, now)
    return {"urls": list(urls), "username": credentials["username"], "credential": credentials["credential"]}
