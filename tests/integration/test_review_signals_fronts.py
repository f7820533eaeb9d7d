"""Review findings for trading signals on Fronts 1, 2 and 3, over real sockets.

Each test reproduced one defect found in review (it failed before the fix) and now guards
against its return. The gateway
runs in the test's event loop (``build_app`` under uvicorn, the gateway's own protocol
classes), so that a test publishes signals in-process through the node's publisher, as
``test_signals_fronts.py`` does. Waits are on conditions with generous timeouts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from support.inloop import Gateway, running_gateway
from support.wsclient import recv_json, recv_until, send_json
from tickcast.fronts.stomp import StompHeads
from tickcast.model.market import Bar
from tickcast.model.signal import Signal, WorkerStatus
from tickcast.protocols.stomp.frames import Frame, FrameParser
from tickcast.transport.connection import HeadedConnection

WAIT_S = 10.0
MAX_SUBSCRIPTIONS = 50


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, max_subscriptions=MAX_SUBSCRIPTIONS) as running:
        yield running


def signal(n: int, symbol: str = "AAPL") -> Signal:
    return Signal(
        "QUANTUM_CIPHER",
        "BUY",
        100.0 + n,
        symbol,
        "1m",
        "2026-01-01T00:00:00.000Z",
        f"sig-{symbol}-{n}",
        "external",
    )


# -- Front 1: who produces the signals the docs promise


def bar(n: int, close: float) -> Bar:
    start = 1_767_225_600.0 + 60 * n
    return Bar("AAPL", close, close, close, close, 100.0, start, start + 60, "silent")


async def test_the_built_in_engine_signals_a_moving_average_cross_of_the_live_bars(
    tmp_path: Path,
) -> None:
    engine = {"signals_fast": 1, "signals_slow": 2, "signals_cooldown_s": 0.0}
    async with running_gateway(tmp_path, **engine) as gateway, connect(gateway.feed) as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["signals"]})
        assert (await recv_json(ws, WAIT_S))["type"] == "subscribed"
        # closes 10, 9, 11: the 1-bar average crosses above the 2-bar one at the third
        gateway.node.ingest([bar(0, 10.0), bar(1, 9.0), bar(2, 11.0)])
        got = await recv_until(ws, lambda m: m.get("type") == "signal", WAIT_S)
        assert (got["data"]["type"], got["data"]["signal"]) == ("MA_CROSS", "BUY")
        assert got["data"]["source"] == "engine"


# -- Front 2


async def realtime_connect(gateway: Gateway) -> ClientConnection:
    ws = await connect(gateway.realtime)
    assert (await recv_json(ws, WAIT_S))["type"] == "connection"
    return ws


async def test_a_new_status_subscriber_gets_each_workers_current_status(
    gateway: Gateway,
) -> None:
    gateway.publish(WorkerStatus("SignalMonitorWorker", "degraded", "redis unreachable"))
    ws = await realtime_connect(gateway)
    try:
        await send_json(ws, {"type": "subscribe_signal_status", "data": {}})
        assert (await recv_json(ws, WAIT_S))["type"] == "signal_status_subscribed"
        # the worker's state now, before anything else (the ping's pong comes after it)
        await send_json(ws, {"type": "ping", "data": {}})
        current: dict[str, dict[str, Any]] = {}
        while (message := await recv_json(ws, WAIT_S))["type"] != "pong":
            assert message["type"] == "status_update", message
            current[message["data"]["service"]] = message["data"]
        assert current["SignalMonitorWorker"] == {
            "service": "SignalMonitorWorker",
            "status": "degraded",
            "message": "redis unreachable",
        }
    finally:
        await ws.close()


# -- Front 3


def stomp(command: str, **headers: str) -> str:
    lines = "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in headers.items())
    return f"{command}\n{lines}\n\x00"


class StompReader:
    """STOMP frames off a raw WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.parser = FrameParser()
        self.frames: list[Frame] = []

    async def send(self, frame: str) -> None:
        await self.ws.send(frame)

    async def next(self) -> Frame:
        deadline = time.monotonic() + WAIT_S
        while not self.frames:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no STOMP frame in time"
            self.frames += self.parser.feed(await asyncio.wait_for(self.ws.recv(), remaining))
        return self.frames.pop(0)

    async def connected(self) -> None:
        await self.send(stomp("CONNECT", accept_version="1.2", heart_beat="0,0"))
        assert (await self.next()).command == "CONNECTED"

    async def subscribe(self, id_: str, destination: str) -> None:
        await self.send(stomp("SUBSCRIBE", id=id_, destination=destination, receipt=id_))
        receipt = await self.next()
        assert (receipt.command, receipt.headers.get("receipt-id")) == ("RECEIPT", id_)


def stomp_heads(gateway: Gateway) -> StompHeads:
    """The heads of the one STOMP connection open on the gateway."""
    [connection] = [c for c in gateway.node.connections if isinstance(c, HeadedConnection)]
    heads = connection.heads
    assert isinstance(heads, StompHeads)
    return heads


async def test_a_channel_wide_stomp_subscriber_keeps_nothing_per_signal_symbol(
    gateway: Gateway,
) -> None:
    symbols = [f"X{n}" for n in range(4 * MAX_SUBSCRIPTIONS)]
    async with connect(gateway.stomp) as ws:
        client = StompReader(ws)
        await client.connected()
        await client.subscribe("all", "/topic/signals")
        gateway.publish(*(signal(n, symbol) for n, symbol in enumerate(symbols)))
        got = [await client.next() for _ in symbols]
        assert [f.headers["destination"] for f in got] == [f"/topic/signals.{s}" for s in symbols]
        # what a connection remembers is bounded by what it subscribes to (one id here)
        held = len(stomp_heads(gateway)._last)
        assert held <= MAX_SUBSCRIPTIONS, f"{held} topics remembered for one subscription"


# -- the dashboard's signals panel (same commit range)


async def test_the_dashboards_signals_panel_finds_its_endpoints(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=WAIT_S) as http:
        page = await http.get("/static/signals.js")
        assert page.status_code == 200  # the panel is served
        history = await http.get("/api/signals", params={"limit": 50})
        assert history.status_code == 200, history.status_code
        body: Any = history.json()
        assert isinstance(body, list)  # oldest first (docs/signals.md)
        handshake = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert handshake.status_code == 200, handshake.status_code
        assert handshake.text.startswith("0{"), handshake.text[:80]
        assert json.loads(handshake.text[1:])["sid"]
