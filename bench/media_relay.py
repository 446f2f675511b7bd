"""Benchmark: Quanzi's packet-forwarding relay vs aiortc's stock MediaRelay vs Janus's VideoRoom.

Run by hand (not a test); the method and the figures are in bench/README.md, section "Media relay"::

    python bench/media_relay.py                          # all three SFUs
    python bench/media_relay.py --sfu quanzi --step 100  # one SFU, coarser ramp

One harness for all three: a publisher replays a pre-encoded 640x480 30 fps ~1 Mbps VP8 stream and a 48 kHz Opus
tone (no encoder in the loop, so the publisher is cheap and identical everywhere), and N subscribers that complete
ICE/DTLS-SRTP with aiortc and then count what arrives straight off their UDP sockets (the RTP header is not
encrypted under SRTP: sequence numbers, marker bits and payload types are readable without decrypting), so a
subscriber costs a couple of microseconds per packet. The SFU runs in its own process pinned to one CPU, the
harness on the other; the SFU's CPU time comes from /proc/<pid>/stat (all its threads).

Subscribers are added in steps; after each step the harness waits, then measures a window: every subscriber's
video frame rate (marker bits on the VP8 payload type) and loss (gaps in sequence numbers), and the SFU's CPU.
A window is "held" when every subscriber receives >= 95% of the publisher's frame rate with < 1% loss; a step is
held when most of its windows are (its figures are the median window's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import itertools
import json
import math
import os
import pickle
import resource
import shutil
import signal as signals
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import ifaddr
import numpy as np
from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media.relay import Relay, RelayConfig
from rooms.classroom import Media

FPS = 30
WIDTH, HEIGHT = 640, 480
BITRATE = 1_000_000
LOOP_SECONDS = 10
CACHE = Path(tempfile.gettempdir()) / "quanzi_bench_media_v1.pickle"
JANUS = shutil.which("janus") or "/usr/bin/janus"
JANUS_PLUGINS = "/usr/lib/x86_64-linux-gnu/janus/plugins"
JANUS_TRANSPORTS = "/usr/lib/x86_64-linux-gnu/janus/transports"
PUBLISHER_USER = 1
RELAY_COUNTERS = (
    "packets_received",
    "dropped_waiting_keyframe",
    "dropped_congestion",
    "dropped_not_connected",
    "nacks_received",
    "nacks_answered",
    "plis_received",
    "plis_sent",
    "audio_only_auto",
)


# -- media -------------------------------------------------------------------------------------------------------


def encode_media() -> tuple[list[bytes], list[bytes]]:
    """VP8 frames (the first one a keyframe, no other) and 20 ms Opus packets, LOOP_SECONDS of each. Cached."""
    if CACHE.exists():
        video, audio = pickle.loads(CACHE.read_bytes())
        return video, audio
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.bit_rate = BITRATE
    encoder.framerate = fractions.Fraction(FPS, 1)
    encoder.time_base = fractions.Fraction(1, FPS)
    encoder.gop_size = 100000  # keyframes only on demand: the publisher restarts the loop on PLI
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "error-resilient": "1"}
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 40, size=(HEIGHT, WIDTH), dtype=np.uint8)
    video: list[bytes] = []
    for i in range(FPS * LOOP_SECONDS):
        yuv = np.full((HEIGHT * 3 // 2, WIDTH), 128, dtype=np.uint8)
        x = np.arange(WIDTH)
        yuv[:HEIGHT] = ((x[None, :] + i * 6) % 256 // 2 + 40).astype(np.uint8)
        yuv[:HEIGHT] += np.roll(noise, i * 7, axis=1)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = i
        frame.time_base = encoder.time_base
        video += [bytes(packet) for packet in encoder.encode(frame)]
    video += [bytes(packet) for packet in encoder.encode(None)]
    opus = av.CodecContext.create("libopus", "w")
    opus.sample_rate = 48000
    opus.layout = "stereo"
    opus.format = "s16"
    opus.bit_rate = 64000
    audio: list[bytes] = []
    for i in range(50 * LOOP_SECONDS):
        t = np.arange(i * 960, (i + 1) * 960) / 48000
        tone = (np.sin(2 * math.pi * 440 * t) * 6000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = i * 960
        audio += [bytes(packet) for packet in opus.encode(frame)]
    CACHE.write_bytes(pickle.dumps((video, audio)))
    return video, audio


class ReplayTrack(MediaStreamTrack):
    """Replays pre-encoded packets in real time; aiortc's sender only packetizes them. Video restarts on PLI."""

    def __init__(self, kind: str, packets: list[bytes], rate: int, clock: int) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._period = 1 / rate
        self._step = clock // rate
        self._time_base = fractions.Fraction(1, clock)
        self._index = 0
        self._count = 0
        self._start: float | None = None
        self.restart_requested = False
        self.keyframes = 0
        self.sent = 0

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._count * self._period - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.restart_requested or self._index >= len(self._packets):
            self.restart_requested = False
            self._index = 0
        if self._index == 0:
            self.keyframes += 1
        packet = av.Packet(self._packets[self._index])
        packet.pts = self._count * self._step
        packet.time_base = self._time_base
        self._index += 1
        self._count += 1
        self.sent += 1
        return packet


