"""Media signalling over the hub: the browser's peer connection with this process's relay (``media.relay``).

The room decides, the relay enforces: what a participant may publish comes from ``rooms.classroom.Room`` and reaches
every process's relay as a ``media_allowed`` control on the participant's user room (their peers live on the
process their sockets are on). A connection that leaves the class, is removed, or drops takes its peer with it.

Events are written down in ``docs/protocol.md`` ("Media"); payload shapes are in ``server.api.class_schemas``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from media.relay import MediaError, Relay
from media.turn import ice_servers_with_turn
from rooms.classroom import Media
from rooms.errors import Conflict, DomainError, InvalidInput, NotFound
from server.api.class_schemas import ClassRefIn
from server.hub.base import Ack, Deliver
from server.hub.classes import ClassEvents
from server.hub.emit import user_room
from server.policy import Actor
from server.settings import Settings

log = logging.getLogger(__name__)
MAX_SDP = 64 * 1024
R = TypeVar("R", bound=ClassRefIn)


class OfferIn(ClassRefIn):
    sdp: str = Field(min_length=1, max_length=MAX_SDP)
    tracks: dict[str, Media] = Field(default_factory=dict, max_length=16,
                                     description="mid -> camera | microphone | screen, for what the client sends")


class AnswerSdpIn(ClassRefIn):
    sdp: str = Field(min_length=1, max_length=MAX_SDP)


class CandidateIn(ClassRefIn):
    candidate: dict[str, Any] | None = Field(None, description="an RTCIceCandidateInit; null at the end")


class AudioOnlyIn(ClassRefIn):
    on: bool


def media_error(error: MediaError) -> DomainError:
    """The relay's errors, as the hub's typed errors (mapped to the wire in one place, ``ack_error``)."""
    if error.code == "unknown_peer":
        return NotFound(str(error) or "join the media first", code="media_not_joined")
    if error.code == "negotiation_conflict":
        return Conflict(str(error) or "an offer from the server crossed yours", code="negotiation_conflict")
    return InvalidInput(str(error) or "the relay refused this", code=error.code)


class MediaEvents(ClassEvents):
    relay: Relay | None = None
    settings: Settings

    def attach_relay(self, relay: Relay, settings: Settings) -> None:
        self.relay, self.settings = relay, settings
        self.parts.broadcaster.on_control("media_allowed", self._allowed_here)

    async def signal(self, peer_id: str, event: str, payload: dict[str, Any]) -> None:
        """The relay's way to reach one browser (``media.relay.Signal``): peers are named by their socket id."""
        await self.emit(event, payload, to=peer_id)

    def _relay(self) -> Relay:
        if self.relay is None:
            raise Conflict("this server runs no media relay", code="no_media")
        return self.relay

    def _ice_servers(self, user_id: int) -> list[dict[str, Any]]:
        servers: list[dict[str, Any]] = [{"urls": list(self.settings.stun_urls)}] if self.settings.stun_urls else []
        if self.settings.turn_urls and self.settings.turn_secret:
            servers.append(ice_servers_with_turn(list(self.settings.turn_urls), self.settings.turn_secret,
                                                 str(user_id), ttl=self.settings.turn_ttl_seconds))
        return servers

    # --- the room tells the relay ---

    def _allowed_media(self, class_id: int, user_id: int, kinds: frozenset[Media]) -> None:
        self.parts.broadcaster.after_ack(self.parts.broadcaster.control(
            user_room(user_id), "media_allowed", class_id, user_id, sorted(k.value for k in kinds)))

    async def _allowed_here(self, sid: str, class_id: int, user_id: int, kinds: list[str]) -> None:
        if self.relay is not None:
            self.relay.set_allowed(str(class_id), user_id, frozenset(Media(k) for k in kinds))

    async def _media_gone(self, sid: str, class_id: int) -> None:
        if self.relay is not None:
            await self.relay.leave(sid)

    async def _media_ended(self, class_id: int) -> None:
        if self.relay is not None:
            await self.relay.close_room(str(class_id))
        await self.parts.nodes.release(class_id)

    async def _media_node(self, class_id: int) -> str | None:
        return await self.parts.nodes.owner(class_id)

    # --- events ---

    async def _media(
        self, sid: str, data: Any, model: type[R], act: Callable[[Actor, R], Awaitable[dict[str, Any] | None]]
    ) -> Ack:
        """A media request from a connection seated in its class; the relay's errors become typed errors."""

        async def work(actor: Actor, body: R, db: AsyncSession) -> tuple[Ack, Deliver]:
            await self._entry(sid, body.class_id)
            try:
                reply = await act(actor, body)
            except MediaError as exc:
                raise media_error(exc) from None
            return reply or {}, None

        return await self._request(sid, data, model, work)

    async def on_media_join(self, sid: str, data: Any = None) -> Ack:
        async def act(actor: Actor, body: ClassRefIn) -> dict[str, Any]:
            relay = self._relay()
            node = await self.parts.nodes.owner(body.class_id)
            if node is not None:
                raise Conflict("this class's media is carried by another process: connect there, join the class "
                               "and join its media", code="use_media_node", details={"url": node})
            room = await self.parts.rooms.get(str(body.class_id))
            joined = await relay.join(str(body.class_id), sid, actor.user_id)
            if room is not None:
                relay.set_allowed(str(body.class_id), actor.user_id, room.publishing(actor.user_id))
                for uid in room.participants:  # publishers seated before this process saw their permissions
                    relay.set_allowed(str(body.class_id), uid, room.publishing(uid))
            return {**joined, "ice_servers": self._ice_servers(actor.user_id)}

        return await self._media(sid, data, ClassRefIn, act)

    async def on_media_offer(self, sid: str, data: Any = None) -> Ack:
        async def act(actor: Actor, body: OfferIn) -> dict[str, Any]:
            return await self._relay().offer(sid, body.sdp, {mid: kind.value for mid, kind in body.tracks.items()})

        return await self._media(sid, data, OfferIn, act)

    async def on_media_answer(self, sid: str, data: Any = None) -> Ack:
        async def act(actor: Actor, body: AnswerSdpIn) -> None:
            await self._relay().answer(sid, body.sdp)

        return await self._media(sid, data, AnswerSdpIn, act)

    async def on_media_candidate(self, sid: str, data: Any = None) -> Ack:
        async def act(actor: Actor, body: CandidateIn) -> None:
            await self._relay().candidate(sid, body.candidate)

        return await self._media(sid, data, CandidateIn, act)

    async def on_media_audio_only(self, sid: str, data: Any = None) -> Ack:
        async def act(actor: Actor, body: AudioOnlyIn) -> dict[str, Any]:
            await self._relay().set_audio_only(sid, body.on)
            return {"audio_only": body.on}

        return await self._media(sid, data, AudioOnlyIn, act)

    async def on_media_leave(self, sid: str, data: Any = None) -> Ack:
        async def act(actor: Actor, body: ClassRefIn) -> None:
            await self._relay().leave(sid)

        return await self._media(sid, data, ClassRefIn, act)
