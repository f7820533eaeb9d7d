"""The async engine: one per process, configured per backend.

Rules:
    - Two backends are supported and tested: SQLite through aiosqlite (the embedded
      default, a file) and PostgreSQL through asyncpg. Each has a configurer in
      ``_BACKENDS``; anything else is a ConfigError at start, not a surprise later.
    - Plain URLs are given their async driver: ``sqlite:///x.db`` becomes
      ``sqlite+aiosqlite:///x.db``, ``postgresql://`` (or ``postgres://``) becomes
      ``postgresql+asyncpg://``.
    - SQLite: every connection enforces foreign keys, uses WAL (readers never block the
      writer) and waits ``busy_timeout_s`` for a lock instead of failing at once. Every
      transaction starts with ``BEGIN IMMEDIATE``: SQLite has one writer at a time anyway,
      and taking the write lock up front is what makes a read-modify-write (a position
      read with ``get_for_update`` then written) safe: without it a second writer would
      read the same row and then fail, or, with the driver's default of beginning only
      at the first write, silently overwrite the first one's update.
    - PostgreSQL: a small pool (the gateway does little SQL; the hot path is in memory),
      ``pool_pre_ping`` so a connection killed by a restart is replaced instead of failing
      a request, and a connect timeout so a dead server fails fast.
    - Callers own transactions: ``async with engine.begin() as conn: ...``; the
      repositories never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tickcast.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineOptions:
    """Connection and pool limits.

    Attributes:
        connect_timeout_s: PostgreSQL: how long opening a connection may take before it
            fails (a dead or unreachable server).
        command_timeout_s: PostgreSQL: the longest a single statement may run; None = no
            limit.
        pool_size: PostgreSQL: connections kept open.
        max_overflow: PostgreSQL: extra connections opened under load, closed when idle.
        pool_timeout_s: PostgreSQL: how long a caller waits for a free connection.
        busy_timeout_s: SQLite: how long a transaction waits for another's write lock.
        echo: log every statement (debugging only).
    """

    connect_timeout_s: float = 5.0
    command_timeout_s: float | None = 60.0
    pool_size: int = 5
    max_overflow: int = 5
    pool_timeout_s: float = 10.0
    busy_timeout_s: float = 5.0
    echo: bool = False


def normalize_url(url: str | URL) -> URL:
    """The URL with its async driver; ConfigError if it cannot be parsed or is unsupported."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database_url is not a database URL: {exc}") from None
    backend, _, driver = parsed.drivername.partition("+")
    backend = "postgresql" if backend == "postgres" else backend
    wanted = _ASYNC_DRIVERS.get(backend)
    if wanted is None:
        supported = ", ".join(sorted(_ASYNC_DRIVERS))
        raise ConfigError(f"database_url: unsupported database {backend!r} (use {supported})")
    if driver and driver != wanted:
        raise ConfigError(f"database_url: use the {backend}+{wanted} driver, not {driver}")
    return parsed.set(drivername=f"{backend}+{wanted}")


def make_engine(url: str | URL, *, options: EngineOptions | None = None) -> AsyncEngine:
    """An AsyncEngine for ``url`` (SQLite or PostgreSQL), configured as the rules say.

    Creating the engine opens no connection; the first ``connect()`` or ``begin()`` does
    (and, for SQLite, creates the file: its directory must exist).

    Raises:
        ConfigError: the URL cannot be parsed, or names an unsupported database or driver.
    """
    options = options or EngineOptions()
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    return _BACKENDS[backend](parsed, options)


def _sqlite_engine(url: URL, options: EngineOptions) -> AsyncEngine:
    engine = create_async_engine(url, echo=options.echo)
    busy_ms = round(options.busy_timeout_s * 1000)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below, not the driver, start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "begin", on_begin)
    return engine


def _postgresql_engine(url: URL, options: EngineOptions) -> AsyncEngine:
    connect_args: dict[str, Any] = {"timeout": options.connect_timeout_s}
    if options.command_timeout_s is not None:
        connect_args["command_timeout"] = options.command_timeout_s
    return create_async_engine(
        url,
        echo=options.echo,
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        pool_timeout=options.pool_timeout_s,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


#: backend name -> the async driver it is used with.
_ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
_BACKENDS: dict[str, Callable[[URL, EngineOptions], AsyncEngine]] = {
    "sqlite": _sqlite_engine,
    "postgresql": _postgresql_engine,
}
