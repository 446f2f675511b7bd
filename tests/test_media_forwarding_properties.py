"""Properties of OutgoingStream (C) over random packet sequences: what a subscriber's decoder relies on."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from media.forwarding import Counters, OutgoingStream

HISTORY = 16
PT, RTX_PT = 101, 102


@dataclass
class Forward:
    step: int  # added to the source sequence number: 1 in order, 0 a duplicate, >1 a loss, large a jump or reorder
    keyframe: bool
    marker: bool
    size: int


@dataclass
class Restart:
    pass


@dataclass
class Pause:
    active: bool


@dataclass
class Nack:
    back: int  # how many packets back from the newest sent


operations = st.lists(
    st.one_of(
        st.builds(
            Forward,
            step=st.one_of(st.just(1), st.integers(0, 3), st.integers(0x7000, 0xFFFF)),
            keyframe=st.booleans(),
            marker=st.booleans(),
            size=st.integers(0, 1300),
        ),
        st.builds(Restart),
        st.builds(Pause, active=st.booleans()),
        st.builds(Nack, back=st.integers(0, HISTORY * 2)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(is_video=st.booleans(), rtx=st.booleans(), start_seq=st.integers(0, 0xFFFF), ops=operations)
def test_forwarded_streams_stay_continuous_and_retransmit_what_they_sent(
    is_video: bool, rtx: bool, start_seq: int, ops: list[object]
) -> None:
    counters = Counters()
    stream = OutgoingStream(
        is_video=is_video, ssrc=0x1234, rtx_ssrc=0x5678, clock_rate=90000, history_size=HISTORY, counters=counters
    )
    wire: list[bytes] = []
    stream.send = lambda header, payload: wire.append(header + payload) or 1
    stream.set_payload_types(PT, RTX_PT if rtx else None)
    stream.active = True

    seq, ts = start_seq, 1000
    sent: list[tuple[int, int, int, int, bytes]] = []  # (source seq, source ts, out seq, out ts, packet)
    history: dict[int, tuple[int, bytes]] = {}  # slot -> (out seq, packet): what the stream may retransmit
    restarted = True  # no packet sent since the stream (re)started
    started_at: int | None = None  # source seq where the current run began
    active = True
    octets = 0
    for op in ops:
        if isinstance(op, Restart):
            stream.restart()
            restarted, started_at = True, None
        elif isinstance(op, Pause):
            stream.active = active = op.active
        elif isinstance(op, Nack):
            if not sent:
                continue
            newest = sent[-1][2]
            wanted = (newest - op.back) & 0xFFFF
            before = len(wire)
            answered = stream.retransmit([wanted])
            slot = history.get(wanted % HISTORY)
            if slot is None or slot[0] != wanted:
                assert answered == 0 and len(wire) == before, "nothing resent that is not in the history"
                continue
            assert answered == 1
            original = slot[1]
            again = wire[-1]
            if rtx:
                # RFC 4588: RTX payload type and SSRC, the original sequence number in front of the payload.
                assert again[1] & 0x7F == RTX_PT and again[8:12] == struct.pack("!I", 0x5678)
                assert again[4:8] == original[4:8], "the original timestamp"
                assert again[12:14] == original[2:4] and again[14:] == original[12:]
            else:
                assert again == original, "the very packet, byte for byte"
        else:
            assert isinstance(op, Forward)
            seq = (seq + op.step) & 0xFFFF
            ts = (ts + 3000 * op.step) & 0xFFFFFFFF
            payload = bytes([op.size & 0xFF]) * op.size
            before = len(wire)
            stream.forward(seq, ts, op.marker, payload, op.keyframe)
            if len(wire) == before:
                # Not sent: paused, waiting for a keyframe, or older than where this run began.
                assert (
                    not active
                    or (is_video and restarted and not op.keyframe)
                    or (started_at is not None and (seq - started_at) & 0xFFFF >= 0x8000)
                )
                continue
            assert active
            packet = wire[-1]
            first, second, out_seq, out_ts, ssrc = struct.unpack("!BBHII", packet[:12])
            assert (first, second & 0x7F, ssrc) == (0x80, PT, 0x1234)
            assert bool(second & 0x80) == op.marker and packet[12:] == payload
            if restarted:
                if is_video:
                    assert op.keyframe, "video (re)starts on a keyframe"
                if sent:
                    assert out_seq == (sent[-1][2] + 1) & 0xFFFF, "numbering continues across a restart"
                started_at = seq
            else:
                last_seq, last_ts, last_out_seq, last_out_ts, _ = sent[-1]
                # Within a run the stream is the source shifted: the same gaps, the same timestamp steps.
                assert (out_seq - last_out_seq) & 0xFFFF == (seq - last_seq) & 0xFFFF
                assert (out_ts - last_out_ts) & 0xFFFFFFFF == (ts - last_ts) & 0xFFFFFFFF
            restarted = False
            sent.append((seq, ts, out_seq, out_ts, packet))
            history[out_seq % HISTORY] = (out_seq, packet)
            octets += len(payload)

    assert stream.packets == len(sent) == counters.packets_forwarded
    assert stream.octets == octets
    assert counters.bytes_forwarded == sum(len(packet) for *_, packet in sent)
    if sent:
        assert stream.last_ts == sent[-1][3]
