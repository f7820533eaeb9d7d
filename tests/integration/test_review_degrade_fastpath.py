"""Review of the WebSocket fast path (``ws_fast_path``, on by default) against a real
``tickcast serve`` process, by a client written by hand (raw TCP, frames built here):
what arrives in one TCP segment, the inbound limits, control frames, a peer that
vanishes, compression, shutdown. Defects are reproduced as strict xfails.

Every wait is bounded (socket timeouts, a deadline on polling), none is timed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from support.accounts import seed
from support.inloop import running_gateway
from support.server import Server, start_server
from support.wsclient import recv_json, send_json
from tickcast.protocols.native.session import MarketFeedSession
from tickcast.transport import uvicorn_websocket

TIMEOUT_S = 15.0


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "asgi-path"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The gateway on the fast path, and on the ASGI path (``ws_fast_path`` off): every
    guarantee holds on both."""
    srv = start_server(
        tmp_path_factory.mktemp("fastpath"),
        ws_fast_path=str(request.param).lower(),
        max_anonymous_connections_per_address=3,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
    )
    try:
        yield srv
    finally:
        srv.stop()


def handshake(path: str = "/ws/market/feed", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key}\r\n{extra}\r\n"
    ).encode()


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One masked client frame."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


def text(message: object) -> bytes:
    return frame(1, json.dumps(message).encode())


