"""Completing vendor quotes: last price and session volume, which vendors send apart.

Rules: pure. Vendors' quote messages carry only the top of book; tickcast's Quote also
carries the last trade price and the cumulative volume (the shape Front 1 clients know).
``SessionState`` remembers, per symbol, the last trade price and the volume traded
since the start of the UTC day, and fills them into each quote.

Choices: before the first trade of a symbol, ``price`` is the mid price; the volume is
what this gateway has seen since its connection (or a daily bar's volume, when the
vendor sends one, which is the exchange's own count), reset at midnight UTC.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from tickcast.model.market import Bar, MarketEvent, Quote, Trade

_DAY_S = 86_400


class _Symbol:
    __slots__ = ("day", "price", "volume")

    def __init__(self, day: int) -> None:
        self.day = day
        self.price = 0.0
        self.volume = 0.0


class SessionState:
    """Per-symbol last price and day volume, folded over a provider's events."""

    def __init__(self) -> None:
        self._symbols: dict[str, _Symbol] = {}

    def _state(self, symbol: str, ts: float) -> _Symbol:
        day = int(ts // _DAY_S)
        state = self._symbols.get(symbol)
        if state is None or state.day != day:
            state = self._symbols[symbol] = _Symbol(day)
        return state

    def apply(self, events: Iterable[MarketEvent]) -> list[MarketEvent]:
        """The events, in order, with every Quote's ``price`` and ``volume`` filled in.

        Trades update the state; a daily bar (``interval_s`` 86400) sets the day's
        volume; quotes are rebuilt only when a field actually changes.
        """
        out: list[MarketEvent] = []
        for event in events:
            if type(event) is Trade:
                state = self._state(event.symbol, event.ts)
                state.price = event.price
                state.volume += event.size
            elif type(event) is Bar and event.interval_s == _DAY_S:
                state = self._state(event.symbol, event.ts)
                state.volume = max(state.volume, event.volume)
                if not state.price:
                    state.price = event.close
            elif type(event) is Quote:
                state = self._state(event.symbol, event.ts)
                price = state.price or (event.bid + event.ask) / 2
                if price != event.price or state.volume != event.volume:
                    event = msgspec.structs.replace(event, price=price, volume=state.volume)
            out.append(event)
        return out
