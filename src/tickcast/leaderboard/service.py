"""LeaderboardService: the public leaderboard kept live from the portfolio valuation.

Rules: this is the leaderboard's I/O (a timer, the database for owners' names, the
publisher); every decision is the pure ``board.Leaderboard``'s. Built by
``app.add_leaderboard`` after the portfolio service, so that it starts after that one
migrated and loaded the portfolios:

- ``start``: the public portfolios (``portfolios.public_portfolios``), their owners'
  usernames (``Users.names``, one query) and their current values are ranked;
- ``on_published`` (a tap on the node's publisher): each ``PortfolioValue`` the
  portfolio service publishes (the changed portfolios, every ``update_interval_s``, and
  after each trade or cash movement) re-ranks a public portfolio, O(log n);
- ``on_public`` (the portfolio service's opt-in listener): a portfolio that opted in
  is ranked at once (its owner's name read once, then kept), one that opted out leaves.
  The last decision told wins: an opt-in that awaited its owner's name is dropped when
  another decision on that portfolio was told meanwhile (an opt-out it would undo);
- ``follow``: the hub's first- and last-subscriber hooks on the three leaderboard
  channels say which views someone watches; only those are computed;
- every ``leaderboard_window_ms``: ``flush`` publishes the watched views that changed
  (at most one message per view per window), and every ``leaderboard_snapshot_s`` the
  board's snapshot (while ``/ws/updates`` is watched).

Readers (the front's new subscribers, the polling routes) get the views as shown last
(``snapshot``, ``top``, ``around``): what a socket received is what a poll returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from tickcast.clock import Clock
from tickcast.hub.publisher import Publisher, listens_to
from tickcast.leaderboard.board import Leaderboard
from tickcast.model.envelope import Envelope
from tickcast.model.leaderboard import (
    AROUND_CHANNEL,
    BOARD_CHANNEL,
    TOP_CHANNEL,
    AroundView,
    BoardMessage,
    TopView,
)
from tickcast.model.portfolio import PortfolioValue
from tickcast.model.topic import Topic
from tickcast.observability.faults import Faults
from tickcast.storage.records import Portfolio
from tickcast.storage.repositories import Users

log = logging.getLogger("tickcast.leaderboard")

#: The shortest batching window (``leaderboard_window_ms`` 0 means as often as this).
MIN_WINDOW_S = 0.01


class Portfolios(Protocol):
    """What the leaderboard uses of the portfolio service."""

    def public_portfolios(self) -> list[Portfolio]: ...
    def value(self, portfolio_id: int, now: float | None = None) -> PortfolioValue: ...
    def on_public(self, listener: Callable[[Portfolio], Awaitable[None]]) -> None: ...


class TopicHooks(Protocol):
    """The hub's first- and last-subscriber hooks."""

    def on_first(self, channel: str, hook: Callable[[Topic], None]) -> Callable[[], None]: ...
    def on_last(self, channel: str, hook: Callable[[Topic], None]) -> Callable[[], None]: ...


