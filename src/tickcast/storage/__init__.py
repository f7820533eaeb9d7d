"""Storage: accounts, API keys, assets and portfolios in SQL (SQLite or PostgreSQL).

Modules:
    engine: ``make_engine(url)``, the AsyncEngine configured per backend.
    migrate: ``upgrade``, ``downgrade``, ``current``: Alembic run from code.
    tables: the schema (SQLAlchemy Core), the single source of truth for migrations.
    records: the frozen rows the repositories return (Decimal money, aware UTC times).
    repositories: ``Users``, ``ApiKeys``, ``Assets``, ``Portfolios``, ``Positions``,
        ``Transactions``, each a thin object over a caller's ``AsyncConnection``.
    ledger: ``CashTransactions``, the deposits and withdrawals, the same kind of object.
    errors: ``NotFound`` and ``Conflict``.
    migrations/: the Alembic scripts (package data; no alembic.ini at run time).

Rules: this is a driver: it does I/O and nothing else. No P&L maths (portfolio/), no
hashing of secrets (auth/), no knowledge of hub, fronts, node, app, cli or portfolio.
Money is Decimal from the caller to the column and back; SQL never does arithmetic on it.
"""
