"""The media relay with real aiortc peers over real UDP: publishers encode, subscribers decode, the relay forwards.

Each client is an ``RTCPeerConnection`` in this process, signalling with the relay through direct calls (the
Socket.IO wiring is the hub's). The relay never decodes; the subscribers do, and the tests assert on what they
decode: pictures, tones, when they start and when they stop.
"""

from __future__ import annotations

import asyncio
import fractions
import gc
import logging
import math
import os
import re
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import pytest
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription

from media import aiortc_adapter
from media.relay import InvalidOffer, NegotiationConflict, Relay, RelayConfig
from rooms.classroom import Media

ROOM = "room-1"
EVERYTHING = frozenset({Media.CAMERA, Media.MICROPHONE, Media.SCREEN})


class PatternVideo(VideoStreamTrack):
    """320x240 frames whose brightness sweeps with time, so consecutive pictures differ."""

    def __init__(self, base: int = 0) -> None:
        super().__init__()
        self._base = base
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._count += 1
        planes = np.full((240 * 3 // 2, 320), 128, dtype=np.uint8)
        planes[:240, :] = (self._base + self._count * 3) % 200 + 28
        planes[:240, (self._count * 4) % 320 :][:, :16] = 255  # a moving bar
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        return frame


class ToneAudio(AudioStreamTrack):
    """A 440 Hz tone, 20 ms per frame."""

    def __init__(self) -> None:
        super().__init__()
        self._sample = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        samples = 960
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._sample / 48000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        pts = self._sample
        t = np.arange(self._sample, self._sample + samples) / 48000.0
        self._sample += samples
        data = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


@dataclass
class Received:
    """What a subscriber decoded on one forwarded track."""

    kind: str = ""
    user_id: int = 0
    frames: int = 0
    first_at: float | None = None
    last_at: float | None = None
    sizes: set[tuple[int, int]] = field(default_factory=set)
    brightness: set[int] = field(default_factory=set)
    loud: int = 0


class Client:
    """One browser stand-in: a peer connection that publishes and/or decodes what the relay sends."""

    def __init__(self, relay: Relay, peer_id: str, user_id: int, room: str = ROOM) -> None:
        self.relay = relay
        self.peer_id = peer_id
        self.user_id = user_id
        self.room = room
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tracks: dict[str, dict[str, Any]] = {}
        self.received: dict[str, Received] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.published: dict[str, RTCRtpTransceiver] = {}
        self.kinds: dict[str, str] = {}
        self.rewrite: Callable[[str], str] | None = None  # what a browser would do differently to its offers
        self._consumers: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    async def join(self) -> dict[str, Any]:
        joined = await self.relay.join(self.room, self.peer_id, self.user_id)
        if joined["offer"] is not None:  # the room has publishers: the relay's first offer comes with the reply
            await self._answer(joined["offer"])
        return joined

    async def add(self, track: MediaStreamTrack, kind: Media) -> RTCRtpTransceiver:
        # aiortc pairs a remote offer's m-line with any unnegotiated local transceiver of the same kind: adding
        # one while a relay offer is on its way would hijack it.
        await self.quiet()
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        self.published[kind.value] = transceiver
        return transceiver

    async def quiet(self) -> None:
        """Wait until the relay has no offer for this client in flight.

        A browser resolves crossing offers by rolling its own back (it is the polite side, see docs/media.md);
        aiortc cannot roll back, so this stand-in avoids offering while the relay is renegotiating with it.
        """
        peer = self.relay._peers[self.peer_id]
        await until(
            lambda: (peer.task is None or peer.task.done()) and self.pc.signalingState == "stable",
            10,
            "the relay's renegotiation with this client ends",
        )

    async def offer(self) -> None:
        await self.quiet()
        offer = await self.pc.createOffer()
        if self.rewrite is not None:
            offer = RTCSessionDescription(sdp=self.rewrite(offer.sdp), type="offer")
        await self.pc.setLocalDescription(offer)
        tracks = {
            t.mid: kind
            for kind, t in self.published.items()
            if t.mid is not None and t.direction in ("sendonly", "sendrecv")
        }
        result = await self.relay.offer(self.peer_id, self.pc.localDescription.sdp, tracks)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=result["sdp"], type="answer"))
        self._set_tracks(result["tracks"])

    async def publish(self, video: bool = True, audio: bool = True) -> None:
        if video:
            await self.add(PatternVideo(self.user_id * 40), Media.CAMERA)
        if audio:
            await self.add(ToneAudio(), Media.MICROPHONE)
        await self.offer()

    async def signal(self, event: str, payload: dict[str, Any]) -> None:
        self.events.append((event, payload))
        if event == "media_offer":
            await self._answer(payload)
        elif event == "media_tracks":
            self._set_tracks(payload["tracks"])

    async def _answer(self, offer: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._set_tracks(offer["tracks"])
        await self.relay.answer(self.peer_id, self.pc.localDescription.sdp)

    def _set_tracks(self, tracks: dict[str, dict[str, Any]]) -> None:
        self.tracks = dict(tracks)
        for mid, info in tracks.items():
            received = self.received.setdefault(mid, Received())
            received.kind = info["kind"]
            received.user_id = info["user_id"]

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
        self._consumers.append(asyncio.get_running_loop().create_task(self._consume(mid, track)))

    async def _consume(self, mid: str, track: MediaStreamTrack) -> None:
        received = self.received.setdefault(mid, Received())
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                received.frames += 1
                received.first_at = received.first_at or now
                received.last_at = now
                if isinstance(frame, av.VideoFrame):
                    received.sizes.add((frame.width, frame.height))
                    luma = frame.to_ndarray(format="gray")
                    received.brightness.add(int(np.median(luma)) // 8)
                elif isinstance(frame, av.AudioFrame):
                    if np.abs(frame.to_ndarray()).max() > 2000:
                        received.loud += 1
        except MediaStreamError:
            pass

    def of(self, user_id: int, kind: Media) -> Received:
        for received in self.received.values():
            if received.user_id == user_id and received.kind == kind.value:
                return received
        return Received()

    async def close(self) -> None:
        await aiortc_adapter.close_connection(self.pc)
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)


class Harness:
    def __init__(self, config: RelayConfig | None = None) -> None:
        self.clients: dict[str, Client] = {}
        self.relay = Relay(config or RelayConfig(ice_servers=[{"urls": ["stun:stun.example.org"]}]), self._signal)

    async def _signal(self, peer_id: str, event: str, payload: dict[str, Any]) -> None:
        client = self.clients.get(peer_id)
        if client is not None:
            await client.signal(event, payload)

    async def client(self, peer_id: str, user_id: int, room: str = ROOM) -> Client:
        client = Client(self.relay, peer_id, user_id, room)
        self.clients[peer_id] = client
        publishing = any(True for _ in self.relay._rooms[room].sources()) if room in self.relay._rooms else False
        joined = await client.join()
        assert joined["ice_servers"] == [{"urls": ["stun:stun.example.org"]}]
        assert (joined["offer"] is not None) == publishing, "the first offer comes with the reply when others publish"
        return client

    async def close(self) -> None:
        for client in list(self.clients.values()):
            await client.close()
        await self.relay.close()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        await h.close()


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds}s waiting for: {what}")
        await asyncio.sleep(0.02)


