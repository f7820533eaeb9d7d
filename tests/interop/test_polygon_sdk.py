"""The official Polygon/Massive client (``massive`` 2.x) against tickcast's Polygon emulator.

The SDK is pointed at the emulator the way its own tests point it at their mock server
(``feed="host:port", secure=False``) and must receive its real model objects:
``EquityTrade``, ``EquityQuote`` and ``EquityAgg``, with the per-event meanings of the
letters (``i`` a string trade id in T, a list of indicators in Q, and so on). A wrong key
must raise the SDK's own ``AuthError``. Waits are on conditions, with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from massive import WebSocketClient
from massive.exceptions import AuthError
from massive.websocket import EquityAgg, EquityQuote, EquityTrade, WebSocketMessage

from tickcast.emulators.base import EmulatorServer
from tickcast.emulators.polygon import build_server

KEY = "emulator-key"
WAIT_S = 8.0


class Received:
    """The SDK's handler: keeps every message and wakes up waiters."""

    def __init__(self) -> None:
        self.messages: list[WebSocketMessage] = []
        self._changed = asyncio.Event()

    async def __call__(self, messages: list[WebSocketMessage]) -> None:
        self.messages.extend(messages)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: type[Any]) -> list[Any]:
        return [m for m in self.messages if type(m) is kind]


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with build_server(rate=400) as server:
        yield server


def client(server: EmulatorServer, subscriptions: list[str], key: str = KEY) -> WebSocketClient:
    return WebSocketClient(
        api_key=key,
        feed=f"127.0.0.1:{server.port}",
        market="stocks",
        secure=False,
        subscriptions=subscriptions,
        max_reconnects=0,
    )


@contextlib.asynccontextmanager
async def connected(sdk: WebSocketClient, handler: Received) -> AsyncIterator[None]:
    task = asyncio.create_task(sdk.connect(handler))
    try:
        yield
    finally:
        await sdk.close()
        await asyncio.wait_for(task, WAIT_S)  # a normal close ends connect() quietly


async def test_sdk_receives_equity_trades_and_quotes(emulator: EmulatorServer) -> None:
    sdk, received = client(emulator, ["T.AAPL", "Q.AAPL"]), Received()
    async with connected(sdk, received):
        await received.wait_for(lambda: bool(received.of(EquityTrade) and received.of(EquityQuote)))
    assert {type(m) for m in received.messages} == {EquityTrade, EquityQuote}
    assert {m.symbol for m in received.messages} == {"AAPL"}
    for trade in received.of(EquityTrade):
        assert trade.event_type == "T"
        assert isinstance(trade.id, str)
        assert trade.id.isdigit()
        assert isinstance(trade.price, float)
        assert isinstance(trade.size, int)
        assert trade.conditions is None or trade.conditions == [37]
        assert isinstance(trade.timestamp, int)
        assert trade.timestamp > 1e12
        assert trade.tape == 3
        assert isinstance(trade.exchange, int)
        assert isinstance(trade.sequence_number, int)
    for quote in received.of(EquityQuote):
        assert quote.event_type == "Q"
        assert 0 < quote.bid_price < quote.ask_price
        assert isinstance(quote.bid_size, int)
        assert 1 <= quote.bid_size <= 20
        assert quote.condition == 0
        assert quote.indicators == []
        assert isinstance(quote.timestamp, int)
        assert quote.timestamp > 1e12
    sequences = [m.sequence_number for m in received.messages]
    assert sequences == sorted(set(sequences))


async def test_sdk_receives_second_aggregates(emulator: EmulatorServer) -> None:
    sdk, received = client(emulator, ["A.MSFT"]), Received()
    async with connected(sdk, received):
        await received.wait_for(lambda: bool(received.of(EquityAgg)))
    agg = received.of(EquityAgg)[0]
    assert (agg.event_type, agg.symbol) == ("A", "MSFT")
    assert agg.end_timestamp - agg.start_timestamp == 1000
    assert agg.low <= min(agg.open, agg.close) <= max(agg.open, agg.close) <= agg.high
    assert agg.volume > 0
    assert agg.accumulated_volume >= agg.volume
    assert agg.vwap is not None
    assert agg.average_size is not None


async def test_sdk_wildcard_subscription(emulator: EmulatorServer) -> None:
    sdk, received = client(emulator, ["T.*"]), Received()
    async with connected(sdk, received):
        await received.wait_for(lambda: len({m.symbol for m in received.messages}) >= 3)
    assert {type(m) for m in received.messages} == {EquityTrade}


async def test_sdk_raises_auth_error_for_a_wrong_key(emulator: EmulatorServer) -> None:
    sdk = client(emulator, ["T.AAPL"], key="wrong-key")
    with pytest.raises(AuthError, match="authentication failed"):
        await asyncio.wait_for(sdk.connect(Received()), WAIT_S)
    if sdk.websocket is not None:  # the SDK leaves it open when it raises
        await sdk.websocket.close()
