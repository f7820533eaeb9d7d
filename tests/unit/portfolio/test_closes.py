"""Closes: the one owner of the previous closes (pure)."""

from __future__ import annotations

from decimal import Decimal

from tickcast.portfolio.closes import Closes


def test_the_table_s_closes_are_taken_and_changes_reported() -> None:
    closes = Closes()
    assert closes.load({"AAPL": Decimal("100"), "MSFT": None}) == {"AAPL"}
    assert closes.get("AAPL") == Decimal("100")
    assert closes.get("MSFT") is None
    assert closes.load({"AAPL": Decimal("100")}) == set()  # unchanged
    assert closes.load({"AAPL": Decimal("99.5")}) == {"AAPL"}  # a historical update
    assert closes.load({"AAPL": None}) == set()  # a null forgets nothing
    assert closes.get("AAPL") == Decimal("99.5")


def test_an_observed_close_is_unstored_until_written_and_wins_over_the_table_meanwhile() -> None:
    closes = Closes()
    closes.load({"AAPL": Decimal("100")})
    assert closes.observe("AAPL", Decimal("104"))
    assert closes.unstored() == {"AAPL": Decimal("104")}
    assert closes.load({"AAPL": Decimal("100")}) == set()  # the table is behind
    assert closes.get("AAPL") == Decimal("104")
    closes.stored({"AAPL": Decimal("104")})
    assert closes.unstored() == {}
    assert closes.load({"AAPL": Decimal("103")}) == {"AAPL"}  # written later: the truth
    assert closes.get("AAPL") == Decimal("103")


def test_a_close_observed_again_after_a_write_began_stays_unstored() -> None:
    closes = Closes()
    closes.observe("AAPL", Decimal("104"))
    writing = closes.unstored()
    closes.observe("AAPL", Decimal("105"))
    closes.stored(writing)
    assert closes.unstored() == {"AAPL": Decimal("105")}


def test_observing_the_close_already_known_changes_nothing() -> None:
    closes = Closes()
    closes.load({"AAPL": Decimal("100")})
    assert not closes.observe("AAPL", Decimal("100"))
    assert closes.unstored() == {}


def test_a_close_the_table_cannot_hold_is_kept_until_the_next_one_observed() -> None:
    closes = Closes()
    closes.load({"BIG": Decimal(1)})
    closes.observe("BIG", Decimal("1e19"))
    closes.stored(closes.unstored(), kept={"BIG"})
    assert closes.unstored() == {}
    assert closes.load({"BIG": Decimal(1)}) == set()
    assert closes.get("BIG") == Decimal("1e19")
    closes.observe("BIG", Decimal(2))
    closes.stored(closes.unstored())
    assert closes.load({"BIG": Decimal(3)}) == {"BIG"}  # the table is the truth again
