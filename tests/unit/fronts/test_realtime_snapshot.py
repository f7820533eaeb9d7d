"""Front 2 on the front contract: what a subscription holds (``expand``) and the first
value a new subscriber gets (``snapshot``): cached while fresh, else computed and
published, so that it gets its own seq (one (epoch, seq) never carries two contents).

A real ``Node`` (built, not started), the real spec served by the contract's endpoint
(``WebSocketFront.connect``: the spec's session, the dispatcher), the real codec, and
``Connection``s over sockets that record what is written. The portfolio service is the
real one, or a small stand-in where a test needs a portfolio it would load from the
database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Collection
from decimal import Decimal

import pytest

from support.clock import ManualClock
from support.fakesocket import RecordingSocket
from support.publishing import stamp_and_fan_out
from support.silent import Silent
from tickcast.app import add_portfolios, front_context
from tickcast.auth.credentials import Principal
from tickcast.config.settings import Settings
from tickcast.fronts.base import WebSocketFront
from tickcast.fronts.guard import Ticket
from tickcast.fronts.realtime import Portfolios, RealtimeSpec
from tickcast.hub.history import Gap
from tickcast.model.envelope import ResumePoint
from tickcast.model.market import Quote
from tickcast.model.portfolio import AssetUpdate, PortfolioValue, PositionsUpdate
from tickcast.model.topic import Channel, Topic
from tickcast.node import Node
from tickcast.portfolio.service import PortfolioService
from tickcast.protocols.envelope import codec
from tickcast.transport.connection import Connection

EPOCH = "e1"
#: Long ago: a value published then is older than any cache timeout.
LONG_AGO = 1_600_000_000.0
#: The front's clock in the tests that fix it.
NOW = 1_700_000_000.0
ASSETS_AAPL = Topic(Channel.ASSETS, "AAPL")
OWNER = 7


class OnePortfolio:
    """Portfolio 1, owned by ``OWNER``; counts the values it computes."""

    known_assets: Collection[str] = frozenset({"ACME"})

    def __init__(self) -> None:
        self.computed: list[str] = []

    def owner_of(self, portfolio_id: int) -> int | None:
        return OWNER if portfolio_id == 1 else None

    def asset_update(self, symbol: str) -> AssetUpdate | None:
        return None

    def value(self, portfolio_id: int) -> PortfolioValue:
        self.computed.append(f"portfolio.{portfolio_id}")
        zero = Decimal(0)
        return PortfolioValue(
            portfolio_id, "Main", OWNER, zero, zero, zero, zero, zero, zero, zero, zero, zero, NOW
        )

    def positions(self, portfolio_id: int) -> PositionsUpdate:
        self.computed.append(f"live_positions.{portfolio_id}")
        return PositionsUpdate(portfolio_id, OWNER, (), NOW)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Node, PortfolioService]]:
    node = Node(Settings(batch_ms=0, cache_timeout_s=0), providers=[Silent(["AAPL"])], epoch=EPOCH)
    service = add_portfolios(node, node.settings)
    try:
        yield node, service
    finally:
        node.pumps.close()
        await node.engine.dispose()


def front(
    node: Node, portfolios: Portfolios, *, cache_timeout_s: float = 0.0, clock: float | None = None
) -> WebSocketFront:
    spec = RealtimeSpec(
        portfolios, cache_timeout_s=cache_timeout_s, allow_anonymous=True, auth_timeout_s=10.0
    )
    if clock is None:
        return WebSocketFront(spec, front_context(node, None))
    fixed = dataclasses.replace(front_context(node, None), clock=ManualClock(0.0, clock))
    return WebSocketFront(spec, fixed)


def subscriber(front: WebSocketFront, user_id: int | None = None) -> Connection:
    principal = Principal(user_id, "u") if user_id is not None else Principal()
    scope = {"type": "websocket", "path": "/ws/realtime/", "query_string": b""}
    connection = front.connect(
        scope,  # type: ignore[arg-type]
        RecordingSocket(),  # type: ignore[arg-type]
        Ticket(principal, "127.0.0.1", "127.0.0.1"),
    )
    connection.poke()  # the connection message, as Connection.run does first
    return connection


def send(connection: Connection, message: str) -> None:
    connection.session.receive_text(message, connection.clock.now())
    connection.poke()


def subscribe_asset(connection: Connection) -> None:
    send(connection, '{"type":"subscribe_asset","data":{"symbol":"AAPL"}}')


def payloads(connection: Connection) -> list[bytes]:
    connection.flush_now()
    sock = connection.sock
    assert isinstance(sock, RecordingSocket)
    return sock.payloads()


async def test_a_fresh_value_is_published_with_its_own_seq(
    gateway: tuple[Node, PortfolioService],
) -> None:
    node, service = gateway
    realtime = front(node, service)
    service.on_market([Quote("AAPL", 189.99, 190.01, 1.0, 1.0, 190.0, 1.0, LONG_AGO, "t")])
    hub = node.hub
    stamp_and_fan_out(hub, [service.asset_update("AAPL")], LONG_AGO)  # seq 1, stale at once
    assert hub.latest_seq(ASSETS_AAPL) == 1

    first = subscriber(realtime)
    subscribe_asset(first)
    assert hub.latest_seq(ASSETS_AAPL) == 2  # computed afresh: a new seq, not seq 1 again
    second = subscriber(realtime)
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
        sent = payloads(connection)
        for seq in seqs:
            assert codec.encode(replay[seq - 1]) in sent


async def test_a_cached_value_younger_than_the_timeout_is_queued_as_it_is(
    gateway: tuple[Node, PortfolioService],
) -> None:
    node, service = gateway
    realtime = front(node, service, cache_timeout_s=5.0, clock=NOW + 5.0)
    service.on_market([Quote("AAPL", 189.99, 190.01, 1.0, 1.0, 190.0, 1.0, NOW, "t")])
    stamp_and_fan_out(node.hub, [service.asset_update("AAPL")], NOW)  # seq 1, 5 s old for the front

    connection = subscriber(realtime)
    subscribe_asset(connection)
    assert node.hub.latest_seq(ASSETS_AAPL) == 1  # nothing computed, nothing published
    cached = node.hub.cache.get(str(ASSETS_AAPL))
    assert cached is not None
    assert payloads(connection)[-1] == codec.encode(cached)


async def test_a_portfolio_subscription_holds_its_position_updates(
    gateway: tuple[Node, PortfolioService],
) -> None:
    node, _ = gateway
    portfolios = OnePortfolio()
    realtime = front(node, portfolios, cache_timeout_s=60.0, clock=NOW)
    hub = node.hub
    owner = subscriber(realtime, OWNER)
    send(owner, '{"type":"subscribe_portfolio","data":{"portfolio_id":1}}')
    assert hub.subscription_count == 2  # portfolio.1 and positions.1
    assert portfolios.computed == ["portfolio.1"]  # nothing cached: computed and published
    assert hub.latest_seq(Topic(Channel.PORTFOLIO, "1")) == 1
    assert b'"type":"portfolio_update"' in payloads(owner)[-1]

    # a second subscriber within the cache timeout gets the cached value
    other = subscriber(realtime, OWNER)
    send(other, '{"type":"subscribe_portfolio","data":{"portfolio_id":1}}')
    assert portfolios.computed == ["portfolio.1"]
    assert b'"type":"portfolio_update"' in payloads(other)[-1]

    send(owner, '{"type":"unsubscribe_portfolio","data":{"portfolio_id":1}}')
    assert hub.subscription_count == 2  # the other's two
    realtime._closed(other)  # what the connection calls when it closes
    assert hub.subscription_count == 0


async def test_live_positions_are_computed_afresh_for_each_subscriber(
    gateway: tuple[Node, PortfolioService],
) -> None:
    node, _ = gateway
    portfolios = OnePortfolio()
    realtime = front(node, portfolios, cache_timeout_s=60.0, clock=NOW)
    for _ in range(2):
        connection = subscriber(realtime, OWNER)
        send(connection, '{"type":"subscribe_positions","data":{"portfolio_id":1}}')
        assert b'"type":"positions_update"' in payloads(connection)[-1]
    assert portfolios.computed == ["live_positions.1", "live_positions.1"]
    assert node.hub.latest_seq(Topic(Channel.LIVE_POSITIONS, "1")) == 2
