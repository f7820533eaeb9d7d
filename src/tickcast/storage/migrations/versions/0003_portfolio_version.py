"""A version per portfolio: one more per write of its cash and positions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Rules: this file builds exactly what tables.py declares (tests/storage/test_migrations.py
checks it on SQLite and PostgreSQL). Existing portfolios start at version 0: versions are
compared only between states of one portfolio written after this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "portfolios", sa.Column("version", sa.BigInteger(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    # DROP COLUMN needs SQLite 3.35 or newer (as 0002's downgrade).
    op.drop_column("portfolios", "version")
