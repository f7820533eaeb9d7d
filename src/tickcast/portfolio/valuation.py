"""Portfolio valuation: average-cost holdings, live market values and P&L, in Decimal.

Rules: pure. No asyncio, no clock, no SQL: holdings, prices and trades in, values out.
Money and quantities are ``Decimal`` everywhere here; the only float that enters is a
market price, through ``price_to_decimal`` (the market-data hot path is float). The
service (``portfolio/service.py``) feeds quotes and trades in and publishes what comes out.

Accounting (average cost):
    - a trade's amount is ``quantity * price`` to 10 places (``trade_amount``);
    - a buy of ``q`` at ``p`` adds ``q`` to the quantity and its amount to the cost basis;
    - a sell of ``q`` at ``p`` removes the average cost of ``q`` (``cost_basis * q /
      quantity``) from the cost basis and realizes its amount minus that cost; selling
      the whole quantity removes the whole cost basis, so a closed position is exactly
      ``quantity 0, cost_basis 0`` and keeps its realized P&L;
    - a position's market value is ``quantity * price``; its unrealized P&L is market
      value minus cost basis; its daily change is ``quantity * (price - previous
      close)``, the price effect on today's holdings (0 for a symbol without a previous
      close). "Previous close" here is whatever reference the caller gives per symbol
      (the service gives the asset's previous close, or, when none is known, the first
      price it saw today: see ``assets.py``);
    - a portfolio's market value is the sum of its positions'; its **total value** is
      market value plus cash (``cash.py``: deposits, withdrawals, purchase costs and sale
      proceeds); its daily change is the sum of its positions'; daily change percent is
      ``100 * daily_change / (total_value - daily_change)``: the change against the value
      the same holdings and the same cash had at the previous closes, 0 when that value
      is 0. Cash has no daily change: a deposit today moves the total value, not the
      daily change.

Worked example::

    buy 10 @ 100           quantity 10, cost_basis 1000 (average 100)
    buy 10 @ 110           quantity 20, cost_basis 2100 (average 105)
    sell 5 @ 120           realized (120 - 105) * 5 = 75; cost_basis 2100 - 525 = 1575
    price 130, close 125   market value 15 * 130 = 1950; unrealized 1950 - 1575 = 375;
                           daily change 15 * (130 - 125) = 75;
                           percent (no cash) 100 * 75 / (1950 - 75) = 4.000000;
                           with the 600 of the sell in cash: total value 2550,
                           percent 100 * 75 / (2550 - 75) = 3.030303
    sell 15 @ 100          realized 75 + (100 - 105) * 15 = 0; quantity 0, cost_basis 0

Missing prices: an open position without a market price is valued at its symbol's
previous close, and without that at its cost basis (unrealized P&L 0). It is never left
out: leaving it out would make the total jump by the whole position when its first quote
arrives (at start-up, or for a halted symbol) and report that jump as a loss or gain. Such
a position has ``price None``, a daily change of 0, and is counted in
``Valuation.unpriced`` so a front can flag the value as partly estimated.

Rounding:
    - Stored money (``Holding.cost_basis`` and ``realized_pnl``) is quantized to 10
      decimal places (``MONEY_PLACES``, half-even) by ``apply_trade``, the only place it
      is computed. A holding therefore round-trips unchanged through a ``NUMERIC(p, 10)``
      column, and the in-memory book equals what a reload from storage gives. The cost
      removed by a sell is rounded once and moved, not recomputed, so cost basis,
      realized P&L and the cash paid and received always add up to the last 1e-10.
      A trade's quantity and price may have at most 10 places (``TRADE_PLACES``) too,
      so nothing a trade produces is rounded again by storage.
      Example: buy 1 @ 10 and 2 @ 10.01 (cost 30.02), sell 1 @ 11: removed cost
      30.02 / 3 = 10.0066666667, realized 0.9933333333, cost basis 20.0133333333; sell
      2 @ 11: realized 22 - 20.0133333333 = 1.9866666667, total 2.98 = 33 - 30.02 exactly.
    - Derived values that are never stored (market value, unrealized P&L, daily change)
      keep full precision: ``quantity * price`` is exact in the 100-digit ``CONTEXT``, so
      running totals updated tick by tick equal a full recomputation exactly. Rounding
      for display is the codecs' business. Exactness needs bounded inputs: every
      quantity, price and amount is below 1e20 in size with at most 20 decimal places
      (``MAX_AMOUNT``, ``MAX_PLACES``; ETH's 18-place wei fits, and so does every float
      price of 0.001 or more); anything else is refused with ValueError.
    - ``daily_change_percent`` is the one inexact division; it is quantized to 6 decimal
      places (``PERCENT_PLACES``), far below any display, so equal inputs give equal,
      stable numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import (
    ROUND_05UP,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from enum import StrEnum
from typing import Literal

import msgspec

#: Scale of stored money (cost basis, realized P&L): 10 decimal places.
MONEY_PLACES = Decimal("1e-10")
#: Scale of ``daily_change_percent``: 6 decimal places of a percent.
PERCENT_PLACES = Decimal("1e-6")
#: Inputs (quantities, prices, amounts) are below this in size...
MAX_AMOUNT = Decimal("1e20")
#: ...and have at most this many decimal places.
MAX_PLACES = 20
#: A trade's quantity and price have at most this many places: what storage keeps
#: (NUMERIC(28, 10)), so a trade is stored as it was applied, never rounded by the column.
TRADE_PLACES = 10
#: The arithmetic context of this module. Products of two bounded inputs have at most
#: 40 integer and 40 decimal digits, so 100 significant digits keep them and any
#: realistic sum of them exact.
CONTEXT = Context(
    prec=100, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)

# Bound methods of CONTEXT: arithmetic that ignores the caller's context, for the O(1)
# totals, where entering a localcontext (about 0.4 us) would cost more than the maths.
# Code that values positions or loops over holders enters one and uses operators
# (cheaper than these methods once inside).
_add, _sub, _mul, _quantize = CONTEXT.add, CONTEXT.subtract, CONTEXT.multiply, CONTEXT.quantize
_divide_05up = Context(
    prec=100, rounding=ROUND_05UP, traps=[InvalidOperation, DivisionByZero, Overflow]
).divide
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_PERCENT_ZERO = _ZERO.quantize(PERCENT_PLACES)
_MAX_ADJUSTED = MAX_AMOUNT.adjusted()


class Side(StrEnum):
    """The side of a trade. Members equal their strings: ``Side.BUY == "buy"``."""

    BUY = "buy"
    SELL = "sell"


class InsufficientQuantity(ValueError):
    """A sell of more than the quantity held (short selling is not supported).

    Attributes:
        symbol: the instrument.
        held: the quantity held before the sell.
        requested: the quantity the sell asked for.
    """

    def __init__(self, symbol: str, held: Decimal, requested: Decimal) -> None:
        super().__init__(f"cannot sell {requested} {symbol}: only {held} held")
        self.symbol = symbol
        self.held = held
        self.requested = requested


def _check(
    value: Decimal,
    name: str,
    *,
    positive: bool = False,
    signed: bool = False,
    max_places: int = MAX_PLACES,
) -> None:
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{name} must be finite, got {value}")
    exponent = value.as_tuple().exponent  # an int, as the value is finite
    places = -exponent if isinstance(exponent, int) else 0
    if value.adjusted() >= _MAX_ADJUSTED or places > max_places:
        raise ValueError(
            f"{name} must be below {MAX_AMOUNT} with at most {max_places} places, got {value}"
        )
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if not positive and not signed and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def _check_symbol(symbol: str) -> None:
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")


class Holding(msgspec.Struct, frozen=True, gc=False):
    """What one portfolio holds of one symbol, at average cost.

    Attributes:
        symbol: the instrument, e.g. ``AAPL`` or ``BTC/USDT``.
        quantity: units held, >= 0 (no short positions); 0 for a closed position.
        cost_basis: the total cost of ``quantity`` (not per unit), >= 0; 0 when
            ``quantity`` is 0.
        realized_pnl: the profit (negative: loss) realized by all sells so far.
    """

    symbol: str
    quantity: Decimal = _ZERO
    cost_basis: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO

    def __post_init__(self) -> None:
        _check_symbol(self.symbol)
        _check(self.quantity, "quantity")
        _check(self.cost_basis, "cost_basis")
        _check(self.realized_pnl, "realized_pnl", signed=True)
        if not self.quantity and self.cost_basis:
            raise ValueError(f"{self.symbol}: a zero quantity must have a zero cost basis")

    @property
    def average_cost(self) -> Decimal:
        """Cost per unit, quantized to ``MONEY_PLACES``; 0 for a closed position."""
        if not self.quantity:
            return _ZERO
        return _quantize(_divide_05up(self.cost_basis, self.quantity), MONEY_PLACES)


def trade_amount(quantity: Decimal, price: Decimal) -> Decimal:
    """A trade's amount: ``quantity * price`` to ``MONEY_PLACES``, half-even.

    What a buy adds to the cost basis and pays in cash, and what a sell receives.

    Raises:
        ValueError, TypeError: as ``apply_trade`` for the quantity and the price.
    """
    _check(quantity, "quantity", positive=True, max_places=TRADE_PLACES)
    _check(price, "price", max_places=TRADE_PLACES)
    return _quantize(_mul(quantity, price), MONEY_PLACES)


def apply_trade(
    holding: Holding,
    side: Side | Literal["buy", "sell"],
    quantity: Decimal,
    price: Decimal,
) -> Holding:
    """Return ``holding`` after one trade, by the average-cost rules in the module docstring.

    Args:
        holding: the position before the trade (``Holding(symbol)`` for a new one).
        side: ``"buy"`` or ``"sell"``.
        quantity: units traded, > 0, at most ``TRADE_PLACES`` (10) decimal places.
        price: price per unit, >= 0, at most ``TRADE_PLACES`` decimal places.

    Raises:
        InsufficientQuantity: a sell of more than ``holding.quantity``.
        ValueError: an unknown side, or a quantity or price out of range.
        TypeError: a quantity or price that is not a Decimal (a float would be inexact).

    Example: ``Holding("AAPL", Decimal(20), Decimal(2100))`` sold 5 at 120 gives
    ``Holding("AAPL", Decimal(15), Decimal(1575), realized_pnl=Decimal(75))``.
    """
    side = Side(side)
    cash = trade_amount(quantity, price)
    with localcontext(CONTEXT):
        if side is Side.BUY:
            return Holding(
                holding.symbol,
                holding.quantity + quantity,
                holding.cost_basis + cash,
                holding.realized_pnl,
            )
        if quantity > holding.quantity:
            raise InsufficientQuantity(holding.symbol, holding.quantity, quantity)
        if quantity == holding.quantity:
            removed = holding.cost_basis
        else:
            # one correct half-even rounding of the exact share (see _percent)
            share = _divide_05up(holding.cost_basis * quantity, holding.quantity)
            removed = _quantize(share, MONEY_PLACES)
        return Holding(
            holding.symbol,
            holding.quantity - quantity,
            holding.cost_basis - removed,
            holding.realized_pnl + cash - removed,
        )


def price_to_decimal(x: float) -> Decimal:
    """A hot-path float price as the Decimal it prints as: 150.1 -> Decimal("150.1").

    ``Decimal(150.1)`` would be the float's binary expansion (150.0999999999999943...);
    ``repr`` gives the shortest string that reads back as the same float, which is the
    price the provider sent.

    Raises:
        ValueError: NaN or infinity.
    """
    if not math.isfinite(x):
        raise ValueError(f"price must be finite, got {x!r}")
    return Decimal(repr(float(x)))


class PositionValue(msgspec.Struct, frozen=True, gc=False):
    """One holding valued at a price.

    Attributes:
        symbol, quantity, cost_basis, realized_pnl: as in the holding.
        price: the market price used; None when the symbol has no price (then
            ``market_value`` is quantity times the previous close, or the cost basis).
        market_value: what the quantity is worth now.
        unrealized_pnl: ``market_value - cost_basis``.
        daily_change: ``quantity * (price - previous close)``; 0 without either.
    """

    symbol: str
    quantity: Decimal
    price: Decimal | None
    market_value: Decimal
    cost_basis: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    daily_change: Decimal


class Valuation(msgspec.Struct, frozen=True, gc=False):
    """A portfolio valued at the current prices.

    Attributes:
        portfolio_id: the portfolio.
        total_value: ``market_value + cash``.
        market_value: the sum of the positions' market values.
        cash: the cash balance (``cash.py``).
        net_deposits: deposits minus withdrawals, ever; ``total_value - net_deposits``
            is ``unrealized_pnl + realized_pnl`` (see ``cash.py``).
        cost_basis: the sum of the positions' cost bases (Front 3's ``totalInvested``).
        unrealized_pnl: ``market_value - cost_basis``.
        realized_pnl: the sum of the positions' realized P&L, closed positions included.
        daily_change: the sum of the positions' daily changes.
        daily_change_percent: ``100 * daily_change / (total_value - daily_change)``,
            quantized to ``PERCENT_PLACES``; 0 when the previous value is 0.
        unpriced: open positions valued without a market price (see the module docstring).
        positions: one per holding, in the holdings' order, closed positions included;
            empty when the caller asked for totals only.
    """

    portfolio_id: int
    total_value: Decimal
    market_value: Decimal
    cash: Decimal
    net_deposits: Decimal
    cost_basis: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    daily_change: Decimal
    daily_change_percent: Decimal
    unpriced: int = 0
    positions: tuple[PositionValue, ...] = ()


def _mark(
    holding: Holding, price: Decimal | None, close: Decimal | None
) -> tuple[Decimal, Decimal]:
    """(market value, value at the previous close) of a holding; needs ``CONTEXT`` current.

    The second is what the daily change is measured against: ``quantity * close`` when
    both prices are known, else the market value itself (no daily change).
    """
    quantity = holding.quantity
    if price is not None:
        market_value = quantity * price
        return market_value, market_value if close is None else quantity * close
    if close is not None:
        market_value = quantity * close
        return market_value, market_value
    return holding.cost_basis, holding.cost_basis


def _position(holding: Holding, price: Decimal | None, close: Decimal | None) -> PositionValue:
    """One position's value; needs ``CONTEXT`` current."""
    market_value, previous_value = _mark(holding, price, close)
    return PositionValue(
        holding.symbol,
        holding.quantity,
        price,
        market_value,
        holding.cost_basis,
        market_value - holding.cost_basis,
        holding.realized_pnl,
        market_value - previous_value,
    )


