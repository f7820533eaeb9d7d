"""A failing tap or codec mid-fan-out is contained: the provider's run goes on.

An in-process ``Node`` with a provider that talks: a tap on the node's publisher (as a
service listens) or a codec raises on every other batch. The feed must not see it: no
restart, no failover, every batch reaches a subscriber, and the failure shows in
``tickcast_internal_errors_total{where}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from tickcast.config.settings import Settings
from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote
from tickcast.model.topic import Channel, Topic
from tickcast.node import Node
from tickcast.protocols.wire import Encoded
from tickcast.providers.base import Provider, Sink

BATCHES = 6


class Talks(Provider):
    """Subscribes, sends BATCHES quote batches (yielding between them), then stays up."""

    name = "talks"

    def __init__(self) -> None:
        self.sent = asyncio.Event()  # set once every batch went into the sink

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset({"AAPL"})

    async def run(self, sink: Sink) -> None:
        sink.state("subscribed")
        for i in range(BATCHES):
            sink([Quote("AAPL", 1.0, 1.1, 1.0, 1.0, 1.0 + i, 0.0, 1.0, "talks")])
            await asyncio.sleep(0)
        self.sent.set()
        await asyncio.Event().wait()


class FakeConnection:
    """A subscribed connection, as the hub sees one."""

    wire = "test"

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.faults = 0

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        self.received.append(item.payload)

    def fault(self) -> None:
        self.faults += 1


def every_other(what: str) -> Callable[[object], bytes]:
    calls = 0

    def fails(_: object) -> bytes:
        nonlocal calls
        calls += 1
        if calls % 2 == 0:
            raise RuntimeError(f"a bug in a {what}")
        return b"ok"

    return fails


async def run_node(node: Node, talks: Talks, connection: FakeConnection) -> None:
    """Run ``node`` until ``talks`` has sent every batch (the sink is synchronous: each
    batch has been published and fanned out by then)."""
    node.hub.subscribe(connection, Topic(Channel.QUOTES, "AAPL"))
    await node.start()
    try:
        async with asyncio.timeout(10):  # a guard against a hang, not a timing assertion
            await talks.sent.wait()
        assert node.stats.events_by_kind["quote"] == BATCHES
        assert node.supervisor.active == "talks"
    finally:
        await node.aclose()


async def test_a_raising_tap_keeps_the_feed_and_is_counted_in_metrics() -> None:
    talks = Talks()
    node = Node(Settings(), providers=[talks])
    listened: list[Sequence[Envelope]] = []
    fails = every_other("tap")

    def listener(envelopes: Sequence[Envelope]) -> None:
        if type(envelopes[0].payload) is not Quote:  # a tap sees every batch: statuses too
            return
        listened.append(envelopes)
        fails(envelopes)

    node.publisher.tap(listener, name="listener")
    node.hub.codecs["test"] = lambda envelope: str(envelope.seq).encode()
    connection = FakeConnection()
    await run_node(node, talks, connection)
    assert connection.received == [str(seq).encode() for seq in range(1, BATCHES + 1)]
    assert len(listened) == BATCHES
    assert node.stats.provider_restarts == 0
    assert node.stats.failovers == 0
    assert node.faults.counts == {"tap": BATCHES // 2}
    assert f'tickcast_internal_errors_total{{where="tap"}} {BATCHES // 2}.0' in (
        node.metrics.render().decode()
    )


async def test_a_raising_codec_keeps_the_feed_and_is_counted_in_metrics() -> None:
    talks = Talks()
    node = Node(Settings(), providers=[talks])
    fails = every_other("codec")

    node.hub.codecs["test"] = fails
    connection = FakeConnection()
    await run_node(node, talks, connection)
    assert connection.received == [b"ok"] * (BATCHES // 2)  # the others were not encodable
    assert connection.faults == 0
    assert node.stats.provider_restarts == 0
    assert node.stats.failovers == 0
    assert node.faults.counts == {"codec": BATCHES // 2}
    assert f'tickcast_internal_errors_total{{where="codec"}} {BATCHES // 2}.0' in (
        node.metrics.render().decode()
    )
