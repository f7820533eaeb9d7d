"""Front 1's per-subscription rate, ``"max_rate": N``, over real sockets: a real gateway
(uvicorn, in a thread of this process, so the test can stop its feed) with a fast
simulator; a rated client and an unrated one on the same server, side by side.

Counting only: a rated client's quotes are counted over the window it read (with a
tolerance of one per window edge, for the delivery jitter at either end), never timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from support.inprocess import InProcessServer
from support.wsclient import recv_until, send_json
from tickcast.config.settings import Settings
from tickcast.model.topic import Channel, Topic

SYMBOLS = ("AAPL", "MSFT")
MAX_RATE = 2
#: how long each client reads (seconds): a count over it, not a speed
WINDOW_S = 3.0


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[InProcessServer]:
    srv = InProcessServer(
        Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/tickcast.db",
            symbols=SYMBOLS,
            rate=2000,  # about 1,000 quotes a second per symbol, and 30 % as many trades
            batch_ms=100,
            log_level="warning",
            rate_limit_per_s=1000,
            rate_limit_burst=1000,
            signals_engine=False,
        )
    ).start()
    yield srv
    srv.stop()


class Reader:
    """Reads one client's messages into ``got`` as ``(monotonic time, message)``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    def start(self) -> None:
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            self.got.append((time.monotonic(), json.loads(raw)))
            self._arrived.set()

    async def until(self, done: Callable[[], bool], what: str, wait_s: float = 20.0) -> None:
        """Wait (at most ``wait_s``) until ``done()`` holds after a message arrived."""
        deadline = time.monotonic() + wait_s
        while not done():
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"never: {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def data(self, channel: str, symbol: str) -> list[tuple[float, dict[str, Any]]]:
        topic = f"{channel}.{symbol}"
        return [(t, m) for t, m in self.got if m.get("topic") == topic]


async def subscribe(ws: ClientConnection, **more: Any) -> dict[str, Any]:
    message = {"action": "subscribe", "symbols": list(SYMBOLS), "channels": ["quotes"], **more}
    await send_json(ws, message)
    reply: dict[str, Any] = await recv_until(ws, lambda m: m.get("type") in ("subscribed", "error"))
    return reply


def assert_every_trade(reader: Reader, symbol: str) -> list[int]:
    """The trades of ``symbol`` came with consecutive seqs (none conflated or lost)."""
    seqs = [m["seq"] for _, m in reader.data("trades", symbol)]
    assert seqs, f"no trade of {symbol} arrived"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a trade was lost"
    return seqs


async def test_a_rated_client_gets_at_most_its_rate_and_ends_on_the_latest_value(
    gateway: InProcessServer,
) -> None:
    feed = f"ws://127.0.0.1:{gateway.port}/ws/market/feed?seq=1"
    async with connect(feed) as rated, connect(feed) as free:
        reply = await subscribe(rated, max_rate=MAX_RATE)
        assert (reply["type"], reply["symbols"]) == ("subscribed", list(SYMBOLS))
        assert reply["max_rate"] == MAX_RATE  # echoed
        # the rate is the quotes'; trades named with it arrive whole, in batches
        await send_json(
            rated,
            {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"], "max_rate": 1},
        )
        await recv_until(rated, lambda m: m.get("type") == "subscribed")
        assert (await subscribe(free))["type"] == "subscribed"
        await send_json(free, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"]})
        await recv_until(free, lambda m: m.get("type") == "subscribed")

        readers = [Reader(rated), Reader(free)]
        for reader in readers:
            reader.start()
        await asyncio.sleep(WINDOW_S)  # the reading window counted over, not a wait
        await readers[0].until(lambda: bool(readers[0].got), "a message")
        started = readers[0].got[0][0]
        span_s = readers[0].got[-1][0] - started

        # a bad rate is refused in the protocol's words; the subscriptions go on
        await send_json(rated, {"action": "subscribe", "symbols": ["AAPL"], "max_rate": 0})
        await readers[0].until(
            lambda: any(m.get("type") == "error" for _, m in readers[0].got), "the refusal"
        )
        error = next(m for _, m in readers[0].got if m.get("type") == "error")
        assert error["message"].startswith("Invalid subscription request: 'max_rate' must be")

        # stop the feed: the server's latest value of each symbol is then fixed
        node: Any = gateway.app.state.node
        assert gateway.loop is not None
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(node.stop_feed(), gateway.loop))
        latest = {
            s: gateway.call(lambda s=s: node.hub.latest_seq(Topic(Channel.QUOTES, s)))
            for s in SYMBOLS
        }
        await readers[0].until(
            lambda: all(
                readers[0].data("quotes", s)
                and readers[0].data("quotes", s)[-1][1]["seq"] >= latest[s]
                for s in SYMBOLS
            ),
            "the latest quotes",
        )
        for reader in readers:
            await reader.stop()

    rated_reader, free_reader = readers
    for symbol in SYMBOLS:
        quotes = rated_reader.data("quotes", symbol)
        # always the latest value: once the stream stopped, the server's last quote came
        assert quotes[-1][1]["seq"] == latest[symbol]
        assert [m["seq"] for _, m in quotes] == sorted({m["seq"] for _, m in quotes})
        # at most MAX_RATE a second over the window read, one more per window edge
        in_window = [t for t, _ in quotes if t <= started + span_s]
        assert len(in_window) <= MAX_RATE * span_s + 2, (symbol, len(in_window), span_s)
        assert len(in_window) >= 2  # and it did stream (the snapshot, then more)
        # the unrated client on the same server is not held to it
        free_quotes = [t for t, _ in free_reader.data("quotes", symbol) if t <= started + span_s]
        assert len(free_quotes) > MAX_RATE * span_s + 2, (symbol, len(free_quotes))
    rated_trades = assert_every_trade(rated_reader, "AAPL")
    free_trades = assert_every_trade(free_reader, "AAPL")
    assert set(rated_trades) & set(free_trades)  # the same stream, both whole
