"""The market feed's connection driving the degrade machine, step by step.

A real ``Node`` (built, not started) on a manual clock, the real front, session, hub and
``Connection``, over a socket the test blocks and unblocks (``writable``) and whose peer
holds data it has not taken (``peer_limited``): what a client that stops reading looks
like to the connection. Every payload written is decoded and checked in order.
"""

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
from tickcast.model.market import BookUpdate, Quote, Trade
from tickcast.node import Node
from tickcast.transport.connection import Connection

EPOCH = "18bcfe5682b"
TS = 1_700_000_000.0


class BlockableSocket(RecordingSocket):
    """Takes everything while ``writable``; blocked, its peer is the one not reading."""

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
    node = node_with(degrade_grace_s=0.5, degrade_hold_s=1.0, history_size=100)
    try:
        yield node
    finally:
        node.pumps.close()
        await node.engine.dispose()


def connect(node: Node) -> tuple[Connection, BlockableSocket]:
    """A client of AAPL's and MSFT's quotes and trades, with seq=1."""
    front = WebSocketFront(MarketFeedSpec(), front_context(node, None))
    sock = BlockableSocket()
    scope = {"type": "websocket", "query_string": b"seq=1"}
    connection = front.connect(scope, sock, None)
    request = {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "channels": ["quotes", "trades"]}
    connection.session.receive_text(json.dumps(request), node.clock.now())
    connection.poke()
    return connection, sock


def trades(node: Node, n: int, symbol: str = "AAPL") -> None:
    node.publisher.publish([Trade(symbol, 190.0, 1.0, TS, "sim") for _ in range(n)])


def quote(node: Node, price: float) -> None:
    node.publisher.publish([Quote("AAPL", price, price, 1.0, 1.0, price, 1.0, TS, "sim")])


def block(node: Node, connection: Connection, sock: BlockableSocket) -> None:
    """The client stops reading: the socket refuses data from now on (seen at a flush)."""
    sock.writable = False
    connection.flush(node.clock.monotonic(), force=True)
    assert connection._blocked_since is not None
    node.clock.advance(0.1)  # a later pass: the client, not this pass's writes


def unblock(connection: Connection, sock: BlockableSocket) -> None:
    sock.writable = True
    assert sock.on_writable is not None
    sock.on_writable()


async def settle() -> None:
    """Let the loop run the callbacks the connection scheduled (a recovery check)."""
    for _ in range(3):
        await asyncio.sleep(0)


def sent(sock: RecordingSocket) -> list[Any]:
    return [json.loads(p) for p in sock.payloads()]


def trade_seqs(messages: list[Any], topic: str) -> list[int]:
    return [m["seq"] for m in messages if m.get("type") == "trade" and m["topic"] == topic]


async def test_soft_mark_conflates_then_suspends_then_resumes_from_history(node: Node) -> None:
    connection, sock = connect(node)
    stats = node.stats
    degrade = connection.degrade
    assert degrade is not None
    trades(node, 2)
    connection.flush_now()
    block(node, connection, sock)
    # soft mark: half of 16 messages
    trades(node, 8)
    assert degrade.state is State.CONFLATING
    assert connection.outbox.degraded
    # within the grace: still conflating, trades still queued
    trades(node, 2)
    assert degrade.state is State.CONFLATING
    assert not connection.suspended
    node.clock.advance(0.5)
    trades(node, 1)  # still over the soft mark after the grace: suspended
    assert degrade.state is State.SUSPENDED
    assert set(connection.suspended) == {"trades.AAPL", "trades.MSFT"}
    assert stats.degraded_streams == 2
    trades(node, 5)  # not queued
    trades(node, 3, "MSFT")
    assert stats.suspended_updates == 8
    pending = len(connection.outbox)
    assert pending < 16  # never the hard mark: not closed
    # the client reads again; caught up before the hold ends, it is resumed after it
    unblock(connection, sock)
    await settle()
    assert degrade.state is State.SUSPENDED
    node.clock.advance(1.0)
    connection._on_degrade()
    await settle()
    connection.flush_now()
    await settle()
    assert degrade.state is State.NORMAL
    assert not connection.outbox.degraded
    assert not connection.suspended
    trades(node, 2)
    connection.flush_now()
    messages = sent(sock)
    # AAPL: 1..13 before the hole, degraded at 13, 14..18 replayed, resumed at 18, live on
    assert trade_seqs(messages, "trades.AAPL") == list(range(1, 21))
    kinds = [(m["type"], m.get("topic"), m.get("seq")) for m in messages if "type" in m]
    aapl = [k for k in kinds if k[1] == "trades.AAPL"]
    i = aapl.index(("degraded", "trades.AAPL", 13))
    assert aapl[i + 1 : i + 6] == [("trade", "trades.AAPL", s) for s in range(14, 19)]
    assert aapl[i + 6] == ("resumed", "trades.AAPL", 18)
    assert aapl[i + 7] == ("trade", "trades.AAPL", 19)
    degraded = next(m for m in messages if m.get("type") == "degraded")
    assert degraded == {
        "type": "degraded",
        "topic": "trades.AAPL",
        "seq": 13,
        "epoch": EPOCH,
        "reason": "slow_consumer",
    }
    resumed = [m for m in messages if m.get("type") == "resumed"]
    assert {"type": "resumed", "topic": "trades.MSFT", "seq": 3, "epoch": EPOCH, "replayed": 3} in (
        resumed
    )
    assert trade_seqs(messages, "trades.MSFT") == [1, 2, 3]
    assert stats.degrade_transitions == {
        "conflating": 1,
        "suspended": 1,
        "recovering": 2,  # MSFT's 3 did not fit beside AAPL's 5 and its notice: 2 rounds
        "normal": 1,
    }
    assert stats.resumed_streams == {"replay": 2}
    assert sock.closed is None


