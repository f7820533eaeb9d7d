"""Records: the rows the repositories return, as frozen value objects.

Rules: plain data, no behaviour and no I/O. Money and quantities are ``Decimal`` with the
column's scale (10 places: ``Decimal("1.5")`` is read back as ``Decimal("1.5000000000")``,
which compares equal); timestamps are timezone-aware UTC ``datetime``; identifiers are
``int``. Records mirror the tables in ``tables.py`` column for column, so a new column
appears in both.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


class AssetKind(enum.StrEnum):
    """What an asset is (``assets.kind``)."""

    STOCK = "stock"
    CRYPTO = "crypto"
    ETF = "etf"
    INDEX = "index"


class Side(enum.StrEnum):
    """The side of a transaction (``transactions.side``)."""

    BUY = "buy"
    SELL = "sell"


class CashKind(enum.StrEnum):
    """What a cash transaction is (``cash_transactions.kind``)."""

    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"


#: The roles a user may have: "user" (the default) and "operator" (reads the
#: monitoring streams and routes).
ROLES = ("user", "operator")


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    """An account. ``username`` is unique; ``role`` is one of ``ROLES`` ("operator":
    may read the monitoring streams)."""

    id: int
    username: str
    created_at: datetime
    role: str = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """An API key as stored: its public prefix and the hex SHA-256 of its secret.

    The secret itself is never stored; ``auth.credentials`` hashes the presented secret
    and compares it with ``secret_hash`` (in constant time).

    Attributes:
        prefix: the public, unique part of the key, used to look the key up.
        secret_hash: lowercase hex SHA-256 of the secret part (64 characters).
        last_used_at: when the key last authenticated a client; None = never.
        revoked: a revoked key stays listed but authenticates nobody.
        permissions: what the key allows beyond reading, space-separated
            (``publish:signals``); "" for none, the default.
    """

    id: int
    user_id: int
    prefix: str
    secret_hash: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    permissions: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    """A tradable asset and its latest price.

    Attributes:
        last_price: the latest known price.
        previous_close: the previous session's close; None = unknown (then a daily
            change cannot be computed).
        updated_at: when the price was last written.
    """

    symbol: str
    name: str
    kind: AssetKind
    last_price: Decimal
    previous_close: Decimal | None
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Portfolio:
    """A named portfolio; ``(owner_id, name)`` is unique.

    Attributes:
        cash: the cash balance, >= 0, as of the read (the live value is the book's).
        net_deposits: deposits minus withdrawals, ever (negative once more was taken
            out than put in).
        version: how many times its cash and positions were written (0 when new): of
            two committed states, the one with the higher version is the newer.
        public: opted in to the public leaderboard (its name, its owner's username
            and its performance are shown to anyone); False by default.
    """

    id: int
    owner_id: int
    name: str
    created_at: datetime
    cash: Decimal
    net_deposits: Decimal
    version: int
    public: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """One holding of a portfolio; ``(portfolio_id, symbol)`` is unique.

    Attributes:
        quantity: held now (0 after a full sell: the row stays, it carries realized P&L).
        cost_basis: the total cost of the quantity held (not a per-unit price).
        realized_pnl: realized on this symbol by sells, ever.
    """

    id: int
    portfolio_id: int
    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Transaction:
    """One executed buy or sell. ``quantity`` > 0 and ``price`` >= 0 (per unit)."""

    id: int
    portfolio_id: int
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    executed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CashTransaction:
    """One deposit or withdrawal of cash. ``amount`` > 0.

    Attributes:
        transaction_id: the buy an automatic deposit paid for (see
            ``portfolio/cash.py``); None for a deposit or withdrawal the owner asked for.
    """

    id: int
    portfolio_id: int
    kind: CashKind
    amount: Decimal
    executed_at: datetime
    transaction_id: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioWithPositions:
    """A portfolio and all its positions (ordered by symbol), as loaded at start."""

    portfolio: Portfolio
    positions: tuple[Position, ...]
