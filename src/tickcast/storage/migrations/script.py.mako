"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Rules: hand-checked ops, never edited after release; every constraint and index named as
tables.NAMING names it (wrap names in op.f()); a real downgrade. Types are spelled out here
(not imported from tables.py, which moves on): amounts are
``sa.Numeric(28, 10).with_variant(sa.Text(), "sqlite")``, ids
``sa.BigInteger().with_variant(sa.Integer(), "sqlite")``, times
``sa.DateTime(timezone=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
