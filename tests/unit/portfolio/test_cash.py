"""Cash rules against hand-computed cases: deposits, withdrawals, and trades that pay
from the balance or make an automatic deposit first. Pure: no event loop, no clock."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tickcast.portfolio.cash import (
    MAX_BALANCE,
    Cash,
    InsufficientCash,
    Settlement,
    deposit,
    settle,
    withdraw,
)
from tickcast.portfolio.valuation import Holding, apply_trade, trade_amount, value

D = Decimal


def test_deposits_and_withdrawals_move_the_balance_and_the_net_deposits() -> None:
    cash = deposit(Cash(), D("1000.5"))
    assert cash == Cash(D("1000.5"), D("1000.5"))
    cash = withdraw(cash, D("0.5"))
    assert cash == Cash(D(1000), D(1000))
    assert withdraw(cash, D(1000)) == Cash(D(0), D(0))  # all of it


def test_withdrawing_profits_makes_net_deposits_negative() -> None:
    # 100 put in, a trade won 50: 150 in cash, all taken out
    assert withdraw(Cash(D(150), D(100)), D(150)) == Cash(D(0), D(-50))


def test_a_withdrawal_beyond_the_balance_is_refused() -> None:
    with pytest.raises(InsufficientCash, match=r"cannot withdraw 600\.01: only 600 in cash") as e:
        withdraw(Cash(D(600), D(2100)), D("600.01"))
    assert (e.value.balance, e.value.requested) == (D(600), D("600.01"))
    assert isinstance(e.value, ValueError)
    with pytest.raises(InsufficientCash):
        withdraw(Cash(), D("0.0000000001"))


@pytest.mark.parametrize(
    ("amount", "error", "message"),
    [
        (D(0), ValueError, "amount must be > 0"),
        (D(-5), ValueError, "amount must be > 0"),
        (D("NaN"), ValueError, "finite"),
        (D("0.00000000001"), ValueError, "at most 10 places"),
        (1.5, TypeError, "Decimal"),
    ],
)
def test_amounts_are_validated(amount: object, error: type[Exception], message: str) -> None:
    for operation in (deposit, withdraw):
        with pytest.raises(error, match=message):
            operation(Cash(D(10), D(10)), amount)  # type: ignore[arg-type]


def test_a_balance_beyond_what_storage_holds_is_refused() -> None:
    almost = MAX_BALANCE - D("0.0000000001")
    assert deposit(Cash(), almost).balance == almost
    with pytest.raises(ValueError, match="must stay below"):
        deposit(Cash(almost, almost), D("0.0000000001"))
    with pytest.raises(ValueError, match="must stay below"):
        settle(Cash(almost, D(0)), "sell", D(1), D(1))
    with pytest.raises(ValueError, match="must stay below"):  # profits taken out, ever
        withdraw(Cash(D(1), -almost), D(1))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((D(-1), D(0)), "balance must be >= 0"),
        ((D(0), D("NaN")), "net_deposits must be finite"),
        ((D("1.00000000001"), D(0)), "at most 10 places"),
    ],
)
def test_cash_is_validated(fields: tuple[Decimal, Decimal], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Cash(*fields)


def test_a_buy_pays_from_the_balance_when_it_suffices() -> None:
    assert settle(Cash(D(600), D(2100)), "buy", D(2), D(100)) == Settlement(
        Cash(D(400), D(2100)), D(200), D(0)
    )
    # exactly the balance: nothing deposited
    assert settle(Cash(D(200), D(200)), "buy", D(2), D(100)).deposit == D(0)


def test_a_buy_short_of_cash_deposits_the_shortfall_first() -> None:
    assert settle(Cash(D(400), D(2100)), "buy", D(1), D(500)) == Settlement(
        Cash(D(0), D(2200)), D(500), D(100)
    )
    assert settle(Cash(), "buy", D(10), D(100)) == Settlement(Cash(D(0), D(1000)), D(1000), D(1000))


def test_a_sell_adds_its_proceeds() -> None:
    assert settle(Cash(D(0), D(2100)), "sell", D(5), D(120)) == Settlement(
        Cash(D(600), D(2100)), D(600), D(0)
    )


def test_the_trade_amount_is_the_one_the_cost_basis_gets() -> None:
    # 3 x 0.3333333333 = 0.9999999999; 0.12345678 x 65000.1234567891 -> 10 places
    for quantity, price in ((D(3), D("0.3333333333")), (D("0.12345678"), D("65000.1234567891"))):
        amount = settle(Cash(), "buy", quantity, price).amount
        assert amount == trade_amount(quantity, price)
        assert amount == apply_trade(Holding("X"), "buy", quantity, price).cost_basis
    assert trade_amount(D("0.12345678"), D("65000.1234567891")) == D("8024.7059415777")


def test_a_trade_at_price_zero_moves_no_cash() -> None:
    assert settle(Cash(), "buy", D(5), D(0)) == Settlement(Cash(), D(0), D(0))


def test_trades_are_validated_like_apply_trade() -> None:
    with pytest.raises(ValueError, match="quantity must be > 0"):
        settle(Cash(), "buy", D(0), D(1))
    with pytest.raises(ValueError, match="not a valid Side"):
        settle(Cash(), "short", D(1), D(1))  # type: ignore[arg-type]


def test_worked_example_of_the_module_docstring() -> None:
    cash, holding = Cash(), Holding("AAPL")
    deposits = []
    for side, quantity, price in (("buy", 10, 100), ("buy", 10, 110), ("sell", 5, 120)):
        settled = settle(cash, side, D(quantity), D(price))  # type: ignore[arg-type]
        holding = apply_trade(holding, side, D(quantity), D(price))  # type: ignore[arg-type]
        cash = settled.cash
        deposits.append(settled.deposit)
    assert deposits == [D(1000), D(1100), D(0)]
    assert cash == Cash(D(600), D(2100))
    valuation = value(1, [holding], {"AAPL": D(130)}, {}, cash.balance, cash.net_deposits)
    assert valuation.total_value == D(2550)  # 1950 + 600
    assert valuation.total_value == D(2100) + valuation.unrealized_pnl + valuation.realized_pnl
    assert withdraw(cash, D(600)) == Cash(D(0), D(1500))
