"""Packet-level forwarding: per-subscriber RTP rewriting, NACK history, keyframe gating and requests, congestion.

Plain Python over bytes and callables: nothing here knows aiortc, so the hot path stays small and testable. The
relay (:mod:`media.relay`) wires these pieces to peer connections through :mod:`media.aiortc_adapter`.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Final

_HEADER: Final = struct.Struct("!BBHII")
_RTX_HEADER: Final = struct.Struct("!BBHIIH")
_VP8_START_CODE: Final = b"\x9d\x01\x2a"

# What a stream does with the next packet it is given.
_OPEN: Final = 0  # forward
_REBASE: Final = 1  # forward, continuing this stream's numbering from wherever the source is now
_KEYFRAME: Final = 2  # drop until the start of a keyframe, then rebase (a decoder cannot start elsewhere)


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


@dataclass
class Counters:
    """What the relay did, for :meth:`media.relay.Relay.stats`. Plain ints: incremented on the hot path."""

    packets_received: int = 0
    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    dropped_not_allowed: int = 0
    dropped_waiting_keyframe: int = 0
    dropped_congestion: int = 0  # not sent: the subscriber's socket buffer was full
    dropped_not_connected: int = 0  # not sent: the subscriber's DTLS transport was not up (yet)
    dropped_datagrams: int = 0
    nacks_received: int = 0
    nacks_answered: int = 0
    nacks_missed: int = 0
    plis_received: int = 0
    plis_sent: int = 0
    plis_deferred: int = 0
    audio_only_auto: int = 0

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


SendPacket = Callable[[bytes, bytes], int]
"""Puts one RTP packet, given as (header, payload), on a subscriber's wire: 1 sent, 0 not sent (socket buffer
full), -1 not connected. Two parts so the payload, one object shared by every subscriber, is never copied here."""

SenderReport = Callable[[float, int, int, int], None]
"""Told (unix time, RTP timestamp, packets, octets) of the stream now and then, for RTCP sender reports."""


class OutgoingStream:
    """One forwarded track towards one subscriber: its SSRC, numbering, payload type and retransmission history.

    Sequence numbers and timestamps are the publisher's plus an offset, so the subscriber sees one continuous
    stream even when the relay pauses it (audio-only, revoked permission) or points it at another publisher: on
    every (re)start the offsets are recomputed so numbering continues where the stream left off and timestamps
    advance by the wall-clock time that passed.
    """

    __slots__ = (
        "_clock_rate",
        "_counters",
        "_first_seq",
        "_gate",
        "_headers",
        "_last_time",
        "_last_ts",
        "_mask",
        "_next_seq",
        "_octets",
        "_payloads",
        "_pt_byte",
        "_report",
        "_rtx_pt_byte",
        "_rtx_seq",
        "_seq_offset",
        "_ts_offset",
        "active",
        "dropped",
        "is_video",
        "packets",
        "rtx_ssrc",
        "send",
        "ssrc",
    )

    def __init__(
        self,
        *,
        is_video: bool,
        ssrc: int,
        rtx_ssrc: int,
        clock_rate: int,
        history_size: int,
        counters: Counters,
        report: SenderReport | None = None,
    ) -> None:
        if history_size <= 0 or history_size & (history_size - 1):
            raise ValueError("history_size must be a power of two")
        self.is_video = is_video
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.active = False
        self.send: SendPacket = _not_connected
        self._clock_rate = clock_rate
        self._counters = counters
        self._report = report
        # Headers and payloads in two lists rather than a list of tuples: bytes are not tracked by the cyclic
        # garbage collector, tuples are, and tens of thousands of them a second would keep it busy. The payload
        # is the source packet's own object, shared by every subscriber's history.
        self._headers: list[bytes] = [b""] * history_size
        self._payloads: list[bytes] = [b""] * history_size
        self._mask = history_size - 1
        self._pt_byte = 0
        self._rtx_pt_byte: int | None = None
        # Random starting points, as a fresh RTP sender would pick (RFC 3550 5.1), in the lower half of the
        # sequence space so SRTP's rollover estimate is not stressed early on.
        self._next_seq = random.randrange(0x8000)
        self._rtx_seq = random.randrange(0x8000)
        self._last_ts = random.randrange(1 << 32)
        self._last_time: float | None = None
        self._seq_offset = 0
        self._ts_offset = 0
        self._first_seq = 0
        self._gate = _KEYFRAME if is_video else _REBASE
        self.packets = 0
        self.dropped = 0
        self._octets = 0

    def set_payload_types(self, payload_type: int, rtx_payload_type: int | None) -> None:
        """The subscriber's negotiated payload types for the codec and its RTX (None: retransmit plainly)."""
        self._pt_byte = payload_type & 0x7F
        self._rtx_pt_byte = None if rtx_payload_type is None else rtx_payload_type & 0x7F

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._gate == _KEYFRAME

    def restart(self) -> None:
        """Resume after a pause or a change of source: video waits for a keyframe, audio rebases."""
        self._gate = _KEYFRAME if self.is_video else _REBASE

    def forward(self, seq: int, ts: int, marker: int, payload: bytes, keyframe: bool) -> None:
        """Rewrite one source packet for this subscriber and send it. The hot path: keep it short."""
        if not self.active:
            return
        if self._gate:
            if self._gate == _KEYFRAME and not keyframe:
                self._counters.dropped_waiting_keyframe += 1
                return
            self._rebase(seq, ts)
        elif (seq - self._first_seq) & 0xFFFF >= 0x8000:
            # Older than where this stream (re)started: a late retransmission of a packet it never carried.
            return
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (ts + self._ts_offset) & 0xFFFFFFFF
        header = _HEADER.pack(0x80, self._pt_byte | (marker << 7), out_seq, out_ts, self.ssrc)
        slot = out_seq & self._mask
        self._headers[slot] = header
        self._payloads[slot] = payload
        self._next_seq = (out_seq + 1) & 0xFFFF
        self._last_ts = out_ts
        now = time.monotonic()
        self._last_time = now
        self.packets += 1
        self._octets += len(payload)
        counters = self._counters
        sent = self.send(header, payload)
        if sent > 0:
            counters.packets_forwarded += 1
            counters.bytes_forwarded += 12 + len(payload)
        elif sent == 0:
            # The subscriber's socket buffer is full: this packet is lost for it, never queued. It stays in the
            # history, so a NACK can still recover it once the buffer drains.
            counters.dropped_congestion += 1
            self.dropped += 1
        else:
            counters.dropped_not_connected += 1
        if not out_seq & 15 and self._report is not None:
            # Every 16th packet is plenty for sender reports, which go out about once a second.
            self._report(time.time(), out_ts, self.packets, self._octets)

    def retransmit(self, lost: list[int]) -> int:
        """Resend the packets a subscriber NACKed, wrapped in RTX when negotiated (RFC 4588). Returns how many."""
        sent = 0
        for seq in lost:
            slot = seq & self._mask
            header = self._headers[slot]
            if not header or (header[2] << 8 | header[3]) != seq:
                self._counters.nacks_missed += 1
                continue
            payload = self._payloads[slot]
            if self._rtx_pt_byte is not None:
                rtx_seq = self._rtx_seq
                self._rtx_seq = (rtx_seq + 1) & 0xFFFF
                # RTX header with the original timestamp, then the original sequence number, then the payload.
                marker = header[1] & 0x80
                header = _RTX_HEADER.pack(0x80, self._rtx_pt_byte | marker, rtx_seq, _ts(header), self.rtx_ssrc, seq)
            if self.send(header, payload) > 0:
                sent += 1
        self._counters.nacks_answered += sent
        return sent

    def _rebase(self, seq: int, ts: int) -> None:
        self._seq_offset = (self._next_seq - seq) & 0xFFFF
        if self._last_time is None:
            self._ts_offset = (self._last_ts - ts) & 0xFFFFFFFF
        else:
            elapsed = max(1, int((time.monotonic() - self._last_time) * self._clock_rate))
            self._ts_offset = (self._last_ts + elapsed - ts) & 0xFFFFFFFF
        self._first_seq = seq
        self._gate = _OPEN


def _ts(data: bytes) -> int:
    return int.from_bytes(data[4:8], "big")


def _not_connected(header: bytes, payload: bytes) -> int:
    return -1


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
