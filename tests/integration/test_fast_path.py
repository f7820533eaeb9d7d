"""The WebSocket fast path (``ws_fast_path``, transport/direct.py): once a front's
connection is open, uvicorn's protocol drives it from ``data_received``: no task and no
receive queue per connection. The fronts' own suites (test_market_feed.py,
test_realtime.py, test_stomp_websocket.py, ..., the Autobahn cases) run on it, since it
is the default; this file checks what is particular to it, against the ASGI path
(``ws_fast_path`` off) in the same harness: the gateway in the test's loop, so that its
tasks and protocol objects can be looked at."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from support.inloop import Gateway, running_gateway
from support.wsclient import recv_json, recv_until, send_json
from tickcast.model.market import Quote
from tickcast.transport.uvicorn_protocols import TickcastWebSocketProtocol

N = 5


async def _ping(ws: ClientConnection) -> None:
    await send_json(ws, {"action": "ping"})
    assert (await recv_json(ws))["type"] == "pong"


def _live_tasks() -> int:
    """The server's ASGI tasks running (the clients, in this loop too, have their own)."""
    return sum("run_asgi" in getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks())


async def _settled(gateway: Gateway, expected: int) -> None:
    """Until the node holds ``expected`` connections (a close is released on the loop's
    next pass, or when the ASGI task reads its disconnect)."""
    async with asyncio.timeout(10):
        while len(gateway.node.connections) != expected:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_an_open_connection_costs_a_task_only_on_the_asgi_path(
    tmp_path: Path, fast: bool
) -> None:
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        before = _live_tasks()
        clients = [await connect(gateway.feed).__aenter__() for _ in range(N)]
        try:
            for ws in clients:
                await _ping(ws)  # admitted, accepted and answered
            await _settled(gateway, N)
            grown = _live_tasks() - before
            assert grown == (0 if fast else N)
        finally:
            for ws in clients:
                await ws.close()
        await _settled(gateway, 0)


async def test_the_protocol_drops_its_queue_and_scope_once_attached(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gateway, connect(gateway.feed) as ws:
        await _ping(ws)
        await _settled(gateway, 1)
        (connection,) = gateway.node.connections
        protocol = connection.sock._protocol  # type: ignore[attr-defined]
        assert isinstance(protocol, TickcastWebSocketProtocol)
        assert not isinstance(protocol.queue, asyncio.Queue)
        assert not isinstance(protocol.writable, asyncio.Event)
        assert protocol.scope is None


async def test_updates_flow_and_a_client_close_releases_the_subscription(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gateway:
        async with connect(gateway.feed) as ws:
            await send_json(ws, {"action": "subscribe", "symbols": ["AAPL"]})
            await recv_until(ws, lambda m: m.get("type") == "subscribed")
            await _settled(gateway, 1)
            quote = Quote("AAPL", 100.99, 101.01, 1, 1, 101.0, 1000, time.time(), "test")
            gateway.node.ingest([quote])
            update = await recv_until(ws, lambda m: m.get("symbol") == "AAPL")
            assert update["price"] == 101.0
        await _settled(gateway, 0)
        assert gateway.node.hub.subscription_count == 0


async def _raw_open(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client by hand, one that will never answer a close: after the 101."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {key}\r\n\r\n"
        ).encode()
    )
    async with asyncio.timeout(10):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return reader, writer


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame of up to 125 bytes: its opcode and payload."""
    async with asyncio.timeout(10):
        first, length = await reader.readexactly(2)
        assert length < 126
        return first & 0x0F, await reader.readexactly(length)


async def test_a_session_that_closes_as_it_opens_is_released_at_once(tmp_path: Path) -> None:
    """The monitoring streams refuse an anonymous client after the accept (an error,
    then 3503): its connection closes before the protocol drives it, and is released
    then, not when the client answers the close (this one never does, and the gateway
    would wait ``close_timeout_s`` for it)."""
    async with running_gateway(tmp_path, close_timeout_s=60) as gateway:
        reader, writer = await _raw_open(gateway.port, "/ws/alerts")
        opcode, error = await _read_frame(reader)
        assert opcode == 1
        assert json.loads(error)["type"] == "error"
        opcode, close = await _read_frame(reader)
        assert opcode == 8
        assert struct.unpack("!H", close[:2]) == (3503,)
        await _settled(gateway, 0)  # while the client still holds its socket open
        writer.close()


async def test_a_close_the_gateway_decides_is_delivered_and_released_at_once(
    tmp_path: Path,
) -> None:
    """An idle client is closed (3008) by its session's timer: the close frame goes out
    and the connection is released without waiting for the client's answer."""
    async with running_gateway(tmp_path, close_timeout_s=60, idle_timeout_s=0.5) as gateway:
        reader, writer = await _raw_open(gateway.port, "/ws/market/feed")
        await _settled(gateway, 1)
        opcode, close = await _read_frame(reader)
        assert opcode == 8
        assert struct.unpack("!H", close[:2]) == (3008,)
        await _settled(gateway, 0)
        writer.close()
