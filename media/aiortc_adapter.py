"""Every touch of aiortc's (and aioice's) internals, in one place.

aiortc has no public API for packet forwarding: its receivers always depacketize and decode, its senders always
encode. The relay needs to see RTP after SRTP decryption and RTX unwrapping, and to put RTP on the wire without an
encoder. This module does exactly that and nothing else, so an aiortc upgrade has one file to review.
``pyproject.toml`` pins aiortc exactly; :func:`check_internals` lists what moved (``tests/test_media_adapter.py``
fails with that list).

What is touched, and why:

* ``RTCRtpReceiver._handle_rtp_packet`` is replaced per receiver by :func:`tap_receiver`, which keeps the receiver's
  duties a forwarder still needs (receive statistics for its RTCP receiver reports, REMB, RTX unwrap, NACK
  generation towards the publisher) and hands the packet over instead of depacketizing and decoding it. It reads the
  receiver's name-mangled state: ``__codecs``, ``__rtx_ssrc``, ``__remote_streams``, ``__nack_generator``,
  ``__remote_bitrate_estimator``, ``__rtcp_ssrc``.
* ``RTCRtpSender._handle_rtcp_packet`` is replaced per sender by :func:`tap_sender`: NACK, PLI/FIR and receiver
  reports from a subscriber belong to the relay, not to an encoder the sender does not have.
* ``RTCRtpSender._run_rtcp`` is replaced per sender by :func:`quiet_sender`: aiortc runs one RTCP task per sender,
  waking about once a second to send a report about an encoder the sender does not have. The relay sends the
  sender reports of all of a subscriber's streams itself, in one compound packet (``media.forwarding``), and the
  replacement only keeps ``__rtcp_started`` / ``__rtcp_exited`` as ``stop()`` expects. :func:`sender_cname` reads
  ``__cname`` for the reports' SDES.
* ``RTCRtpSender._ssrc`` / ``_rtx_ssrc``: the SSRCs aiortc announced in the SDP, which forwarded packets must carry.
* ``RTCRtpTransceiver._codecs``: the negotiated codecs (payload types per subscriber; the relay also narrows a
  publisher's to the codecs it forwards before answering).
* :class:`Wire` sends on a DTLS transport synchronously: ``RTCDtlsTransport._state`` / ``_tx_srtp`` (and its
  ``statechange`` event, emitted by ``_set_state``), aioice's ``Connection._nominated`` pair, its
  ``protocol.transport._sock`` (asyncio's socket) and ``remote_addr``, and pylibsrtp's ``Session._srtp`` (the
  ``srtp_t``) and ``lib.srtp_protect``, whose addresses the C sink (``media/_forward.c``) is given. aiortc's own
  path is a chain of coroutines per packet and pylibsrtp allocates per call; the direct path is what makes hundreds
  of subscribers per core possible, and the kernel refusing a packet (full SO_SNDBUF) is the relay's signal to drop.
* :class:`Numbering` rewrites the offers ``RTCPeerConnection.createOffer`` makes: aiortc resets every transceiver's
  ``_codecs`` and ``_headerExtensions`` to its defaults (VP8 97, RTX 98, Opus 96; extension ids mid 1, abs-send-time
  3, audio-level 2) on each offer, whatever was negotiated before. A renegotiation would then renumber the m-lines
  a browser publishes on (Chromium picks VP8 96 / RTX 97 when it offers first): the browser follows the new
  numbering and the relay's receiver, whose payload types were fixed when it started, drops every packet (its
  RTX type is the browser's new VP8 type); and the browser refuses extension ids that change on an active m-line.
  It reads ``_codecs`` / ``_headerExtensions`` and sets them back.
* :func:`harden_ice` wraps aioice ``StunProtocol.datagram_received`` (``Connection._protocols``): aioice queues any
  non-STUN datagram from anyone, and aiortc's DTLS loop indexes ``data[0]``, so one empty datagram would kill the
  connection.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import contextlib
import importlib
import inspect
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any, Final

import aioice.ice
import aiortc
import pylibsrtp
from aiortc import (
    RTCIceCandidate,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)
from aiortc.sdp import SessionDescription, candidate_from_sdp

from media.forwarding import Sink

logger = logging.getLogger(__name__)

# pylibsrtp's cffi binding (untyped): a Wire's sink calls libsrtp's srtp_protect directly, see Wire.
_srtp_binding: Any = importlib.import_module("pylibsrtp._binding")
_srtp_ffi: Any = _srtp_binding.ffi
_srtp_lib: Any = _srtp_binding.lib
# What a Sink calls to protect a packet: libsrtp's own function, by address (the extension does not link libsrtp).
_SRTP_PROTECT: Final = int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, "srtp_protect")))

AIORTC_VERSION: Final = "1.16.0"
"""The only aiortc version this module was checked against; ``pyproject.toml`` pins it."""

RtpTap = Callable[[RtpPacket, RTCRtpCodecParameters], None]
"""Called with each RTP packet a receiver got (decrypted, RTX unwrapped) and its negotiated codec."""

RtcpTap = Callable[[AnyRtcpPacket], None]
"""Called with each RTCP packet routed to a sender (NACK, PLI, FIR, REMB, receiver reports)."""

_PLI: Final = struct.Struct("!BBHII")
_MAX_PROTECTED: Final = 1400  # pylibsrtp's buffer is 1500 bytes; leave room for the SRTP trailer

_RECEIVER_STATE: Final = (
    "_RTCRtpReceiver__codecs",
    "_RTCRtpReceiver__rtx_ssrc",
    "_RTCRtpReceiver__remote_streams",
    "_RTCRtpReceiver__nack_generator",
    "_RTCRtpReceiver__remote_bitrate_estimator",
    "_RTCRtpReceiver__rtcp_ssrc",
    "_enabled",
)
_SENDER_RTCP_STATE: Final = (
    "_RTCRtpSender__rtcp_started",
    "_RTCRtpSender__rtcp_exited",
    "_RTCRtpSender__cname",
)


def _mangled(obj: object, owner: str, name: str) -> Any:
    """A name-mangled private attribute (``self.__name`` inside class ``owner``)."""
    return getattr(obj, f"_{owner}__{name}")


def tap_receiver(receiver: RTCRtpReceiver, on_packet: RtpTap) -> None:
    """Make ``receiver`` hand its RTP packets to ``on_packet`` instead of decoding them.

    Safe to call before the receiver is started: the dictionaries read here are created in ``__init__`` and filled
    in place by ``receive()``.
    """
    codecs: dict[int, RTCRtpCodecParameters] = _mangled(receiver, "RTCRtpReceiver", "codecs")
    rtx_ssrc: dict[int, int] = _mangled(receiver, "RTCRtpReceiver", "rtx_ssrc")
    remote_streams: dict[int, StreamStatistics] = _mangled(receiver, "RTCRtpReceiver", "remote_streams")
    nack_generator: Any = _mangled(receiver, "RTCRtpReceiver", "nack_generator")
    estimator: Any = _mangled(receiver, "RTCRtpReceiver", "remote_bitrate_estimator")

    async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not receiver._enabled:
            return
        if estimator is not None and packet.extensions.abs_send_time is not None:
            # Keep feeding REMB to the publisher: without it a browser never raises its bitrate.
            remb = estimator.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            rtcp_ssrc = _mangled(receiver, "RTCRtpReceiver", "rtcp_ssrc")
            if rtcp_ssrc is not None and remb is not None:
                feedback = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))
                await receiver._send_rtcp(feedback)
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        # Receive statistics feed the receiver's own RTCP receiver reports to the publisher.
        stream = remote_streams.get(packet.ssrc)
        if stream is None:
            stream = remote_streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if is_rtx(codec):
            original_ssrc = rtx_ssrc.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int) or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
        if nack_generator is not None and nack_generator.add(packet):
            await receiver._send_rtcp_nack(packet.ssrc, sorted(nack_generator.missing))
        try:
            on_packet(packet, codec)
        except Exception:
            # A bug in forwarding must not tear down the publisher's DTLS transport (its loop would stop).
            logger.exception("forwarding an RTP packet failed")

    setattr(receiver, "_handle_rtp_packet", handle_rtp_packet)  # noqa: B010 - an instance attribute shadows the method


def tap_sender(sender: RTCRtpSender, on_rtcp: RtcpTap) -> None:
    """Route the RTCP a subscriber sends about ``sender``'s stream to ``on_rtcp`` instead of aiortc's encoder logic."""

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        try:
            on_rtcp(packet)
        except Exception:
            logger.exception("handling a subscriber's RTCP failed")

    setattr(sender, "_handle_rtcp_packet", handle_rtcp_packet)  # noqa: B010 - an instance attribute shadows the method


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The (media, RTX) SSRCs aiortc announces for ``sender`` in its SDP."""
    return int(sender._ssrc), int(sender._rtx_ssrc)


