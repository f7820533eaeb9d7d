"""The public leaderboard's payloads: what the leaderboard service publishes.

Rules: plain frozen value objects, like portfolio.py; only model imports. An entry holds
only what a portfolio's owner made public by opting in: its id and name, the owner's
display name, and its performance. Money and percentages are Decimal (exact); ``ts`` is
epoch seconds UTC (when the message was built).

Three channels carry them (``model/channel.builtin``), one payload type each:

- ``leaderboard.all`` (``BoardMessage``, reliable): the board's snapshots and the
  ``update`` messages between them (what moved, entered, changed or left);
- ``leaderboard_top.<n>`` (``TopView``, conflated): the best ``n`` entries, whole;
- ``leaderboard_around.<portfolio id>:<window>`` (``AroundView``, conflated): the
  entries ``window`` ranks either side of one portfolio, whole.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, Literal

import msgspec

#: The channels' names.
BOARD_CHANNEL: Final = "leaderboard"
TOP_CHANNEL: Final = "leaderboard_top"
AROUND_CHANNEL: Final = "leaderboard_around"
#: The key of the one board topic (``leaderboard.all``).
BOARD_KEY: Final = "all"


class LeaderboardEntry(msgspec.Struct, frozen=True, gc=False):
    """One public portfolio's standing, as the leaderboard shows it (no private data).

    Attributes:
        portfolio_id, portfolio_name: which portfolio.
        owner_name: its owner's display name (never the owner's id or e-mail).
        return_percent: return on invested capital, in percent (12.5 means +12.5 %).
        total_value: market value + cash.
        daily_change, daily_change_percent: against the previous closes.
    """

    portfolio_id: int
    portfolio_name: str
    owner_name: str
    return_percent: Decimal
    total_value: Decimal
    daily_change: Decimal
    daily_change_percent: Decimal


class RankedEntry(msgspec.Struct, frozen=True, gc=False):
    """An entry read out with its place.

    Attributes:
        rank: 1-based, now.
        previous_rank: its rank before its last move (a rank that differed between
            two batching windows); None until it first moves after entering the board.
        entry: the values.
    """

    rank: int
    previous_rank: int | None
    entry: LeaderboardEntry


class BoardMessage(msgspec.Struct, frozen=True, gc=False):
    """A message of ``leaderboard.all``: a snapshot of the board (its best
    ``leaderboard_snapshot_limit`` entries) or an update since the previous message.

    Attributes:
        kind: ``"snapshot"`` (``entries`` is the board) or ``"update"`` (``moved``,
            ``entered``, ``updated`` and ``left`` say what changed).
        entries: the board, by rank (a snapshot).
        moved: entries whose rank changed, by rank now.
        entered: entries new on the board (or new within its limit), by rank.
        updated: entries at the same rank whose shown values changed, by rank.
        left: ids of portfolios no longer on the board (or pushed beyond its limit).
        ts: when it was built.
    """

    kind: Literal["snapshot", "update"]
    ts: float
    entries: tuple[RankedEntry, ...] = ()
    moved: tuple[RankedEntry, ...] = ()
    entered: tuple[RankedEntry, ...] = ()
    updated: tuple[RankedEntry, ...] = ()
    left: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        return BOARD_KEY


class TopView(msgspec.Struct, frozen=True, gc=False):
    """The best ``n`` entries (fewer when the board is shorter), by rank."""

    n: int
    entries: tuple[RankedEntry, ...]
    ts: float

    @property
    def key(self) -> str:
        return str(self.n)


class AroundView(msgspec.Struct, frozen=True, gc=False):
    """The entries from ``rank - window`` to ``rank + window`` of one portfolio (cut at
    the board's ends); empty once the portfolio left the board.

    ``kind`` is ``"update"`` as published; a new subscriber's first one is the same view
    as a ``"snapshot"``.
    """

    portfolio_id: int
    window: int
    entries: tuple[RankedEntry, ...]
    ts: float
    kind: Literal["snapshot", "update"] = "update"

    @property
    def key(self) -> str:
        return around_key(self.portfolio_id, self.window)


def around_key(portfolio_id: int, window: int) -> str:
    """The key of an around view's topic: ``"<portfolio id>:<window>"``."""
    return f"{portfolio_id}:{window}"


def parse_around_key(key: str) -> tuple[int, int] | None:
    """``(portfolio id, window)`` from an around view's key; None when malformed."""
    pid, sep, window = key.partition(":")
    if not sep or not _digits(pid) or not _digits(window):
        return None
    return int(pid), int(window)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18
