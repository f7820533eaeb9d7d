"""Review, round 3: the degrade fixes (8802042, ``fronts/base.py``'s Dispatcher and
``transport/connection.py``) and the SDK's degrade support (47d513a,
``client/streams.py``), adversarially.

The server side is driven through random interleavings of subscribe (with and without
a resume point, one topic or several), unsubscribe, resubscribe, publishing, a client
that stops and starts reading, and recovery, on a real ``Node`` (built, not started) on
a manual clock with the real front, session, hub and ``Connection`` over a socket the
test blocks and unblocks; every interleaving is checked for what the client was sent
(seeded: the same interleavings every run). The SDK's gap tracking is pure: fed the
messages by hand.

Defects are ``xfail(strict=True)``: each fails for the reason it states."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from support.clock import ManualClock
from support.fakesocket import RecordingSocket
from support.silent import Silent
from tickcast.app import front_context
from tickcast.client.streams import Streams
from tickcast.config.settings import Settings
from tickcast.fronts.base import WebSocketFront
from tickcast.fronts.market import MarketFeedSpec
from tickcast.hub.degrade import State
from tickcast.model.market import BookUpdate, Trade
from tickcast.node import Node
from tickcast.protocols.native.client import Degraded, Reset, Resumed, Update
from tickcast.transport.connection import Connection

EPOCH = "18bcfe5682b"
TS = 1_700_000_000.0
TOPIC = "trades.AAPL"

# -- the server: random interleavings of degrade with subscriptions


class BlockableSocket(RecordingSocket):
    """Takes everything while ``writable``; blocked, its peer is the one not reading."""

    def peer_limited(self) -> bool | None:
        return not self.writable


@pytest.fixture(params=[(10, 0.0), (100, 0.5)], ids=["shallow-eager", "deep-graced"])
async def node(request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    """history_size, and the grace and hold (0: suspended as soon as conflating does not
    help); the outbox budget is 16 messages (the soft mark 8)."""
    history, grace = request.param
    node = Node(
        Settings(
            batch_ms=0,
            outbox_max_items=16,
            degrade_grace_s=grace,
            degrade_hold_s=grace,
            history_size=history,
        ),
        providers=[Silent(["AAPL", "MSFT"])],
        epoch=EPOCH,
        clock=ManualClock(wall=TS),
    )
    try:
        yield node
    finally:
        node.pumps.close()
        await node.engine.dispose()


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


class Client:
    """A market-feed client of the node, and what it asked for (to check what it got)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.front = WebSocketFront(MarketFeedSpec(), front_context(node, None))
        self.sock = BlockableSocket()
        scope = {"type": "websocket", "query_string": b"seq=1"}
        self.connection: Connection = self.front.connect(scope, self.sock, None)
        self.connection.start()
        self.held: set[tuple[str, str]] = set()  # (channel, symbol)
        self.resumes: list[dict[str, int]] = []  # per subscribe, in order
        self.blocked = False

    def send(self, request: dict[str, Any]) -> None:
        self.connection.receive_text(json.dumps(request))

    def messages(self) -> list[Any]:
        return [json.loads(p) for p in self.sock.payloads()]

    def last_seq(self, topic: str) -> int | None:
        seqs = [
            m["seq"]
            for m in self.messages()
            if m.get("topic") == topic and m.get("type") in ("trade", "book")
        ]
        return seqs[-1] if seqs else None

    def subscribe(self, channel: str, symbols: list[str], rnd: random.Random) -> None:
        resume = {}
        for symbol in symbols:
            last = self.last_seq(f"{channel}.{symbol}")
            if last is not None and rnd.random() < 0.7:  # as far back as it likes
                resume[f"{channel}.{symbol}"] = max(1, last - rnd.choice((0, 0, 3, 12)))
        request: dict[str, Any] = {"action": "subscribe", "symbols": symbols}
        request["channels"] = [channel]
        if resume:
            request["resume"] = resume
        self.send(request)
        self.resumes.append(resume)
        self.held.update((channel, s) for s in symbols)

    def unsubscribe(self, channel: str, symbol: str) -> None:
        self.send({"action": "unsubscribe", "symbols": [symbol], "channels": [channel]})
        self.held.discard((channel, symbol))

    def block(self) -> None:
        self.sock.writable = False
        self.connection.flush(self.node.clock.monotonic(), force=True)
        self.node.clock.advance(0.1)
        self.blocked = True

    async def read_again(self) -> None:
        self.sock.writable = True
        self.blocked = False
        assert self.sock.on_writable is not None
        self.sock.on_writable()
        self.node.clock.advance(1.0)
        self.connection._on_degrade()
        await settle()
        self.connection.flush_now()
        await settle()


def publish(node: Node, rnd: random.Random) -> None:
    symbol = rnd.choice(["AAPL", "MSFT"])
    n = rnd.randint(1, 12)
    if rnd.random() < 0.5:
        node.publisher.publish([Trade(symbol, 190.0, 1.0, TS, "sim") for _ in range(n)])
    else:
        snapshot = rnd.random() < 0.3
        node.publisher.publish(
            [
                BookUpdate(symbol, ((100.0 + i, 1.0),), (), snapshot and i == 0, TS, "sim")
                for i in range(n)
            ]
        )