def quiet_sender(sender: RTCRtpSender) -> None:
    """Keep ``sender`` from running its own RTCP loop: the relay sends its sender reports (see the module docstring).

    Call before the sender starts (before the description that starts it is applied).
    """
    started: asyncio.Event = _mangled(sender, "RTCRtpSender", "rtcp_started")
    exited: asyncio.Event = _mangled(sender, "RTCRtpSender", "rtcp_exited")

    async def run_rtcp() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # until stop() cancels it, as it cancels aiortc's own loop
        except asyncio.CancelledError:
            pass
        exited.set()

    setattr(sender, "_run_rtcp", run_rtcp)  # noqa: B010 - an instance attribute shadows the method


def sender_cname(sender: RTCRtpSender) -> str | None:
    """The CNAME ``sender`` was started with (None before it started)."""
    cname = _mangled(sender, "RTCRtpSender", "cname")
    return None if cname is None else str(cname)


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs negotiated for ``transceiver`` (after a description was applied), preferred first."""
    return list(transceiver._codecs)


def keep_codecs(transceiver: RTCRtpTransceiver, mime_type: str) -> bool:
    """Narrow ``transceiver``'s negotiated codecs to ``mime_type`` and its RTX, before an answer is created.

    The relay forwards packets as they come, so a publisher must send a codec every subscriber can take. Returns
    False if ``mime_type`` is not among the negotiated codecs.
    """
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    kept = [codec for codec in codecs if codec.mimeType.lower() == mime_type.lower()]
    if not kept:
        return False
    payload_types = {codec.payloadType for codec in kept}
    kept += [codec for codec in codecs if is_rtx(codec) and codec.parameters.get("apt") in payload_types]
    transceiver._codecs = kept
    return True


def request_keyframe(receiver: RTCRtpReceiver, wire: Wire, media_ssrc: int) -> bool:
    """Send a PLI for ``media_ssrc`` from ``receiver`` to its publisher, now. False if it cannot be sent yet."""
    rtcp_ssrc = _mangled(receiver, "RTCRtpReceiver", "rtcp_ssrc")
    if rtcp_ssrc is None:
        return False
    # RFC 4585 6.3.1: V=2, FMT=1 (PLI), PT=206 (PSFB), length 2 (32-bit words minus one).
    return wire.send(_PLI.pack(0x81, 206, 2, rtcp_ssrc, media_ssrc)) == SENT


SENT: Final = 1
CONGESTED: Final = 0
NOT_CONNECTED: Final = -1


class Wire:
    """Synchronous SRTP send on one DTLS transport, dropping instead of queueing when the socket is backed up.

    RTP goes out through :attr:`sink`, a :class:`media.forwarding.Sink` (C): per packet one libsrtp call on the
    transport's own SRTP session and one ``sendto`` on (a duplicate of) the nominated pair's socket, nothing else:
    the per-subscriber cost is what limits the relay. The sink is attached when the transport reports itself
    connected (its ``statechange`` event) and detached when it is no longer, so the hot path checks nothing but a
    descriptor. Its own descriptor keeps the socket open until then, so a socket aioice closed first is never
    confused with another one that reuses its number. RTCP and other rare packets go through :meth:`send`.

    A full socket buffer (``max_buffer`` bytes, set as the socket's SO_SNDBUF) makes the kernel refuse the packet,
    and it is dropped: a slow subscriber never delays others.
    """

    __slots__ = ("_addr", "_dtls", "_max_buffer", "_pair", "_sendto", "_srtp", "sink")

    def __init__(self, dtls: RTCDtlsTransport, max_buffer: int) -> None:
        self._dtls = dtls
        self._max_buffer = max_buffer
        self._pair: aioice.ice.CandidatePair | None = None
        self._addr: tuple[str, int] = ("", 0)
        self._sendto: Any = None
        self._srtp: Any = None
        self.sink = Sink()
        dtls.on("statechange", self._on_state)
        self._on_state()

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self._dtls

    def send(self, data: bytes) -> int:
        """Protect and send one RTP or RTCP packet: :data:`SENT`, :data:`CONGESTED` or :data:`NOT_CONNECTED`."""
        if self._dtls._state is not State.CONNECTED:
            return NOT_CONNECTED
        if not self._current() and not self._resolve():
            return NOT_CONNECTED
        if len(data) < 2 or len(data) > _MAX_PROTECTED:
            return NOT_CONNECTED  # not a packet, or larger than any MTU: never sent
        try:
            # RTCP (packet types 192-223, RFC 5761 4) is protected with SRTCP.
            protected = self._srtp.protect_rtcp(data) if 191 < data[1] < 224 else self._srtp.protect(data)
        except (ValueError, pylibsrtp.Error):
            return NOT_CONNECTED  # refused by libsrtp: never sent
        try:
            self._sendto(protected, self._addr)
        except (BlockingIOError, InterruptedError):
            return CONGESTED
        except OSError:
            return NOT_CONNECTED
        return SENT

    def _current(self) -> bool:
        """Whether what this wire sends with is still the transport's nominated pair and SRTP session."""
        dtls = self._dtls
        pair = dtls.transport._connection._nominated.get(1)
        return self._sendto is not None and pair is self._pair and dtls._tx_srtp is self._srtp

    def _on_state(self) -> None:
        if self._dtls._state is State.CONNECTED:
            self._resolve()
        else:
            self._release()

    def _release(self) -> None:
        self.sink.detach()
        self._pair = None
        self._srtp = None
        self._sendto = None

    def _resolve(self) -> bool:
        self._release()
        dtls = self._dtls
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None or dtls._tx_srtp is None:
            return False
        transport = getattr(pair.protocol, "transport", None)
        sock = getattr(transport, "_sock", None)
        if not isinstance(sock, socket.socket) or sock.fileno() < 0:
            # A relayed (TURN) pair has no datagram socket of its own; the relay itself never uses TURN.
            return False
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._max_buffer)
        srtp = dtls._tx_srtp
        host, port = pair.remote_addr[0], pair.remote_addr[1]
        session = int(_srtp_ffi.cast("uintptr_t", srtp._srtp[0]))
        self.sink.attach(fd=sock.fileno(), host=host, port=port, session=session, protect=_SRTP_PROTECT, keep=srtp)
        self._pair = pair
        self._srtp = srtp
        self._sendto = sock.sendto
        self._addr = (host, port)
        return True


