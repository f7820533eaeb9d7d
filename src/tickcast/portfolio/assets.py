"""AssetBoard: each asset's price, day statistics, previous close and daily-change
reference, for Front 2's asset_update, the HTTP API and the portfolios' daily change.

Rules: pure. Fold market events in with ``apply(events)``; ``take_updates(now)`` returns
an AssetUpdate for every symbol that changed since the previous call (the service calls
it every ``update_interval_s``, so a busy symbol costs one update per interval, not one
per tick). Days are UTC days of the events' timestamps and of the ``now`` a caller
passes: the board never reads a clock.

- ``price`` is the last trade price (a quote's ``price``, which the providers fill the
  same way); ``volume`` the quote's session volume.
- ``high`` and ``low`` are today's range of those prices.
- ``previous_close`` is a real close, never a price of today: the one given by
  ``set_previous_close`` (by the service, from ``closes.Closes``) until the board sees a new
  UTC day; from then on the last price the board saw before that day (the previous
  day's, or the last trading day's). None when neither is known.
- The **reference** of the daily change (``change``, ``change_percent``, and a
  portfolio's ``daily_change``) is ``previous_close`` when it is known (and > 0), else
  the first price the board saw today (``ReferenceKind.FIRST_PRICE_TODAY``): a symbol
  without any close still shows its change "since this gateway's first price today",
  and readers are told which reference it is. That first price is never reported as a
  previous close.
- A new UTC day starts at the first event of that day, or at ``roll(now)`` (the service
  calls it every interval), whichever comes first: the previous close becomes the last
  price seen, and the change is 0 until the price moves; until the day's first price
  the range is that close alone, from then on it is the day's prices. Reads that take
  ``now`` answer as if the day had been rolled.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from tickcast.model.market import MarketEvent, Quote, Trade
from tickcast.model.portfolio import AssetUpdate

_DAY_S = 86_400


class ReferenceKind(enum.StrEnum):
    """What a daily change is measured against."""

    PREVIOUS_CLOSE = "previous_close"
    FIRST_PRICE_TODAY = "first_price_today"


class Reference(NamedTuple):
    """A daily-change reference: its price and what it is."""

    price: float
    kind: ReferenceKind


def _day(ts: float) -> int:
    return int(ts // _DAY_S)


class _Asset:
    """One symbol's state on ``day``.

    ``first`` is None after a roll until the day's first price; ``observed`` tells
    whether ``close`` is the board's own (a roll) or the one it was given.
    """

    __slots__ = (
        "close",
        "day",
        "first",
        "high",
        "low",
        "observed",
        "price",
        "source",
        "volume",
    )

    def __init__(self, day: int, price: float, close: float | None) -> None:
        self.day = day
        self.price = price
        self.first: float | None = price
        self.high = price
        self.low = price
        self.volume = 0.0
        self.source = ""
        self.close = close
        self.observed = False

    def roll(self, day: int) -> None:
        """Start ``day``: the last price seen closes the previous one."""
        self.day = day
        self.close = self.price
        self.observed = True
        self.first = None
        self.high = self.low = self.price
        self.volume = 0.0

    def reference(self) -> Reference | None:
        if self.close is not None and self.close > 0:
            return Reference(self.close, ReferenceKind.PREVIOUS_CLOSE)
        if self.first is not None:
            return Reference(self.first, ReferenceKind.FIRST_PRICE_TODAY)
        return None


class AssetBoard:
    """Price, day statistics and references per symbol, and which symbols changed.

    Args:
        previous_closes: a close per symbol, as ``set_previous_close`` would give them.
    """

    def __init__(self, previous_closes: Mapping[str, float] | None = None) -> None:
        self._closes: dict[str, float] = dict(previous_closes or {})
        self._assets: dict[str, _Asset] = {}
        self._dirty: set[str] = set()

    def set_previous_close(self, symbol: str, price: float) -> None:
        """Give ``symbol`` a previous close (the asset table's); it replaces any other
        until the board sees a new day."""
        self._closes[symbol] = price
        asset = self._assets.get(symbol)
        if asset is not None:
            asset.close = price
            asset.observed = False
            self._dirty.add(symbol)

    # -- events

    def apply(self, events: Iterable[MarketEvent]) -> set[str]:
        """Fold market events in; return the symbols whose reference changed (a first
        price, a new day), so that the caller can give the book the new one."""
        changed: set[str] = set()
        assets = self._assets
        dirty = self._dirty
        for event in events:
            kind = type(event)
            if kind is Quote:
                volume: float | None = event.volume  # type: ignore[union-attr]
            elif kind is Trade:
                volume = None
            elif isinstance(event, Quote):
                volume = event.volume
            elif not isinstance(event, Trade):
                continue
            else:
                volume = None
            symbol = event.symbol
            price = event.price  # type: ignore[union-attr]
            asset = assets.get(symbol)
            if (
                asset is not None
                and asset.first is not None
                and price > 0
                and event.ts // _DAY_S <= asset.day
            ):
                # the common case, ``_price`` inlined: a known asset, a price of its day
                # after the day's first one (no new reference)
                asset.price = price
                if price > asset.high:
                    asset.high = price
                if price < asset.low:
                    asset.low = price
                if volume is not None:
                    asset.volume = volume
                asset.source = event.source
                dirty.add(symbol)
            elif self._price(symbol, price, event.ts, event.source, volume):
                changed.add(symbol)
        return changed

    def _price(
        self, symbol: str, price: float, ts: float, source: str, volume: float | None
    ) -> bool:
        """Fold one price in; True when it changed the symbol's reference."""
        if not price > 0:
            return False
        day = _day(ts)
        turned = False
        asset = self._assets.get(symbol)
        if asset is None:
            asset = self._assets[symbol] = _Asset(day, price, self._closes.get(symbol))
            turned = asset.reference() != self.reference_given(symbol)
        elif asset.day < day:
            asset.roll(day)
            turned = True
        if asset.first is None:  # the day's first price: today's range starts here
            asset.first = asset.high = asset.low = price
        asset.price = price
        if price > asset.high:
            asset.high = price
        if price < asset.low:
            asset.low = price
        if volume is not None:
            asset.volume = volume
        asset.source = source
        self._dirty.add(symbol)
        return turned

    def roll(self, now: float) -> set[str]:
        """Start the UTC day of ``now`` for every symbol last priced before it; return
        those symbols (their reference changed, and each gets an update)."""
        today = _day(now)
        rolled = {symbol for symbol, asset in self._assets.items() if asset.day < today}
        for symbol in rolled:
            self._assets[symbol].roll(today)
        self._dirty |= rolled
        return rolled

    # -- reads (``now``: answer for that instant's UTC day; None: the board's own day)

    def _at(self, symbol: str, now: float | None) -> _Asset | None:
        """The asset as it is on ``now``'s day (a rolled copy if the day has turned)."""
        asset = self._assets.get(symbol)
        if asset is None or now is None or asset.day >= _day(now):
            return asset
        rolled = _Asset(asset.day, asset.price, asset.close)
        rolled.source = asset.source
        rolled.roll(_day(now))
        return rolled

    def price(self, symbol: str) -> float | None:
        """The last price seen, None before the first."""
        asset = self._assets.get(symbol)
        return asset.price if asset is not None else None

    def previous_close(self, symbol: str, now: float | None = None) -> float | None:
        """The previous close: given, or the last price seen before ``now``'s day."""
        asset = self._at(symbol, now)
        return asset.close if asset is not None else self._closes.get(symbol)

    def observed_close(self, symbol: str, now: float | None = None) -> float | None:
        """The previous close when the board made it itself (a day turned after it saw
        a price), else None (then the close, if any, is the one it was given)."""
        asset = self._at(symbol, now)
        return asset.close if asset is not None and asset.observed else None

    def reference(self, symbol: str, now: float | None = None) -> Reference | None:
        """What the daily change of ``symbol`` is measured against (module docstring)."""
        asset = self._at(symbol, now)
        return asset.reference() if asset is not None else self.reference_given(symbol)

    def reference_given(self, symbol: str) -> Reference | None:
        """The reference a given close makes, before any price of the symbol."""
        close = self._closes.get(symbol)
        if close is not None and close > 0:
            return Reference(close, ReferenceKind.PREVIOUS_CLOSE)
        return None

    def update(self, symbol: str, now: float) -> AssetUpdate | None:
        """The current update for ``symbol`` (a new subscriber's first message)."""
        asset = self._at(symbol, now)
        if asset is None:
            return None
        reference = asset.reference()
        base = reference.price if reference is not None else asset.price
        change = asset.price - base
        percent = change / base * 100 if base else 0.0
        return AssetUpdate(
            symbol,
            asset.price,
            round(change, 6),
            round(percent, 4),
            asset.volume,
            asset.high,
            asset.low,
            now,
            asset.source,
        )

    def take_updates(self, now: float) -> list[AssetUpdate]:
        """An update for each symbol that changed since the last call."""
        dirty, self._dirty = self._dirty, set()
        updates = [self.update(symbol, now) for symbol in sorted(dirty)]
        return [u for u in updates if u is not None]
