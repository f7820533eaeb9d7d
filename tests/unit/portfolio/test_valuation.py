"""Valuation maths against hand-computed cases, and the book against full recomputation.

Pure: no event loop, no clock. Every expected number below is worked out by hand in the
comment or the literal beside it.
"""

from __future__ import annotations

import random
from decimal import Decimal, localcontext

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickcast.portfolio.book import PortfolioBook
from tickcast.portfolio.cash import Cash, InsufficientCash
from tickcast.portfolio.valuation import (
    CONTEXT,
    MONEY_PLACES,
    Holding,
    InsufficientQuantity,
    PositionValue,
    Side,
    Valuation,
    apply_trade,
    position_value,
    price_to_decimal,
    value,
)

D = Decimal


def trades(symbol: str, *steps: tuple[str, str, str]) -> Holding:
    """A holding after ``(side, quantity, price)`` steps, from nothing."""
    holding = Holding(symbol)
    for side, quantity, price in steps:
        holding = apply_trade(holding, side, D(quantity), D(price))  # type: ignore[arg-type]
    return holding


# -- apply_trade: average cost


def test_buys_at_different_prices_average_the_cost() -> None:
    holding = trades("AAPL", ("buy", "10", "100"), ("buy", "10", "110"))
    assert holding == Holding("AAPL", D(20), D(2100), D(0))
    assert holding.average_cost == D(105)


def test_partial_sell_realizes_against_average_cost() -> None:
    holding = trades("AAPL", ("buy", "10", "100"), ("buy", "10", "110"), ("sell", "5", "120"))
    # realized (120 - 105) * 5 = 75; cost 2100 - 5 * 105 = 1575
    assert holding == Holding("AAPL", D(15), D(1575), D(75))
    assert holding.average_cost == D(105)  # a sell does not move the average


def test_sell_at_a_loss_realizes_a_negative_pnl() -> None:
    holding = trades("MSFT", ("buy", "4", "50"), ("sell", "1", "45"))
    assert holding == Holding("MSFT", D(3), D(150), D(-5))


def test_full_sell_leaves_zero_quantity_and_cost_and_keeps_realized() -> None:
    holding = trades(
        "AAPL",
        ("buy", "10", "100"),
        ("buy", "10", "110"),
        ("sell", "5", "120"),
        ("sell", "15", "100"),
    )
    # realized 75 + (100 - 105) * 15 = 0
    assert holding == Holding("AAPL", D(0), D(0), D(0))
    after_profit = trades("AAPL", ("buy", "3", "10"), ("sell", "3", "12"))
    assert after_profit == Holding("AAPL", D(0), D(0), D(6))
    assert after_profit.average_cost == D(0)


def test_buy_after_closing_starts_a_fresh_average() -> None:
    holding = trades("AAPL", ("buy", "2", "10"), ("sell", "2", "15"), ("buy", "1", "30"))
    assert holding == Holding("AAPL", D(1), D(30), D(10))


def test_selling_more_than_held_raises_insufficient_quantity() -> None:
    holding = trades("AAPL", ("buy", "10", "100"))
    with pytest.raises(InsufficientQuantity, match=r"cannot sell 10\.5 AAPL: only 10 held") as e:
        apply_trade(holding, Side.SELL, D("10.5"), D(100))
    assert (e.value.symbol, e.value.held, e.value.requested) == ("AAPL", D(10), D("10.5"))
    assert isinstance(e.value, ValueError)
    with pytest.raises(InsufficientQuantity):
        apply_trade(Holding("TSLA"), "sell", D(1), D(1))


def test_rounding_moves_the_cost_once_so_the_cash_adds_up() -> None:
    holding = trades("X", ("buy", "1", "10"), ("buy", "2", "10.01"), ("sell", "1", "11"))
    # removed cost 30.02 / 3 = 10.00666... -> 10.0066666667 (10 places, half-even)
    assert holding == Holding("X", D(2), D("20.0133333333"), D("0.9933333333"))
    closed = apply_trade(holding, "sell", D(2), D(11))
    # the whole remaining cost goes: 22 - 20.0133333333 = 1.9866666667; total 33 - 30.02
    assert closed == Holding("X", D(0), D(0), D("2.98"))
    # the average left: 20.0133333333 / 2 = 10.00666666665 -> 10.0066666666 (half-even)
    assert holding.average_cost == D("10.0066666666")


