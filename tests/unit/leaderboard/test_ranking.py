"""The leaderboard's ranking: order, ties, updates, windows and changes(), against
hand-checked orders and a brute-force sort."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickcast.leaderboard import (
    Changes,
    LeaderboardEntry,
    RankChange,
    RankedEntry,
    Ranking,
    sort_key,
)


def entry(
    portfolio_id: int,
    return_percent: str | int,
    total_value: str | int = 1000,
    *,
    daily_change: str = "0",
) -> LeaderboardEntry:
    return LeaderboardEntry(
        portfolio_id=portfolio_id,
        portfolio_name=f"P{portfolio_id}",
        owner_name=f"owner {portfolio_id}",
        return_percent=Decimal(return_percent),
        total_value=Decimal(total_value),
        daily_change=Decimal(daily_change),
        daily_change_percent=Decimal("0"),
    )


def ids(ranked: list[RankedEntry]) -> list[int]:
    return [r.entry.portfolio_id for r in ranked]


def ranks(ranked: list[RankedEntry]) -> list[int]:
    return [r.rank for r in ranked]


@pytest.fixture
def board() -> Ranking:
    # Hand-checked order: 3 (25 %), 1 (10 %), 4 (0 %), 2 (-5.5 %), 5 (-40 %).
    return Ranking(
        [entry(1, "10"), entry(2, "-5.5"), entry(3, "25"), entry(4, "0"), entry(5, "-40")]
    )


def test_ranks_by_return_descending(board: Ranking) -> None:
    assert ids(board.entries()) == [3, 1, 4, 2, 5]
    assert ranks(board.entries()) == [1, 2, 3, 4, 5]
    assert [board.rank_of(i) for i in (1, 2, 3, 4, 5)] == [2, 4, 1, 3, 5]
    assert len(board) == 5
    assert 3 in board
    assert 9 not in board


def test_ties_by_total_value_descending_then_id_ascending() -> None:
    board = Ranking(
        [
            entry(7, "5", "100"),
            entry(2, "5", "300"),
            entry(9, "5", "300"),
            entry(4, "5.00", "100.0"),  # the same numbers as 7, written otherwise
            entry(1, "4.99", "99999"),
        ]
    )
    assert ids(board.entries()) == [2, 9, 4, 7, 1]


def test_the_order_is_the_same_whatever_the_insertion_order() -> None:
    entries = [entry(i, str(i % 3), str(i % 2)) for i in range(20)]
    reference = ids(Ranking(entries).entries())
    shuffled = entries[:]
    random.Random(1).shuffle(shuffled)
    assert ids(Ranking(shuffled).entries()) == reference


def test_upsert_reports_the_rank_change(board: Ranking) -> None:
    assert board.upsert(entry(6, "1")) == RankChange(6, None, 3)  # new: above 4 (0 %)
    assert board.upsert(entry(5, "30")) == RankChange(5, 6, 1)  # last to first
    assert board.upsert(entry(3, "-50")) == RankChange(3, 2, 6)  # down to last
    assert board.upsert(entry(1, "10", daily_change="3")) == RankChange(1, 2, 2)
    assert not board.upsert(entry(1, "10")).moved
    assert ids(board.entries()) == [5, 1, 6, 4, 2, 3]
    one = board.get(1)
    assert one is not None
    assert one.entry.daily_change == 0


def test_remove(board: Ranking) -> None:
    assert board.remove(1) == 2
    assert ids(board.entries()) == [3, 4, 2, 5]
    assert board.rank_of(1) is None
    assert board.get(1) is None
    assert board.remove(1) is None  # twice: nothing to do
    assert board.remove(99) is None
    assert len(board) == 4


def test_top_at_the_edges(board: Ranking) -> None:
    assert ids(board.top(2)) == [3, 1]
    assert ids(board.top(1)) == [3]
    assert board.top(0) == []
    assert ids(board.top(50)) == [3, 1, 4, 2, 5]
    assert Ranking().top(10) == []
    with pytest.raises(ValueError, match="n must be"):
        board.top(-1)


def test_around_at_the_edges(board: Ranking) -> None:
    assert ids(board.around(4, 1)) == [1, 4, 2]
    assert ranks(board.around(4, 1)) == [2, 3, 4]
    assert ids(board.around(3, 2)) == [3, 1, 4]  # first: nothing above
    assert ids(board.around(5, 2)) == [4, 2, 5]  # last: nothing below
    assert ids(board.around(4, 0)) == [4]
    assert ids(board.around(4, 100)) == [3, 1, 4, 2, 5]  # window larger than the board
    with pytest.raises(ValueError, match="window must be"):
        board.around(4, -1)


def test_unknown_portfolio(board: Ranking) -> None:
    assert board.rank_of(42) is None
    assert board.get(42) is None
    with pytest.raises(KeyError):
        board.around(42, 5)


def test_values_must_be_finite(board: Ranking) -> None:
    with pytest.raises(ValueError, match="return_percent"):
        board.upsert(entry(8, "NaN"))
    with pytest.raises(ValueError, match="total_value"):
        board.upsert(entry(8, "1", "Infinity"))
    assert len(board) == 5
    assert board.rank_of(8) is None


def test_sort_key_is_exact_beyond_the_decimal_context() -> None:
    # 40 significant digits: unary minus would round them to 28; copy_negate does not.
    a = entry(1, "1." + "0" * 38 + "1")
    b = entry(2, "1." + "0" * 38 + "2")
    assert sort_key(b) < sort_key(a)
    assert ids(Ranking([a, b]).entries()) == [2, 1]


# -- changes()


def test_first_changes_is_everything_entered(board: Ranking) -> None:
    first = board.changes()
    assert ids(list(first.entered)) == [3, 1, 4, 2, 5]
    assert all(r.previous_rank is None for r in first.entered)
    assert (first.moved, first.updated, first.left) == ((), (), ())
    assert board.changes() == Changes()
    assert not board.changes()
    # After the mark, an entry that has not moved since it entered has no previous rank.
    assert [(r.rank, r.previous_rank) for r in board.entries()] == [(i, None) for i in range(1, 6)]


def test_settle_makes_the_loaded_board_unmoved_rather_than_new(board: Ranking) -> None:
    board.settle()
    assert [(r.rank, r.previous_rank) for r in board.entries()] == [(i, i) for i in range(1, 6)]
    assert not board.changes()  # settling is a mark: nothing is news
    board.upsert(entry(5, "20"))  # 5 -> 2
    board.upsert(entry(6, "-100"))  # enters last: new
    board.changes()
    by_id = {r.entry.portfolio_id: (r.rank, r.previous_rank) for r in board.entries()}
    assert by_id[5] == (2, 5)
    assert by_id[6] == (6, None)
    assert by_id[3] == (1, 1)  # never moved
    assert by_id[1] == (3, 2)  # shifted down by the move


def test_changes_report_moved_entered_updated_and_left(board: Ranking) -> None:
    board.changes()
    board.upsert(entry(5, "20"))  # 5 -> 2: shifts 1, 4, 2 down by one
    board.upsert(entry(6, "-100"))  # enters last
    board.remove(3)  # leaves: everyone moves up by one
    board.upsert(entry(1, "10", daily_change="7"))  # new values, same place
    changes = board.changes()
    by_id = {r.entry.portfolio_id: (r.previous_rank, r.rank) for r in changes.moved}
    # Board now: 5 (20 %), 1, 4, 2, 6. Before: 3, 1, 4, 2, 5.
    assert by_id == {5: (5, 1)}
    assert [(r.entry.portfolio_id, r.rank) for r in changes.entered] == [(6, 5)]
    assert [(r.entry.portfolio_id, r.rank, r.entry.daily_change) for r in changes.updated] == [
        (1, 2, Decimal("7"))
    ]
    assert changes.left == (3,)
    assert not board.changes()


def test_changes_list_entries_shifted_by_a_move() -> None:
    board = Ranking([entry(i, str(100 - i)) for i in range(1, 6)])  # 1, 2, 3, 4, 5
    board.changes()
    board.upsert(entry(4, "1000"))  # 4 to the top: 1, 2, 3 go down one
    changes = board.changes()
    assert [(r.entry.portfolio_id, r.previous_rank, r.rank) for r in changes.moved] == [
        (4, 4, 1),
        (1, 1, 2),
        (2, 2, 3),
        (3, 3, 4),
    ]
    assert (changes.entered, changes.updated, changes.left) == ((), (), ())


def test_changes_net_out_what_came_back() -> None:
    board = Ranking([entry(1, "3"), entry(2, "2"), entry(3, "1")])
    board.changes()
    board.upsert(entry(3, "50"))
    board.upsert(entry(3, "1"))  # back where it was, same values
    board.remove(2)
    board.upsert(entry(2, "2"))  # left and came back, same values
    board.upsert(entry(4, "9"))
    board.remove(4)  # entered and left between two calls: never seen
    assert not board.changes()


def test_a_removed_entry_that_comes_back_with_new_values_is_updated_or_moved() -> None:
    board = Ranking([entry(1, "3"), entry(2, "2")])
    board.changes()
    board.remove(2)
    board.upsert(entry(2, "2", daily_change="1"))
    changes = board.changes()
    assert changes.left == ()
    assert changes.entered == ()
    assert [r.entry.portfolio_id for r in changes.updated] == [2]


# -- against a brute-force sort


def reference_order(entries: dict[int, LeaderboardEntry]) -> list[int]:
    return [
        e.portfolio_id
        for e in sorted(
            entries.values(), key=lambda e: (-e.return_percent, -e.total_value, e.portfolio_id)
        )
    ]


def random_entry(rng: random.Random, portfolio_id: int) -> LeaderboardEntry:
    # Coarse values so that ties (return and value) are common.
    return entry(
        portfolio_id,
        str(Decimal(rng.randint(-500, 500)) / 10),
        str(rng.randint(0, 20) * 500),
    )


def test_many_random_upserts_match_a_sorted_reference() -> None:
    rng = random.Random(20261205)
    size = 100_000
    current = {i: random_entry(rng, i) for i in range(1, size + 1)}
    board = Ranking(current.values())
    assert ids(board.entries()) == reference_order(current)
    board.changes()
    marked = {pid: rank for rank, pid in enumerate(reference_order(current), start=1)}
    marked_values = dict(current)

    for step in range(3000):
        portfolio_id = rng.randint(1, size + 200)  # some new ids, some known
        if step % 10 == 0 and portfolio_id in current:
            assert board.remove(portfolio_id) is not None
            del current[portfolio_id]
        else:
            current[portfolio_id] = random_entry(rng, portfolio_id)
            change = board.upsert(current[portfolio_id])
            assert change.new_rank == board.rank_of(portfolio_id)
        if step % 500 == 0:  # a few spot checks of ranks and windows on the way
            order = reference_order(current)
            probe = order[rng.randrange(len(order))]
            assert board.rank_of(probe) == order.index(probe) + 1
            assert (
                ids(board.around(probe, 3))
                == order[max(0, order.index(probe) - 3) : order.index(probe) + 4]
            )

    order = reference_order(current)
    assert len(board) == len(order)
    assert ids(board.entries()) == order
    assert ids(board.top(10)) == order[:10]
    now = {pid: rank for rank, pid in enumerate(order, start=1)}

    changes = board.changes()
    assert {r.entry.portfolio_id for r in changes.entered} == now.keys() - marked.keys()
    assert set(changes.left) == marked.keys() - now.keys()
    assert {r.entry.portfolio_id for r in changes.moved} == {
        pid for pid in now.keys() & marked.keys() if now[pid] != marked[pid]
    }
    assert {r.entry.portfolio_id for r in changes.updated} == {
        pid
        for pid in now.keys() & marked.keys()
        if now[pid] == marked[pid] and current[pid] != marked_values[pid]
    }
    assert all(r.previous_rank == marked[r.entry.portfolio_id] for r in changes.moved)
    assert all(r.rank == now[r.entry.portfolio_id] for r in changes.moved + changes.entered)


# -- property: any sequence of operations, against the brute force

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["upsert", "upsert", "remove", "changes"]),
        st.integers(1, 6),  # few ids: collisions, removals and returns are common
        st.integers(-3, 3),  # return %: ties are common
        st.integers(0, 2),  # total value
        st.integers(0, 1),  # daily change
    ),
    min_size=5,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_any_sequence_matches_the_brute_force(
    operations: list[tuple[str, int, int, int, int]],
) -> None:
    board = Ranking()
    current: dict[int, LeaderboardEntry] = {}
    marked_order: list[int] = []
    marked_values: dict[int, LeaderboardEntry] = {}
    previous: dict[int, int] = {}  # each entry's rank before its last move, at the mark
    for op, portfolio_id, ret, value, daily in operations:
        if op == "upsert":
            current[portfolio_id] = entry(portfolio_id, ret, value, daily_change=str(daily))
            board.upsert(current[portfolio_id])
        elif op == "remove":
            expected = (
                reference_order(current).index(portfolio_id) + 1
                if portfolio_id in current
                else None
            )
            assert board.remove(portfolio_id) == expected
            current.pop(portfolio_id, None)
        else:
            order = reference_order(current)
            then = {pid: rank for rank, pid in enumerate(marked_order, start=1)}
            now = {pid: rank for rank, pid in enumerate(order, start=1)}
            changes = board.changes()
            assert [r.entry.portfolio_id for r in changes.entered] == [
                pid for pid in order if pid not in then
            ]
            assert [r.entry.portfolio_id for r in changes.moved] == [
                pid for pid in order if pid in then and then[pid] != now[pid]
            ]
            assert [r.entry.portfolio_id for r in changes.updated] == [
                pid
                for pid in order
                if then.get(pid) == now[pid] and marked_values[pid] != current[pid]
            ]
            assert list(changes.left) == sorted(then.keys() - now.keys())
            assert all(r.previous_rank == then[r.entry.portfolio_id] for r in changes.moved)
            previous = {
                pid: then[pid] if then.get(pid, rank) != rank else previous[pid]
                for pid, rank in now.items()
                if pid in previous or then.get(pid, rank) != rank
            }
            marked_order, marked_values = order, dict(current)
        order = reference_order(current)
        assert ids(board.entries()) == order
        # previous_rank: the rank at the mark when it moved since, else the recorded one
        then = {pid: rank for rank, pid in enumerate(marked_order, start=1)}
        assert [r.previous_rank for r in board.entries()] == [
            then[pid] if then.get(pid, rank) != rank else previous.get(pid)
            for rank, pid in enumerate(order, start=1)
        ]
        for pid in current:
            assert board.rank_of(pid) == order.index(pid) + 1
            assert (
                ids(board.around(pid, 1))
                == order[max(0, order.index(pid) - 1) : order.index(pid) + 2]
            )


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["upsert", "remove", "mark"]), st.integers(1, 10), st.integers(-5, 5)
        ),
        max_size=60,
    )
)
def test_mark_marks_as_changes_does(ops: list[tuple[str, int, int]]) -> None:
    """``mark()`` leaves every ``previous_rank`` as ``changes()`` would."""
    told, quiet = Ranking(), Ranking()
    for op, pid, value in ops:
        for ranking in (told, quiet):
            if op == "upsert":
                ranking.upsert(entry(pid, value))
            elif op == "remove":
                ranking.remove(pid)
        if op == "mark":
            told.changes()
            quiet.mark()
        assert quiet.entries() == told.entries()
    told.changes()
    quiet.mark()
    assert quiet.entries() == told.entries()
