"""The leaderboard's ranking: public portfolios ordered by return, kept live in O(log n).

Pure: no I/O, no clock. ``board.Leaderboard`` holds one and feeds it the valuations of
the portfolios that opted in; ``LeaderboardEntry`` and ``RankedEntry`` are the model's
(``model/leaderboard.py``), re-exported here.

Order (rank 1 is the best):
    1. ``return_percent`` descending (return on invested capital, in percent);
    2. then ``total_value`` descending (the larger portfolio first);
    3. then ``portfolio_id`` ascending (unique, so the order is total and deterministic).

Money and percentages are Decimal, as in ``tickcast.model.portfolio``; they must be
finite (a NaN has no place in an order). The sort key negates with ``copy_negate``,
which is exact (unary minus would round to the context's precision).

Cost: ``upsert``, ``put``, ``remove`` and ``rank_of`` are O(log n) (a ``SortedList``
of keys and a dict of entries; ``put`` reads no rank); ``top(n)`` and ``around`` are
O(log n + the entries returned); ``changes()`` and ``mark()`` are O(log n + s), s the
span of ranks that could have shifted (from the best key touched to the worst, or to
the end when the board grew or shrank), kept as sort keys and turned into ranks once.

``previous_rank`` is a fact of each entry, kept beside it: its rank before its last
move, None until it first moves (an entry new on the board). A move is a rank that
differs from the one at the mark: the mark records it (``changes()`` or ``mark()``),
and a read between two marks shows the move the next mark will record (the rank at
the mark), so every reader, before or after the mark, sees the same ``previous_rank``
for the same rank; a change of values alone never touches it.

The sort key is ``sort_key`` unless another is given (``Ranking(key=...)``) that orders
the same entries the same way: ``board.cents_key``, ints for values rounded to the cent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import msgspec
from sortedcontainers import SortedList

from tickcast.model.leaderboard import LeaderboardEntry, RankedEntry

__all__ = [
    "Changes",
    "LeaderboardEntry",
    "RankChange",
    "RankedEntry",
    "Ranking",
    "SortKey",
    "sort_key",
]

#: The sort key: (-return_percent, -total_value, portfolio_id), ascending.
SortKey = tuple[Decimal, Decimal, int]


class RankChange(msgspec.Struct, frozen=True, gc=False):
    """What one ``upsert`` did: the ranks from ``min(old, new)`` to ``max(old, new)``
    shifted (to the end of the board when the entry is new, ``old_rank`` None).

    Attributes:
        portfolio_id: the entry upserted.
        old_rank: its rank before; None when it was not on the board.
        new_rank: its rank now.
    """

    portfolio_id: int
    old_rank: int | None
    new_rank: int

    @property
    def moved(self) -> bool:
        return self.old_rank != self.new_rank


class Changes(msgspec.Struct, frozen=True, gc=False):
    """What changed since the previous ``changes()`` call: the future ``update`` message.

    Attributes:
        moved: entries on the board then and now whose rank differs, by rank now.
        entered: entries on the board now and not then, by rank now.
        updated: entries on the board then and now at the same rank whose shown values
            changed, by rank.
        left: portfolio ids on the board then and not now, ascending.
    """

    moved: tuple[RankedEntry, ...] = ()
    entered: tuple[RankedEntry, ...] = ()
    updated: tuple[RankedEntry, ...] = ()
    left: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.moved or self.entered or self.updated or self.left)


def sort_key(entry: LeaderboardEntry) -> SortKey:
    """The entry's place in the order (ascending key = better rank)."""
    return (
        entry.return_percent.copy_negate(),
        entry.total_value.copy_negate(),
        entry.portfolio_id,
    )


def _check_finite(entry: LeaderboardEntry) -> None:
    for name in ("return_percent", "total_value", "daily_change", "daily_change_percent"):
        value: Decimal = getattr(entry, name)
        if not value.is_finite():
            raise ValueError(f"portfolio {entry.portfolio_id}: {name} is not finite ({value})")


