"""AssetBoard: each asset's price and day statistics, for Front 2's asset_update.

Rules: pure. Fold market events in with ``apply(events)``; ``take_updates(now)`` returns
an AssetUpdate for every symbol that changed since the previous call (the service calls
it every ``update_interval_s``, so a busy symbol costs one update per interval, not one
per tick).

- ``price`` is the last trade price (a quote's ``price``, which the providers fill the
  same way); ``volume`` the quote's session volume.
- ``high`` and ``low`` are today's range of those prices, reset at midnight UTC.
- ``change`` and ``change_percent`` are against the previous close: the asset table's
  (``set_previous_close``), else the first price seen today, so the change is "since
  this gateway's first price today" until a close is known (documented in the API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tickcast.model.market import MarketEvent, Quote, Trade
from tickcast.model.portfolio import AssetUpdate

_DAY_S = 86_400


class _Asset:
    __slots__ = ("day", "high", "low", "previous_close", "price", "source", "volume")

    def __init__(self, day: int, price: float, previous_close: float | None) -> None:
        self.day = day
        self.price = price
        self.high = price
        self.low = price
        self.volume = 0.0
        self.source = ""
        self.previous_close = previous_close if previous_close else price


class AssetBoard:
    """Price and day statistics per symbol, and which symbols changed."""

    def __init__(self, previous_closes: Mapping[str, float] | None = None) -> None:
        self._closes: dict[str, float] = dict(previous_closes or {})
        self._assets: dict[str, _Asset] = {}
        self._dirty: set[str] = set()

    def set_previous_close(self, symbol: str, price: float) -> None:
        self._closes[symbol] = price
        asset = self._assets.get(symbol)
        if asset is not None:
            asset.previous_close = price
            self._dirty.add(symbol)

    def price(self, symbol: str) -> float | None:
        asset = self._assets.get(symbol)
        return asset.price if asset is not None else None

    def previous_close(self, symbol: str) -> float | None:
        asset = self._assets.get(symbol)
        return asset.previous_close if asset is not None else self._closes.get(symbol)

    def apply(self, events: Iterable[MarketEvent]) -> None:
        for event in events:
            if isinstance(event, Quote):
                self._price(event.symbol, event.price, event.ts, event.source, event.volume)
            elif isinstance(event, Trade):
                self._price(event.symbol, event.price, event.ts, event.source, None)

    def _price(
        self, symbol: str, price: float, ts: float, source: str, volume: float | None
    ) -> None:
        if not price > 0:
            return
        day = int(ts // _DAY_S)
        asset = self._assets.get(symbol)
        if asset is None or asset.day != day:
            if asset is not None and asset.day < day:
                self._closes[symbol] = asset.price  # yesterday's last price closes it
            asset = self._assets[symbol] = _Asset(day, price, self._closes.get(symbol))
        asset.price = price
        if price > asset.high:
            asset.high = price
        if price < asset.low:
            asset.low = price
        if volume is not None:
            asset.volume = volume
        asset.source = source
        self._dirty.add(symbol)

    def update(self, symbol: str, now: float) -> AssetUpdate | None:
        """The current update for ``symbol`` (a new subscriber's first message)."""
        asset = self._assets.get(symbol)
        if asset is None:
            return None
        change = asset.price - asset.previous_close
        percent = change / asset.previous_close * 100 if asset.previous_close else 0.0
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