def test_stored_money_is_quantized_to_ten_places() -> None:
    holding = trades("BTC/USDT", ("buy", "0.12345678", "65000.1234567891"))
    # 0.12345678 * 65000.1234567891 = 8024.705941577651425098 -> 10 places
    assert holding.cost_basis == D("8024.7059415777")
    assert holding.cost_basis.as_tuple().exponent == MONEY_PLACES.as_tuple().exponent


def test_decimal_sums_are_exact_where_floats_are_not() -> None:
    holding = trades("X", ("buy", "1", "0.1"), ("buy", "1", "0.2"))
    assert holding.cost_basis == D("0.3")
    assert 0.1 + 0.2 != 0.3
    valuation = value(
        1, [Holding("A", D(1)), Holding("B", D(1))], {"A": D("0.1"), "B": D("0.2")}, {}
    )
    assert valuation.total_value == D("0.3")
    assert str(valuation.total_value) == "0.3"


@pytest.mark.parametrize(
    ("side", "quantity", "price", "error", "message"),
    [
        ("buy", D(0), D(1), ValueError, "quantity must be > 0"),
        ("buy", D(-1), D(1), ValueError, "quantity must be > 0"),
        ("buy", D("NaN"), D(1), ValueError, "quantity must be finite"),
        ("buy", D(1), D(-1), ValueError, "price must be >= 0"),
        ("buy", D(1), D("Infinity"), ValueError, "price must be finite"),
        ("buy", D("0.00000000001"), D(1), ValueError, "at most 10 places"),
        ("buy", D(1), D("150.00000000001"), ValueError, "at most 10 places"),
        ("buy", 1.5, D(1), TypeError, "quantity must be a Decimal, not float"),
        ("buy", D(1), 1.5, TypeError, "price must be a Decimal, not float"),
        ("short", D(1), D(1), ValueError, "not a valid Side"),
    ],
)
def test_trades_are_validated(
    side: str, quantity: object, price: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        apply_trade(Holding("AAPL", D(5), D(50)), side, quantity, price)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "price",
    [D("1e-21"), D("0.000000000000000000001"), D("1e20"), price_to_decimal(5.4648160487308223e-70)],
)
def test_prices_beyond_exact_arithmetic_are_refused(price: Decimal) -> None:
    with pytest.raises(ValueError, match="must be below 1E"):
        apply_trade(Holding("AAPL"), "buy", D(1), price)
    with pytest.raises(ValueError, match="must be below 1E"):
        PortfolioBook().on_price("AAPL", price)


def test_the_largest_exact_inputs_are_accepted() -> None:
    largest = D("99999999999999999999.99999999999999999999")  # < 1e20, 20 places
    book = book_with((1, [Holding("X", largest, D(1))]))
    book.on_price("X", largest)
    assert book.valuation(1) == full(book, 1)
    # (1e20 - 1e-20) ** 2 = 1e40 - 2 + 1e-40: 80 digits, exact
    exact = D("9999999999999999999999999999999999999998.0000000000000000000000000000000000000001")
    assert book.valuation(1).total_value == exact


def test_a_trade_at_price_zero_is_allowed() -> None:
    assert trades("GIFT", ("buy", "5", "0")) == Holding("GIFT", D(5), D(0))
    assert trades("X", ("buy", "2", "10"), ("sell", "2", "0")).realized_pnl == D(-20)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"symbol": ""}, "non-empty string"),
        ({"quantity": D(-1)}, "quantity must be >= 0"),
        ({"cost_basis": D(-1), "quantity": D(1)}, "cost_basis must be >= 0"),
        ({"quantity": D(0), "cost_basis": D(5)}, "zero quantity must have a zero cost basis"),
        ({"realized_pnl": D("NaN")}, "realized_pnl must be finite"),
    ],
)
def test_holdings_are_validated(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"symbol": "AAPL", **kwargs}
    with pytest.raises(ValueError, match=message):
        Holding(**fields)  # type: ignore[arg-type]


