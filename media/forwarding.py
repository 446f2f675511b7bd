"""Packet-level forwarding: per-subscriber RTP rewriting, NACK history, keyframe gating and requests, congestion.

Nothing here knows aiortc, so the hot path stays small and testable. The relay (:mod:`media.relay`) wires these
pieces to peer connections through :mod:`media.aiortc_adapter`.

The per-subscriber part runs once per packet and subscriber, so it is C (``media/_forward.c``), re-exported here:

* :class:`OutgoingStream` is one forwarded track towards one subscriber: its SSRC, numbering, payload type and
  retransmission history. Sequence numbers and timestamps are the publisher's plus an offset, so the subscriber
  sees one continuous stream even when the relay pauses it (audio-only, revoked permission) or points it at another
  publisher: on every (re)start (``restart()``) video waits for the start of a keyframe and audio rebases, and the
  offsets are recomputed so numbering continues where the stream left off and timestamps advance by the wall-clock
  time that passed. Packets older than the restart point (late retransmissions) are not forwarded. ``retransmit``
  answers NACKs from the history, wrapped in RTX when negotiated (RFC 4588). A packet its ``send`` refuses (a full
  socket buffer) is lost for that subscriber, never queued, and stays in the history for a NACK. It keeps the
  figures an RTCP sender report needs (``packets``, ``octets``, ``last_ts``, ``last_time``), which
  :func:`sender_reports` turns into packets.
* :class:`Sink` is one subscriber's wire: it copies (header, payload) into its buffer, SRTP-protects it with the
  libsrtp session aiortc's DTLS transport made and sends it on (a duplicate of) that transport's UDP socket.
* :func:`forward_all` gives one source packet to every stream of a source.
* :class:`Counters` holds the relay's counters (``as_dict()`` for :meth:`media.relay.Relay.stats`).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from media._forward import Counters, OutgoingStream, Sink, forward_all

__all__ = [
    "CongestionMonitor",
    "Counters",
    "KeyframeRequester",
    "OutgoingStream",
    "SendPacket",
    "Sink",
    "forward_all",
    "sender_reports",
    "vp8_keyframe_start",
]

_VP8_START_CODE: Final = b"\x9d\x01\x2a"


def vp8_keyframe_start(payload: bytes) -> bool:
    """Whether an RTP payload is the first packet of a VP8 keyframe (RFC 7741 4.2 and 4.3, RFC 6386 9.1)."""
    size = len(payload)
    if size < 1:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S (start of partition) set and partition index 0
        return False
    offset = 1
    if first & 0x80:  # X: extension byte follows
        if size < 2:
            return False
        extension = payload[1]
        offset = 2
        if extension & 0x80:  # I: picture ID, 7 or 15 bits
            if size <= offset:
                return False
            offset += 2 if payload[offset] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            offset += 1
        if extension & 0x30:  # T or K: TID/Y/KEYIDX
            offset += 1
    # The VP8 frame tag: bit 0 clear means a key frame, which carries the start code after the 3-byte tag.
    if size < offset + 6:
        return False
    return not payload[offset] & 0x01 and payload[offset + 3 : offset + 6] == _VP8_START_CODE


SendPacket = Callable[[bytes, bytes], int]
"""Puts one RTP packet, given as (header, payload), on a subscriber's wire: 1 sent, 0 not sent (socket buffer
full), -1 not connected. Two parts so the payload, one object shared by every subscriber, is never copied. The
relay's is a :class:`Sink`; tests give any callable."""

_NTP_EPOCH_OFFSET: Final = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
_SENDER_REPORT: Final = struct.Struct("!BBHIIIIII")
_SDES_CHUNK_HEAD: Final = struct.Struct("!IBB")
_REPORTS_PER_PACKET: Final = 12  # a compound packet of 12 SR and 12 SDES chunks stays well under any MTU