async def frames_flowing(received: Callable[[], Received], seconds: float = 1.0) -> int:
    """How many frames arrived over the next ``seconds``."""
    before = received().frames
    await asyncio.sleep(seconds)
    return received().frames - before


async def test_three_subscribers_decode_the_publishers_video_and_audio(harness: Harness) -> None:
    publisher = await harness.client("pub", 1)
    harness.relay.set_allowed(ROOM, 1, frozenset({Media.CAMERA, Media.MICROPHONE}))
    await publisher.publish()
    subscribers = [await harness.client(f"sub{i}", 10 + i) for i in range(3)]

    for sub in subscribers:
        await until(lambda sub=sub: sub.of(1, Media.CAMERA).frames >= 30, 10, f"{sub.peer_id} decodes 30 frames")
        await until(lambda sub=sub: sub.of(1, Media.MICROPHONE).loud >= 25, 10, f"{sub.peer_id} hears the tone")
    for sub in subscribers:
        video = sub.of(1, Media.CAMERA)
        assert video.sizes == {(320, 240)}
        assert len(video.brightness) > 3, "the pictures change, as the publisher's do"
        assert {info["kind"] for info in sub.tracks.values()} == {"camera", "microphone"}
        assert {info["user_id"] for info in sub.tracks.values()} == {1}
        assert sub.pc.connectionState == "connected"

    stats = harness.relay.stats()
    assert stats["packets_forwarded"] > stats["packets_received"] * 2
    assert stats["peers"] == 4
    assert stats["sources"] == 2
    assert stats["subscriptions"] == 6
    # The relay never decodes: its receivers' tracks (fed only by aiortc's decoder) stay empty.
    relay_peer = harness.relay._peers["pub"]
    for transceiver in relay_peer.pc.getTransceivers():
        assert transceiver.receiver.track._queue.qsize() == 0


