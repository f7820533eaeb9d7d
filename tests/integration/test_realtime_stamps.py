"""Latency stamps on the realtime envelope over real sockets (docs/realtime.md, "Latency
stamps"): a client with ``/ws/realtime/?stamps=1`` beside one without, on one server."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from support.server import Server

STAMPS = ["event_us", "recv_us", "send_us"]
SYMBOLS = ["AAPL", "MSFT"]


def realtime(server: Server, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/ws/realtime/" + (f"?{query}" if query else "")


async def texts(ws: ClientConnection, until: float) -> list[str]:
    """The text frames received until ``until`` (monotonic)."""
    out: list[str] = []
    while (remaining := until - time.monotonic()) > 0:
        try:
            frame = await asyncio.wait_for(ws.recv(), remaining)
        except TimeoutError:
            break
        assert isinstance(frame, str)
        out.append(frame)
    return out


async def opened(ws: ClientConnection) -> dict[str, Any]:
    hello: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert hello["type"] == "connection"
    for symbol in SYMBOLS:
        await ws.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": symbol}}))
    return hello


def without_stamps(text: str) -> str:
    """A stamped message's text as the same message unstamped: its last field cut."""
    cut = text.rindex(',"stamps":{')
    assert text.endswith("}}")
    assert text.find("}", cut) == len(text) - 2
    return text[:cut] + "}"


async def test_a_stamped_realtime_client_beside_an_unstamped_one(server: Server) -> None:
    async with (
        connect(realtime(server)) as plain,
        connect(realtime(server, "stamps=1")) as stamped,
    ):
        assert "stamps" not in await opened(plain)
        assert "stamps" not in await opened(stamped)  # replies carry none
        until = time.monotonic() + 2.0
        plain_texts, stamped_texts = await asyncio.gather(
            texts(plain, until), texts(stamped, until)
        )
        await stamped.send('{"type":"ping","data":{}}')
        pong = json.loads(await asyncio.wait_for(stamped.recv(), 10))
        while pong["type"] != "pong":
            pong = json.loads(await asyncio.wait_for(stamped.recv(), 10))
        assert "stamps" not in pong

    plain_set = set(plain_texts)
    assert plain_texts
    assert all("stamps" not in json.loads(t) for t in plain_texts)
    updates = [t for t in stamped_texts if json.loads(t)["type"] == "asset_update"]
    assert len(updates) >= 4, stamped_texts
    common = 0
    for text in updates:
        message = json.loads(text)
        assert list(message)[-1] == "stamps"
        stamps = message["stamps"]
        assert list(stamps) == STAMPS
        assert all(type(v) is int for v in stamps.values())
        assert stamps["event_us"] <= stamps["recv_us"] <= stamps["send_us"], stamps
        # within the second it was sent in: the clocks are the one machine's
        assert abs(stamps["send_us"] / 1e6 - time.time()) < 60
        # the unstamped client got exactly these bytes, less the stamps
        common += without_stamps(text) in plain_set
    assert common >= 1, "no update reached both clients with the same bytes"


async def test_a_bad_stamps_value_is_an_error_and_no_stamps(server: Server) -> None:
    async with connect(realtime(server, "stamps=2")) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "connection"
        error = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert error["type"] == "error"
        assert error["data"]["message"] == "option stamps must be 0 or 1"
        await ws.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": "AAPL"}}))
        update = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert update["type"] == "asset_update"
        assert "stamps" not in update
