"""Front 2's first value for a new subscriber: cached while fresh, else computed and
published, so that it gets its own seq (one (epoch, seq) never carries two contents).

A real ``Node`` (built, not started), the real front, session and codec, and a
``Connection`` over a socket that records what is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from support.fakesocket import RecordingSocket
from tickcast.app import add_portfolios
from tickcast.config.settings import Settings
from tickcast.fronts.guard import Guard
from tickcast.fronts.identity import Identity
from tickcast.fronts.realtime import RealtimeFront
from tickcast.hub.history import Gap
from tickcast.hub.outbox import Outbox
from tickcast.model.envelope import ResumePoint
from tickcast.model.market import Quote
from tickcast.model.portfolio import AssetUpdate
from tickcast.model.topic import Channel, Topic
from tickcast.node import Node
from tickcast.protocols.envelope import codec
from tickcast.protocols.envelope.session import RealtimeSession
from tickcast.providers.base import Provider, Sink
from tickcast.transport.connection import Connection, payload_size

EPOCH = "e1"
#: Long ago: a value published then is older than any cache timeout.
LONG_AGO = 1_600_000_000.0
ASSETS_AAPL = Topic(Channel.ASSETS, "AAPL")


class Silent(Provider):
    name = "silent"

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset({"AAPL"})

    async def run(self, sink: Sink) -> None:
        await asyncio.Event().wait()


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    node = Node(Settings(batch_ms=0, cache_timeout_s=0), providers=[Silent()], epoch=EPOCH)
    add_portfolios(node, node.settings)
    try:
        yield node
    finally:
        node.pumps.close()
        await node.engine.dispose()


def subscriber(node: Node, front: RealtimeFront, n: int) -> Connection:
    session = RealtimeSession(
        connection_id=f"00000000-0000-4000-8000-00000000000{n}",
        user_id=None,
        anonymous_allowed=True,
        is_known=front.is_known,
        owner_of=node.portfolios.owner_of,
        max_subscriptions=10,
        now=node.clock.now(),
    )
    return Connection(
        sock=RecordingSocket(),
        session=session,
        wire=codec.WIRE,
        array=False,
        outbox=Outbox(0.0, 100, 1 << 20, size=payload_size),
        pump=node.pumps.get(0.0),
        stats=node.stats,
        on_commands=front._apply,
        on_close=front._closed,
    )


def subscribe_asset(connection: Connection) -> None:
    connection.session.receive_text(
        '{"type":"subscribe_asset","data":{"symbol":"AAPL"}}', connection.clock.now()
    )
    connection.poke()


async def test_a_fresh_value_is_published_with_its_own_seq(node: Node) -> None:
    front = RealtimeFront(
        node, Guard(node.settings, Identity(node.engine, "x" * 32, 60), node.stats)
    )
    node.portfolios.on_market([Quote("AAPL", 189.99, 190.01, 1.0, 1.0, 190.0, 1.0, LONG_AGO, "t")])
    hub = node.hub
    hub.publish([node.portfolios.asset_update("AAPL")], LONG_AGO)  # seq 1, stale at once
    assert hub.latest_seq(ASSETS_AAPL) == 1

    first = subscriber(node, front, 1)
    subscribe_asset(first)
    assert hub.latest_seq(ASSETS_AAPL) == 2  # computed afresh: a new seq, not seq 1 again
    second = subscriber(node, front, 2)
    subscribe_asset(second)
    assert hub.latest_seq(ASSETS_AAPL) == 3

    replay = hub.resume(ASSETS_AAPL, ResumePoint(0, EPOCH))
    assert not isinstance(replay, Gap)
    assert [(e.epoch, e.seq) for e in replay] == [(EPOCH, 1), (EPOCH, 2), (EPOCH, 3)]
    assert all(isinstance(e.payload, AssetUpdate) for e in replay)
    cached = hub.cache.get(str(ASSETS_AAPL))
    assert cached is not None
    assert cached.seq == 3  # the fresh value is the cached one now

    # Each subscriber got its value by fan-out, in the realtime envelope's bytes; the first
    # also got the second's fresh value (one more conflatable update).
    for connection, seqs in ((first, (2, 3)), (second, (3,))):
        connection.flush_now()
        sock = connection.sock
        assert isinstance(sock, RecordingSocket)
        sent = sock.payloads()
        for seq in seqs:
            assert codec.encode(replay[seq - 1]) in sent
