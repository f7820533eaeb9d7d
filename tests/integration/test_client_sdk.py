"""The Python SDK (``tickcast.client``) against a real gateway, with faults
(docs/client.md): a server restarted mid-stream, a network cut by a proxy that swallows
and delays, a slow caller, a terminal refusal.

The gateway runs in the test's event loop on a silent feed; the test publishes trades,
quotes and books through its node. The client reaches it through ``TcpProxy`` (tests/
support/tcpproxy.py), which can black-hole its connections, delay them, and send new
ones to a restarted server. Waits are on conditions with generous timeouts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import tickcast.client
from support.inloop import Gateway, running_gateway
from support.tcpproxy import proxy_to
from tickcast.client import Feed, FeedRefused, Reset, SlowConsumer, Trade
from tickcast.model.market import BookUpdate, Quote
from tickcast.retry import Backoff

WAIT_S = 20.0


def trade(n: int, symbol: str = "AAPL") -> Trade:
    return Trade(symbol, 100.0 + n, 10.0, time.time(), "silent", f"t{n}")


def quote(n: int, symbol: str = "AAPL") -> Quote:
    p = 100.0 + n / 100
    return Quote(symbol, p - 0.01, p + 0.01, 1.0, 1.0, p, 1000.0 + n, time.time(), "silent")


async def until(condition: Callable[[], bool], what: str, within: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def take(feed: Feed, count: int, within: float = WAIT_S) -> list[Any]:
    got: list[Any] = []
    async with asyncio.timeout(within):
        async for message in feed:
            got.append(message)
            if len(got) == count:
                break
    return got


def place(tmp_path: Path, name: str) -> Path:
    """A directory of its own for each gateway's database."""
    path = tmp_path / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path) as running:
        yield running


async def test_quotes_trades_and_a_book_arrive_typed(gateway: Gateway) -> None:
    async with tickcast.client.connect(gateway.feed) as feed:
        await feed.subscribe(["aapl"], channels=["quotes", "trades", "book"])
        snapshot = BookUpdate(
            "AAPL", ((100.0, 5.0), (99.9, 3.0)), ((100.1, 2.0),), True, time.time(), "silent"
        )
        delta = BookUpdate("AAPL", ((99.9, 0.0),), ((100.2, 7.0),), False, time.time(), "silent")
        gateway.node.publisher.publish([quote(1), trade(1), snapshot, delta])
        got = await take(feed, 4)
    assert [type(m) for m in got] == [Quote, Trade, BookUpdate, BookUpdate]
    assert got[1].trade_id == "t1"
    book = feed.book("AAPL")
    assert book is not None
    assert book.bids == {100.0: 5.0}
    assert book.asks == {100.1: 2.0, 100.2: 7.0}
    assert feed.position("trades.AAPL") is not None


async def test_a_server_restart_mid_stream_is_resumed_with_an_explicit_reset(
    tmp_path: Path,
) -> None:
    first_running = running_gateway(place(tmp_path, "a"))
    first = await first_running.__aenter__()
    stopped = False
    try:
        async with (
            proxy_to(first.port) as proxy,
            tickcast.client.connect(proxy.feed, backoff=Backoff(base_s=0.05)) as feed,
        ):
            await feed.subscribe(["AAPL", "MSFT"], channels=["trades"])
            first.node.publisher.publish([trade(n) for n in range(1, 6)] + [trade(0, "MSFT")])
            before = await take(feed, 6)
            epoch, _ = feed.position("trades.AAPL") or ("", 0)
            async with running_gateway(place(tmp_path, "b")) as second:
                proxy.target = second.port
                # the first server stops: the client is closed with 1001 and comes back
                # to the second, resuming from a numbering the second does not have
                stopped = True
                await first_running.__aexit__(None, None, None)
                after_reset = await take(feed, 2)
                second.node.publisher.publish([trade(n) for n in range(6, 11)])
                after = await take(feed, 5)
    finally:
        if not stopped:
            await first_running.__aexit__(None, None, None)

    assert [m.trade_id for m in before] == [f"t{n}" for n in range(1, 6)] + ["t0"]
    assert all(isinstance(r, Reset) for r in after_reset)
    assert sorted((r.topic, r.reason, r.requested) for r in after_reset) == [
        ("trades.AAPL", "epoch_changed", 5),
        ("trades.MSFT", "epoch_changed", 1),
    ]
    assert all(r.epoch != epoch for r in after_reset)
    assert [m.trade_id for m in after] == [f"t{n}" for n in range(6, 11)]
    assert feed.stats.reconnects >= 1
    assert feed.stats.last_close is not None