def _percent(change: Decimal, base: Decimal) -> Decimal:
    """``100 * change / base`` to ``PERCENT_PLACES``, half-even; 0 when ``base`` is 0."""
    if not base:
        return _PERCENT_ZERO
    # Round-05up to 100 digits, then half-even to 6 places, is one correct half-even
    # rounding of the exact quotient, as long as the result has at most 98 digits (it
    # has fewer than 90 with bounded inputs, so this never raises).
    percent = _quantize(_divide_05up(_mul(change, _HUNDRED), base), PERCENT_PLACES)
    return percent if percent else _PERCENT_ZERO  # never "-0.000000"


def _valuation(
    portfolio_id: int,
    market: Decimal,
    previous: Decimal,
    cash: Decimal,
    net_deposits: Decimal,
    cost: Decimal,
    realized: Decimal,
    unpriced: int,
    positions: tuple[PositionValue, ...],
) -> Valuation:
    """The totals of a portfolio: ``market`` and ``previous`` are its positions' market
    value and value at the previous closes (without cash)."""
    daily = _sub(market, previous)
    return Valuation(
        portfolio_id,
        _add(market, cash),
        market,
        cash,
        net_deposits,
        cost,
        _sub(market, cost),
        realized,
        daily,
        _percent(daily, _add(previous, cash)),
        unpriced,
        positions,
    )


