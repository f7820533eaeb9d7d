"""Migrations build exactly tables.py, go down to nothing and up again, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, inspect, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tickcast.storage import migrate
from tickcast.storage.ledger import CashTransactions
from tickcast.storage.records import Asset, AssetKind, CashKind, Side
from tickcast.storage.repositories import (
    Assets,
    Portfolios,
    Transactions,
    Users,
)
from tickcast.storage.tables import metadata, portfolios, users

VERSION_TABLE = "alembic_version"


def _ondelete(options: dict[str, Any]) -> str:
    return str(options.get("ondelete") or "NO ACTION").upper()


def reflected_schema(connection: Connection) -> dict[str, Any]:
    """The database's tickcast tables as plain data (names, types as DDL, constraints)."""
    inspector = inspect(connection)
    dialect = connection.dialect
    schema: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {VERSION_TABLE}):
        pk = inspector.get_pk_constraint(table)
        schema[table] = {
            "columns": [
                (c["name"], c["type"].compile(dialect=dialect), c["nullable"])
                for c in inspector.get_columns(table)
            ],
            "primary_key": (pk["name"], tuple(pk["constrained_columns"])),
            "foreign_keys": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    _ondelete(fk["options"]),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "unique": sorted(
                (uq["name"], tuple(uq["column_names"]))
                for uq in inspector.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(table)
                if "duplicates_constraint" not in ix  # PostgreSQL: a unique constraint's
            ),
            "checks": sorted(ck["name"] for ck in inspector.get_check_constraints(table)),
        }
    return schema


def declared_schema(dialect: Dialect) -> dict[str, Any]:
    """tables.py as the same plain data, compiled for ``dialect``."""
    from sqlalchemy import CheckConstraint, ForeignKeyConstraint, UniqueConstraint

    schema: dict[str, Any] = {}
    for name in sorted(metadata.tables):
        table = metadata.tables[name]
        constraints = table.constraints
        schema[name] = {
            "columns": [
                (c.name, c.type.compile(dialect=dialect), c.nullable) for c in table.columns
            ],
            "primary_key": (
                table.primary_key.name,
                tuple(c.name for c in table.primary_key.columns),
            ),
            "foreign_keys": sorted(
                (
                    fk.name,
                    tuple(fk.column_keys),
                    fk.referred_table.name,
                    tuple(e.column.name for e in fk.elements),
                    _ondelete({"ondelete": fk.ondelete}),
                )
                for fk in constraints
                if isinstance(fk, ForeignKeyConstraint)
            ),
            "unique": sorted(
                (uq.name, tuple(c.name for c in uq.columns))
                for uq in constraints
                if isinstance(uq, UniqueConstraint)
            ),
            "indexes": sorted(
                (ix.name, tuple(c.name for c in ix.columns), bool(ix.unique))
                for ix in table.indexes
            ),
            "checks": sorted(ck.name for ck in constraints if isinstance(ck, CheckConstraint)),
        }
    return schema


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {VERSION_TABLE}


async def test_upgrade_head_creates_exactly_the_schema_of_tables_py(migrated: AsyncEngine) -> None:
    async with migrated.connect() as conn:
        reflected = await conn.run_sync(reflected_schema)
        declared = declared_schema(conn.dialect)
    assert set(reflected) == {
        "users",
        "api_keys",
        "assets",
        "portfolios",
        "positions",
        "transactions",
        "cash_transactions",
    }
    for table in declared:
        assert reflected[table] == declared[table], table


async def test_migrated_schema_equals_create_all(migrated: AsyncEngine) -> None:
    """Reflection of the migration and of ``metadata.create_all`` agree, check text included."""

    def full(connection: Connection) -> dict[str, Any]:
        inspector = inspect(connection)
        return {
            table: {
                "schema": reflected_schema(connection)[table],
                "checks": sorted(
                    (ck["name"], " ".join(ck["sqltext"].split()))
                    for ck in inspector.get_check_constraints(table)
                ),
            }
            for table in _tables(connection)
        }

    async with migrated.connect() as conn:
        from_migration = await conn.run_sync(full)
    await migrate.downgrade(migrated)
    async with migrated.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with migrated.connect() as conn:
        from_metadata = await conn.run_sync(full)
    async with migrated.begin() as conn:
        await conn.run_sync(metadata.drop_all)
    assert from_migration == from_metadata


async def test_autogenerate_finds_no_difference(migrated: AsyncEngine) -> None:
    async with migrated.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_autogenerate_sees_a_difference_on_an_empty_database(engine: AsyncEngine) -> None:
    """The comparison is live: without the migration it reports every table missing."""
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    added = {op[1].name for op in diff if op[0] == "add_table"}
    assert added == set(metadata.tables)


async def test_downgrade_base_removes_every_table_and_upgrade_works_again(
    engine: AsyncEngine,
) -> None:
    assert await migrate.current(engine) is None
    await migrate.upgrade(engine)
    assert await migrate.current(engine) == migrate.head() == "0005"
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) == set(metadata.tables)

    await migrate.downgrade(engine)
    assert await migrate.current(engine) is None
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) == set()

    await migrate.upgrade(engine)
    assert await migrate.current(engine) == "0005"
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) == set(metadata.tables)
        assert await conn.run_sync(_diff) == []


async def test_upgrade_of_a_current_database_changes_nothing(migrated: AsyncEngine) -> None:
    async with migrated.connect() as conn:
        before = await conn.run_sync(reflected_schema)
    await migrate.upgrade(migrated)
    async with migrated.connect() as conn:
        assert await conn.run_sync(reflected_schema) == before
    assert await migrate.current(migrated) == "0005"