class Ranking:
    """The ranked board, with a mark for ``changes()`` (see the module's docstring)."""

    def __init__(
        self,
        entries: Iterable[LeaderboardEntry] = (),
        *,
        key: Callable[[LeaderboardEntry], tuple[Any, Any, int]] = sort_key,
    ) -> None:
        # the order's key: ``sort_key``, or one that orders the same and compares faster
        # (``board.cents_key`` for values rounded to the cent: ints, not Decimals); its
        # last item is the portfolio id
        self._key = key
        self._entries: dict[int, LeaderboardEntry] = {}
        self._order = SortedList()
        # The mark: each id's rank at the last changes() call, and what moved since.
        self._marked_rank: dict[int, int] = {}
        self._marked_entry: dict[int, LeaderboardEntry] = {}  # touched ids' old values
        self._left: set[int] = set()
        # Each entry's rank before its last move, as of the mark (absent: it has not
        # moved since it entered).
        self._previous: dict[int, int] = {}
        # The keys between which ranks may have shifted since the mark: (low, high),
        # high None for "to the end"; None when nothing changed. Kept as keys, not ranks,
        # so that a change costs no rank lookup; changes() turns them into ranks once.
        self._span: tuple[Any, Any | None] | None = None
        for entry in entries:
            self.upsert(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, portfolio_id: object) -> bool:
        return portfolio_id in self._entries

    # -- updates

    def upsert(self, entry: LeaderboardEntry) -> RankChange:
        """Add the portfolio or replace its values; O(log n)."""
        old = self._entries.get(entry.portfolio_id)
        old_rank = None if old is None else self._order.bisect_left(self._key(old)) + 1
        _, new_key = self.put(entry)
        new_rank: int = self._order.bisect_left(new_key) + 1
        return RankChange(entry.portfolio_id, old_rank, new_rank)

    def put(self, entry: LeaderboardEntry) -> tuple[Any, Any]:
        """``upsert`` without reading the ranks (a third of its cost): returns the
        entry's old sort key (None when it is new) and its new one; O(log n)."""
        _check_finite(entry)
        portfolio_id = entry.portfolio_id
        old = self._entries.get(portfolio_id)
        old_key = None
        if old is not None:
            old_key = self._key(old)
            self._order.remove(old_key)
            self._remember(portfolio_id, old)
        self._entries[portfolio_id] = entry
        new_key = self._key(entry)
        self._order.add(new_key)
        self._left.discard(portfolio_id)
        if old_key is None:
            self._widen(new_key, None)
        else:
            self._widen(min(old_key, new_key), max(old_key, new_key))
        return old_key, new_key

    def remove(self, portfolio_id: int) -> int | None:
        """Take the portfolio off the board (it opted out or is gone); O(log n).

        Returns the rank it had, or None when it was not on the board.
        """
        old = self._entries.pop(portfolio_id, None)
        if old is None:
            return None
        key = self._key(old)
        rank: int = self._order.bisect_left(key) + 1
        self._order.remove(key)
        self._remember(portfolio_id, old)
        if portfolio_id in self._marked_rank:
            self._left.add(portfolio_id)
        self._widen(key, None)
        return rank

    def rank_span(self, low: Any, high: Any | None) -> tuple[int, int | None]:
        """The ranks, now, of the entries whose keys lie from ``low`` to ``high`` (None:
        to the end): ``(first, last)``, ``last`` None for the end; ``last < first``
        when there is none. O(log n)."""
        first: int = self._order.bisect_left(low) + 1
        if high is None:
            return first, None
        last: int = self._order.bisect_right(high)
        return first, last

    # -- reads

    def rank_of(self, portfolio_id: int) -> int | None:
        """The portfolio's rank (1-based), or None when it is not on the board."""
        entry = self._entries.get(portfolio_id)
        if entry is None:
            return None
        rank: int = self._order.bisect_left(self._key(entry)) + 1
        return rank

    def entry(self, portfolio_id: int) -> LeaderboardEntry | None:
        """The portfolio's values (no rank), or None when it is not on the board; O(1)."""
        return self._entries.get(portfolio_id)

    def get(self, portfolio_id: int) -> RankedEntry | None:
        """The portfolio's ranked entry, or None when it is not on the board."""
        rank = self.rank_of(portfolio_id)
        return None if rank is None else self._ranked(portfolio_id, rank)

    def top(self, n: int) -> list[RankedEntry]:
        """The first ``n`` entries (all of them when the board is shorter)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        return self._slice(0, n)

    def around(self, portfolio_id: int, window: int) -> list[RankedEntry]:
        """The entries from ``rank - window`` to ``rank + window`` (cut at the board's
        ends). Raises KeyError when the portfolio is not on the board."""
        if window < 0:
            raise ValueError(f"window must be >= 0, not {window}")
        rank = self.rank_of(portfolio_id)
        if rank is None:
            raise KeyError(portfolio_id)
        return self._slice(max(0, rank - 1 - window), rank + window)

    def entries(self) -> list[RankedEntry]:
        """The whole board in rank order (a snapshot); O(n)."""
        return self._slice(0, len(self._order))

    # -- the mark

    def changes(self) -> Changes:
        """What moved, entered, changed values or left since the last call; then mark
        now (a moved entry's ``previous_rank`` becomes its rank at the previous mark)."""
        moved: list[RankedEntry] = []
        entered: list[RankedEntry] = []
        updated: list[RankedEntry] = []
        if self._span is not None:
            first, last = self.rank_span(*self._span)
            start, stop = first - 1, len(self._order) if last is None else last
            for offset, key in enumerate(self._order.islice(start, stop)):
                portfolio_id = key[2]
                rank = start + offset + 1
                then = self._marked_rank.get(portfolio_id)
                if then is None:
                    entered.append(self._ranked(portfolio_id, rank))
                elif then != rank:
                    moved.append(self._ranked(portfolio_id, rank))
                    self._previous[portfolio_id] = then
                elif self._values_changed(portfolio_id):
                    updated.append(self._ranked(portfolio_id, rank))
                self._marked_rank[portfolio_id] = rank
        left = tuple(sorted(self._left))
        for portfolio_id in left:
            del self._marked_rank[portfolio_id]
            self._previous.pop(portfolio_id, None)
        self._marked_entry.clear()
        self._left.clear()
        self._span = None
        return Changes(tuple(moved), tuple(entered), tuple(updated), left)

    def settle(self) -> None:
        """Mark now, and take every entry's rank as its ``previous_rank``: the board as
        loaded when the gateway starts is no news (nothing entered, nothing moved), so
        its entries read as unmoved rather than new. O(n), once."""
        self.mark()
        self._previous = {key[2]: rank for rank, key in enumerate(self._order, start=1)}

    def mark(self) -> None:
        """Mark now as ``changes()`` does, without saying what changed: the same walk of
        the span, without building its entries (cheaper)."""
        marked = self._marked_rank
        previous = self._previous
        if self._span is not None:
            first, last = self.rank_span(*self._span)
            start, stop = first - 1, len(self._order) if last is None else last
            if stop > start:
                keys = self._order.islice(start, stop)
                for key, rank in zip(keys, range(first, stop + 1), strict=False):
                    portfolio_id = key[2]
                    then = marked.get(portfolio_id)
                    if then is not None and then != rank:
                        previous[portfolio_id] = then
                    marked[portfolio_id] = rank
        for portfolio_id in self._left:
            marked.pop(portfolio_id, None)
            previous.pop(portfolio_id, None)
        self._marked_entry.clear()
        self._left.clear()
        self._span = None

    # -- inside

    def _remember(self, portfolio_id: int, old: LeaderboardEntry | None) -> None:
        """Keep the values the portfolio had at the mark (the first change since wins)."""
        if old is not None and portfolio_id not in self._marked_entry:
            self._marked_entry[portfolio_id] = old

    def _widen(self, low: Any, high: Any | None) -> None:
        """Grow the span of keys whose ranks may have shifted since the mark (high None:
        to the end). Entries outside it kept their ranks: a move shifts only the entries
        between its old and new key; an insert or a removal shifts all after it."""
        if self._span is None:
            self._span = (low, high)
            return
        was_low, was_high = self._span
        merged_high = None if high is None or was_high is None else max(was_high, high)
        self._span = (min(was_low, low), merged_high)

    def _values_changed(self, portfolio_id: int) -> bool:
        """Whether the portfolio's shown values differ from the ones at the mark."""
        then = self._marked_entry.get(portfolio_id)
        return then is not None and then != self._entries[portfolio_id]

    def _slice(self, start: int, stop: int) -> list[RankedEntry]:
        return [
            self._ranked(key[2], start + offset + 1)
            for offset, key in enumerate(self._order.islice(start, stop))
        ]

    def _ranked(self, portfolio_id: int, rank: int) -> RankedEntry:
        """The entry at ``rank`` with its ``previous_rank``: its rank at the mark when it
        moved since (the move the next mark records), else the one recorded."""
        then = self._marked_rank.get(portfolio_id)
        if then is None or then == rank:
            then = self._previous.get(portfolio_id)
        return RankedEntry(rank, then, self._entries[portfolio_id])
