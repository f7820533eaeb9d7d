"""Seed accounts straight into a database file, before a server starts on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from support.publishing import Recording
from tickcast.auth.credentials import new_api_key
from tickcast.portfolio.service import PortfolioService
from tickcast.portfolio.valuation import Side
from tickcast.storage import migrate
from tickcast.storage.engine import make_engine
from tickcast.storage.repositories import ApiKeys, Users


@dataclass
class Account:
    user_id: int
    username: str
    api_key: str
    portfolios: dict[str, int] = field(default_factory=dict)


async def seed(
    database_url: str,
    users: dict[str, dict[str, list[tuple[str, str, str, str]]]],
    permissions: dict[str, str] | None = None,
) -> dict[str, Account]:
    """``{"alice": {"Growth": [("AAPL", "buy", "10", "100")]}}`` -> accounts with keys;
    ``permissions``: a user's key's permissions (``{"alice": "publish:signals"}``)."""
    engine = make_engine(database_url)
    try:
        await migrate.upgrade(engine)
        accounts: dict[str, Account] = {}
        for username, portfolios in users.items():
            key = new_api_key()
            async with engine.begin() as conn:
                user = await Users(conn).create(username)
                await ApiKeys(conn).insert(
                    user.id,
                    prefix=key.prefix,
                    secret_hash=key.secret_hash,
                    name="test",
                    permissions=(permissions or {}).get(username, ""),
                )
            account = accounts[username] = Account(user.id, username, key.token)
            service = PortfolioService(engine, Recording())
            await service.start()
            await service.aclose()
            for name, trades in portfolios.items():
                portfolio = await service.create_portfolio(user.id, name)
                account.portfolios[name] = portfolio.id
                for symbol, side, quantity, price in trades:
                    await service.record_transaction(
                        portfolio.id, symbol, Side(side), Decimal(quantity), Decimal(price)
                    )
        return accounts
    finally:
        await engine.dispose()
