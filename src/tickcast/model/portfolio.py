"""Portfolio and asset updates: what the portfolio and asset services publish.

Rules: plain frozen value objects, like market.py. Money and quantities are Decimal
(exact, end to end from storage to the wire); ``ts`` is epoch seconds UTC. Each type
names the key of its topic: ``portfolio.<id>``, ``positions.<portfolio id>``,
``assets.<symbol>``.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec


class PortfolioValue(msgspec.Struct, frozen=True, gc=False):
    """A portfolio's live value (Front 2's portfolio_update), conflated per portfolio.

    Attributes:
        portfolio_id, name, owner_id: which portfolio, and whose (only the owner reads it).
        total_value: market value of the holdings.
        cost_basis: what the holdings cost (average cost).
        daily_change, daily_change_percent: against the previous closes.
        unrealized_pnl: total_value - cost_basis; realized_pnl: from sells, ever.
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
    ts: float

    @property
    def key(self) -> str:
        return str(self.portfolio_id)


class PositionUpdate(msgspec.Struct, frozen=True, gc=False):
    """One holding after a transaction (Front 3's position object). Never conflated.

    Attributes:
        quantity: held now (0 after a full sell); cost_basis: its total cost;
        realized_pnl: realized on this symbol, ever; created_at, updated_at: epoch s.
    """

    portfolio_id: int
    owner_id: int
    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal
    created_at: float
    updated_at: float
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