async def test_subscribers_get_sender_reports_for_what_the_relay_sends_them(harness: Harness) -> None:
    publisher = await harness.client("pub", 1)
    harness.relay.set_allowed(ROOM, 1, frozenset({Media.CAMERA, Media.MICROPHONE}))
    await publisher.publish()
    sub = await harness.client("sub", 2)
    await until(lambda: sub.of(1, Media.CAMERA).frames >= 10, 10, "video flows")

    async def stats_of(kind: str) -> dict[str, Any]:
        found = {}
        for transceiver in sub.pc.getTransceivers():
            for stats in (await transceiver.receiver.getStats()).values():
                if stats.type == kind:
                    found[transceiver.kind] = stats
        return found

    deadline = asyncio.get_running_loop().time() + 5
    reports = await stats_of("remote-outbound-rtp")
    while len(reports) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        reports = await stats_of("remote-outbound-rtp")
    assert set(reports) == {"video", "audio"}, "a sender report about each stream, from the relay's report loop"
    inbound = await stats_of("inbound-rtp")
    for kind, stats in reports.items():
        assert stats.ssrc == inbound[kind].ssrc, "the report is about the SSRC the subscriber receives"
        assert 0 < stats.packetsSent <= inbound[kind].packetsReceived + 60
        assert stats.bytesSent > 0
    # aiortc's own per-sender RTCP loops do not run on the relay's side.
    relay_peer = harness.relay._peers["sub"]
    for transceiver in relay_peer.pc.getTransceivers():
        assert transceiver.sender._run_rtcp.__qualname__.startswith("quiet_sender")


async def test_a_late_subscriber_sees_a_picture_within_a_second(harness: Harness) -> None:
    publisher = await harness.client("pub", 1)
    harness.relay.set_allowed(ROOM, 1, EVERYTHING)
    await publisher.publish()
    first = await harness.client("early", 2)
    await until(lambda: first.of(1, Media.CAMERA).frames > 0, 10, "the early subscriber's first picture")
    await asyncio.sleep(2)  # long past the publisher's only spontaneous keyframe

    # Two late joiners 100 ms apart: the second's keyframe request falls inside the first's rate-limit window and
    # must be deferred, not dropped.
    late = []
    for name in ("late1", "late2"):
        joined_at = time.monotonic()
        late.append((await harness.client(name, 3), joined_at))
        await asyncio.sleep(0.1)
    for client, joined_at in late:
        await until(lambda c=client: c.of(1, Media.CAMERA).frames > 0, 5, f"{client.peer_id}'s first picture")
        waited = client.of(1, Media.CAMERA).first_at - joined_at  # type: ignore[operator]
        assert waited < 1.0, f"{client.peer_id} waited {waited:.2f}s for its first picture"
    assert harness.relay.stats()["plis_sent"] >= 2


