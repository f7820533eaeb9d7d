"""Portfolio and asset updates: what the portfolio and asset services publish.

Rules: plain frozen value objects, like market.py. Money and quantities are Decimal
(exact, end to end from storage to the wire); ``ts`` and the ``*_at`` times are epoch
seconds UTC. Each type names the key of its topic: ``portfolio.<id>``,
``positions.<portfolio id>``, ``live_positions.<portfolio id>``, ``assets.<symbol>``,
and the per-user streams ``user_positions.<user id>`` and ``user_pnl.<user id>`` (every
portfolio of one owner on one topic, so that a portfolio created later is covered).
Field names are the model's; each front maps them to its wire's names in its codec.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec


class PortfolioValue(msgspec.Struct, frozen=True, gc=False):
    """A portfolio's live value (Front 2's portfolio_update), conflated per portfolio.

    Attributes:
        portfolio_id, name, owner_id: which portfolio, and whose (only the owner reads it).
        total_value: market_value + cash.
        cost_basis: what the holdings cost (average cost).
        daily_change, daily_change_percent: against the previous closes.
        unrealized_pnl: market_value - cost_basis; realized_pnl: from sells, ever.
        market_value: the holdings at the current prices.
        cash: the cash balance; net_deposits: deposits minus withdrawals, ever.
        ts: when it was computed.
    """

    portfolio_id: int
    name: str
    owner_id: int
    total_value: Decimal
    cost_basis: Decimal
    daily_change: Decimal
    daily_change_percent: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    market_value: Decimal
    cash: Decimal
    net_deposits: Decimal
    ts: float

    @property
    def key(self) -> str:
        return str(self.portfolio_id)


class PositionUpdate(msgspec.Struct, frozen=True, gc=False):
    """One holding after a transaction (Front 3's position object). Never conflated.

    Attributes:
        quantity: held now (0 after a full sell); cost_basis: its total cost;
        realized_pnl: realized on this symbol, ever; created_at, updated_at: epoch s.
        price: the market price it is valued at; None before the symbol's first price.
        market_value: quantity at that price; unrealized_pnl: market_value - cost_basis.
    """

    portfolio_id: int
    owner_id: int
    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal
    created_at: float
    updated_at: float
    price: Decimal | None
    market_value: Decimal
    unrealized_pnl: Decimal
    ts: float

    @property
    def key(self) -> str:
        return str(self.portfolio_id)


class LivePosition(msgspec.Struct, frozen=True, gc=False):
    """One open position valued at the current price.

    Attributes:
        symbol: the instrument.
        quantity: held (> 0); cost_basis: its total cost (Front 3's ``totalInvested``).
        realized_pnl: realized on this symbol by sells, ever.
        price: the market price used; None before the symbol's first price (then the
            position is valued at its previous close, or at its cost).
        market_value: what the quantity is worth now.
        unrealized_pnl: ``market_value - cost_basis``.
        daily_change: ``quantity * (price - the day's reference)``.
        created_at, updated_at: when the position was opened and last traded, epoch s.
    """

    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal
    price: Decimal | None
    market_value: Decimal
    unrealized_pnl: Decimal
    daily_change: Decimal
    created_at: float
    updated_at: float


class PositionsUpdate(msgspec.Struct, frozen=True, gc=False):
    """Every open position of one portfolio, valued live; conflated per portfolio.

    Each update carries the whole set, so the latest one is always complete: the hub
    conflates by topic (``live_positions.<portfolio id>``), and a newer update may
    replace an unsent one. A symbol absent from it is not held (its closing sale was a
    PositionUpdate).

    Attributes:
        portfolio_id, owner_id: which portfolio, and whose (only the owner reads it).
        positions: by symbol; empty when nothing is held.
        ts: when it was computed.
    """

    portfolio_id: int
    owner_id: int
    positions: tuple[LivePosition, ...]
    ts: float

    @property
    def key(self) -> str:
        return str(self.portfolio_id)


class AssetUpdate(msgspec.Struct, frozen=True, gc=False):
    """An asset's price and day statistics (Front 2's asset_update), conflated per symbol.

    Attributes:
        change, change_percent: against the previous close (0 when unknown).
        volume: traded today; high, low: today's range.
    """

    symbol: str
    price: float
    change: float
    change_percent: float
    volume: float
    high: float
    low: float
    ts: float
    source: str

    @property
    def key(self) -> str:
        return self.symbol


class PositionState(msgspec.Struct, frozen=True, gc=False):
    """One position's holding, as a per-user stream shows it (Front 3's position object).

    Attributes:
        portfolio_id, symbol: which position.
        quantity: held now (0 after a full sell); cost_basis: its total cost;
        realized_pnl: realized on this symbol by sells, ever.
        created_at, updated_at: when it was opened and last traded, epoch s.
    """

    portfolio_id: int
    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal
    created_at: float
    updated_at: float


class UserPositions(msgspec.Struct, frozen=True, gc=False):
    """Positions of one owner's portfolios: the one a transaction changed, or every open
    one (a snapshot). Never conflated: each is news.

    Attributes:
        owner_id: whose (only they read it); the topic's key.
        positions: ordered by portfolio, then symbol; empty for an owner who holds none.
        ts: when it was computed.
    """

    owner_id: int
    positions: tuple[PositionState, ...]
    ts: float

    @property
    def key(self) -> str:
        return str(self.owner_id)


class PositionPnl(msgspec.Struct, frozen=True, gc=False):
    """One position's unrealized P&L (``market_value - cost_basis``) at the current price."""

    portfolio_id: int
    symbol: str
    unrealized_pnl: Decimal


class UserPnl(msgspec.Struct, frozen=True, gc=False):
    """The unrealized P&L of one owner's positions that changed since the last one (or
    of all of them: a snapshot). Never conflated by the hub: each carries only what
    changed, and the producer keeps the latest per position within its interval.

    Attributes:
        owner_id: whose (only they read it); the topic's key.
        positions: ordered by portfolio, then symbol.
        ts: when it was computed.
    """

    owner_id: int
    positions: tuple[PositionPnl, ...]
    ts: float

    @property
    def key(self) -> str:
        return str(self.owner_id)