class LeaderboardService:
    """The live public leaderboard.

    Args:
        engine: the database (owners' usernames).
        portfolios: the portfolio service (public portfolios, values, opt-in).
        publisher: where the leaderboard's messages are published.
        clock: the node's clock (the timer's deadlines; ``ts`` stamps).
        window_s: the batching window of changes.
        snapshot_s: seconds between two snapshots of the board.
        snapshot_limit: the board's entries in a snapshot (0: all).
        faults: where a failed flush is reported (``"service"``).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        portfolios: Portfolios,
        publisher: Publisher,
        *,
        clock: Clock,
        window_s: float = 1.0,
        snapshot_s: float = 30.0,
        snapshot_limit: int = 1000,
        faults: Faults | None = None,
    ) -> None:
        self.engine = engine
        self.portfolios = portfolios
        self.publisher = publisher
        self.clock = clock
        self.window_s = max(MIN_WINDOW_S, window_s)
        self.snapshot_s = snapshot_s
        self.faults = Faults() if faults is None else faults
        self.board = Leaderboard(snapshot_limit)
        self.names: dict[int, str] = {}  # owner id -> username, of public portfolios' owners
        # portfolio id -> the number of its latest decision while one is being applied:
        # an opt-in that awaited is applied only if it is still the latest
        self._deciding: dict[int, int] = {}
        self._decisions = 0
        self._next_snapshot = 0.0
        self._task: asyncio.Task[None] | None = None

    # -- life cycle

    async def start(self) -> None:
        public = self.portfolios.public_portfolios()
        owners = {p.owner_id for p in public}
        async with self.engine.connect() as conn:
            self.names.update(await Users(conn).names(owners))
        now = self.clock.wall()
        for portfolio in public:
            self._enter(portfolio, now)
        self.board.flush(now)  # the mark: what follows is news
        self.board.ranking.settle()  # and what is loaded now is not (unmoved, not new)
        self._next_snapshot = self.clock.monotonic() + self.snapshot_s
        self._task = asyncio.create_task(self._tick(), name="leaderboard")
        log.info("leaderboard loaded", extra={"portfolios": len(self.board)})

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.window_s)
            try:
                self.flush()
            except Exception as exc:  # a bug here must not stop the board for good
                self.faults.report("service", exc, service="leaderboard")

    def flush(self) -> None:
        """Publish the watched views that changed (and the snapshot when due)."""
        now = self.clock.now()
        due = now.mono >= self._next_snapshot
        if due:
            self._next_snapshot = now.mono + self.snapshot_s
        messages = self.board.flush(now.wall, snapshot=due)
        if messages:
            self.publisher.publish(messages)

    # -- what happened

    @listens_to(PortfolioValue)
    def on_published(self, envelopes: Sequence[Envelope]) -> None:
        """The tap: re-rank the public portfolios whose value was published."""
        apply = self.board.apply
        for envelope in envelopes:
            payload = envelope.payload
            if type(payload) is PortfolioValue:
                apply(payload)

    async def on_public(self, portfolio: Portfolio) -> None:
        """A portfolio opted in (ranked at once) or out (off the board); the decision told
        last wins, whatever the order the owner's name reads complete in."""
        self._decisions += 1
        decision = self._decisions
        self._deciding[portfolio.id] = decision
        try:
            if not portfolio.public:
                self.board.leave(portfolio.id)
                return
            if portfolio.owner_id not in self.names:
                async with self.engine.connect() as conn:
                    names = await Users(conn).names([portfolio.owner_id])
                self.names.update(names)
                if self._deciding.get(portfolio.id) != decision:
                    return  # a later decision was told meanwhile: it stands
            self._enter(portfolio, self.clock.wall())
        finally:
            if self._deciding.get(portfolio.id) == decision:
                del self._deciding[portfolio.id]

    def _enter(self, portfolio: Portfolio, now: float) -> None:
        name = self.names.get(portfolio.owner_id)
        if name is None:  # its owner is gone: nobody to show
            return
        try:
            value = self.portfolios.value(portfolio.id, now)
        except KeyError:
            return
        self.board.enter(value, name)

    def follow(self, hooks: TopicHooks) -> None:
        """Compute a view while its topic has a subscriber."""
        for channel in (BOARD_CHANNEL, TOP_CHANNEL, AROUND_CHANNEL):
            hooks.on_first(channel, self._watch)
            hooks.on_last(channel, self.board.unwatch)

    def _watch(self, topic: Topic) -> None:
        self.board.watch(topic, self.clock.wall())

    # -- reads

    def snapshot(self) -> BoardMessage:
        return self.board.snapshot(self.clock.wall())

    def top(self, n: int) -> TopView:
        return self.board.top(n, self.clock.wall())

    def around(self, portfolio_id: int, window: int) -> AroundView | None:
        return self.board.around(portfolio_id, window, self.clock.wall())

    def is_public(self, portfolio_id: int) -> bool:
        """Whether the portfolio is on the board."""
        return portfolio_id in self.board
