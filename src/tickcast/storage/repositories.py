"""Repositories: the SQL that reads and writes each table, returning ``records``.

Usage::

    async with engine.begin() as conn:          # one transaction, committed at the end
        user = await Users(conn).create("alice")
        book = await Portfolios(conn).create(user.id, "main")

Row locks: a writer that changes a portfolio's positions or cash first locks the
portfolio's row (``Portfolios.get_for_update`` or ``Positions.get_for_update``, both
``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite transactions hold the write lock from
``BEGIN IMMEDIATE``), so two writers of one portfolio run one after the other.

Rules:
    - A repository is a thin object over an ``AsyncConnection`` it does not own: it never
      begins, commits or rolls back the caller's transaction, and it keeps no state.
    - Inputs and outputs are ``records`` (frozen dataclasses with Decimal money and aware
      UTC datetimes); SQLAlchemy rows never leave this module.
    - A missing row is ``NotFound``; a unique violation is ``Conflict``; a foreign key to
      a missing row (an unknown user, portfolio or symbol) is ``NotFound``. Writes that can
      be refused run in a SAVEPOINT, so after a NotFound or Conflict the caller's
      transaction is still usable, on PostgreSQL as on SQLite.
    - Arguments that no row could ever satisfy (a float amount, a naive datetime, a
      negative quantity, a secret that is not a SHA-256 hex digest) are bugs in the
      caller: ValueError or TypeError, before any SQL runs.
    - ``at`` arguments are the time written into the row (aware; default: now, UTC).
    - SQL that differs per backend (``INSERT ... ON CONFLICT``) is chosen by dialect name
      in ``_upsert``; everything else is portable Core.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from tickcast.storage.errors import Conflict, NotFound
from tickcast.storage.records import (
    ROLES,
    ApiKey,
    Asset,
    AssetKind,
    Portfolio,
    PortfolioWithPositions,
    Position,
    Side,
    Transaction,
    User,
)
from tickcast.storage.tables import (
    Amount,
    api_keys,
    assets,
    portfolios,
    positions,
    to_amount,
    transactions,
    users,
)

#: Most symbols named in one ``IN (...)``: far below every backend's parameter limit.
_IN_CHUNK = 500
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class Users:
    """The ``users`` table."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def create(
        self, username: str, *, at: datetime | None = None, role: str = "user"
    ) -> User:
        """A new user with ``role`` (``records.ROLES``). Raises Conflict if ``username``
        is taken, ValueError for an unknown role."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
        stmt = (
            users.insert().values(username=username, created_at=_at(at), role=role).returning(users)
        )
        async with _refusals(self._conn, f"user {username!r}"):
            row = (await self._conn.execute(stmt)).mappings().one()
        return _user(row)

    async def by_id(self, user_id: int) -> User:
        """The user with this id. Raises NotFound."""
        stmt = select(users).where(users.c.id == user_id)
        return _user(await _one(self._conn, stmt, f"user {user_id}"))

    async def by_name(self, username: str) -> User:
        """The user with this username (exact, case-sensitive). Raises NotFound."""
        stmt = select(users).where(users.c.username == username)
        return _user(await _one(self._conn, stmt, f"user {username!r}"))

    async def list_all(self) -> list[User]:
        """Every user, by id."""
        stmt = select(users).order_by(users.c.id)
        return [_user(row) for row in (await self._conn.execute(stmt)).mappings()]

    async def set_role(self, user_id: int, role: str) -> User:
        """Give the user ``role`` (``records.ROLES``). Raises NotFound, ValueError."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
        stmt = update(users).where(users.c.id == user_id).values(role=role).returning(users)
        return _user(await _one(self._conn, stmt, f"user {user_id}"))

    async def names(self, user_ids: Iterable[int]) -> dict[int, str]:
        """The usernames of ``user_ids`` (those that exist), by id."""
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        stmt = select(users.c.id, users.c.username).where(users.c.id.in_(ids))
        return {row.id: row.username for row in (await self._conn.execute(stmt))}


