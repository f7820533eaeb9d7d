"""The live leaderboard (leaderboard/board.py): entries from valuations, the watched
views and the messages ``flush`` returns, with plain calls."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tickcast.leaderboard.board import Leaderboard, carry, entry_of, return_percent, rounded
from tickcast.model.leaderboard import (
    AROUND_CHANNEL,
    BOARD_CHANNEL,
    TOP_CHANNEL,
    AroundView,
    BoardMessage,
    RankedEntry,
    TopView,
)
from tickcast.model.topic import Topic

BOARD = Topic(BOARD_CHANNEL, "all")


@dataclass(frozen=True)
class Value:
    portfolio_id: int
    total_value: Decimal
    net_deposits: Decimal = Decimal(1000)
    daily_change: Decimal = Decimal(0)
    daily_change_percent: Decimal = Decimal(0)

    @property
    def name(self) -> str:
        return f"P{self.portfolio_id}"


def value(pid: int, total: int | str, deposits: int | str = 1000) -> Value:
    return Value(pid, Decimal(total), Decimal(deposits))


def ids(entries: tuple[RankedEntry, ...] | list[RankedEntry]) -> list[int]:
    return [e.entry.portfolio_id for e in entries]


def board_of(*totals: int) -> Leaderboard:
    """Portfolios 1.. with these totals (1,000 invested each), marked."""
    board = Leaderboard(snapshot_limit=0)
    for pid, total in enumerate(totals, start=1):
        board.enter(value(pid, total), f"owner{pid}")
    board.flush(0.0)
    return board


# -- entries


def test_return_on_invested_capital_and_the_cases_without_capital() -> None:
    assert return_percent(Decimal(1100), Decimal(1000)) == Decimal("10.00")
    assert return_percent(Decimal(900), Decimal(1000)) == Decimal("-10.00")
    assert return_percent(Decimal(1), Decimal(3)) == Decimal("-66.67")
    assert return_percent(Decimal(500), Decimal(0)) == 0  # nothing invested
    assert return_percent(Decimal(500), Decimal(-100)) == 0  # more withdrawn than put in
    huge = return_percent(Decimal("1e18"), Decimal("1e-10"))  # exact, however large
    assert huge == Decimal(10) ** 30 - 100
    assert huge.as_tuple().exponent == -2
    assert rounded(Decimal("NaN")) == 0
    assert rounded(Decimal("2.675")) == Decimal("2.68")  # half even: 2.675 is exact here


def test_an_entry_shows_only_public_fields_rounded() -> None:
    v = Value(7, Decimal("11250.004"), Decimal(10000), Decimal("120.505"), Decimal("1.0844"))
    entry = entry_of(v, "alice")
    assert (entry.portfolio_id, entry.portfolio_name, entry.owner_name) == (7, "P7", "alice")
    assert entry.return_percent == Decimal("12.50")
    assert entry.total_value == Decimal("11250.00")
    assert entry.daily_change == Decimal("120.50")  # half even
    assert entry.daily_change_percent == Decimal("1.08")


def test_a_private_portfolio_is_never_ranked() -> None:
    board = Leaderboard()
    assert not board.apply(value(1, 1200))
    board.enter(value(2, 1100), "bob")
    assert board.apply(value(2, 1300))
    assert 1 not in board
    assert 2 in board
    board.leave(2)
    assert not board.apply(value(2, 1400))
    assert len(board) == 0


# -- views


def test_nothing_is_computed_or_sent_while_nobody_watches() -> None:
    board = board_of(1100, 1000)
    board.apply(value(2, 1300))
    assert board.flush(1.0) == []
    assert board.watched == (False, frozenset(), frozenset())


def test_the_board_update_says_what_moved_entered_changed_and_left() -> None:
    board = board_of(1300, 1200, 1100)
    board.watch(BOARD, 0.0)
    first = board.snapshot(0.0)
    assert first.kind == "snapshot"
    assert ids(first.entries) == [1, 2, 3]
    assert board.snapshot(0.5) is first  # one object until the board changes
    board.apply(value(3, 1400))  # 3 to the top: 1 and 2 shift down
    board.enter(value(4, 1000), "dave")
    board.leave(2)
    board.apply(value(1, 1350))  # same rank (2 then, 2 now)... after 3 moved above
    [update] = board.flush(1.0)
    assert isinstance(update, BoardMessage)
    assert update.kind == "update"
    assert [(e.entry.portfolio_id, e.rank, e.previous_rank) for e in update.moved] == [
        (3, 1, 3),
        (1, 2, 1),
    ]
    assert [(e.entry.portfolio_id, e.rank, e.previous_rank) for e in update.entered] == [
        (4, 3, None)
    ]
    assert update.left == (2,)
    snapshot = board.snapshot(1.0)
    assert snapshot is not first
    assert ids(snapshot.entries) == [3, 1, 4]
    board.apply(value(4, 1050))  # same rank, new values: updated
    [update] = board.flush(2.0)
    assert isinstance(update, BoardMessage)
    assert ids(update.updated) == [4]
    assert not update.moved
    assert not update.entered
    assert board.flush(3.0) == []  # nothing changed: nothing sent


def test_the_board_limit_turns_moves_across_it_into_entered_and_left() -> None:
    board = Leaderboard(snapshot_limit=2)
    for pid, total in ((1, 1300), (2, 1200), (3, 1100)):
        board.enter(value(pid, total), "o")
    board.flush(0.0)
    board.watch(BOARD, 0.0)
    board.apply(value(3, 1250))  # 3 passes 2: 2 is pushed beyond the limit
    [update] = board.flush(1.0)
    assert isinstance(update, BoardMessage)
    assert ids(update.entered) == [3]
    assert update.left == (2,)
    board.apply(value(3, 1260))  # 3 stays at rank 2, new values: updated
    board.apply(value(2, 1150))  # 2 stays at rank 3, beyond the limit: not shown
    [update] = board.flush(2.0)
    assert isinstance(update, BoardMessage)
    assert ids(update.updated) == [3]


def test_a_periodic_snapshot_goes_even_when_nothing_changed() -> None:
    board = board_of(1100)
    board.watch(BOARD, 0.0)
    [snapshot] = board.flush(1.0, snapshot=True)
    assert isinstance(snapshot, BoardMessage)
    assert snapshot.kind == "snapshot"
    board.apply(value(1, 1200))
    [snapshot] = board.flush(2.0, snapshot=True)  # the snapshot replaces the update
    assert isinstance(snapshot, BoardMessage)
    assert snapshot.kind == "snapshot"
    assert snapshot.entries[0].entry.total_value == Decimal("1200.00")


def test_a_top_view_goes_only_when_its_ranks_or_values_change() -> None:
    board = board_of(1400, 1300, 1200, 1100)
    board.watch(Topic(TOP_CHANNEL, "2"), 0.0)
    assert ids(board.top(2, 0.0).entries) == [1, 2]
    board.apply(value(4, 1150))  # rank 4 -> 4: beyond the top 2
    board.apply(value(3, 1250))  # rank 3 -> 3
    assert board.flush(1.0) == []
    board.apply(value(3, 1350))  # 3 enters the top 2
    board.apply(value(3, 1360))  # twice in one window: one message
    [top] = board.flush(2.0)
    assert isinstance(top, TopView)
    assert top.n == 2
    assert ids(top.entries) == [1, 3]
    assert top.entries[1].previous_rank == 3
    assert board.top(2, 5.0) is top  # readers get the view as shown
    board.unwatch(Topic(TOP_CHANNEL, "2"))
    board.apply(value(4, 2000))
    assert board.flush(3.0) == []


def test_an_around_view_follows_its_portfolio_and_empties_when_it_leaves() -> None:
    board = board_of(1500, 1400, 1300, 1200, 1100, 1000)
    topic = Topic(AROUND_CHANNEL, "4:1")
    board.watch(topic, 0.0)
    view = board.around(4, 1, 0.0)
    assert view is not None
    assert ids(view.entries) == [3, 4, 5]
    board.apply(value(1, 1600))  # rank 1 stays 1: beyond the window
    assert board.flush(1.0) == []
    board.apply(value(6, 1250))  # 6 from rank 6 to 4: the window changes
    [around] = board.flush(2.0)
    assert isinstance(around, AroundView)
    assert around.kind == "update"
    assert ids(around.entries) == [6, 4, 5]
    board.leave(4)
    [around] = board.flush(3.0)
    assert isinstance(around, AroundView)
    assert around.entries == ()
    assert board.around(4, 1, 3.0) is None  # not on the board: no view for a reader
    assert board.flush(4.0) == []


def test_an_opted_out_portfolio_leaves_every_watched_view_at_the_next_flush() -> None:
    board = board_of(1300, 1200, 1100)
    board.watch(BOARD, 0.0)
    board.watch(Topic(TOP_CHANNEL, "3"), 0.0)
    board.watch(Topic(AROUND_CHANNEL, "1:1"), 0.0)
    board.leave(2)
    messages = board.flush(1.0)
    assert len(messages) == 3
    assert ids(board.snapshot(1.0).entries) == [1, 3]
    assert ids(board.top(3, 1.0).entries) == [1, 3]
    around = board.around(1, 1, 1.0)
    assert around is not None
    assert ids(around.entries) == [1, 3]
    [snapshot] = board.flush(2.0, snapshot=True)
    assert isinstance(snapshot, BoardMessage)
    assert ids(snapshot.entries) == [1, 3]


def test_previous_rank_changes_only_with_the_rank() -> None:
    board = board_of(1300, 1200, 1100)  # 1, 2, 3; loaded and marked: none moved yet
    assert [e.previous_rank for e in board.ranking.entries()] == [None, None, None]
    board.apply(value(3, 1400))  # 3 to the top: 1 and 2 shift down
    # read before the flush: the move the next flush records, as every reader sees it
    assert [(e.rank, e.previous_rank) for e in board.top(3, 0.5).entries] == [
        (1, 3),
        (2, 1),
        (3, 2),
    ]
    board.flush(1.0)
    board.apply(value(3, 1450))  # values only
    board.flush(2.0)
    board.flush(3.0)
    assert [(e.rank, e.previous_rank) for e in board.top(3, 3.0).entries] == [
        (1, 3),
        (2, 1),
        (3, 2),
    ]
    board.apply(value(3, 1250))  # 3 falls back to 2: now "down from 1"
    board.flush(4.0)
    assert [(e.entry.portfolio_id, e.rank, e.previous_rank) for e in board.top(3, 4.0).entries] == [
        (1, 1, 2),
        (3, 2, 1),
        (2, 3, 2),  # still 3rd: still "down from 2"
    ]


def test_carry_keeps_rows_that_show_the_same() -> None:
    board = board_of(1200, 1100)
    before = tuple(board.ranking.top(2))
    after = tuple(board.ranking.top(2))
    assert all(a is b for a, b in zip(carry(before, after), before, strict=True))


# -- a client that applies the messages holds the board


def apply(state: dict[int, RankedEntry], message: BoardMessage) -> None:
    if message.kind == "snapshot":
        state.clear()
        state.update({e.entry.portfolio_id: e for e in message.entries})
        return
    for pid in message.left:
        state.pop(pid, None)
    for e in (*message.moved, *message.entered, *message.updated):
        state[e.entry.portfolio_id] = e


ops = st.lists(
    st.tuples(
        st.sampled_from(["value", "leave", "flush"]),
        st.integers(1, 12),
        st.integers(900, 1100),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(ops=ops, limit=st.integers(0, 6), top=st.integers(1, 5), window=st.integers(0, 3))
def test_the_messages_rebuild_every_view_as_a_reader_sees_it(
    ops: list[tuple[str, int, int]], limit: int, top: int, window: int
) -> None:
    board = Leaderboard(snapshot_limit=limit)
    board.watch(BOARD, 0.0)
    board.watch(Topic(TOP_CHANNEL, str(top)), 0.0)
    board.enter(value(1, 1000), "o")
    board.watch(Topic(AROUND_CHANNEL, f"1:{window}"), 0.0)
    state: dict[int, RankedEntry] = {}
    apply(state, board.snapshot(0.0))
    top_view = board.top(top, 0.0)
    around = board.around(1, window, 0.0)
    for step, (op, pid, total) in enumerate(ops, start=1):
        if op == "value":
            board.enter(value(pid, total), f"o{pid}")
        elif op == "leave":
            board.leave(pid)
        for message in board.flush(float(step)) if op == "flush" else ():
            if isinstance(message, BoardMessage):
                apply(state, message)
            elif isinstance(message, TopView):
                top_view = message
            else:
                around = message
    for message in board.flush(1e6):
        if isinstance(message, BoardMessage):
            apply(state, message)
        elif isinstance(message, TopView):
            top_view = message
        else:
            around = message
    shown = board.snapshot(1e6).entries
    assert sorted(state.values(), key=lambda e: e.rank) == list(shown)
    truth = board.ranking.entries()
    expected = truth[:limit] if limit else truth
    # every reader agrees, previous_rank included: the streams, a poll of an unwatched
    # view (read from the ranking), a new subscriber
    assert list(shown) == list(expected)
    assert list(top_view.entries) == truth[:top]
    assert list(board.top(top + 1, 1e6).entries) == truth[: top + 1]
    if 1 in board:
        assert around is not None
        assert list(around.entries) == board.ranking.around(1, window)
    else:
        assert around is None or around.entries == ()
