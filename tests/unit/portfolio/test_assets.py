"""AssetBoard: price, change against the previous close, day range, one update per interval."""

from __future__ import annotations

import pytest

from tickcast.model.market import Bar, Quote, Trade
from tickcast.portfolio.assets import AssetBoard, Reference, ReferenceKind

DAY = 86_400.0
T0 = 100 * DAY + 3600.0


def quote(price: float, ts: float = T0, volume: float = 1000.0, symbol: str = "AAPL") -> Quote:
    return Quote(symbol, price - 0.01, price + 0.01, 100, 100, price, volume, ts, "alpaca")


def test_change_against_the_previous_close_and_the_day_range() -> None:
    board = AssetBoard({"AAPL": 100.0})
    board.apply([quote(101.0), Trade("AAPL", 103.0, 10, T0 + 1, "alpaca"), quote(99.0, T0 + 2)])
    (update,) = board.take_updates(T0 + 3)
    assert update.symbol == "AAPL"
    assert update.price == 99.0
    assert update.change == pytest.approx(-1.0)
    assert update.change_percent == pytest.approx(-1.0)
    assert (update.high, update.low) == (103.0, 99.0)
    assert update.volume == 1000.0
    assert update.ts == T0 + 3


def test_without_a_known_close_the_first_price_of_the_day_is_the_reference() -> None:
    board = AssetBoard()
    board.apply([quote(50.0), quote(55.0, T0 + 1)])
    (update,) = board.take_updates(T0 + 2)
    assert update.change == pytest.approx(5.0)
    assert update.change_percent == pytest.approx(10.0)
    assert board.reference("AAPL") == Reference(50.0, ReferenceKind.FIRST_PRICE_TODAY)


def test_the_first_price_of_today_is_never_a_previous_close() -> None:
    board = AssetBoard()
    board.apply([quote(420.0, symbol="MSFT")])
    assert board.previous_close("MSFT") is None
    assert board.previous_close("MSFT", now=T0 + 60) is None
    assert board.observed_close("MSFT", now=T0 + 60) is None
    assert board.reference("MSFT", now=T0 + 60) == (420.0, ReferenceKind.FIRST_PRICE_TODAY)
    assert board.previous_close("NOPE") is None
    assert board.reference("NOPE") is None


def test_a_given_close_is_the_reference_and_is_not_observed() -> None:
    board = AssetBoard({"AAPL": 100.0})
    assert board.reference("AAPL") == (100.0, ReferenceKind.PREVIOUS_CLOSE)
    board.apply([quote(101.0)])
    assert board.previous_close("AAPL", T0) == 100.0
    assert board.observed_close("AAPL", T0) is None
    assert board.reference("AAPL", T0) == (100.0, ReferenceKind.PREVIOUS_CLOSE)


def test_apply_reports_the_symbols_whose_reference_changed() -> None:
    board = AssetBoard({"AAPL": 100.0})
    assert board.apply([quote(101.0)]) == set()  # the given close stays the reference
    assert board.apply([quote(10.0, symbol="MSFT")]) == {"MSFT"}  # a first price
    assert board.apply([quote(11.0, T0 + 1, symbol="MSFT"), quote(102.0, T0 + 1)]) == set()
    assert board.apply([quote(103.0, T0 + DAY)]) == {"AAPL"}  # a new day
    assert board.apply([Trade("X", 0.0, 1, T0, "alpaca")]) == set()  # not a price


def test_one_update_per_changed_symbol_per_call() -> None:
    board = AssetBoard()
    board.apply([quote(10.0, T0 + i / 10) for i in range(50)])
    assert len(board.take_updates(T0 + 6)) == 1
    assert board.take_updates(T0 + 7) == []  # nothing changed since
    board.apply([quote(10.5, T0 + 8, symbol="MSFT")])
    assert [u.symbol for u in board.take_updates(T0 + 9)] == ["MSFT"]