class ApiKeys:
    """The ``api_keys`` table: a public prefix and a hash of the secret, never the secret."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def insert(
        self,
        user_id: int,
        *,
        prefix: str,
        secret_hash: str,
        name: str,
        at: datetime | None = None,
        permissions: str = "",
    ) -> ApiKey:
        """Store a new key (``permissions``: space-separated, "" for none).

        Raises:
            ValueError: ``secret_hash`` is not a lowercase hex SHA-256 digest (a guard
                against storing a secret in clear).
            Conflict: ``prefix`` is already used.
            NotFound: no such user.
        """
        if not _SHA256_HEX.fullmatch(secret_hash):
            raise ValueError("secret_hash must be the lowercase hex SHA-256 of the secret")
        stmt = (
            api_keys.insert()
            .values(
                user_id=user_id,
                prefix=prefix,
                secret_hash=secret_hash,
                name=name,
                created_at=_at(at),
                last_used_at=None,
                revoked=False,
                permissions=permissions,
            )
            .returning(api_keys)
        )
        async with _refusals(self._conn, f"API key {prefix!r}"):
            row = (await self._conn.execute(stmt)).mappings().one()
        return _api_key(row)

    async def find_by_prefix(self, prefix: str) -> ApiKey:
        """The key with this prefix, revoked or not (the caller checks). Raises NotFound."""
        stmt = select(api_keys).where(api_keys.c.prefix == prefix)
        return _api_key(await _one(self._conn, stmt, f"API key {prefix!r}"))

    async def touch_last_used(self, key_id: int, *, at: datetime | None = None) -> None:
        """Record that the key authenticated a client. Raises NotFound."""
        stmt = update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=_at(at))
        await _changed_one(self._conn, stmt, f"API key {key_id}")

    async def revoke(self, key_id: int) -> None:
        """Revoke the key (idempotent). Raises NotFound."""
        stmt = update(api_keys).where(api_keys.c.id == key_id).values(revoked=True)
        await _changed_one(self._conn, stmt, f"API key {key_id}")

    async def list_for_user(self, user_id: int) -> list[ApiKey]:
        """The user's keys, revoked ones included, oldest first."""
        stmt = select(api_keys).where(api_keys.c.user_id == user_id).order_by(api_keys.c.id)
        return [_api_key(row) for row in await _all(self._conn, stmt)]


