"""OrderBook: one symbol's level-2 book, as the sum of a snapshot and its deltas.

Rules: pure. Sizes are absolute (a level's new total, as Binance and Coinbase publish
them); a size of 0 removes the level, and removing a level that is not there is normal.
Used by the hub's last-value cache (a late subscriber gets the whole book) and by the
providers' book builder (sequence checks and resync).
"""

from __future__ import annotations

from tickcast.model.market import BookUpdate


class OrderBook:
    """Price -> size per side."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def apply(self, update: BookUpdate) -> None:
        """Apply a delta, or replace the book with a snapshot."""
        bids = self.bids
        asks = self.asks
        if update.snapshot:
            bids.clear()
            asks.clear()
        # inlined (one call per update, not three): this runs twice per book update
        # ingested, in the providers' book check and in the hub's last-value cache
        for price, size in update.bids:
            if size == 0:
                bids.pop(price, None)
            else:
                bids[price] = size
        for price, size in update.asks:
            if size == 0:
                asks.pop(price, None)
            else:
                asks[price] = size

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
