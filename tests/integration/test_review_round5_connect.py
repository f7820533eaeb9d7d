"""Review round 5: the fast path's connect at the upgrade (ce122fc), through real
sockets: a first message in the upgrade's own TCP segment, a client gone right after
its upgrade, the origin check, STOMP's subprotocol; and the node's gc thresholds."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import struct
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from support.inloop import running_gateway
from support.wsclient import recv_json, send_json
from tickcast.auth.policy import Reason

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _request(path: str = "/ws/market/feed", extra: str = "") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"
        f"{extra}\r\n"
    ).encode()


def _text_frame(text: str) -> bytes:
    """A masked client text frame (payload under 126 bytes)."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked


async def _read_text(reader: asyncio.StreamReader) -> str:
    """One unfragmented server text frame (unmasked, no extension)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    assert first & 0x0F == 0x1, first
    return (await reader.readexactly(length)).decode()


async def _until_closed(ws: ClientConnection) -> None:
    """Read until the gateway closes ``ws`` (10 s at most)."""
    async with asyncio.timeout(10):
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass


async def _wait_released(gateway: object) -> None:
    async with asyncio.timeout(10):
        while gateway.node.connections:  # type: ignore[attr-defined]  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_first_message_in_the_upgrades_segment_is_answered(
    tmp_path: Path, fast: bool
) -> None:
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            async with asyncio.timeout(10):
                writer.write(_request() + _text_frame(json.dumps({"action": "ping"})))
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101"), head
                while True:  # a welcome or the like may come first
                    message = json.loads(await _read_text(reader))
                    if message.get("type") == "pong":
                        break
        finally:
            writer.close()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_client_gone_right_after_its_upgrade_gives_its_slot_back(
    tmp_path: Path, fast: bool
) -> None:
    options = {"max_anonymous_connections_per_address": 1, "ws_fast_path": fast}
    async with running_gateway(tmp_path, **options) as gateway:
        for read_101 in (False, True, False, True):
            reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            writer.write(_request())
            if read_101:  # the 101 was sent: the connection was admitted and attached
                async with asyncio.timeout(10):
                    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            writer.transport.abort()  # gone (a reset) before or right after the 101
        # each is released (its connection closed, its slot back): one more is admitted
        await _wait_released(gateway)
        async with asyncio.timeout(10), connect(gateway.feed) as ws:
            await send_json(ws, {"action": "ping"})
            assert (await recv_json(ws))["type"] == "pong"
        await _wait_released(gateway)
        assert gateway.node.stats.refusals == {}


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_foreign_origin_is_refused(tmp_path: Path, fast: bool) -> None:
    options = {"allowed_origins": ("https://good.example",), "ws_fast_path": fast}
    async with running_gateway(tmp_path, **options) as gateway:
        async with connect(gateway.feed, origin="https://evil.example") as bad:  # type: ignore[arg-type]
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(10):
                    await bad.recv()
            assert bad.close_code == 1008
        assert gateway.node.stats.refusals == {Reason.ORIGIN.value: 1}
        async with connect(gateway.feed, origin="https://good.example") as ws:  # type: ignore[arg-type]
            await send_json(ws, {"action": "ping"})
            assert (await recv_json(ws))["type"] == "pong"


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_stomp_subprotocol_is_selected(tmp_path: Path, fast: bool) -> None:
    offered = ["v12.stomp", "v11.stomp"]
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        ws = await connect(gateway.stomp, subprotocols=offered)  # type: ignore[arg-type]
        try:
            assert ws.subprotocol == "v12.stomp"
        finally:
            await ws.close()


async def test_starting_a_node_leaves_the_gc_thresholds_as_they_were(tmp_path: Path) -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        async with running_gateway(tmp_path):
            pass
        after = gc.get_threshold()
    finally:
        gc.set_threshold(*before)
    assert after == (700, 10, 10)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_query_options_are_read_at_the_upgrade(tmp_path: Path, fast: bool) -> None:
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        async with connect(f"{gateway.feed}?heartbeat=bogus") as ws:
            first = await recv_json(ws)
            assert first["type"] == "error", first
        async with connect(f"{gateway.feed}?heartbeat=1&seq=1&stamps=1") as ws:
            message = await recv_json(ws)  # the first heartbeat, a second on
            assert message["type"] in ("heartbeat", "hb"), message
        async with connect(f"{gateway.feed}?frames=array") as ws:
            await send_json(ws, {"action": "ping"})
            answer = await recv_json(ws)
            assert isinstance(answer, (dict, list)), answer


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_connection_is_closed_with_1001_at_shutdown(tmp_path: Path, fast: bool) -> None:
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        ws = await connect(gateway.feed)
        await send_json(ws, {"action": "ping"})
        assert (await recv_json(ws))["type"] == "pong"
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1001
    assert not gateway.node.connections


def _close_frame(code: int) -> bytes:
    payload = struct.pack("!H", code)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x88, 0x80 | len(payload)) + mask + masked


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_message_and_close_in_the_upgrades_segment_release_the_slot(
    tmp_path: Path, fast: bool
) -> None:
    options = {"max_anonymous_connections_per_address": 1, "ws_fast_path": fast}
    async with running_gateway(tmp_path, **options) as gateway:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            subscribe = _text_frame(json.dumps({"action": "ping"}))
            writer.write(_request() + subscribe + _close_frame(1000))
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101"), head
                await reader.read()  # to the server's close of the TCP connection
            writer.close()
        await _wait_released(gateway)
        assert gateway.node.stats.refusals == {}
        async with connect(gateway.feed) as ws:
            await send_json(ws, {"action": "ping"})
            assert (await recv_json(ws))["type"] == "pong"


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_client_that_never_authenticates_is_closed_after_the_auth_timeout(
    tmp_path: Path, fast: bool
) -> None:
    options = {"allow_anonymous": "false", "auth_timeout_s": 0.2, "ws_fast_path": fast}
    async with running_gateway(tmp_path, **options) as gateway:
        async with connect(gateway.realtime) as ws:
            await _until_closed(ws)
            assert ws.close_code is not None
            assert ws.close_code >= 3000, ws.close_code
        await _wait_released(gateway)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_connect_and_its_disconnect_are_logged_once(
    tmp_path: Path, fast: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tickcast.fronts.market_feed")
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        async with connect(gateway.feed) as ws:
            await send_json(ws, {"action": "ping"})
            assert (await recv_json(ws))["type"] == "pong"
        await _wait_released(gateway)
        messages = [
            r.getMessage() for r in caplog.records if r.name == "tickcast.fronts.market_feed"
        ]
        assert messages.count("client connected") == 1, messages
        assert messages.count("client disconnected") == 1, messages
        assert gateway.node.stats.connections_total == 1


async def test_a_task_alive_when_a_node_starts_stays_visible_to_the_watchdog(
    tmp_path: Path,
) -> None:
    waiting = asyncio.create_task(asyncio.sleep(3600))
    try:
        async with running_gateway(tmp_path):
            pass
        pending = [o for o in gc.get_objects() if isinstance(o, asyncio.Task)]
        assert any(task is waiting for task in pending)
    finally:
        waiting.cancel()