def position_value(
    holding: Holding, price: Decimal | None, previous_close: Decimal | None
) -> PositionValue:
    """Value one holding at ``price`` (None: no market price) against ``previous_close``."""
    with localcontext(CONTEXT):
        return _position(holding, price, previous_close)


def value(
    portfolio_id: int,
    holdings: Iterable[Holding],
    prices: Mapping[str, Decimal],
    previous_closes: Mapping[str, Decimal],
    cash: Decimal = _ZERO,
    net_deposits: Decimal = _ZERO,
) -> Valuation:
    """Value a portfolio from scratch: the reference that ``PortfolioBook`` keeps up to date.

    Args:
        portfolio_id: the portfolio's id, copied into the result.
        holdings: one per symbol, closed positions (quantity 0) allowed.
        prices: the market price per symbol; a symbol missing here is valued at its
            previous close, or else at its cost basis.
        previous_closes: the daily-change reference per symbol (the previous session's
            close, see the module docstring).
        cash: the cash balance, >= 0; net_deposits: deposits minus withdrawals (both
            as ``cash.Cash`` keeps them).

    Raises:
        ValueError: two holdings of the same symbol, or a negative cash balance.
    """
    _check(cash, "cash")
    _check(net_deposits, "net_deposits", signed=True)
    positions: list[PositionValue] = []
    seen: set[str] = set()
    total = previous = cost = realized = _ZERO
    unpriced = 0
    with localcontext(CONTEXT):
        for holding in holdings:
            symbol = holding.symbol
            if symbol in seen:
                raise ValueError(f"portfolio {portfolio_id}: two holdings of {symbol}")
            seen.add(symbol)
            price = prices.get(symbol)
            position = _position(holding, price, previous_closes.get(symbol))
            positions.append(position)
            total += position.market_value
            previous += position.market_value - position.daily_change
            cost += holding.cost_basis
            realized += holding.realized_pnl
            if price is None and holding.quantity:
                unpriced += 1
    return _valuation(
        portfolio_id,
        total,
        previous,
        cash,
        net_deposits,
        cost,
        realized,
        unpriced,
        tuple(positions),
    )