async def test_a_per_tick_client_gets_latest_value_quotes_while_degraded(node: Node) -> None:
    connection, sock = connect(node)
    block(node, connection, sock)
    trades(node, 8)
    node.clock.advance(0.5)
    trades(node, 1)
    assert connection.degrade is not None
    assert connection.degrade.state is State.SUSPENDED
    unblock(connection, sock)  # it reads again; suspended until the hold ends
    await settle()
    before = len(sock.payloads())
    for i in range(10):  # ten ticks, each flushed at once for this batch-0 client
        quote(node, 100.0 + i)
        connection.flush_now()
    prices = [m["price"] for m in sent(sock)[before:] if m.get("topic") == "quotes.AAPL"]
    assert prices == [100.0]  # the first went out; the latest is held
    assert connection.outbox.held == 1
    node.clock.advance(0.5)  # the degraded rate: 2 a second
    connection._on_gate()
    prices = [m["price"] for m in sent(sock)[before:] if m.get("topic") == "quotes.AAPL"]
    assert prices == [100.0, 109.0]


async def test_history_gone_resets_then_resumes(node: Node) -> None:
    small = node_with(degrade_grace_s=0.0, degrade_hold_s=0.0, history_size=2)
    try:
        connection, sock = connect(small)
        trades(small, 1)
        connection.flush_now()
        block(small, connection, sock)
        trades(small, 8)
        assert connection.degrade is not None
        assert connection.degrade.state is State.SUSPENDED
        trades(small, 6)  # history keeps 2 of them: the hole cannot be replayed
        unblock(connection, sock)
        await settle()
        connection.flush_now()
        await settle()
        messages = sent(sock)
        aapl = [(m["type"], m.get("seq")) for m in messages if m.get("topic") == "trades.AAPL"]
        i = aapl.index(("degraded", 9))
        assert aapl[i + 1 :] == [("reset", 15), ("resumed", 15)]
        reset = next(m for m in messages if m.get("type") == "reset")
        assert reset["requested"] == 9
        assert reset["reason"] == "history_gap"
        # MSFT never traded: nothing missed, resumed by an empty replay
        assert small.stats.resumed_streams == {"reset": 1, "replay": 1}
        trades(small, 1)
        connection.flush_now()
        assert trade_seqs(sent(sock), "trades.AAPL")[-1] == 16  # live after the reset
    finally:
        small.pumps.close()
        await small.engine.dispose()


async def test_degrading_off_closes_at_the_budget_as_before() -> None:
    node = node_with(degrade_soft=0)
    try:
        connection, sock = connect(node)
        assert connection.degrade is None
        block(node, connection, sock)
        trades(node, 17)
        assert sock.closed is not None
        assert sock.closed[0] == 1013
        assert sock.closed[1].startswith("slow consumer: ")
        assert node.stats.degrade_transitions == {}
    finally:
        node.pumps.close()
        await node.engine.dispose()


