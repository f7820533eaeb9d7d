"""Alembic environment: run the migrations on the connection ``migrate.py`` hands over.

Rules: at run time this file is loaded by ``tickcast.storage.migrate`` with the open
(synchronous facade of an async) connection in ``config.attributes["connection"]``; it
opens nothing itself and commits nothing (the caller's ``engine.begin()`` does). For
developers it also runs under the ``alembic`` command with ``sqlalchemy.url`` set (for
``alembic revision --autogenerate`` or ``--sql``). ``target_metadata`` is tables.py.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from tickcast.errors import ConfigError
from tickcast.storage.engine import make_engine
from tickcast.storage.tables import metadata


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_url(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run_on)
    finally:
        await engine.dispose()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise ConfigError("alembic: set sqlalchemy.url, or run through tickcast.storage.migrate")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_on_url(url))


_main()
