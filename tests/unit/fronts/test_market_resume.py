"""Front 1's resume with epochs: another epoch's position gets reset and snapshot, never
data; the object form in the current epoch replays as a bare seq does.

A real ``Node`` (built, not started) with a fixed epoch, the real front, session and
codec, and a ``Connection`` over a socket that records what is written.
"""

from __future__ import annotations

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
from tickcast.model.market import Quote, Trade
from tickcast.node import Node

EPOCH = "18bcfe5682b"
OLD_EPOCH = "18bcfe0000a"
TS = 1_700_000_000.0


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    node = Node(
        Settings(batch_ms=0), providers=[Silent(["AAPL"])], epoch=EPOCH, clock=ManualClock(wall=TS)
    )
    try:
        yield node
    finally:
        node.pumps.close()
        await node.engine.dispose()


def resume(node: Node, positions: dict[str, Any], query: str = "seq=1") -> list[Any]:
    """A new client subscribes to AAPL's quotes and trades resuming at ``positions``;
    returns what it was sent, decoded."""
    ctx = front_context(node, None)
    front = WebSocketFront(MarketFeedSpec(), ctx)
    sock = RecordingSocket()
    scope = {"type": "websocket", "query_string": query.encode()}
    connection = front.connect(scope, sock, None)
    request = {
        "action": "subscribe",
        "symbols": ["AAPL"],
        "channels": ["quotes", "trades"],
        "resume": positions,
    }
    connection.session.receive_text(json.dumps(request), node.clock.now())
    connection.poke()
    connection.flush_now()
    return [json.loads(p) for p in sock.payloads()]


def publish_some(node: Node) -> None:
    """quotes.AAPL seqs 1-2, trades.AAPL seqs 1-3, in epoch EPOCH."""
    node.publisher.publish(
        [
            Quote("AAPL", 189.99, 190.01, 1.0, 1.0, 190.0, 1.0, TS, "sim"),
            Trade("AAPL", 190.0, 1.0, TS, "sim", "t1"),
            Trade("AAPL", 190.0, 1.0, TS, "sim", "t2"),
            Quote("AAPL", 190.0, 190.02, 1.0, 1.0, 190.01, 1.0, TS, "sim"),
            Trade("AAPL", 190.0, 1.0, TS, "sim", "t3"),
        ]
    )


async def test_another_epochs_position_gets_reset_and_snapshot_never_data(node: Node) -> None:
    publish_some(node)
    sent = resume(
        node,
        {
            "quotes.AAPL": {"epoch": OLD_EPOCH, "seq": 1},
            "trades.AAPL": {"epoch": OLD_EPOCH, "seq": 1},  # seqs 2-3 are held: not for it
        },
    )
    assert sent[0] == {  # with seq=1 the reply also says where each added topic stands
        "type": "subscribed",
        "symbols": ["AAPL"],
        "positions": {
            "quotes.AAPL": {"epoch": EPOCH, "seq": 2},
            "trades.AAPL": {"epoch": EPOCH, "seq": 3},
        },
    }
    reset = {"type": "reset", "requested": 1, "reason": "epoch_changed", "epoch": EPOCH}
    assert sent[1] == {**reset, "topic": "quotes.AAPL", "seq": 2}
    assert (sent[2]["topic"], sent[2]["seq"], sent[2]["epoch"]) == ("quotes.AAPL", 2, EPOCH)
    assert sent[3] == {**reset, "topic": "trades.AAPL", "seq": 3}
    assert len(sent) == 4  # trades have no snapshot, and nothing is replayed


async def test_an_epoch_resume_in_the_current_epoch_replays_and_its_reset_names_the_epoch(
    node: Node,
) -> None:
    publish_some(node)
    sent = resume(
        node,
        {"quotes.AAPL": {"epoch": EPOCH, "seq": 7}, "trades.AAPL": {"epoch": EPOCH, "seq": 1}},
    )
    assert sent[1] == {
        "type": "reset",
        "topic": "quotes.AAPL",
        "seq": 2,
        "requested": 7,
        "reason": "history_gap",
        "epoch": EPOCH,
    }
    assert (sent[2]["topic"], sent[2]["seq"]) == ("quotes.AAPL", 2)  # the snapshot
    assert [(m["topic"], m["seq"], m["epoch"]) for m in sent[3:]] == [
        ("trades.AAPL", 2, EPOCH),
        ("trades.AAPL", 3, EPOCH),
    ]


async def test_a_bare_seq_resumes_in_the_current_epoch_and_its_reset_is_unchanged(
    node: Node,
) -> None:
    publish_some(node)
    sent = resume(node, {"quotes.AAPL": 7, "trades.AAPL": 1})
    assert sent[1] == {
        "type": "reset",
        "topic": "quotes.AAPL",
        "seq": 2,
        "requested": 7,
        "reason": "history_gap",
    }
    assert [(m["topic"], m["seq"]) for m in sent[3:]] == [("trades.AAPL", 2), ("trades.AAPL", 3)]


def subscribe(node: Node, query: str, *requests: dict[str, Any]) -> list[Any]:
    """A new client sends ``requests``; returns what it was sent, decoded."""
    ctx = front_context(node, None)
    front = WebSocketFront(MarketFeedSpec(), ctx)
    sock = RecordingSocket()
    connection = front.connect({"type": "websocket", "query_string": query.encode()}, sock, None)
    for request in requests:
        connection.session.receive_text(json.dumps(request), node.clock.now())
        connection.poke()
    connection.flush_now()
    return [json.loads(p) for p in sock.payloads()]


TRADES = {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"]}
SIGNALS = {"action": "subscribe", "symbols": ["ZZZ1"], "channels": ["signals"]}
BOTH = {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades", "quotes"]}


async def test_the_subscribed_reply_says_where_each_added_topic_starts(node: Node) -> None:
    publish_some(node)  # trades.AAPL is at seq 3; nothing was published on signals.ZZZ1
    replies = [m for m in subscribe(node, "seq=1", TRADES, SIGNALS, BOTH) if "positions" in m]
    assert [m["positions"] for m in replies] == [
        {"trades.AAPL": {"epoch": EPOCH, "seq": 3}},
        {"signals.ZZZ1": {"epoch": EPOCH, "seq": 0}},  # a quiet topic has a position too
        {"quotes.AAPL": {"epoch": EPOCH, "seq": 2}},  # trades.AAPL is live already
    ]


async def test_without_seq_the_subscribed_reply_is_the_original_one(node: Node) -> None:
    publish_some(node)
    assert subscribe(node, "", TRADES)[0] == {"type": "subscribed", "symbols": ["AAPL"]}
