"""The leaderboard service on each backend (SQLite and PostgreSQL): the public
portfolios and their owners' names loaded at start, opt-in and opt-out through the
portfolio service (stored, then told), and the board's views as they are published."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from support.clock import ManualClock
from support.publishing import Recording
from tickcast.leaderboard.service import LeaderboardService
from tickcast.model.leaderboard import BOARD_CHANNEL, BoardMessage
from tickcast.model.topic import Topic
from tickcast.portfolio.service import PortfolioService
from tickcast.portfolio.valuation import Side
from tickcast.storage.repositories import Portfolios, Users


async def test_public_portfolios_are_ranked_with_their_owners_names(migrated: AsyncEngine) -> None:
    async with migrated.begin() as conn:
        alice = await Users(conn).create("alice")
        bob = await Users(conn).create("bob")
    portfolios = PortfolioService(migrated, Recording())
    await portfolios.start()
    shown = await portfolios.create_portfolio(alice.id, "Shown", public=True)
    hidden = await portfolios.create_portfolio(bob.id, "Hidden")
    for pid, price in ((shown.id, "100"), (hidden.id, "100")):
        await portfolios.record_transaction(pid, "ACME", Side.BUY, Decimal(10), Decimal(price))
    await portfolios.aclose()

    # a new process: the flag was stored
    portfolios = PortfolioService(migrated, Recording())
    await portfolios.start()
    published = Recording()
    service = LeaderboardService(
        migrated, portfolios, published, clock=ManualClock(), window_s=1.0, snapshot_limit=10
    )
    portfolios.on_public(service.on_public)
    await service.start()
    try:
        assert [
            (e.entry.portfolio_name, e.entry.owner_name) for e in service.snapshot().entries
        ] == [("Shown", "alice")]
        service.board.watch(Topic(BOARD_CHANNEL, "all"), 0.0)
        stored = await portfolios.set_public(hidden.id, True)
        assert stored.public
        async with migrated.connect() as conn:
            assert (await Portfolios(conn).get(hidden.id)).public
        service.flush()
        [update] = published.events
        assert isinstance(update, BoardMessage)
        assert [(e.entry.owner_name, e.previous_rank) for e in update.entered] == [("bob", None)]
        assert service.is_public(hidden.id)
        await portfolios.set_public(hidden.id, False)
        assert not service.is_public(hidden.id)
        assert [p.id for p in portfolios.public_portfolios()] == [shown.id]
    finally:
        await service.aclose()
        await portfolios.aclose()
