"""Repositories and the engine they run on, against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tickcast.errors import ConfigError
from tickcast.storage.engine import make_engine, normalize_url
from tickcast.storage.errors import Conflict, NotFound
from tickcast.storage.ledger import CashTransactions
from tickcast.storage.records import (
    ApiKey,
    Asset,
    AssetKind,
    CashKind,
    CashTransaction,
    Portfolio,
    PortfolioWithPositions,
    Side,
    User,
)
from tickcast.storage.repositories import (
    ApiKeys,
    Assets,
    Portfolios,
    Positions,
    Transactions,
    Users,
)
from tickcast.storage.tables import cash_transactions, positions, transactions

T0 = datetime(2026, 3, 2, 14, 30, 0, 123456, tzinfo=UTC)
HASH = "ab" * 32
# 18 digits before the point and 10 after: the most NUMERIC(28, 10) holds exactly.
WIDE = Decimal("123456789012345678.0123456789")


def asset(symbol: str, price: str = "100", previous: str | None = "99") -> Asset:
    return Asset(
        symbol=symbol,
        name=f"{symbol} Inc.",
        kind=AssetKind.STOCK,
        last_price=Decimal(price),
        previous_close=None if previous is None else Decimal(previous),
        updated_at=T0,
    )


async def user_with_portfolio(conn: AsyncConnection) -> tuple[User, Portfolio]:
    user = await Users(conn).create("alice", at=T0)
    return user, await Portfolios(conn).create(user.id, "main", at=T0)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements executed on ``engine`` inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


# -- users


async def test_users_create_and_find_by_id_and_name(conn: AsyncConnection) -> None:
    users = Users(conn)
    alice = await users.create("alice", at=T0)
    assert alice == User(id=alice.id, username="alice", created_at=T0)
    assert await users.by_id(alice.id) == alice
    assert await users.by_name("alice") == alice
    bob = await users.create("bob")
    assert bob.id != alice.id
    assert bob.created_at.tzinfo is UTC


async def test_users_missing_are_not_found(conn: AsyncConnection) -> None:
    with pytest.raises(NotFound):
        await Users(conn).by_id(12345)
    with pytest.raises(NotFound):
        await Users(conn).by_name("nobody")


async def test_users_taken_username_is_a_conflict_and_the_transaction_goes_on(
    conn: AsyncConnection,
) -> None:
    users = Users(conn)
    await users.create("alice")
    with pytest.raises(Conflict, match="alice"):
        await users.create("alice")
    # The violation was contained in a savepoint: the transaction is still usable.
    assert (await users.create("bob")).username == "bob"
    assert (await users.by_name("alice")).username == "alice"


async def test_a_conflict_does_not_undo_the_callers_committed_work(migrated: AsyncEngine) -> None:
    async with migrated.begin() as conn:
        await Users(conn).create("alice")
        with pytest.raises(Conflict):
            await Users(conn).create("alice")
        await Users(conn).create("bob")
    async with migrated.connect() as conn:
        assert (await Users(conn).by_name("bob")).username == "bob"


# -- API keys


async def test_api_keys_insert_find_touch_revoke_list(conn: AsyncConnection) -> None:
    alice = await Users(conn).create("alice")
    keys = ApiKeys(conn)
    key = await keys.insert(alice.id, prefix="tc_abc", secret_hash=HASH, name="laptop", at=T0)
    assert key == ApiKey(
        id=key.id,
        user_id=alice.id,
        prefix="tc_abc",
        secret_hash=HASH,
        name="laptop",
        created_at=T0,
        last_used_at=None,
        revoked=False,
    )
    assert await keys.find_by_prefix("tc_abc") == key

    used = T0 + timedelta(minutes=5)
    await keys.touch_last_used(key.id, at=used)
    assert (await keys.find_by_prefix("tc_abc")).last_used_at == used

    other = await keys.insert(alice.id, prefix="tc_def", secret_hash="cd" * 32, name="ci")
    await keys.revoke(key.id)
    await keys.revoke(key.id)  # idempotent
    listed = await keys.list_for_user(alice.id)
    assert [(k.prefix, k.revoked) for k in listed] == [("tc_abc", True), ("tc_def", False)]
    assert listed[1] == other
    assert await keys.list_for_user(alice.id + 1) == []


async def test_api_keys_refusals(conn: AsyncConnection) -> None:
    alice = await Users(conn).create("alice")
    keys = ApiKeys(conn)
    await keys.insert(alice.id, prefix="tc_abc", secret_hash=HASH, name="a")
    with pytest.raises(Conflict):
        await keys.insert(alice.id, prefix="tc_abc", secret_hash=HASH, name="b")
    with pytest.raises(NotFound):
        await keys.insert(alice.id + 99, prefix="tc_new", secret_hash=HASH, name="c")
    with pytest.raises(ValueError, match="SHA-256"):
        await keys.insert(alice.id, prefix="tc_x", secret_hash="the-secret-itself", name="d")
    with pytest.raises(ValueError, match="SHA-256"):
        await keys.insert(alice.id, prefix="tc_x", secret_hash=HASH.upper(), name="d")
    with pytest.raises(NotFound):
        await keys.find_by_prefix("tc_missing")
    with pytest.raises(NotFound):
        await keys.touch_last_used(999_999)
    with pytest.raises(NotFound):
        await keys.revoke(999_999)


# -- assets


async def test_assets_upsert_get_list(conn: AsyncConnection) -> None:
    assets = Assets(conn)
    assert await assets.upsert_many([]) == 0
    assert await assets.upsert_many([asset("MSFT"), asset("AAPL", previous=None)]) == 2
    assert [a.symbol for a in await assets.list_all()] == ["AAPL", "MSFT"]
    aapl = await assets.get("AAPL")
    assert aapl == asset("AAPL", previous=None)
    assert aapl.kind is AssetKind.STOCK

    later = T0 + timedelta(days=1)
    renamed = Asset(
        symbol="AAPL",
        name="Apple",
        kind=AssetKind.ETF,
        last_price=Decimal("1.5"),
        previous_close=Decimal("2"),
        updated_at=later,
    )
    assert await assets.upsert_many([renamed]) == 1
    assert await assets.get("AAPL") == renamed
    assert len(await assets.list_all()) == 2
    with pytest.raises(NotFound):
        await assets.get("NOPE")


async def test_decimal_round_trip_is_exact_in_every_amount_column(conn: AsyncConnection) -> None:
    values = [
        Decimal("123.4567890123"),
        WIDE,
        -WIDE,
        Decimal("0.0000000001"),
        Decimal("0.1") + Decimal("0.2"),
        Decimal(0),
    ]
    assets = Assets(conn)
    for i, value in enumerate(values):
        await assets.upsert_many(
            [
                Asset(
                    symbol=f"S{i}",
                    name="x",
                    kind=AssetKind.CRYPTO,
                    last_price=value,
                    previous_close=value,
                    updated_at=T0,
                )
            ]
        )
        got = await assets.get(f"S{i}")
        assert got.last_price == value
        assert got.previous_close == value
        assert isinstance(got.last_price, Decimal)
        assert got.last_price.as_tuple().exponent == -10  # the column's scale, as PostgreSQL

    _, book = await user_with_portfolio(conn)
    position = await Positions(conn).upsert(
        book.id, "S1", quantity=WIDE, cost_basis=-WIDE, realized_pnl=Decimal("123.4567890123")
    )
    assert (position.quantity, position.cost_basis) == (WIDE, -WIDE)
    assert position.realized_pnl == Decimal("123.4567890123")
    trade = await Transactions(conn).insert(
        book.id, "S1", side=Side.BUY, quantity=WIDE, price=Decimal("0.0000000001"), executed_at=T0
    )
    assert (trade.quantity, trade.price) == (WIDE, Decimal("0.0000000001"))
    assert (await Transactions(conn).list_for_portfolio(book.id))[0] == trade


async def test_amounts_are_rounded_to_ten_places_like_numeric(conn: AsyncConnection) -> None:
    await Assets(conn).upsert_many([asset("A", price="1.00000000005", previous="-1.00000000005")])
    got = await Assets(conn).get("A")
    assert got.last_price == Decimal("1.0000000001")
    assert got.previous_close == Decimal("-1.0000000001")


@pytest.mark.parametrize(
    ("price", "error", "message"),
    [
        (1.5, TypeError, "Decimal or an int"),
        (Decimal("NaN"), ValueError, "finite"),
        (Decimal("Infinity"), ValueError, "finite"),
        (Decimal("1e18"), ValueError, "does not fit"),
        (Decimal("-999999999999999999.99999999999"), ValueError, "does not fit"),
    ],
)
async def test_amounts_that_cannot_be_stored_exactly_are_refused(
    conn: AsyncConnection, price: Any, error: type[Exception], message: str
) -> None:
    bad = Asset(
        symbol="A",
        name="a",
        kind=AssetKind.STOCK,
        last_price=price,
        previous_close=None,
        updated_at=T0,
    )
    with pytest.raises(error, match=message):
        await Assets(conn).upsert_many([bad])


async def test_update_prices_of_500_assets_in_one_batch(
    migrated: AsyncEngine, conn: AsyncConnection
) -> None:
    assets = Assets(conn)
    symbols = [f"SYM{i:03d}" for i in range(500)]
    await assets.upsert_many(asset(s, price="1", previous="1") for s in symbols)
    prices = {s: (Decimal(f"{i}.{i:010d}"), Decimal(i)) for i, s in enumerate(symbols)}
    later = T0 + timedelta(hours=1)

    with statements(migrated) as seen:
        unknown = await assets.update_prices(prices, at=later)
    assert unknown == frozenset()
    # One SELECT of the known symbols and one UPDATE executed with 500 parameter sets.
    assert len(seen) == 2, seen

    stored = {a.symbol: a for a in await assets.list_all()}
    for i, s in enumerate(symbols):
        assert stored[s].last_price == Decimal(f"{i}.{i:010d}")
        assert stored[s].previous_close == Decimal(i)
        assert stored[s].updated_at == later


async def test_set_previous_closes_writes_only_the_close_and_reports_unknown_symbols(
    conn: AsyncConnection,
) -> None:
    assets = Assets(conn)
    await assets.upsert_many([asset("AAPL", price="100", previous="99")])
    unknown = await assets.set_previous_closes({"AAPL": Decimal("104.5"), "NOPE": Decimal(1)})
    assert unknown == frozenset({"NOPE"})
    assert await assets.get("AAPL") == asset("AAPL", price="100", previous="104.5")
    assert await assets.set_previous_closes({}) == frozenset()


async def test_update_prices_keeps_previous_close_when_none_and_reports_unknown_symbols(
    conn: AsyncConnection,
) -> None:
    assets = Assets(conn)
    await assets.upsert_many([asset("AAPL", price="100", previous="99")])
    unknown = await assets.update_prices(
        {"AAPL": (Decimal("101.25"), None), "NOPE": (Decimal("1"), None)}, at=T0
    )
    assert unknown == frozenset({"NOPE"})
    aapl = await assets.get("AAPL")
    assert (aapl.last_price, aapl.previous_close) == (Decimal("101.25"), Decimal("99"))
    assert await assets.update_prices({}) == frozenset()
    with pytest.raises(NotFound):
        await assets.get("NOPE")


# -- portfolios


async def test_portfolios_create_get_list(conn: AsyncConnection) -> None:
    alice = await Users(conn).create("alice")
    bob = await Users(conn).create("bob")
    books = Portfolios(conn)
    main = await books.create(alice.id, "main", at=T0)
    assert main == Portfolio(
        id=main.id,
        owner_id=alice.id,
        name="main",
        created_at=T0,
        cash=Decimal(0),
        net_deposits=Decimal(0),
        version=0,
    )
    assert await books.get(main.id) == main
    second = await books.create(alice.id, "second")
    bobs = await books.create(bob.id, "main")  # the same name, another owner
    assert await books.list_for_owner(alice.id) == [main, second]
    assert await books.list_for_owner(bob.id) == [bobs]
    with pytest.raises(Conflict):
        await books.create(alice.id, "main")
    with pytest.raises(NotFound):
        await books.create(999_999, "x")
    with pytest.raises(NotFound):
        await books.get(999_999)


async def test_list_all_with_positions(conn: AsyncConnection) -> None:
    await Assets(conn).upsert_many([asset("AAPL"), asset("MSFT")])
    alice, main = await user_with_portfolio(conn)
    empty = await Portfolios(conn).create(alice.id, "empty")
    held = Positions(conn)
    msft = await held.upsert(
        main.id, "MSFT", quantity=Decimal(1), cost_basis=Decimal(2), realized_pnl=Decimal(0)
    )
    aapl = await held.upsert(
        main.id, "AAPL", quantity=Decimal(3), cost_basis=Decimal(4), realized_pnl=Decimal(5)
    )
    assert await Portfolios(conn).list_all_with_positions() == [
        PortfolioWithPositions(portfolio=main, positions=(aapl, msft)),
        PortfolioWithPositions(portfolio=empty, positions=()),
    ]


async def test_deleting_a_portfolio_cascades_to_positions_and_transactions(
    conn: AsyncConnection,
) -> None:
    await Assets(conn).upsert_many([asset("AAPL")])
    alice, main = await user_with_portfolio(conn)
    other = await Portfolios(conn).create(alice.id, "other")
    for book in (main, other):
        await Positions(conn).upsert(
            book.id, "AAPL", quantity=Decimal(1), cost_basis=Decimal(1), realized_pnl=Decimal(0)
        )
        await Transactions(conn).insert(
            book.id, "AAPL", side=Side.BUY, quantity=Decimal(1), price=Decimal(1), executed_at=T0
        )
    await Portfolios(conn).delete(main.id)

    with pytest.raises(NotFound):
        await Portfolios(conn).get(main.id)
    for table in (positions, transactions):
        ids = (await conn.scalars(select(table.c.portfolio_id))).all()
        assert ids == [other.id], table.name
    with pytest.raises(NotFound):
        await Portfolios(conn).delete(main.id)


# -- positions


async def test_positions_upsert_creates_then_updates(conn: AsyncConnection) -> None:
    await Assets(conn).upsert_many([asset("AAPL")])
    _, book = await user_with_portfolio(conn)
    held = Positions(conn)
    first = await held.upsert(
        book.id,
        "AAPL",
        quantity=Decimal("10"),
        cost_basis=Decimal("1500.5"),
        realized_pnl=Decimal(0),
        at=T0,
    )
    assert (first.quantity, first.cost_basis, first.created_at, first.updated_at) == (
        Decimal(10),
        Decimal("1500.5"),
        T0,
        T0,
    )
    later = T0 + timedelta(seconds=30)
    second = await held.upsert(
        book.id,
        "AAPL",
        quantity=Decimal(0),
        cost_basis=Decimal(0),
        realized_pnl=Decimal("-12.75"),
        at=later,
    )
    assert second.id == first.id
    assert (second.quantity, second.realized_pnl) == (Decimal(0), Decimal("-12.75"))
    assert (second.created_at, second.updated_at) == (T0, later)
    assert await held.list_for_portfolio(book.id) == [second]


async def test_positions_refer_to_existing_portfolios_and_assets(conn: AsyncConnection) -> None:
    await Assets(conn).upsert_many([asset("AAPL")])
    _, book = await user_with_portfolio(conn)
    zero = {"quantity": Decimal(0), "cost_basis": Decimal(0), "realized_pnl": Decimal(0)}
    with pytest.raises(NotFound):
        await Positions(conn).upsert(book.id, "NOPE", **zero)
    with pytest.raises(NotFound):
        await Positions(conn).upsert(book.id + 99, "AAPL", **zero)
    assert await Positions(conn).list_for_portfolio(book.id) == []


async def test_get_for_update_in_a_transaction(migrated: AsyncEngine) -> None:
    async with migrated.begin() as conn:
        await Assets(conn).upsert_many([asset("AAPL")])
        _, book = await user_with_portfolio(conn)
    async with migrated.begin() as conn:
        held = Positions(conn)
        assert await held.get_for_update(book.id, "AAPL") is None
        created = await held.upsert(
            book.id, "AAPL", quantity=Decimal(5), cost_basis=Decimal(50), realized_pnl=Decimal(0)
        )
        assert await held.get_for_update(book.id, "AAPL") == created
        with pytest.raises(NotFound):
            await held.get_for_update(book.id + 99, "AAPL")
    async with migrated.connect() as conn:
        assert await Positions(conn).list_for_portfolio(book.id) == [created]


async def test_get_for_update_serializes_read_modify_write(migrated: AsyncEngine) -> None:
    """Concurrent buys of a new symbol: every increment survives (no lost update)."""
    async with migrated.begin() as conn:
        await Assets(conn).upsert_many([asset("AAPL")])
        _, book = await user_with_portfolio(conn)

    async def buy_one() -> None:
        async with migrated.begin() as conn:
            held = Positions(conn)
            current = await held.get_for_update(book.id, "AAPL")
            quantity = Decimal(0) if current is None else current.quantity
            await asyncio.sleep(0.001)  # let the other writers run between read and write
            await held.upsert(
                book.id,
                "AAPL",
                quantity=quantity + 1,
                cost_basis=(quantity + 1) * 10,
                realized_pnl=Decimal(0),
            )

    await asyncio.gather(*(buy_one() for _ in range(8)))
    async with migrated.connect() as conn:
        [position] = await Positions(conn).list_for_portfolio(book.id)
    assert position.quantity == 8
    assert position.cost_basis == 80


# -- transactions


async def test_transactions_insert_and_list_newest_first(conn: AsyncConnection) -> None:
    await Assets(conn).upsert_many([asset("AAPL")])
    _, book = await user_with_portfolio(conn)
    ledger = Transactions(conn)
    buy = await ledger.insert(
        book.id,
        "AAPL",
        side=Side.BUY,
        quantity=Decimal(10),
        price=Decimal("150.25"),
        executed_at=T0,
    )
    sell = await ledger.insert(
        book.id,
        "AAPL",
        side=Side.SELL,
        quantity=Decimal("2.5"),
        price=Decimal("151"),
        executed_at=T0 + timedelta(minutes=1),
    )
    same_time = await ledger.insert(
        book.id,
        "AAPL",
        side=Side.BUY,
        quantity=Decimal(1),
        price=Decimal(0),
        executed_at=T0 + timedelta(minutes=1),
    )
    assert buy.side is Side.BUY
    assert (sell.side, sell.quantity, sell.price) == (Side.SELL, Decimal("2.5"), Decimal(151))
    assert await ledger.list_for_portfolio(book.id) == [same_time, sell, buy]
    assert await ledger.list_for_portfolio(book.id, limit=2) == [same_time, sell]
    assert await ledger.list_for_portfolio(book.id + 99) == []


@pytest.mark.parametrize(
    ("side", "quantity", "price", "error"),
    [
        ("hold", Decimal(1), Decimal(1), "Side"),
        (Side.BUY, Decimal(0), Decimal(1), "quantity must be > 0"),
        (Side.BUY, Decimal("-1"), Decimal(1), "quantity must be > 0"),
        (Side.SELL, Decimal(1), Decimal("-0.01"), "price must be >= 0"),
    ],
)
async def test_transactions_refuse_impossible_values_before_sql(
    conn: AsyncConnection, side: Any, quantity: Decimal, price: Decimal, error: str
) -> None:
    await Assets(conn).upsert_many([asset("AAPL")])
    _, book = await user_with_portfolio(conn)
    with pytest.raises(ValueError, match=error):
        await Transactions(conn).insert(
            book.id, "AAPL", side=side, quantity=quantity, price=price, executed_at=T0
        )


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("side", "hold", "ck_transactions_side"),
        ("quantity", Decimal(0), "ck_transactions_quantity_positive"),
        ("quantity", Decimal("-0.5"), "ck_transactions_quantity_positive"),
        ("price", Decimal("-0.0000000001"), "ck_transactions_price_not_negative"),
    ],
)
async def test_the_database_checks_hold_even_for_text_amounts(
    conn: AsyncConnection, column: str, value: Any, check: str
) -> None:
    """The CHECKs themselves, bypassing the repository (SQLite stores amounts as TEXT)."""
    await Assets(conn).upsert_many([asset("AAPL")])
    _, book = await user_with_portfolio(conn)
    valid: dict[str, Any] = {
        "portfolio_id": book.id,
        "symbol": "AAPL",
        "side": "sell",
        "quantity": Decimal("0.0000000001"),
        "price": Decimal(0),
        "executed_at": T0,
    }
    await conn.execute(insert(transactions).values(valid))
    with pytest.raises(IntegrityError, match=check):
        async with conn.begin_nested():
            await conn.execute(insert(transactions).values(valid | {column: value}))


async def test_transactions_refer_to_existing_portfolios_and_assets(conn: AsyncConnection) -> None:
    await Assets(conn).upsert_many([asset("AAPL")])
    _, book = await user_with_portfolio(conn)
    ledger = Transactions(conn)
    for portfolio_id, symbol in ((book.id + 99, "AAPL"), (book.id, "NOPE")):
        with pytest.raises(NotFound):
            await ledger.insert(
                portfolio_id,
                symbol,
                side=Side.BUY,
                quantity=Decimal(1),
                price=Decimal(1),
                executed_at=T0,
            )


# -- cash


async def test_cash_set_under_the_lock_and_the_ledger_newest_first(conn: AsyncConnection) -> None:
    await Assets(conn).upsert_many([asset("AAPL")])
    _, book = await user_with_portfolio(conn)
    locked = await Portfolios(conn).get_for_update(book.id)
    assert (locked.cash, locked.net_deposits) == (0, 0)
    written = await Portfolios(conn).set_cash(
        book.id, cash=Decimal("1000.5"), net_deposits=Decimal("-20.25")
    )
    assert (written.cash, written.net_deposits) == (Decimal("1000.5"), Decimal("-20.25"))
    assert await Portfolios(conn).get(book.id) == written
    buy = await Transactions(conn).insert(
        book.id, "AAPL", side=Side.BUY, quantity=Decimal(1), price=Decimal(5), executed_at=T0
    )
    ledger = CashTransactions(conn)
    deposit = await ledger.insert(
        book.id, kind=CashKind.DEPOSIT, amount=Decimal("1000.5"), executed_at=T0
    )
    assert deposit == CashTransaction(
        id=deposit.id,
        portfolio_id=book.id,
        kind=CashKind.DEPOSIT,
        amount=Decimal("1000.5"),
        executed_at=T0,
        transaction_id=None,
    )
    later = T0 + timedelta(minutes=1)
    automatic = await ledger.insert(
        book.id, kind=CashKind.DEPOSIT, amount=Decimal(5), executed_at=later, transaction_id=buy.id
    )
    withdrawal = await ledger.insert(
        book.id, kind=CashKind.WITHDRAWAL, amount=WIDE, executed_at=later
    )
    assert automatic.transaction_id == buy.id
    assert withdrawal.amount == WIDE  # exact to the last of 28 digits
    assert await ledger.list_for_portfolio(book.id) == [withdrawal, automatic, deposit]
    assert await ledger.list_for_portfolio(book.id, limit=1) == [withdrawal]
    assert await ledger.list_for_portfolio(book.id + 99) == []


async def test_cash_refusals(conn: AsyncConnection) -> None:
    _, book = await user_with_portfolio(conn)
    with pytest.raises(NotFound):
        await Portfolios(conn).get_for_update(book.id + 99)
    with pytest.raises(NotFound):
        await Portfolios(conn).set_cash(book.id + 99, cash=Decimal(1), net_deposits=Decimal(1))
    with pytest.raises(ValueError, match="cannot be negative"):
        await Portfolios(conn).set_cash(book.id, cash=Decimal(-1), net_deposits=Decimal(0))
    with pytest.raises(ValueError, match="does not fit"):
        await Portfolios(conn).set_cash(book.id, cash=Decimal("1e18"), net_deposits=Decimal(0))
    ledger = CashTransactions(conn)
    for kind, amount, message in (
        (CashKind.DEPOSIT, Decimal(0), "must be > 0"),
        (CashKind.WITHDRAWAL, Decimal("-1"), "must be > 0"),
        ("gift", Decimal(1), "CashKind"),
    ):
        with pytest.raises(ValueError, match=message):
            await ledger.insert(book.id, kind=kind, amount=amount, executed_at=T0)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await ledger.insert(book.id + 99, kind=CashKind.DEPOSIT, amount=Decimal(1), executed_at=T0)
    with pytest.raises(NotFound):
        await ledger.insert(
            book.id, kind=CashKind.DEPOSIT, amount=Decimal(1), executed_at=T0, transaction_id=999
        )
    assert (await Portfolios(conn).get(book.id)).cash == 0  # nothing was written


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("kind", "gift", "ck_cash_transactions_kind"),
        ("amount", Decimal(0), "ck_cash_transactions_amount_positive"),
        ("amount", Decimal("-0.0000000001"), "ck_cash_transactions_amount_positive"),
    ],
)
async def test_the_cash_ledger_checks_hold_in_the_database(
    conn: AsyncConnection, column: str, value: Any, check: str
) -> None:
    _, book = await user_with_portfolio(conn)
    valid: dict[str, Any] = {
        "portfolio_id": book.id,
        "kind": "withdrawal",
        "amount": Decimal("0.0000000001"),
        "executed_at": T0,
    }
    await conn.execute(insert(cash_transactions).values(valid))
    with pytest.raises(IntegrityError, match=check):
        async with conn.begin_nested():
            await conn.execute(insert(cash_transactions).values(valid | {column: value}))


async def test_the_portfolio_lock_serializes_cash_read_modify_write(migrated: AsyncEngine) -> None:
    """Concurrent deposits of 1: every one survives (no lost update)."""
    async with migrated.begin() as conn:
        _, book = await user_with_portfolio(conn)

    async def deposit_one() -> None:
        async with migrated.begin() as conn:
            locked = await Portfolios(conn).get_for_update(book.id)
            await asyncio.sleep(0.001)  # let the other writers run between read and write
            await Portfolios(conn).set_cash(
                book.id, cash=locked.cash + 1, net_deposits=locked.net_deposits + 1
            )

    await asyncio.gather(*(deposit_one() for _ in range(8)))
    async with migrated.connect() as conn:
        final = await Portfolios(conn).get(book.id)
    assert (final.cash, final.net_deposits) == (8, 8)


async def test_deleting_a_portfolio_deletes_its_cash_ledger(conn: AsyncConnection) -> None:
    _, book = await user_with_portfolio(conn)
    await CashTransactions(conn).insert(
        book.id, kind=CashKind.DEPOSIT, amount=Decimal(1), executed_at=T0
    )
    await Portfolios(conn).delete(book.id)
    assert (await conn.scalars(select(cash_transactions.c.id))).all() == []


# -- timestamps


async def test_times_come_back_aware_in_utc_and_naive_ones_are_refused(
    conn: AsyncConnection,
) -> None:
    paris = datetime(2026, 3, 2, 15, 30, tzinfo=timezone(timedelta(hours=1)))
    user = await Users(conn).create("alice", at=paris)
    assert user.created_at == paris
    assert user.created_at.tzinfo is UTC
    assert (await Users(conn).by_id(user.id)).created_at.hour == 14
    with pytest.raises(ValueError, match="naive"):
        await Users(conn).create("bob", at=datetime(2026, 1, 1))  # noqa: DTZ001


# -- the engine


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///tickcast.db", "sqlite+aiosqlite:///tickcast.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_urls_get_their_async_driver(url: str, expected: str) -> None:
    assert normalize_url(url).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "sqlite+pysqlite:///x.db", "postgresql+psycopg2://h/db", "::"]
)
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="database_url"):
        make_engine(url)


async def test_sqlite_connections_enforce_foreign_keys_wal_and_wait_for_locks(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pragmas.db'}")
    try:
        async with engine.connect() as conn:
            pragmas = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("foreign_keys", "journal_mode", "busy_timeout")
            ]
    finally:
        await engine.dispose()
    assert pragmas == [1, "wal", 5000]


async def test_postgresql_pool_is_small_and_bounded() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1/unused")  # opens no connection
    pool: Any = engine.sync_engine.pool
    assert (pool.size(), pool.timeout()) == (5, 10.0)
    await engine.dispose()


async def test_an_unreachable_postgresql_fails_fast() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/nothing")
    try:
        with pytest.raises(ConnectionRefusedError):
            async with asyncio.timeout(10), engine.connect():
                pass
    finally:
        await engine.dispose()
