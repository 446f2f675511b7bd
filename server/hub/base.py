"""What every group of hub events shares: the parts it works with, the connection handshake, and the request
envelope (limit, validate, one transaction, acknowledge, then deliver).

Every request is acknowledged ``{"ok": true, ...}`` or ``{"ok": false, "error": {"code", "message", ...}}``; domain
errors become acknowledgements in ``ack_error`` and nowhere else. The events are written down in
``docs/protocol.md``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import socketio
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from rooms.errors import DomainError, InvalidInput, RateLimited
from rooms.reactions import ReactionTally
from rooms.store import RoomStore
from server.db import users as users_db
from server.db.engine import SessionFactory
from server.hub.emit import Broadcaster, user_room
from server.hub.nodes import MediaNodes
from server.hub.presence import Presence
from server.policy import Actor
from server.ratelimit import RateLimiter
from server.security import ClaimSigner

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
Ack = dict[str, Any]
Deliver = Callable[[], Awaitable[None]] | None

# A connection, all events together: a burst of 60, then 20 a second; refused 20 times, it is disconnected.
CONNECTION_BURST, CONNECTION_PER_SECOND = 60, 20.0
STRIKES_BEFORE_DISCONNECT = 20


@dataclass(frozen=True, slots=True)
class HubParts:
    db: SessionFactory
    limiter: RateLimiter
    presence: Presence
    tokens: ClaimSigner
    broadcaster: Broadcaster
    rooms: RoomStore
    grace_seconds: float  # how long a dropped participant keeps their seat, and the gap attendance forgives
    nodes: MediaNodes


def ack_error(error: DomainError) -> Ack:
    """The only place a domain error becomes a socket acknowledgement."""
    body = error.payload()
    if isinstance(error, RateLimited):
        body["retry_after"] = error.retry_after
    return {"ok": False, "error": body}


def internal_error() -> Ack:
    return {"ok": False, "error": {"code": "internal", "message": "internal server error"}}


class HubBase(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(self, parts: HubParts) -> None:
        super().__init__("/")
        self.parts = parts
        self.reactions = ReactionTally()

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str):
            raise refused("not_authenticated", "connect with auth={'token': ...} from POST /api/socket-token")
        user_id, reason = self.parts.tokens.verify(token, time.time())
        if user_id is None:
            raise refused("token_expired" if reason == "expired" else "invalid_token", f"the socket token is {reason}")
        async with self.parts.db() as db:
            user = await users_db.get_user(db, user_id)
        if user is None:
            raise refused("invalid_token", "no such user")
        await self.save_session(sid, {"user_id": user.id, "site_admin": user.is_site_admin, "circles": set(),
                                      "classes": {}, "strikes": 0})
        await self.enter_room(sid, user_room(user.id))

    async def _request(
        self, sid: str, data: Any, model: type[M],
        work: Callable[[Actor, M, AsyncSession], Awaitable[tuple[Ack, Deliver]]],
    ) -> Ack:
        """Limit, validate, run ``work`` in one transaction; after commit, acknowledge, then deliver."""
        session = await self.get_session(sid)
        actor = Actor(user_id=session["user_id"], is_site_admin=session["site_admin"])
        try:
            wait = await self.parts.limiter.hit(f"socket:{sid}", per_second=CONNECTION_PER_SECOND,
                                                burst=CONNECTION_BURST)
            if wait:
                raise RateLimited(wait, "too many requests on this connection")
            payload = validate(model, data)
            async with self.parts.db() as db, db.begin():
                reply, deliver = await work(actor, payload, db)
        except DomainError as exc:
            await self._strike(sid, session, exc)
            return ack_error(exc)
        except Exception:
            log.exception("socket handler failed for %s", model.__name__)
            return internal_error()
        if deliver is not None:
            self.parts.broadcaster.after_ack(deliver())
        return {"ok": True, **reply}

    async def _strike(self, sid: str, session: dict[str, Any], error: DomainError) -> None:
        if not isinstance(error, RateLimited):
            return
        session["strikes"] = session.get("strikes", 0) + 1
        if session["strikes"] >= STRIKES_BEFORE_DISCONNECT:
            log.warning("disconnecting %s (user %s): persistent flooding", sid, session["user_id"])
            self.parts.broadcaster.after_ack(self.disconnect(sid))


def refused(code: str, message: str) -> socketio.exceptions.ConnectionRefusedError:
    """The client's connect_error carries {"message": ..., "data": {"code": ...}}."""
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code})


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidInput("the payload must be an object", code="malformed_payload")
    try:
        # JSON mode, as over HTTP: strict about types, yet enum values and timestamps come as strings.
        return model.model_validate_json(json.dumps(data))
    except (ValidationError, ValueError, TypeError) as exc:  # TypeError: binary attachments are not JSON
        if not isinstance(exc, ValidationError):
            raise InvalidInput("the payload is not plain JSON", code="malformed_payload") from None
        raise InvalidInput(details=[
            {"field": ".".join(str(p) for p in err["loc"]) or None, "problem": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False, include_context=False)
        ]) from None
