"""BookBuilder: sequence checks and per-symbol resync (pure: no loop, no clock)."""

from __future__ import annotations

from tickcast.model.market import BookUpdate, Level
from tickcast.providers.book import MAX_BUFFERED, BookBuilder, BookState


def book(
    seq: int,
    bids: tuple[Level, ...] = (),
    asks: tuple[Level, ...] = (),
    *,
    snapshot: bool = False,
    symbol: str = "BTC/USD",
) -> BookUpdate:
    return BookUpdate(symbol, bids, asks, snapshot, float(seq), "test", seq)


def test_snapshot_then_contiguous_deltas_are_published() -> None:
    builder = BookBuilder()
    step = builder.apply(book(10, ((100.0, 1.0),), ((101.0, 2.0),), snapshot=True))
    assert step.resync is False
    assert step.publish[0].snapshot
    delta = book(11, ((100.0, 0.0), (99.5, 3.0)))
    assert builder.apply(delta).publish == (delta,)
    live = builder.book("BTC/USD")
    assert live is not None
    assert live.bids == {99.5: 3.0}
    assert live.asks == {101.0: 2.0}


def test_a_gap_stops_publishing_that_symbol_and_asks_for_one_resync() -> None:
    builder = BookBuilder()
    builder.apply(book(1, ((100.0, 1.0),), snapshot=True))
    gap = builder.apply(book(3, ((100.0, 5.0),)))
    assert gap.publish == ()
    assert gap.resync is True
    assert builder.state("BTC/USD") is BookState.SYNCING
    # further deltas are buffered quietly: one resync per gap, not one per delta
    assert builder.apply(book(4, ((100.0, 6.0),))) == ((), False)
    assert builder.gaps == 1


def test_snapshot_after_a_gap_replays_newer_buffered_deltas_and_publishes_the_book() -> None:
    builder = BookBuilder()
    builder.apply(book(1, ((100.0, 1.0),), snapshot=True))
    builder.apply(book(5, ((100.0, 5.0),)))  # gap: 2..4 missing
    builder.apply(book(6, ((99.0, 6.0),)))
    step = builder.apply(book(5, ((100.0, 5.0), (98.0, 1.0)), snapshot=True))
    assert step.resync is False
    (published,) = step.publish
    assert published.snapshot
    assert published.sequence == 6
    assert published.bids == ((100.0, 5.0), (99.0, 6.0), (98.0, 1.0))
    assert builder.state("BTC/USD") is BookState.LIVE
    assert builder.apply(book(7, asks=((101.0, 1.0),))).publish[0].sequence == 7


def test_a_snapshot_older_than_the_buffered_gap_asks_again() -> None:
    builder = BookBuilder()
    builder.apply(book(1, snapshot=True))
    builder.apply(book(10))
    builder.apply(book(11))
    step = builder.apply(book(5, snapshot=True))  # 6..9 still missing
    assert step == ((), True)
    assert builder.state("BTC/USD") is BookState.SYNCING
    final = builder.apply(book(9, snapshot=True))
    assert final.publish[0].sequence == 11


def test_duplicates_and_old_deltas_are_dropped_and_counted() -> None:
    builder = BookBuilder()
    builder.apply(book(5, snapshot=True))
    builder.apply(book(6, ((1.0, 1.0),)))
    assert builder.apply(book(6, ((1.0, 9.0),))).publish == ()
    assert builder.apply(book(2)).publish == ()
    assert builder.duplicates == 2
    live = builder.book("BTC/USD")
    assert live is not None
    assert live.bids == {1.0: 1.0}


def test_one_symbols_gap_leaves_the_others_live() -> None:
    builder = BookBuilder()
    builder.apply(book(1, snapshot=True, symbol="A"))
    builder.apply(book(1, snapshot=True, symbol="B"))
    builder.apply(book(3, symbol="A"))
    assert builder.state("A") is BookState.SYNCING
    assert builder.apply(book(2, ((1.0, 1.0),), symbol="B")).publish
    assert builder.state("B") is BookState.LIVE


def test_deltas_before_the_first_snapshot_ask_for_one_and_wait() -> None:
    builder = BookBuilder()
    assert builder.apply(book(3)) == ((), True)
    assert builder.apply(book(4)) == ((), False)
    step = builder.apply(book(3, ((1.0, 1.0),), snapshot=True))
    assert step.publish[0].sequence == 4


def test_unsequenced_updates_are_applied_as_they_come() -> None:
    builder = BookBuilder()
    builder.apply(book(0, ((1.0, 1.0),), snapshot=True))
    step = builder.apply(book(0, ((2.0, 1.0),)))
    assert step.publish
    assert not step.resync
    assert builder.apply(book(0, ((3.0, 1.0),))).publish


def test_the_buffer_is_bounded() -> None:
    builder = BookBuilder()
    builder.apply(book(1, snapshot=True))
    for seq in range(3, 3 + MAX_BUFFERED * 2):
        builder.apply(book(seq))
    step = builder.apply(book(3 + MAX_BUFFERED, snapshot=True))
    assert step.publish[0].sequence == 2 + MAX_BUFFERED * 2
