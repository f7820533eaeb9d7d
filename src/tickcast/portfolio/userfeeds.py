"""UserFeeds: which per-user streams are watched, and what they owe at the next flush.

Rules: pure (no clock, no I/O: ``now`` is passed in). The per-user streams carry every
portfolio of one owner on one topic (``user_positions.<user id>``,
``user_pnl.<user id>``), so a portfolio created after the subscription is covered. The
hub's first- and last-subscriber hooks say who watches (``watch`` / ``unwatch``); an
unwatched user costs nothing: a price change marks nothing for them, a transaction
publishes nothing for them.

Unrealized P&L is conflated here, per (portfolio, symbol): a position whose price moved
several times since the last flush is marked once, and ``take_pnl`` values it once, at
the flush, so each update carries only the positions that changed, at their latest
value. The hub then carries each update reliably (nothing of it may be lost).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from tickcast.model.portfolio import PositionPnl, UserPnl
from tickcast.model.topic import Channel, Topic

#: The channels this tracks.
CHANNELS = (Channel.USER_POSITIONS, Channel.USER_PNL)


class UserFeeds:
    """Watchers of the per-user streams and the positions whose P&L changed."""

    __slots__ = ("_dirty", "_pnl", "_positions")

    def __init__(self) -> None:
        self._positions: set[int] = set()
        self._pnl: set[int] = set()
        # owner -> (portfolio, symbol) whose unrealized P&L changed since the last flush
        self._dirty: dict[int, set[tuple[int, str]]] = {}

    # -- who watches

    def watch(self, topic: Topic) -> None:
        """``topic`` (a per-user stream) got its first subscriber."""
        owner = int(topic.key)
        if topic.channel == Channel.USER_POSITIONS:
            self._positions.add(owner)
        elif topic.channel == Channel.USER_PNL:
            self._pnl.add(owner)

    def unwatch(self, topic: Topic) -> None:
        """``topic`` lost its last subscriber: nothing more is kept for it."""
        owner = int(topic.key)
        if topic.channel == Channel.USER_POSITIONS:
            self._positions.discard(owner)
        elif topic.channel == Channel.USER_PNL:
            self._pnl.discard(owner)
            self._dirty.pop(owner, None)

    def watches_positions(self, owner: int) -> bool:
        return owner in self._positions

    def watches_pnl(self, owner: int) -> bool:
        return owner in self._pnl

    @property
    def any_pnl(self) -> bool:
        """Whether anyone watches a P&L stream (the hot path's one test when nobody does)."""
        return bool(self._pnl)

    # -- what changed

    def moved(
        self, symbol: str, portfolios: Iterable[int], owner_of: Callable[[int], int | None]
    ) -> None:
        """``symbol``'s price (or reference) changed the value of ``portfolios``' positions
        in it: mark those of watched owners."""
        watched = self._pnl
        if not watched:
            return
        for portfolio_id in portfolios:
            owner = owner_of(portfolio_id)
            if owner is not None and owner in watched:
                self._dirty.setdefault(owner, set()).add((portfolio_id, symbol))

    def traded(self, owner: int, portfolio_id: int, symbol: str) -> None:
        """A transaction changed a position's cost (and so its P&L)."""
        if owner in self._pnl:
            self._dirty.setdefault(owner, set()).add((portfolio_id, symbol))

    def take_pnl(
        self, now: float, unrealized: Callable[[int, str], Decimal | None]
    ) -> list[UserPnl]:
        """One update per owner with changes since the last call, each position valued
        now (``unrealized(portfolio, symbol)``; None: no longer known, left out), in
        owner, portfolio and symbol order; the marks are cleared."""
        dirty, self._dirty = self._dirty, {}
        updates: list[UserPnl] = []
        for owner in sorted(dirty):
            items = []
            for portfolio_id, symbol in sorted(dirty[owner]):
                value = unrealized(portfolio_id, symbol)
                if value is not None:
                    items.append(PositionPnl(portfolio_id, symbol, value))
            if items:
                updates.append(UserPnl(owner, tuple(items), now))
        return updates