def restart_video_on_pli(pc: RTCPeerConnection, track: ReplayTrack) -> None:
    """Bench-only: the replayed stream has one keyframe, so a keyframe request restarts the loop."""
    for transceiver in pc.getTransceivers():
        if transceiver.sender.track is track:
            sender = transceiver.sender
            original = sender._handle_rtcp_packet

            async def handle(packet: Any, original: Any = original) -> None:
                if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                    track.restart_requested = True
                await original(packet)

            sender._handle_rtcp_packet = handle


def prefer(pc: RTCPeerConnection) -> None:
    for transceiver in pc.getTransceivers():
        kind = transceiver.kind
        wanted = {"video": "video/vp8", "audio": "audio/opus"}[kind]
        codecs = [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() in (wanted, "video/rtx")]
        transceiver.setCodecPreferences(codecs)


# -- lightweight subscribers --------------------------------------------------------------------------------------


class Counter:
    """Counts RTP straight off a subscriber's sockets; everything else goes on to aiortc (ICE consent, RTCP)."""

    __slots__ = ("_seq", "audio", "frames", "received", "video", "video_pt")

    def __init__(self, video_pt: set[int]) -> None:
        self.video_pt = video_pt
        self.frames = 0
        self.video = 0
        self.audio = 0
        self.received = 0
        self._seq: dict[int, list[int]] = {}  # ssrc -> [first extended seq, highest extended seq, received]

    def wrap(self, original: Callable[[bytes, Any], None]) -> Callable[[bytes, Any], None]:
        def datagram_received(data: bytes, addr: Any) -> None:
            if len(data) >= 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
                second = data[1]
                pt = second & 0x7F
                if pt in self.video_pt:
                    self.video += 1
                    if second & 0x80:
                        self.frames += 1
                else:
                    self.audio += 1
                ssrc = int.from_bytes(data[8:12], "big")
                seq = data[2] << 8 | data[3]
                state = self._seq.get(ssrc)
                if state is None:
                    self._seq[ssrc] = [seq, seq, 1]
                else:
                    high = state[1]
                    ext = high + ((seq - high + 0x8000) & 0xFFFF) - 0x8000
                    if ext > high:
                        state[1] = ext
                    state[2] += 1
                return
            original(data, addr)

        return datagram_received

    def totals(self) -> tuple[int, int, int, int, int]:
        expected = sum(high - first + 1 for first, high, _ in self._seq.values())
        received = sum(n for _, _, n in self._seq.values())
        return self.frames, self.video, self.audio, expected, received


def install_counter(pc: RTCPeerConnection) -> Counter:
    video_pt: set[int] = set()
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            video_pt |= {c.payloadType for c in transceiver._codecs if c.mimeType.lower() == "video/vp8"}
    counter = Counter(video_pt)
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        for protocol in transceiver.receiver.transport.transport._connection._protocols:
            if id(protocol) not in seen:
                seen.add(id(protocol))
                protocol.datagram_received = counter.wrap(protocol.datagram_received)
    return counter


def ipv4_only(sdp: str) -> str:
    """Drop IPv6 candidates: Janus runs with ipv6 = false, so every SFU is measured on the same IPv4 path."""
    return "".join(
        line
        for line in sdp.splitlines(keepends=True)
        if not (line.startswith("a=candidate:") and ":" in line.split()[4])
    )


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def wait_connected(pc: RTCPeerConnection, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
            raise RuntimeError(f"peer connection {pc.connectionState}")
        await asyncio.sleep(0.05)


# -- SFU drivers --------------------------------------------------------------------------------------------------


class Driver:
    """Publishes and subscribes through one SFU."""

    pid: int

    async def start(self) -> None: ...
    async def publish(self, pc: RTCPeerConnection) -> None: ...
    async def subscribe(self, index: int) -> RTCPeerConnection: ...
    async def stop(self) -> None: ...


def pin(pid: int, cpu: int) -> None:
    if os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})
            for task in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(task), {cpu})


