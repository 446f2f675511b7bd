"""The selective forwarding unit: one aiortc peer connection per participant connection, RTP forwarded as packets.

The hub (``server/``) owns the sockets and the room rules; it drives a :class:`Relay` through this interface and
implements :class:`Signal` to push events to one connection::

    relay = Relay(RelayConfig(ice_servers=[...]), signal)
    await relay.join(room_id, peer_id, user_id)    -> {"ice_servers": [...], "offer"}  # creates the peer
    await relay.offer(peer_id, sdp, tracks)         -> {"sdp": answer, "tracks": {...}}  # client's offer
    await relay.answer(peer_id, sdp)                                                   # answer to a media_offer
    await relay.candidate(peer_id, candidate)                                          # trickled ICE candidate
    relay.set_allowed(room_id, user_id, kinds)                                         # who may publish what
    await relay.set_audio_only(peer_id, on)
    await relay.leave(peer_id)
    await relay.remove_user(room_id, user_id)
    await relay.close_room(room_id)
    await relay.close()                                                                # idempotent
    relay.stats()                                                                      -> counters

``tracks`` in an offer maps each m-line the client publishes on (its ``mid``) to ``"camera"``, ``"microphone"`` or
``"screen"``. Every offer and answer the relay produces carries ``tracks`` the other way round:
``{mid: {"user_id": int, "kind": "camera" | "microphone" | "screen"}}`` for the m-lines it forwards to that client
(its own publishing m-lines are not listed).

Pushed through :class:`Signal`: ``media_offer`` ``{"sdp", "tracks"}`` (the relay renegotiates because a publisher
appeared, left, or changed what it sends; the client replies with :meth:`Relay.answer`), ``media_tracks``
``{"tracks", "audio_only", "reason"}`` (the relay switched a subscriber to audio-only because it could not keep up)
and ``media_closed`` ``{"reason"}`` (the connection failed and the relay dropped it). See ``docs/media.md``.

Glare: the relay never creates an offer while the peer's signalling state is not stable, and never while it is
handling the client's offer (both run under the peer's lock). The client is the polite side: if its offer crosses
a ``media_offer``, :meth:`Relay.offer` raises :class:`NegotiationConflict`; the client rolls back its own offer,
answers the relay's, then offers again. Changes that arrive while a negotiation is under way are folded into one
more offer once it completes.

Permissions: nothing is forwarded from a user until :meth:`Relay.set_allowed` allowed that kind in that room.
Revoking takes effect on the next packet; the m-lines stay negotiated, so allowing again needs no renegotiation
(subscribers restart on the next keyframe).

Cost: per packet and subscriber the relay runs C only (:mod:`media.forwarding`: rewrite, libsrtp, ``sendto``);
per subscriber and second, one compound RTCP sender report from one relay-wide task. ``bench/README.md`` has the
figures.

``media/`` may import ``rooms/`` (for :class:`rooms.classroom.Media`) and never ``server/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
)

from media import aiortc_adapter as adapter
from media.forwarding import (
    CongestionMonitor,
    Counters,
    KeyframeRequester,
    OutgoingStream,
    forward_all,
    sender_reports,
    vp8_keyframe_start,
)
from rooms.classroom import Media

logger = logging.getLogger(__name__)

MEDIA_KIND: Final = {Media.MICROPHONE: "audio", Media.CAMERA: "video", Media.SCREEN: "video"}
"""The RTP media type of each kind of published track."""

FORWARDED_CODEC: Final = {"audio": "audio/opus", "video": "video/VP8"}
"""The relay forwards packets as they are, so every publisher sends, and every subscriber receives, these."""

CLOCK_RATE: Final = {"audio": 48000, "video": 90000}


class Signal(Protocol):
    """Sends one event to one peer (its socket connection). Implemented by the hub."""

    async def __call__(self, peer_id: str, event: str, payload: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class RelayConfig:
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    """Handed to clients as-is (STUN/TURN for them); the relay's own connections gather host candidates only."""
    keyframe_interval: float = 0.5
    """At most one keyframe request per publisher track per this many seconds; later ones are deferred."""
    max_send_buffer: int = 256 * 1024
    """SO_SNDBUF of each subscriber's socket: what the kernel may hold for it before the relay drops its packets.
    Room for a large keyframe burst (640x480 keyframes reach ~150 KB), small enough that a stuck subscriber
    costs memory, not latency for others."""
    video_history: int = 512
    """Packets kept per outgoing video stream to answer NACKs (power of two; about 4 s at 1 Mbps)."""
    audio_history: int = 128
    """Packets kept per outgoing audio stream (power of two; 2.5 s of 20 ms Opus)."""
    auto_audio_only: bool = True
    """Switch a subscriber to audio-only when its RTCP shows it cannot keep up with video."""
    report_interval: float = 1.0
    """Mean seconds between RTCP sender reports to each subscriber (randomised 0.5-1.5x, RFC 3550 6.2)."""