class Raw:
    """A raw WebSocket client: sends bytes, reads server frames."""

    def __init__(self, srv: Server, first: bytes = b"", extra: str = "", rcvbuf: int = 0) -> None:
        self.sock = socket.socket()
        if rcvbuf:  # a small receive window: a client that stops reading backs up at once
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT_S)
        self.sock.connect(("127.0.0.1", srv.port))
        self.sock.sendall(handshake(extra=extra) + first)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode()
        assert self.head.startswith("HTTP/1.1 101"), self.head

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the TCP connection")
        self.buf += data

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self) -> tuple[int, bytes]:
        """One server frame: (opcode, payload)."""
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._take(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._take(8))
        return b0 & 0x0F, self._take(n)

    def message(self) -> dict[str, object]:
        """The next text message (control frames skipped)."""
        while True:
            opcode, payload = self.read()
            if opcode == 1:
                return json.loads(payload)  # type: ignore[no-any-return]
            assert opcode in (9, 10), (opcode, payload)

    def close_code(self) -> int:
        """Read until the server's close frame: its code."""
        while True:
            opcode, payload = self.read()
            if opcode == 8:
                return int(struct.unpack("!H", payload[:2])[0]) if payload else 1005

    def close(self) -> None:
        self.sock.close()

    def reset(self) -> None:
        """Abort: an RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def gauge(srv: Server, name: str) -> float:
    return srv.metric(name)


def until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


PING = {"action": "ping"}


def test_a_message_in_the_handshakes_segment_is_answered(server: Server) -> None:
    c = Raw(server, first=text(PING))
    try:
        assert c.message()["type"] == "pong"
    finally:
        c.close()


def test_invalid_utf8_in_the_handshakes_segment_closes_1007(server: Server) -> None:
    c = Raw(server, first=frame(1, b'{"action": "\xff"}'))
    try:
        assert c.close_code() == 1007
    finally:
        c.close()


def test_pipelined_messages_in_one_segment_are_each_answered(server: Server) -> None:
    c = Raw(server)
    try:
        c.sock.sendall(text(PING) + text(PING) + text(PING))
        assert [c.message()["type"] for _ in range(3)] == ["pong"] * 3
    finally:
        c.close()


def test_a_message_over_64_kib_closes_1009(server: Server) -> None:
    c = Raw(server)
    try:
        c.sock.sendall(frame(1, b" " * (64 * 1024 + 1)))
        assert c.close_code() == 1009
    finally:
        c.close()


def test_a_message_of_exactly_64_kib_is_taken(server: Server) -> None:
    c = Raw(server)
    try:
        head = b'{"action": "ping", "pad": "'
        body = head + b"x" * (64 * 1024 - len(head) - 2) + b'"}'
        assert len(body) == 64 * 1024
        c.sock.sendall(frame(1, body[:30000], fin=False) + frame(0, body[30000:]))
        assert c.message()["type"] in ("pong", "error")  # answered, not closed
        c.sock.sendall(text(PING))
        assert c.message()["type"] == "pong"
    finally:
        c.close()


def test_fragments_adding_up_past_64_kib_close_1009(server: Server) -> None:
    c = Raw(server)
    try:
        c.sock.sendall(frame(1, b" " * 40000, fin=False) + frame(0, b" " * 40000))
        assert c.close_code() == 1009
    finally:
        c.close()


def test_invalid_utf8_closes_1007(server: Server) -> None:
    c = Raw(server)
    try:
        c.sock.sendall(frame(1, b'{"action": "\xff"}'))
        assert c.close_code() == 1007
    finally:
        c.close()


def test_a_ping_between_fragments_is_ponged_and_the_message_answered(server: Server) -> None:
    c = Raw(server)
    try:
        body = json.dumps(PING).encode()
        c.sock.sendall(frame(1, body[:5], fin=False) + frame(9, b"hi") + frame(0, body[5:]))
        assert c.read() == (10, b"hi")
        assert c.message()["type"] == "pong"
    finally:
        c.close()


def test_a_binary_message_is_refused_with_an_error_and_the_connection_goes_on(
    server: Server,
) -> None:
    c = Raw(server)
    try:
        c.sock.sendall(frame(2, b"\x00\x01"))
        assert c.message()["type"] == "error"
        c.sock.sendall(text(PING))
        assert c.message()["type"] == "pong"
    finally:
        c.close()


def test_clients_that_reset_half_close_or_close_release_everything(server: Server) -> None:
    """Per-address cap 3: twelve connections, each subscribed then gone by RST, by a
    half-close or by a FIN, release their slot and their subscription."""
    for i in range(12):
        c = Raw(server)
        c.sock.sendall(text({"action": "subscribe", "symbols": ["AAPL"]}))
        assert c.message()["type"] == "subscribed"
        if i % 3 == 0:
            c.reset()
        elif i % 3 == 1:
            c.sock.shutdown(socket.SHUT_WR)
            c.close()
        else:
            c.close()
    until(lambda: server.metric("tickcast_active_connections") == 0, "connections released")
    until(lambda: server.metric("tickcast_subscriptions") == 0, "subscriptions released")
    held = [Raw(server) for _ in range(3)]  # the cap: every slot was given back
    try:
        for c in held:
            c.sock.sendall(text(PING))
            assert c.message()["type"] == "pong"
    finally:
        for c in held:
            c.close()


def test_a_deflate_bomb_is_refused_1009_and_compression_still_serves(tmp_path: Path) -> None:
    """permessage-deflate on: 64 MiB of spaces compressed into about 64 KiB in one frame,
    or four compressed fragments of 20 KiB each once inflated (80 KiB in all), is refused
    with 1009 (the cap is on the inflated message); a compressing client is served."""
    srv = start_server(tmp_path, permessage_deflate="true")
    try:
        for fragments in (1, 4):
            c = Raw(srv, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
            try:
                assert "permessage-deflate" in c.head.lower()
                squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
                each = (16 << 20) if fragments == 1 else 20 * 1024
                parts = [
                    squeeze.compress(b" " * each) + squeeze.flush(zlib.Z_SYNC_FLUSH)
                    for _ in range(4)
                ]
                bomb = b"".join(parts)
                assert bomb.endswith(b"\x00\x00\xff\xff")
                if fragments == 1:
                    c.sock.sendall(frame(1, bomb[:-4], rsv1=True))
                else:
                    data = frame(1, parts[0], fin=False, rsv1=True)
                    data += frame(0, parts[1], fin=False) + frame(0, parts[2], fin=False)
                    data += frame(0, parts[3][:-4])
                    c.sock.sendall(data)
                assert c.close_code() == 1009
            finally:
                c.close()

        async def served() -> None:
            async with connect(srv.feed, compression="deflate") as ws:
                await send_json(ws, PING)
                assert (await recv_json(ws))["type"] == "pong"

        asyncio.run(served())
    finally:
        srv.stop()


def test_shutdown_closes_a_client_that_never_answers_with_1001_and_exits(
    tmp_path: Path,
) -> None:
    srv = start_server(tmp_path, close_timeout_s=1)
    c = Raw(srv)
    try:
        c.sock.sendall(text({"action": "subscribe", "symbols": ["AAPL"]}))
        assert c.message()["type"] == "subscribed"
        srv.proc.send_signal(signal.SIGTERM)
        assert c.close_code() == 1001
        assert srv.proc.wait(timeout=TIMEOUT_S) == 0  # never answered: aborted, then gone
    finally:
        c.close()
        srv.stop()


#: What a connection's pongs may hold in memory for a client that does not read them.
PONG_BOUND = 4 << 20


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_ping_flood_from_a_client_that_never_reads_holds_bounded_memory(
    tmp_path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the ping cap (which closes such a client) lifted: the pongs' bound is under test
    monkeypatch.setattr(uvicorn_websocket, "PING_BURST", 1_000_000)
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            writer.write(handshake())
            async with asyncio.timeout(TIMEOUT_S):
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            writer.transport.pause_reading()  # from now on the client reads nothing
            pings = frame(9, b"x" * 125) * 1000
            try:
                async with asyncio.timeout(TIMEOUT_S):  # the server may stop reading: fine
                    for _ in range(200):  # 26 MB of pings
                        writer.write(pings)
                        await writer.drain()
            except TimeoutError:
                pass
            (connection,) = gateway.node.connections
            transport = connection.sock._protocol.transport  # type: ignore[attr-defined]
            deadline = time.monotonic() + TIMEOUT_S
            # until the server has answered what it read, is over the bound, or closed
            while not connection.closing and transport.get_write_buffer_size() <= PONG_BOUND:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert connection.closing or transport.get_write_buffer_size() <= PONG_BOUND
        finally:
            writer.transport.abort()


def test_clients_that_vanish_during_the_handshake_release_their_slots(server: Server) -> None:
    """Thirty clients send the upgrade (with a subscribe in the same write, or right
    after) and reset at once, before the 101 is read: some go during admission, some
    between the accept and the attach, some after. Every slot comes back."""
    subscribe = text({"action": "subscribe", "symbols": ["AAPL"]})
    for i in range(30):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S)
        sock.sendall(handshake() + (subscribe if i % 2 else b""))
        if i % 3 == 0:
            sock.sendall(subscribe)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    until(lambda: server.metric("tickcast_active_connections") == 0, "connections released")
    until(lambda: server.metric("tickcast_subscriptions") == 0, "subscriptions released")
    held = [Raw(server) for _ in range(3)]  # the per-address cap: every slot given back
    try:
        for c in held:
            c.sock.sendall(text(PING))
            assert c.message()["type"] == "pong"
    finally:
        for c in held:
            c.close()


@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_a_session_that_raises_closes_its_connection_1011_and_releases_it(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one session (its receive raising) on the fast path: counted, that
    connection closed with 1011 and released at once; the gateway goes on."""
    async with running_gateway(tmp_path) as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            writer.write(handshake())
            async with asyncio.timeout(TIMEOUT_S):
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            writer.write(text({"action": "subscribe", "symbols": ["AAPL"]}))
            async with asyncio.timeout(TIMEOUT_S):
                while gateway.node.hub.subscription_count != 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            assert len(gateway.node.connections) == 1

            def broken(*_: object) -> None:
                raise RuntimeError("a bug in the session")

            method = "receive_text" if kind == "text" else "receive_bytes"
            monkeypatch.setattr(MarketFeedSession, method, broken)
            writer.write(text(PING) if kind == "text" else frame(2, b"\x01"))
            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    first, length = await reader.readexactly(2)
                    payload = await reader.readexactly(length & 0x7F)  # short frames only
                    if first & 0x0F == 8:
                        assert struct.unpack("!H", payload[:2]) == (1011,)
                        break
                while gateway.node.connections:  # noqa: ASYNC110 - released on a later pass
                    await asyncio.sleep(0.02)
            assert gateway.node.hub.subscription_count == 0
            assert gateway.node.faults.counts.get("command") == 1
        finally:
            writer.transport.abort()


