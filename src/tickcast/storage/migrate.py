"""Schema migrations, run from code: ``await upgrade(engine)`` at start, nothing else.

Rules:
    - Alembic runs programmatically, inside ``AsyncConnection.run_sync``, with a Config
      built here: the scripts are found as package data (``tickcast.storage:migrations``),
      so no alembic.ini and no working directory are needed; it works from a wheel.
    - Each call is one transaction: a migration that fails leaves the schema as it was on
      PostgreSQL (transactional DDL); on SQLite the write lock is held throughout.
    - On PostgreSQL the run holds an advisory lock, so nodes starting together migrate one
      after the other (the second finds the schema current and does nothing).
    - ``tickcast serve`` calls ``upgrade(engine)`` on every start: on a new SQLite file
      that creates the schema, on a current one it is a no-op.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

#: Where the migration scripts live, as a package resource.
SCRIPT_LOCATION = "tickcast.storage:migrations"

# An arbitrary, fixed 64-bit key for pg_advisory_xact_lock ("tickcast" in ASCII).
_PG_LOCK_KEY = 0x7469636B63617374


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config for tickcast's scripts, bound to ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision the scripts define."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise RuntimeError(f"no migration scripts found in {SCRIPT_LOCATION}")
    return revision


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` (default: the newest)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Migrate the database down to ``revision`` (default: no tickcast tables at all)."""
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, revision)


async def current(engine: AsyncEngine) -> str | None:
    """The database's revision; None for a database never migrated (or migrated to base)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")


def _upgrade(connection: Connection, revision: str) -> None:
    _lock(connection)
    command.upgrade(alembic_config(connection), revision)


def _downgrade(connection: Connection, revision: str) -> None:
    _lock(connection)
    command.downgrade(alembic_config(connection), revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
