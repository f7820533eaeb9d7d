"""alpaca-py, Alpaca's own SDK, against the Alpaca emulator.

The SDK speaks msgpack only (binary frames, ``T`` first, Timestamp extensions, the
subscribe message fragmented), so this is the emulator's msgpack path as a real client
sees it. The SDK's ``run()`` owns an event loop (``asyncio.run``); the tests drive its
coroutine ``_run_forever()`` as a task on the test's loop instead, and cancel it.

alpaca-py imports ``websockets.legacy``, which websockets deprecates: that one warning is
silenced here, and only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import msgpack
import pytest

from tickcast.emulators.alpaca import build_server
from tickcast.emulators.base import EmulatorServer

LEGACY = "websockets.legacy is deprecated"
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", LEGACY, DeprecationWarning)
    from alpaca.data.live import CryptoDataStream, StockDataStream
    from alpaca.data.live.websocket import DataStream
    from alpaca.data.models import Orderbook, Quote, Trade

pytestmark = pytest.mark.filterwarnings(f"ignore:{LEGACY}:DeprecationWarning")

KEY, SECRET = "emulator-key", "emulator-secret"


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with build_server(rate=1000) as server:
        yield server


class Received:
    """A handler for the SDK that keeps what it gets; tests wait for a condition."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    async def handle(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def until(self, predicate: Callable[[list[Any]], bool], wait_s: float = 5.0) -> None:
        async with asyncio.timeout(wait_s):
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def streaming(stream: DataStream) -> AsyncIterator[asyncio.Task[None]]:
    """The SDK's loop as a task, stopped the SDK's own way at the end.

    A bare ``task.cancel()`` can be lost: the SDK reads with ``asyncio.wait_for``, which on
    Python 3.11 swallows a cancellation that races a frame's arrival and returns the
    frame; the SDK then reads on, and awaiting the task never ends (seen on a loaded CI
    run: the test hung). So the SDK is told to stop (``stop_ws``: it returns after its
    current read), and cancelled again until it has ended.
    """
    task = asyncio.create_task(stream._run_forever())
    try:
        yield task
    finally:
        await stream.stop_ws()
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if not task.cancelled():
            task.result()  # a failure of the SDK's loop is the test's failure
        await stream.close()


def books(items: list[Any]) -> list[Orderbook]:
    return [i for i in items if isinstance(i, Orderbook)]


def has(kind: type, symbol: str) -> Callable[[list[Any]], bool]:
    return lambda items: any(type(i) is kind and i.symbol == symbol for i in items)


async def test_stock_stream_receives_quote_and_trade_models(emulator: EmulatorServer) -> None:
    stream = StockDataStream(KEY, SECRET, url_override=f"{emulator.url}/v2/iex")
    received = Received()
    stream.subscribe_quotes(received.handle, "AAPL")
    stream.subscribe_trades(received.handle, "AAPL", "MSFT")
    async with streaming(stream):
        await received.until(lambda items: has(Quote, "AAPL")(items) and has(Trade, "MSFT")(items))
    quotes = [i for i in received.items if isinstance(i, Quote)]
    trades = [i for i in received.items if isinstance(i, Trade)]
    assert {q.symbol for q in quotes} == {"AAPL"}
    assert {t.symbol for t in trades} <= {"AAPL", "MSFT"}
    quote, trade = quotes[0], trades[0]
    assert 0 < quote.bid_price < quote.ask_price
    assert quote.bid_size >= 1  # round lots
    assert isinstance(quote.timestamp, datetime)
    assert quote.timestamp.tzinfo is not None
    assert trade.price > 0
    assert trade.size >= 1
    assert trade.id > 0
    assert emulator.connections_total == 1


async def test_wrong_secret_fails_auth_and_the_sdk_keeps_retrying(
    emulator: EmulatorServer,
) -> None:
    stream = StockDataStream(KEY, "wrong", url_override=f"{emulator.url}/v2/iex")
    with pytest.raises(ValueError, match="auth failed"):
        await stream._start_ws()
    await stream.close()
    received = Received()
    stream.subscribe_quotes(received.handle, "AAPL")
    async with streaming(stream):
        async with asyncio.timeout(5):  # its first back-off is 0.5 to 1 s
            while emulator.connections_total < 3:  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.05)
    assert received.items == []


async def test_second_sdk_connection_gets_the_connection_limit_error(
    emulator: EmulatorServer,
) -> None:
    first = StockDataStream(KEY, SECRET, url_override=f"{emulator.url}/v2/iex")
    received = Received()
    first.subscribe_quotes(received.handle, "AAPL")
    async with streaming(first):
        await received.until(has(Quote, "AAPL"))
        second = StockDataStream(KEY, SECRET, url_override=f"{emulator.url}/v2/iex")
        with pytest.raises(ValueError, match="connection limit exceeded"):
            await second._start_ws()
        await second.close()
        count = len(received.items)
        await received.until(lambda items: len(items) > count)


async def test_crypto_stream_receives_a_reset_book_then_updates(emulator: EmulatorServer) -> None:
    stream = CryptoDataStream(KEY, SECRET, url_override=f"{emulator.url}/v1beta3/crypto/us")
    received = Received()
    stream.subscribe_orderbooks(received.handle, "BTC/USD")
    stream.subscribe_quotes(received.handle, "ETH/USD")
    async with streaming(stream):
        await received.until(lambda items: len(books(items)) >= 3 and has(Quote, "ETH/USD")(items))
    first, *rest = books(received.items)
    assert first.symbol == "BTC/USD"
    assert first.reset is True
    assert len(first.bids) > 1
    assert first.bids[0].price < first.asks[0].price
    assert not any(book.reset for book in rest)


async def test_sdk_raw_mode_sees_t_first_and_msgpack_timestamps(emulator: EmulatorServer) -> None:
    stream = StockDataStream(KEY, SECRET, raw_data=True, url_override=f"{emulator.url}/v2/sip")
    received = Received()
    stream.subscribe_bars(received.handle, "*")
    stream.subscribe_quotes(received.handle, "SPY")
    async with streaming(stream):
        await received.until(lambda items: any(i["S"] == "SPY" for i in items))
    raw = received.items[0]
    assert next(iter(raw)) == "T"
    assert raw["T"] == "q"
    assert isinstance(raw["t"], msgpack.Timestamp)
