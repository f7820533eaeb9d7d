"""PortfolioService: live portfolio values, positions and asset updates, and the
transactions and cash movements that change them.

Rules: this is the portfolio side's I/O (the database, a timer, the hub); every number
comes from the pure ``book.PortfolioBook``, ``cash`` and ``assets.AssetBoard``. On start
it migrates the database and loads every portfolio's holdings and cash and every asset's
previous close into memory; after that the hot path (``on_published``, the tap the
composition root registers on the publisher, which folds each published batch's quotes
and trades in with ``on_market``) touches no database and no table scan: a price change
finds its portfolios through the book's symbol index. What it publishes goes through the
same ``Publisher`` as the market data. Every ``interval_s`` the changed assets and
portfolios are published (conflated: one update per asset or portfolio per interval),
and so are the live positions of the changed portfolios that someone watches
(``follow``: the hub's first- and last-subscriber hooks on the live positions channel
say which, so unwatched positions cost nothing). The per-user streams (every portfolio
of one owner: ``user_positions.<user id>`` after each transaction,
``user_pnl.<user id>`` with the unrealized P&L of the positions whose price moved,
conflated per position within the interval) follow the same hooks
(``userfeeds.UserFeeds``): an unwatched user costs nothing.

Previous closes have one owner, ``closes.Closes`` (exact): loaded from the asset table
at start and every ``closes_refresh_s`` (30 s), and given the closes the gateway observes
when a UTC day turns, which the service writes back to the table at the next refresh.
The asset board (``assets.py``) decides each symbol's daily-change reference from those
closes (the previous close, else the first price seen today) and tells which symbols'
changed (a first price, a new UTC day, a new close); the book is given the new one,
exactly the owner's close when the reference is a close. Readers that answer for "now"
(the HTTP API) call ``roll(now)`` first, so that they and the published updates never
disagree on which day it is.

A transaction is recorded in one database transaction (the portfolio and position rows
locked, ``apply_trade`` and ``cash.settle`` applied, the position, the transaction, any
automatic deposit and the cash written); a deposit or a withdrawal likewise (the
portfolio row locked, the cash and the ledger written). The committed state then
replaces the book's (nothing can fail after the commit): the portfolio row with its
version (one more per write) and all its positions, read in the same transaction, so
that of two writes that reach the book in the other order than they committed, the
older is ignored. Then it is published: a PositionUpdate after a trade, a fresh
PortfolioValue, and the live positions if watched.
One node owns a portfolio's writes: nodes sharing a database do not yet tell each other
(that is the bus's job).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from tickcast.hub.publisher import Publisher, listens_to
from tickcast.model.envelope import Envelope
from tickcast.model.market import MarketEvent, Quote, Trade
from tickcast.model.portfolio import (
    AssetUpdate,
    LivePosition,
    PortfolioValue,
    PositionPnl,
    PositionState,
    PositionsUpdate,
    PositionUpdate,
    UserPnl,
    UserPositions,
)
from tickcast.model.topic import Channel, Event, Topic
from tickcast.observability.faults import Faults
from tickcast.portfolio import cash as cash_rules
from tickcast.portfolio.assets import AssetBoard, ReferenceKind
from tickcast.portfolio.book import PortfolioBook
from tickcast.portfolio.cash import Cash
from tickcast.portfolio.closes import Closes
from tickcast.portfolio.userfeeds import UserFeeds
from tickcast.portfolio.valuation import Holding, Side, apply_trade, price_to_decimal
from tickcast.storage import migrate
from tickcast.storage.errors import NotFound
from tickcast.storage.ledger import CashTransactions
from tickcast.storage.records import (
    Asset,
    AssetKind,
    CashKind,
    CashTransaction,
    Portfolio,
    Position,
    Transaction,
)
from tickcast.storage.records import Side as StoredSide
from tickcast.storage.repositories import (
    Assets,
    Portfolios,
    Positions,
    Transactions,
)
from tickcast.storage.tables import to_amount

log = logging.getLogger("tickcast.portfolio")

#: How often the previous closes are written to and read from the asset table.
CLOSES_REFRESH_S = 30.0


class Recorded(NamedTuple):
    """A recorded trade: the transaction, the position it leaves, and the automatic
    deposit it needed (None when the cash sufficed)."""

    transaction: Transaction
    position: Position
    deposit: CashTransaction | None


class CashMoved(NamedTuple):
    """A recorded deposit or withdrawal and the cash it leaves."""

    entry: CashTransaction
    cash: Cash


class TopicHooks(Protocol):
    """What ``follow`` needs of the hub: its first- and last-subscriber hooks."""

    def on_first(self, channel: str, hook: Callable[[Topic], None]) -> Callable[[], None]: ...

    def on_last(self, channel: str, hook: Callable[[Topic], None]) -> Callable[[], None]: ...


class PortfolioService:
    """Portfolios and assets, live.

    Args:
        engine: the database (migrated on ``start``).
        publisher: where portfolio, position and asset updates are published.
        interval_s: how often changed assets and portfolios are published.
        clock: wall clock, epoch seconds.
        closes_refresh_s: how often observed closes are stored and the asset table's
            closes read (``refresh_closes``).
        faults: where a failed publication of the ticker is reported (``"service"``).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        closes_refresh_s: float = CLOSES_REFRESH_S,
        faults: Faults | None = None,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.interval_s = interval_s
        self.clock = clock
        self.closes_refresh_s = closes_refresh_s
        self.faults = Faults() if faults is None else faults
        self.book = PortfolioBook()
        self.closes = Closes()
        self.assets = AssetBoard()
        self.known_assets: set[str] = set()
        self._portfolios: dict[int, Portfolio] = {}
        # portfolio -> symbol -> (created_at, updated_at) of its positions, epoch s
        self._stamps: dict[int, dict[str, tuple[float, float]]] = {}
        # portfolios whose live positions someone watches (``follow``)
        self._watched: set[int] = set()
        # the per-user streams someone watches, and their changed positions
        self.users = UserFeeds()
        self._dirty: set[int] = set()
        # told when a portfolio opts in to the public leaderboard or out (``on_public``)
        self._public_listeners: list[Callable[[Portfolio], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        # in a cluster: only the leader publishes the periodic updates (``primary``),
        # and a committed write is told to the other nodes (``on_committed``), which
        # ``reload`` the portfolio from the database
        self.primary: Callable[[], bool] = lambda: True
        self.on_committed: Callable[[int], None] | None = None
        # portfolios another node wrote, not reloaded yet: not published meanwhile (the
        # book's value predates the write); ``everything``: all of them
        self._pending: set[int] = set()
        self._pending_all = False

    # -- life cycle

    async def start(self) -> None:
        await migrate.upgrade(self.engine)
        async with self.engine.connect() as conn:
            stored = await Assets(conn).list_all()
            self._take_closes({a.symbol: a.previous_close for a in stored})
            for asset in stored:
                self.known_assets.add(asset.symbol)
                if asset.last_price is not None:
                    self.book.on_price(asset.symbol, asset.last_price)
            for entry in await Portfolios(conn).list_all_with_positions():
                portfolio = entry.portfolio
                self._portfolios[portfolio.id] = portfolio
                self._take_state(portfolio, entry.positions)
        log.info(
            "portfolios loaded",
            extra={"portfolios": len(self._portfolios), "assets": len(self.known_assets)},
        )
        self._task = asyncio.create_task(self._tick(), name="portfolio-ticker")
        self._refresher = asyncio.create_task(self._refresh(), name="portfolio-closes")

    async def aclose(self) -> None:
        for task in (self._task, self._refresher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._refresher = None

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.closes_refresh_s)
            try:
                await self.refresh_closes()
            except Exception:  # a database outage must not stop the refresher for good
                log.exception("refreshing the previous closes failed")

    async def refresh_closes(self) -> None:
        """Store the closes observed since the last refresh, then take the asset table's
        (a close written there by ``tickcast update-prices --historical`` replaces the
        one in memory)."""
        self.roll(self.clock())
        unstored = self.closes.unstored()
        if unstored:
            fits = {s: close for s, close in unstored.items() if _fits(close)}
            async with self.engine.begin() as conn:
                await Assets(conn).set_previous_closes(fits)
            # symbols the table lacks, and closes too large for it, stay in memory only
            self.closes.stored(unstored, kept=unstored.keys() - fits.keys())
        async with self.engine.connect() as conn:
            stored = await Assets(conn).list_all()
        self.known_assets.update(a.symbol for a in stored)
        self._take_closes({a.symbol: a.previous_close for a in stored})

    def _take_closes(self, stored: dict[str, Decimal | None]) -> None:
        """Give the board and the book the table's closes that changed."""
        changed = self.closes.load(stored)
        for symbol in changed:
            close = self.closes.get(symbol)
            if close is not None:
                self.assets.set_previous_close(symbol, float(close))
        self._new_references(changed)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not self.primary():
                continue
            try:
                self.flush()
            except Exception as exc:  # a bug here must not stop the ticker for good
                self.faults.report("service", exc, service="portfolio publication")

    # -- the hot path

    @listens_to(Quote, Trade)
    def on_published(self, envelopes: Sequence[Envelope]) -> None:
        """The tap: fold in the quotes and trades of a published batch (the rest, its own
        updates and feed statuses included, change no price)."""
        prices: list[MarketEvent] = []
        for envelope in envelopes:
            payload = envelope.payload
            if type(payload) is Quote or type(payload) is Trade:
                prices.append(payload)
        if prices:
            self._fold(prices)

    def on_market(self, events: Sequence[MarketEvent]) -> None:
        """Fold a batch of market events in; remember which portfolios changed.

        The book takes the batch's prices at once (``PortfolioBook.on_prices``: one
        revaluation per symbol that moved, the same totals as one per event)."""
        prices = [e for e in events if type(e) is Quote or type(e) is Trade]
        if prices:
            self._fold(prices)

    def _fold(self, prices: Sequence[MarketEvent]) -> None:
        """``on_market`` for a batch of quotes and trades only."""
        turned = self.assets.apply(prices)
        if turned:
            self._new_references(turned)
        changed: dict[str, set[int]] = {}
        try:
            self.book.on_prices(prices, changed)  # type: ignore[arg-type]
        finally:  # a bad price raises after what came before it was folded in
            self._fold_changed(changed)

    def _fold_changed(self, changed: dict[str, set[int]]) -> None:
        if not changed:
            return
        dirty = self._dirty
        users = self.users
        for symbol, portfolios in changed.items():
            dirty |= portfolios
            if users.any_pnl:
                users.moved(symbol, portfolios, self.owner_of)

    def _new_references(self, symbols: Iterable[str]) -> None:
        """Give the book the board's new daily-change reference of ``symbols``, so that
        a portfolio's daily change and an asset's change agree on every channel. A close
        the board made (a new day) is the owner's first (``Closes.observe``)."""
        for symbol in symbols:
            observed = self.assets.observed_close(symbol)
            if observed is not None:
                self.closes.observe(symbol, price_to_decimal(observed))
            reference = self.assets.reference(symbol)
            if reference is None:
                continue
            price = self.closes.get(symbol)
            if reference.kind is not ReferenceKind.PREVIOUS_CLOSE or price is None:
                price = price_to_decimal(reference.price)
            changed = self.book.set_previous_close(symbol, price)
            if changed:
                self._dirty |= changed
                # an unpriced position is valued at its previous close
                self.users.moved(symbol, changed, self.owner_of)

    def roll(self, now: float) -> None:
        """Start the UTC day of ``now`` for every symbol last priced before it (the
        references change: the last price seen closes the day)."""
        rolled = self.assets.roll(now)
        if rolled:
            self._new_references(rolled)

    def reference(self, symbol: str) -> tuple[Decimal, ReferenceKind] | None:
        """What ``symbol``'s daily change is measured against, exactly as the positions
        are valued: the price and its kind; None when neither is known. Call ``roll``
        first to answer for a given instant."""
        found = self.assets.reference(symbol)
        price = self.book.previous_close(symbol)
        if found is None or price is None:
            return None
        return price, found.kind

    def flush(self) -> None:
        """Publish the assets, portfolios and watched live positions that changed since
        the last flush (a new UTC day changes them all)."""
        now = self.clock()
        self.roll(now)
        updates: list[Event] = list(self.assets.take_updates(now))
        dirty, self._dirty = self._dirty, set()
        pending = self._pending
        for pid in sorted(dirty):
            if self._pending_all or pid in pending:
                self._dirty.add(pid)  # published once reloaded
                continue
            if pid in self._portfolios:
                updates.append(self.value(pid, now))
                if pid in self._watched:
                    updates.append(self.positions(pid, now))
        updates.extend(self.users.take_pnl(now, self._unrealized))
        if updates:
            self.publisher.publish(updates)

    def _unrealized(self, portfolio_id: int, symbol: str) -> Decimal | None:
        if portfolio_id not in self._portfolios:
            return None
        try:
            return self.book.position(portfolio_id, symbol).unrealized_pnl
        except KeyError:
            return None

    # -- queries

    def owner_of(self, portfolio_id: int) -> int | None:
        portfolio = self._portfolios.get(portfolio_id)
        return portfolio.owner_id if portfolio is not None else None

    def portfolios_of(self, owner_id: int) -> list[Portfolio]:
        return [p for p in self._portfolios.values() if p.owner_id == owner_id]

    def value(self, portfolio_id: int, now: float | None = None) -> PortfolioValue:
        """A portfolio's live value. Raises KeyError for an unknown portfolio."""
        portfolio = self._portfolios[portfolio_id]
        v = self.book.valuation(portfolio_id, positions=False)
        return PortfolioValue(
            portfolio_id,
            portfolio.name,
            portfolio.owner_id,
            v.total_value,
            v.cost_basis,
            v.daily_change,
            v.daily_change_percent,
            v.unrealized_pnl,
            v.realized_pnl,
            v.market_value,
            v.cash,
            v.net_deposits,
            self.clock() if now is None else now,
        )

    def positions(self, portfolio_id: int, now: float | None = None) -> PositionsUpdate:
        """Every open position of a portfolio, valued live, by symbol. O(positions).

        Raises:
            KeyError: an unknown portfolio.
        """
        portfolio = self._portfolios[portfolio_id]
        stamps = self._stamps.get(portfolio_id, {})
        live = [
            LivePosition(
                p.symbol,
                p.quantity,
                p.cost_basis,
                p.realized_pnl,
                p.price,
                p.market_value,
                p.unrealized_pnl,
                p.daily_change,
                *stamps.get(p.symbol, (0.0, 0.0)),
            )
            for p in self.book.valuation(portfolio_id).positions
            if p.quantity
        ]
        live.sort(key=lambda p: p.symbol)
        ts = self.clock() if now is None else now
        return PositionsUpdate(portfolio_id, portfolio.owner_id, tuple(live), ts)

    def follow(self, hooks: TopicHooks) -> None:
        """Publish a portfolio's live positions while its topic has a subscriber: from
        the first subscriber (``watch``) to the last one's leaving (``unwatch``)."""
        hooks.on_first(Channel.LIVE_POSITIONS, self.watch)
        hooks.on_last(Channel.LIVE_POSITIONS, self.unwatch)
        for channel in (Channel.USER_POSITIONS, Channel.USER_PNL):
            hooks.on_first(channel, self.users.watch)
            hooks.on_last(channel, self.users.unwatch)

    def watch(self, topic: Topic) -> None:
        """``live_positions.<id>`` got its first subscriber: publish its positions."""
        self._watched.add(int(topic.key))

    def unwatch(self, topic: Topic) -> None:
        """``live_positions.<id>`` lost its last subscriber: no longer computed."""
        self._watched.discard(int(topic.key))

    def user_positions(self, owner_id: int, now: float | None = None) -> UserPositions:
        """Every open position of every portfolio of ``owner_id`` (by portfolio, then
        symbol): the per-user stream's snapshot; empty for an owner who holds none.
        O(their positions)."""
        items: list[PositionState] = []
        for portfolio in sorted(self.portfolios_of(owner_id), key=lambda p: p.id):
            stamps = self._stamps.get(portfolio.id, {})
            for h in sorted(self.book.holdings(portfolio.id), key=lambda h: h.symbol):
                if h.quantity:
                    items.append(_state(portfolio.id, h, stamps))
        ts = self.clock() if now is None else now
        return UserPositions(owner_id, tuple(items), ts)

    def user_pnl(self, owner_id: int, now: float | None = None) -> UserPnl:
        """The unrealized P&L of every open position of ``owner_id``'s portfolios: the
        per-user P&L stream's snapshot."""
        items: list[PositionPnl] = []
        for portfolio in sorted(self.portfolios_of(owner_id), key=lambda p: p.id):
            valued = self.book.valuation(portfolio.id).positions
            for p in sorted(valued, key=lambda p: p.symbol):
                if p.quantity:
                    items.append(PositionPnl(portfolio.id, p.symbol, p.unrealized_pnl))
        ts = self.clock() if now is None else now
        return UserPnl(owner_id, tuple(items), ts)

    def asset_update(self, symbol: str) -> AssetUpdate | None:
        return self.assets.update(symbol, self.clock())

    def force_price_update(self, symbols: Iterable[str]) -> list[AssetUpdate]:
        """Publish the current asset updates of ``symbols`` now (Front 2's HTTP command)."""
        now = self.clock()
        updates = [u for u in (self.assets.update(s, now) for s in symbols) if u is not None]
        if updates:
            self.publisher.publish(list(updates))
        return updates

    # -- commands

    async def create_portfolio(
        self, owner_id: int, name: str, *, public: bool = False
    ) -> Portfolio:
        """A new, empty portfolio; ``public``: on the public leaderboard from the start."""
        async with self.engine.begin() as conn:
            portfolio = await Portfolios(conn).create(owner_id, name, public=public)
        self._portfolios[portfolio.id] = portfolio
        self._stamps[portfolio.id] = {}
        self.book.load(portfolio.id, [], _cash(portfolio), version=portfolio.version)
        self._committed(portfolio.id)
        if public:
            await self._tell_public(portfolio)
        return portfolio

    # -- the public leaderboard's opt-in

    def on_public(self, listener: Callable[[Portfolio], Awaitable[None]]) -> None:
        """Call ``listener(portfolio)`` (awaited) after a portfolio opted in to the public
        leaderboard or out (``portfolio.public`` says which), created public included."""
        self._public_listeners.append(listener)

    def public_portfolios(self) -> list[Portfolio]:
        """The portfolios on the public leaderboard, by id."""
        return sorted((p for p in self._portfolios.values() if p.public), key=lambda p: p.id)

    async def set_public(self, portfolio_id: int, public: bool) -> Portfolio:
        """Opt the portfolio in to the public leaderboard, or out; the listeners are
        told once it is stored (not when the flag is unchanged). Raises
        storage.NotFound."""
        async with self.engine.begin() as conn:
            written = await Portfolios(conn).set_public(portfolio_id, public)
        self._committed(portfolio_id)
        held = self._portfolios.get(portfolio_id)
        if held is None:
            self._portfolios[portfolio_id] = written
            return written
        changed = held.public != public
        # the row as written, unless a later write (a greater version) reached us first
        newer = written if written.version >= held.version else None
        held = newer or dataclasses.replace(held, public=public)
        self._portfolios[portfolio_id] = held
        if changed:
            await self._tell_public(held)
        return held

    async def _tell_public(self, portfolio: Portfolio) -> None:
        for listener in self._public_listeners:
            try:
                await listener(portfolio)
            except Exception as exc:  # the flag is stored: a listener's bug is its own
                self.faults.report("service", exc, service="public listener")

    async def deposit(
        self, portfolio_id: int, amount: Decimal, executed_at: datetime | None = None
    ) -> CashMoved:
        """Deposit cash. Raises storage.NotFound; ValueError for an amount that is not
        > 0 or a balance beyond what storage holds (``cash.deposit``)."""
        return await self._move_cash(portfolio_id, CashKind.DEPOSIT, amount, executed_at)

    async def withdraw(
        self, portfolio_id: int, amount: Decimal, executed_at: datetime | None = None
    ) -> CashMoved:
        """Withdraw cash. Raises cash.InsufficientCash (more than the balance),
        storage.NotFound, ValueError (``cash.withdraw``)."""
        return await self._move_cash(portfolio_id, CashKind.WITHDRAWAL, amount, executed_at)

    async def _move_cash(
        self, portfolio_id: int, kind: CashKind, amount: Decimal, executed_at: datetime | None
    ) -> CashMoved:
        at = executed_at or self._now()
        move = cash_rules.deposit if kind is CashKind.DEPOSIT else cash_rules.withdraw
        async with self.engine.begin() as conn:
            locked = await Portfolios(conn).get_for_update(portfolio_id)
            after = move(_cash(locked), amount)
            written = await Portfolios(conn).set_cash(
                portfolio_id, cash=after.balance, net_deposits=after.net_deposits
            )
            entry = await CashTransactions(conn).insert(
                portfolio_id, kind=kind, amount=amount, executed_at=at
            )
            positions = await Positions(conn).list_for_portfolio(portfolio_id)
        self._take_state(written, positions)
        self._committed(portfolio_id)
        self.publisher.publish([self.value(portfolio_id)])
        return CashMoved(entry, _cash(written))

    async def record_transaction(
        self,
        portfolio_id: int,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        executed_at: datetime | None = None,
    ) -> Recorded:
        """Record a buy or sell and settle its cash (a buy short of cash first records an
        automatic deposit, see ``cash.py``); raises valuation.InsufficientQuantity,
        storage.NotFound, ValueError (an amount storage cannot hold)."""
        at = executed_at or self._now()
        async with self.engine.begin() as conn:
            if symbol not in self.known_assets:  # first trade of a symbol of the universe
                kind = AssetKind.CRYPTO if "/" in symbol else AssetKind.STOCK
                asset = Asset(
                    symbol=symbol,
                    name=symbol,
                    kind=kind,
                    last_price=price,
                    previous_close=None,
                    updated_at=at,
                )
                await Assets(conn).upsert_many([asset])
            locked = await Portfolios(conn).get_for_update(portfolio_id)
            current = await Positions(conn).get_for_update(portfolio_id, symbol)
            holding = _holding(current) if current is not None else Holding(symbol)
            after = apply_trade(holding, side, quantity, price)
            settled = cash_rules.settle(_cash(locked), side, quantity, price)
            position = await Positions(conn).upsert(
                portfolio_id,
                symbol,
                quantity=after.quantity,
                cost_basis=after.cost_basis,
                realized_pnl=after.realized_pnl,
                at=at,
            )
            transaction = await Transactions(conn).insert(
                portfolio_id,
                symbol,
                side=StoredSide(side.value),
                quantity=quantity,
                price=price,
                executed_at=at,
            )
            deposit = None
            if settled.deposit:
                deposit = await CashTransactions(conn).insert(
                    portfolio_id,
                    kind=CashKind.DEPOSIT,
                    amount=settled.deposit,
                    executed_at=at,
                    transaction_id=transaction.id,
                )
            written = await Portfolios(conn).set_cash(
                portfolio_id,
                cash=settled.cash.balance,
                net_deposits=settled.cash.net_deposits,
            )
            positions = await Positions(conn).list_for_portfolio(portfolio_id)
        self.known_assets.add(symbol)
        self._take_state(written, positions)
        self._committed(portfolio_id)
        if self.book.price(symbol) is None:
            last = self.assets.price(symbol)
            self.book.on_price(symbol, price_to_decimal(last) if last else price)
        self._publish_trade(portfolio_id, symbol)
        return Recorded(transaction, position, deposit)

    def _committed(self, portfolio_id: int) -> None:
        if self.on_committed is not None:
            try:
                self.on_committed(portfolio_id)
            except Exception as exc:  # the write is stored: telling others is best effort
                self.faults.report("service", exc, service="portfolio committed")

    def hold(self, portfolio_ids: Iterable[int] | None) -> None:
        """Another node wrote these portfolios (None: maybe any): publish none of them
        until ``reload`` has read them back (their value in the book predates the
        write, and the writer's own update is newer)."""
        if portfolio_ids is None:
            self._pending_all = True
        else:
            self._pending.update(portfolio_ids)

    async def reload(self, portfolio_ids: Iterable[int] | None = None) -> None:
        """Another node committed writes to these portfolios (None: maybe to any, this
        node having missed what it was told): take their state from the database (a
        newer one than the book's only, by ``version``), the public flag included (the
        leaderboard is told of a change). Reloads must not run concurrently (two reads
        of one portfolio finishing in the other order): the caller runs one at a time.
        What ``hold`` held is published again afterwards, reloaded or not (a failed
        read must not freeze a portfolio)."""
        ids = None if portfolio_ids is None else list(portfolio_ids)
        try:
            await self._reload(ids)
        finally:
            if ids is None:
                self._pending_all = False
                self._pending.clear()
            else:
                self._pending.difference_update(ids)

    async def _reload(self, portfolio_ids: list[int] | None) -> None:
        async with self.engine.connect() as conn:
            entries: list[tuple[Portfolio, Sequence[Position]]]
            if portfolio_ids is None:
                entries = [
                    (e.portfolio, e.positions)
                    for e in await Portfolios(conn).list_all_with_positions()
                ]
            else:
                entries = []
                for portfolio_id in portfolio_ids:
                    try:
                        portfolio = await Portfolios(conn).get(portfolio_id)
                    except NotFound:
                        continue
                    rows = await Positions(conn).list_for_portfolio(portfolio_id)
                    entries.append((portfolio, rows))
        for portfolio, positions in entries:
            held = self._portfolios.get(portfolio.id)
            if held is not None and held.version > portfolio.version:
                continue
            self._portfolios[portfolio.id] = portfolio
            self._stamps.setdefault(portfolio.id, {})
            self._take_state(portfolio, positions)
            was_public = held is not None and held.public
            if was_public != portfolio.public:
                await self._tell_public(portfolio)

    def _take_state(self, portfolio: Portfolio, positions: Sequence[Position]) -> None:
        """The committed state of a portfolio replaces the book's, unless the book holds a
        newer one (a later write that reached it first: ``portfolios.version``). The
        database is the truth: the book never recomputes what was committed (that could
        disagree, and fail after the commit)."""
        holdings = [_holding(p) for p in positions]
        if self.book.load(portfolio.id, holdings, _cash(portfolio), version=portfolio.version):
            self._stamps[portfolio.id] = {p.symbol: _stamp(p) for p in positions}

    def _publish_trade(self, portfolio_id: int, symbol: str) -> None:
        """Publish the position in ``symbol`` as the book holds it: the trade's own state,
        or a newer one when a later write reached the book first."""
        now = self.clock()
        portfolio = self._portfolios[portfolio_id]
        valued = self.book.position(portfolio_id, symbol)
        created_at, updated_at = self._stamps[portfolio_id][symbol]
        updates: list[Event] = [
            PositionUpdate(
                portfolio_id,
                portfolio.owner_id,
                symbol,
                valued.quantity,
                valued.cost_basis,
                valued.realized_pnl,
                created_at,
                updated_at,
                valued.price,
                valued.market_value,
                valued.unrealized_pnl,
                now,
            ),
            self.value(portfolio_id, now),
        ]
        if portfolio_id in self._watched:
            updates.append(self.positions(portfolio_id, now))
        owner = portfolio.owner_id
        if self.users.watches_positions(owner):
            holding = self.book.holding(portfolio_id, symbol)
            if holding is not None:
                state = _state(portfolio_id, holding, self._stamps[portfolio_id])
                updates.append(UserPositions(owner, (state,), now))
        self.users.traded(owner, portfolio_id, symbol)
        self.publisher.publish(updates)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)


def _fits(amount: Decimal) -> bool:
    """Whether the asset table can hold ``amount`` (NUMERIC(28, 10))."""
    try:
        to_amount(amount)
    except ValueError:
        return False
    return True


def _holding(position: Position) -> Holding:
    return Holding(position.symbol, position.quantity, position.cost_basis, position.realized_pnl)


def _cash(portfolio: Portfolio) -> Cash:
    return Cash(portfolio.cash, portfolio.net_deposits)


def _state(
    portfolio_id: int, holding: Holding, stamps: dict[str, tuple[float, float]]
) -> PositionState:
    created_at, updated_at = stamps.get(holding.symbol, (0.0, 0.0))
    return PositionState(
        portfolio_id,
        holding.symbol,
        holding.quantity,
        holding.cost_basis,
        holding.realized_pnl,
        created_at,
        updated_at,
    )


def _stamp(position: Position) -> tuple[float, float]:
    return position.created_at.timestamp(), position.updated_at.timestamp()
