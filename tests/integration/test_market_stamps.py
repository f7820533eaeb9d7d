"""Latency stamps over real sockets (docs/market-feed.md, "Latency stamps"): a client
with ``?stamps=1`` beside one without, on one server."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

import tickcast.client
from support.server import Server
from support.wsclient import recv_json, recv_until, send_json

STAMPS = ["event_us", "recv_us", "send_us"]
SUBSCRIBE = {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "channels": ["quotes", "trades"]}


async def subscribed(ws: ClientConnection) -> None:
    await send_json(ws, SUBSCRIBE)
    reply = await recv_until(ws, lambda m: isinstance(m, dict) and m.get("type") == "subscribed")
    assert "stamps" not in reply  # replies carry none


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


def without_stamps(text: str) -> str:
    """A stamped message's text as the same message unstamped: its last field cut."""
    cut = text.rindex(',"stamps":{')
    assert text.endswith("}}")
    assert text.find("}", cut) == len(text) - 2
    return text[:cut] + "}"


def check_stamps(message: dict[str, Any]) -> dict[str, int]:
    stamps = message["stamps"]
    assert list(stamps) == STAMPS
    assert all(type(v) is int for v in stamps.values())
    assert stamps["event_us"] <= stamps["recv_us"] <= stamps["send_us"], stamps
    return dict(stamps)


async def test_a_stamped_client_beside_an_unstamped_one(server: Server) -> None:
    async with (
        connect(server.feed + "?seq=1") as plain,
        connect(server.feed + "?seq=1&stamps=1") as stamped,
    ):
        await subscribed(plain)
        await subscribed(stamped)
        until = time.monotonic() + 1.5
        plain_texts, stamped_texts = await asyncio.gather(
            texts(plain, until), texts(stamped, until)
        )
    plain_by_update = {
        (m["topic"], m["seq"]): t for t in plain_texts if "seq" in (m := json.loads(t))
    }
    common = 0
    trades = 0
    for text in stamped_texts:
        message = json.loads(text)
        if "seq" not in message:
            continue
        check_stamps(message)
        assert list(message)[-1] == "stamps"
        same = plain_by_update.get((message["topic"], message["seq"]))
        if same is not None:
            # the unstamped client got exactly the stamped message's bytes, less the stamps
            assert same == without_stamps(text)
            common += 1
            trades += message.get("type") == "trade"
    assert common > 10
    assert trades > 0
    assert all("stamps" not in t for t in plain_texts)


async def test_array_frames_carry_stamps_on_every_element(server: Server) -> None:
    async with connect(server.feed + "?frames=array&stamps=1") as ws:
        await subscribed(ws)
        batch = await recv_until(ws, lambda m: isinstance(m, list) and len(m) > 1)
    sends = {check_stamps(m)["send_us"] for m in batch}
    assert len(sends) == 1, "one write, one send time"


async def test_the_snapshot_on_subscribe_is_stamped_when_it_is_sent(server: Server) -> None:
    async with connect(server.feed + "?stamps=1") as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ["AAPL"]})
        assert (await recv_json(ws)) == {"type": "subscribed", "symbols": ["AAPL"]}
        snapshot = await recv_json(ws)  # the cached quote, sent at once
        assert snapshot["symbol"] == "AAPL"
        check_stamps(snapshot)


async def test_a_bad_stamps_value_is_refused_and_no_stamps_are_sent(server: Server) -> None:
    async with connect(server.feed + "?stamps=yes") as ws:
        assert await recv_json(ws) == {"type": "error", "message": "option stamps must be 0 or 1"}
        await send_json(ws, {"action": "subscribe", "symbols": ["AAPL"]})
        assert (await recv_json(ws))["type"] == "subscribed"
        quote = await recv_json(ws)
        assert quote["symbol"] == "AAPL"
        assert "stamps" not in quote


async def test_the_sdk_exposes_the_latest_stamps(server: Server) -> None:
    async with tickcast.client.connect(server.feed, stamps=True) as feed:
        assert "stamps=1" in feed.url
        await feed.subscribe(["AAPL"], channels=["trades"])
        message = await asyncio.wait_for(anext(aiter(feed)), 10)
        assert isinstance(message, tickcast.client.Trade)
        stamps = feed.stats.stamps
        assert isinstance(stamps, tickcast.client.Stamps)
        assert stamps.event_us is not None
        assert stamps.event_us <= stamps.recv_us <= stamps.send_us
        assert stamps.arrived_us is not None
    async with tickcast.client.connect(server.feed) as feed:
        await feed.subscribe(["AAPL"], channels=["trades"])
        await asyncio.wait_for(anext(aiter(feed)), 10)
        assert feed.stats.stamps is None
