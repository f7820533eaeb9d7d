"""Quote enrichment (last price, day volume) and the dead-letter store: pure."""

from __future__ import annotations

import pytest

from tickcast.model.market import Bar, Quote, Trade
from tickcast.providers.deadletter import MAX_RAW_CHARS, DeadLetters
from tickcast.providers.enrich import SessionState

DAY = 86_400.0


def quote(ts: float, bid: float = 10.0, ask: float = 10.2) -> Quote:
    return Quote("AAPL", bid, ask, 100.0, 100.0, 0.0, 0.0, ts, "alpaca")


def test_before_any_trade_a_quote_carries_the_mid_price() -> None:
    (q,) = SessionState().apply([quote(1.0)])
    assert isinstance(q, Quote)
    assert q.price == pytest.approx(10.1)
    assert q.volume == 0


def test_trades_set_the_last_price_and_add_up_the_volume() -> None:
    state = SessionState()
    out = state.apply(
        [Trade("AAPL", 10.05, 300, 1.0, "alpaca"), quote(1.1), Trade("AAPL", 10.1, 200, 1.2, "a")]
    )
    q = out[1]
    assert isinstance(q, Quote)
    assert (q.price, q.volume) == (10.05, 300)
    (q2,) = state.apply([quote(1.3)])
    assert isinstance(q2, Quote)
    assert (q2.price, q2.volume) == (10.1, 500)


def test_symbols_are_independent_and_the_volume_resets_at_midnight_utc() -> None:
    state = SessionState()
    state.apply([Trade("AAPL", 10.0, 100, DAY - 1, "a"), Trade("MSFT", 400.0, 7, DAY - 1, "a")])
    (q,) = state.apply([quote(DAY + 1)])
    assert isinstance(q, Quote)
    assert q.volume == 0
    assert q.price == pytest.approx(10.1)  # a new day: mid until the first trade


def test_a_daily_bar_gives_the_exchange_volume() -> None:
    state = SessionState()
    bar = Bar("AAPL", 9.0, 11.0, 8.0, 10.5, 123_456, 0.0, 5.0, "alpaca", interval_s=86_400)
    (_, q) = state.apply([bar, quote(6.0)])
    assert isinstance(q, Quote)
    assert (q.price, q.volume) == (10.5, 123_456)


def test_other_events_pass_through_unchanged_and_in_order() -> None:
    trade = Trade("AAPL", 10.0, 1, 1.0, "a")
    bar = Bar("AAPL", 1, 2, 0.5, 1.5, 10, 0.0, 60.0, "a")
    assert SessionState().apply([trade, bar]) == [trade, bar]


def test_dead_letters_are_bounded_but_counted() -> None:
    letters = DeadLetters(capacity=3)
    for i in range(5):
        letters.add("alpaca", f"raw {i}", "bad", float(i))
    letters.add("polygon", b"\x01\x02", "bad msgpack", 9.0)
    assert len(letters) == 3
    assert letters.totals == {"alpaca": 5, "polygon": 1}
    assert letters.total == 6
    assert [d.raw for d in letters.recent(2)] == ["raw 4", "0102"]
    assert letters.recent(0) == []


def test_a_huge_payload_is_truncated() -> None:
    letters = DeadLetters()
    letter = letters.add("alpaca", "x" * (MAX_RAW_CHARS * 3), "too big", 0.0)
    assert len(letter.raw) == MAX_RAW_CHARS


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        DeadLetters(0)
