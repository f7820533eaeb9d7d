"""PortfolioService on a real SQLite file: what it publishes, and when.

The clock is the test's and the ticker's interval is an hour, so nothing is published
unless the test calls ``flush()`` (what the ticker does every ``update_interval_s``);
prices are ingested as a provider would deliver them. No sleeps, no sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from support.clock import ManualClock
from support.publishing import Recording
from tickcast.hub.hub import Hub
from tickcast.hub.publisher import LocalPublisher
from tickcast.hub.sequencer import Sequencer
from tickcast.model.market import Quote
from tickcast.model.portfolio import (
    PortfolioValue,
    PositionsUpdate,
    PositionUpdate,
    UserPnl,
    UserPositions,
)
from tickcast.model.topic import Channel, Event, Topic
from tickcast.observability.faults import Faults
from tickcast.portfolio.cash import Cash
from tickcast.portfolio.service import PortfolioService
from tickcast.portfolio.valuation import Side
from tickcast.protocols.wire import Encoded
from tickcast.storage.engine import make_engine
from tickcast.storage.records import Asset, AssetKind
from tickcast.storage.repositories import Assets, Portfolios, Positions, Users

D = Decimal
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
T0_S = T0.timestamp()


@dataclass
class World:
    engine: AsyncEngine
    service: PortfolioService
    user_id: int
    now: float = T0_S
    published: list[Event] = field(default_factory=list)

    def quote(self, symbol: str, price: float) -> None:
        self.service.on_market([Quote(symbol, price, price, 1, 1, price, 0, self.now, "test")])

    def taken(self, kind: type) -> list[object]:
        found = [e for e in self.published if isinstance(e, kind)]
        self.published.clear()
        return found


@dataclass(eq=False)
class Watcher:
    """A hub subscriber (what a connection is to the hub); what it is sent is not read."""

    wire: str

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        pass

    def fault(self) -> None:
        pass


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    holder: list[World] = []
    published: list[Event] = []
    service = PortfolioService(
        engine,
        Recording(published),
        interval_s=3600,
        clock=lambda: holder[0].now,
    )
    await service.start()
    async with engine.begin() as conn:
        user = await Users(conn).create("ada")
        await Assets(conn).upsert_many(
            [
                Asset(
                    symbol="ACME",
                    name="Acme",
                    kind=AssetKind.STOCK,
                    last_price=D(100),
                    previous_close=D(100),
                    updated_at=T0,
                )
            ]
        )
    world = World(engine, service, user.id, published=published)
    holder.append(world)
    try:
        yield world
    finally:
        await service.aclose()
        await engine.dispose()


async def test_live_positions_are_published_only_while_watched(world: World) -> None:
    service = world.service
    portfolio = await service.create_portfolio(world.user_id, "main")
    await service.record_transaction(portfolio.id, "AAPL", Side.BUY, D(10), D(100))
    await service.record_transaction(portfolio.id, "MSFT", Side.BUY, D(2), D(400))
    world.published.clear()
    world.quote("AAPL", 101.0)
    service.flush()
    assert world.taken(PositionsUpdate) == []  # nobody watches: not even computed

    hub = Hub()
    service.follow(hub)  # the hub's first/last-subscriber hooks say who watches
    topic = Topic(Channel.LIVE_POSITIONS, str(portfolio.id))
    first, second = Watcher("native"), Watcher("envelope")
    hub.subscribe(first, topic)
    hub.subscribe(second, topic)  # a second subscriber, on another wire
    world.quote("AAPL", 102.0)
    world.quote("AAPL", 103.0)  # two ticks of one symbol...
    world.quote("MSFT", 410.0)  # ...and another symbol, within one interval
    service.flush()
    [update] = world.taken(PositionsUpdate)  # one update per interval, carrying all
    assert isinstance(update, PositionsUpdate)
    assert (update.portfolio_id, update.owner_id) == (portfolio.id, world.user_id)
    assert [p.symbol for p in update.positions] == ["AAPL", "MSFT"]
    aapl, msft = update.positions
    assert (aapl.price, aapl.market_value, aapl.unrealized_pnl) == (D("103.0"), 1030, 30)
    assert (msft.price, msft.unrealized_pnl) == (D("410.0"), 20)
    assert aapl.created_at == aapl.updated_at == world.now
    service.flush()
    assert world.taken(PositionsUpdate) == []  # nothing moved since

    hub.unsubscribe(first, topic)
    world.quote("AAPL", 104.0)
    service.flush()
    assert len(world.taken(PositionsUpdate)) == 1  # one subscriber is left
    hub.unsubscribe(second, topic)
    world.quote("AAPL", 105.0)
    service.flush()
    assert world.taken(PositionsUpdate) == []


async def test_a_trade_publishes_the_position_live_and_the_watched_positions(
    world: World,
) -> None:
    service = world.service
    portfolio = await service.create_portfolio(world.user_id, "main")
    world.quote("AAPL", 120.0)
    hub = Hub()
    service.follow(hub)
    hub.subscribe(Watcher("envelope"), Topic(Channel.LIVE_POSITIONS, str(portfolio.id)))
    world.published.clear()
    world.now += 60
    recorded = await service.record_transaction(portfolio.id, "AAPL", Side.BUY, D(10), D(100))
    assert recorded.deposit is not None
    assert recorded.deposit.amount == 1000
    after, value, positions = world.published
    assert isinstance(after, PositionUpdate)
    assert (after.quantity, after.cost_basis, after.price) == (10, 1000, D("120.0"))
    assert (after.market_value, after.unrealized_pnl) == (1200, 200)
    assert after.created_at == after.updated_at == world.now
    assert isinstance(value, PortfolioValue)
    assert (value.total_value, value.cash, value.net_deposits) == (1200, 0, 1000)
    assert isinstance(positions, PositionsUpdate)
    assert [p.symbol for p in positions.positions] == ["AAPL"]
    # sold out: the symbol leaves the live positions (its last state was the update)
    world.published.clear()
    await service.record_transaction(portfolio.id, "AAPL", Side.SELL, D(10), D(120))
    after, value, positions = world.published
    assert isinstance(after, PositionUpdate)
    assert after.quantity == 0
    assert isinstance(value, PortfolioValue)
    assert (value.total_value, value.cash) == (1200, 1200)
    assert isinstance(positions, PositionsUpdate)
    assert positions.positions == ()


async def test_the_daily_change_turns_with_the_utc_day(world: World) -> None:
    service = world.service
    portfolio = await service.create_portfolio(world.user_id, "main")
    await service.record_transaction(portfolio.id, "MSFT", Side.BUY, D(2), D(400))
    world.quote("MSFT", 420.0)  # no close known: today's first price is the reference
    world.quote("MSFT", 425.0)
    assert service.value(portfolio.id).daily_change == 10  # 2 x (425 - 420)
    assert service.assets.previous_close("MSFT") is None
    world.now = (T0 + timedelta(days=1)).replace(hour=0, minute=0, second=1).timestamp()
    world.published.clear()
    service.flush()  # the first flush of the day rolls it, before any price
    [value] = world.taken(PortfolioValue)
    assert isinstance(value, PortfolioValue)
    assert value.daily_change == 0  # against yesterday's last price now
    assert service.assets.previous_close("MSFT") == 425.0
    world.quote("MSFT", 430.0)
    assert service.value(portfolio.id).daily_change == 10  # 2 x (430 - 425)


async def test_a_stored_close_stays_the_reference_and_exact(world: World) -> None:
    service = world.service
    await service.aclose()
    await service.start()  # loads ACME's stored close (100)
    portfolio = await service.create_portfolio(world.user_id, "main")
    await service.record_transaction(portfolio.id, "ACME", Side.BUY, D(3), D(90))
    world.quote("ACME", 101.5)
    assert service.value(portfolio.id).daily_change == D("4.5")
    assert service.book.previous_close("ACME") == 100


async def test_cash_is_stored_and_loaded_again_at_start(world: World) -> None:
    service = world.service
    portfolio = await service.create_portfolio(world.user_id, "main")
    moved = await service.deposit(portfolio.id, D("1000.5"))
    assert moved.cash == Cash(D("1000.5"), D("1000.5"))
    [value] = world.taken(PortfolioValue)  # published at once
    assert isinstance(value, PortfolioValue)
    assert value.cash == D("1000.5")
    await service.record_transaction(portfolio.id, "ACME", Side.BUY, D(3), D(100))
    await service.withdraw(portfolio.id, D("0.5"))
    assert service.book.cash(portfolio.id) == Cash(D(700), D(1000))

    fresh = PortfolioService(world.engine, Recording(world.published), interval_s=3600)
    await fresh.start()
    try:
        assert fresh.book.cash(portfolio.id) == Cash(D(700), D(1000))
        assert fresh.value(portfolio.id).total_value == service.value(portfolio.id).total_value
    finally:
        await fresh.aclose()


async def test_writes_that_reach_the_book_out_of_order_leave_it_as_committed(
    world: World,
) -> None:
    """Two writes of one portfolio commit in one order and could reach the book in the
    other (the first one's coroutine resumes after the second's): the book then kept the
    older state. Here the first write is held, by the pool, between its commit and its
    book update until the second is done: no timing, the order is forced."""
    service = world.service
    portfolio = await service.create_portfolio(world.user_id, "main")
    gate = asyncio.Event()
    held = asyncio.Event()
    armed = [True]

    def hold_first_checkin(*_: object) -> None:
        if armed[0]:
            armed[0] = False
            held.set()
            await_only(gate.wait())  # the commit is done; the book is not updated yet

    event.listen(world.engine.sync_engine.pool, "checkin", hold_first_checkin)
    try:
        first = asyncio.create_task(
            service.record_transaction(portfolio.id, "ACME", Side.BUY, D(10), D(100))
        )
        await held.wait()
        await service.deposit(portfolio.id, D(500))  # commits after the buy
        gate.set()
        await first
    finally:
        event.remove(world.engine.sync_engine.pool, "checkin", hold_first_checkin)

    async with world.engine.connect() as conn:
        stored = await Portfolios(conn).get(portfolio.id)
        positions = await Positions(conn).list_for_portfolio(portfolio.id)
    assert (stored.cash, [p.quantity for p in positions]) == (500, [10])
    assert service.book.cash(portfolio.id) == Cash(D(500), D(1500))
    assert [h.quantity for h in service.book.holdings(portfolio.id)] == [10]
    assert service.value(portfolio.id).cash == 500


async def test_a_close_too_large_to_store_stays_in_memory_and_the_others_are_stored(
    world: World,
) -> None:
    """A feed price past NUMERIC(28, 10) closes a day like any other; it cannot be
    written to the asset table, and must not keep the other closes from it."""
    service = world.service
    async with world.engine.begin() as conn:
        await Assets(conn).upsert_many(
            [
                Asset(
                    symbol="BIG",
                    name="Big",
                    kind=AssetKind.STOCK,
                    last_price=D(1),
                    previous_close=D(1),
                    updated_at=T0,
                )
            ]
        )
    await service.refresh_closes()
    world.quote("BIG", 1e19)
    world.quote("ACME", 104.0)
    world.now += 86_400
    service.flush()
    await service.refresh_closes()  # raised ValueError, storing nothing
    async with world.engine.connect() as conn:
        assert (await Assets(conn).get("ACME")).previous_close == 104
        assert (await Assets(conn).get("BIG")).previous_close == 1
    assert service.closes.get("BIG") == D("1e19")
    assert service.closes.unstored() == {}
    await service.refresh_closes()
    assert service.closes.get("BIG") == D("1e19")  # the table's older close is not taken


async def test_the_tap_revalues_on_published_prices_and_ignores_the_rest(world: World) -> None:
    service = world.service
    portfolio = await service.create_portfolio(world.user_id, "main")
    await service.record_transaction(portfolio.id, "AAPL", Side.BUY, D(10), D(100))
    sequencer = Sequencer("E")
    hub = Hub(sequencer=sequencer)
    publisher = LocalPublisher(sequencer, hub, Faults(), clock=ManualClock(wall=0.0))
    publisher.tap(service.on_published, name="portfolios")
    service.flush()
    own = list(world.published)
    assert own
    world.published.clear()

    publisher.publish(own)  # the service's own updates, as the hub taps them: no price
    service.flush()
    assert world.published == []

    publisher.publish([Quote("AAPL", 101, 101, 1, 1, 101, 0, world.now, "test")])
    service.flush()
    [value] = world.taken(PortfolioValue)
    assert isinstance(value, PortfolioValue)
    assert value.market_value == D(1010)


async def test_the_per_user_streams_are_published_only_while_watched(world: World) -> None:
    service = world.service
    main = await service.create_portfolio(world.user_id, "main")
    await service.record_transaction(main.id, "AAPL", Side.BUY, D(10), D(100))
    world.published.clear()
    world.quote("AAPL", 101.0)
    service.flush()
    await service.record_transaction(main.id, "AAPL", Side.BUY, D(1), D(101))
    assert world.taken(UserPnl) == []  # nobody watches: not even computed
    assert world.taken(UserPositions) == []

    hub = Hub()
    service.follow(hub)
    user = str(world.user_id)
    hub.subscribe(Watcher("stomp"), Topic(Channel.USER_POSITIONS, user))
    hub.subscribe(Watcher("stomp"), Topic(Channel.USER_PNL, user))
    # a portfolio created after the subscription is the same user's topic
    later = await service.create_portfolio(world.user_id, "later")
    world.now += 60
    await service.record_transaction(later.id, "MSFT", Side.BUY, D(2), D(400))
    [positions] = world.taken(UserPositions)
    assert isinstance(positions, UserPositions)
    assert positions.owner_id == world.user_id
    [state] = positions.positions
    assert (state.portfolio_id, state.symbol, state.quantity, state.cost_basis) == (
        later.id,
        "MSFT",
        2,
        800,
    )
    assert state.created_at == state.updated_at == world.now
    world.quote("AAPL", 102.0)
    world.quote("AAPL", 103.0)  # twice within one interval: once, at its latest
    service.flush()
    [pnl] = world.taken(UserPnl)
    assert isinstance(pnl, UserPnl)
    # MSFT changed by its transaction (cost), AAPL by its price
    assert [(p.portfolio_id, p.symbol) for p in pnl.positions] == [
        (main.id, "AAPL"),
        (later.id, "MSFT"),
    ]
    assert pnl.positions[0].unrealized_pnl == 11 * 103 - 1101
    service.flush()
    assert world.taken(UserPnl) == []  # nothing moved since

    # the snapshots: every open position of every portfolio of the user
    snapshot = service.user_positions(world.user_id)
    assert [(p.portfolio_id, p.symbol) for p in snapshot.positions] == [
        (main.id, "AAPL"),
        (later.id, "MSFT"),
    ]
    assert [(p.portfolio_id, p.symbol) for p in service.user_pnl(world.user_id).positions] == [
        (main.id, "AAPL"),
        (later.id, "MSFT"),
    ]
    assert service.user_positions(world.user_id + 999).positions == ()