class Assets:
    """The ``assets`` table: what can be held, and its latest price."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def upsert_many(self, items: Iterable[Asset]) -> int:
        """Insert the assets, or overwrite every column of those that exist. Returns how many.

        One statement executed with many parameter sets (one round trip on PostgreSQL).
        """
        rows = [_values(asset) for asset in items]
        if not rows:
            return 0
        updated = ("name", "kind", "last_price", "previous_close", "updated_at")
        await self._conn.execute(_upsert(self._conn, assets, ("symbol",), updated), rows)
        return len(rows)

    async def get(self, symbol: str) -> Asset:
        """The asset. Raises NotFound."""
        stmt = select(assets).where(assets.c.symbol == symbol)
        return _asset(await _one(self._conn, stmt, f"asset {symbol!r}"))

    async def list_all(self) -> list[Asset]:
        """Every asset, by symbol."""
        stmt = select(assets).order_by(assets.c.symbol)
        return [_asset(row) for row in await _all(self._conn, stmt)]

    async def update_prices(
        self,
        prices: Mapping[str, tuple[Decimal, Decimal | None]],
        *,
        at: datetime | None = None,
    ) -> frozenset[str]:
        """Write ``symbol -> (last_price, previous_close)`` for many assets in one batch.

        A ``previous_close`` of None keeps the stored one (an intraday update knows only
        the last price). ``updated_at`` becomes ``at`` for every asset written.

        Returns:
            The symbols that are not in the table: nothing was written for them (an asset
            needs a name and a kind first, see ``upsert_many``).
        """
        if not prices:
            return frozenset()
        when = _at(at)
        known = await self._existing(list(prices))
        rows = [
            {
                "b_symbol": s,
                "b_last": to_amount(last),
                "b_previous": None if previous is None else to_amount(previous),
                "b_at": when,
            }
            for s, (last, previous) in prices.items()
            if s in known
        ]
        if rows:
            stmt = (
                update(assets)
                .where(assets.c.symbol == bindparam("b_symbol"))
                .values(
                    last_price=bindparam("b_last"),
                    previous_close=func.coalesce(
                        bindparam("b_previous", type_=Amount()), assets.c.previous_close
                    ),
                    updated_at=bindparam("b_at"),
                )
            )
            await self._conn.execute(stmt, rows)
        return frozenset(prices.keys() - known)

    async def set_previous_closes(self, closes: Mapping[str, Decimal]) -> frozenset[str]:
        """Write ``symbol -> previous_close`` (closes the gateway observed), leaving every
        other column as it is.

        Returns:
            The symbols that are not in the table: nothing was written for them.
        """
        if not closes:
            return frozenset()
        known = await self._existing(list(closes))
        rows = [
            {"b_symbol": s, "b_close": to_amount(close)}
            for s, close in closes.items()
            if s in known
        ]
        if rows:
            stmt = (
                update(assets)
                .where(assets.c.symbol == bindparam("b_symbol"))
                .values(previous_close=bindparam("b_close", type_=Amount()))
            )
            await self._conn.execute(stmt, rows)
        return frozenset(closes.keys() - known)

    async def _existing(self, symbols: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(symbols), _IN_CHUNK):
            chunk = symbols[start : start + _IN_CHUNK]
            stmt = select(assets.c.symbol).where(assets.c.symbol.in_(chunk))
            found.update(await self._conn.scalars(stmt))
        return found


class Portfolios:
    """The ``portfolios`` table."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def create(
        self, owner_id: int, name: str, *, at: datetime | None = None, public: bool = False
    ) -> Portfolio:
        """A new, empty portfolio (no positions, no cash); ``public``: on the public
        leaderboard.

        Raises:
            Conflict: the owner already has a portfolio of this name.
            NotFound: no such user.
        """
        zero = to_amount(0)
        stmt = (
            portfolios.insert()
            .values(
                owner_id=owner_id,
                name=name,
                created_at=_at(at),
                cash=zero,
                net_deposits=zero,
                public=public,
            )
            .returning(portfolios)
        )
        async with _refusals(self._conn, f"portfolio {name!r} of user {owner_id}"):
            row = (await self._conn.execute(stmt)).mappings().one()
        return _portfolio(row)

    async def get(self, portfolio_id: int) -> Portfolio:
        """The portfolio. Raises NotFound."""
        stmt = select(portfolios).where(portfolios.c.id == portfolio_id)
        return _portfolio(await _one(self._conn, stmt, f"portfolio {portfolio_id}"))

    async def get_for_update(self, portfolio_id: int) -> Portfolio:
        """Lock the portfolio's row and return it (its cash as of the lock).

        Call it inside the transaction that will write the portfolio's cash or
        positions: until that transaction ends, no other writer that also locks it can
        read or change them (see the module's "Row locks").

        Raises:
            NotFound: no such portfolio.
        """
        stmt = select(portfolios).where(portfolios.c.id == portfolio_id).with_for_update()
        return _portfolio(await _one(self._conn, stmt, f"portfolio {portfolio_id}"))

    async def set_cash(
        self, portfolio_id: int, *, cash: Decimal, net_deposits: Decimal
    ) -> Portfolio:
        """Write the portfolio's new cash balance and net deposits (computed by the caller
        under the row lock), one version more. Returns the portfolio as written.

        Raises:
            ValueError: ``cash`` is negative, or an amount does not fit NUMERIC(28, 10).
            NotFound: no such portfolio.
        """
        cash, net_deposits = to_amount(cash), to_amount(net_deposits)
        if cash < 0:
            raise ValueError(f"a cash balance cannot be negative: {cash}")
        stmt = (
            update(portfolios)
            .where(portfolios.c.id == portfolio_id)
            .values(cash=cash, net_deposits=net_deposits, version=portfolios.c.version + 1)
            .returning(portfolios)
        )
        return _portfolio(await _one(self._conn, stmt, f"portfolio {portfolio_id}"))

    async def set_public(self, portfolio_id: int, public: bool) -> Portfolio:
        """Opt the portfolio in to the public leaderboard, or out: a write like any other,
        its version one more (so that of two reads, the newer is known). Raises
        NotFound."""
        stmt = (
            update(portfolios)
            .where(portfolios.c.id == portfolio_id)
            .values(public=public, version=portfolios.c.version + 1)
            .returning(portfolios)
        )
        return _portfolio(await _one(self._conn, stmt, f"portfolio {portfolio_id}"))

    async def list_for_owner(self, owner_id: int) -> list[Portfolio]:
        """The owner's portfolios, oldest first."""
        stmt = select(portfolios).where(portfolios.c.owner_id == owner_id).order_by(portfolios.c.id)
        return [_portfolio(row) for row in await _all(self._conn, stmt)]

    async def list_all_with_positions(self) -> list[PortfolioWithPositions]:
        """Every portfolio (oldest first) with its positions (by symbol): the start-up load.

        Two queries, whatever the number of portfolios.
        """
        books = await _all(self._conn, select(portfolios).order_by(portfolios.c.id))
        held: dict[int, list[Position]] = {}
        stmt = select(positions).order_by(positions.c.portfolio_id, positions.c.symbol)
        for row in await _all(self._conn, stmt):
            held.setdefault(row["portfolio_id"], []).append(_position(row))
        return [
            PortfolioWithPositions(
                portfolio=_portfolio(row), positions=tuple(held.get(row["id"], ()))
            )
            for row in books
        ]

    async def delete(self, portfolio_id: int) -> None:
        """Delete the portfolio with its positions and transactions. Raises NotFound."""
        stmt = delete(portfolios).where(portfolios.c.id == portfolio_id)
        await _changed_one(self._conn, stmt, f"portfolio {portfolio_id}")