def test_a_new_day_closes_the_previous_one_and_resets_the_range() -> None:
    board = AssetBoard()
    board.apply([quote(10.0), quote(12.0, T0 + 10)])
    board.take_updates(T0 + 11)
    board.apply([quote(11.0, T0 + DAY)])
    (update,) = board.take_updates(T0 + DAY + 1)
    assert update.change == pytest.approx(-1.0)  # against yesterday's last price, 12
    assert (update.high, update.low) == (11.0, 11.0)
    assert board.previous_close("AAPL") == board.observed_close("AAPL") == 12.0
    assert board.reference("AAPL") == (12.0, ReferenceKind.PREVIOUS_CLOSE)


def test_reads_at_a_later_day_answer_as_if_the_day_had_turned() -> None:
    board = AssetBoard({"AAPL": 9.0})
    board.apply([quote(10.0), quote(12.0, T0 + 10)])
    assert board.previous_close("AAPL", now=T0 + 20) == 9.0  # the same day
    tomorrow = T0 + DAY  # no price yet today: yesterday's last one closed it
    assert board.previous_close("AAPL", now=tomorrow) == 12.0
    assert board.observed_close("AAPL", now=tomorrow) == 12.0
    assert board.reference("AAPL", now=tomorrow) == (12.0, ReferenceKind.PREVIOUS_CLOSE)
    update = board.update("AAPL", tomorrow)
    assert update is not None
    assert (update.price, update.change, update.high, update.low) == (12.0, 0.0, 12.0, 12.0)
    assert board.previous_close("AAPL") == 9.0  # reading changed nothing


def test_roll_starts_the_day_for_symbols_not_priced_yet_today() -> None:
    board = AssetBoard()
    board.apply([quote(10.0), quote(12.0, T0 + 10), quote(5.0, T0 + DAY, symbol="BTC")])
    board.take_updates(T0 + DAY)
    assert board.roll(T0 + DAY + 5) == {"AAPL"}  # BTC already has today's price
    assert board.roll(T0 + DAY + 6) == set()  # once a day
    (update,) = board.take_updates(T0 + DAY + 7)
    assert (update.symbol, update.price, update.change) == ("AAPL", 12.0, 0.0)
    assert board.reference("AAPL") == (12.0, ReferenceKind.PREVIOUS_CLOSE)
    board.apply([quote(13.0, T0 + DAY + 8)])
    (update,) = board.take_updates(T0 + DAY + 9)
    assert (update.change, update.high, update.low) == (pytest.approx(1.0), 13.0, 13.0)


def test_a_later_previous_close_marks_the_symbol_changed() -> None:
    board = AssetBoard()
    board.apply([quote(10.0)])
    board.take_updates(T0 + 1)
    board.set_previous_close("AAPL", 8.0)
    (update,) = board.take_updates(T0 + 2)
    assert update.change == pytest.approx(2.0)
    assert board.update("NOPE", T0) is None


def test_non_positive_prices_are_ignored() -> None:
    board = AssetBoard()
    board.apply([quote(0.0)])
    assert board.take_updates(T0) == []


def test_bars_are_not_prices_and_unknown_symbols_have_none() -> None:
    board = AssetBoard()
    assert board.apply([Bar("AAPL", 1.0, 2.0, 0.5, 1.5, 10.0, T0, T0, "alpaca")]) == set()
    assert board.take_updates(T0) == []
    assert board.price("AAPL") is None
    board.set_previous_close("AAPL", 100.0)  # before any price: kept for the first one
    assert board.take_updates(T0) == []
    board.apply([quote(101.0)])
    assert board.reference("AAPL") == (100.0, ReferenceKind.PREVIOUS_CLOSE)


def test_a_zero_close_is_no_reference() -> None:
    board = AssetBoard()
    board.apply([quote(10.0)])
    board.roll(T0 + DAY)
    board.set_previous_close("AAPL", 0.0)  # junk in the table: no change is computed
    assert board.reference("AAPL") is None
    update = board.update("AAPL", T0 + DAY)
    assert update is not None
    assert (update.change, update.change_percent) == (0.0, 0.0)