def test_shutdown_with_many_clients_and_one_that_stopped_reading_gives_1001_and_exits(
    tmp_path: Path,
) -> None:
    """Twenty idle clients, one reading trades and one that stopped reading them (a small
    receive window: its socket backs up): on SIGTERM each client that reads gets 1001,
    and the process exits cleanly without waiting on the one that does not."""
    srv = start_server(
        tmp_path, rate=2000, close_timeout_s=1, max_anonymous_connections_per_address=0
    )
    opened: list[Raw] = []
    try:
        everything = {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "channels": ["trades"]}
        stalled = Raw(srv, rcvbuf=4096)
        opened.append(stalled)
        stalled.sock.sendall(text(everything))  # and never reads again
        reader = Raw(srv)
        opened.append(reader)
        reader.sock.sendall(text(everything))
        idle = [Raw(srv) for _ in range(20)]
        opened.extend(idle)
        for c in idle:
            c.sock.sendall(text(PING))
            assert c.message()["type"] == "pong"
        got = 0
        while got < 200:  # trades flow while the stalled client's socket backs up
            got += reader.message().get("type") == "trade"
        srv.proc.send_signal(signal.SIGTERM)
        assert reader.close_code() == 1001
        assert [c.close_code() for c in idle] == [1001] * len(idle)
        assert srv.proc.wait(timeout=TIMEOUT_S) == 0
    finally:
        for c in opened:
            c.close()
        srv.stop()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