def test_side_members_equal_their_strings() -> None:
    side: str = Side.BUY
    assert side == "buy"
    assert Side("sell") is Side.SELL


# -- price_to_decimal


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (150.1, "150.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (65000.0, "65000.0"),
        (1e-05, "0.00001"),
        (7, "7.0"),
    ],
)
def test_price_to_decimal_keeps_the_printed_digits(price: float, expected: str) -> None:
    assert price_to_decimal(price) == D(expected)
    assert price_to_decimal(150.1) != D(150.1)  # not the binary expansion


@pytest.mark.parametrize("price", [float("nan"), float("inf"), float("-inf")])
def test_price_to_decimal_refuses_non_finite(price: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        price_to_decimal(price)


# -- value()

WORKED = Holding("AAPL", D(15), D(1575), D(75))


def test_worked_example_from_the_module_docstring() -> None:
    valuation = value(7, [WORKED], {"AAPL": D(130)}, {"AAPL": D(125)})
    position = PositionValue("AAPL", D(15), D(130), D(1950), D(1575), D(375), D(75), D(75))
    assert valuation == Valuation(
        portfolio_id=7,
        total_value=D(1950),
        market_value=D(1950),
        cash=D(0),
        net_deposits=D(0),
        cost_basis=D(1575),
        unrealized_pnl=D(375),
        realized_pnl=D(75),
        daily_change=D(75),
        daily_change_percent=D(4),
        unpriced=0,
        positions=(position,),
    )
    assert str(valuation.daily_change_percent) == "4.000000"


def test_a_portfolio_without_holdings_is_worth_zero_with_percent_zero() -> None:
    valuation = value(3, [], {"AAPL": D(1)}, {"AAPL": D(1)})
    assert valuation == Valuation(3, *[D(0)] * 9, 0, ())


def test_closed_positions_count_only_their_realized_pnl() -> None:
    closed = Holding("MSFT", D(0), D(0), D("-12.5"))
    valuation = value(1, [WORKED, closed], {"AAPL": D(130), "MSFT": D(300)}, {"MSFT": D(290)})
    assert valuation.total_value == D(1950)
    assert valuation.realized_pnl == D("62.5")  # 75 - 12.5
    assert valuation.daily_change == D(0)  # AAPL has no close; MSFT holds nothing
    assert valuation.positions[1] == PositionValue(
        "MSFT", D(0), D(300), D(0), D(0), D(0), D("-12.5"), D(0)
    )


def test_only_closed_positions_give_zero_value_and_percent() -> None:
    valuation = value(1, [Holding("MSFT", realized_pnl=D(4))], {"MSFT": D(9)}, {"MSFT": D(8)})
    assert (valuation.total_value, valuation.daily_change_percent) == (D(0), D(0))
    assert valuation.realized_pnl == D(4)


def test_daily_change_and_percent_against_previous_close() -> None:
    holdings = [Holding("A", D(10), D(900)), Holding("B", D(4), D(400)), Holding("C", D(2), D(50))]
    prices = {"A": D(95), "B": D(110), "C": D(30)}
    closes = {"A": D(100), "B": D(105)}  # C has no previous close
    valuation = value(1, holdings, prices, closes)
    # values 950 + 440 + 60 = 1450; daily 10 * -5 + 4 * 5 + 0 = -30
    # previous value 1450 + 30 = 1480; percent -3000 / 1480 = -2.027027027... -> -2.027027
    assert valuation.total_value == D(1450)
    assert valuation.cost_basis == D(1350)
    assert valuation.unrealized_pnl == D(100)
    assert valuation.daily_change == D(-30)
    assert valuation.daily_change_percent == D("-2.027027")
    assert [p.daily_change for p in valuation.positions] == [D(-50), D(20), D(0)]


@pytest.mark.parametrize(
    ("price", "percent"),
    [
        ("100.0000015", "0.000002"),  # exactly half way: to the even digit, up
        ("100.0000025", "0.000002"),  # exactly half way: to the even digit, down
        ("100.00000251", "0.000003"),
        ("99.9999985", "-0.000002"),
    ],
)
def test_percent_rounds_half_even(price: str, percent: str) -> None:
    valuation = value(1, [Holding("A", D(1), D(1))], {"A": D(price)}, {"A": D(100)})
    assert valuation.daily_change_percent == D(percent)  # 100 * change / 100 = change


def test_a_tiny_negative_percent_is_zero_not_minus_zero() -> None:
    valuation = value(1, [Holding("A", D(1), D(1))], {"A": D("999999.999")}, {"A": D(1000000)})
    assert valuation.daily_change == D("-0.001")
    assert str(valuation.daily_change_percent) == "0.000000"


def test_a_missing_price_falls_back_to_previous_close_then_cost() -> None:
    holdings = [Holding("A", D(10), D(900)), Holding("B", D(4), D(400)), Holding("C", D(2), D(50))]
    valuation = value(1, holdings, {"A": D(95)}, {"A": D(100), "B": D(105)})
    a, b, c = valuation.positions
    assert (a.price, a.market_value, a.unrealized_pnl) == (D(95), D(950), D(50))
    assert (b.price, b.market_value, b.unrealized_pnl, b.daily_change) == (
        None,
        D(420),  # 4 * previous close 105
        D(20),
        D(0),
    )
    assert (c.price, c.market_value, c.unrealized_pnl, c.daily_change) == (None, D(50), D(0), D(0))
    assert valuation.unpriced == 2
    assert valuation.total_value == D(1420)  # 950 + 420 + 50
    assert valuation.daily_change == D(-50)


def test_a_closed_position_without_price_is_not_unpriced() -> None:
    assert value(1, [Holding("A", realized_pnl=D(1))], {}, {}).unpriced == 0


def test_many_symbols_sum_exactly() -> None:
    # symbol i: i units bought at 1 each, priced at i + 0.01, previous close i
    holdings = [Holding(f"S{i:03}", D(i), D(i)) for i in range(1, 501)]
    prices = {f"S{i:03}": D(i) + D("0.01") for i in range(1, 501)}
    closes = {f"S{i:03}": D(i) for i in range(1, 501)}
    valuation = value(9, holdings, prices, closes)
    # sum i^2 = 500*501*1001/6 = 41791750; sum i = 125250; sum 0.01 i = 1252.5
    assert valuation.total_value == D("41793002.5")
    assert valuation.cost_basis == D(125250)
    assert valuation.unrealized_pnl == D("41667752.5")
    assert valuation.daily_change == D("1252.5")
    assert valuation.daily_change_percent == D("0.002997")  # 125250 / 41791750 = 0.0029970...
    assert len(valuation.positions) == 500


def test_cash_is_in_the_total_value_and_the_percent_base() -> None:
    valuation = value(7, [WORKED], {"AAPL": D(130)}, {"AAPL": D(125)}, D(600), D(2100))
    assert (valuation.total_value, valuation.market_value) == (D(2550), D(1950))
    assert (valuation.cash, valuation.net_deposits) == (D(600), D(2100))
    assert valuation.daily_change == D(75)  # cash has no daily change
    assert valuation.daily_change_percent == D("3.030303")  # 7500 / 2475
    # the accounting identity: what was put in plus the P&L
    pnl = valuation.unrealized_pnl + valuation.realized_pnl
    assert valuation.total_value == valuation.net_deposits + pnl
    only_cash = value(1, [], {}, {}, D("10.5"), D("10.5"))
    assert (only_cash.total_value, only_cash.daily_change_percent) == (D("10.5"), D(0))
    with pytest.raises(ValueError, match="cash must be >= 0"):
        value(1, [], {}, {}, D(-1))


def test_value_refuses_two_holdings_of_one_symbol() -> None:
    with pytest.raises(ValueError, match="two holdings of AAPL"):
        value(1, [Holding("AAPL"), Holding("AAPL")], {}, {})


def test_position_value_alone() -> None:
    assert (
        position_value(WORKED, D(130), D(125))
        == value(7, [WORKED], {"AAPL": D(130)}, {"AAPL": D(125)}).positions[0]
    )


# -- PortfolioBook


def book_with(*portfolios: tuple[int, list[Holding]]) -> PortfolioBook:
    book = PortfolioBook()
    for portfolio_id, holdings in portfolios:
        book.load(portfolio_id, holdings)
    return book


def full(book: PortfolioBook, portfolio_id: int) -> Valuation:
    cash = book.cash(portfolio_id)
    return value(
        portfolio_id,
        book.holdings(portfolio_id),
        book.prices,
        book.previous_closes,
        cash.balance,
        cash.net_deposits,
    )


def test_on_price_returns_exactly_the_holders() -> None:
    book = book_with(
        (1, [Holding("AAPL", D(1), D(1)), Holding("MSFT", D(1), D(1))]),
        (2, [Holding("AAPL", D(2), D(2))]),
        (3, [Holding("MSFT", D(3), D(3)), Holding("TSLA", D(0), D(0), D(5))]),
    )
    assert book.on_price("AAPL", D(10)) == {1, 2}
    assert book.on_price("MSFT", D(10)) == {1, 3}
    assert book.on_price("TSLA", D(10)) == set()  # 3 holds no TSLA any more
    assert book.on_price("NVDA", D(10)) == set()
    assert book.holders("AAPL") == frozenset({1, 2})
    assert book.holders("TSLA") == frozenset()


def test_an_unchanged_price_revalues_nothing() -> None:
    book = book_with((1, [Holding("AAPL", D(1), D(1))]))
    assert book.on_price("AAPL", D(10)) == {1}
    assert book.on_price("AAPL", D("10.00")) == set()
    assert book.price("AAPL") == D(10)


def test_selling_to_zero_leaves_the_index_and_keeps_the_holding() -> None:
    book = book_with((1, [Holding("AAPL", D(10), D(1000))]), (2, [Holding("AAPL", D(1), D(90))]))
    book.on_price("AAPL", D(120))
    closed = book.apply_trade(1, "AAPL", "sell", D(10), D(120))
    assert closed == Holding("AAPL", D(0), D(0), D(200))
    assert book.holders("AAPL") == frozenset({2})
    assert book.on_price("AAPL", D(121)) == {2}
    assert book.holding(1, "AAPL") == closed
    valuation = book.valuation(1)
    # the proceeds are cash: the value stays what the position was worth
    assert (valuation.market_value, valuation.cash) == (D(0), D(1200))
    assert (valuation.total_value, valuation.realized_pnl) == (D(1200), D(200))
    assert valuation == full(book, 1)
    book.apply_trade(1, "AAPL", "buy", D(1), D(121))
    assert book.holders("AAPL") == frozenset({1, 2})


def test_the_last_holder_leaving_drops_the_symbol_from_the_index() -> None:
    book = book_with((1, [Holding("AAPL", D(1), D(1))]))
    book.apply_trade(1, "AAPL", "sell", D(1), D(2))
    assert book.holders("AAPL") == frozenset()
    assert book.on_price("AAPL", D(3)) == set()


def test_remove_and_reload_update_the_index() -> None:
    book = book_with((1, [Holding("AAPL", D(1), D(1))]), (2, [Holding("AAPL", D(1), D(1))]))
    assert book.remove(1) is True
    assert book.remove(1) is False
    assert 1 not in book
    assert len(book) == 1
    assert book.on_price("AAPL", D(5)) == {2}
    book.load(2, [Holding("MSFT", D(1), D(1))])  # replaces its AAPL
    assert book.holders("AAPL") == frozenset()
    assert book.holders("MSFT") == frozenset({2})
    assert book.holdings(2) == (Holding("MSFT", D(1), D(1)),)


def test_load_refuses_duplicates_and_changes_nothing() -> None:
    book = book_with((1, [Holding("AAPL", D(1), D(1))]))
    with pytest.raises(ValueError, match="two holdings"):
        book.load(1, [Holding("MSFT"), Holding("MSFT")])
    assert book.holdings(1) == (Holding("AAPL", D(1), D(1)),)


def test_worked_example_through_the_book() -> None:
    book = PortfolioBook()
    book.load(7, [])
    for side, quantity, price in [("buy", 10, 100), ("buy", 10, 110), ("sell", 5, 120)]:
        book.apply_trade(7, "AAPL", side, D(quantity), D(price))  # type: ignore[arg-type]
    assert book.set_previous_close("AAPL", D(125)) == {7}
    assert book.on_price("AAPL", D(130)) == {7}
    summary = book.valuation(7, positions=False)
    # automatic deposits 1000 + 1100; the sell's 600 stays in cash (cash.py's example)
    assert summary == Valuation(
        portfolio_id=7,
        total_value=D(2550),
        market_value=D(1950),
        cash=D(600),
        net_deposits=D(2100),
        cost_basis=D(1575),
        unrealized_pnl=D(375),
        realized_pnl=D(75),
        daily_change=D(75),
        daily_change_percent=D("3.030303"),  # 100 * 75 / (2550 - 75)
    )
    assert book.valuation(7) == full(book, 7)
    assert book.position(7, "AAPL") == full(book, 7).positions[0]
    book.apply_trade(7, "AAPL", "sell", D(15), D(100))
    # all sold at 100: 2100 back in cash, exactly what was put in (realized 0)
    assert book.valuation(7, positions=False) == Valuation(
        7, D(2100), D(0), D(2100), D(2100), *[D(0)] * 5
    )


def test_unpriced_positions_are_revalued_on_their_first_price() -> None:
    book = book_with((1, [Holding("A", D(10), D(900)), Holding("B", D(4), D(400))]))
    assert book.valuation(1, positions=False).total_value == D(1300)  # both at cost
    assert book.valuation(1).unpriced == 2
    assert book.set_previous_close("B", D(105)) == {1}
    assert book.valuation(1, positions=False).total_value == D(1320)  # B at its close
    assert book.on_price("B", D(110)) == {1}
    valuation = book.valuation(1)
    assert (valuation.total_value, valuation.daily_change, valuation.unpriced) == (
        D(1340),  # 900 + 440
        D(20),
        1,
    )
    assert valuation == full(book, 1)


def test_a_new_previous_close_moves_the_daily_change() -> None:
    book = book_with((1, [Holding("A", D(10), D(900))]))
    book.on_price("A", D(95))
    assert book.set_previous_close("A", D(100)) == {1}
    assert book.valuation(1, positions=False).daily_change == D(-50)
    assert book.set_previous_close("A", D(100)) == set()
    assert book.set_previous_close("A", D(90)) == {1}
    assert book.valuation(1, positions=False).daily_change == D(50)
    assert book.previous_close("A") == D(90)
    assert book.set_previous_close("Z", D(1)) == set()


def test_a_bought_symbol_is_valued_at_its_known_price() -> None:
    book = book_with((1, []))
    book.on_price("AAPL", D(150))
    book.apply_trade(1, "AAPL", Side.BUY, D(2), D(149))
    valuation = book.valuation(1)
    assert (valuation.total_value, valuation.unrealized_pnl) == (D(300), D(2))
    assert valuation == full(book, 1)


def test_a_refused_trade_leaves_the_book_unchanged() -> None:
    book = book_with((1, [Holding("AAPL", D(10), D(1000))]))
    book.on_price("AAPL", D(110))
    before = book.valuation(1)
    with pytest.raises(InsufficientQuantity):
        book.apply_trade(1, "AAPL", "sell", D(11), D(110))
    with pytest.raises(ValueError, match="symbol"):
        book.apply_trade(1, "", "buy", D(1), D(1))
    assert book.valuation(1) == before
    assert book.holders("AAPL") == frozenset({1})


def test_cash_set_from_storage_and_refused_withdrawals_leave_the_book_unchanged() -> None:
    book = book_with((1, [Holding("AAPL", D(1), D(100))]))
    book.set_cash(1, Cash(D(50), D(150)))
    assert book.valuation(1, positions=False).total_value == D(150)  # 100 at cost + 50
    with pytest.raises(InsufficientCash):
        book.withdraw(1, D("50.01"))
    assert book.cash(1) == Cash(D(50), D(150))
    assert book.withdraw(1, D(50)) == Cash(D(0), D(100))
    with pytest.raises(KeyError):
        book.set_cash(2, Cash())


def test_unknown_portfolios_raise_key_error() -> None:
    book = PortfolioBook()
    with pytest.raises(KeyError):
        book.valuation(1)
    with pytest.raises(KeyError):
        book.apply_trade(1, "AAPL", "buy", D(1), D(1))
    with pytest.raises(KeyError):
        book.position(1, "AAPL")


def test_book_refuses_bad_prices() -> None:
    book = PortfolioBook()
    with pytest.raises(ValueError, match="price must be >= 0"):
        book.on_price("AAPL", D(-1))
    with pytest.raises(TypeError, match="Decimal"):
        book.set_previous_close("AAPL", 1.0)  # type: ignore[arg-type]


def test_prices_views_are_read_only() -> None:
    book = PortfolioBook()
    book.on_price("AAPL", D(1))
    assert dict(book.prices) == {"AAPL": D(1)}
    with pytest.raises(TypeError):
        book.prices["AAPL"] = D(2)  # type: ignore[index]


# -- incremental totals == full recomputation

SYMBOLS = ("AAPL", "MSFT", "BTC/USDT", "ETH/USDT", "SPY", "TSLA")


def check_book(book: PortfolioBook, portfolio_ids: list[int]) -> None:
    for portfolio_id in portfolio_ids:
        valuation = book.valuation(portfolio_id)
        assert valuation == full(book, portfolio_id)
        summary = book.valuation(portfolio_id, positions=False)
        assert summary == msgspec.structs.replace(valuation, positions=())
        # cash: never negative, in the total, and the accounting identity of cash.py
        assert valuation.cash >= 0
        with localcontext(CONTEXT):  # exact sums (the default context has 28 digits)
            assert valuation.total_value == valuation.market_value + valuation.cash
            pnl = valuation.unrealized_pnl + valuation.realized_pnl
            assert valuation.total_value == valuation.net_deposits + pnl
    for symbol in SYMBOLS:
        expected = {
            p for p in portfolio_ids if (h := book.holding(p, symbol)) is not None and h.quantity
        }
        assert book.holders(symbol) == expected


def random_step(rng: random.Random, book: PortfolioBook, portfolio_ids: list[int]) -> None:
    symbol = rng.choice(SYMBOLS)
    kind = rng.random()
    if kind < 0.35:
        book.on_price(symbol, price_to_decimal(rng.uniform(0, 1000)))
    elif kind < 0.4:
        book.set_previous_close(symbol, D(rng.randint(0, 100_000)).scaleb(-2))
    elif kind < 0.45:
        portfolio_id = rng.choice(portfolio_ids)
        amount = D(rng.randint(1, 10**8)).scaleb(-3)
        if rng.random() < 0.5:
            book.deposit(portfolio_id, amount)
        else:
            balance = book.cash(portfolio_id).balance
            try:
                book.withdraw(portfolio_id, amount)
            except InsufficientCash:
                assert amount > balance
                if balance:
                    book.withdraw(portfolio_id, balance)  # everything there is
    elif kind < 0.95:
        portfolio_id = rng.choice(portfolio_ids)
        held = book.holding(portfolio_id, symbol)
        price = D(rng.randint(0, 100_000)).scaleb(-2)
        if held is not None and held.quantity and rng.random() < 0.4:
            third = (held.quantity / 3).quantize(D("1e-8"))
            quantity = held.quantity if rng.random() < 0.3 or not third else third
            book.apply_trade(portfolio_id, symbol, "sell", quantity, price)
        else:
            book.apply_trade(
                portfolio_id, symbol, "buy", D(rng.randint(1, 10**6)).scaleb(-4), price
            )
    else:
        portfolio_id = rng.choice(portfolio_ids)
        # a reload (what the service does after a commit) changes nothing
        book.load(portfolio_id, book.holdings(portfolio_id), book.cash(portfolio_id))


@pytest.mark.parametrize("seed", range(20))
def test_incremental_totals_equal_full_recomputation(seed: int) -> None:
    rng = random.Random(seed)
    portfolio_ids = [1, 2, 3, 4]
    book = book_with(*((p, []) for p in portfolio_ids))
    for _ in range(300):
        random_step(rng, book, portfolio_ids)
    check_book(book, portfolio_ids)
    book.remove(4)
    check_book(book, [1, 2, 3])


# Every float price of 0.001 or more fits MAX_PLACES; 0 is a price too.
PRICES = st.one_of(st.just(0.0), st.floats(min_value=0.001, max_value=1e6)).map(price_to_decimal)
QUANTITIES = st.decimals(min_value="0.0001", max_value="1000", places=4)
TRADE_PRICES = st.decimals(min_value=0, max_value=1_000_000, places=10)
AMOUNTS = st.decimals(min_value="0.0000000001", max_value=10**9, places=10)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["deposit", "withdraw"]), st.integers(1, 3), AMOUNTS),
        st.tuples(st.just("price"), st.sampled_from(SYMBOLS), PRICES),
        st.tuples(st.just("close"), st.sampled_from(SYMBOLS), PRICES),
        st.tuples(
            st.just("trade"),
            st.integers(1, 3),
            st.sampled_from(SYMBOLS),
            st.sampled_from(["buy", "sell", "sell all"]),
            QUANTITIES,
            TRADE_PRICES,
        ),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None, database=None)