async def test_an_unsubscribed_topic_is_not_resumed(node: Node) -> None:
    connection, sock = connect(node)
    block(node, connection, sock)
    trades(node, 8)
    node.clock.advance(0.5)
    trades(node, 1)
    assert "trades.MSFT" in connection.suspended
    request = {"action": "unsubscribe", "symbols": ["MSFT"]}
    connection.session.receive_text(json.dumps(request), node.clock.now())
    connection.poke()
    assert "trades.MSFT" not in connection.suspended
    unblock(connection, sock)
    node.clock.advance(1.0)
    connection._on_degrade()
    await settle()
    connection.flush_now()
    resumed = [m["topic"] for m in sent(sock) if m.get("type") == "resumed"]
    assert resumed == ["trades.AAPL"]


async def test_a_long_replay_goes_in_rounds_that_fit_under_the_soft_mark(node: Node) -> None:
    connection, sock = connect(node)
    block(node, connection, sock)
    trades(node, 8)
    node.clock.advance(0.5)
    trades(node, 1)  # suspended at AAPL 9
    assert connection.degrade is not None
    assert connection.degrade.state is State.SUSPENDED
    trades(node, 20)  # missed: 10..29, more than fits under the soft mark (8)
    unblock(connection, sock)
    node.clock.advance(1.0)
    connection._on_degrade()
    # a round fits under the soft mark; the rest stays suspended at the last replayed
    assert connection.degrade.state is State.RECOVERING
    # 8 replayed (the soft mark), and MSFT's resumed (it missed nothing): notices always go
    assert len(connection.outbox) == 9
    assert "trades.AAPL" in connection.suspended
    for _ in range(5):  # each flush drains it: the next round follows
        connection.flush_now()
        await settle()
    assert connection.degrade.state is State.NORMAL
    assert not connection.suspended
    trades(node, 1)
    connection.flush_now()
    messages = sent(sock)
    assert trade_seqs(messages, "trades.AAPL") == list(range(1, 31))
    aapl = [
        (m["type"], m.get("seq"), m.get("replayed"))
        for m in messages
        if m.get("topic") == "trades.AAPL" and m["type"] != "trade"
    ]
    assert aapl == [("degraded", 9, None), ("resumed", 29, 20)]
    assert node.stats.resumed_streams == {"replay": 2}
    assert node.stats.degrade_transitions["recovering"] >= 3  # in rounds


# -- what a subscribe gives a client that is behind (the suspension point is what the
# client was given, never the hub's latest)


@pytest.fixture
async def eager() -> AsyncIterator[Node]:
    """No grace and no hold: suspended as soon as conflating does not help."""
    node = node_with(degrade_grace_s=0.0, degrade_hold_s=0.0, history_size=100)
    try:
        yield node
    finally:
        node.pumps.close()
        await node.engine.dispose()


def client(node: Node, request: dict[str, Any]) -> tuple[Connection, BlockableSocket]:
    front = WebSocketFront(MarketFeedSpec(), front_context(node, None))
    sock = BlockableSocket()
    connection = front.connect({"type": "websocket", "query_string": b"seq=1"}, sock, None)
    connection.start()
    send(node, connection, request)
    return connection, sock


def send(node: Node, connection: Connection, request: dict[str, Any]) -> None:
    assert connection.receive_text(json.dumps(request))


async def drain(node: Node, connection: Connection, sock: BlockableSocket) -> None:
    """The client reads again until it is served normally (a bounded number of rounds)."""
    unblock(connection, sock)
    degrade = connection.degrade
    assert degrade is not None
    for _ in range(20):
        node.clock.advance(1.0)
        connection._on_degrade()
        await settle()
        connection.flush_now()
        await settle()
        if degrade.state is State.NORMAL and not connection.suspended:
            return
    raise AssertionError(f"still {degrade.state} with {sorted(connection.suspended)} suspended")


def notices(messages: list[Any], topic: str) -> list[tuple[str, int]]:
    """``topic``'s messages in order, as (type, seq)."""
    return [(m["type"], m["seq"]) for m in messages if m.get("topic") == topic]


