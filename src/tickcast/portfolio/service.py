"""PortfolioService: live portfolio values and asset updates, and the transactions that
change them.

Rules: this is the portfolio side's I/O (the database, a timer, the hub); every number
comes from the pure ``book.PortfolioBook`` and ``assets.AssetBoard``. On start it
migrates the database and loads every portfolio's holdings and every asset's previous
close into memory; after that the hot path (``on_market``, called with each batch of
market events) touches no database and no table scan: a price change finds its
portfolios through the book's symbol index. Every ``interval_s`` the changed assets and
portfolios are published (conflated: one update per asset or portfolio per interval).

A transaction is recorded in one database transaction (the position row locked,
``apply_trade`` applied, the position and the transaction written); the committed
position then replaces the book's holding (nothing can fail after the commit), and it is
published as a PositionUpdate and a fresh PortfolioValue. One node owns a portfolio's
writes: nodes sharing a database do not yet tell each other (that is the bus's job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from tickcast.model.market import MarketEvent, Quote, Trade
from tickcast.model.portfolio import AssetUpdate, PortfolioValue, PositionUpdate
from tickcast.model.topic import Event
from tickcast.portfolio.assets import AssetBoard
from tickcast.portfolio.book import PortfolioBook
from tickcast.portfolio.valuation import Holding, Side, apply_trade, price_to_decimal
from tickcast.storage import migrate
from tickcast.storage.records import Asset, AssetKind, Portfolio, Position, Transaction
from tickcast.storage.records import Side as StoredSide
from tickcast.storage.repositories import Assets, Portfolios, Positions, Transactions

log = logging.getLogger("tickcast.portfolio")


class PortfolioService:
    """Portfolios and assets, live.

    Args:
        engine: the database (migrated on ``start``).
        publish: the hub's sink for portfolio, position and asset updates.
        interval_s: how often changed assets and portfolios are published.
        clock: wall clock, epoch seconds.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        publish: Callable[[Sequence[Event]], None],
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.publish = publish
        self.interval_s = interval_s
        self.clock = clock
        self.book = PortfolioBook()
        self.assets = AssetBoard()
        self.known_assets: set[str] = set()
        self._portfolios: dict[int, Portfolio] = {}
        self._dirty: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    # -- life cycle

    async def start(self) -> None:
        await migrate.upgrade(self.engine)
        async with self.engine.connect() as conn:
            for asset in await Assets(conn).list_all():
                self.known_assets.add(asset.symbol)
                if asset.previous_close is not None:
                    self.assets.set_previous_close(asset.symbol, float(asset.previous_close))
                    self.book.set_previous_close(asset.symbol, asset.previous_close)
                if asset.last_price is not None:
                    self.book.on_price(asset.symbol, asset.last_price)
            for entry in await Portfolios(conn).list_all_with_positions():
                self._portfolios[entry.portfolio.id] = entry.portfolio
                self.book.load(entry.portfolio.id, [_holding(p) for p in entry.positions])
        log.info(
            "portfolios loaded",
            extra={"portfolios": len(self._portfolios), "assets": len(self.known_assets)},
        )
        self._task = asyncio.create_task(self._tick(), name="portfolio-ticker")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.flush()
            except Exception:  # a bug here must not stop the ticker for good
                log.exception("portfolio publication failed")

    # -- the hot path

    def on_market(self, events: Sequence[MarketEvent]) -> None:
        """Fold a batch of market events in; remember which portfolios changed."""
        self.assets.apply(events)
        book = self.book
        on_price = book.on_price
        dirty = self._dirty
        for event in events:
            if type(event) is Quote or type(event) is Trade:
                symbol = event.symbol
                if book.previous_close(symbol) is None:
                    # no close on record: the day's reference is the asset board's (the
                    # first price seen today), so daily changes agree on every channel
                    reference = self.assets.previous_close(symbol)
                    if reference:
                        dirty |= book.set_previous_close(symbol, price_to_decimal(reference))
                # O(1) for a symbol nobody holds; keeps every price current for new buys
                changed = on_price(symbol, price_to_decimal(event.price))
                if changed:
                    dirty |= changed

    def flush(self) -> None:
        """Publish the assets and portfolios that changed since the last flush."""
        now = self.clock()
        updates: list[Event] = list(self.assets.take_updates(now))
        dirty, self._dirty = self._dirty, set()
        updates.extend(self.value(pid, now) for pid in sorted(dirty) if pid in self._portfolios)
        if updates:
            self.publish(updates)

    # -- queries

    def owner_of(self, portfolio_id: int) -> int | None:
        portfolio = self._portfolios.get(portfolio_id)
        return portfolio.owner_id if portfolio is not None else None

    def portfolios_of(self, owner_id: int) -> list[Portfolio]:
        return [p for p in self._portfolios.values() if p.owner_id == owner_id]

    def value(self, portfolio_id: int, now: float | None = None) -> PortfolioValue:
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
            self.clock() if now is None else now,
        )

    def asset_update(self, symbol: str) -> AssetUpdate | None:
        return self.assets.update(symbol, self.clock())

    def force_price_update(self, symbols: Iterable[str]) -> list[AssetUpdate]:
        """Publish the current asset updates of ``symbols`` now (Front 2's HTTP command)."""
        now = self.clock()
        updates = [u for u in (self.assets.update(s, now) for s in symbols) if u is not None]
        if updates:
            self.publish(list(updates))
        return updates

    # -- commands

    async def create_portfolio(self, owner_id: int, name: str) -> Portfolio:
        async with self.engine.begin() as conn:
            portfolio = await Portfolios(conn).create(owner_id, name)
        self._portfolios[portfolio.id] = portfolio
        self.book.load(portfolio.id, [])
        return portfolio

    async def record_transaction(
        self,
        portfolio_id: int,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        executed_at: datetime | None = None,
    ) -> tuple[Transaction, Position]:
        """Record a buy or sell; raises valuation.InsufficientQuantity, storage.NotFound."""
        at = executed_at or datetime.now(UTC)
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
            current = await Positions(conn).get_for_update(portfolio_id, symbol)
            holding = _holding(current) if current is not None else Holding(symbol)
            after = apply_trade(holding, side, quantity, price)
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
        self.known_assets.add(symbol)
        # The database is the truth: the book takes the committed holding (never
        # recomputes it, which could disagree and fail after the commit).
        holdings = [h for h in self.book.holdings(portfolio_id) if h.symbol != symbol]
        self.book.load(portfolio_id, [*holdings, _holding(position)])
        if self.book.price(symbol) is None:
            last = self.assets.price(symbol)
            self.book.on_price(symbol, price_to_decimal(last) if last else price)
        now = self.clock()
        portfolio = self._portfolios[portfolio_id]
        self.publish(
            [
                PositionUpdate(
                    portfolio_id,
                    portfolio.owner_id,
                    symbol,
                    position.quantity,
                    position.cost_basis,
                    position.realized_pnl,
                    position.created_at.timestamp(),
                    position.updated_at.timestamp(),
                    now,
                ),
                self.value(portfolio_id, now),
            ]
        )
        return transaction, position


def _holding(position: Position) -> Holding:
    return Holding(position.symbol, position.quantity, position.cost_basis, position.realized_pnl)
