"""Storage fixtures: every test runs on SQLite and on PostgreSQL.

``database_url`` is a fresh, empty database per test: a file in ``tmp_path`` for SQLite;
for PostgreSQL a database ``tickcast_test_<hex>`` created on ``127.0.0.1:5432`` (user
postgres, trust auth) through the ``test`` database, and dropped afterwards. When
PostgreSQL cannot be reached the PostgreSQL half is skipped locally, but fails when
``CI=true``: CI must prove both backends, not quietly test one.

Select a backend with ``-m postgresql`` / ``-m "not postgresql"``, or ``-k sqlite``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tickcast.storage import migrate
from tickcast.storage.engine import make_engine

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_ADMIN_DATABASE = "test"


async def _admin_connection() -> asyncpg.Connection:
    """A connection to the admin database, or a skip (a failure under CI=true)."""
    try:
        return await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DATABASE, timeout=5
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable: {exc!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh, empty database on the backend of the test's parameter."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tickcast.db'}"
        return
    name = f"tickcast_test_{secrets.token_hex(6)}"
    admin = await _admin_connection()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the empty database (no schema)."""
    eng = make_engine(database_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def migrated(engine: AsyncEngine) -> AsyncEngine:
    """The engine, with the schema migrated to head."""
    await migrate.upgrade(engine)
    return engine


@pytest.fixture
async def conn(migrated: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction on the migrated database, rolled back at the end."""
    async with migrated.connect() as connection:
        await connection.begin()
        yield connection
        await connection.rollback()