async def test_upgrade_to_an_explicit_revision(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine, "0001")
    assert await migrate.current(engine) == "0001"
    await migrate.downgrade(engine, "base")
    assert await migrate.current(engine) is None


async def test_migrations_run_from_any_directory_without_alembic_ini(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    await migrate.upgrade(engine)
    assert await migrate.current(engine) == "0005"
    assert list(elsewhere.iterdir()) == []


def test_scripts_are_package_data_with_one_linear_history() -> None:
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    location = Path(scripts.dir)
    assert location.parts[-3:] == ("tickcast", "storage", "migrations")
    assert (location / "env.py").is_file()
    assert (location / "script.py.mako").is_file()
    assert scripts.get_heads() == ["0005"]
    revisions = [s.revision for s in scripts.walk_revisions()]
    assert revisions == ["0005", "0004", "0003", "0002", "0001"]


# -- 0002: cash, and the backfill of portfolios that traded before it


async def _trade_at_0001(engine: AsyncEngine) -> tuple[int, int, int]:
    """Three portfolios written at revision 0001: two that traded, one that never did."""
    at = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    await migrate.upgrade(engine, "0001")
    async with engine.begin() as conn:
        # raw rows, as revision 0001 has them (today's repositories name later columns)
        user_id = (
            await conn.execute(
                insert(users).values(username="alice", created_at=at).returning(users.c.id)
            )
        ).scalar_one()
        await Assets(conn).upsert_many(
            [
                Asset(
                    symbol=s,
                    name=s,
                    kind=AssetKind.STOCK,
                    last_price=Decimal(1),
                    previous_close=None,
                    updated_at=at,
                )
                for s in ("A", "B")
            ]
        )
        ids = []
        for name in ("growth", "small", "empty"):
            row = await conn.execute(
                insert(portfolios)
                .values(owner_id=user_id, name=name, created_at=at)
                .returning(portfolios.c.id)
            )
            ids.append(row.scalar_one())
        growth, small, empty = ids
        trades = [
            (growth, "A", Side.BUY, "10", "100"),  # cash 0 -> deposit 1000
            (small, "B", Side.BUY, "1.5", "10.01"),  # 15.015 -> deposit 15.015
            (growth, "A", Side.BUY, "10", "110"),  # deposit 1100
            (growth, "A", Side.SELL, "5", "120"),  # cash 600
            (growth, "B", Side.BUY, "2", "100"),  # cash 400
            (small, "B", Side.SELL, "0.5", "11"),  # cash 5.5
            (growth, "B", Side.BUY, "1", "500"),  # 100 short -> deposit 100, cash 0
        ]
        for pid, symbol, side, quantity, price in trades:
            await Transactions(conn).insert(
                pid,
                symbol,
                side=side,
                quantity=Decimal(quantity),
                price=Decimal(price),
                executed_at=at,
            )
    return growth, small, empty


async def test_upgrade_to_0002_backfills_the_cash_of_portfolios_that_traded(
    engine: AsyncEngine,
) -> None:
    growth, small, empty = await _trade_at_0001(engine)
    await migrate.upgrade(engine)
    async with engine.connect() as conn:
        books = {p.id: p for p in await Portfolios(conn).list_for_owner(1)}
        assert (books[growth].cash, books[growth].net_deposits) == (0, 2200)
        assert (books[small].cash, books[small].net_deposits) == (Decimal("5.5"), Decimal("15.015"))
        assert (books[empty].cash, books[empty].net_deposits) == (0, 0)
        ledger = await CashTransactions(conn).list_for_portfolio(growth)
        trades = {t.id: t for t in await Transactions(conn).list_for_portfolio(growth)}
        assert sorted(c.amount for c in ledger) == [100, 1000, 1100]
        assert {c.kind for c in ledger} == {CashKind.DEPOSIT}
        for deposit in ledger:  # each linked to the buy it paid for
            assert deposit.transaction_id is not None
            bought = trades[deposit.transaction_id]
            assert bought.price * bought.quantity >= deposit.amount
        assert await CashTransactions(conn).list_for_portfolio(empty) == []

    # down and up again: the trades survive and the backfill gives the same balances
    await migrate.downgrade(engine, "0001")
    async with engine.connect() as conn:
        assert "cash" not in {c["name"] for c in await conn.run_sync(_columns, "portfolios")}
        assert len(await Transactions(conn).list_for_portfolio(growth)) == 5
    await migrate.upgrade(engine)
    async with engine.connect() as conn:
        again = await Portfolios(conn).get(growth)
        assert (again.cash, again.net_deposits) == (0, 2200)
        assert len(await CashTransactions(conn).list_for_portfolio(growth)) == 3
        assert await conn.run_sync(_diff) == []


def _columns(connection: Connection, table: str) -> list[dict[str, Any]]:
    return list(inspect(connection).get_columns(table))  # type: ignore[arg-type]


async def test_the_database_refuses_a_negative_cash_balance(migrated: AsyncEngine) -> None:
    """The CHECK added by 0002 holds on both backends (TEXT amounts on SQLite)."""
    async with migrated.begin() as conn:
        user = await Users(conn).create("alice")
        book = await Portfolios(conn).create(user.id, "main")
    async with migrated.begin() as conn:
        with pytest.raises(IntegrityError, match="ck_portfolios_cash_not_negative"):
            await conn.execute(update(portfolios).where(portfolios.c.id == book.id).values(cash=-1))
