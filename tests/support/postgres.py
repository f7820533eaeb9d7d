"""A fresh PostgreSQL database of a test's own on the machine's server (skipped when it
cannot be reached, failed under ``CI=true``: see ``storage/conftest.py``), dropped after."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

from storage.conftest import PG_HOST, PG_PORT, PG_USER, _admin_connection


@contextlib.asynccontextmanager
async def fresh_database(prefix: str = "tickcast_test") -> AsyncIterator[str]:
    """Yields the SQLAlchemy URL (asyncpg) of a new, empty database."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = await _admin_connection()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
