"""The live leaderboard: valuations in, the messages of the watched views out.

Rules: pure (no clock, no I/O: ``ts`` is passed in). ``leaderboard/service.py`` feeds a
``Leaderboard`` the valuations of the portfolios that opted in (``apply``), the opt-ins
and opt-outs (``enter``, ``leave``), which views someone watches (``watch`` and
``unwatch``, from the hub's first- and last-subscriber hooks), and calls ``flush`` once
per batching window; it publishes what ``flush`` returns.

What an entry shows (``entry_of``): the return on invested capital,
``(total_value - net_deposits) / net_deposits * 100`` while ``net_deposits > 0``, and 0
when nothing is invested (``net_deposits <= 0``: nothing deposited, or more withdrawn
than deposited, where a ratio would be meaningless or infinite). Amounts and
percentages are rounded to 2 decimal places (half even), so a change in the 7th
decimal neither reorders the board nor costs a message.

Only what someone watches is computed. A view is:

- the board (``leaderboard.all``): its best ``snapshot_limit`` entries (0: all);
  ``flush`` diffs them against the ones shown last and returns a ``BoardMessage``
  update (``moved``, ``entered`` (into the limit too), ``updated``, ``left`` (beyond the
  limit too));
- a top ``n`` (``leaderboard_top.<n>``): a ``TopView`` whenever its entries' ranks or
  shown values change;
- an around window (``leaderboard_around.<id>:<w>``): an ``AroundView`` likewise.

A view is recomputed only when the ranks that changed since the last flush (the span
the ranking's ``RankChange``s and removals name) reach it: a top ``n`` when the best
rank touched is ``<= n``; an around window when the span meets its ranks. A view read
again keeps the rows that show what they showed (``carry``), so a message goes out only
when a rank or a shown value changed, at most once per window.

``previous_rank`` is a row's rank before its last move (None until it first moves),
a fact the ranking keeps with each entry (``ranking.py``): it changes only when the
entry's rank does, never with its values, and every reader (a flushed view, a poll, a
new subscriber's first view) reads the same one. The ranking's mark moves at the end
of each flush (``Ranking.mark``): a move is a rank that differs between two flushes.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Protocol

from tickcast.leaderboard.ranking import Ranking
from tickcast.model.leaderboard import (
    AROUND_CHANNEL,
    BOARD_CHANNEL,
    TOP_CHANNEL,
    AroundView,
    BoardMessage,
    LeaderboardEntry,
    RankedEntry,
    TopView,
    parse_around_key,
)
from tickcast.model.topic import Topic

#: Places every shown amount and percentage is rounded to.
PLACES = Decimal("0.01")
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)
#: A board without a limit: every rank is in it.
_EVERY = 2**63


class Valued(Protocol):
    """What an entry is made of (``model.portfolio.PortfolioValue`` is one)."""

    @property
    def portfolio_id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def total_value(self) -> Decimal: ...
    @property
    def net_deposits(self) -> Decimal: ...
    @property
    def daily_change(self) -> Decimal: ...
    @property
    def daily_change_percent(self) -> Decimal: ...


def rounded(value: Decimal) -> Decimal:
    """``value`` to 2 places (half even); a non-finite or unroundable one is 0."""
    try:
        if not value.is_finite():
            return _ZERO
        return value.quantize(PLACES, context=_CONTEXT)
    except InvalidOperation:
        return _ZERO


def return_percent(total_value: Decimal, net_deposits: Decimal) -> Decimal:
    """Return on invested capital, in percent, rounded; 0 when ``net_deposits <= 0``."""
    if not net_deposits.is_finite() or net_deposits <= 0 or not total_value.is_finite():
        return _ZERO
    gain = _CONTEXT.subtract(total_value, net_deposits)
    return rounded(_CONTEXT.divide(_CONTEXT.multiply(gain, _HUNDRED), net_deposits))


def entry_of(value: Valued, owner_name: str) -> LeaderboardEntry:
    """The public entry of a portfolio's valuation (module docstring)."""
    return LeaderboardEntry(
        portfolio_id=value.portfolio_id,
        portfolio_name=value.name,
        owner_name=owner_name,
        return_percent=return_percent(value.total_value, value.net_deposits),
        total_value=rounded(value.total_value),
        daily_change=rounded(value.daily_change),
        daily_change_percent=rounded(value.daily_change_percent),
    )


#: ``cents_key``'s key: (-return in cents of a percent, -total value in cents, id).
Key = tuple[int, int, int]


def cents_key(entry: LeaderboardEntry) -> Key:
    """The ranking's order (``ranking.sort_key``) for entries rounded to the cent, as
    ints: exact for them, and several times cheaper to compare than Decimals."""
    return (
        -int(entry.return_percent.scaleb(2)),
        -int(entry.total_value.scaleb(2)),
        entry.portfolio_id,
    )