class Positions:
    """The ``positions`` table: one row per (portfolio, symbol) ever held."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get_for_update(self, portfolio_id: int, symbol: str) -> Position | None:
        """Lock the portfolio and return its position in ``symbol`` (None if never held).

        Call it inside the transaction that will write the position: until that
        transaction ends, no other writer that also calls this can read or change the
        portfolio's positions. On PostgreSQL this is ``SELECT ... FOR UPDATE`` on the
        portfolio row (so that two first buys of a symbol cannot both see None) and on
        the position row; SQLite transactions already hold the write lock from their
        ``BEGIN IMMEDIATE`` (see engine.py).

        Raises:
            NotFound: no such portfolio.
        """
        lock = select(portfolios.c.id).where(portfolios.c.id == portfolio_id).with_for_update()
        if (await self._conn.execute(lock)).first() is None:
            raise NotFound(f"portfolio {portfolio_id} does not exist")
        stmt = (
            select(positions)
            .where(positions.c.portfolio_id == portfolio_id, positions.c.symbol == symbol)
            .with_for_update()
        )
        row = (await self._conn.execute(stmt)).mappings().one_or_none()
        return None if row is None else _position(row)

    async def upsert(
        self,
        portfolio_id: int,
        symbol: str,
        *,
        quantity: Decimal,
        cost_basis: Decimal,
        realized_pnl: Decimal,
        at: datetime | None = None,
    ) -> Position:
        """Write the position's new state (computed by the caller); create it if new.

        ``created_at`` is set on creation only; ``updated_at`` becomes ``at``.

        Raises:
            NotFound: no such portfolio or asset.
        """
        when = _at(at)
        values = {
            "portfolio_id": portfolio_id,
            "symbol": symbol,
            "quantity": to_amount(quantity),
            "cost_basis": to_amount(cost_basis),
            "realized_pnl": to_amount(realized_pnl),
            "created_at": when,
            "updated_at": when,
        }
        updated = ("quantity", "cost_basis", "realized_pnl", "updated_at")
        stmt = (
            _upsert(self._conn, positions, ("portfolio_id", "symbol"), updated)
            .values(values)
            .returning(positions)
        )
        async with _refusals(self._conn, f"position {symbol!r} of portfolio {portfolio_id}"):
            row = (await self._conn.execute(stmt)).mappings().one()
        return _position(row)

    async def list_for_portfolio(self, portfolio_id: int) -> list[Position]:
        """The portfolio's positions, by symbol (closed ones, quantity 0, included)."""
        stmt = (
            select(positions)
            .where(positions.c.portfolio_id == portfolio_id)
            .order_by(positions.c.symbol)
        )
        return [_position(row) for row in await _all(self._conn, stmt)]