async def close_connection(pc: RTCPeerConnection) -> None:
    """Close ``pc`` and stop what aiortc started behind the close.

    aiortc's connect task can resume after ``close()`` has stopped the transceivers but before the DTLS transport
    reports itself closed, and then starts a receiver or sender whose RTCP task nobody ever stops. Letting that
    task run, then stopping every receiver and sender again (both are idempotent), closes the leak.
    """
    await pc.close()
    for _ in range(3):
        await asyncio.sleep(0)
    for transceiver in pc.getTransceivers():
        await transceiver.receiver.stop()
        await transceiver.sender.stop()


_BROWSER_EXTENSION_IDS: Final = {
    # Chromium's own defaults: a browser that adds an m-line proposes these, so an unused one is the safe choice.
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1,
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2,
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01": 3,
    "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
    "urn:ietf:params:rtp-hdrext:toffset": 14,
}
_MAX_ONE_BYTE_ID: Final = 14
_DYNAMIC_PAYLOAD_TYPES: Final = range(96, 128)
_LOWER_DYNAMIC_PAYLOAD_TYPES: Final = range(35, 64)


def _codec_key(codec: RTCRtpCodecParameters) -> tuple[str, int, int]:
    return (codec.mimeType.lower(), codec.clockRate, codec.channels or 1)