async def test_revoking_a_permission_stops_that_media_and_allowing_it_again_resumes(harness: Harness) -> None:
    publisher = await harness.client("pub", 1)
    harness.relay.set_allowed(ROOM, 1, frozenset({Media.CAMERA, Media.MICROPHONE}))
    await publisher.publish()
    sub = await harness.client("sub", 2)
    await until(lambda: sub.of(1, Media.CAMERA).frames > 10, 10, "video flows")

    harness.relay.set_allowed(ROOM, 1, frozenset({Media.MICROPHONE}))
    await asyncio.sleep(0.3)  # what was already on the wire or in the decoder drains
    assert await frames_flowing(lambda: sub.of(1, Media.CAMERA), 1.5) == 0, "video stops when the camera is revoked"
    assert await frames_flowing(lambda: sub.of(1, Media.MICROPHONE), 1.0) > 20, "audio goes on"

    harness.relay.set_allowed(ROOM, 1, frozenset({Media.CAMERA, Media.MICROPHONE}))
    assert await frames_flowing(lambda: sub.of(1, Media.CAMERA), 1.5) > 10, "video resumes on a keyframe"

    harness.relay.set_allowed(ROOM, 1, frozenset())
    await asyncio.sleep(0.3)
    assert await frames_flowing(lambda: sub.of(1, Media.MICROPHONE), 1.0) == 0, "audio stops too"


async def test_nothing_is_forwarded_before_the_room_allows_it(harness: Harness) -> None:
    publisher = await harness.client("pub", 1)
    await publisher.publish()
    sub = await harness.client("sub", 2)
    await until(lambda: len(sub.tracks) == 2, 5, "the subscriber is told about both tracks")
    await asyncio.sleep(1.5)
    assert sub.of(1, Media.CAMERA).frames == 0
    assert sub.of(1, Media.MICROPHONE).frames == 0
    assert harness.relay.stats()["dropped_not_allowed"] > 0


async def test_audio_only_on_request(harness: Harness) -> None:
    publisher = await harness.client("pub", 1)
    harness.relay.set_allowed(ROOM, 1, EVERYTHING)
    await publisher.publish()
    sub = await harness.client("sub", 2)
    await until(lambda: sub.of(1, Media.CAMERA).frames > 10, 10, "video flows")

    await harness.relay.set_audio_only("sub", True)
    await asyncio.sleep(0.3)
    assert await frames_flowing(lambda: sub.of(1, Media.CAMERA), 1.5) == 0
    assert await frames_flowing(lambda: sub.of(1, Media.MICROPHONE), 1.0) > 20

    await harness.relay.set_audio_only("sub", False)
    assert await frames_flowing(lambda: sub.of(1, Media.CAMERA), 1.5) > 10


async def test_audio_only_automatically_when_the_subscriber_reports_heavy_loss(harness: Harness) -> None:
    publisher = await harness.client("pub", 1)
    harness.relay.set_allowed(ROOM, 1, EVERYTHING)
    await publisher.publish()
    sub = await harness.client("sub", 2)
    await until(lambda: sub.of(1, Media.CAMERA).frames > 10, 10, "video flows")

    # The subscriber's own RTCP, forged: receiver reports claiming 60% loss on the relay's video stream.
    video = next(t for t in sub.pc.getTransceivers() if t.kind == "video")
    relay_ssrc = next(iter(video.receiver._RTCRtpReceiver__remote_streams))  # type: ignore[attr-defined]
    wire = aiortc_adapter.Wire(video.receiver.transport, 1 << 20)
    for _ in range(40):
        # RR: V=2, RC=1, PT=201, length 7; one report block with fraction lost 154/256.
        block = struct.pack("!IB3sIIII", relay_ssrc, 154, b"\x00\x01\x00", 0, 0, 0, 0)
        assert wire.send(struct.pack("!BBHI", 0x81, 201, 7, 0x1234) + block) == aiortc_adapter.SENT
        await asyncio.sleep(0.15)
        if any(event == "media_tracks" for event, _ in sub.events):
            break
    pushed = [payload for event, payload in sub.events if event == "media_tracks"]
    assert pushed and pushed[0]["audio_only"] is True and pushed[0]["reason"] == "congestion"
    await asyncio.sleep(0.3)
    assert await frames_flowing(lambda: sub.of(1, Media.CAMERA), 1.0) == 0
    assert await frames_flowing(lambda: sub.of(1, Media.MICROPHONE), 1.0) > 20
    assert harness.relay.stats()["audio_only_auto"] == 1


