"""Review, round 3: the transport fixes (d0c352c, ``transport/uvicorn_protocols.py``:
bytes sent with the upgrade request kept and parsed after the 101, pongs held while the
write buffer is over its high-water mark), adversarially, over real sockets to a
gateway in the test's loop, on the fast path and on the ASGI path.

What was checked and holds: a client that pipelines far more than the 64 KiB held
before the 101 gets every answer, in order; a refused handshake with bytes after it is
answered and closed (never left paused); two plain HTTP requests in one segment are
both answered; a close frame in the upgrade's segment is answered after the 101; a ping
flood from a client that does not read, interleaved with commands, leaves the commands
answered in order, and every pong carries the payload of a ping sent, in order, the
last for the latest ping.

Every wait is bounded (``asyncio.timeout``), none is timed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from support.inloop import Gateway, running_gateway
from tickcast.transport import uvicorn_websocket

TIMEOUT_S = 30.0
PING = json.dumps({"action": "ping"}).encode()
PATHS = pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])


def handshake(path: str = "/ws/market/feed") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key}\r\n\r\n"
    ).encode()


def frame(opcode: int, payload: bytes) -> bytes:
    """One masked, final client frame (payloads under 64 KiB)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame: (opcode, payload); never compressed here (not negotiated)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0 & 0x0F, await reader.readexactly(n)


def messages(payload: bytes) -> list[Any]:
    decoded = json.loads(payload)
    return decoded if isinstance(decoded, list) else [decoded]


@asynccontextmanager
async def client(
    gateway: Gateway, first: bytes = b"", rcvbuf: int = 0
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw client that sent the upgrade request and ``first`` in one write, past the
    101."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gateway.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(handshake() + first)
        async with asyncio.timeout(TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        yield reader, writer
    finally:
        writer.transport.abort()


@PATHS
async def test_far_more_than_64_kib_pipelined_after_the_upgrade_is_all_answered_in_order(
    tmp_path: Path, fast: bool
) -> None:
    """About 190 KiB of commands in the upgrade's own write (three times what is held
    before the 101; the rest waits in the kernel while reading is paused)."""
    n = 8000
    first = b"".join(frame(1, json.dumps({"action": "ping", "n": i}).encode()) for i in range(n))
    assert len(first) > 3 * 64 * 1024
    async with (
        running_gateway(tmp_path, ws_fast_path=fast) as gateway,
        client(gateway, first) as (reader, _),
        asyncio.timeout(TIMEOUT_S),
    ):
        pongs = 0
        while pongs < n:
            opcode, payload = await read_frame(reader)
            assert opcode == 1
            for message in messages(payload):
                assert message["type"] == "pong", message
                pongs += 1
        assert pongs == n


@PATHS
async def test_a_refused_handshake_with_bytes_after_it_is_answered_and_closed(
    tmp_path: Path, fast: bool
) -> None:
    """More than 64 KiB after a request the gateway refuses (a path it does not serve):
    an HTTP refusal, then the end of the connection (reading paused for the held bytes
    must not keep it open)."""
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            writer.write(handshake("/ws/nowhere") + frame(1, PING) * 4000)
            async with asyncio.timeout(TIMEOUT_S):
                answer = await reader.read()  # to the end of the connection
            assert re.match(rb"HTTP/1\.1 4\d\d ", answer), answer[:80]
        finally:
            writer.transport.abort()


async def test_two_http_requests_in_one_segment_are_both_answered(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            writer.write(request + request)
            async with asyncio.timeout(TIMEOUT_S):
                for _ in range(2):
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200"), head
                    length = re.search(rb"(?i)content-length: (\d+)", head)
                    assert length is not None
                    await reader.readexactly(int(length.group(1)))
        finally:
            writer.transport.abort()


@PATHS
async def test_a_close_frame_in_the_upgrades_segment_is_answered_after_the_101(
    tmp_path: Path, fast: bool
) -> None:
    close = frame(8, struct.pack("!H", 1000) + b"bye")
    async with (
        running_gateway(tmp_path, ws_fast_path=fast) as gateway,
        client(gateway, close) as (reader, _),
        asyncio.timeout(TIMEOUT_S),
    ):
        opcode, payload = await read_frame(reader)
        assert (opcode, payload[:2]) == (8, struct.pack("!H", 1000))
        assert await reader.read() == b""


@PATHS
async def test_a_ping_flood_between_commands_leaves_them_answered_in_order(
    tmp_path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that does not read sends 200 rounds of 200 pings (125 bytes, numbered)
    and one command; once it reads, the commands' answers come in order, and each pong
    echoes a ping sent, in the order sent, the last one the latest ping. (The ping cap,
    which closes such a client, is lifted: the order under held pongs is under test.)"""
    monkeypatch.setattr(uvicorn_websocket, "PING_BURST", 1_000_000)
    rounds = 200

    def payload(i: int) -> bytes:
        return f"ping {i} ".encode().ljust(125, b".")

    async with (
        running_gateway(tmp_path, ws_fast_path=fast) as gateway,
        client(gateway, rcvbuf=4096) as (reader, writer),
    ):
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        async with asyncio.timeout(TIMEOUT_S):
            for i in range(rounds):
                writer.write(frame(9, payload(i)) * 200)
                command = {"action": "subscribe", "symbols": [f"Z{i}"], "channels": ["trades"]}
                writer.write(frame(1, json.dumps(command).encode()))
                await writer.drain()
        writer.transport.resume_reading()  # type: ignore[attr-defined]
        answered: list[str] = []
        pongs: list[int] = []
        async with asyncio.timeout(TIMEOUT_S):
            while len(answered) < rounds or pongs[-1] != rounds - 1:
                opcode, data = await read_frame(reader)
                if opcode == 10:
                    i = int(data.split()[1])
                    assert data == payload(i)
                    pongs.append(i)
                    continue
                for message in messages(data):  # unknown symbols: refused, naming it
                    assert message["type"] == "error", message
                    answered.append(message["message"].rsplit(" ", 1)[-1])
        assert answered == [f"Z{i}" for i in range(rounds)]
        assert pongs == sorted(pongs)
        assert len(pongs) <= rounds * 200
