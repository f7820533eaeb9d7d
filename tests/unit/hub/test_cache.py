"""LastValueCache: latest quote and bar, no trades, a full L2 book rebuilt from deltas."""

from __future__ import annotations

from tickcast.hub.cache import LastValueCache
from tickcast.model.channel import builtin
from tickcast.model.envelope import Envelope
from tickcast.model.market import Bar, BookUpdate, Level, MarketEvent, Quote, Trade
from tickcast.model.topic import Channel, Topic

topic_of = builtin().topic_of

TS = 1_700_000_000.0


def wrap(event: MarketEvent, seq: int) -> Envelope:
    return Envelope(topic_of(event), seq, TS + seq, event)


def quote(price: float) -> Quote:
    return Quote("AAPL", price - 0.05, price + 0.05, 100.0, 200.0, price, 1000.0, TS, "test")


def book(
    bids: tuple[Level, ...], asks: tuple[Level, ...], *, snapshot: bool, sequence: int
) -> BookUpdate:
    return BookUpdate("AAPL", bids, asks, snapshot, TS + sequence, "test", sequence)


def test_quote_latest_wins() -> None:
    cache = LastValueCache()
    cache.update("quotes.AAPL", wrap(quote(150.0), 1))
    cache.update("quotes.AAPL", wrap(quote(151.0), 2))
    assert cache.get("quotes.AAPL") == wrap(quote(151.0), 2)


def test_bar_latest_wins() -> None:
    cache = LastValueCache()
    first = Bar("AAPL", 1.0, 2.0, 0.5, 1.5, 10.0, TS, TS + 60, "test")
    second = Bar("AAPL", 1.5, 3.0, 1.0, 2.5, 20.0, TS + 60, TS + 120, "test")
    cache.update("bars.AAPL", wrap(first, 1))
    cache.update("bars.AAPL", wrap(second, 2))
    assert cache.get("bars.AAPL") == wrap(second, 2)


def test_trades_are_not_cached() -> None:
    cache = LastValueCache()
    cache.update("trades.AAPL", wrap(Trade("AAPL", 150.0, 10.0, TS, "test", "1"), 1))
    assert cache.get("trades.AAPL") is None


def test_unknown_key_is_none() -> None:
    assert LastValueCache().get("quotes.MSFT") is None


def test_book_deltas_apply_to_the_snapshot_and_yield_a_full_sorted_snapshot() -> None:
    cache = LastValueCache()
    cache.update(
        "book.AAPL",
        wrap(
            book(
                ((100.0, 5.0), (99.0, 3.0), (98.0, 1.0)),
                ((101.0, 4.0), (102.0, 6.0)),
                snapshot=True,
                sequence=10,
            ),
            1,
        ),
    )
    # A better bid appears, 99.0 is removed (size 0), 101.0 changes size.
    cache.update(
        "book.AAPL",
        wrap(
            book(((100.5, 2.0), (99.0, 0.0)), ((101.0, 9.0),), snapshot=False, sequence=11),
            2,
        ),
    )
    # A removal of a level that is not in the book is harmless; a new ask level.
    cache.update(
        "book.AAPL",
        wrap(book(((97.0, 0.0),), ((101.5, 1.0),), snapshot=False, sequence=12), 3),
    )
    got = cache.get("book.AAPL")
    assert got == Envelope(
        Topic(Channel.BOOK, "AAPL"),
        3,
        TS + 3,
        BookUpdate(
            "AAPL",
            ((100.5, 2.0), (100.0, 5.0), (98.0, 1.0)),
            ((101.0, 9.0), (101.5, 1.0), (102.0, 6.0)),
            True,
            TS + 12,
            "test",
            12,
        ),
    )


def test_new_book_snapshot_replaces_the_book() -> None:
    cache = LastValueCache()
    cache.update(
        "book.AAPL",
        wrap(book(((100.0, 5.0),), ((101.0, 4.0),), snapshot=True, sequence=1), 1),
    )
    cache.update(
        "book.AAPL",
        wrap(book(((99.5, 1.0),), (), snapshot=False, sequence=2), 2),
    )
    cache.update(
        "book.AAPL",
        wrap(book(((90.0, 7.0),), ((91.0, 8.0),), snapshot=True, sequence=3), 3),
    )
    got = cache.get("book.AAPL")
    assert got is not None
    assert got.seq == 3
    assert got.payload == book(((90.0, 7.0),), ((91.0, 8.0),), snapshot=True, sequence=3)


def test_book_delta_never_leaks_as_a_bare_delta() -> None:
    cache = LastValueCache()
    cache.update(
        "book.AAPL",
        wrap(book(((100.0, 5.0),), ((101.0, 4.0),), snapshot=True, sequence=1), 1),
    )
    cache.update("book.AAPL", wrap(book((), ((101.0, 3.0),), snapshot=False, sequence=2), 2))
    got = cache.get("book.AAPL")
    assert got is not None
    assert isinstance(got.payload, BookUpdate)
    assert got.payload.snapshot is True
    assert got.payload.bids == ((100.0, 5.0),)
    assert got.payload.asks == ((101.0, 3.0),)
