"""Media through the hub: real aiortc peers signal over real Socket.IO connections to the real app's relay.

The teacher publishes synthetic camera and microphone; a student receives and decodes them; the student, allowed a
camera by the class's settings, publishes too, and the teacher decodes it until a revoke stops it at once and a
grant brings it back; removal closes the student's peer in the relay. Signalling errors are error acks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from server.hub.setup import RELAY
from server.settings import Settings
from tests.conftest import Database, make_settings
from tests.helpers import Api, Person
from tests.test_chat import Conn, Hub
from tests.test_class_lesson import lesson
from tests.test_media_relay import PatternVideo, ToneAudio


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(database, tmp_path, login_attempts_per_ip=10_000, login_attempts_per_account=10_000)


@dataclass
class Track:
    user_id: int
    kind: str
    frames: int = 0
    pictures: set[tuple[int, int]] = field(default_factory=set)


class MediaClient:
    """A browser stand-in: one peer connection with the relay, signalled over the person's socket."""

    def __init__(self, conn: Conn, class_id: int) -> None:
        self.conn = conn
        self.class_id = class_id
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.published: dict[str, RTCRtpTransceiver] = {}
        self.owners: dict[str, dict[str, Any]] = {}
        self.tracks: dict[str, Track] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)
        conn.sio.on("media_offer", self._on_offer)

    async def join(self) -> dict[str, Any]:
        joined = await self.conn.ok("media_join", {"class_id": self.class_id})
        if joined["offer"] is not None:  # others publish: the relay's first offer is in the reply
            await self._on_offer(joined["offer"])
        return joined

    async def publish(self, video: bool = True, audio: bool = True) -> None:
        if video:
            self.published["camera"] = self.pc.addTransceiver(PatternVideo(self.conn.who.id if self.conn.who else 0),
                                                              direction="sendonly")
        if audio:
            self.published["microphone"] = self.pc.addTransceiver(ToneAudio(), direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        tracks = {t.mid: kind for kind, t in self.published.items()}
        ack = await self.conn.ok("media_offer", {"class_id": self.class_id, "sdp": self.pc.localDescription.sdp,
                                                 "tracks": tracks})
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=ack["sdp"], type="answer"))
        self.owners.update(ack["tracks"])

    async def _on_offer(self, payload: dict[str, Any]) -> None:
        if self.pc.signalingState == "closed":
            return  # an offer that crossed our closing
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=payload["sdp"], type="offer"))
        self.owners.update(payload["tracks"])
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.conn.ok("media_answer", {"class_id": self.class_id, "sdp": self.pc.localDescription.sdp})

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
        self.tasks.append(asyncio.get_running_loop().create_task(self._consume(str(mid), track)))

    async def _consume(self, mid: str, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                owner = self.owners.get(mid, {})
                counted = self.tracks.setdefault(mid, Track(owner.get("user_id", 0), owner.get("kind", "")))
                counted.user_id, counted.kind = owner.get("user_id", 0), owner.get("kind", "")
                counted.frames += 1
                if isinstance(frame, av.VideoFrame):
                    counted.pictures.add((frame.width, frame.height))
        except MediaStreamError:
            pass

    def frames(self, user_id: int, kind: str) -> int:
        return sum(t.frames for t in self.tracks.values() if t.user_id == user_id and t.kind == kind)

    async def close(self) -> None:
        await self.pc.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _decode_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aiortc.rtcrtpreceiver" and "decode" in r.getMessage()]


async def until(check: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within}s waiting for: {what}")
        await asyncio.sleep(0.05)


async def flowing(count: Callable[[], int], seconds: float = 1.0) -> int:
    before = count()
    await asyncio.sleep(seconds)
    return count() - before


async def live_class(api: Api, hub: Hub) -> tuple[Person, Person, int, Conn, Conn]:
    ls = await lesson(api, hub)
    a = await hub.connect(ls.ana)
    await a.ok("join_class", {"class_id": ls.class_id})
    return ls.teacher, ls.ana, ls.class_id, ls.t, a


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_teacher_is_seen_and_heard_and_a_revoked_camera_stops_at_once(
    api: Api, hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiortc.rtcrtpreceiver")
    teacher, ana, class_id, t, a = await live_class(api, hub)
    relay = api.client.app[RELAY]
    teacher_media, ana_media = MediaClient(t, class_id), MediaClient(a, class_id)
    try:
        assert (await teacher_media.join())["ice_servers"] == []
        await teacher_media.publish()
        await ana_media.join()  # the relay offers her the teacher's tracks
        await until(lambda: ana_media.frames(teacher.id, "camera") >= 10, "Ana decodes the teacher's camera")
        await until(lambda: ana_media.frames(teacher.id, "microphone") >= 10, "Ana hears the teacher")
        assert any(t.pictures for t in ana_media.tracks.values() if t.kind == "camera")

        await ana_media.publish(audio=False)  # students may use their camera in this class
        await until(lambda: teacher_media.frames(ana.id, "camera") >= 10, "the teacher decodes Ana's camera")
        # Each new subscriber's first frame is a whole keyframe: nothing before it was sent while its transport
        # could not carry it, so no decoder ever starts on frames that refer to a lost one.
        assert _decode_failures(caplog) == []

        await t.ok("revoke_media", {"class_id": class_id, "user_id": ana.id, "media": "camera"})
        await asyncio.sleep(0.5)  # packets already on the wire drain
        assert await flowing(lambda: teacher_media.frames(ana.id, "camera")) == 0
        assert await flowing(lambda: ana_media.frames(teacher.id, "camera")) > 5  # the teacher's still flows

        await t.ok("grant_media", {"class_id": class_id, "user_id": ana.id, "media": "camera"})
        resumed = teacher_media.frames(ana.id, "camera")
        await until(lambda: teacher_media.frames(ana.id, "camera") >= resumed + 10, "Ana's camera flows again")

        peers = relay.stats()["peers"]
        await t.ok("remove_participant", {"class_id": class_id, "user_id": ana.id})
        await until(lambda: relay.stats()["peers"] == peers - 1, "the relay closes Ana's peer")
        await a.refused("media_join", {"class_id": class_id}, "not_joined")
    finally:
        await teacher_media.close()
        await ana_media.close()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_media_signalling_refusals_change_nothing(api: Api, hub: Hub) -> None:
    _, _, class_id, _, a = await live_class(api, hub)
    relay = api.client.app[RELAY]
    await a.refused("media_offer", {"class_id": class_id, "sdp": "v=0", "tracks": {}}, "media_not_joined")
    await a.refused("media_join", {"class_id": class_id + 1000}, "not_joined")
    await a.refused("media_join", {"class_id": "one"}, "invalid_input")
    await a.ok("media_join", {"class_id": class_id})
    await a.refused("media_offer", {"class_id": class_id, "sdp": "not an sdp", "tracks": {}}, "invalid_offer")
    await a.refused("media_offer", {"class_id": class_id, "sdp": "v=0", "tracks": {"0": "hologram"}},
                    "invalid_input")
    await a.refused("media_answer", {"class_id": class_id, "sdp": "v=0"}, "negotiation_conflict")
    assert relay.stats()["peers"] == 1
    await a.ok("leave_class", {"class_id": class_id})
    await until(lambda: relay.stats()["peers"] == 0, "leaving the class closes the peer")