async def test_screen_share_is_its_own_track_and_renegotiates(harness: Harness) -> None:
    publisher = await harness.client("pub", 1)
    harness.relay.set_allowed(ROOM, 1, EVERYTHING)
    await publisher.publish()
    sub = await harness.client("sub", 2)
    await until(lambda: sub.of(1, Media.CAMERA).frames > 5, 10, "camera flows")

    offers = sum(1 for event, _ in sub.events if event == "media_offer")
    await publisher.add(PatternVideo(100), Media.SCREEN)
    await publisher.offer()
    await until(lambda: sub.of(1, Media.SCREEN).frames > 5, 10, "the screen share reaches the subscriber")
    assert sum(1 for event, _ in sub.events if event == "media_offer") == offers + 1
    assert sorted(info["kind"] for info in sub.tracks.values()) == ["camera", "microphone", "screen"]
    assert await frames_flowing(lambda: sub.of(1, Media.CAMERA), 1.0) > 10, "the camera goes on beside it"

    # Stopping the share: the publisher stops sending on that m-line; the subscriber is told it is gone.
    publisher.published["screen"].direction = "inactive"
    await publisher.offer()
    await until(lambda: "screen" not in {i["kind"] for i in sub.tracks.values()}, 5, "the screen track is withdrawn")
    assert await frames_flowing(lambda: sub.of(1, Media.CAMERA), 1.0) > 10


async def test_a_publisher_leaving_and_a_user_removed(harness: Harness) -> None:
    harness.relay.set_allowed(ROOM, 1, EVERYTHING)
    harness.relay.set_allowed(ROOM, 2, EVERYTHING)
    first = await harness.client("p1", 1)
    await first.publish()
    second = await harness.client("p2", 2)
    await second.publish()
    await until(lambda: first.of(2, Media.CAMERA).frames > 5, 10, "p1 sees p2")
    await until(lambda: second.of(1, Media.CAMERA).frames > 5, 10, "p2 sees p1")
    third = await harness.client("p3", 3)
    await until(lambda: len(third.tracks) == 4, 10, "p3 is offered both publishers")

    await harness.relay.remove_user(ROOM, 2)
    assert harness.relay._peers.get("p2") is None
    await until(lambda: all(i["user_id"] == 1 for i in third.tracks.values()), 5, "p3 is told p2 left")
    await asyncio.sleep(0.3)
    assert await frames_flowing(lambda: third.of(2, Media.CAMERA), 1.0) == 0
    assert await frames_flowing(lambda: third.of(1, Media.CAMERA), 1.0) > 10

    await harness.relay.leave("p1")
    await until(lambda: third.tracks == {}, 5, "p3 is told p1 left")
    assert harness.relay.stats()["peers"] == 1


