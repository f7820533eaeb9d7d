"""User roles and the public leaderboard flag.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Rules: this file builds exactly what tables.py declares (tests/storage/test_migrations.py
checks it on SQLite and PostgreSQL). Existing users become "user" (an operator is made
with ``tickcast users create NAME --role operator`` or ``users set-role``); existing
portfolios stay private until their owner opts them in.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("role", sa.String(16), nullable=False, server_default="user"))
    op.add_column(
        "portfolios",
        sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # DROP COLUMN needs SQLite 3.35 or newer (as 0002's downgrade).
    op.drop_column("portfolios", "public")
    op.drop_column("users", "role")