class Numbering:
    """One connection's payload types and header extension ids, kept stable across its renegotiations.

    In a BUNDLE every m-line shares one transport: a payload type or an extension id must mean the same thing on
    all of them, and must not change on an m-line once negotiated (browsers refuse both). :meth:`learn` reads every
    description exchanged (the client's choices win); :meth:`create_offer` makes the relay's offer keep each
    negotiated m-line's numbering and number new m-lines consistently with the rest of the session.
    """

    def __init__(self) -> None:
        self._extension_ids: dict[str, int] = {}  # uri -> id
        self._extension_uris: dict[int, str] = {}  # id -> uri
        self._payload_types: dict[tuple[str, int, int], int] = {}  # codec -> payload type (not RTX)
        self._rtx_types: dict[int, int] = {}  # apt -> RTX payload type
        self._taken: set[int] = set()  # payload types in use for anything

    def learn(self, sdp: str) -> None:
        """Remember the numbering of one description (the client's or the relay's). Malformed SDP is ignored."""
        try:
            description = SessionDescription.parse(sdp)
        except Exception:
            return
        for media in description.media:
            if media.kind not in ("audio", "video"):
                continue
            for extension in media.rtp.headerExtensions:
                self._extension_ids.setdefault(extension.uri, extension.id)
                self._extension_uris.setdefault(extension.id, extension.uri)
            for codec in media.rtp.codecs:
                if codec.payloadType is None:
                    continue
                self._taken.add(codec.payloadType)
                apt = codec.parameters.get("apt")
                if is_rtx(codec):
                    if isinstance(apt, int):
                        self._rtx_types.setdefault(apt, codec.payloadType)
                else:
                    self._payload_types.setdefault(_codec_key(codec), codec.payloadType)

    async def create_offer(self, pc: RTCPeerConnection) -> RTCSessionDescription:
        """``pc.createOffer()``, with negotiated m-lines numbered as negotiated and new ones consistently."""
        negotiated = {
            transceiver: (list(transceiver._codecs), list(transceiver._headerExtensions))
            for transceiver in pc.getTransceivers()
            if transceiver.mid is not None and transceiver._codecs
        }
        offer = await pc.createOffer()
        description = SessionDescription.parse(offer.sdp)
        # createOffer numbered each transceiver's m-line; new ones get their mid only in setLocalDescription.
        by_index = {transceiver._get_mline_index(): transceiver for transceiver in pc.getTransceivers()}
        for index, media in enumerate(description.media):
            if media.kind not in ("audio", "video"):
                continue
            transceiver = by_index.get(index)
            if transceiver is None or transceiver.kind != media.kind:
                continue
            if transceiver in negotiated:
                codecs, extensions = negotiated[transceiver]
            else:
                codecs = self._number_codecs(list(transceiver._codecs))
                extensions = self._number_extensions(list(transceiver._headerExtensions))
            transceiver._codecs = codecs
            transceiver._headerExtensions = extensions
            media.fmt = [codec.payloadType for codec in codecs]
            media.rtp.codecs = codecs
            media.rtp.headerExtensions = extensions
        sdp = str(description)
        self.learn(sdp)
        return RTCSessionDescription(sdp=sdp, type="offer")

    def _free_payload_type(self, preferred: int | None) -> int:
        if preferred is not None and preferred not in self._taken:
            return preferred
        # Chromium offers dozens of codecs and fills 96-127, then goes on at 35-63 (RFC 3551 leaves them unassigned).
        free = (pt for pt in (*_DYNAMIC_PAYLOAD_TYPES, *_LOWER_DYNAMIC_PAYLOAD_TYPES) if pt not in self._taken)
        return next(free, preferred if preferred is not None else 96)

    def _number_codecs(self, codecs: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
        renumbered: dict[int, int] = {}  # aiortc's default payload type -> the session's
        result = []
        for codec in codecs:
            if is_rtx(codec):
                continue
            key = _codec_key(codec)
            pt = self._payload_types.get(key)
            if pt is None:
                pt = self._free_payload_type(codec.payloadType)
                self._payload_types[key] = pt
                self._taken.add(pt)
            if codec.payloadType is not None:
                renumbered[codec.payloadType] = pt
            result.append(RTCRtpCodecParameters(
                mimeType=codec.mimeType, clockRate=codec.clockRate, channels=codec.channels, payloadType=pt,
                rtcpFeedback=list(codec.rtcpFeedback), parameters=dict(codec.parameters),
            ))
        for codec in codecs:
            apt = codec.parameters.get("apt")
            if not is_rtx(codec) or apt not in renumbered:
                continue
            apt = renumbered[apt]
            pt = self._rtx_types.get(apt)
            if pt is None:
                pt = self._free_payload_type(codec.payloadType)
                self._rtx_types[apt] = pt
                self._taken.add(pt)
            # Each RTX right after its codec, as aiortc orders them.
            index = next(i for i, c in enumerate(result) if c.payloadType == apt) + 1
            result.insert(index, RTCRtpCodecParameters(
                mimeType=codec.mimeType, clockRate=codec.clockRate, channels=codec.channels, payloadType=pt,
                rtcpFeedback=list(codec.rtcpFeedback), parameters={**codec.parameters, "apt": apt},
            ))
        return result

    def _number_extensions(
        self, extensions: list[RTCRtpHeaderExtensionParameters]
    ) -> list[RTCRtpHeaderExtensionParameters]:
        result = []
        for extension in extensions:
            ext_id = self._extension_ids.get(extension.uri)
            if ext_id is None:
                preferred = _BROWSER_EXTENSION_IDS.get(extension.uri)
                candidates = ([preferred] if preferred is not None else []) + list(range(1, _MAX_ONE_BYTE_ID + 1))
                free = next((i for i in candidates if i not in self._extension_uris), None)
                if free is None:
                    continue  # every one-byte id is taken: not offering an extension is always safe
                ext_id = free
                self._extension_ids[extension.uri] = ext_id
                self._extension_uris[ext_id] = extension.uri
            result.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=extension.uri))
        return result