async def test_offers_that_do_not_fit_are_refused(harness: Harness) -> None:
    client = await harness.client("pub", 1)
    await client.add(PatternVideo(), Media.CAMERA)
    await client.pc.setLocalDescription(await client.pc.createOffer())
    sdp = client.pc.localDescription.sdp
    mid = client.published["camera"].mid
    with pytest.raises(InvalidOffer):
        await harness.relay.offer("pub", sdp, {mid: "microphone"})  # a video m-line is not a microphone
    with pytest.raises(InvalidOffer):
        await harness.relay.offer("pub", sdp, {mid: "hologram"})
    with pytest.raises(InvalidOffer):
        await harness.relay.offer("pub", sdp, {"42": "camera"})
    with pytest.raises(InvalidOffer):
        await harness.relay.offer("pub", "v=0\r\nnonsense", {})
    with pytest.raises(NegotiationConflict):
        await harness.relay.answer("pub", sdp)  # no media_offer is outstanding
    result = await harness.relay.offer("pub", sdp, {mid: "camera"})
    assert "a=recvonly" in result["sdp"]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_hundred_open_close_cycles_leave_no_tasks_or_descriptors() -> None:
    harness = Harness()
    harness.relay.set_allowed(ROOM, 1, EVERYTHING)
    connected = 0

    async def cycle(i: int) -> None:
        nonlocal connected
        client = await harness.client(f"cycle{i}", 1)
        await client.publish(video=i % 2 == 0, audio=True)
        await until(lambda: client.pc.connectionState == "connected", 10, "the cycle's peer connects")
        connected += 1
        if i % 3 == 0:
            await harness.relay.leave(client.peer_id)
        else:
            await harness.relay.remove_user(ROOM, 1)
            harness.relay.set_allowed(ROOM, 1, EVERYTHING)
        await client.close()
        del harness.clients[client.peer_id]

    async def settle(expected: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
        # aiortc's closing tasks finish over a few loop iterations; decoder threads join on close, which takes
        # longer on a loaded machine: wait (up to 5 s) for the counts to come back, then compare.
        deadline = time.monotonic() + 5
        while True:
            for _ in range(50):
                await asyncio.sleep(0.02)
            gc.collect()
            counts = len(asyncio.all_tasks()), _open_fds(), threading.active_count()
            if expected is None or counts == expected or time.monotonic() > deadline:
                return counts

    await cycle(-2)  # warm up: codec libraries, executors and the like are created once per process
    baseline = await settle()
    for i in range(100):
        await cycle(i)
    after = await settle(baseline)
    assert connected == 101
    assert harness.relay.stats()["peers"] == 0
    leftover = [repr(task.get_coro()) for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert after == baseline, f"(tasks, fds, threads) went from {baseline} to {after}; tasks: {leftover}"
    await harness.relay.close()
    await harness.relay.close()  # idempotent
    with pytest.raises(Exception, match="closed"):
        await harness.relay.join(ROOM, "late", 1)


def _garbage() -> list[bytes]:
    rng = np.random.default_rng(7)
    datagrams = [b"", b"\x00", b"\x80", b"\xff" * 3, bytes(1500)]
    datagrams += [bytes(rng.integers(0, 256, size=int(n), dtype=np.uint8)) for n in rng.integers(1, 1400, size=60)]
    datagrams += [b"\x80\x60" + bytes(rng.integers(0, 256, size=40, dtype=np.uint8)) for _ in range(20)]  # RTP-ish
    datagrams += [b"\x81\xc9\x00\x07" + bytes(28), b"\x80\xc8\x00\x30" + bytes(8)]  # RTCP-ish, bad lengths
    datagrams += [b"\x16\xfe\xfd" + bytes(rng.integers(0, 256, size=60, dtype=np.uint8)) for _ in range(10)]  # DTLS-ish
    datagrams += [b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + b"\x00\x06\x00\x40"]  # STUN with a lying attribute
    return datagrams


def _authenticated_garbage() -> list[bytes]:
    """Malformed packets that pass SRTP: what a buggy or hostile client can put in front of the forwarding code."""
    rng = np.random.default_rng(11)
    packets = [
        b"\x80\x61\x00\x01" + bytes(8),  # RTP header, empty payload, VP8's payload type (unknown to the relay: dropped)
        b"\x90\x60\x00\x02" + bytes(8) + b"\xbe\xde\x00\x09",  # extension header longer than the packet
        b"\x8f\x60\x00\x03" + bytes(8),  # fifteen CSRCs announced, none there
        b"\xa0\x60\x00\x04" + bytes(8) + b"\x10\x00\xff",  # padding bit with an impossible padding length
        b"\x81\xcd\x00\x01" + bytes(4),  # RTPFB with no media SSRC
        b"\x81\xce\x00\x02" + bytes(8),  # PLI for an unknown SSRC
        b"\x80\xcc\x00\x00",  # APP, truncated
    ]
    for pt in (96, 97, 100, 111):
        for size in (1, 2, 3, 5, 10, 30):
            header = struct.pack("!BBHII", 0x80, pt, 100 + size, 1, 0x11223344)
            packets.append(header + b"\x90\x80" + bytes(rng.integers(0, 256, size=size, dtype=np.uint8)))
    return packets


async def test_malformed_datagrams_do_not_break_the_relay(harness: Harness) -> None:
    publisher = await harness.client("pub", 1)
    harness.relay.set_allowed(ROOM, 1, EVERYTHING)
    await publisher.publish()
    sub = await harness.client("sub", 2)
    await until(lambda: sub.of(1, Media.CAMERA).frames > 10, 10, "video flows")

    targets = harness.relay.local_addresses("pub") + harness.relay.local_addresses("sub")
    assert targets
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker4,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as attacker6,
    ):
        for _ in range(3):
            for datagram in _garbage():
                for address in targets:
                    (attacker6 if ":" in address[0] else attacker4).sendto(datagram, address)
            await asyncio.sleep(0.05)
    # From inside the session too: correctly encrypted, badly formed RTP and RTCP from both clients.
    for client in (publisher, sub):
        transceiver = client.pc.getTransceivers()[0]
        wire = aiortc_adapter.Wire(transceiver.sender.transport, 1 << 20)
        for packet in _authenticated_garbage():
            try:
                wire.send(packet)
            except Exception:  # SRTP may refuse to protect some of them; those never leave the client
                pass
        await asyncio.sleep(0.05)

    await asyncio.sleep(0.5)
    assert harness.relay.stats()["dropped_datagrams"] > 0
    assert await frames_flowing(lambda: sub.of(1, Media.CAMERA), 1.5) > 20, "video keeps flowing"
    assert await frames_flowing(lambda: sub.of(1, Media.MICROPHONE), 1.0) > 20, "audio keeps flowing"
    later = await harness.client("later", 3)
    await until(lambda: later.of(1, Media.CAMERA).frames > 0, 5, "a new subscriber still gets pictures")


async def test_nacks_are_answered_from_the_history(harness: Harness) -> None:
    publisher = await harness.client("pub", 1)
    harness.relay.set_allowed(ROOM, 1, EVERYTHING)
    await publisher.publish(audio=False)
    sub = await harness.client("sub", 2)
    await until(lambda: sub.of(1, Media.CAMERA).frames > 10, 10, "video flows")

    video = next(t for t in sub.pc.getTransceivers() if t.kind == "video")
    streams = video.receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    relay_ssrc, stats = next((s, st) for s, st in streams.items() if st.max_seq is not None and s in streams)
    wire = aiortc_adapter.Wire(video.receiver.transport, 1 << 20)
    recent = [(stats.max_seq - n) & 0xFFFF for n in range(1, 6)]
    before = harness.relay.stats()["nacks_answered"]
    for seq in recent:
        # Generic NACK (RFC 4585 6.2.1): PID and an empty bitmask of following losses.
        assert wire.send(struct.pack("!BBHIIHH", 0x81, 205, 3, 0x1234, relay_ssrc, seq, 0)) == aiortc_adapter.SENT
    await until(lambda: harness.relay.stats()["nacks_answered"] >= before + 5, 3, "the relay retransmits")


_CHROMIUM_VIDEO_PAYLOAD_TYPES = {97: 96, 98: 97}  # aiortc's VP8 and its RTX -> what Chromium picks offering first
_CHROMIUM_EXTENSION_IDS = {
    "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2,
}


def _numbered_like_chromium(sdp: str) -> str:
    """An aiortc video offer renumbered as Chromium numbers its first offer: VP8 96 / RTX 97, mid 4, abs-send-time 2."""

    def pt(match: re.Match[str]) -> str:
        return str(_CHROMIUM_VIDEO_PAYLOAD_TYPES.get(int(match.group(0)), int(match.group(0))))

    lines = []
    kind = ""
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            kind = line[2:].split()[0]
            if kind == "video":
                head, fmts = line.split(" UDP/TLS/RTP/SAVPF ")
                line = f"{head} UDP/TLS/RTP/SAVPF " + re.sub(r"\d+", pt, fmts)
        elif kind == "video" and re.match(r"a=(rtpmap|rtcp-fb|fmtp):", line):
            line = re.sub(r"(?<=:)\d+", pt, line, count=1)
            line = re.sub(r"(?<=apt=)\d+", pt, line)
        elif line.startswith("a=extmap:"):
            uri = line.split()[1]
            if uri in _CHROMIUM_EXTENSION_IDS:
                line = f"a=extmap:{_CHROMIUM_EXTENSION_IDS[uri]} {uri}"
        lines.append(line)
    return "\r\n".join(lines)


def _numbering(sdp: str) -> tuple[dict[str, tuple[dict[int, str], dict[int, str]]], list[str]]:
    """Per mid: (payload type -> codec, extension id -> uri); and what clashes across the BUNDLE."""
    description = SessionDescription.parse(sdp)
    per_mid: dict[str, tuple[dict[int, str], dict[int, str]]] = {}
    codecs: dict[int, str] = {}
    uris: dict[int, str] = {}
    ids: dict[str, int] = {}
    clashes = []
    for media in description.media:
        types = {c.payloadType: f"{c.mimeType.lower()}/{c.parameters.get('apt', '')}" for c in media.rtp.codecs}
        extensions = {e.id: e.uri for e in media.rtp.headerExtensions}
        per_mid[media.rtp.muxId] = (types, extensions)
        for payload_type, codec in types.items():
            if codecs.setdefault(payload_type, codec) != codec:  # type: ignore[arg-type]
                clashes.append(f"payload type {payload_type}: {codecs[payload_type]} and {codec}")  # type: ignore[index]
        for ext_id, uri in extensions.items():
            if uris.setdefault(ext_id, uri) != uri or ids.setdefault(uri, ext_id) != ext_id:
                clashes.append(f"extension {ext_id} {uri}")
    return per_mid, clashes


async def test_a_subscriber_that_starts_publishing_keeps_receiving_and_is_received(harness: Harness) -> None:
    """B publishes, numbered as Chromium numbers a first offer; A receives it, then publishes its own camera.

    The relay then renegotiates with B to add A's camera. That offer must keep B's m-line numbered as B numbered it
    (a browser follows the offer: renumbered, Chromium sent VP8 with the type the relay's receiver knew as RTX and
    A's picture froze) and number the new m-line consistently with the BUNDLE (no id or type meaning two things).
    """
    harness.relay.set_allowed(ROOM, 1, EVERYTHING)
    harness.relay.set_allowed(ROOM, 2, EVERYTHING)
    b = await harness.client("b", 1)
    b.rewrite = _numbered_like_chromium
    await b.publish(audio=False)
    a = await harness.client("a", 2)
    await until(lambda: a.of(1, Media.CAMERA).frames > 10, 10, "A decodes B's camera")
    assert await frames_flowing(lambda: a.of(1, Media.CAMERA), 1.0) > 10

    await a.publish(audio=False)
    await until(lambda: b.of(2, Media.CAMERA).frames > 10, 10, "B decodes A's camera")
    offers = [payload["sdp"] for event, payload in b.events if event == "media_offer"]
    assert offers, "the relay renegotiated with B to add A's camera"
    numbering, clashes = _numbering(offers[-1])
    assert clashes == []
    b_mid = b.published["camera"].mid
    types, extensions = numbering[b_mid]
    assert types == {96: "video/vp8/", 97: "video/rtx/96"}, "B's m-line keeps B's payload types"
    assert extensions == {4: "urn:ietf:params:rtp-hdrext:sdes:mid", 2: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"}
    new_types, new_extensions = next(n for mid, n in numbering.items() if mid != b_mid)
    assert new_types == types and new_extensions == extensions, "the new m-line reuses B's numbering"

    assert await frames_flowing(lambda: a.of(1, Media.CAMERA), 2.0) > 20, "A goes on decoding B's camera"
    assert await frames_flowing(lambda: b.of(2, Media.CAMERA), 2.0) > 20, "B decodes A's camera"


async def test_new_subscribers_start_on_a_whole_keyframe(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing goes to a subscriber before its DTLS transport is up, so its first keyframe is not lost on the way.

    Forwarding used to start when the answer was applied: the keyframe requested then came back before the
    handshake ended and was dropped, and the decoder was fed the frames that followed it (``failed to decode``).
    """
    caplog.set_level(logging.WARNING, logger="aiortc.rtcrtpreceiver")
    publisher = await harness.client("pub", 1)
    harness.relay.set_allowed(ROOM, 1, EVERYTHING)
    await publisher.publish()
    subscribers = [await harness.client(f"sub{i}", 10 + i) for i in range(3)]
    for sub in subscribers:
        await until(lambda sub=sub: sub.of(1, Media.CAMERA).frames >= 20, 10, f"{sub.peer_id} decodes 20 frames")
    failures = [r.getMessage() for r in caplog.records if r.name == "aiortc.rtcrtpreceiver"]
    assert failures == []
    assert harness.relay.stats()["dropped_not_connected"] == 0