TRADES_AAPL = {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"]}


async def test_a_resume_replay_cut_by_the_suspension_it_brings_is_degraded_where_it_stopped(
    eager: Node,
) -> None:
    node = eager
    trades(node, 40, "MSFT")  # MSFT's history: 1..40
    connection, sock = client(node, TRADES_AAPL)
    trades(node, 1)
    connection.flush_now()
    block(node, connection, sock)
    resume = {"trades.MSFT": 5}
    send(node, connection, {**TRADES_AAPL, "symbols": ["MSFT"], "resume": resume})
    # the subscribed reply and 6..12 reach the soft mark (8): suspended at 12, not at 40
    topic, point, replayed = connection.suspended["trades.MSFT"]
    assert (str(topic), point.seq, replayed) == ("trades.MSFT", 12, 0)
    await drain(node, connection, sock)
    trades(node, 1, "MSFT")
    connection.flush_now()
    msft = notices(sent(sock), "trades.MSFT")
    assert msft[:8] == [("trade", seq) for seq in range(6, 13)] + [("degraded", 12)]
    assert ("resumed", 40) in msft
    assert [seq for kind, seq in msft if kind == "trade"] == list(range(6, 42))
    resumed = [m for m in sent(sock) if m.get("type") == "resumed"]
    assert {m["topic"]: m["replayed"] for m in resumed} == {"trades.AAPL": 0, "trades.MSFT": 28}


async def test_books_subscribed_in_the_pass_that_suspends_get_their_snapshots_first(
    eager: Node,
) -> None:
    """The subscribed reply takes the client to the soft mark: the books it acknowledges
    are not subscribed yet, so they are not suspended with the trades; each is
    suspended when it starts, after its snapshot, at the snapshot's seq."""
    node = eager

    def book(symbol: str, bid: float, snapshot: bool = False) -> None:
        levels = ((bid, 1.0),)
        node.publisher.publish([BookUpdate(symbol, levels, (), snapshot, TS, "sim")])

    book("AAPL", 100.0, snapshot=True)
    book("MSFT", 200.0, snapshot=True)
    book("MSFT", 199.0)
    connection, sock = client(node, TRADES_AAPL)
    connection.flush_now()
    block(node, connection, sock)
    trades(node, 7)
    send(node, connection, {**TRADES_AAPL, "symbols": ["AAPL", "MSFT"], "channels": ["book"]})
    assert sorted(connection.suspended) == ["book.AAPL", "book.MSFT", "trades.AAPL"]
    await drain(node, connection, sock)
    book("MSFT", 198.0)
    connection.flush_now()
    messages = sent(sock)
    assert notices(messages, "trades.AAPL")[-2:] == [("degraded", 7), ("resumed", 7)]
    assert notices(messages, "book.AAPL") == [("book", 1), ("degraded", 1), ("resumed", 1)]
    assert notices(messages, "book.MSFT") == [
        ("book", 2),
        ("degraded", 2),
        ("resumed", 2),
        ("book", 3),
    ]
    books = [m["snapshot"] for m in messages if m.get("type") == "book"]
    assert books == [True, True, False]


async def test_a_topic_subscribed_while_suspended_is_suspended_at_its_resume_point(
    eager: Node,
) -> None:
    node = eager
    trades(node, 40, "MSFT")
    connection, sock = client(node, TRADES_AAPL)
    trades(node, 1)
    connection.flush_now()
    block(node, connection, sock)
    trades(node, 10)
    degrade = connection.degrade
    assert degrade is not None
    assert degrade.state is State.SUSPENDED
    queued = len(connection.outbox)
    resume = {"trades.MSFT": 35}
    send(node, connection, {**TRADES_AAPL, "symbols": ["MSFT"], "resume": resume})
    # nothing replayed now: suspended at once where the client said it was
    assert connection.suspended["trades.MSFT"][1].seq == 35
    assert len(connection.outbox) == queued + 2  # the subscribed reply and its degraded
    suspended_updates = node.stats.suspended_updates
    trades(node, 5, "MSFT")  # not queued
    assert node.stats.suspended_updates == suspended_updates + 5
    assert len(connection.outbox) == queued + 2
    assert sock.closed is None
    await drain(node, connection, sock)
    msft = notices(sent(sock), "trades.MSFT")
    trades_seqs = [seq for kind, seq in msft if kind == "trade"]
    assert msft[0] == ("degraded", 35)
    assert msft[-1] == ("resumed", 45)
    assert trades_seqs == list(range(36, 46))
    assert node.stats.degraded_streams == 2  # AAPL's and MSFT's: counted as any other


async def test_a_degraded_client_closed_by_the_time_rule_is_counted_closed(
    eager: Node,
) -> None:
    node = eager
    connection, sock = client(node, TRADES_AAPL)
    block(node, connection, sock)
    trades(node, 10)
    degrade = connection.degrade
    assert degrade is not None
    assert degrade.state is State.SUSPENDED
    node.clock.advance(5.0)  # past slow_client_timeout_s (2 s), taking nothing
    trades(node, 1)
    assert sock.closed is not None
    assert sock.closed[0] == 1013
    assert "degraded" in sock.closed[1]
    assert degrade.state is State.CLOSED
    assert node.stats.degrade_transitions["closed"] == 1