def dtls_transport(transceiver: RTCRtpTransceiver) -> RTCDtlsTransport:
    return transceiver.sender.transport


def dtls_connected(transceiver: RTCRtpTransceiver) -> bool:
    """Whether ``transceiver``'s DTLS transport has its SRTP keys (what :meth:`Wire.send` needs)."""
    return bool(transceiver.sender.transport._state is State.CONNECTED)


def harden_ice(pc: RTCPeerConnection, on_dropped: Callable[[], None]) -> None:
    """Drop the datagrams that would kill aiortc's DTLS loop (an empty one: it reads ``data[0]``)."""
    for transceiver in pc.getTransceivers():
        connection = transceiver.sender.transport.transport._connection
        for protocol in connection._protocols:
            if getattr(protocol, "_quanzi_hardened", False):
                continue
            setattr(protocol, "_quanzi_hardened", True)  # noqa: B010 - marks a protocol already wrapped
            setattr(protocol, "datagram_received", _filtered(protocol.datagram_received, on_dropped))  # noqa: B010


def _filtered(
    original: Callable[[bytes, tuple[Any, ...]], None], on_dropped: Callable[[], None]
) -> Callable[[bytes, tuple[Any, ...]], None]:
    # Not filtered by source address: right after ICE the controlled side may send DTLS on a pair the other side
    # has not nominated yet, and dropping it stalls the handshake. Anything else that is not STUN is harmless:
    # SRTP authentication or DTLS record checks reject it.
    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if not data:
            on_dropped()
            return
        original(data, addr)

    return datagram_received


