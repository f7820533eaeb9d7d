"""Initial schema: users, API keys, assets, portfolios, positions, transactions.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Rules: this file builds exactly what tables.py declares (tests/storage/test_migrations.py
checks it on SQLite and PostgreSQL). Types are spelled out, not imported from tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# NUMERIC(28, 10); exact TEXT on SQLite, whose NUMERIC keeps only 15 digits.
AMOUNT = sa.Numeric(28, 10).with_variant(sa.Text(), "sqlite")
# BIGINT; INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("last_used_at", _time(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_keys_user_id_users"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_api_keys_prefix"), "api_keys", ["prefix"], unique=True)
    op.create_index(op.f("ix_api_keys_user_id"), "api_keys", ["user_id"])
    op.create_table(
        "assets",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("last_price", AMOUNT, nullable=False),
        sa.Column("previous_close", AMOUNT, nullable=True),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", name=op.f("pk_assets")),
        sa.CheckConstraint(
            "kind IN ('stock', 'crypto', 'etf', 'index')", name=op.f("ck_assets_kind")
        ),
    )
    op.create_table(
        "portfolios",
        sa.Column("id", ID, nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portfolios")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_portfolios_owner_id_name")),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_portfolios_owner_id_users"),
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "positions",
        sa.Column("id", ID, nullable=False),
        sa.Column("portfolio_id", ID, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("quantity", AMOUNT, nullable=False),
        sa.Column("cost_basis", AMOUNT, nullable=False),
        sa.Column("realized_pnl", AMOUNT, nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
        sa.UniqueConstraint(
            "portfolio_id", "symbol", name=op.f("uq_positions_portfolio_id_symbol")
        ),
        sa.ForeignKeyConstraint(
            ["portfolio_id"],
            ["portfolios.id"],
            name=op.f("fk_positions_portfolio_id_portfolios"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["symbol"], ["assets.symbol"], name=op.f("fk_positions_symbol_assets")
        ),
    )
    op.create_table(
        "transactions",
        sa.Column("id", ID, nullable=False),
        sa.Column("portfolio_id", ID, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("quantity", AMOUNT, nullable=False),
        sa.Column("price", AMOUNT, nullable=False),
        sa.Column("executed_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.ForeignKeyConstraint(
            ["portfolio_id"],
            ["portfolios.id"],
            name=op.f("fk_transactions_portfolio_id_portfolios"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["symbol"], ["assets.symbol"], name=op.f("fk_transactions_symbol_assets")
        ),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_transactions_side")),
        sa.CheckConstraint(
            "CAST(quantity AS NUMERIC) > 0", name=op.f("ck_transactions_quantity_positive")
        ),
        sa.CheckConstraint(
            "CAST(price AS NUMERIC) >= 0", name=op.f("ck_transactions_price_not_negative")
        ),
    )
    op.create_index(
        op.f("ix_transactions_portfolio_id_executed_at"),
        "transactions",
        ["portfolio_id", "executed_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_transactions_portfolio_id_executed_at"), table_name="transactions")
    op.drop_table("transactions")
    op.drop_table("positions")
    op.drop_table("portfolios")
    op.drop_table("assets")
    op.drop_index(op.f("ix_api_keys_user_id"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_prefix"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("users")