class ProcessDriver(Driver):
    """Quanzi's relay or aiortc's MediaRelay, served by this script in its own process over one websocket."""

    def __init__(self, kind: str, cpu: int) -> None:
        self.kind = kind
        self.cpu = cpu
        self._ids = itertools.count()
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._offers: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve", self.kind, "--port", str(port)
        )
        self.pid = self.process.pid
        self.session = aiohttp.ClientSession()
        for _ in range(200):
            try:
                self.ws = await self.session.ws_connect(f"http://127.0.0.1:{port}/ws", max_msg_size=0)
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        pin(self.pid, self.cpu)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._replies.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(data["error"]))
                else:
                    future.set_result(data["result"])
            elif data["event"] == "media_offer":
                self._offers.setdefault(data["peer"], asyncio.get_running_loop().create_future()).set_result(
                    data["payload"]
                )

    async def call(self, op: str, **args: Any) -> Any:
        request_id = next(self._ids)
        future = self._replies[request_id] = asyncio.get_running_loop().create_future()
        await self.ws.send_str(json.dumps({"id": request_id, "op": op, **args}))
        return await future

    async def publish(self, pc: RTCPeerConnection) -> None:
        await self.call("join", peer="pub", user=PUBLISHER_USER)
        await pc.setLocalDescription(await pc.createOffer())
        tracks = {t.mid: ("camera" if t.kind == "video" else "microphone") for t in pc.getTransceivers()}
        result = await self.call("offer", peer="pub", sdp=ipv4_only(pc.localDescription.sdp), tracks=tracks)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=ipv4_only(result["sdp"]), type="answer"))

    async def subscribe(self, index: int) -> RTCPeerConnection:
        peer = f"sub{index}"
        offered = self._offers.setdefault(peer, asyncio.get_running_loop().create_future())
        joined = await self.call("join", peer=peer, user=1000 + index)
        # Quanzi's relay puts its first offer in the reply; the stock SFU here pushes it.
        offer = joined.get("offer") if isinstance(joined, dict) else None
        if offer is None:
            offer = await asyncio.wait_for(offered, 30)
        else:
            self._offers.pop(peer, None)
        pc = new_pc()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=ipv4_only(offer["sdp"]), type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.call("answer", peer=peer, sdp=ipv4_only(pc.localDescription.sdp))
        return pc

    async def stop(self) -> None:
        self._reader.cancel()
        await self.ws.close()
        await self.session.close()
        self.process.send_signal(signals.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def serve(kind: str, port: int) -> None:
    """The SFU process for --sfu quanzi / stock: one websocket from the harness, requests and pushed events."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    app = web.Application()
    sockets: list[web.WebSocketResponse] = []

    async def push(peer_id: str, event: str, payload: dict[str, Any]) -> None:
        for ws in sockets:
            await ws.send_str(json.dumps({"event": event, "peer": peer_id, "payload": payload}))

    relay = Relay(RelayConfig(), push) if kind == "quanzi" else None
    if relay is not None:
        relay.set_allowed("bench", PUBLISHER_USER, frozenset({Media.CAMERA, Media.MICROPHONE}))
    stock = StockSfu(push) if kind == "stock" else None

    async def handle(data: dict[str, Any]) -> Any:
        op = data["op"]
        if relay is not None:
            if op == "join":
                return await relay.join("bench", data["peer"], data["user"])
            if op == "offer":
                return await relay.offer(data["peer"], data["sdp"], data["tracks"])
            if op == "answer":
                return await relay.answer(data["peer"], data["sdp"])
            if op == "stats":
                return relay.stats()
        elif stock is not None:
            return await stock.handle(data)
        raise ValueError(op)

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        sockets.append(ws)
        tasks = set()

        async def answer(data: dict[str, Any]) -> None:
            try:
                reply = {"id": data["id"], "result": await handle(data)}
            except Exception as exc:
                reply = {"id": data["id"], "error": repr(exc)}
            await ws.send_str(json.dumps(reply))

        async for message in ws:
            task = asyncio.get_running_loop().create_task(answer(json.loads(message.data)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return ws

    app.router.add_get("/ws", websocket)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signals.SIGTERM, stop.set)
    await stop.wait()
    if relay is not None:
        await relay.close()
    if stock is not None:
        await stock.close()
    await runner.cleanup()


class StockSfu:
    """aiortc's own way: the publisher's tracks through contrib.media.MediaRelay into each subscriber's sender."""

    def __init__(self, push: Callable[[str, str, dict[str, Any]], Awaitable[None]]) -> None:
        self.push = push
        self.relay = MediaRelay()
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.tracks: dict[str, MediaStreamTrack] = {}

    async def handle(self, data: dict[str, Any]) -> Any:
        op, peer = data["op"], data.get("peer", "")
        if op == "join":
            pc = self.pcs[peer] = new_pc()
            if self.tracks:
                for kind in ("video", "audio"):
                    pc.addTransceiver(self.relay.subscribe(self.tracks[kind]), direction="sendonly")
                prefer(pc)
                await pc.setLocalDescription(await pc.createOffer())
                await self.push(peer, "media_offer", {"sdp": pc.localDescription.sdp, "tracks": {}})
            return {}
        pc = self.pcs[peer]
        if op == "offer":

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                self.tracks[track.kind] = track

            await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            return {"sdp": pc.localDescription.sdp, "tracks": {}}
        if op == "answer":
            await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="answer"))
            return {}
        raise ValueError(op)

    async def close(self) -> None:
        for pc in self.pcs.values():
            await pc.close()