def carry(
    before: tuple[RankedEntry, ...], after: tuple[RankedEntry, ...]
) -> tuple[RankedEntry, ...]:
    """``after``, with each row that shows what it showed ``before`` (the same portfolio
    at the same rank, ``previous_rank`` and values) kept as the same object: a view
    whose rows all stand is the view shown, and is not sent again."""
    then = {e.entry.portfolio_id: e for e in before}
    rows = []
    for ranked in after:
        old = then.get(ranked.entry.portfolio_id)
        rows.append(old if old is not None and old == ranked else ranked)
    return tuple(rows)


def board_update(
    before: tuple[RankedEntry, ...], after: tuple[RankedEntry, ...], ts: float
) -> BoardMessage | None:
    """The ``update`` from the board shown ``before`` to the one ``after``; None when
    nothing a client sees changed."""
    then = {e.entry.portfolio_id: e for e in before}
    moved: list[RankedEntry] = []
    entered: list[RankedEntry] = []
    updated: list[RankedEntry] = []
    for ranked in after:
        old = then.pop(ranked.entry.portfolio_id, None)
        if old is None:
            entered.append(ranked)
        elif old.rank != ranked.rank:
            moved.append(ranked)
        elif old != ranked:  # the same rank, something else shown changed
            updated.append(ranked)
    left = tuple(sorted(then))
    if not (moved or entered or updated or left):
        return None
    return BoardMessage(
        "update", ts, moved=tuple(moved), entered=tuple(entered), updated=tuple(updated), left=left
    )


