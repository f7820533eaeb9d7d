"""Review of the Python SDK (issue 14): defects reproduced against a real gateway.

Each test states what a user is promised (docs/client.md); each failed before its fix
and now guards against the defect it names. The gateway runs in the
test's loop (support/inloop.py), reached directly or through ``TcpProxy``; waits are on
conditions with generous timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

import support.inloop as inloop
import tickcast.client
from support.inloop import Gateway, running_gateway
from support.server import free_port
from support.silent import Silent
from support.tcpproxy import proxy_to
from tickcast.cli import tail
from tickcast.client import (
    Feed,
    FeedError,
    FeedRefused,
    Quote,
    Reset,
    Signal,
    Trade,
    connect_sync,
)
from tickcast.protocols.native.timefmt import iso_ms
from tickcast.retry import Backoff

WAIT_S = 20.0
FAST = Backoff(base_s=0.05, cap_s=0.2)


def trade(n: int, symbol: str = "AAPL") -> Trade:
    return Trade(symbol, 100.0 + n, 10.0, time.time(), "silent", f"t{n}")


def quote(n: int, symbol: str = "AAPL") -> Quote:
    p = 100.0 + n / 100
    return Quote(symbol, p - 0.01, p + 0.01, 1.0, 1.0, p, 1000.0 + n, time.time(), "silent")


def signal(symbol: str, n: int) -> Signal:
    return Signal("MA_CROSS", "BUY", 100.0 + n, symbol, "1m", iso_ms(time.time()), f"s{n}")


async def until(condition: Callable[[], bool], what: str, within: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def take_until(feed: Feed, last: Callable[[Any], bool], within: float = WAIT_S) -> list[Any]:
    """Messages up to and including the first one ``last`` accepts."""
    got: list[Any] = []
    async with asyncio.timeout(within):
        async for message in feed:
            got.append(message)
            if last(message):
                break
    return got


def is_trade(trade_id: str) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, Trade) and m.trade_id == trade_id


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path) as running:
        yield running


async def reconnected(feed: Feed, proxy: Any) -> None:
    """Cut every connection through ``proxy`` and wait until the feed is back."""
    before = feed.stats.connects
    proxy.sever()
    await until(lambda: feed.stats.connects > before and feed.stats.connected, "a reconnect")


# -- subscriptions refused by the server


async def test_a_refused_subscribe_does_not_forget_an_earlier_subscription(
    gateway: Gateway,
) -> None:
    async with (
        proxy_to(gateway.port) as proxy,
        tickcast.client.connect(proxy.feed, backoff=FAST) as feed,
    ):
        await feed.subscribe(["AAPL", "MSFT"], channels=["trades"])
        # AAPL again, with a symbol the server does not know: the server refuses the
        # whole request and keeps trades.AAPL as it was
        with pytest.raises(tickcast.client.FeedSubscriptionError):
            await feed.subscribe(["AAPL", "NOPE"], channels=["trades"])
        await reconnected(feed, proxy)
        gateway.node.publisher.publish([trade(1), trade(2, "MSFT")])
        got = await take_until(feed, is_trade("t2"))
    assert [m.trade_id for m in got if isinstance(m, Trade)] == ["t1", "t2"]


async def test_a_refused_multi_channel_subscribe_keeps_nothing(gateway: Gateway) -> None:
    async with tickcast.client.connect(gateway.feed) as feed:
        await feed.subscribe(["ZZZ1"], channels=["signals"])  # the sentinel
        # signals take any well-formed symbol, trades only the feed's: refused
        with pytest.raises(tickcast.client.FeedSubscriptionError):
            await feed.subscribe(["NOPE"], channels=["signals", "trades"])
        gateway.publish(signal("NOPE", 1), signal("ZZZ1", 2))
        got = await take_until(feed, lambda m: isinstance(m, Signal) and m.symbol == "ZZZ1")
    assert [m.symbol for m in got] == ["ZZZ1"]


async def test_a_resubscription_refused_after_a_restart_is_surfaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    first_running = running_gateway(first_dir)
    first = await first_running.__aenter__()
    stopped = False
    try:
        async with (
            proxy_to(first.port) as proxy,
            tickcast.client.connect(proxy.feed, backoff=FAST) as feed,
        ):
            await feed.subscribe(["AAPL"], channels=["quotes"])
            await feed.subscribe(["AAPL", "MSFT"], channels=["trades"])
            first.node.publisher.publish([trade(1)])
            await take_until(feed, is_trade("t1"))
            # the server comes back without MSFT in its universe
            monkeypatch.setattr(inloop, "Silent", lambda: Silent(("AAPL",)))
            async with running_gateway(second_dir) as second:
                proxy.target = second.port
                stopped = True
                await first_running.__aexit__(None, None, None)
                await until(lambda: feed.stats.connects >= 2 and feed.stats.connected, "back")
                second.node.publisher.publish([trade(2), quote(1)])
                got: list[Any] = []
                failed: FeedError | None = None
                try:
                    got = await take_until(feed, lambda m: isinstance(m, Quote))
                except FeedError as exc:
                    failed = exc
                later = list(got)

                def both(m: Any) -> bool:
                    later.append(m)
                    return any(isinstance(x, Trade) for x in later) and any(
                        isinstance(x, Reset) and x.reason == "refused" for x in later
                    )

                if failed is None and not both(None):
                    later.pop()
                    await take_until(feed, both)
                later = [m for m in later if m is not None]
    finally:
        if not stopped:
            await first_running.__aexit__(None, None, None)
    # the caller must learn of it: the AAPL trade still comes, or a Reset, or an error
    told = failed is not None or any(isinstance(m, Trade | Reset) for m in got)
    assert told, f"only {got} arrived; stats.errors={feed.stats.errors}"
    # and after the fix: the rest of the channel goes on (AAPL's trades, after the
    # new server's epoch_changed reset), and MSFT alone is dropped and announced
    assert failed is None
    assert [m.trade_id for m in later if isinstance(m, Trade)] == ["t2"]
    resets = [(m.topic, m.reason) for m in later if isinstance(m, Reset)]
    assert ("trades.MSFT", "refused") in resets, resets
    assert {topic for topic, _ in resets} <= {"trades.AAPL", "trades.MSFT"}, resets
    assert list(feed.stats.refused) == ["trades.MSFT"]
    assert "trades.MSFT" not in feed.streams.wanted


# -- a caller behind, heartbeats


async def test_subscribe_while_the_queue_is_full_in_block_mode_does_not_hang(
    gateway: Gateway,
) -> None:
    async with tickcast.client.connect(
        gateway.feed, max_queue=3, on_full="block", heartbeat_s=1
    ) as feed:
        await feed.subscribe(["AAPL"], channels=["trades"])
        gateway.node.publisher.publish([trade(n) for n in range(20)])
        await until(lambda: feed.queue.reliable == 3, "a full queue")
        outcome = "hung"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):  # ten heartbeat timeouts: not a race
                try:
                    await feed.subscribe(["MSFT"], channels=["trades"])
                    outcome = "returned"
                except FeedError:
                    outcome = "raised"
    assert outcome != "hung"


async def test_without_app_heartbeats_a_quiet_healthy_connection_is_kept(
    gateway: Gateway,
) -> None:
    async with tickcast.client.connect(gateway.feed, heartbeat_s=0) as feed:
        await feed.subscribe(["AAPL"], channels=["trades"])
        # nothing is published: the connection is quiet but healthy (pings answered).
        # Waiting several heartbeat timeouts is the condition itself, not a race.
        await asyncio.sleep(4 * feed.heartbeat_timeout_s)
        stats = feed.stats
    assert (stats.heartbeat_timeouts, stats.reconnects) == (0, 0)


# -- life of the feed task


async def test_cancelling_start_stops_the_feed_task() -> None:
    port = free_port()  # nobody listens: the feed keeps retrying
    feed = Feed(f"ws://127.0.0.1:{port}/ws/market/feed", backoff=FAST)

    def alive() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "tickcast-feed"]

    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await feed.start()
        await until(lambda: not alive(), "the feed task to end", within=10)
    finally:
        await feed.close()


async def test_an_unknown_terminal_close_code_is_not_retried() -> None:
    accepted = 0

    async def refuse(ws: ServerConnection) -> None:
        nonlocal accepted
        accepted += 1
        await ws.close(3599, "terminal: change something first")

    port = free_port()
    async with serve(refuse, "127.0.0.1", port):
        feed = Feed(f"ws://127.0.0.1:{port}/ws/market/feed", backoff=FAST, max_attempts=5)

        async def first_failure() -> None:
            # the handshake succeeds and the server closes: start() or the loop raises
            await feed.start()
            await feed.__anext__()

        try:
            with pytest.raises(FeedError) as failed:
                await asyncio.wait_for(first_failure(), WAIT_S)
        finally:
            await feed.close()
    assert isinstance(failed.value, FeedRefused), repr(failed.value)
    assert accepted == 1


# -- resume across an outage


async def test_a_quiet_topic_loses_nothing_silently_across_an_outage(
    gateway: Gateway,
) -> None:
    async with (
        proxy_to(gateway.port) as proxy,
        tickcast.client.connect(proxy.feed, backoff=FAST) as feed,
    ):
        await feed.subscribe(["AAPL", "MSFT"], channels=["trades"])
        gateway.node.publisher.publish([trade(1)])
        await take_until(feed, is_trade("t1"))
        proxy.refuse_new = True
        proxy.sever()
        await until(lambda: not feed.stats.connected, "the cut")
        # while the client is away: AAPL (resumable) and MSFT (no position yet) trade
        gateway.node.publisher.publish([trade(2), trade(3, "MSFT")])
        proxy.refuse_new = False
        await until(lambda: feed.stats.connected, "the reconnect")
        gateway.node.publisher.publish([trade(4, "MSFT")])
        got = await take_until(feed, is_trade("t4"))
    ids = [m.trade_id for m in got if isinstance(m, Trade)]
    resets = [m.topic for m in got if isinstance(m, Reset)]
    assert "t2" in ids  # resumed: replayed
    assert "t3" in ids or "trades.MSFT" in resets, f"t3 lost silently: {got}"


# -- the synchronous wrapper


async def test_sync_get_with_a_timeout_loses_no_message(gateway: Gateway) -> None:
    feed = await asyncio.to_thread(connect_sync, gateway.feed)
    count = 50

    def read() -> list[Any]:
        got: list[Any] = []
        for _ in range(count):  # a script polling without waiting
            message = feed.get(timeout=0)
            if message is not None:
                got.append(message)
        # then what is left, waiting (everything is queued already)
        while (message := feed.get(timeout=5.0)) is not None:
            got.append(message)
        return got

    try:
        await asyncio.to_thread(feed.subscribe, ["AAPL"], ["trades"])
        gateway.node.publisher.publish([trade(n) for n in range(count)])
        await until(lambda: feed.stats.received >= count, "every trade queued")
        got = await asyncio.to_thread(read)
    finally:
        await asyncio.to_thread(feed.close)
    assert [m.trade_id for m in got] == [f"t{n}" for n in range(count)]


async def test_reading_a_closed_sync_feed_ends_the_iteration(gateway: Gateway) -> None:
    feed = await asyncio.to_thread(connect_sync, gateway.feed)
    await asyncio.to_thread(feed.close)

    def read() -> list[Any]:
        return list(feed)  # the docs: StopIteration once the feed is closed

    outcome: object
    try:
        outcome = await asyncio.to_thread(read)
    except RuntimeError as exc:
        outcome = exc
    assert outcome == []


# -- tickcast tail


async def test_tail_with_an_unknown_channel_says_so_without_a_traceback(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    options = {
        "symbols": ["AAPL"],
        "url": gateway.feed,
        "channels": "quotes,trade",
        "token": None,
        "duration": 5.0,
    }
    outcome: object
    try:
        outcome = await asyncio.to_thread(tail.run, options)
    except ValueError as exc:
        outcome = exc
    assert outcome in (1, 2), repr(outcome)
    assert "trade" in capsys.readouterr().err
