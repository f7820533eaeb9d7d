"""The schema: SQLAlchemy Core tables, the single source of truth for every backend.

Rules:
    - ``migrations/versions`` must build exactly this schema; ``tests/storage/
      test_migrations.py`` compares the two (reflection and an autogenerate diff), so a
      change here without a migration, or the reverse, fails the build.
    - Every constraint and index is named by ``NAMING`` (``pk_<table>``,
      ``uq_<table>_<columns>``, ``ix_<table>_<columns>``, ``fk_<table>_<column>_<target>``,
      ``ck_<table>_<name>``), so that migrations can refer to them on every backend.
    - Money and quantities are ``Amount``: NUMERIC(28, 10) read and written as ``Decimal``,
      never ``float``. SQLite has no exact decimal type (its NUMERIC keeps 15 significant
      digits), so there ``Amount`` is stored as TEXT in canonical form; CHECKs therefore
      compare ``CAST(column AS NUMERIC)``, and SQL must never do arithmetic or ordering on
      amounts: that happens in Python, in ``Decimal``.
    - Timestamps are ``UTCDateTime``: aware datetimes in, aware UTC datetimes out, on
      every backend (SQLite stores them as UTC text without an offset).
    - Identifiers are BIGINT (INTEGER on SQLite, where only ``INTEGER PRIMARY KEY``
      autoincrements).
    - A portfolio's ``cash``, ``net_deposits`` and ``version`` (one more per write) are
      kept by the writer that holds the portfolio's row lock; ``cash_transactions`` is
      the ledger of the cash (deposits and withdrawals; the buys and sells that also
      move cash are in ``transactions``).
"""

from __future__ import annotations

import decimal
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from tickcast.storage.records import AssetKind, CashKind, Side

#: Scale and precision of every amount: 18 digits before the point, 10 after.
AMOUNT_PRECISION = 28
AMOUNT_SCALE = 10
_QUANTUM = Decimal(1).scaleb(-AMOUNT_SCALE)
_LIMIT = Decimal(10) ** (AMOUNT_PRECISION - AMOUNT_SCALE)
_CONTEXT = decimal.Context(prec=AMOUNT_PRECISION + 20, rounding=decimal.ROUND_HALF_UP)


def to_amount(value: Decimal | int) -> Decimal:
    """``value`` rounded to the column's 10 places, as PostgreSQL's NUMERIC rounds it.

    Raises:
        TypeError: ``value`` is a float or another non-exact type (money is never float).
        ValueError: ``value`` is not finite, or has more than 18 digits before the point.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"an amount must be a Decimal or an int, not {type(value).__name__}")
    exact = Decimal(value)
    if not exact.is_finite():
        raise ValueError(f"an amount must be finite, not {exact}")
    rounded = exact.quantize(_QUANTUM, context=_CONTEXT)
    if abs(rounded) >= _LIMIT:
        raise ValueError(f"{exact} does not fit NUMERIC({AMOUNT_PRECISION}, {AMOUNT_SCALE})")
    return rounded


class Amount(TypeDecorator[Decimal]):
    """NUMERIC(28, 10) as ``Decimal``; exact TEXT on SQLite (see the module rules)."""

    impl = Numeric(AMOUNT_PRECISION, AMOUNT_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(AMOUNT_PRECISION, AMOUNT_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = to_amount(value)
        # "f" keeps the canonical fixed-point text (no exponent) that SQLite stores.
        return format(amount, "f") if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        # SQLite hands back the stored text (or a number, if a row was written by hand).
        return to_amount(Decimal(str(value)))

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


class UTCDateTime(TypeDecorator[datetime]):
    """TIMESTAMP WITH TIME ZONE; aware in, aware UTC out (naive datetimes are refused)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"a naive datetime cannot be stored: {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime


#: Primary and foreign keys: BIGINT, but INTEGER on SQLite so that it autoincrements.
Id = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "pk": "pk_%(table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _one_of(column: str, values: type[AssetKind] | type[Side] | type[CashKind]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("username", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # "user" or "operator" (records.ROLES): an operator reads the monitoring streams
    Column("role", String(16), nullable=False, server_default="user"),
    UniqueConstraint("username"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("name", String(100), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Column("revoked", Boolean(), nullable=False, default=False),
    # what the key allows beyond reading, space-separated (e.g. "publish:signals")
    Column("permissions", String(200), nullable=False, server_default=""),
    Index(None, "prefix", unique=True),
    Index(None, "user_id"),
)

assets = Table(
    "assets",
    metadata,
    Column("symbol", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("last_price", Amount(), nullable=False),
    Column("previous_close", Amount(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint(_one_of("kind", AssetKind), name="kind"),
)

portfolios = Table(
    "portfolios",
    metadata,
    Column("id", Id, primary_key=True),
    Column("owner_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # The cash balance: never negative (a buy that needs more records a deposit first).
    Column("cash", Amount(), nullable=False, server_default="0"),
    # Deposits minus withdrawals, ever: negative once more was withdrawn than put in.
    Column("net_deposits", Amount(), nullable=False, server_default="0"),
    # Counts the writes of the portfolio (each under its row lock), so that a reader of
    # committed states can tell the newer of two (the in-memory book ignores older ones).
    Column("version", BigInteger(), nullable=False, server_default="0"),
    # opted in to the public leaderboard (its name, owner's name and performance shown)
    Column("public", Boolean(), nullable=False, server_default=false()),
    # Its index leads with owner_id, so it also serves "the portfolios of this owner".
    UniqueConstraint("owner_id", "name"),
    CheckConstraint("CAST(cash AS NUMERIC) >= 0", name="cash_not_negative"),
)

positions = Table(
    "positions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("portfolio_id", Id, ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False),
    Column("symbol", String(32), ForeignKey("assets.symbol"), nullable=False),
    Column("quantity", Amount(), nullable=False),
    Column("cost_basis", Amount(), nullable=False),
    Column("realized_pnl", Amount(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("portfolio_id", "symbol"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("portfolio_id", Id, ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False),
    Column("symbol", String(32), ForeignKey("assets.symbol"), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", Amount(), nullable=False),
    Column("price", Amount(), nullable=False),
    Column("executed_at", UTCDateTime(), nullable=False),
    CheckConstraint(_one_of("side", Side), name="side"),
    CheckConstraint("CAST(quantity AS NUMERIC) > 0", name="quantity_positive"),
    CheckConstraint("CAST(price AS NUMERIC) >= 0", name="price_not_negative"),
    Index(None, "portfolio_id", "executed_at"),
)

cash_transactions = Table(
    "cash_transactions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("portfolio_id", Id, ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("amount", Amount(), nullable=False),
    Column("executed_at", UTCDateTime(), nullable=False),
    # The buy an automatic deposit paid for; NULL for one the owner asked for.
    Column("transaction_id", Id, ForeignKey("transactions.id", ondelete="CASCADE"), nullable=True),
    CheckConstraint(_one_of("kind", CashKind), name="kind"),
    CheckConstraint("CAST(amount AS NUMERIC) > 0", name="amount_positive"),
    Index(None, "portfolio_id", "executed_at"),
    Index(None, "transaction_id"),
)