class MediaError(Exception):
    """Base of the relay's errors; ``code`` is what the hub puts on the wire."""

    code = "media_error"


class UnknownPeer(MediaError):
    code = "unknown_peer"


class PeerExists(MediaError):
    code = "peer_exists"


class InvalidOffer(MediaError):
    code = "invalid_offer"


class NegotiationConflict(MediaError):
    """An offer crossed another negotiation (glare) or an answer came with no offer outstanding."""

    code = "negotiation_conflict"


class RelayClosed(MediaError):
    code = "relay_closed"


class _IdleTrack(MediaStreamTrack):
    """Something for aiortc's sender to wait on: the relay writes this sender's packets itself, never an encoder."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never = asyncio.Event()

    async def recv(self) -> Any:
        await self._never.wait()
        raise MediaStreamError


class _Source:
    """One track a peer publishes: fans each packet out to the subscribers' streams."""

    def __init__(
        self,
        peer: _Peer,
        mid: str,
        kind: Media,
        receiver: RTCRtpReceiver,
        counters: Counters,
        interval: float,
    ) -> None:
        self.peer = peer
        self.mid = mid
        self.kind = kind
        self.media = MEDIA_KIND[kind]
        self.is_video = self.media == "video"
        self.receiver = receiver
        self.allowed = False
        self.closed = False
        self.media_ssrc: int | None = None
        self.subscriptions: list[_Subscription] = []
        self.streams: list[OutgoingStream] = []
        self._counters = counters
        self._mime = FORWARDED_CODEC[self.media]
        self._codec: RTCRtpCodecParameters | None = None
        self.keyframes = KeyframeRequester(asyncio.get_running_loop(), self._send_pli, counters, interval)
        adapter.tap_receiver(receiver, self.on_packet)

    def on_packet(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        counters = self._counters
        counters.packets_received += 1
        if not self.allowed:
            counters.dropped_not_allowed += 1
            return
        if codec is not self._codec:
            if codec.mimeType.lower() != self._mime.lower():
                return
            self._codec = codec
        self.media_ssrc = packet.ssrc
        payload = packet.payload
        keyframe = vp8_keyframe_start(payload) if self.is_video else True
        forward_all(self.streams, packet.sequence_number, packet.timestamp, packet.marker, payload, keyframe)

    def attach(self, subscription: _Subscription) -> None:
        self.subscriptions.append(subscription)
        self.streams = [s.stream for s in self.subscriptions]

    def detach(self, subscription: _Subscription) -> None:
        if subscription in self.subscriptions:
            self.subscriptions.remove(subscription)
            self.streams = [s.stream for s in self.subscriptions]

    def set_allowed(self, allowed: bool) -> None:
        if allowed and not self.allowed:
            for stream in self.streams:
                stream.restart()
            if self.is_video and self.streams:
                self.keyframes.request()
        self.allowed = allowed

    def close(self) -> None:
        self.closed = True
        self.allowed = False
        self.keyframes.close()
        for subscription in list(self.subscriptions):
            subscription.unbind()
        self.streams = []

    def _send_pli(self) -> bool:
        if self.closed or self.media_ssrc is None:
            return False
        wire = self.peer.wire(self.receiver.transport)
        return adapter.request_keyframe(self.receiver, wire, self.media_ssrc)


class _Subscription:
    """One m-line the relay sends on to a subscriber, bound to a source or idle (inactive, kept for reuse)."""

    def __init__(self, peer: _Peer, transceiver: RTCRtpTransceiver, stream: OutgoingStream, media: str) -> None:
        self.peer = peer
        self.transceiver = transceiver
        self.stream = stream
        self.media = media
        self.source: _Source | None = None
        self.negotiated = False

    def bind(self, source: _Source) -> None:
        self.source = source
        self.stream.active = False
        self.stream.restart()
        source.attach(self)

    def unbind(self) -> None:
        if self.source is not None:
            self.source.detach(self)
        self.source = None
        self.stream.active = False


class _Peer:
    """One participant connection: its peer connection, what it publishes and what it receives."""

    def __init__(self, peer_id: str, room_id: str, user_id: int, pc: RTCPeerConnection, max_buffer: int) -> None:
        self.id = peer_id
        self.room_id = room_id
        self.user_id = user_id
        self.pc = pc
        self.lock = asyncio.Lock()
        self.sources: dict[str, _Source] = {}
        self.subscriptions: list[_Subscription] = []
        self.audio_only = False
        self.audio_only_auto = False
        self.monitor = CongestionMonitor()
        self.pending = False
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self._max_buffer = max_buffer
        self._wires: dict[int, adapter.Wire] = {}
        self._sent_snapshot = (0, 0)
        self.numbering = adapter.Numbering()

    @property
    def video_off(self) -> bool:
        return self.audio_only or self.audio_only_auto

    def wire(self, dtls: Any) -> adapter.Wire:
        wire = self._wires.get(id(dtls))
        if wire is None or wire.dtls is not dtls:
            wire = self._wires[id(dtls)] = adapter.Wire(dtls, self._max_buffer)
        return wire

    def tracks(self) -> dict[str, dict[str, Any]]:
        return {
            sub.transceiver.mid: {"user_id": sub.source.peer.user_id, "kind": sub.source.kind.value}
            for sub in self.subscriptions
            if sub.source is not None and sub.transceiver.mid is not None
        }

    def video_totals(self) -> tuple[int, int]:
        packets = dropped = 0
        for sub in self.subscriptions:
            if sub.stream.is_video:
                packets += sub.stream.packets
                dropped += sub.stream.dropped
        return packets, dropped


@dataclass
class _Room:
    peers: dict[str, _Peer] = field(default_factory=dict)
    allowed: dict[int, frozenset[Media]] = field(default_factory=dict)

    def sources(self) -> Iterator[_Source]:
        for peer in self.peers.values():
            yield from peer.sources.values()


class Relay:
    """See the module docstring for the interface and the signalling rules."""

    def __init__(self, config: RelayConfig, signal: Signal) -> None:
        self._config = config
        self._signal = signal
        self._rooms: dict[str, _Room] = {}
        self._peers: dict[str, _Peer] = {}
        self._counters = Counters()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: dict[str, asyncio.Task[None]] = {}
        self._reporter: asyncio.Task[None] | None = None
        self._closed = False

    # -- peers --------------------------------------------------------------------------------------------------

    async def join(self, room_id: str, peer_id: str, user_id: int) -> dict[str, Any]:
        """Create the peer for one participant connection. Returns the ICE servers its browser should use and, when
        the room has publishers, the relay's first offer (``{"sdp", "tracks"}``, else None) to answer."""
        if self._closed:
            raise RelayClosed("the relay is closed")
        if peer_id in self._peers:
            raise PeerExists(f"peer {peer_id} has already joined")
        # No STUN/TURN for the relay itself: it has public host candidates, and aiortc's default would be
        # Google's STUN server.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peer = _Peer(peer_id, room_id, user_id, pc, self._config.max_send_buffer)
        self._peers[peer_id] = peer
        self._rooms.setdefault(room_id, _Room()).peers[peer_id] = peer
        if self._reporter is None:
            self._reporter = asyncio.get_running_loop().create_task(self._guard(self._report_loop()))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "failed" and not peer.closed:
                self._spawn(self._connection_failed(peer))
            elif pc.connectionState == "connected" and not peer.closed:
                # Streams negotiated before the transport was up start now, on a keyframe requested now: one
                # requested earlier would have come back while nothing could be sent, and been lost.
                for sub in peer.subscriptions:
                    self._apply(peer, sub)

        offer = None
        if any(True for _ in self._rooms[room_id].sources()):
            # The first offer is in the reply, not pushed: a client cannot make its own offer before it has
            # applied the relay's. Offers that crossed here left Chromium with header extension ids of its own that
            # collide with the relay's in the bundle, and it then refused every later offer of that connection.
            try:
                async with peer.lock:
                    offer = await self._make_offer(peer)
            except BaseException:
                await self._close_peer(peer, renegotiate=False)
                raise
        return {"ice_servers": list(self._config.ice_servers), "offer": offer}

    async def offer(self, peer_id: str, sdp: str, tracks: dict[str, str]) -> dict[str, Any]:
        """Apply a client's offer; ``tracks`` names what each of its sending m-lines carries. Returns the answer."""
        peer = self._peer(peer_id)
        published = self._check_offer(sdp, tracks)
        async with peer.lock:
            if peer.closed:
                raise UnknownPeer(peer_id)
            if peer.pc.signalingState != "stable":
                raise NegotiationConflict("the relay's own offer is outstanding: answer it, then offer again")
            try:
                await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                peer.numbering.learn(sdp)
                for transceiver in peer.pc.getTransceivers():
                    if transceiver.mid in published:
                        adapter.keep_codecs(transceiver, FORWARDED_CODEC[transceiver.kind])
                answer = await peer.pc.createAnswer()
                await peer.pc.setLocalDescription(answer)
                peer.numbering.learn(answer.sdp)
            except MediaError:
                raise
            except Exception as exc:  # aiortc raises ValueError, OperationError, InvalidStateError...
                raise InvalidOffer(f"the offer could not be applied: {exc}") from exc
            adapter.harden_ice(peer.pc, self._dropped_datagram)
            changed = self._update_sources(peer, published)
            self._refresh_subscriptions(peer)
            result = {"sdp": peer.pc.localDescription.sdp, "tracks": peer.tracks()}
        if changed:
            self._renegotiate_others(peer)
        if peer.pending:
            self._schedule_negotiation(peer)
        return result

    async def answer(self, peer_id: str, sdp: str) -> None:
        """Apply the client's answer to the last ``media_offer``."""
        peer = self._peer(peer_id)
        async with peer.lock:
            if peer.closed:
                raise UnknownPeer(peer_id)
            if peer.pc.signalingState != "have-local-offer":
                raise NegotiationConflict("no media_offer is waiting for an answer")
            try:
                await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
                peer.numbering.learn(sdp)
            except Exception as exc:
                raise InvalidOffer(f"the answer could not be applied: {exc}") from exc
            self._refresh_subscriptions(peer)
        if peer.pending:
            self._schedule_negotiation(peer)

    async def candidate(self, peer_id: str, candidate: dict[str, Any] | None) -> None:
        """A trickled remote candidate (``RTCIceCandidateInit``: candidate, sdpMid, sdpMLineIndex), or None at end."""
        peer = self._peer(peer_id)
        if candidate is None or not candidate.get("candidate"):
            return  # aiortc gathers and checks without an end-of-candidates marker
        try:
            parsed = adapter.parse_candidate(candidate)
            await peer.pc.addIceCandidate(parsed)
        except Exception as exc:
            raise InvalidOffer(f"bad ICE candidate: {exc}") from exc

    def set_allowed(self, room_id: str, user_id: int, kinds: frozenset[Media]) -> None:
        """What ``user_id`` may publish in ``room_id`` from now on; the rest stops being forwarded at once."""
        room = self._rooms.setdefault(room_id, _Room())
        room.allowed[user_id] = frozenset(kinds)
        for peer in room.peers.values():
            if peer.user_id == user_id:
                for source in peer.sources.values():
                    source.set_allowed(source.kind in kinds)

    async def set_audio_only(self, peer_id: str, on: bool) -> None:
        """Stop (or resume) forwarding video to this peer. Turning it off also clears an automatic switch."""
        peer = self._peer(peer_id)
        peer.audio_only = on
        if not on:
            peer.audio_only_auto = False
            peer.monitor.reset(time.monotonic())
            peer._sent_snapshot = peer.video_totals()
        for sub in peer.subscriptions:
            self._apply(peer, sub)

    async def leave(self, peer_id: str) -> None:
        """One connection is gone: close its peer. Unknown peers are ignored (leave may race a failure)."""
        peer = self._peers.get(peer_id)
        if peer is not None:
            await self._close_peer(peer)

    async def remove_user(self, room_id: str, user_id: int) -> None:
        """Close every connection of ``user_id`` in ``room_id`` and forget what they were allowed to publish."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        room.allowed.pop(user_id, None)
        for peer in [p for p in room.peers.values() if p.user_id == user_id]:
            await self._close_peer(peer)

    async def close_room(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        for peer in list(room.peers.values()):
            await self._close_peer(peer, renegotiate=False)
        self._rooms.pop(room_id, None)

    async def close(self) -> None:
        """Close every room and peer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for room_id in list(self._rooms):
            await self.close_room(room_id)
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Peers whose closing began elsewhere (a leave() that was cancelled) finish before close() returns.
        await asyncio.gather(*self._closing.values(), return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        sources = sum(len(peer.sources) for peer in self._peers.values())
        subscriptions = sum(1 for peer in self._peers.values() for sub in peer.subscriptions if sub.source is not None)
        return {
            **self._counters.as_dict(),
            "rooms": len(self._rooms),
            "peers": len(self._peers),
            "sources": sources,
            "subscriptions": subscriptions,
        }

    # -- helpers for tests and operations -------------------------------------------------------------------------

    def local_addresses(self, peer_id: str) -> list[tuple[str, int]]:
        """The UDP (host, port) pairs the relay gathered for a peer, e.g. to check a firewall."""
        peer = self._peer(peer_id)
        addresses: set[tuple[str, int]] = set()
        for transceiver in peer.pc.getTransceivers():
            for candidate in transceiver.sender.transport.transport.iceGatherer.getLocalCandidates():
                addresses.add((candidate.ip, candidate.port))
        return sorted(addresses)

    # -- internals ------------------------------------------------------------------------------------------------

    def _peer(self, peer_id: str) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None:
            raise UnknownPeer(f"no media peer {peer_id}")
        return peer

    def _check_offer(self, sdp: str, tracks: dict[str, str]) -> dict[str, Media]:
        """The m-lines of the offer the client publishes on, with their kind; InvalidOffer if inconsistent."""
        if not isinstance(sdp, str) or not isinstance(tracks, dict):
            raise InvalidOffer("sdp must be a string and tracks an object")
        try:
            media = {mid: (kind, direction, codecs) for mid, kind, direction, codecs in adapter.offered_media(sdp)}
        except ValueError as exc:
            raise InvalidOffer(str(exc)) from exc
        published: dict[str, Media] = {}
        for mid, name in tracks.items():
            try:
                kind = Media(name)
            except ValueError:
                raise InvalidOffer(f"track {mid!r}: unknown kind {name!r}") from None
            if mid not in media:
                raise InvalidOffer(f"track {mid!r} is not an m-line of the offer")
            media_kind, direction, codecs = media[mid]
            if media_kind != MEDIA_KIND[kind]:
                raise InvalidOffer(f"track {mid!r} is {media_kind}, not a {kind.value} track")
            if direction not in ("sendonly", "sendrecv"):
                continue  # the client stopped sending on it
            wanted = FORWARDED_CODEC[media_kind]
            if not any(codec.lower() == wanted.lower() for codec in codecs):
                raise InvalidOffer(f"track {mid!r} does not offer {wanted}, the only codec the relay forwards")
            published[mid] = kind
        return published

    def _update_sources(self, peer: _Peer, published: dict[str, Media]) -> bool:
        """Match the peer's sources to what it now publishes. True if anything changed."""
        room = self._rooms[peer.room_id]
        allowed = room.allowed.get(peer.user_id, frozenset())
        receiving: dict[str, tuple[Media, RTCRtpReceiver]] = {}
        for transceiver in peer.pc.getTransceivers():
            mid = transceiver.mid
            if mid in published and transceiver.currentDirection in ("recvonly", "sendrecv"):
                receiving[mid] = (published[mid], transceiver.receiver)
        changed = False
        for mid, source in list(peer.sources.items()):
            if mid not in receiving or receiving[mid][0] != source.kind:
                source.close()
                del peer.sources[mid]
                changed = True
        for mid, (kind, receiver) in receiving.items():
            if mid not in peer.sources:
                source = _Source(peer, mid, kind, receiver, self._counters, self._config.keyframe_interval)
                source.set_allowed(kind in allowed)
                peer.sources[mid] = source
                changed = True
        return changed

    def _renegotiate_others(self, peer: _Peer) -> None:
        room = self._rooms.get(peer.room_id)
        if room is not None:
            for other in room.peers.values():
                if other is not peer:
                    self._schedule_negotiation(other)

    def _schedule_negotiation(self, peer: _Peer) -> None:
        if peer.closed or self._closed:
            return
        peer.pending = True
        if peer.task is None or peer.task.done():
            peer.task = asyncio.get_running_loop().create_task(self._negotiate(peer))

    async def _negotiate(self, peer: _Peer) -> None:
        """Send the peer an offer matching the room's sources; coalesces changes made meanwhile."""
        try:
            while peer.pending and not peer.closed:
                async with peer.lock:
                    if peer.closed or peer.pc.signalingState != "stable":
                        return  # answer() or offer() picks ``pending`` up when the negotiation under way ends
                    payload = await self._make_offer(peer)
                if payload is not None:
                    await self._signal(peer.id, "media_offer", payload)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("renegotiating media with peer %s failed", peer.id)

    async def _make_offer(self, peer: _Peer) -> dict[str, Any] | None:
        """With the peer's lock held and its signalling stable: an offer for the room's sources as they are now, set
        as the local description, as ``{"sdp", "tracks"}``; None if nothing changed since the last one."""
        peer.pending = False
        if not self._sync_subscriptions(peer):
            return None
        # Not pc.createOffer() alone: it would renumber what is negotiated (see adapter.Numbering).
        offer = await peer.numbering.create_offer(peer.pc)
        await peer.pc.setLocalDescription(offer)
        adapter.harden_ice(peer.pc, self._dropped_datagram)
        return {"sdp": peer.pc.localDescription.sdp, "tracks": peer.tracks()}

    def _sync_subscriptions(self, peer: _Peer) -> bool:
        """Bind the peer's outgoing m-lines to the room's sources, adding m-lines as needed. True if changed."""
        room = self._rooms[peer.room_id]
        wanted = [source for source in room.sources() if source.peer is not peer and not source.closed]
        changed = False
        for sub in peer.subscriptions:
            if sub.source is not None and (sub.source.closed or sub.source not in wanted):
                sub.unbind()
            if sub.source is None and sub.transceiver.direction != "inactive":
                sub.transceiver.direction = "inactive"
                changed = True
        bound = {sub.source for sub in peer.subscriptions if sub.source is not None}
        for source in wanted:
            if source in bound:
                continue
            free = next((s for s in peer.subscriptions if s.source is None and s.media == source.media), None)
            sub = free if free is not None else self._add_subscription(peer, source.media)
            sub.transceiver.direction = "sendonly"
            sub.negotiated = False
            sub.bind(source)
            changed = True
        return changed

    def _add_subscription(self, peer: _Peer, media: str) -> _Subscription:
        transceiver = peer.pc.addTransceiver(_IdleTrack(media), direction="sendonly")
        mime = FORWARDED_CODEC[media].lower()
        preferred = [
            codec
            for codec in RTCRtpSender.getCapabilities(media).codecs
            if codec.mimeType.lower() == mime or codec.mimeType.lower() == f"{media}/rtx"
        ]
        transceiver.setCodecPreferences(preferred)
        ssrc, rtx_ssrc = adapter.sender_ssrcs(transceiver.sender)
        sender = transceiver.sender
        stream = OutgoingStream(
            is_video=media == "video",
            ssrc=ssrc,
            rtx_ssrc=rtx_ssrc,
            clock_rate=CLOCK_RATE[media],
            history_size=self._config.video_history if media == "video" else self._config.audio_history,
            counters=self._counters,
        )
        adapter.quiet_sender(sender)  # its sender reports come from _report_loop, all of a peer's in one packet
        sub = _Subscription(peer, transceiver, stream, media)
        adapter.tap_sender(sender, lambda packet: self._on_subscriber_rtcp(sub, packet))
        peer.subscriptions.append(sub)
        return sub

    def _refresh_subscriptions(self, peer: _Peer) -> None:
        """After a negotiation: payload types, wires and which outgoing streams may flow."""
        for sub in peer.subscriptions:
            transceiver = sub.transceiver
            sub.negotiated = False
            if transceiver.currentDirection in ("sendonly", "sendrecv"):
                codecs = adapter.negotiated_codecs(transceiver)
                mime = FORWARDED_CODEC[sub.media].lower()
                main = next((c for c in codecs if c.mimeType.lower() == mime and c.payloadType is not None), None)
                if main is not None and main.payloadType is not None:
                    rtx = next(
                        (
                            c
                            for c in codecs
                            if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") == main.payloadType
                        ),
                        None,
                    )
                    sub.stream.set_payload_types(main.payloadType, None if rtx is None else rtx.payloadType)
                    sub.stream.send = peer.wire(adapter.dtls_transport(transceiver)).sink
                    sub.negotiated = True
            self._apply(peer, sub)

    def _apply(self, peer: _Peer, sub: _Subscription) -> None:
        """Start or stop one outgoing stream according to negotiation, its transport, its source and audio-only.

        Not before the subscriber's DTLS transport is up: until then every packet is lost (no SRTP keys), the first
        keyframe with them, and the subscriber would start decoding on frames that refer to it.
        """
        stream = sub.stream
        flowing = (
            sub.negotiated
            and sub.source is not None
            and not (stream.is_video and peer.video_off)
            and adapter.dtls_connected(sub.transceiver)
        )
        if flowing and not stream.active:
            stream.restart()
            stream.active = True
            if stream.is_video and sub.source is not None:
                sub.source.keyframes.request()  # a new subscriber starts on a keyframe: ask for one now
        elif not flowing:
            stream.active = False

    def _on_subscriber_rtcp(self, sub: _Subscription, packet: AnyRtcpPacket) -> None:
        counters = self._counters
        stream = sub.stream
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            counters.nacks_received += len(packet.lost)
            if stream.active and sub.source is not None and sub.source.allowed:
                stream.retransmit(packet.lost)
            if stream.is_video and stream.active:
                self._judge(sub.peer, sub.peer.monitor.on_nack(len(packet.lost), time.monotonic()))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            counters.plis_received += 1
            if stream.active and sub.source is not None:
                sub.source.keyframes.request()
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)) and stream.is_video and stream.active:
            peer = sub.peer
            now = time.monotonic()
            for report in packet.reports:
                if report.ssrc == stream.ssrc:
                    self._judge(peer, peer.monitor.on_receiver_report(report.fraction_lost, now))
            packets, dropped = peer.video_totals()
            before = peer._sent_snapshot
            peer._sent_snapshot = (packets, dropped)
            self._judge(peer, peer.monitor.on_sent(packets - before[0], dropped - before[1], now))

    def _judge(self, peer: _Peer, congested: bool) -> None:
        if not congested or not self._config.auto_audio_only or peer.video_off or peer.closed:
            return
        peer.audio_only_auto = True
        self._counters.audio_only_auto += 1
        for sub in peer.subscriptions:
            self._apply(peer, sub)
        payload = {"tracks": peer.tracks(), "audio_only": True, "reason": "congestion"}
        self._spawn(self._signal(peer.id, "media_tracks", payload))

    async def _report_loop(self) -> None:
        """RTCP sender reports for every subscriber's streams, one compound packet per transport, while peers exist.

        One task for the relay instead of aiortc's one per sender (see :func:`media.aiortc_adapter.quiet_sender`).
        """
        while self._peers:
            await asyncio.sleep(self._config.report_interval * (0.5 + random.random()))
            unix_time, now = time.time(), time.monotonic()
            for peer in list(self._peers.values()):
                by_wire: dict[adapter.Wire, list[OutgoingStream]] = {}
                cname = None
                for sub in peer.subscriptions:
                    if sub.negotiated:
                        wire = peer.wire(adapter.dtls_transport(sub.transceiver))
                        by_wire.setdefault(wire, []).append(sub.stream)
                        cname = cname or adapter.sender_cname(sub.transceiver.sender)
                for wire, streams in by_wire.items():
                    for packet in sender_reports(streams, cname or "quanzi", unix_time, now):
                        wire.send(packet)

    def _dropped_datagram(self) -> None:
        self._counters.dropped_datagrams += 1

    async def _connection_failed(self, peer: _Peer) -> None:
        await self._close_peer(peer)
        await self._signal(peer.id, "media_closed", {"reason": "connection_failed"})

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._guard(coroutine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(coroutine: Any) -> None:
        try:
            await coroutine
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("a media relay background task failed")

    async def _close_peer(self, peer: _Peer, renegotiate: bool = True) -> None:
        if peer.closed:
            closing = self._closing.get(peer.id)
            if closing is not None:
                await asyncio.shield(closing)
            return
        peer.closed = True
        self._peers.pop(peer.id, None)
        if not self._peers and self._reporter is not None:
            self._reporter.cancel()
            self._reporter = None
        room = self._rooms.get(peer.room_id)
        if room is not None:
            room.peers.pop(peer.id, None)
        # Shielded: a caller cancelled half-way (a socket handler torn down) must not leave sockets open.
        closing = asyncio.get_running_loop().create_task(self._finish_closing(peer, renegotiate))
        self._closing[peer.id] = closing
        closing.add_done_callback(lambda _: self._closing.pop(peer.id, None))
        await asyncio.shield(closing)

    async def _finish_closing(self, peer: _Peer, renegotiate: bool) -> None:
        task = peer.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        had_sources = bool(peer.sources)
        for source in peer.sources.values():
            source.close()
        peer.sources.clear()
        for sub in peer.subscriptions:
            sub.unbind()
        await adapter.close_connection(peer.pc)
        room = self._rooms.get(peer.room_id)
        if had_sources and renegotiate and room is not None:
            for other in room.peers.values():
                self._schedule_negotiation(other)
