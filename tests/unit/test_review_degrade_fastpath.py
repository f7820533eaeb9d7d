"""Review of degrade-before-disconnecting (market feed): the client must always know
what it missed. Same harness as tests/unit/fronts/test_market_degrade.py: a real node on
a manual clock, the real front, session, hub and Connection, over a socket the test
blocks. Defects are reproduced as strict xfails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from support.clock import ManualClock
from support.fakesocket import RecordingSocket
from support.silent import Silent
from tickcast.app import front_context
from tickcast.config.settings import Settings
from tickcast.fronts.base import WebSocketFront
from tickcast.fronts.market import MarketFeedSpec
from tickcast.hub.degrade import State
from tickcast.model.market import Bar, BookUpdate, Quote, Status, Trade
from tickcast.model.signal import Signal
from tickcast.node import Node
from tickcast.transport.connection import Connection

EPOCH = "18bcfe5682b"
TS = 1_700_000_000.0


class BlockableSocket(RecordingSocket):
    def peer_limited(self) -> bool | None:
        return not self.writable


def node_with(**settings: Any) -> Node:
    return Node(
        Settings(batch_ms=0, outbox_max_items=16, **settings),
        providers=[Silent(["AAPL", "MSFT"])],
        epoch=EPOCH,
        clock=ManualClock(wall=TS),
    )


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    node = node_with(degrade_grace_s=0.0, degrade_hold_s=0.0, history_size=100)
    try:
        yield node
    finally:
        node.pumps.close()
        await node.engine.dispose()


def connect(node: Node, query: bytes = b"seq=1") -> tuple[Connection, BlockableSocket]:
    front = WebSocketFront(MarketFeedSpec(), front_context(node, None))
    sock = BlockableSocket()
    connection = front.connect({"type": "websocket", "query_string": query}, sock, None)
    connection.start()
    return connection, sock


def send(node: Node, connection: Connection, request: dict[str, Any]) -> None:
    assert connection.receive_text(json.dumps(request))


def trades(node: Node, n: int, symbol: str = "AAPL") -> None:
    node.publisher.publish([Trade(symbol, 190.0, 1.0, TS, "sim") for _ in range(n)])


def block(node: Node, connection: Connection, sock: BlockableSocket) -> None:
    sock.writable = False
    connection.flush(node.clock.monotonic(), force=True)
    assert connection._blocked_since is not None
    node.clock.advance(0.1)


def unblock(connection: Connection, sock: BlockableSocket) -> None:
    sock.writable = True
    assert sock.on_writable is not None
    sock.on_writable()


async def drain(node: Node, connection: Connection, sock: BlockableSocket) -> None:
    """The client reads everything until the connection is normal again (bounded)."""
    unblock(connection, sock)
    for _ in range(50):
        node.clock.advance(1.0)
        connection._on_degrade()
        for _ in range(3):
            await asyncio.sleep(0)
        connection.flush_now()
        for _ in range(3):
            await asyncio.sleep(0)
        degrade = connection.degrade
        assert degrade is not None
        if degrade.state is State.NORMAL and not connection.suspended:
            return


def sent(sock: RecordingSocket) -> list[Any]:
    out: list[Any] = []
    for p in sock.payloads():
        m = json.loads(p)
        out.extend(m if isinstance(m, list) else [m])
    return out


def story(messages: list[Any], topic: str) -> list[tuple[str, int]]:
    return [(m["type"], m["seq"]) for m in messages if m.get("topic") == topic and "seq" in m]


def holes(messages: list[Any], topic: str) -> list[str]:
    """What a client checking seq contiguity on ``topic`` finds wrong: each data seq
    must be the previous one + 1; a ``degraded`` at s says s was the last sent (its
    replay goes on from s + 1), a ``reset`` or ``resumed`` at s is where data go on from
    (s + 1); a ``resumed`` comes only after a ``degraded``."""
    wrong: list[str] = []
    last: int | None = None
    open_ = False
    for kind, seq in story(messages, topic):
        if kind == "degraded":
            if last is not None and seq != last:
                wrong.append(f"degraded at {seq}, but {last} was the last received")
            open_ = True
        elif kind == "resumed":
            if not open_:
                wrong.append(f"resumed at {seq} without a degraded")
            elif last is not None and seq != last:
                wrong.append(f"resumed at {seq}, but {last} was the last received")
            open_ = False
        elif kind == "reset":
            pass
        elif last is not None and seq != last + 1:
            wrong.append(f"{kind} {seq} after {last}")
        last = seq
    return wrong


@pytest.mark.parametrize(
    "query",
    [b"seq=1", b"seq=1&frames=array", b"seq=1&stamps=1", b"seq=1&frames=array&stamps=1"],
)
async def test_degrade_cycles_leave_no_hole_and_no_duplicate(node: Node, query: bytes) -> None:
    """Three rounds of falling behind, each blocked again in the middle of its
    recovery: every trade seq of both topics arrives once, in order, the holes
    announced by degraded/resumed (array frames and stamps alike)."""
    connection, sock = connect(node, query)
    request = {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "channels": ["quotes", "trades"]}
    send(node, connection, request)
    for _ in range(3):
        trades(node, 2)
        connection.flush_now()
        block(node, connection, sock)
        trades(node, 30)
        trades(node, 5, "MSFT")
        unblock(connection, sock)
        node.clock.advance(1.0)
        connection._on_degrade()
        connection.flush_now()  # one round, then blocked again mid-recovery
        block(node, connection, sock)
        trades(node, 30)
        await drain(node, connection, sock)
    trades(node, 2)
    connection.flush_now()
    messages = sent(sock)
    assert holes(messages, "trades.AAPL") == []
    assert holes(messages, "trades.MSFT") == []
    data = [m["seq"] for m in messages if m.get("type") == "trade" and m["topic"] == "trades.AAPL"]
    assert data == list(range(1, len(data) + 1))
    assert sock.closed is None
    # every announcement counted, once
    kinds = [m.get("type") for m in messages]
    stats = node.stats
    assert kinds.count("degraded") == stats.degraded_streams > 0
    assert kinds.count("resumed") == sum(stats.resumed_streams.values()) == kinds.count("degraded")
    assert stats.degrade_transitions["normal"] == 3


async def test_a_clients_own_rates_come_back_after_degrading(node: Node) -> None:
    """max_rate on AAPL's quotes, none on MSFT's: after a degrade and its recovery an
    unrated per-tick quote stream is per tick again."""
    connection, sock = connect(node)
    request = {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes", "trades"]}
    send(node, connection, {**request, "max_rate": 100})
    send(node, connection, {"action": "subscribe", "symbols": ["MSFT"], "channels": ["quotes"]})
    connection.flush_now()
    block(node, connection, sock)
    trades(node, 30)
    assert connection.outbox.degraded
    await drain(node, connection, sock)
    assert not connection.outbox.degraded
    before = len(sent(sock))
    for i in range(5):
        price = 100.0 + i
        node.publisher.publish([Quote("MSFT", price, price, 1.0, 1.0, price, 1.0, TS, "sim")])
        connection.flush_now()
    prices = [m["price"] for m in sent(sock)[before:] if m.get("topic") == "quotes.MSFT"]
    assert prices == [100.0, 101.0, 102.0, 103.0, 104.0]


async def test_a_resume_replay_that_triggers_the_suspension_leaves_no_silent_hole(
    node: Node,
) -> None:
    trades(node, 40, "MSFT")  # history: MSFT 1..40
    connection, sock = connect(node)
    send(node, connection, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"]})
    trades(node, 1)
    connection.flush_now()
    block(node, connection, sock)  # the client stops reading, then resumes MSFT from 5
    resume = {"trades.MSFT": 5}
    send(
        node,
        connection,
        {"action": "subscribe", "symbols": ["MSFT"], "channels": ["trades"], "resume": resume},
    )
    assert "trades.MSFT" in connection.suspended
    await drain(node, connection, sock)
    trades(node, 2, "MSFT")
    connection.flush_now()
    messages = sent(sock)
    # MSFT 6..12 replayed, then degraded at 40: 13..40 never sent and never announced
    assert holes(messages, "trades.MSFT") == []


@pytest.mark.parametrize("how", ["new", "resubscribed"])
async def test_a_topic_subscribed_while_suspended_is_degraded_not_closed(
    node: Node, how: str
) -> None:
    """MSFT's trades subscribed while the client is suspended: a new topic, or one it
    held (suspended) and unsubscribed meanwhile."""
    connection, sock = connect(node)
    symbols = ["AAPL"] if how == "new" else ["AAPL", "MSFT"]
    send(node, connection, {"action": "subscribe", "symbols": symbols, "channels": ["trades"]})
    trades(node, 2)
    connection.flush_now()
    block(node, connection, sock)
    trades(node, 30)
    assert connection.degrade is not None
    assert connection.degrade.state is State.SUSPENDED
    if how == "resubscribed":
        assert "trades.MSFT" in connection.suspended
        send(node, connection, {"action": "unsubscribe", "symbols": ["MSFT"]})
    send(node, connection, {"action": "subscribe", "symbols": ["MSFT"], "channels": ["trades"]})
    node.clock.advance(0.1)
    trades(node, 30, "MSFT")  # still not reading
    assert sock.closed is None
    assert "trades.MSFT" in connection.suspended
    await drain(node, connection, sock)
    messages = sent(sock)
    assert holes(messages, "trades.MSFT") == []


async def test_status_signals_bars_and_trades_of_one_batch_are_suspended_and_resumed(
    node: Node,
) -> None:
    """Every reliable channel of the feed, published together in each batch: each topic
    is degraded at the last seq it got and resumed with no hole."""
    connection, sock = connect(node)
    request = {"symbols": ["AAPL", "FEED"], "channels": ["trades", "status", "signals", "bars"]}
    send(node, connection, {"action": "subscribe", **request})

    def batch(i: int) -> None:
        when = "2026-01-02T03:04:05.000Z"
        node.publisher.publish(
            [
                Trade("AAPL", 1.0, 1.0, TS, "sim"),
                Status("FEED", "sim", "up", "sim", f"r{i}", TS),
                Signal("RSI", "BUY", 1.0, "AAPL", "1m", when, f"id{i}", "engine"),
                Bar("AAPL", 1, 1, 1, 1, 1, TS, TS, "sim"),
            ]
        )

    batch(0)
    connection.flush_now()
    block(node, connection, sock)
    for i in range(1, 20):
        batch(i)
    assert sorted(connection.suspended) == [
        "bars.AAPL",
        "signals.AAPL",
        "status.FEED",
        "trades.AAPL",
    ]
    await drain(node, connection, sock)
    batch(99)
    connection.flush_now()
    messages = sent(sock)
    for topic in ("trades.AAPL", "status.FEED", "signals.AAPL", "bars.AAPL"):
        kinds = [kind for kind, _ in story(messages, topic)]
        assert kinds.count("degraded") == kinds.count("resumed") == 1, topic
        assert holes(messages, topic) == [], topic


async def test_a_book_subscribed_while_behind_starts_with_its_snapshot(node: Node) -> None:
    def book(symbol: str, bid: float, snapshot: bool = False) -> None:
        levels = ((bid, 1.0),)
        node.publisher.publish([BookUpdate(symbol, levels, (), snapshot, TS, "sim")])

    book("AAPL", 100.0, snapshot=True)
    book("MSFT", 200.0, snapshot=True)
    book("MSFT", 199.0)
    connection, sock = connect(node)
    send(node, connection, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"]})
    connection.flush_now()
    block(node, connection, sock)
    trades(node, 7)  # behind, just under the soft mark
    send(
        node, connection, {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "channels": ["book"]}
    )
    await drain(node, connection, sock)
    book("MSFT", 198.0)
    connection.flush_now()
    messages = sent(sock)
    for topic in ("book.AAPL", "book.MSFT"):
        books = [m for m in messages if m.get("type") == "book" and m["topic"] == topic]
        assert books, f"{topic}: no book at all"
        assert books[0]["snapshot"] is True, f"{topic}: a delta before any snapshot"


async def test_a_client_gone_while_suspended_resumes_after_reconnecting_with_no_hole(
    node: Node,
) -> None:
    """Degraded (trades suspended), then gone before its resumed: it reconnects with the
    last seq it got, as the docs say, and the union of both connections is contiguous."""
    first, sock = connect(node)
    send(node, first, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"]})
    trades(node, 2)
    first.flush_now()
    block(node, first, sock)
    trades(node, 30)
    assert "trades.AAPL" in first.suspended
    sock.writable = True
    first.flush_now()  # what it had queued reaches it, then it is gone
    first.finished(1006)
    before = sent(sock)
    assert story(before, "trades.AAPL")[-1][0] == "degraded"
    last = [m["seq"] for m in before if m.get("type") == "trade"][-1]
    trades(node, 5)
    again, sock2 = connect(node)
    resume = {"trades.AAPL": last}
    send(
        node,
        again,
        {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"], "resume": resume},
    )
    trades(node, 1)
    again.flush_now()
    seqs = [m["seq"] for m in [*before, *sent(sock2)] if m.get("type") == "trade"]
    assert seqs == list(range(1, 39))
    assert node.hub.subscription_count == 1  # the first one's is released