def holes(messages: list[Any], resumes: list[dict[str, int]]) -> list[str]:
    """What is wrong with the reliable streams the client was sent: per topic, each
    update the one after the last (from the subscribe's start, or its resume point), a
    ``degraded`` and a ``resumed`` at the last seq sent, a ``reset`` re-anchoring."""
    errors: list[str] = []
    last: dict[str, int | None] = {}
    resumes = list(resumes)
    for m in messages:
        kind, topic = m.get("type"), m.get("topic")
        if kind == "subscribed":
            resume = resumes.pop(0)
            for key, position in (m.get("positions") or {}).items():
                last[key] = resume.get(key, position["seq"])
            continue
        if not topic or topic.split(".")[0] not in ("trades", "book"):
            continue
        seq, was = m.get("seq"), last.get(topic)
        if kind == "book" and m["snapshot"]:  # the start's (at), or a published one (after)
            if was is not None and seq not in (was, was + 1):
                errors.append(f"{topic}: a snapshot at {seq} after {was}")
            last[topic] = seq
        elif kind in ("trade", "book"):
            if was is not None and seq != was + 1:
                errors.append(f"{topic}: {seq} after {was}")
            last[topic] = seq
        elif kind in ("degraded", "resumed"):
            if was is not None and seq != was:
                errors.append(f"{topic}: {kind} at {seq}, the last sent {was}")
        elif kind == "reset":
            last[topic] = seq
    return errors


@pytest.mark.parametrize("seed", range(40))
async def test_no_hole_no_duplicate_and_degraded_at_the_last_seq_sent(
    node: Node, seed: int
) -> None:
    """Random interleavings (seeded) of subscribe/unsubscribe/resubscribe with a client
    that stops and starts reading: per topic, no hole, no duplicate, ``degraded`` and
    ``resumed`` at the last seq sent; the counters match the notices; the Dispatcher's
    bookkeeping of the connection is empty once it holds nothing, and gone at its end."""
    rnd = random.Random(seed)
    client = Client(node)
    connection = client.connection
    client.subscribe("trades", ["AAPL"], rnd)
    for _ in range(60):
        if connection.closing:  # past the hard mark (commands answered while behind)
            break
        r = rnd.random()
        if r < 0.35:
            publish(node, rnd)
        elif r < 0.5 and not client.blocked:
            client.block()
        elif r < 0.62 and client.blocked:
            await client.read_again()
        elif r < 0.72 and client.held:
            client.unsubscribe(*rnd.choice(sorted(client.held)))
        elif r < 0.92:
            channel = rnd.choice(["trades", "book"])
            symbols = [s for s in ("AAPL", "MSFT") if (channel, s) not in client.held]
            if symbols:
                client.subscribe(channel, rnd.sample(symbols, rnd.randint(1, len(symbols))), rnd)
        else:
            node.clock.advance(0.3)
            connection._on_degrade()
            await settle()
    dispatcher = client.front.dispatcher
    if not connection.closing:
        for _ in range(30):
            await client.read_again()
            degrade = connection.degrade
            assert degrade is not None
            if degrade.state is State.NORMAL and not connection.suspended:
                break
        else:
            raise AssertionError(f"not recovered: {connection.suspended}")
    messages = client.messages()
    assert holes(messages, client.resumes) == []
    if not connection.closing:
        kinds = [m.get("type") for m in messages]
        assert node.stats.degraded_streams == kinds.count("degraded")
        assert sum(node.stats.resumed_streams.values()) == kinds.count("resumed")
        for held in sorted(client.held):
            client.unsubscribe(*held)
        assert not dispatcher._started.get(connection)
    connection.finished(1000)
    assert connection not in dispatcher._started
    assert connection not in dispatcher._starting


# -- the SDK: client/streams.py's gap tracking with degraded and resumed


def trade(seq: int, epoch: str = EPOCH) -> Update:
    return Update(Trade("AAPL", 100.0, 5.0, TS, "sim", f"t{seq}"), TOPIC, seq, epoch)


def accept(streams: Streams, *updates: Update) -> list[Update | Reset]:
    out: list[Update | Reset] = []
    for u in updates:
        out.extend(streams.accept(u))
    return out


def test_a_replay_starting_past_the_degraded_seq_of_a_topic_not_delivered_yet_is_a_gap() -> None:
    """Subscribed while behind (docs/market-feed.md): the ``subscribed`` reply gives the
    topic's start (seq 10), its ``degraded`` comes at that start; the replay must then
    begin at 11. One that begins at 13 hides 11 and 12 from the caller."""
    streams = Streams()
    streams.add([TOPIC])
    streams.acknowledged({TOPIC: (EPOCH, 10)})
    streams.degraded(Degraded(TOPIC, 10, EPOCH, "slow_consumer"))
    out = accept(streams, trade(13), trade(14))
    assert out[0] == Reset(TOPIC, 13, 10, "gap", EPOCH)
    assert streams.counters.gaps == 1


def test_a_resumed_in_another_epoch_without_a_reset_is_a_gap() -> None:
    streams = Streams()
    streams.add([TOPIC])
    accept(streams, trade(1), trade(2), trade(3))
    streams.degraded(Degraded(TOPIC, 3, EPOCH, "slow_consumer"))
    out = streams.resumed(Resumed(TOPIC, 7, "0000renumbered", 0))
    assert [type(m).__name__ for m in out] == ["Reset", "Resumed"]
    assert out[0] == Reset(TOPIC, 7, 3, "gap", "0000renumbered")
    assert streams.counters.gaps == 1


def test_a_resumed_without_its_degraded_is_not_counted_nor_delivered() -> None:
    streams = Streams()
    streams.add([TOPIC])
    accept(streams, trade(1), trade(2))
    streams.degraded(Degraded(TOPIC, 2, EPOCH, "slow_consumer"))
    assert len(streams.resumed(Resumed(TOPIC, 2, EPOCH, 0))) == 1
    assert streams.resumed(Resumed(TOPIC, 2, EPOCH, 0)) == []  # the same notice again
    assert (streams.counters.degraded, streams.counters.resumed_replay) == (1, 1)