class Leaderboard:
    """The ranking of the public portfolios and the views someone watches.

    Args:
        snapshot_limit: the board's entries in a snapshot and its updates (the best
            ones); 0: every entry.
    """

    def __init__(self, snapshot_limit: int = 1000) -> None:
        self.snapshot_limit = snapshot_limit
        self.ranking = Ranking(key=cents_key)
        self.owners: dict[int, str] = {}  # public portfolio id -> owner's display name
        # the views watched, each with what was shown last
        self._board: tuple[RankedEntry, ...] | None = None  # None: unwatched
        self._snapshot: BoardMessage | None = None  # the board as a snapshot, cached
        self._tops: dict[int, TopView] = {}
        self._arounds: dict[tuple[int, int], AroundView] = {}
        # the sort keys between which ranks may have changed since the last flush (low,
        # high or None for "to the end"); None when none did: keys, not ranks, so that
        # a change reads no rank (flush turns them into ranks once)
        self._span: tuple[Key, Key | None] | None = None

    def __len__(self) -> int:
        return len(self.ranking)

    def __contains__(self, portfolio_id: object) -> bool:
        return portfolio_id in self.ranking

    # -- what happened

    def enter(self, value: Valued, owner_name: str) -> None:
        """The portfolio opted in (or is loaded at start): rank it from ``value``."""
        self.owners[value.portfolio_id] = owner_name
        self.apply(value)

    def leave(self, portfolio_id: int) -> None:
        """The portfolio opted out (or is gone): off the board."""
        self.owners.pop(portfolio_id, None)
        entry = self.ranking.entry(portfolio_id)
        if entry is not None:
            self.ranking.remove(portfolio_id)
            self._widen(cents_key(entry), None)

    def apply(self, value: Valued) -> bool:
        """A new valuation: re-rank the portfolio when it is public and a shown value
        changed. O(log n). Returns whether it was ranked."""
        owner = self.owners.get(value.portfolio_id)
        if owner is None:
            return False
        entry = entry_of(value, owner)
        if self.ranking.entry(value.portfolio_id) == entry:
            return True
        old, new = self.ranking.put(entry)
        if old is None:
            self._widen(new, None)
        else:
            self._widen(min(old, new), max(old, new))
        return True

    # -- who watches what

    def watch(self, topic: Topic, ts: float) -> None:
        """``topic`` got its first subscriber: its view is computed from now on."""
        channel = topic.channel
        if channel == BOARD_CHANNEL:
            if self._board is None:
                self._board = self._read_board()
                self._snapshot = None
        elif channel == TOP_CHANNEL:
            n = _count(topic.key)
            if n is not None and n not in self._tops:
                self._tops[n] = TopView(n, tuple(self.ranking.top(n)), ts)
        elif channel == AROUND_CHANNEL:
            found = parse_around_key(topic.key)
            if found is not None and found not in self._arounds:
                self._arounds[found] = self._read_around(*found, ts)

    def unwatch(self, topic: Topic) -> None:
        """``topic`` lost its last subscriber: its view is no longer computed."""
        channel = topic.channel
        if channel == BOARD_CHANNEL:
            self._board = self._snapshot = None
        elif channel == TOP_CHANNEL:
            n = _count(topic.key)
            if n is not None:
                self._tops.pop(n, None)
        elif channel == AROUND_CHANNEL:
            found = parse_around_key(topic.key)
            if found is not None:
                self._arounds.pop(found, None)

    @property
    def watched(self) -> tuple[bool, frozenset[int], frozenset[tuple[int, int]]]:
        """Whether the board is watched, the top sizes and the around windows."""
        return self._board is not None, frozenset(self._tops), frozenset(self._arounds)

    # -- reads (the watched view as shown last; else computed now)

    def snapshot(self, ts: float) -> BoardMessage:
        """The board as a ``snapshot``: the one shown last while watched (the same object
        until it changes, so its encoding can be shared), else read now."""
        if self._board is None:
            return BoardMessage("snapshot", ts, entries=self._read_board())
        if self._snapshot is None:
            self._snapshot = BoardMessage("snapshot", ts, entries=self._board)
        return self._snapshot

    def top(self, n: int, ts: float) -> TopView:
        """The best ``n``: as shown last while watched, else read now."""
        view = self._tops.get(n)
        return view if view is not None else TopView(n, tuple(self.ranking.top(n)), ts)

    def around(self, portfolio_id: int, window: int, ts: float) -> AroundView | None:
        """The window around a portfolio: as shown last while watched, else read now;
        None when the portfolio is not on the board (unknown or not public)."""
        if portfolio_id not in self.ranking:
            return None
        view = self._arounds.get((portfolio_id, window))
        return view if view is not None else self._read_around(portfolio_id, window, ts)

    # -- once per window

    def flush(
        self, ts: float, *, snapshot: bool = False
    ) -> list[BoardMessage | TopView | AroundView]:
        """The messages of the watched views that changed since the last flush, then the
        ranking's mark moves. ``snapshot``: the board goes out as a ``snapshot`` (the
        periodic one) instead of an ``update``, even when nothing changed."""
        out: list[BoardMessage | TopView | AroundView] = []
        keys, self._span = self._span, None
        span = None if keys is None else self.ranking.rank_span(*keys)
        if self._board is not None and (span is not None or snapshot):
            board = self._read_board() if span is not None and span[0] <= self._limit() else None
            if board is not None:
                board = carry(self._board, board)
                update = board_update(self._board, board, ts)
                if update is not None:
                    self._board, self._snapshot = board, None
                    if not snapshot:
                        out.append(update)
            if snapshot:
                out.append(self.snapshot(ts))
        if span is not None:
            first, last = span
            for n, view in list(self._tops.items()):
                if first <= n:
                    entries = carry(view.entries, tuple(self.ranking.top(n)))
                    if entries != view.entries:
                        self._tops[n] = top = TopView(n, entries, ts)
                        out.append(top)
            for key, around in list(self._arounds.items()):
                if self._reaches(around, first, last):
                    entries = carry(around.entries, self._read_around(*key, ts).entries)
                    if entries != around.entries:
                        self._arounds[key] = fresh = AroundView(key[0], key[1], entries, ts)
                        out.append(fresh)
            self.ranking.mark()
        return out

    # -- inside

    def _limit(self) -> int:
        return self.snapshot_limit or _EVERY

    def _read_board(self) -> tuple[RankedEntry, ...]:
        if self.snapshot_limit:
            return tuple(self.ranking.top(self.snapshot_limit))
        return tuple(self.ranking.entries())

    def _read_around(self, portfolio_id: int, window: int, ts: float) -> AroundView:
        try:
            entries = tuple(self.ranking.around(portfolio_id, window))
        except KeyError:  # not (or no longer) on the board
            entries = ()
        return AroundView(portfolio_id, window, entries, ts)

    def _reaches(self, view: AroundView, first: int, last: int | None) -> bool:
        """Whether the changed ranks ``first..last`` meet ``view``'s rows (as shown, or
        where its portfolio is now)."""
        if view.portfolio_id not in self.ranking or not view.entries:
            return True  # it left, or came back: recompute (cheap: one lookup)
        low = view.entries[0].rank
        high = view.entries[-1].rank
        rank = self.ranking.rank_of(view.portfolio_id)
        if rank is not None:
            low = min(low, rank - view.window)
            high = max(high, rank + view.window)
        return first <= high and (last is None or last >= low)

    def _widen(self, low: Key, high: Key | None) -> None:
        if self._span is None:
            self._span = (low, high)
            return
        was_low, was_high = self._span
        merged = None if high is None or was_high is None else max(was_high, high)
        self._span = (min(was_low, low), merged)


def _count(key: str) -> int | None:
    """A top view's ``n`` from its key; None when malformed."""
    if key.isascii() and key.isdigit() and len(key) <= 9:
        return int(key)
    return None
