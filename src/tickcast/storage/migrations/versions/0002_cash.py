"""Cash: a balance and net deposits per portfolio, and the ledger of deposits and withdrawals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

Rules: this file builds exactly what tables.py declares (tests/storage/test_migrations.py
checks it on SQLite and PostgreSQL). Types are spelled out, not imported from tables.py,
and so is the cash rule the backfill replays: a migration keeps the rule of its revision.

Backfill: a portfolio that traded before this revision gets the cash it would have had
under the rule of ``portfolio/cash.py``: its trades are replayed in the order they were
recorded (by id, the order in which the positions were computed); a buy pays its amount
(``quantity * price`` to 10 places, half-even) from the cash, and what the cash lacks is
recorded as an automatic deposit linked to that buy; a sell adds its amount. So after
the upgrade, for every portfolio, total value = net deposits + unrealized + realized
P&L, as for a portfolio created after it.

SQLite: the cash column and its CHECK are added in one ``ALTER TABLE ... ADD COLUMN``
(SQLite cannot add a constraint to an existing table, and rebuilding ``portfolios``
would cascade-delete every position and transaction through the foreign keys); the
downgrade's ``DROP COLUMN`` needs SQLite 3.35 or newer.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# NUMERIC(28, 10); exact TEXT on SQLite, whose NUMERIC keeps only 15 digits.
AMOUNT = sa.Numeric(28, 10).with_variant(sa.Text(), "sqlite")
# BIGINT; INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_PLACES = Decimal("1e-10")
_CONTEXT = Context(prec=100, rounding=ROUND_HALF_EVEN)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE portfolios ADD COLUMN cash TEXT DEFAULT '0' NOT NULL "
            "CONSTRAINT ck_portfolios_cash_not_negative CHECK (CAST(cash AS NUMERIC) >= 0)"
        )
    else:
        op.add_column("portfolios", sa.Column("cash", AMOUNT, nullable=False, server_default="0"))
        op.create_check_constraint(
            op.f("ck_portfolios_cash_not_negative"), "portfolios", "CAST(cash AS NUMERIC) >= 0"
        )
    op.add_column(
        "portfolios", sa.Column("net_deposits", AMOUNT, nullable=False, server_default="0")
    )
    op.create_table(
        "cash_transactions",
        sa.Column("id", ID, nullable=False),
        sa.Column("portfolio_id", ID, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transaction_id", ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cash_transactions")),
        sa.ForeignKeyConstraint(
            ["portfolio_id"],
            ["portfolios.id"],
            name=op.f("fk_cash_transactions_portfolio_id_portfolios"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["transactions.id"],
            name=op.f("fk_cash_transactions_transaction_id_transactions"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "kind IN ('deposit', 'withdrawal')", name=op.f("ck_cash_transactions_kind")
        ),
        sa.CheckConstraint(
            "CAST(amount AS NUMERIC) > 0", name=op.f("ck_cash_transactions_amount_positive")
        ),
    )
    op.create_index(
        op.f("ix_cash_transactions_portfolio_id_executed_at"),
        "cash_transactions",
        ["portfolio_id", "executed_at"],
    )
    op.create_index(
        op.f("ix_cash_transactions_transaction_id"), "cash_transactions", ["transaction_id"]
    )
    _backfill(bind)


def downgrade() -> None:
    op.drop_index(op.f("ix_cash_transactions_transaction_id"), table_name="cash_transactions")
    op.drop_index(
        op.f("ix_cash_transactions_portfolio_id_executed_at"), table_name="cash_transactions"
    )
    op.drop_table("cash_transactions")
    op.drop_column("portfolios", "net_deposits")
    if op.get_bind().dialect.name != "sqlite":  # on SQLite the column takes its CHECK along
        op.drop_constraint(op.f("ck_portfolios_cash_not_negative"), "portfolios", type_="check")
    op.drop_column("portfolios", "cash")


# -- the backfill (see the module docstring)

_trades = sa.table(
    "transactions",
    sa.column("id", ID),
    sa.column("portfolio_id", ID),
    sa.column("side", sa.String(4)),
    sa.column("quantity", AMOUNT),
    sa.column("price", AMOUNT),
    sa.column("executed_at", sa.DateTime(timezone=True)),
)
_portfolios = sa.table(
    "portfolios", sa.column("id", ID), sa.column("cash", AMOUNT), sa.column("net_deposits", AMOUNT)
)
_cash = sa.table(
    "cash_transactions",
    sa.column("portfolio_id", ID),
    sa.column("kind", sa.String(10)),
    sa.column("amount", AMOUNT),
    sa.column("executed_at", sa.DateTime(timezone=True)),
    sa.column("transaction_id", ID),
)


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _stored(value: Decimal, dialect: str) -> Any:
    """An amount as tables.py's ``Amount`` writes it (canonical text on SQLite)."""
    amount = value.quantize(_PLACES, context=_CONTEXT)
    return format(amount, "f") if dialect == "sqlite" else amount


def _backfill(bind: sa.Connection) -> None:
    dialect = bind.dialect.name
    balances: dict[int, tuple[Decimal, Decimal]] = {}
    deposits: list[dict[str, Any]] = []
    rows = bind.execute(sa.select(_trades).order_by(_trades.c.id)).mappings()
    for row in rows:
        cash, net = balances.get(row["portfolio_id"], (Decimal(0), Decimal(0)))
        amount = _CONTEXT.multiply(_decimal(row["quantity"]), _decimal(row["price"])).quantize(
            _PLACES, context=_CONTEXT
        )
        if row["side"] == "sell":
            cash += amount
        elif amount > cash:
            shortfall = amount - cash
            net += shortfall
            cash = Decimal(0)
            deposits.append(
                {
                    "portfolio_id": row["portfolio_id"],
                    "kind": "deposit",
                    "amount": _stored(shortfall, dialect),
                    "executed_at": row["executed_at"],
                    "transaction_id": row["id"],
                }
            )
        else:
            cash -= amount
        balances[row["portfolio_id"]] = (cash, net)
    if deposits:
        bind.execute(_cash.insert(), deposits)
    if balances:
        update = (
            _portfolios.update()
            .where(_portfolios.c.id == sa.bindparam("b_id"))
            .values(cash=sa.bindparam("b_cash"), net_deposits=sa.bindparam("b_net"))
        )
        bind.execute(
            update,
            [
                {"b_id": pid, "b_cash": _stored(cash, dialect), "b_net": _stored(net, dialect)}
                for pid, (cash, net) in balances.items()
            ],
        )