def host_address() -> str:
    """The first non-loopback IPv4 address: the one aiortc (aioice skips 127.0.0.1) gathers on."""
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                return ip.ip
    raise RuntimeError("no non-loopback IPv4 address for ICE")


def _write_config(directory: str, files: dict[str, str]) -> Any:
    """Write Janus's config files; returns its log file, open (closed by JanusDriver.stop)."""
    for name, text in files.items():
        Path(directory, name).write_text(text)
    return open(Path(directory, "janus.log"), "wb")


class JanusDriver(Driver):
    """Janus (Debian's package) with a generated config: VideoRoom plugin, HTTP API on 127.0.0.1."""

    ROOM = 4242

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self._transactions = itertools.count()
        self._events: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.publisher_id = 0

    async def start(self) -> None:
        if not shutil.which(JANUS):
            raise RuntimeError(f"janus is not installed ({JANUS})")
        self.dir = tempfile.mkdtemp(prefix="quanzi_janus_")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        disabled_plugins = [p for p in os.listdir(JANUS_PLUGINS) if p.endswith(".so") and "videoroom" not in p]
        disabled_transports = [t for t in os.listdir(JANUS_TRANSPORTS) if t.endswith(".so") and "http" not in t]
        config = {
            "janus.jcfg": f"""
general: {{
    configs_folder = "{self.dir}"
    plugins_folder = "{JANUS_PLUGINS}"
    transports_folder = "{JANUS_TRANSPORTS}"
    debug_level = 2
    session_timeout = 0
    event_loops = 1
}}
media: {{
    ipv6 = false
    rtp_port_range = "30000-60000"
}}
nat: {{
    ice_enforce_list = "{host_address()}"
    nice_debug = false
}}
plugins: {{ disable = "{",".join(disabled_plugins)}" }}
transports: {{ disable = "{",".join(disabled_transports)}" }}
events: {{ broadcast = false }}
loggers: {{ disable = "libjanus_jsonlog.so" }}
""",
            "janus.transport.http.jcfg": f"""
general: {{ json = "compact" base_path = "/janus" http = true port = {self.port} ip = "127.0.0.1" https = false }}
admin: {{ admin_http = false }}
""",
            "janus.plugin.videoroom.jcfg": f"""
general: {{ }}
room-{self.ROOM}: {{
    description = "bench"
    publishers = 1
    bitrate = 0
    fir_freq = 0
    videocodec = "vp8"
    audiocodec = "opus"
    record = false
}}
""",
        }
        self.log = _write_config(self.dir, config)
        self.process = await asyncio.create_subprocess_exec(
            JANUS, "-F", self.dir, "-C", str(Path(self.dir, "janus.jcfg")), stdout=self.log, stderr=subprocess.STDOUT
        )
        self.pid = self.process.pid
        self.session = aiohttp.ClientSession()
        self.base = f"http://127.0.0.1:{self.port}/janus"
        for _ in range(100):
            try:
                created = await self._post(self.base, {"janus": "create"})
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"Janus did not start; see {self.dir}/janus.log")
        self.session_id = created["data"]["id"]
        self.url = f"{self.base}/{self.session_id}"
        pin(self.pid, self.cpu)
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": f"t{next(self._transactions)}"}
        async with self.session.post(url, json=body) as response:
            reply: dict[str, Any] = dict(await response.json(content_type=None))
        if reply.get("janus") == "error":
            raise RuntimeError(f"Janus: {reply}")
        return reply

    async def _poll(self) -> None:
        while True:
            try:
                async with self.session.get(f"{self.url}?maxev=50") as response:
                    events = await response.json(content_type=None)
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
                continue
            for event in events if isinstance(events, list) else [events]:
                future = self._events.pop(event.get("transaction", ""), None)
                if future is not None and not future.done():
                    future.set_result(event)

    async def _message(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        transaction = f"m{next(self._transactions)}"
        future = self._events[transaction] = asyncio.get_running_loop().create_future()
        request: dict[str, Any] = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            request["jsep"] = jsep
        async with self.session.post(f"{self.url}/{handle}", json=request) as response:
            ack = await response.json(content_type=None)
        if ack.get("janus") == "success":  # synchronous plugin reply
            self._events.pop(transaction, None)
            return ack
        event: dict[str, Any] = await asyncio.wait_for(future, 30)
        data = event.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise RuntimeError(f"Janus VideoRoom: {data}")
        return event

    async def _attach(self) -> int:
        attached = await self._post(self.url, {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        return int(attached["data"]["id"])

    async def publish(self, pc: RTCPeerConnection) -> None:
        handle = await self._attach()
        joined = await self._message(handle, {"request": "join", "room": self.ROOM, "ptype": "publisher"})
        self.publisher_id = joined["plugindata"]["data"]["id"]
        await pc.setLocalDescription(await pc.createOffer())
        jsep = {"type": "offer", "sdp": pc.localDescription.sdp, "trickle": False}
        configured = await self._message(handle, {"request": "publish", "audio": True, "video": True}, jsep)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=configured["jsep"]["sdp"], type="answer"))

    async def subscribe(self, index: int) -> RTCPeerConnection:
        handle = await self._attach()
        body = {"request": "join", "room": self.ROOM, "ptype": "subscriber", "streams": [{"feed": self.publisher_id}]}
        attached = await self._message(handle, body)
        pc = new_pc()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=attached["jsep"]["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = {"type": "answer", "sdp": pc.localDescription.sdp, "trickle": False}
        await self._message(handle, {"request": "start", "room": self.ROOM}, answer)
        return pc

    async def stop(self) -> None:
        self._poller.cancel()
        with contextlib.suppress(Exception):
            await self._post(self.url, {"janus": "destroy"})
        await self.session.close()
        self.process.send_signal(signals.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- the ramp -----------------------------------------------------------------------------------------------------


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


@dataclass
class Step:
    subscribers: int
    published_fps: float
    fps_min: float
    fps_median: float
    loss: float
    sfu_cpu: float  # share of one core
    sfu_user: float  # of which in user space (the rest is the kernel: UDP sends, wake-ups)
    harness_cpu: float
    packets: int  # forwarded packets received by all subscribers in the window
    packet_rate: float  # per subscriber, packets per second
    us_per_packet: float
    held: bool

    @property
    def cpu_capacity(self) -> float:
        """Subscribers one core could serve if CPU per packet stayed as measured: 1 s / (us/packet x rate)."""
        return 1e6 / (self.us_per_packet * self.packet_rate) if self.packet_rate else 0.0


@dataclass
class Result:
    sfu: str
    steps: list[Step] = field(default_factory=list)
    error: str | None = None

    @property
    def held(self) -> Step | None:
        held = [s for s in self.steps if s.held]
        return held[-1] if held else None


async def ramp(name: str, driver: Driver, args: argparse.Namespace, media: tuple[list[bytes], list[bytes]]) -> Result:
    result = Result(name)
    video_track = ReplayTrack("video", media[0], FPS, 90000)
    audio_track = ReplayTrack("audio", media[1], 50, 48000)
    publisher = new_pc()
    publisher.addTransceiver(video_track, direction="sendonly")
    publisher.addTransceiver(audio_track, direction="sendonly")
    prefer(publisher)
    restart_video_on_pli(publisher, video_track)
    subscribers: list[tuple[RTCPeerConnection, Counter]] = []
    step_size = args.step if name != "stock" else args.stock_step
    limit = args.max if name != "stock" else args.stock_max
    try:
        await driver.start()
        await driver.publish(publisher)
        await wait_connected(publisher)

        async def add(index: int) -> None:
            pc = await driver.subscribe(index)
            await wait_connected(pc)
            subscribers.append((pc, install_counter(pc)))

        while len(subscribers) < limit:
            target = min(len(subscribers) + step_size, limit)
            while len(subscribers) < target:
                batch = range(len(subscribers), min(len(subscribers) + 10, target))
                await asyncio.gather(*(add(i) for i in batch))
            await asyncio.sleep(args.settle)
            # Several windows, judged by the majority and reported by the median: a machine shared with other
            # work stalls a process now and then, and one stalled window must not decide the step.
            windows = [await measure(driver, subscribers, args.window, video_track) for _ in range(args.windows)]
            step = sorted(windows, key=lambda w: w.us_per_packet)[len(windows) // 2]
            step.held = sum(w.held for w in windows) * 2 > len(windows)
            step.fps_min = statistics.median(w.fps_min for w in windows)
            step.fps_median = statistics.median(w.fps_median for w in windows)
            result.steps.append(step)
            print(
                f"  {name:6} n={step.subscribers:4}  fps sent {step.published_fps:4.1f} received min/median "
                f"{step.fps_min:4.1f}/{step.fps_median:4.1f}  "
                f"loss {step.loss * 100:5.2f}%  sfu cpu {step.sfu_cpu * 100:5.1f}% (user {step.sfu_user * 100:4.1f}%)  "
                f"harness cpu {step.harness_cpu * 100:5.1f}%  {step.us_per_packet:6.2f} us/packet  "
                f"{'held' if step.held else 'NOT held'}",
                flush=True,
            )
            if name == "quanzi" and isinstance(driver, ProcessDriver):
                # Where packets that did not reach subscribers went, since the ramp began (the relay's counters).
                stats = await driver.call("stats")
                print(
                    "         relay: "
                    + ", ".join(f"{key} {stats[key]}" for key in RELAY_COUNTERS if stats.get(key)),
                    flush=True,
                )
            if step.harness_cpu > 0.9:
                print("  (the harness is saturated: figures past this point measure the harness)", flush=True)
                break
            if not step.held:
                break
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        print(f"  {name}: {result.error}", flush=True)
    finally:
        for pc, _ in subscribers:
            await pc.close()
        await publisher.close()
        with contextlib.suppress(Exception):
            await driver.stop()
    return result


async def measure(
    driver: Driver, subscribers: list[tuple[RTCPeerConnection, Counter]], window: float, track: ReplayTrack
) -> Step:
    before = [counter.totals() for _, counter in subscribers]
    sent_before = track.sent
    cpu_before, own_before, started = cpu_times(driver.pid), time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    after = [counter.totals() for _, counter in subscribers]
    elapsed = time.monotonic() - started
    published = (track.sent - sent_before) / elapsed
    cpu_after = cpu_times(driver.pid)
    sfu_user = (cpu_after[0] - cpu_before[0]) / elapsed
    sfu_cpu = sfu_user + (cpu_after[1] - cpu_before[1]) / elapsed
    harness_cpu = (time.process_time() - own_before) / elapsed
    fps = [(a[0] - b[0]) / elapsed for a, b in zip(after, before, strict=True)]
    packets = sum((a[1] + a[2]) - (b[1] + b[2]) for a, b in zip(after, before, strict=True))
    expected = sum(a[3] - b[3] for a, b in zip(after, before, strict=True))
    received = sum(a[4] - b[4] for a, b in zip(after, before, strict=True))
    loss = max(0.0, 1 - received / expected) if expected else 1.0
    held = bool(fps) and min(fps) >= 0.95 * FPS and loss < 0.01
    return Step(
        subscribers=len(subscribers),
        published_fps=published,
        fps_min=min(fps) if fps else 0.0,
        fps_median=statistics.median(fps) if fps else 0.0,
        loss=loss,
        sfu_cpu=sfu_cpu,
        sfu_user=sfu_user,
        harness_cpu=harness_cpu,
        packets=packets,
        packet_rate=packets / elapsed / len(subscribers) if subscribers else 0.0,
        us_per_packet=(sfu_cpu * elapsed * 1e6 / packets) if packets else float("inf"),
        held=held,
    )


def report(results: list[Result]) -> None:
    print("\nSFU      held (one core)   CPU us/packet   SFU CPU   CPU-bound capacity (one core)")
    for result in results:
        step = result.held
        if step is None:
            print(f"{result.sfu:8} none held{'' if result.error is None else ' (' + result.error + ')'}")
            continue
        print(
            f"{result.sfu:8} {step.subscribers:8}          {step.us_per_packet:8.2f}     {step.sfu_cpu * 100:5.1f}%"
            f"    {step.cpu_capacity:6.0f} subscribers ({step.packet_rate:.0f} packets/s each)"
        )
    by_name = {r.sfu: r.held for r in results}
    quanzi = by_name.get("quanzi")
    for other in ("stock", "janus"):
        step = by_name.get(other)
        if quanzi is not None and step is not None:
            print(
                f"quanzi vs {other}: held subscribers {quanzi.subscribers / step.subscribers:.2f}x, "
                f"CPU per packet {quanzi.us_per_packet / step.us_per_packet:.2f}x ({other}'s is 1), "
                f"CPU-bound capacity {quanzi.cpu_capacity / step.cpu_capacity:.2f}x"
            )


async def main(args: argparse.Namespace) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pin(os.getpid(), 0)
    media = encode_media()
    seconds = LOOP_SECONDS
    rate = (sum(map(len, media[0])) * 8 / seconds + sum(map(len, media[1])) * 8 / seconds) / 1e6
    print(f"stream: {WIDTH}x{HEIGHT} {FPS} fps VP8 + Opus, {rate:.2f} Mbps; SFU on CPU 1, harness on CPU 0", flush=True)
    if args.fixed:
        await paired(args, media)
        return
    results = []
    for name in args.sfu.split(","):
        driver: Driver = JanusDriver(1) if name == "janus" else ProcessDriver(name, 1)
        print(f"{name}: (load average {os.getloadavg()[0]:.2f} at start)", flush=True)
        results.append(await ramp(name, driver, args, media))
    report(results)


async def paired(args: argparse.Namespace, media: tuple[list[bytes], list[bytes]]) -> None:
    """The SFUs in turn at the same number of subscribers, several rounds: on a shared machine, pairs measured a
    minute apart see about the same background load, so their ratio means more than two separate ramps."""
    args.step = args.max = args.stock_step = args.stock_max = args.fixed
    figures: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for name in args.sfu.split(","):
            driver: Driver = JanusDriver(1) if name == "janus" else ProcessDriver(name, 1)
            print(f"round {round_ + 1} {name}: (load average {os.getloadavg()[0]:.2f})", flush=True)
            result = await ramp(name, driver, args, media)
            if result.steps:
                figures.setdefault(name, []).append(result.steps[-1].us_per_packet)
    print(f"\nCPU us per forwarded packet at {args.fixed} subscribers, per round:")
    for name, values in figures.items():
        print(f"  {name:6} " + "  ".join(f"{v:6.2f}" for v in values) + f"   median {statistics.median(values):6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sfu", default="quanzi,stock,janus", help="comma-separated: quanzi, stock, janus")
    parser.add_argument("--step", type=int, default=50, help="subscribers added per step (quanzi, janus)")
    parser.add_argument("--max", type=int, default=1200, help="stop the ramp here (quanzi, janus)")
    parser.add_argument("--stock-step", type=int, default=2, help="subscribers added per step (stock)")
    parser.add_argument("--stock-max", type=int, default=40, help="stop the ramp here (stock)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after a step before measuring")
    parser.add_argument("--window", type=float, default=4.0, help="seconds per measurement window")
    parser.add_argument("--windows", type=int, default=3, help="windows per step (the majority must hold)")
    parser.add_argument("--fixed", type=int, help="instead of ramps: paired runs at this many subscribers")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of paired runs (with --fixed)")
    parser.add_argument("--serve", choices=["quanzi", "stock"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        profile_to = os.environ.get("QUANZI_BENCH_PROFILE")  # e.g. to see where the relay spends its time
        if profile_to:
            import cProfile

            with cProfile.Profile() as profiler:
                asyncio.run(serve(arguments.serve, arguments.port))
            profiler.dump_stats(profile_to)
        else:
            asyncio.run(serve(arguments.serve, arguments.port))
    else:
        asyncio.run(main(arguments))
