"""Review of the public leaderboard (issue 12, Front 4): defects reproduced on the pure
board (``tickcast.leaderboard.board.Leaderboard``) and on the service's opt-in listener.

Each test states what docs/leaderboard.md promises and fails (xfail, strict) until the
defect is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from support.clock import ManualClock
from support.publishing import Recording
from tickcast.leaderboard import service as service_module
from tickcast.leaderboard.board import Leaderboard
from tickcast.leaderboard.service import LeaderboardService
from tickcast.model.leaderboard import BOARD_CHANNEL, BOARD_KEY, TOP_CHANNEL, BoardMessage
from tickcast.model.portfolio import PortfolioValue
from tickcast.model.topic import Topic
from tickcast.storage.records import Portfolio

BOARD = Topic(BOARD_CHANNEL, BOARD_KEY)


@dataclass(frozen=True)
class Value:
    """What the board ranks a portfolio from (``board.Valued``)."""

    portfolio_id: int
    name: str
    total_value: Decimal
    net_deposits: Decimal = Decimal(1000)
    daily_change: Decimal = Decimal(0)
    daily_change_percent: Decimal = Decimal(0)


def worth(portfolio_id: int, total: str, daily_change: str = "0") -> Value:
    return Value(
        portfolio_id, f"P{portfolio_id}", Decimal(total), daily_change=Decimal(daily_change)
    )


def three_then_third_to_the_top() -> Leaderboard:
    """P1, P2, P3 at 0 %, -0.1 %, -0.2 % (ranks 1, 2, 3), marked; then P3 rises to
    +30 % (rank 1) and the board flushes that move."""
    board = Leaderboard(snapshot_limit=0)
    for pid, total in ((1, "1000"), (2, "999"), (3, "998")):
        board.enter(worth(pid, total), "owner")
    board.flush(0.0)
    board.watch(BOARD, 0.0)
    board.apply(worth(3, "1300"))
    [update] = board.flush(1.0)
    assert isinstance(update, BoardMessage)
    moved = {e.entry.portfolio_id: (e.rank, e.previous_rank) for e in update.moved}
    assert moved[3] == (1, 3)  # as documented: rank 1, up from 3
    return board


def test_previous_rank_survives_a_value_change_at_the_same_rank() -> None:
    board = three_then_third_to_the_top()
    board.apply(worth(3, "1301", daily_change="1"))  # still rank 1; its value changed
    [update] = board.flush(2.0)
    assert isinstance(update, BoardMessage)
    [row] = update.updated
    assert (row.entry.portfolio_id, row.rank) == (3, 1)
    assert row.previous_rank == 3  # it has not moved since it rose from 3


def test_an_unwatched_view_shows_the_same_previous_rank_as_the_streamed_board() -> None:
    board = three_then_third_to_the_top()
    streamed = {e.entry.portfolio_id: e.previous_rank for e in board.snapshot(2.0).entries}
    assert streamed[3] == 3
    polled = {e.entry.portfolio_id: e.previous_rank for e in board.top(3, 2.0).entries}
    assert polled == streamed
    board.watch(Topic(TOP_CHANNEL, "3"), 2.0)  # a new /ws/top?n=3 subscriber
    fresh = {e.entry.portfolio_id: e.previous_rank for e in board.top(3, 2.0).entries}
    assert fresh == streamed


# -- the service: opt-in and opt-out told concurrently


class Gate:
    """``Users(conn).names`` held until ``open`` (the database read of an owner's name
    that a first opt-in awaits)."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    def users(self, _conn: object) -> Any:
        gate = self

        class HeldUsers:
            async def names(self, ids: Iterable[int]) -> dict[int, str]:
                gate.reading.set()
                await gate.release.wait()
                return {i: f"user{i}" for i in ids}

        return HeldUsers()


class Engine:
    """Enough of an AsyncEngine for the service (the repository is the gate's)."""

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[object]:
        yield object()


class OnePortfolio:
    """The portfolio service's side: one private portfolio of owner 5."""

    def __init__(self) -> None:
        self.record = Portfolio(
            id=7,
            owner_id=5,
            name="Growth",
            created_at=datetime(2026, 12, 5, tzinfo=UTC),
            cash=Decimal(0),
            net_deposits=Decimal(1000),
            version=1,
            public=False,
        )

    def public_portfolios(self) -> list[Portfolio]:
        return []

    def value(self, portfolio_id: int, now: float | None = None) -> PortfolioValue:
        d = Decimal
        return PortfolioValue(
            portfolio_id, "Growth", 5, d(1100), d(1000), d(0), d(0), d(100), d(0), d(1100),
            d(0), d(1000), 0.0,
        )  # fmt: skip

    def on_public(self, listener: Callable[[Portfolio], Awaitable[None]]) -> None:
        pass


async def test_an_opt_out_during_a_first_opt_in_leaves_the_portfolio_off_the_board(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate()
    monkeypatch.setattr(service_module, "Users", gate.users)
    portfolios = OnePortfolio()
    service = LeaderboardService(
        Engine(),  # type: ignore[arg-type]
        portfolios,
        Recording(),
        clock=ManualClock(),
    )
    opted_in = dataclasses.replace(portfolios.record, public=True)
    opted_out = dataclasses.replace(portfolios.record, public=False)
    # PATCH {"public": true} then {"public": false}: each stored, then told, in order
    first = asyncio.create_task(service.on_public(opted_in))
    await asyncio.wait_for(gate.reading.wait(), 30)  # the opt-in reads the owner's name
    await service.on_public(opted_out)  # the opt-out is told meanwhile
    gate.release.set()
    await asyncio.wait_for(first, 30)
    assert not service.is_public(7)  # its owner opted out last: it must not be shown
