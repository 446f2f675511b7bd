"""The aiortc internals the relay relies on are still where ``media/aiortc_adapter.py`` expects them.

When an aiortc upgrade moves one, these fail and name it; fix the adapter (and only the adapter), then the pin.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path

import aiortc
import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpDecodingParameters,
    RTCRtpReceiveParameters,
    RTCRtpRtxParameters,
)
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket

from media import aiortc_adapter

ROOT = Path(__file__).resolve().parents[1]


def test_the_internals_the_adapter_uses_are_there() -> None:
    problems = aiortc_adapter.check_internals()
    assert not problems, "aiortc internals used by media/aiortc_adapter.py moved:\n  " + "\n  ".join(problems)


def test_aiortc_is_pinned_to_the_version_the_adapter_was_written_for() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d for d in dependencies if re.match(r"aiortc\b", d)]
    assert pins == [f"aiortc=={aiortc_adapter.AIORTC_VERSION}"], f"pyproject.toml must pin aiortc exactly: {pins}"
    assert aiortc.__version__ == aiortc_adapter.AIORTC_VERSION


def test_the_check_names_what_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is not a formality: an upgrade whose sender no longer starts its RTCP loop the way
    :func:`quiet_sender` expects is reported."""

    async def send_elsewhere(self: RTCRtpSender, parameters: object) -> None:
        return None

    monkeypatch.setattr(RTCRtpSender, "send", send_elsewhere)
    monkeypatch.setattr(aiortc, "__version__", "9.9.9")
    problems = aiortc_adapter.check_internals()
    assert any("RTCRtpSender.send no longer starts self._run_rtcp" in p for p in problems)
    assert any("9.9.9" in p for p in problems)


def _transport() -> RTCDtlsTransport:
    return RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])


async def test_the_receiver_tap_sees_packets_unwrapped_and_undecoded() -> None:
    receiver = RTCRtpReceiver("video", _transport())
    receiver._track = RemoteStreamTrack(kind="video")  # what setRemoteDescription does before receive()
    seen: list[tuple[int, int, bytes, str]] = []
    aiortc_adapter.tap_receiver(receiver, lambda p, c: seen.append((p.ssrc, p.sequence_number, p.payload, c.mimeType)))
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=100)
    rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=101, parameters={"apt": 100})
    await receiver.receive(
        RTCRtpReceiveParameters(
            codecs=[vp8, rtx],
            muxId="0",
            encodings=[RTCRtpDecodingParameters(ssrc=1111, payloadType=100, rtx=RTCRtpRtxParameters(ssrc=2222))],
        )
    )
    try:
        media = RtpPacket(payload_type=100, sequence_number=7, timestamp=90, ssrc=1111, payload=b"\x10\x00\x9d")
        # RTX (RFC 4588): the original sequence number (5) in front of the original payload.
        retransmission = RtpPacket(payload_type=101, sequence_number=1, timestamp=80, ssrc=2222, payload=b"\x00\x05xy")
        unknown = RtpPacket(payload_type=55, sequence_number=8, timestamp=90, ssrc=1111, payload=b"zz")
        for packet in (media, retransmission, unknown):
            await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
        assert seen == [(1111, 7, b"\x10\x00\x9d", "video/VP8"), (1111, 5, b"xy", "video/VP8")]
        assert receiver.track._queue.qsize() == 0, "nothing went to the decoder"
    finally:
        await receiver.stop()


async def test_the_sender_tap_gets_the_subscribers_rtcp() -> None:
    sender = RTCRtpSender("video", _transport())
    seen: list[object] = []
    aiortc_adapter.tap_sender(sender, seen.append)
    ssrc, rtx_ssrc = aiortc_adapter.sender_ssrcs(sender)
    assert ssrc != rtx_ssrc
    pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=ssrc)
    await sender._handle_rtcp_packet(pli)
    assert seen == [pli]


async def test_a_quiet_sender_runs_no_rtcp_loop_and_still_stops() -> None:
    sender = RTCRtpSender("video", _transport())
    aiortc_adapter.quiet_sender(sender)
    sent: list[object] = []

    async def record(packets: object) -> None:
        sent.append(packets)

    sender._send_rtcp = record  # type: ignore[method-assign]
    task = asyncio.ensure_future(sender._run_rtcp())
    await asyncio.sleep(1.7)  # aiortc's own loop would have sent a report by now (every 0.5-1.5 s)
    assert sent == [] and not task.done()
    assert sender._RTCRtpSender__rtcp_started.is_set()  # type: ignore[attr-defined]
    task.cancel()
    await asyncio.wait_for(sender._RTCRtpSender__rtcp_exited.wait(), 1)  # type: ignore[attr-defined]
    assert aiortc_adapter.sender_cname(sender) is None  # set only when the sender starts


async def test_offered_media_reads_mids_kinds_directions_and_codecs() -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        media = aiortc_adapter.offered_media(pc.localDescription.sdp)
    finally:
        await pc.close()
    assert [(mid, kind, direction) for mid, kind, direction, _ in media] == [
        ("0", "video", "sendonly"),
        ("1", "audio", "recvonly"),
    ]
    assert "video/VP8" in media[0][3] and "audio/opus" in media[1][3]
    with pytest.raises(ValueError):
        aiortc_adapter.offered_media("v=0\r\n")