@given(steps=STEPS)
def test_incremental_totals_equal_full_recomputation_property(
    steps: list[tuple[object, ...]],
) -> None:
    book = book_with((1, []), (2, []), (3, []))
    for step in steps:
        if step[0] == "price":
            _, symbol, price = step
            book.on_price(str(symbol), price)  # type: ignore[arg-type]
        elif step[0] == "close":
            _, symbol, price = step
            book.set_previous_close(str(symbol), price)  # type: ignore[arg-type]
        elif step[0] == "deposit":
            _, portfolio_id, amount = step
            book.deposit(portfolio_id, amount)  # type: ignore[arg-type]
        elif step[0] == "withdraw":
            _, portfolio_id, amount = step
            before = book.cash(portfolio_id)  # type: ignore[arg-type]
            try:
                book.withdraw(portfolio_id, amount)  # type: ignore[arg-type]
            except InsufficientCash:
                assert amount > before.balance  # type: ignore[operator]
                assert book.cash(portfolio_id) == before  # type: ignore[arg-type]
        else:
            _, portfolio_id, symbol, side, quantity, price = step
            held = book.holding(portfolio_id, str(symbol))  # type: ignore[arg-type]
            if side == "sell all":
                if held is None or not held.quantity:
                    continue
                side, quantity = "sell", held.quantity
            try:
                book.apply_trade(portfolio_id, str(symbol), side, quantity, price)  # type: ignore[arg-type]
            except InsufficientQuantity:
                assert held is None or held.quantity < quantity  # type: ignore[operator]
    check_book(book, [1, 2, 3])


def test_the_book_ignores_a_committed_state_older_than_the_one_it_holds() -> None:
    """Writes reach the book in any order; the version says which state is newer."""
    book = PortfolioBook()
    book.on_price("AAPL", Decimal(10))
    assert book.load(1, [], Cash(), version=0)
    newer = [Holding("AAPL", Decimal(2), Decimal(20))]
    assert book.load(1, newer, Cash(Decimal(5), Decimal(25)), version=2)
    older = [Holding("AAPL", Decimal(1), Decimal(10))]
    assert not book.load(1, older, Cash(Decimal(0), Decimal(10)), version=1)
    assert book.holdings(1) == tuple(newer)
    assert book.cash(1) == Cash(Decimal(5), Decimal(25))
    assert book.version(1) == 2
    assert book.valuation(1).total_value == Decimal(25)
    assert book.holders("AAPL") == {1}
    assert book.load(1, older, Cash(Decimal(0), Decimal(10)), version=3)  # newer again
    assert book.version(1) == 3
