"""Packet rewriting, keyframe gating, retransmission, keyframe-request pacing, congestion and TURN credentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import struct

import pytest

from media.forwarding import CongestionMonitor, Counters, KeyframeRequester, OutgoingStream, vp8_keyframe_start
from media.turn import MAX_TTL, ice_servers_with_turn, turn_credentials

KEY_TAG = b"\x10\x02\x00\x9d\x01\x2a"  # frame tag with P=0 (key frame), then the VP8 start code
# A descriptor with S=1, X=1, I=1 (15-bit picture ID), L=1 and T=1, then a key frame.
KEY_EXTENDED = b"\x90\xe0\x80\x01\x00\x00" + KEY_TAG
DELTA = b"\x10\x03\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("payload", "keyframe"),
    [
        (b"\x10" + KEY_TAG[1:] + b"\x00" * 4, False),  # start code misplaced
        (b"\x10" + KEY_TAG, True),
        (KEY_EXTENDED, True),
        (b"\x10" + DELTA, False),  # a delta frame
        (b"\x00" + KEY_TAG, False),  # not the start of a partition
        (b"\x11" + KEY_TAG, False),  # partition 1
        (b"\x90", False),  # truncated extension
        (b"\x90\x80", False),  # truncated picture ID
        (b"", False),
    ],
)
def test_vp8_keyframe_detection(payload: bytes, keyframe: bool) -> None:
    assert vp8_keyframe_start(payload) is keyframe


def test_vp8_keyframe_detection_survives_any_bytes() -> None:
    import random

    rng = random.Random(3)
    for _ in range(5000):
        vp8_keyframe_start(bytes(rng.randrange(256) for _ in range(rng.randrange(12))))


class Sink:
    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.accept = True

    def __call__(self, header: bytes, payload: bytes) -> int:
        if self.accept:
            self.packets.append(header + payload)
        return 1 if self.accept else 0


def header(data: bytes) -> tuple[int, int, int, int, int]:
    first, second, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    return first, second, seq, ts, ssrc


def make_stream(is_video: bool = True, history: int = 64) -> tuple[OutgoingStream, Sink, Counters]:
    counters = Counters()
    stream = OutgoingStream(
        is_video=is_video, ssrc=0xAABB, rtx_ssrc=0xCCDD, clock_rate=90000, history_size=history, counters=counters
    )
    sink = Sink()
    stream.send = sink
    stream.set_payload_types(101, None)
    stream.active = True
    return stream, sink, counters


def test_a_video_stream_starts_on_a_keyframe_and_rewrites_headers() -> None:
    stream, sink, counters = make_stream()
    stream.forward(5000, 1000, 0, b"\x10" + DELTA, False)
    assert sink.packets == [] and counters.dropped_waiting_keyframe == 1
    stream.forward(5001, 4000, 0, b"\x10" + KEY_TAG, True)
    stream.forward(5002, 4000, 1, b"\x00more", False)
    first, second, seq, ts, ssrc = header(sink.packets[0])
    assert (first, second & 0x7F, ssrc) == (0x80, 101, 0xAABB)
    assert header(sink.packets[1])[2] == (seq + 1) & 0xFFFF
    assert header(sink.packets[1])[3] == ts
    assert header(sink.packets[1])[1] == 0x80 | 101  # marker kept
    assert sink.packets[1][12:] == b"\x00more"
    stream.forward(4999, 1000, 0, b"old", False)  # from before the start: never forwarded
    assert len(sink.packets) == 2


def test_a_restarted_stream_continues_its_numbering() -> None:
    stream, sink, _ = make_stream()
    stream.forward(100, 9000, 1, b"\x10" + KEY_TAG, True)
    last_seq, last_ts = header(sink.packets[-1])[2:4]
    stream.restart()  # e.g. now fed by another publisher, numbered differently
    stream.forward(60000, 123, 0, b"\x10" + DELTA, False)
    stream.forward(60001, 456, 1, b"\x10" + KEY_TAG, True)
    seq, ts = header(sink.packets[-1])[2:4]
    assert seq == (last_seq + 1) & 0xFFFF
    assert 0 < (ts - last_ts) & 0xFFFFFFFF < 90000  # advanced by the (short) time that passed


def test_nacks_are_answered_plainly_or_with_rtx() -> None:
    stream, sink, counters = make_stream()
    stream.forward(10, 0, 0, b"\x10" + KEY_TAG, True)
    stream.forward(11, 0, 1, b"\x00second", False)
    seq = header(sink.packets[1])[2]
    assert stream.retransmit([seq, (seq + 40) & 0xFFFF]) == 1
    assert sink.packets[-1] == sink.packets[1]
    assert counters.nacks_answered == 1 and counters.nacks_missed == 1

    stream.set_payload_types(101, 102)
    stream.retransmit([seq])
    rtx = sink.packets[-1]
    _, second, _, ts, ssrc = header(rtx)
    assert (second & 0x7F, ssrc, ts) == (102, 0xCCDD, header(sink.packets[1])[3])
    assert struct.unpack("!H", rtx[12:14])[0] == seq and rtx[14:] == b"\x00second"


def test_history_entries_are_overwritten_not_confused() -> None:
    stream, sink, _ = make_stream(history=4)
    stream.forward(0, 0, 0, b"\x10" + KEY_TAG, True)
    first_seq = header(sink.packets[0])[2]
    for n in range(1, 6):
        stream.forward(n, 0, 0, b"\x00x", False)
    assert stream.retransmit([first_seq]) == 0  # its slot now holds a later packet


def test_a_full_socket_drops_and_audio_needs_no_keyframe() -> None:
    stream, sink, counters = make_stream(is_video=False)
    sink.accept = False
    stream.forward(1, 960, 0, b"opus", True)
    assert counters.dropped_congestion == 1 and stream.dropped == 1
    sink.accept = True
    stream.forward(2, 1920, 0, b"opus", True)
    assert len(sink.packets) == 1 and counters.packets_forwarded == 1
    stream.active = False
    stream.forward(3, 2880, 0, b"opus", True)
    assert len(sink.packets) == 1


def test_history_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError):
        OutgoingStream(is_video=True, ssrc=1, rtx_ssrc=2, clock_rate=90000, history_size=100, counters=Counters())


async def test_keyframe_requests_are_rate_limited_but_never_lost() -> None:
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    ready = True

    def send() -> bool:
        if ready:
            sent.append(loop.time())
        return ready

    counters = Counters()
    requester = KeyframeRequester(loop, send, counters, interval=0.2)
    requester.request()
    assert len(sent) == 1
    requester.request()  # inside the window: deferred...
    requester.request()  # ...and merged with the one already waiting
    assert len(sent) == 1 and requester.pending
    await asyncio.sleep(0.3)
    assert len(sent) == 2 and 0.19 < sent[1] - sent[0] < 0.3
    ready = False  # the publisher's transport is down: retried until it is up
    await asyncio.sleep(0.25)
    requester.request()
    await asyncio.sleep(0.05)
    ready = True
    await asyncio.sleep(0.3)
    assert len(sent) == 3
    assert counters.plis_sent == 3 and counters.plis_deferred == 1
    requester.request()
    count = len(sent)
    requester.close()
    await asyncio.sleep(0.3)
    assert len(sent) == count, "a deferred request is not sent after close"
    assert not requester.pending


def test_congestion_needs_two_bad_windows_in_a_row() -> None:
    monitor = CongestionMonitor(window=1.0, strikes=2)
    assert not monitor.on_receiver_report(200, 0.5)
    assert not monitor.on_receiver_report(200, 1.1)  # first bad window
    assert not monitor.on_receiver_report(0, 2.2)  # a good one resets the count
    assert not monitor.on_receiver_report(200, 3.3)
    assert monitor.on_receiver_report(200, 4.4)
    monitor.reset(5.0)
    assert not monitor.on_sent(100, 0, 5.5)
    assert not monitor.on_nack(60, 6.1)
    assert not monitor.on_sent(100, 0, 6.5)
    assert monitor.on_nack(60, 7.2), "a NACK storm (60 of 100 packets) twice in a row"


def test_turn_credentials_follow_coturns_rest_scheme() -> None:
    credentials = turn_credentials("s3cret", "user42", ttl=600, now=1_700_000_000.7)
    assert credentials["username"] == "1700000600:user42"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1700000600:user42", hashlib.sha1).digest()).decode()
    assert credentials["credential"] == expected
    assert credentials["ttl"] == 600
    server = ice_servers_with_turn(["turn:turn.example.org:3478"], "s3cret", "user42", now=1_700_000_000)
    assert server["username"] == f"{1_700_000_000 + MAX_TTL}:user42"
    assert server["urls"] == ["turn:turn.example.org:3478"]
    for bad in (0, -1, MAX_TTL + 1):
        with pytest.raises(ValueError):
            turn_credentials("s3cret", "user42", ttl=bad)
    with pytest.raises(ValueError):
        turn_credentials("", "user42")
    with pytest.raises(ValueError):
        turn_credentials("s3cret", "a:b")


def test_sender_reports_describe_each_stream_that_has_sent_in_one_compound_packet() -> None:
    from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSrPacket

    from media.forwarding import sender_reports

    video, _, _ = make_stream(history=64)
    audio, _, _ = make_stream(is_video=False, history=64)
    idle, _, _ = make_stream()
    video.forward(10, 90_000, 1, b"\x10" + KEY_TAG, True)
    video.forward(11, 93_000, 0, b"\x10" + DELTA + b"abc", False)
    audio.forward(500, 48_000, 0, b"opus", True)
    later = video.last_time + 0.5  # half a second after the last video packet
    packets = sender_reports([video, audio, idle], "pc-cname", 1_700_000_000.25, later)
    assert len(packets) == 1
    parsed = RtcpPacket.parse(packets[0])
    reports = [p for p in parsed if isinstance(p, RtcpSrPacket)]
    assert [r.ssrc for r in reports] == [video.ssrc, audio.ssrc], "a stream that never sent has no report"
    first = reports[0].sender_info
    assert (first.packet_count, first.octet_count) == (2, video.octets)
    # Half a second at 90 kHz after the last packet's timestamp.
    assert (first.rtp_timestamp - video.last_ts) & 0xFFFFFFFF == 45_000
    assert first.ntp_timestamp >> 32 == 1_700_000_000 + 2_208_988_800
    assert abs((first.ntp_timestamp & 0xFFFFFFFF) / 2**32 - 0.25) < 1e-6
    sdes = next(p for p in parsed if isinstance(p, RtcpSdesPacket))
    cname = [(1, b"pc-cname")]
    assert [(c.ssrc, c.items) for c in sdes.chunks] == [(video.ssrc, cname), (audio.ssrc, cname)]
    assert sender_reports([idle], "x", 0.0, 0.0) == []


def test_sender_reports_for_many_streams_are_split_below_the_mtu() -> None:
    from aiortc.rtp import RtcpPacket, RtcpSrPacket

    from media.forwarding import sender_reports

    streams = []
    for _ in range(30):
        stream, _, _ = make_stream(is_video=False)
        stream.forward(1, 1, 0, b"x", True)
        streams.append(stream)
    packets = sender_reports(streams, "c" * 40, 1.0, 1.0)
    assert len(packets) == 3 and all(len(p) < 1200 for p in packets)
    ssrcs = [p.ssrc for packet in packets for p in RtcpPacket.parse(packet) if isinstance(p, RtcpSrPacket)]
    assert ssrcs == [s.ssrc for s in streams]
