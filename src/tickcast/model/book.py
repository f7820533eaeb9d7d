"""OrderBook: one symbol's level-2 book, as the sum of a snapshot and its deltas.

Rules: pure. Sizes are absolute (a level's new total, as Binance and Coinbase publish
them); a size of 0 removes the level, and removing a level that is not there is normal.
Used by the hub's last-value cache (a late subscriber gets the whole book) and by the
providers' book builder (sequence checks and resync).
"""

from __future__ import annotations

from tickcast.model.market import BookUpdate, Level


def _apply(levels: dict[float, float], changes: tuple[Level, ...]) -> None:
    for price, size in changes:
        if size == 0:
            levels.pop(price, None)
        else:
            levels[price] = size


class OrderBook:
    """Price -> size per side."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def apply(self, update: BookUpdate) -> None:
        """Apply a delta, or replace the book with a snapshot."""
        if update.snapshot:
            self.bids.clear()
            self.asks.clear()
        _apply(self.bids, update.bids)
        _apply(self.asks, update.asks)

    def snapshot(self, like: BookUpdate) -> BookUpdate:
        """The whole book as a snapshot, with ``like``'s symbol, time, source and sequence."""
        return BookUpdate(
            symbol=like.symbol,
            bids=tuple(sorted(self.bids.items(), reverse=True)),
            asks=tuple(sorted(self.asks.items())),
            snapshot=True,
            ts=like.ts,
            source=like.source,
            sequence=like.sequence,
        )