def test_a_users_slots_come_back_however_the_connection_ends(tmp_path: Path, fast: bool) -> None:
    """Two connections per user: ten rounds of two, each ended one of four ways (an RST,
    a half-close, a client close, a gateway close for flooding: 3002); the user is
    admitted again each time, as soon as the gateway has let go."""
    url = f"sqlite+aiosqlite:///{tmp_path}/u.db"
    carol = asyncio.run(seed(url, {"carol": {}}))["carol"]
    srv = start_server(
        tmp_path,
        database_url=url,
        ws_fast_path=str(fast).lower(),
        max_connections_per_user=2,
        rate_limit_per_s=5,
        rate_limit_burst=10,
    )
    key = f"X-API-Key: {carol.api_key}\r\n"
    try:
        for round_ in range(10):
            pair = [Raw(srv, extra=key), Raw(srv, extra=key)]
            for c in pair:
                c.sock.sendall(text(PING))
                assert c.message()["type"] == "pong"
            for c in pair:
                way = round_ % 4
                if way == 0:
                    c.reset()
                elif way == 1:
                    c.sock.shutdown(socket.SHUT_WR)
                    c.close()
                elif way == 2:
                    c.sock.sendall(frame(8, struct.pack("!H", 1000)))
                    assert c.close_code() == 1000
                    c.close()
                else:
                    c.sock.sendall(text(PING) * 40)  # past the burst: closed 3002
                    assert c.close_code() == 3002
                    c.close()
            until(lambda: srv.metric("tickcast_active_connections") == 0, "slots released")
    finally:
        srv.stop()