async def test_a_network_cut_is_found_by_the_heartbeat_and_resumed_without_loss(
    gateway: Gateway,
) -> None:
    async with (
        proxy_to(gateway.port) as proxy,
        tickcast.client.connect(
            proxy.feed, heartbeat_s=1, heartbeat_timeout_s=2.5, backoff=Backoff(base_s=0.05)
        ) as feed,
    ):
        await feed.subscribe(["AAPL"], channels=["trades"])
        gateway.node.publisher.publish([trade(n) for n in range(1, 4)])
        first = await take(feed, 3)
        # the network goes silent both ways; nothing is closed
        proxy.blackhole()
        proxy.delay_s = 0.05  # and the next connection is slow
        gateway.node.publisher.publish([trade(n) for n in range(4, 7)])
        await until(lambda: feed.stats.heartbeat_timeouts >= 1, "the heartbeat timeout")
        await until(lambda: feed.stats.reconnects >= 1 and feed.stats.connected, "a reconnect")
        gateway.node.publisher.publish([trade(7)])
        rest = await take(feed, 4)
    assert [m.trade_id for m in first + rest] == [f"t{n}" for n in range(1, 8)]
    assert feed.counters.resets == 0
    assert feed.counters.gaps == 0
    assert proxy.accepted == 2


async def test_a_slow_caller_gets_quotes_conflated_and_every_trade(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, batch_ms=0) as gateway,
        tickcast.client.connect(gateway.feed) as feed,
    ):
        await feed.subscribe(["AAPL", "MSFT"], channels=["quotes", "trades"])
        # the caller takes nothing while 400 quotes and 50 trades come in, in 50 batches
        for n in range(50):
            gateway.node.publisher.publish(
                [quote(n * 4 + k, s) for k in range(4) for s in ("AAPL", "MSFT")] + [trade(n)]
            )
            await until(lambda n=n: feed.queue.reliable == n + 1, f"trade {n}")
        last = [("AAPL", 200), ("MSFT", 200)]
        await until(
            lambda: [(s, (feed.position(f"quotes.{s}") or ("", 0))[1]) for s, _ in last] == last,
            "the last quotes",
        )
        await until(lambda: feed.queue.reliable == 50, "every trade queued")
        # memory stays bounded: one slot per symbol for quotes, whatever their number
        assert len(feed.queue) <= 50 + 2
        got = [m async for m in _drain(feed)]
    trades = [m for m in got if isinstance(m, Trade)]
    assert [t.trade_id for t in trades] == [f"t{n}" for n in range(50)]
    quotes = [m for m in got if isinstance(m, Quote)]
    assert quotes[-1].price == pytest.approx(100.0 + 199 / 100)  # the newest one wins
    assert feed.conflation.total >= 2 * 45  # about 49 per symbol
    assert set(feed.conflation.by_symbol) <= {"AAPL", "MSFT"}


async def _drain(feed: Feed) -> AsyncIterator[Any]:
    while len(feed.queue):
        yield await feed.__anext__()


async def test_a_full_queue_raises_rather_than_drop_a_trade(gateway: Gateway) -> None:
    async with tickcast.client.connect(gateway.feed, max_queue=5) as feed:
        await feed.subscribe(["AAPL"], channels=["trades"])
        gateway.node.publisher.publish([trade(n) for n in range(10)])
        await until(lambda: feed.stats.received >= 6, "the sixth trade")
        # raised at once, before the five queued: the caller knows it fell behind
        with pytest.raises(SlowConsumer):
            await feed.__anext__()


async def test_a_full_queue_can_block_the_reader_instead(gateway: Gateway) -> None:
    async with tickcast.client.connect(gateway.feed, max_queue=5, on_full="block") as feed:
        await feed.subscribe(["AAPL"], channels=["trades"])
        gateway.node.publisher.publish([trade(n) for n in range(30)])
        await until(lambda: feed.queue.reliable == 5, "a full queue")
        got = await take(feed, 30)
    assert [m.trade_id for m in got] == [f"t{n}" for n in range(30)]
    assert feed.queue.high_water <= 5


async def test_a_bad_token_stops_at_once_without_retrying(tmp_path: Path) -> None:
    secret = "s" * 40
    async with (
        running_gateway(tmp_path, jwt_secret=secret) as gateway,
        proxy_to(gateway.port) as proxy,
    ):
        with pytest.raises(FeedRefused) as refused:
            async with tickcast.client.connect(
                proxy.feed, token="not-a-token", backoff=Backoff(base_s=0.01)
            ):
                pass
        assert proxy.accepted == 1
    assert refused.value.code == 3500
    assert "3500" in str(refused.value)
