"""API key permissions: what a key allows beyond reading (``publish:signals``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

Rules: this file builds exactly what tables.py declares (tests/storage/test_migrations.py
checks it on SQLite and PostgreSQL). Existing keys get none: a permission is granted
only to a key made with it (``tickcast keys create --permission``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("permissions", sa.String(200), nullable=False, server_default=""),
    )


def downgrade() -> None:
    # DROP COLUMN needs SQLite 3.35 or newer (as 0002's downgrade).
    op.drop_column("api_keys", "permissions")