class Transactions:
    """The ``transactions`` table: the executed buys and sells, append-only."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def insert(
        self,
        portfolio_id: int,
        symbol: str,
        *,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        executed_at: datetime,
    ) -> Transaction:
        """Record a transaction.

        Raises:
            ValueError: ``side`` is not buy or sell, ``quantity`` is not > 0 or ``price``
                is negative.
            NotFound: no such portfolio or asset.
        """
        side = Side(side)
        quantity, price = to_amount(quantity), to_amount(price)
        if quantity <= 0:
            raise ValueError(f"a transaction's quantity must be > 0, not {quantity}")
        if price < 0:
            raise ValueError(f"a transaction's price must be >= 0, not {price}")
        stmt = (
            transactions.insert()
            .values(
                portfolio_id=portfolio_id,
                symbol=symbol,
                side=side.value,
                quantity=quantity,
                price=price,
                executed_at=_at(executed_at),
            )
            .returning(transactions)
        )
        async with _refusals(self._conn, f"transaction in {symbol!r} of {portfolio_id}"):
            row = (await self._conn.execute(stmt)).mappings().one()
        return _transaction(row)

    async def list_for_portfolio(
        self, portfolio_id: int, *, limit: int | None = None
    ) -> list[Transaction]:
        """The portfolio's transactions, newest first; at most ``limit`` (None = all)."""
        stmt = (
            select(transactions)
            .where(transactions.c.portfolio_id == portfolio_id)
            .order_by(transactions.c.executed_at.desc(), transactions.c.id.desc())
            .limit(limit)
        )
        return [_transaction(row) for row in await _all(self._conn, stmt)]


# -- rows to records


def _user(row: RowMapping) -> User:
    return User(**_fields_of(User, row))


def _api_key(row: RowMapping) -> ApiKey:
    return ApiKey(**_fields_of(ApiKey, row))


def _portfolio(row: RowMapping) -> Portfolio:
    return Portfolio(**_fields_of(Portfolio, row))


def _position(row: RowMapping) -> Position:
    return Position(**_fields_of(Position, row))


def _asset(row: RowMapping) -> Asset:
    return Asset(**{**_fields_of(Asset, row), "kind": AssetKind(row["kind"])})


def _transaction(row: RowMapping) -> Transaction:
    return Transaction(**{**_fields_of(Transaction, row), "side": Side(row["side"])})


def _fields_of(cls: type[Any], row: RowMapping) -> dict[str, Any]:
    """The row's values for the record's fields (the columns are exactly the fields)."""
    return {f.name: row[f.name] for f in fields(cls)}


def _values(asset: Asset) -> dict[str, Any]:
    return {
        "symbol": asset.symbol,
        "name": asset.name,
        "kind": AssetKind(asset.kind).value,
        "last_price": to_amount(asset.last_price),
        "previous_close": None if asset.previous_close is None else to_amount(asset.previous_close),
        "updated_at": _at(asset.updated_at),
    }


# -- SQL helpers


def _at(at: datetime | None) -> datetime:
    """``at``, checked to be aware; the current time (UTC) if None."""
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a naive datetime cannot be stored: {at!r}")
    return at


async def _one(conn: AsyncConnection, stmt: Any, what: str) -> RowMapping:
    row = (await conn.execute(stmt)).mappings().one_or_none()
    if row is None:
        raise NotFound(f"{what} does not exist")
    return row


async def _all(conn: AsyncConnection, stmt: Any) -> Sequence[RowMapping]:
    return (await conn.execute(stmt)).mappings().all()


async def _changed_one(conn: AsyncConnection, stmt: Any, what: str) -> None:
    if (await conn.execute(stmt)).rowcount == 0:
        raise NotFound(f"{what} does not exist")


def _upsert(
    conn: AsyncConnection, table: Table, key: Sequence[str], updated: Sequence[str]
) -> Insert:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET`` the ``updated`` columns."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=key, set_={c: pg.excluded[c] for c in updated}
        )
    if dialect == "sqlite":
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=key, set_={c: lite.excluded[c] for c in updated}
        )
    raise NotImplementedError(f"no upsert for {dialect}")


# SQLSTATE (PostgreSQL) and extended result code names (SQLite) of the violations mapped.
_UNIQUE = frozenset({"23505", "SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
_FOREIGN_KEY = frozenset({"23503", "SQLITE_CONSTRAINT_FOREIGNKEY"})


@asynccontextmanager
async def _refusals(conn: AsyncConnection, what: str) -> AsyncIterator[None]:
    """Run a write in a SAVEPOINT; turn unique and foreign-key violations into errors."""
    try:
        async with conn.begin_nested():
            yield
    except IntegrityError as exc:
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "sqlite_errorname", "")
        if code in _UNIQUE:
            raise Conflict(f"{what} already exists") from exc
        if code in _FOREIGN_KEY:
            raise NotFound(
                f"{what} refers to a user, portfolio or asset that does not exist"
            ) from exc
        raise
