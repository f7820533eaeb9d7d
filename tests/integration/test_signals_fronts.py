"""Trading signals on Fronts 1, 2 and 3 over real sockets (docs/market-feed.md,
docs/realtime.md, docs/stomp.md).

The gateway runs in this test's event loop (``build_app`` under uvicorn, with the
gateway's own protocol classes), so that a test publishes signals in-process through the
node's publisher, as the signal service does. Several signals of one symbol published in
one call land in one batching window: every one of them arrives, in order (signals are
never conflated). Waits are on conditions with generous timeouts, never sleeps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from support.inloop import Gateway, running_gateway
from support.wsclient import closed_code, recv_json, send_json
from tickcast.model.signal import Signal, WorkerStatus
from tickcast.model.signal import encode as seed_json
from tickcast.protocols.stomp.frames import Frame, FrameParser

WAIT_S = 10.0


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path) as running:
        yield running


def signal(n: int, symbol: str = "AAPL", direction: str = "BUY") -> Signal:
    return Signal(
        "QUANTUM_CIPHER",
        "BUY" if direction == "BUY" else "SELL",
        100.0 + n,
        symbol,
        "1m",
        f"2026-01-01T00:00:{n:02d}.000Z",
        f"sig-{symbol}-{n}",
        "external",
    )


def seed(s: Signal) -> dict[str, Any]:
    return json.loads(seed_json(s))


# -- Front 1


async def subscribe_feed(ws: ClientConnection, message: dict[str, Any]) -> None:
    await send_json(ws, {"action": "subscribe", **message})
    reply = await recv_json(ws, WAIT_S)
    assert reply["type"] == "subscribed", reply


async def test_front_1_every_signal_of_a_batch_in_order_and_only_its_symbols(
    gateway: Gateway,
) -> None:
    async with connect(gateway.feed + "?seq=1") as ws:
        await subscribe_feed(ws, {"symbols": ["AAPL", "BTC/USDT"], "channels": ["signals"]})
        sent = [signal(1), signal(2, "MSFT"), signal(3, "BTC/USDT"), signal(4), signal(5)]
        gateway.publish(*sent)
        got = [await recv_json(ws, WAIT_S) for _ in range(4)]
        assert [m["data"] for m in got] == [seed(s) for s in sent if s.symbol != "MSFT"]
        assert {m["type"] for m in got} == {"signal"}
        aapl = [m for m in got if m["topic"] == "signals.AAPL"]
        assert [m["seq"] for m in aapl] == [1, 2, 3]
        assert {m["epoch"] for m in got} == {gateway.node.hub.epoch}


async def test_front_1_resumes_signals_missed_while_disconnected(gateway: Gateway) -> None:
    request = {"symbols": ["AAPL"], "channels": ["signals"]}
    async with connect(gateway.feed + "?seq=1") as ws:
        await subscribe_feed(ws, request)
        gateway.publish(signal(1), signal(2))
        seen = [await recv_json(ws, WAIT_S) for _ in range(2)]
    last = seen[-1]
    gateway.publish(signal(3), signal(4), signal(5))  # missed
    async with connect(gateway.feed + "?seq=1") as ws:
        resume = {"signals.AAPL": {"epoch": last["epoch"], "seq": last["seq"]}}
        await subscribe_feed(ws, {**request, "resume": resume})
        missed = [await recv_json(ws, WAIT_S) for _ in range(3)]
        assert [m["data"]["id"] for m in missed] == ["sig-AAPL-3", "sig-AAPL-4", "sig-AAPL-5"]
        assert [m["seq"] for m in missed] == [3, 4, 5]
        gateway.publish(signal(6))  # then live, with no gap
        live = await recv_json(ws, WAIT_S)
        assert (live["data"]["id"], live["seq"]) == ("sig-AAPL-6", 6)


async def test_front_1_bad_signal_requests_leave_the_connection_and_others_alone(
    gateway: Gateway,
) -> None:
    async with connect(gateway.feed) as bystander, connect(gateway.feed) as ws:
        await subscribe_feed(bystander, {"symbols": ["AAPL"], "channels": ["signals"]})
        for bad in (
            {"symbols": ["AAPL"], "channels": ["signal_status"]},
            {"symbols": ["../X"], "channels": ["signals"]},
        ):
            await send_json(ws, {"action": "subscribe", **bad})
            error = await recv_json(ws, WAIT_S)
            assert error["type"] == "error"
            assert error["message"].startswith("Invalid subscription request: ")
        await subscribe_feed(ws, {"symbols": ["AAPL"], "channels": ["signals"]})
        gateway.publish(signal(1))
        for client in (ws, bystander):
            assert (await recv_json(client, WAIT_S))["data"] == seed(signal(1))


# -- Front 2


async def realtime_connect(gateway: Gateway) -> ClientConnection:
    ws = await connect(gateway.realtime)
    assert (await recv_json(ws, WAIT_S))["type"] == "connection"
    return ws


async def realtime_send(ws: ClientConnection, type_: str, data: Any) -> dict[str, Any]:
    await send_json(ws, {"type": type_, "data": data})
    reply: dict[str, Any] = await recv_json(ws, WAIT_S)
    return reply


async def test_front_2_new_signal_for_all_or_some_symbols_and_status_update(
    gateway: Gateway,
) -> None:
    every, some = await realtime_connect(gateway), await realtime_connect(gateway)
    try:
        ack = await realtime_send(every, "subscribe_signals", {})
        assert (ack["type"], ack["data"]) == ("signals_subscribed", {"symbols": None})
        ack = await realtime_send(every, "subscribe_signal_status", {})
        assert ack["type"] == "signal_status_subscribed"
        ack = await realtime_send(some, "subscribe_signals", {"symbols": ["MSFT"]})
        assert ack["data"] == {"symbols": ["MSFT"]}
        sent = [signal(1), signal(2, "MSFT", "SELL"), signal(3), signal(4, "MSFT")]
        status = WorkerStatus("SignalMonitorWorker", "degraded", "redis unreachable")
        gateway.publish(*sent, status)
        # the signal service's own statuses come too (current on subscribe, then each
        # change): the signals in order, and the status published here among them
        signals: list[dict[str, Any]] = []
        statuses: list[dict[str, Any]] = []
        while len(signals) < 4 or seed(status) not in statuses:
            message = await recv_json(every, WAIT_S)
            if message["type"] == "new_signal":
                signals.append(message["data"])
            else:
                assert message["type"] == "status_update", message
                statuses.append(message["data"])
        assert signals == [seed(s) for s in sent]
        mine = [await recv_json(some, WAIT_S) for _ in range(2)]
        assert [m["data"]["id"] for m in mine] == ["sig-MSFT-2", "sig-MSFT-4"]
        # dropped: the next signal reaches only the client that still holds them
        ack = await realtime_send(some, "unsubscribe_signals", {})
        assert ack["type"] == "signals_unsubscribed"
        gateway.publish(signal(5, "MSFT"))
        assert (await recv_json(every, WAIT_S))["data"]["id"] == "sig-MSFT-5"
        await send_json(some, {"type": "ping", "data": {}})
        assert (await recv_json(some, WAIT_S))["type"] == "pong"  # nothing came before it
    finally:
        await every.close()
        await some.close()


async def test_front_2_bad_signal_requests_are_errors_and_the_connection_goes_on(
    gateway: Gateway,
) -> None:
    ws = await realtime_connect(gateway)
    try:
        error = await realtime_send(ws, "subscribe_signals", {"symbols": "AAPL"})
        assert error["type"] == "error"
        assert "'symbols' must be a non-empty list" in error["data"]["message"]
        await realtime_send(ws, "subscribe_signals", {"symbols": ["AAPL"]})
        error = await realtime_send(ws, "subscribe_signals", {})
        assert error["data"]["message"].startswith("Already subscribed to the signals of AAPL")
        gateway.publish(signal(1))
        assert (await recv_json(ws, WAIT_S))["data"] == seed(signal(1))
    finally:
        await ws.close()


# -- Front 3


def stomp(command: str, **headers: str) -> str:
    lines = "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in headers.items())
    return f"{command}\n{lines}\n\x00"


class StompReader:
    """STOMP frames off a raw WebSocket (or off SockJS's ``a[...]`` frames)."""

    def __init__(self, ws: ClientConnection, *, sockjs: bool = False) -> None:
        self.ws = ws
        self.sockjs = sockjs
        self.parser = FrameParser()
        self.frames: list[Frame] = []

    async def send(self, frame: str) -> None:
        await self.ws.send(json.dumps([frame]) if self.sockjs else frame)

    async def next(self) -> Frame:
        deadline = time.monotonic() + WAIT_S
        while not self.frames:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no STOMP frame in time"
            data = await asyncio.wait_for(self.ws.recv(), remaining)
            if self.sockjs:
                assert isinstance(data, str)
                if data[0] != "a":
                    continue  # o, h
                for text in json.loads(data[1:]):
                    self.frames += self.parser.feed(text)
            else:
                self.frames += self.parser.feed(data)
        return self.frames.pop(0)

    async def connected(self) -> None:
        await self.send(stomp("CONNECT", accept_version="1.2", heart_beat="0,0"))
        assert (await self.next()).command == "CONNECTED"

    async def subscribe(self, id_: str, destination: str) -> None:
        await self.send(stomp("SUBSCRIBE", id=id_, destination=destination, receipt=id_))
        receipt = await self.next()
        assert (receipt.command, receipt.headers.get("receipt-id")) == ("RECEIPT", id_)


async def test_front_3_all_signals_and_one_symbol_over_websocket(gateway: Gateway) -> None:
    async with connect(gateway.stomp) as a_ws, connect(gateway.stomp) as b_ws:
        every, aapl = StompReader(a_ws), StompReader(b_ws)
        await every.connected()
        await aapl.connected()
        await every.subscribe("sub-0", "/topic/signals")
        await every.subscribe("sub-1", "/topic/signals")  # a second id: its own MESSAGEs
        await aapl.subscribe("sub-0", "/topic/signals.AAPL")
        sent = [signal(1), signal(2, "BTC/USDT"), signal(3), signal(4)]
        gateway.publish(*sent)
        got = [await every.next() for _ in range(8)]
        assert [(f.headers["subscription"], f.body) for f in got] == [
            (id_, seed_json(s)) for s in sent for id_ in ("sub-0", "sub-1")
        ]
        first = got[0].headers
        assert first["destination"] == "/topic/signals.AAPL"
        assert first["content-type"] == "application/json"
        assert first["message-id"] == f"signals.AAPL-{gateway.node.hub.epoch}-1"
        assert got[2].headers["destination"] == "/topic/signals.BTC/USDT"
        mine = [await aapl.next() for _ in range(3)]
        assert [f.body for f in mine] == [seed_json(s) for s in sent if s.symbol == "AAPL"]
        assert [f.headers["seq"] for f in mine] == ["1", "2", "3"]
        # dropping one id leaves the other
        await every.send(stomp("UNSUBSCRIBE", id="sub-0", receipt="u"))
        assert (await every.next()).command == "RECEIPT"
        gateway.publish(signal(5))
        frame = await every.next()
        assert (frame.headers["subscription"], frame.body) == ("sub-1", seed_json(signal(5)))


async def test_front_3_bad_destinations_end_that_connection_only(gateway: Gateway) -> None:
    async with connect(gateway.stomp) as by_ws:
        bystander = StompReader(by_ws)
        await bystander.connected()
        await bystander.subscribe("s", "/topic/signals")
        for destination, first in (
            ("/topic/signal_status", None),  # not a destination of this front
            ("/topic/signals.../X", None),  # not a symbol
            ("/topic/signals.AAPL", "/topic/signals"),  # a channel whole and by key
        ):
            async with connect(gateway.stomp) as ws:
                client = StompReader(ws)
                await client.connected()
                if first is not None:
                    await client.subscribe("a", first)
                await client.send(stomp("SUBSCRIBE", id="b", destination=destination))
                error = await client.next()
                assert error.command == "ERROR", destination
                assert await closed_code(ws) == 1008
        gateway.publish(signal(1))
        assert (await bystander.next()).body == seed_json(signal(1))


async def test_front_3_signals_over_sockjs(gateway: Gateway) -> None:
    async with connect(gateway.sockjs("sig00001")) as ws:
        assert await asyncio.wait_for(ws.recv(), WAIT_S) == "o"
        client = StompReader(ws, sockjs=True)
        await client.connected()
        await client.subscribe("sub-0", "/topic/signals")
        sent = [signal(1), signal(2), signal(3, "MSFT")]
        gateway.publish(*sent)
        got = [await client.next() for _ in range(3)]
        assert [f.body for f in got] == [seed_json(s) for s in sent]
        assert {f.headers["subscription"] for f in got} == {"sub-0"}


async def test_a_quote_subscriber_sees_no_signal(gateway: Gateway) -> None:
    """Signals go only where they were asked for (Front 1's default channel is quotes)."""
    async with connect(gateway.feed) as ws:
        await subscribe_feed(ws, {"symbols": ["AAPL"]})
        gateway.publish(signal(1))
        await send_json(ws, {"action": "ping"})
        # the silent feed publishes no quote: the pong is the next message
        assert (await recv_json(ws, WAIT_S))["type"] == "pong"
