"""What a client sends with its upgrade request, and pings from a client that does not
read, on the gateway's WebSocket transport (``transport/uvicorn_protocols.py``), on the
fast path and on the ASGI path, in the test's loop over real sockets.

Every wait is bounded (``asyncio.timeout``), none is timed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from support.inloop import Gateway, running_gateway
from tickcast.transport import uvicorn_websocket

TIMEOUT_S = 15.0
PING = json.dumps({"action": "ping"}).encode()

PATHS = pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])


def handshake(extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        "GET /ws/market/feed HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key}\r\n{extra}\r\n"
    ).encode()


def frame(opcode: int, payload: bytes, *, rsv1: bool = False) -> bytes:
    """One masked, final client frame (payloads under 64 KiB)."""
    head = bytes([0x80 | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """One server frame: (opcode, rsv1, payload)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0 & 0x0F, bool(b0 & 0x40), await reader.readexactly(n)


@asynccontextmanager
async def client(
    gateway: Gateway, first: bytes = b"", extra: str = "", rcvbuf: int = 0
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]]:
    """A raw client that sent the upgrade request and ``first`` in one write: its reader
    (past the 101), its writer, and the response head."""
    sock = socket.socket()
    if rcvbuf:  # a small receive window: a client that stops reading backs up at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gateway.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(handshake(extra) + first)
        async with asyncio.timeout(TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head  # the answer comes first
        yield reader, writer, head
    finally:
        writer.transport.abort()


@PATHS
async def test_a_ping_in_the_handshakes_segment_is_ponged_after_the_101(
    tmp_path: Path, fast: bool
) -> None:
    async with (
        running_gateway(tmp_path, ws_fast_path=fast) as gateway,
        client(gateway, first=frame(9, b"early") + frame(1, PING)) as (reader, _, _),
        asyncio.timeout(TIMEOUT_S),
    ):
        assert await read_frame(reader) == (10, False, b"early")
        opcode, _, payload = await read_frame(reader)
        assert (opcode, json.loads(payload)["type"]) == (1, "pong")


@PATHS
async def test_a_compressed_message_in_the_handshakes_segment_is_answered(
    tmp_path: Path, fast: bool
) -> None:
    """permessage-deflate is negotiated by the handshake the message came with: the
    message is parsed once the extension is in place."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = squeeze.compress(PING) + squeeze.flush(zlib.Z_SYNC_FLUSH)
    message = frame(1, body[:-4], rsv1=True)
    async with (
        running_gateway(tmp_path, ws_fast_path=fast, permessage_deflate=True) as gateway,
        client(gateway, message, "Sec-WebSocket-Extensions: permessage-deflate\r\n") as (
            reader,
            _,
            head,
        ),
        asyncio.timeout(TIMEOUT_S),
    ):
        assert b"permessage-deflate" in head.lower()
        opcode, compressed, payload = await read_frame(reader)
        if compressed:
            payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
        assert (opcode, json.loads(payload)["type"]) == (1, "pong")


@PATHS
async def test_pings_held_while_the_client_does_not_read_get_one_pong_for_the_latest(
    tmp_path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client floods pings without reading (its socket backs up): the gateway does not
    answer each one; once the client reads, it gets fewer pongs than pings, the last of
    them for its latest ping, and the connection goes on. (The ping cap, which would
    close such a client first, is lifted here: the holding is what is under test.)"""
    monkeypatch.setattr(uvicorn_websocket, "PING_BURST", 1_000_000)
    pings = 40_000
    async with (
        running_gateway(tmp_path, ws_fast_path=fast) as gateway,
        client(gateway, rcvbuf=4096) as (reader, writer, _),
    ):
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        flood = frame(9, b"x" * 125) * 1000
        async with asyncio.timeout(TIMEOUT_S):
            for _ in range(pings // 1000):
                writer.write(flood)
                await writer.drain()
            writer.write(frame(9, b"latest"))
            await writer.drain()
            (connection,) = gateway.node.connections
            protocol: Any = connection.sock._protocol  # type: ignore[attr-defined]
            held = protocol.conn  # until the gateway has read it all
            while not held.hold_pongs or held.held_pong != b"latest":  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        writer.transport.resume_reading()  # type: ignore[attr-defined]
        pongs = 0
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                opcode, _, payload = await read_frame(reader)
                assert opcode == 10
                pongs += 1
                if payload == b"latest":
                    break
                assert payload == b"x" * 125
            assert pongs < pings
            writer.write(frame(1, PING))
            opcode, _, payload = await read_frame(reader)
            assert (opcode, json.loads(payload)["type"]) == (1, "pong")


@PATHS
async def test_a_ping_flood_is_closed_with_3002_and_other_clients_go_on(
    tmp_path: Path, fast: bool
) -> None:
    """Pings past the cap (a burst of ``PING_BURST``, then ``PING_RATE_PER_S`` a second)
    close the client with 3002 "too many pings"; the pings within it were answered, and
    another client on the same gateway is answered as before."""
    burst = uvicorn_websocket.PING_BURST
    async with (
        running_gateway(tmp_path, ws_fast_path=fast) as gateway,
        client(gateway) as (reader, writer, _),
        client(gateway) as (other_reader, other_writer, _),
        asyncio.timeout(TIMEOUT_S),
    ):
        writer.write(frame(9, b"ok") * burst)
        await writer.drain()
        for _ in range(burst):
            assert await read_frame(reader) == (10, False, b"ok")
        # The bucket holds at most ``burst``: twice that, sent at once, is over it
        # however long the reads above took.
        writer.write(frame(9, b"more") * (2 * burst))
        await writer.drain()
        while True:
            opcode, _, payload = await read_frame(reader)
            if opcode == 8:
                break
            assert opcode == 10
        assert struct.unpack("!H", payload[:2])[0] == 3002
        assert payload[2:] == b"too many pings"
        other_writer.write(frame(9, b"fine") + frame(1, PING))
        await other_writer.drain()
        assert await read_frame(other_reader) == (10, False, b"fine")
        opcode, _, payload = await read_frame(other_reader)
        assert (opcode, json.loads(payload)["type"]) == (1, "pong")
