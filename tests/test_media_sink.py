"""The C sink (media/_forward.c): real UDP sockets and real libsrtp sessions, decrypted on the other side."""

from __future__ import annotations

import importlib
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pylibsrtp
import pytest

from media.forwarding import Counters, OutgoingStream, Sink, forward_all

_binding: Any = importlib.import_module("pylibsrtp._binding")
PROTECT = int(_binding.ffi.cast("uintptr_t", _binding.ffi.addressof(_binding.lib, "srtp_protect")))
KEY = bytes(range(44))  # AEAD_AES_256_GCM: 32-byte key and 12-byte salt, what aiortc and browsers negotiate


def sessions() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    profile = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM
    outbound, inbound = pylibsrtp.Policy.SSRC_ANY_OUTBOUND, pylibsrtp.Policy.SSRC_ANY_INBOUND
    tx = pylibsrtp.Session(policy=pylibsrtp.Policy(key=KEY, ssrc_type=outbound, srtp_profile=profile))
    rx = pylibsrtp.Session(policy=pylibsrtp.Policy(key=KEY, ssrc_type=inbound, srtp_profile=profile))
    return tx, rx


def address(session: pylibsrtp.Session) -> int:
    return int(_binding.ffi.cast("uintptr_t", session._srtp[0]))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    yield sender, receiver
    sender.close()
    receiver.close()


def test_a_sink_protects_with_the_session_it_is_given_and_sends_to_its_address(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = pair
    tx, rx = sessions()
    sink = Sink()
    assert not sink.attached
    sink.attach(fd=sender.fileno(), host="127.0.0.1", port=receiver.getsockname()[1], session=address(tx),
                protect=PROTECT, keep=tx)
    assert sink.attached
    header = struct.pack("!BBHII", 0x80, 96, 1000, 90000, 0xABCDEF01)
    payload = os.urandom(1100)
    assert sink(header, payload) == 1
    datagram, source = receiver.recvfrom(2048)
    assert source == sender.getsockname(), "sent from the subscriber's own socket (its ICE pair)"
    assert datagram[:12] == header and datagram[12:-16] != payload, "the payload is encrypted"
    assert rx.unprotect(datagram) == header + payload
    # The same session keeps counting: a second packet decrypts too (replay state and rollover are libsrtp's).
    header2 = struct.pack("!BBHII", 0x80, 0xE0, 1001, 90000, 0xABCDEF01)
    assert sink(header2, b"tail") == 1
    assert rx.unprotect(receiver.recv(2048)) == header2 + b"tail"


def test_a_sink_keeps_its_own_descriptor_until_detached(pair: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = pair
    tx, rx = sessions()
    before = open_fds()
    sink = Sink()
    sink.attach(fd=sender.fileno(), host="127.0.0.1", port=receiver.getsockname()[1], session=address(tx),
                protect=PROTECT, keep=tx)
    assert open_fds() == before + 1
    local = sender.getsockname()
    sender.close()  # aioice closed its socket first: the sink still sends from the same port, on its own descriptor
    header = struct.pack("!BBHII", 0x80, 96, 7, 0, 1)
    assert sink(header, b"x" * 50) == 1
    datagram, source = receiver.recvfrom(2048)
    assert source == local and rx.unprotect(datagram) == header + b"x" * 50
    sink.detach()
    assert open_fds() == before - 1, "detaching closed the sink's descriptor"
    assert not sink.attached
    assert sink(header, b"y") == -1, "a detached sink sends nothing"
    sink.detach()  # idempotent


def test_a_sink_refuses_what_it_cannot_send(pair: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = pair
    tx, _ = sessions()
    sink = Sink()
    port = receiver.getsockname()[1]
    header = struct.pack("!BBHII", 0x80, 96, 1, 0, 1)
    assert sink(header, b"x") == -1, "not attached yet"
    fds = open_fds()
    with pytest.raises(ValueError, match="numeric address"):
        sink.attach(fd=sender.fileno(), host="relay.example", port=port, session=address(tx), protect=PROTECT, keep=tx)
    with pytest.raises(ValueError, match="port"):
        sink.attach(fd=sender.fileno(), host="127.0.0.1", port=0, session=address(tx), protect=PROTECT, keep=tx)
    with pytest.raises(ValueError, match="addresses"):
        sink.attach(fd=sender.fileno(), host="127.0.0.1", port=port, session=0, protect=PROTECT, keep=tx)
    with pytest.raises(OSError):
        sink.attach(fd=10_000, host="127.0.0.1", port=port, session=address(tx), protect=PROTECT, keep=tx)
    assert open_fds() == fds and not sink.attached, "a refused attach leaves nothing open"
    with pytest.raises(TypeError):
        sink("not bytes", b"x")  # type: ignore[arg-type]
    sink.attach(fd=sender.fileno(), host="127.0.0.1", port=port, session=address(tx), protect=PROTECT, keep=tx)
    assert sink(header, bytes(1400)) == -1, "larger than any MTU: never sent"
    assert sink(header, bytes(1388)) == 1, "1400 bytes before SRTP is the largest sent"
    assert len(receiver.recv(2048)) == 1400 + 16
    sink.detach()


def test_streams_fan_one_packet_out_through_their_sinks(pair: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = pair
    counters = Counters()
    decrypt = []
    streams = []
    for ssrc in (11, 22, 33):
        tx, rx = sessions()
        sink = Sink()
        sink.attach(fd=sender.fileno(), host="127.0.0.1", port=receiver.getsockname()[1], session=address(tx),
                    protect=PROTECT, keep=tx)
        stream = OutgoingStream(is_video=False, ssrc=ssrc, rtx_ssrc=ssrc + 1, clock_rate=48000, history_size=64,
                                counters=counters)
        stream.set_payload_types(111, None)
        stream.send = sink
        stream.active = ssrc != 22  # an inactive stream sends nothing
        streams.append(stream)
        decrypt.append(rx)
    forward_all(streams, 500, 9600, 1, b"opus frame", True)
    received = [receiver.recv(2048) for _ in range(2)]
    with pytest.raises(TimeoutError):
        receiver.settimeout(0.2)
        receiver.recv(2048)
    ssrcs = sorted(struct.unpack("!I", datagram[8:12])[0] for datagram in received)
    assert ssrcs == [11, 33]
    for datagram in received:
        ssrc = struct.unpack("!I", datagram[8:12])[0]
        plain = decrypt[[11, 22, 33].index(ssrc)].unprotect(datagram)
        assert plain[1] == 0x80 | 111 and plain[12:] == b"opus frame"
    assert counters.packets_forwarded == 2 and counters.bytes_forwarded == 2 * (12 + 10)
    assert streams[0].packets == 1 and streams[0].octets == 10 and streams[1].packets == 0
    # What forward_all refuses, it refuses before sending anything.
    with pytest.raises(TypeError):
        forward_all(streams, 501, 9600, 0, bytearray(b"x"), True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        forward_all([object()], 501, 9600, 0, b"x", True)  # type: ignore[list-item]
    assert counters.packets_forwarded == 2
