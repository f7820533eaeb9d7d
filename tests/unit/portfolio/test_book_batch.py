"""PortfolioBook.on_prices (a batch of float prices at once) against on_price per event:
the same book digit for digit (Decimal exponents included), the same changed portfolios,
and a bad price raising at the same point, after the prices before it."""

from __future__ import annotations

import math
from decimal import Decimal as D
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickcast.portfolio.book import PortfolioBook
from tickcast.portfolio.valuation import Holding, price_to_decimal

SYMBOLS = ("A", "B", "C")
#: prices of one or two places, so that exponents differ from tick to tick
GRID = (10.0, 10.1, 10.15, 10.2, 9.95, 10.05, 0.0, 123.456)
BAD = (math.nan, math.inf, -1.0, 1e-25)


class Tick(NamedTuple):
    symbol: str
    price: float


def _book(
    holdings: list[list[tuple[str, D]]], closes: dict[str, D], prices: dict[str, D]
) -> PortfolioBook:
    book = PortfolioBook()
    for symbol, close in closes.items():
        book.set_previous_close(symbol, close)
    for symbol, price in prices.items():
        book.on_price(symbol, price)
    for pid, held in enumerate(holdings, 1):
        book.load(pid, [Holding(s, q, q * 10) for s, q in dict(held).items()])
    return book


def _state(book: PortfolioBook, count: int) -> list[object]:
    # repr: Decimal('10.10') and Decimal('10.1') are equal but print apart on the wire
    state: list[object] = [repr(book.price(s)) for s in SYMBOLS]
    for pid in range(1, count + 1):
        v = book.valuation(pid)
        state.append(repr(v))
    return state


quantities = st.sampled_from([D(1), D("2.5"), D("0.125"), D(100), D("3.10")])
holdings_st = st.lists(
    st.lists(st.tuples(st.sampled_from(SYMBOLS), quantities), min_size=1, max_size=3),
    min_size=1,
    max_size=4,
)
closes_st = st.dictionaries(st.sampled_from(SYMBOLS), st.sampled_from([D("10.00"), D("9.9")]))
prices_st = st.dictionaries(st.sampled_from(SYMBOLS), st.sampled_from([D("10.00"), D("10.1")]))
ticks_st = st.lists(
    st.builds(Tick, st.sampled_from(SYMBOLS), st.sampled_from(GRID)), min_size=1, max_size=30
)


@settings(max_examples=300, deadline=None)
@given(
    holdings_st,
    closes_st,
    prices_st,
    ticks_st,
    st.none() | st.sampled_from(BAD),
    st.integers(0, 30),
)
def test_a_batch_leaves_the_book_as_one_price_at_a_time(
    holdings: list[list[tuple[str, D]]],
    closes: dict[str, D],
    prices: dict[str, D],
    ticks: list[Tick],
    bad: float | None,
    at: int,
) -> None:
    if bad is not None:
        ticks.insert(min(at, len(ticks)), Tick("B", bad))
    one, batch = _book(holdings, closes, prices), _book(holdings, closes, prices)

    expected: dict[str, set[int]] = {}
    raised = None
    for tick in ticks:
        try:
            changed = one.on_price(tick.symbol, price_to_decimal(tick.price))
        except ValueError as exc:
            raised = type(exc)
            break
        if changed:
            expected.setdefault(tick.symbol, set()).update(changed)

    got: dict[str, set[int]] = {}
    if raised is None:
        assert batch.on_prices(ticks, got) is got
    else:
        with pytest.raises(raised):
            batch.on_prices(ticks, got)
    assert got == expected
    assert _state(batch, len(holdings)) == _state(one, len(holdings))


def test_the_totals_keep_the_finest_exponent_the_prices_went_through() -> None:
    book = PortfolioBook()
    book.set_previous_close("A", D(10))
    book.on_price("A", D("10.1"))
    book.load(1, [Holding("A", D(2), D(20))])
    # 10.1 -> 10.15 -> 10.2: the per-event sum carries two places, though 10.2 - 10.1 has one
    book.on_prices([Tick("A", 10.15), Tick("A", 10.2)])
    assert repr(book.valuation(1).market_value) == "Decimal('20.40')"
    assert repr(book.price("A")) == "Decimal('10.2')"