def offered_media(sdp: str) -> list[tuple[str, str, str, list[str]]]:
    """(mid, kind, direction, codec mime types) of each audio/video m-line in an SDP offer.

    Raises ValueError if the SDP does not parse.
    """
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the malformed line triggers
        raise ValueError(f"malformed SDP: {exc}") from exc
    media = []
    for line in description.media:
        if line.kind in ("audio", "video"):
            mid = line.rtp.muxId
            media.append((mid, line.kind, line.direction or "sendrecv", [codec.mimeType for codec in line.rtp.codecs]))
    if not media:
        raise ValueError("the SDP has no audio or video m-line")
    return media


def parse_candidate(init: dict[str, Any]) -> RTCIceCandidate:
    """An ``RTCIceCandidateInit`` (browser JSON) as aiortc's candidate object. Raises ValueError if malformed."""
    line = str(init["candidate"])
    if line.startswith("candidate:"):
        line = line[len("candidate:") :]
    candidate = candidate_from_sdp(line)
    mid = init.get("sdpMid")
    index = init.get("sdpMLineIndex")
    candidate.sdpMid = None if mid is None else str(mid)
    candidate.sdpMLineIndex = None if index is None else int(index)
    return candidate


def check_internals() -> list[str]:
    """What this module relies on that is missing or changed in the installed aiortc/aioice; empty when all is well."""
    problems: list[str] = []
    if aiortc.__version__ != AIORTC_VERSION:
        problems.append(f"aiortc is {aiortc.__version__}, this adapter was written against {AIORTC_VERSION}")

    def names(function: object) -> set[str]:
        code = getattr(function, "__code__", None)
        return set(code.co_names) if code is not None else set()

    def params(function: object) -> list[str]:
        return list(inspect.signature(function).parameters)  # type: ignore[arg-type]

    receiver_init = names(RTCRtpReceiver.__init__)
    for attribute in _RECEIVER_STATE:
        if attribute not in receiver_init:
            problems.append(f"RTCRtpReceiver.__init__ no longer sets {attribute}")
    for method, expected in (
        ("_handle_rtp_packet", ["self", "packet", "arrival_time_ms"]),
        ("_send_rtcp", ["self", "packet"]),
        ("_send_rtcp_nack", ["self", "media_ssrc", "lost"]),
        ("receive", ["self", "parameters"]),
    ):
        function = getattr(RTCRtpReceiver, method, None)
        if function is None or params(function) != expected:
            problems.append(f"RTCRtpReceiver.{method} is missing or its parameters are not {expected}")
    receive = names(RTCRtpReceiver.receive)
    for attribute in ("_RTCRtpReceiver__codecs", "_RTCRtpReceiver__rtx_ssrc"):
        if attribute not in receive:
            problems.append(f"RTCRtpReceiver.receive no longer fills {attribute}")
    if "_RTCRtpReceiver__rtcp_ssrc" not in names(RTCRtpReceiver._set_rtcp_ssrc):
        problems.append("RTCRtpReceiver._set_rtcp_ssrc no longer sets _RTCRtpReceiver__rtcp_ssrc")

    sender_init = names(RTCRtpSender.__init__)
    for attribute in ("_ssrc", "_rtx_ssrc", *_SENDER_RTCP_STATE):
        if attribute not in sender_init:
            problems.append(f"RTCRtpSender.__init__ no longer sets {attribute}")
    if "_run_rtcp" not in names(RTCRtpSender.send):
        problems.append("RTCRtpSender.send no longer starts self._run_rtcp (quiet_sender replaces it)")
    stop = names(RTCRtpSender.stop)
    for attribute in ("_RTCRtpSender__rtcp_started", "_RTCRtpSender__rtcp_exited"):
        if attribute not in stop:
            problems.append(f"RTCRtpSender.stop no longer waits on {attribute}")
    if params(RTCRtpSender._handle_rtcp_packet) != ["self", "packet"]:
        problems.append("RTCRtpSender._handle_rtcp_packet(self, packet) changed")

    for attribute in ("_codecs", "_headerExtensions"):
        if attribute not in names(RTCRtpTransceiver.__init__):
            problems.append(f"RTCRtpTransceiver.__init__ no longer sets {attribute}")
    if not callable(getattr(RTCRtpTransceiver, "_get_mline_index", None)):
        problems.append("RTCRtpTransceiver._get_mline_index is gone")
    create_offer = names(RTCPeerConnection.createOffer)
    if "_codecs" not in create_offer or "_headerExtensions" not in create_offer:
        problems.append("RTCPeerConnection.createOffer no longer resets _codecs/_headerExtensions (Numbering)")

    if "_handle_rtp_packet" not in names(RTCDtlsTransport._handle_rtp_data):
        problems.append("RTCDtlsTransport._handle_rtp_data no longer calls receiver._handle_rtp_packet")
    if "_handle_rtcp_packet" not in names(RTCDtlsTransport._handle_rtcp_data):
        problems.append("RTCDtlsTransport._handle_rtcp_data no longer calls _handle_rtcp_packet")
    for attribute in ("_state", "_tx_srtp"):
        if attribute not in names(RTCDtlsTransport.__init__):
            problems.append(f"RTCDtlsTransport.__init__ no longer sets {attribute}")
    if not hasattr(State, "CONNECTED"):
        problems.append("aiortc.rtcdtlstransport.State.CONNECTED is gone")

    connection_init = names(aioice.ice.Connection.__init__)
    for attribute in ("_nominated", "_protocols"):
        if attribute not in connection_init:
            problems.append(f"aioice Connection.__init__ no longer sets {attribute}")
    if not isinstance(getattr(aioice.ice.CandidatePair, "remote_addr", None), property):
        problems.append("aioice CandidatePair.remote_addr is no longer a property")
    if "protocol" not in names(aioice.ice.CandidatePair.__init__):
        problems.append("aioice CandidatePair.__init__ no longer sets protocol")
    if "transport" not in names(aioice.ice.StunProtocol.connection_made):
        problems.append("aioice StunProtocol.connection_made no longer stores its transport")
    if params(aioice.ice.StunProtocol.datagram_received) != ["self", "data", "addr"]:
        problems.append("aioice StunProtocol.datagram_received(self, data, addr) changed")
    if "_connection" not in names(aiortc.RTCIceTransport.__init__):
        problems.append("RTCIceTransport.__init__ no longer sets _connection")

    if "emit" not in names(RTCDtlsTransport._set_state):
        problems.append("RTCDtlsTransport._set_state no longer emits statechange (Wire attaches its sink on it)")
    session_init = names(pylibsrtp.Session.__init__)
    for attribute in ("_srtp",):
        if attribute not in session_init:
            problems.append(f"pylibsrtp Session.__init__ no longer sets {attribute}")
    if "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)" not in str(_srtp_ffi.typeof(
        _srtp_ffi.addressof(_srtp_lib, "srtp_protect")
    )):
        problems.append("pylibsrtp._binding.lib.srtp_protect is not srtp_protect(srtp_t, void *, int *)")
    if "_sock" not in names(vars(asyncio.selector_events)["_SelectorTransport"].__init__):
        problems.append("asyncio's selector transport no longer keeps its socket in _sock")
    for function, expected in (
        (unwrap_rtx, ["rtx", "payload_type", "ssrc"]),
        (StreamStatistics.add, ["self", "packet"]),
    ):
        if params(function) != expected:
            problems.append(f"{function.__qualname__} parameters are not {expected}")
    return problems