def sender_reports(streams: list[OutgoingStream], cname: str, unix_time: float, now: float) -> list[bytes]:
    """RTCP sender reports (RFC 3550 6.4.1) with SDES CNAME chunks (6.5.1) for the streams that have sent anything,
    as compound packets (6.1) for one subscriber's transport. Empty if none has.

    ``unix_time`` and ``now`` (``time.monotonic()``) are the same instant: each report's RTP timestamp is the last
    packet's advanced by the time since it, so a paused stream still reports a timestamp that matches the clock
    (browsers use SRs for lip sync and for their statistics).
    """
    ntp = int((unix_time + _NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF
    name = cname.encode()[:255]
    sent = [stream for stream in streams if stream.packets]
    packets = []
    for start in range(0, len(sent), _REPORTS_PER_PACKET):
        group = sent[start : start + _REPORTS_PER_PACKET]
        parts = []
        for stream in group:
            elapsed = max(0.0, now - stream.last_time)
            rtp_ts = (stream.last_ts + int(elapsed * stream.clock_rate)) & 0xFFFFFFFF
            parts.append(_SENDER_REPORT.pack(
                0x80, 200, 6, stream.ssrc, ntp >> 32, ntp & 0xFFFFFFFF, rtp_ts,
                stream.packets & 0xFFFFFFFF, stream.octets & 0xFFFFFFFF,
            ))
        chunks = b""
        for stream in group:
            chunk = _SDES_CHUNK_HEAD.pack(stream.ssrc, 1, len(name)) + name
            chunks += chunk + b"\x00" * (4 - len(chunk) % 4)  # the item list ends with a null, padded to 32 bits
        parts.append(struct.pack("!BBH", 0x80 | len(group), 202, len(chunks) // 4) + chunks)
        packets.append(b"".join(parts))
    return packets


class KeyframeRequester:
    """Forwards subscribers' picture-loss requests to a publisher, at most one per ``interval``, none lost.

    A request inside the window is deferred to its end rather than dropped: a subscriber that joins right after
    another one's request still gets its keyframe. A request that cannot be sent yet (the publisher's transport is
    not up) is retried every ``interval`` until it goes out.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[], bool],
        counters: Counters,
        interval: float = 0.5,
    ) -> None:
        self._loop = loop
        self._send = send
        self._counters = counters
        self._interval = interval
        self._last = -interval
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def pending(self) -> bool:
        return self._timer is not None

    def request(self) -> None:
        if self._closed or self._timer is not None:
            return  # one is already scheduled: it will serve this request too
        wait = self._last + self._interval - self._loop.time()
        if wait <= 0:
            self._fire()
        else:
            self._counters.plis_deferred += 1
            self._timer = self._loop.call_later(wait, self._fire)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self._closed:
            return
        self._last = self._loop.time()
        if self._send():
            self._counters.plis_sent += 1
        else:
            self._timer = self._loop.call_later(self._interval, self._fire)


@dataclass
class CongestionMonitor:
    """Decides from a subscriber's RTCP that it cannot keep up with video.

    Signals: the fraction lost in its receiver reports (RFC 3550 6.4.1), the share of forwarded packets it NACKs
    (a NACK storm), and packets dropped because its socket buffer was full. Judged over windows of ``window``
    seconds; ``strikes`` bad windows in a row mean audio-only.
    """

    window: float = 2.0
    strikes: int = 2
    max_fraction_lost: float = 0.2
    max_nack_share: float = 0.25
    max_drop_share: float = 0.1
    _started: float = 0.0
    _sent: int = 0
    _nacked: int = 0
    _dropped: int = 0
    _worst_loss: float = 0.0
    _bad_windows: int = 0

    def on_receiver_report(self, fraction_lost: int, now: float) -> bool:
        self._worst_loss = max(self._worst_loss, fraction_lost / 256)
        return self._tick(now)

    def on_nack(self, count: int, now: float) -> bool:
        self._nacked += count
        return self._tick(now)

    def on_sent(self, sent: int, dropped: int, now: float) -> bool:
        self._sent += sent
        self._dropped += dropped
        return self._tick(now)

    def reset(self, now: float) -> None:
        self._started = now
        self._sent = self._nacked = self._dropped = 0
        self._worst_loss = 0.0
        self._bad_windows = 0

    def _tick(self, now: float) -> bool:
        """True when the subscriber should switch to audio-only."""
        if now - self._started < self.window:
            return False
        sent = max(self._sent, 1)
        bad = (
            self._worst_loss > self.max_fraction_lost
            or (self._sent >= 50 and self._nacked / sent > self.max_nack_share)
            or (self._sent >= 50 and self._dropped / (sent + self._dropped) > self.max_drop_share)
        )
        self._bad_windows = self._bad_windows + 1 if bad else 0
        self._started = now
        self._sent = self._nacked = self._dropped = 0
        self._worst_loss = 0.0
        return self._bad_windows >= self.strikes
