"""Cash: a portfolio's balance and net deposits, and how deposits, withdrawals and trades
move them.

Rules: pure, like ``valuation.py``, whose Decimal context and money scale it shares. No
asyncio, no clock, no SQL: a ``Cash`` and an operation in, the new ``Cash`` out. The
service applies these under the portfolio's row lock and stores what comes out.

The rules:
    - a deposit of ``a`` (> 0) adds ``a`` to the balance and to the net deposits;
    - a withdrawal of ``a`` (> 0) takes ``a`` from both; more than the balance is
      refused (``InsufficientCash``): the balance is never negative;
    - a buy of ``q`` at ``p`` pays its amount, ``q * p`` to 10 places half-even (exactly
      what ``apply_trade`` adds to the cost basis), from the balance. When the balance
      is short, the shortfall is first recorded as an **automatic deposit** (it counts
      in the net deposits and is listed as a deposit linked to that buy), so a buy never
      fails for want of cash and the balance never goes negative. This keeps every
      client that records buys without depositing first (the README's flow) working,
      and its portfolio reads as "the money this buy took was put in for it";
    - a sell of ``q`` at ``p`` adds its amount to the balance (the proceeds).

With these rules, at every moment and for every portfolio::

    total value = market value + cash = net deposits + unrealized P&L + realized P&L

because for each symbol the buys' amounts minus the sells' amounts equal its cost basis
minus its realized P&L (average cost, see ``valuation.py``), to the last 1e-10.

Worked example (the one in ``valuation.py``), nothing deposited first::

    buy 10 @ 100    automatic deposit 1000; cash 0; net deposits 1000
    buy 10 @ 110    automatic deposit 1100; cash 0; net deposits 2100
    sell 5 @ 120    cash 600
    price 130       market value 1950; total value 2550
                    = 2100 + unrealized 375 + realized 75
    withdraw 600    cash 0; net deposits 1500; total value 1950

Bounds: every balance and amount is below ``MAX_BALANCE`` (1e18, what storage's
NUMERIC(28, 10) holds) in size with at most 10 decimal places; an operation whose
result would not be is refused with ValueError and changes nothing.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Literal, NamedTuple

import msgspec

from tickcast.portfolio.valuation import (
    _ZERO,
    CONTEXT,
    TRADE_PLACES,
    Side,
    _check,
    trade_amount,
)

#: Balances and amounts are below this in size (storage keeps 18 integer digits).
MAX_BALANCE = Decimal("1e18")
_MAX_ADJUSTED = MAX_BALANCE.adjusted()


class InsufficientCash(ValueError):
    """A withdrawal of more than the balance.

    Attributes:
        balance: the cash balance before the withdrawal.
        requested: the amount the withdrawal asked for.
    """

    def __init__(self, balance: Decimal, requested: Decimal) -> None:
        super().__init__(f"cannot withdraw {requested}: only {balance} in cash")
        self.balance = balance
        self.requested = requested


def _bounded(value: Decimal, name: str) -> Decimal:
    if value and value.adjusted() >= _MAX_ADJUSTED:
        raise ValueError(f"{name} must stay below {MAX_BALANCE:f} in size, got {value}")
    return value


class Cash(msgspec.Struct, frozen=True, gc=False):
    """A portfolio's cash.

    Attributes:
        balance: cash held, >= 0.
        net_deposits: deposits (automatic ones included) minus withdrawals, ever;
            negative once more was withdrawn than deposited (profits taken out).
    """

    balance: Decimal = _ZERO
    net_deposits: Decimal = _ZERO

    def __post_init__(self) -> None:
        _check(self.balance, "balance", max_places=TRADE_PLACES)
        _check(self.net_deposits, "net_deposits", signed=True, max_places=TRADE_PLACES)
        _bounded(self.balance, "balance")
        _bounded(self.net_deposits, "net_deposits")


class Settlement(NamedTuple):
    """What a trade did to the cash.

    Attributes:
        cash: the cash after the trade.
        amount: ``quantity * price`` to 10 places: paid by a buy, received by a sell.
        deposit: the automatic deposit a buy needed first; 0 when the balance sufficed
            (and for every sell).
    """

    cash: Cash
    amount: Decimal
    deposit: Decimal


def deposit(cash: Cash, amount: Decimal) -> Cash:
    """``cash`` after a deposit of ``amount``.

    Raises:
        ValueError: ``amount`` is not > 0, has more than 10 places, or the balance
            would reach ``MAX_BALANCE``.
        TypeError: ``amount`` is not a Decimal.
    """
    _check(amount, "amount", positive=True, max_places=TRADE_PLACES)
    with localcontext(CONTEXT):
        return Cash(
            _bounded(cash.balance + amount, "the cash balance"),
            _bounded(cash.net_deposits + amount, "the net deposits"),
        )


def withdraw(cash: Cash, amount: Decimal) -> Cash:
    """``cash`` after a withdrawal of ``amount``.

    Raises:
        InsufficientCash: ``amount`` is more than the balance.
        ValueError, TypeError: as ``deposit``.
    """
    _check(amount, "amount", positive=True, max_places=TRADE_PLACES)
    if amount > cash.balance:
        raise InsufficientCash(cash.balance, amount)
    with localcontext(CONTEXT):
        return Cash(cash.balance - amount, _bounded(cash.net_deposits - amount, "the net deposits"))


def settle(
    cash: Cash,
    side: Side | Literal["buy", "sell"],
    quantity: Decimal,
    price: Decimal,
) -> Settlement:
    """The cash after a trade, by the rules of the module docstring (a buy short of cash
    makes an automatic deposit of the shortfall).

    Raises:
        ValueError, TypeError: as ``valuation.apply_trade`` for the quantity and the
            price, or a balance that would reach ``MAX_BALANCE``.
    """
    side = Side(side)
    amount = trade_amount(quantity, price)
    with localcontext(CONTEXT):
        if side is Side.SELL:
            balance = _bounded(cash.balance + amount, "the cash balance")
            return Settlement(Cash(balance, cash.net_deposits), amount, _ZERO)
        shortfall = amount - cash.balance if amount > cash.balance else _ZERO
        net = _bounded(cash.net_deposits + shortfall, "the net deposits")
        return Settlement(Cash(cash.balance + shortfall - amount, net), amount, shortfall)
