"""PortfolioBook: the holdings and live valuations of many portfolios, kept incrementally.

Rules: pure, like ``valuation.py``, whose accounting rules and number formats it shares
(the private helpers imported below are that module's, used here on purpose: the book is
its incremental form, split out to keep each module one responsibility); a portfolio's
cash follows ``cash.py``. The gateway's hot path is ``on_price``: O(holders of the
symbol), never a scan of all portfolios.

"Previous close" in this module is the daily-change reference the caller sets per
symbol (``set_previous_close``): the service gives it the asset's real previous close, or
the first price it saw today when none is known (``assets.py``). The book does not tell
the two apart; never report it as a close.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, localcontext
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol

from tickcast.portfolio import cash as cash_rules
from tickcast.portfolio.cash import Cash
from tickcast.portfolio.valuation import (
    _ZERO,
    CONTEXT,
    Holding,
    PositionValue,
    Side,
    Valuation,
    _add,
    _check,
    _check_symbol,
    _mark,
    _percent,
    _position,
    _sub,
    apply_trade,
    price_to_decimal,
)

_ONE: Final = Decimal(1)
#: Above any Decimal price's exponent: no move seen yet.
_UNMOVED: Final = 1 << 30
#: Float prices kept converted (``PortfolioBook._decimals``); more and it starts over.
_MAX_DECIMALS: Final = 65_536


class Priced(Protocol):
    """What ``on_prices`` reads of a quote or a trade."""

    @property
    def symbol(self) -> str: ...

    @property
    def price(self) -> float: ...


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


class _Portfolio:
    """One portfolio's holdings, cash and running totals (the sums ``value`` would compute).

    ``market_value`` is the positions' market value (cash apart); ``previous_value`` the
    positions valued at the previous closes (see ``_mark``): a tick of a symbol with a
    previous close moves only ``market_value``.
    """

    __slots__ = (
        "cash",
        "cost_basis",
        "holdings",
        "market_value",
        "previous_value",
        "realized_pnl",
        "unpriced",
        "version",
    )

    def __init__(self, cash: Cash, version: int) -> None:
        self.holdings: dict[str, Holding] = {}
        self.cash = cash
        self.version = version
        self.market_value = _ZERO
        self.previous_value = _ZERO
        self.cost_basis = _ZERO
        self.realized_pnl = _ZERO
        self.unpriced = 0


class PortfolioBook:
    """Holdings and live valuations of many portfolios, revalued incrementally per price.

    An index maps each symbol to the portfolios with an open position in it (quantity >
    0), with that quantity; each portfolio keeps its cash and running totals: its market
    value, its value at the previous closes, its cost basis and realized P&L. A price
    change of one symbol therefore costs one multiply-add per holder (``quantity * (new -
    old)`` added to the market value), never a scan of all portfolios nor a re-sum of a
    portfolio's positions,
    and ``valuation(pid, positions=False)`` costs O(1). Exact Decimal arithmetic (see
    ``CONTEXT``) keeps the totals equal to ``value()`` over the same holdings and prices.

    Prices and previous closes are kept per symbol, held or not, so a portfolio that
    buys a symbol later is valued at once.

    Cost (``bench/portfolio.py``: 10,000 portfolios of 20 positions over 500 symbols, so
    about 400 holders per symbol): ``on_price`` about 0.45 us per holder, a totals-only
    valuation about 1 us, a full one about 14 us. Valuing every holder on every tick at
    2,000 ticks/s takes more than one core; a service should gather ``on_price``
    results in a dirty set and value each dirty portfolio once per batch window (about
    45 % of a core at a 100 ms window), which is what conflation keeps anyway.

    Example::

        book = PortfolioBook()
        book.load(7, [Holding("AAPL", Decimal(15), Decimal(1575))])
        book.set_previous_close("AAPL", Decimal(125))
        book.on_price("AAPL", Decimal(130))  # {7}
        book.valuation(7).daily_change_percent  # Decimal("4.000000")
    """

    __slots__ = ("_closes", "_decimals", "_holders", "_portfolios", "_prices")

    def __init__(self) -> None:
        self._portfolios: dict[int, _Portfolio] = {}
        self._holders: dict[str, dict[int, tuple[Decimal, _Portfolio]]] = {}
        self._prices: dict[str, Decimal] = {}
        self._closes: dict[str, Decimal] = {}
        # float price -> (its Decimal, that Decimal's exponent), checked: a feed's prices
        # repeat (they sit on a tick grid), so ``on_prices`` converts each one once
        self._decimals: dict[float, tuple[Decimal, int]] = {}

    def __len__(self) -> int:
        return len(self._portfolios)

    def __contains__(self, portfolio_id: object) -> bool:
        return portfolio_id in self._portfolios

    @property
    def prices(self) -> Mapping[str, Decimal]:
        """The last market price per symbol (a read-only live view)."""
        return MappingProxyType(self._prices)

    @property
    def previous_closes(self) -> Mapping[str, Decimal]:
        """The previous close per symbol (a read-only live view)."""
        return MappingProxyType(self._closes)

    # -- holdings

    def load(
        self,
        portfolio_id: int,
        holdings: Iterable[Holding],
        cash: Cash | None = None,
        *,
        version: int = 0,
    ) -> bool:
        """Set a portfolio's holdings and cash (a committed state, from storage),
        replacing what it had, unless it is older than what the book holds.

        Args:
            cash: the cash balance and net deposits; None = no cash (``Cash()``).
            version: the state's version (storage's ``portfolios.version``). Writes of one
                portfolio commit in version order but may reach the book in another: a
                state whose version is below the loaded one's is ignored (False).

        Raises:
            ValueError: two holdings of the same symbol (nothing is changed).
        """
        holdings = list(holdings)
        symbols = {h.symbol for h in holdings}
        if len(symbols) != len(holdings):
            raise ValueError(f"portfolio {portfolio_id}: two holdings of the same symbol")
        loaded = self._portfolios.get(portfolio_id)
        if loaded is not None and version < loaded.version:
            return False
        self.remove(portfolio_id)
        portfolio = _Portfolio(cash if cash is not None else Cash(), version)
        self._portfolios[portfolio_id] = portfolio
        with localcontext(CONTEXT):
            for holding in holdings:
                self._add(portfolio_id, portfolio, holding)
        return True

    def version(self, portfolio_id: int) -> int:
        """The version of the loaded state. Raises KeyError if unknown."""
        return self._portfolios[portfolio_id].version

    def remove(self, portfolio_id: int) -> bool:
        """Forget a portfolio; returns False when it was not loaded."""
        portfolio = self._portfolios.pop(portfolio_id, None)
        if portfolio is None:
            return False
        for symbol in portfolio.holdings:
            self._unindex(symbol, portfolio_id)
        return True

    def apply_trade(
        self,
        portfolio_id: int,
        symbol: str,
        side: Side | Literal["buy", "sell"],
        quantity: Decimal,
        price: Decimal,
    ) -> Holding:
        """Apply one trade to a loaded portfolio and return the new holding.

        The trade price is the execution price; it does not move the market price. A
        sell to zero keeps the holding (quantity 0, its realized P&L) and takes the
        portfolio out of the symbol's index. The cash is settled by ``cash.settle`` (a
        buy short of cash makes an automatic deposit).

        Raises:
            KeyError: the portfolio is not loaded.
            InsufficientQuantity, ValueError, TypeError: as ``apply_trade`` (the
                module function) and ``cash.settle``; the book is unchanged.
        """
        _check_symbol(symbol)
        portfolio = self._portfolios[portfolio_id]
        old = portfolio.holdings.get(symbol)
        new = apply_trade(Holding(symbol) if old is None else old, side, quantity, price)
        portfolio.cash = cash_rules.settle(portfolio.cash, side, quantity, price).cash
        with localcontext(CONTEXT):
            if old is not None:
                self._subtract(portfolio, old)
            self._add(portfolio_id, portfolio, new)
        return new

    # -- cash

    def cash(self, portfolio_id: int) -> Cash:
        """A portfolio's cash. Raises KeyError if unknown."""
        return self._portfolios[portfolio_id].cash

    def set_cash(self, portfolio_id: int, cash: Cash) -> None:
        """Replace a portfolio's cash (as committed to storage). Raises KeyError."""
        self._portfolios[portfolio_id].cash = cash

    def deposit(self, portfolio_id: int, amount: Decimal) -> Cash:
        """Deposit ``amount`` (``cash.deposit``); returns the new cash.

        Raises:
            KeyError: the portfolio is not loaded.
            ValueError, TypeError: as ``cash.deposit``; the book is unchanged.
        """
        portfolio = self._portfolios[portfolio_id]
        portfolio.cash = cash_rules.deposit(portfolio.cash, amount)
        return portfolio.cash

    def withdraw(self, portfolio_id: int, amount: Decimal) -> Cash:
        """Withdraw ``amount`` (``cash.withdraw``); returns the new cash.

        Raises:
            KeyError: the portfolio is not loaded.
            InsufficientCash, ValueError, TypeError: as ``cash.withdraw``; the book is
                unchanged.
        """
        portfolio = self._portfolios[portfolio_id]
        portfolio.cash = cash_rules.withdraw(portfolio.cash, amount)
        return portfolio.cash

    # -- holdings, read

    def holdings(self, portfolio_id: int) -> tuple[Holding, ...]:
        """A portfolio's holdings, closed positions included. Raises KeyError if unknown."""
        return tuple(self._portfolios[portfolio_id].holdings.values())

    def holding(self, portfolio_id: int, symbol: str) -> Holding | None:
        """One holding, or None when the portfolio never held the symbol."""
        return self._portfolios[portfolio_id].holdings.get(symbol)

    def holders(self, symbol: str) -> frozenset[int]:
        """The portfolios with an open position (quantity > 0) in ``symbol``."""
        return frozenset(self._holders.get(symbol, ()))

    # -- prices

    def on_price(self, symbol: str, price: Decimal) -> set[int]:
        """Record a symbol's new market price; return the portfolios whose value changed.

        O(holders of the symbol). An unchanged price returns an empty set.

        Raises:
            ValueError, TypeError: a price that is not a finite Decimal >= 0.
        """
        _check(price, "price")
        prices = self._prices
        old = prices.get(symbol)
        if old is not None and old == price:
            return set()
        prices[symbol] = price
        holders = self._holders.get(symbol)
        if not holders:
            return set()
        close = self._closes.get(symbol)
        with localcontext(CONTEXT):
            if old is None:  # first price: replace the previous-close or cost estimate
                self._remark(symbol, holders, None, close, price, close)
            elif close is not None:  # the hot path: one multiply-add per holder
                delta = price - old
                for quantity, portfolio in holders.values():
                    portfolio.market_value += quantity * delta
            else:  # no previous close: no daily change, the base moves with the value
                delta = price - old
                for quantity, portfolio in holders.values():
                    change = quantity * delta
                    portfolio.market_value += change
                    portfolio.previous_value += change
        return set(holders)

    def on_prices(
        self, events: Iterable[Priced], changed: dict[str, set[int]] | None = None
    ) -> dict[str, set[int]]:
        """A batch of float prices (quotes' and trades' ``price``, in order), leaving the
        book exactly as ``on_price(e.symbol, price_to_decimal(e.price))`` per event would;
        returns, per symbol, the union of what those calls returned (when not empty), in
        ``changed`` when given (filled also when a bad price raises).

        One pass over the batch and one revaluation per symbol that moved, not one per
        event: a holder's totals take ``quantity * (last - first)`` once, exact, with
        the delta carried at the finest exponent of the prices it went through, so that
        the totals are equal to the per-event ones digit for digit (the exponent of an
        exact Decimal sum is the least of its terms'), not just in value. A symbol's
        first price ever goes through ``on_price`` (it remarks its holders). A price that
        ``on_price`` would refuse raises here too, after the prices before it.
        """
        prices = self._prices
        memo = self._decimals
        # symbol -> [last price seen (float), its Decimal (the current one), the least
        # exponent of the prices it moved to, the Decimal before the batch, moved]
        pending: dict[str, list[Any]] = {}
        if changed is None:
            changed = {}
        try:
            for event in events:
                symbol = event.symbol
                price = event.price
                state = pending.get(symbol)
                if state is not None:
                    if state[0] == price:  # a float equal to the last: no change
                        continue
                    known = memo.get(price) if price else None
                    if known is None:
                        known = self._decimal(price)
                    state[0] = price
                    state[1] = known[0]  # distinct floats print apart: a move
                    if known[1] < state[2]:
                        state[2] = known[1]
                    state[4] = True
                    continue
                known = memo.get(price) if price else None
                if known is None:
                    known = self._decimal(price)
                decimal = known[0]
                old = prices.get(symbol)
                if old is None:  # the first price: on_price remarks the holders
                    first = self.on_price(symbol, decimal)
                    if first:
                        changed[symbol] = first
                    pending[symbol] = [price, decimal, _UNMOVED, decimal, False]
                elif old == decimal:
                    pending[symbol] = [price, old, _UNMOVED, old, False]
                else:
                    pending[symbol] = [price, decimal, known[1], old, True]
        finally:
            self._moved(pending, changed)
        return changed

    def _moved(self, pending: dict[str, list[Any]], changed: dict[str, set[int]]) -> None:
        """Apply what ``on_prices`` gathered: per symbol that moved, its last price and
        one multiply-add per holder."""
        prices = self._prices
        closes = self._closes
        holders_of = self._holders
        with localcontext(CONTEXT):
            for symbol, (_, price, least, before, moved) in pending.items():
                if not moved:
                    continue
                prices[symbol] = price
                holders = holders_of.get(symbol)
                if not holders:
                    continue
                delta = price - before
                least = min(least, _exponent(before))
                if least < _exponent(delta):  # as the per-event sum would carry it
                    delta = delta.quantize(_ONE.scaleb(least))
                if closes.get(symbol) is not None:  # the hot path of on_price
                    for quantity, portfolio in holders.values():
                        portfolio.market_value += quantity * delta
                else:
                    for quantity, portfolio in holders.values():
                        change = quantity * delta
                        portfolio.market_value += change
                        portfolio.previous_value += change
                ids = changed.get(symbol)
                if ids is None:
                    changed[symbol] = set(holders)
                else:
                    ids.update(holders)

    def _decimal(self, price: float) -> tuple[Decimal, int]:
        """``price_to_decimal(price)``, checked as ``on_price`` checks it, and kept."""
        decimal = price_to_decimal(price)
        _check(decimal, "price")
        known = (decimal, _exponent(decimal))
        if price:  # 0.0 and -0.0 are equal keys but print apart: never kept
            memo = self._decimals
            if len(memo) >= _MAX_DECIMALS:
                memo.clear()
            memo[price] = known
        return known

    def set_previous_close(self, symbol: str, price: Decimal) -> set[int]:
        """Set a symbol's previous close (at the start of a session); return the
        portfolios whose daily change (or estimated value) changed.

        Raises:
            ValueError, TypeError: a price that is not a finite Decimal >= 0.
        """
        _check(price, "price")
        old = self._closes.get(symbol)
        if old is not None and old == price:
            return set()
        self._closes[symbol] = price
        holders = self._holders.get(symbol)
        if not holders:
            return set()
        market = self._prices.get(symbol)
        with localcontext(CONTEXT):
            self._remark(symbol, holders, market, old, market, price)
        return set(holders)

    def price(self, symbol: str) -> Decimal | None:
        """The last market price of ``symbol``, None before the first."""
        return self._prices.get(symbol)

    def previous_close(self, symbol: str) -> Decimal | None:
        """The previous close of ``symbol``, None when unknown."""
        return self._closes.get(symbol)

    # -- values

    def valuation(self, portfolio_id: int, *, positions: bool = True) -> Valuation:
        """A portfolio's current valuation.

        Args:
            positions: False skips the per-position breakdown (``positions == ()``): the
                totals cost O(1), which is all Front 2's ``portfolio_update`` needs; True
                values each holding, O(holdings).

        Raises:
            KeyError: the portfolio is not loaded.
        """
        portfolio = self._portfolios[portfolio_id]
        breakdown: tuple[PositionValue, ...] = ()
        if positions:
            prices, closes = self._prices, self._closes
            with localcontext(CONTEXT):
                breakdown = tuple(
                    [
                        _position(h, prices.get(h.symbol), closes.get(h.symbol))
                        for h in portfolio.holdings.values()
                    ]
                )
        # _valuation() inlined: this is the per-tick path of every holder.
        market, previous, cost, cash = (
            portfolio.market_value,
            portfolio.previous_value,
            portfolio.cost_basis,
            portfolio.cash,
        )
        daily = _sub(market, previous)
        return Valuation(
            portfolio_id,
            _add(market, cash.balance),
            market,
            cash.balance,
            cash.net_deposits,
            cost,
            _sub(market, cost),
            portfolio.realized_pnl,
            daily,
            _percent(daily, _add(previous, cash.balance)),
            portfolio.unpriced,
            breakdown,
        )

    def position(self, portfolio_id: int, symbol: str) -> PositionValue:
        """One position's value, O(1): what changed for a holder when ``symbol`` ticked.

        Raises:
            KeyError: the portfolio is not loaded or never held ``symbol``.
        """
        holding = self._portfolios[portfolio_id].holdings[symbol]
        with localcontext(CONTEXT):
            return _position(holding, self._prices.get(symbol), self._closes.get(symbol))

    # -- internals (callers hold CONTEXT)

    def _add(self, portfolio_id: int, portfolio: _Portfolio, holding: Holding) -> None:
        symbol = holding.symbol
        price = self._prices.get(symbol)
        market_value, previous_value = _mark(holding, price, self._closes.get(symbol))
        portfolio.holdings[symbol] = holding
        portfolio.market_value += market_value
        portfolio.previous_value += previous_value
        portfolio.cost_basis += holding.cost_basis
        portfolio.realized_pnl += holding.realized_pnl
        if holding.quantity:
            self._holders.setdefault(symbol, {})[portfolio_id] = (holding.quantity, portfolio)
            if price is None:
                portfolio.unpriced += 1
        else:
            self._unindex(symbol, portfolio_id)

    def _subtract(self, portfolio: _Portfolio, holding: Holding) -> None:
        """Take a holding's contribution out of the totals (the index is left to ``_add``)."""
        symbol = holding.symbol
        price = self._prices.get(symbol)
        market_value, previous_value = _mark(holding, price, self._closes.get(symbol))
        portfolio.market_value -= market_value
        portfolio.previous_value -= previous_value
        portfolio.cost_basis -= holding.cost_basis
        portfolio.realized_pnl -= holding.realized_pnl
        if holding.quantity and price is None:
            portfolio.unpriced -= 1

    def _remark(
        self,
        symbol: str,
        holders: dict[int, tuple[Decimal, _Portfolio]],
        old_price: Decimal | None,
        old_close: Decimal | None,
        new_price: Decimal | None,
        new_close: Decimal | None,
    ) -> None:
        """Revalue every holder of ``symbol`` after a change the hot path does not cover."""
        priced = (new_price is not None) - (old_price is not None)
        for _, portfolio in holders.values():
            holding = portfolio.holdings[symbol]
            value_before, previous_before = _mark(holding, old_price, old_close)
            value_after, previous_after = _mark(holding, new_price, new_close)
            portfolio.market_value += value_after - value_before
            portfolio.previous_value += previous_after - previous_before
            portfolio.unpriced -= priced

    def _unindex(self, symbol: str, portfolio_id: int) -> None:
        holders = self._holders.get(symbol)
        if holders is not None:
            holders.pop(portfolio_id, None)
            if not holders:
                del self._holders[symbol]
