"""Normalized market data: Quote, Trade, Bar, BookUpdate, and the feed's Status.

Rules: these are plain frozen value objects. Timestamps are wall-clock epoch seconds
(float, UTC); prices and sizes are floats on the market-data hot path (money in
portfolios is Decimal, elsewhere). Wire names live in the codecs, never here.
"""

from __future__ import annotations

from typing import NewType

import msgspec

Symbol = NewType("Symbol", str)

#: One book level: (price, size). A size of 0 in a delta removes the level.
Level = tuple[float, float]


class Quote(msgspec.Struct, frozen=True, gc=False):
    """Top of book plus the session's last price and cumulative volume.

    Attributes:
        symbol: instrument, e.g. ``AAPL`` or ``BTC/USDT``.
        bid, ask: best prices; bid_size, ask_size in shares or coins.
        price: last trade price (the mid price before the first trade).
        volume: cumulative session volume, in shares or coins.
        ts: event time, epoch seconds UTC.
        source: provider name, e.g. ``simulator``, ``alpaca``.
    """

    symbol: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    price: float
    volume: float
    ts: float
    source: str


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One execution. ``trade_id`` is the provider's id, or "" when it has none."""

    symbol: str
    price: float
    size: float
    ts: float
    source: str
    trade_id: str = ""


class Bar(msgspec.Struct, frozen=True, gc=False):
    """An OHLCV bar; ``start`` is the bar's opening time, ``interval_s`` its length."""

    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    start: float
    ts: float
    source: str
    interval_s: int = 60


class BookUpdate(msgspec.Struct, frozen=True, gc=False):
    """A level-2 book change: a full snapshot, or a delta of changed levels.

    Attributes:
        bids: levels best (highest) first; asks best (lowest) first.
        snapshot: True when the levels replace the whole book.
        sequence: the provider's book sequence number, 0 when it has none.
    """

    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    snapshot: bool
    ts: float
    source: str
    sequence: int = 0


#: The stream that carries the upstream feed's status (``status.FEED``).
FEED = "FEED"


class Status(msgspec.Struct, frozen=True, gc=False):
    """A change of the upstream feed: one provider's state, and who feeds the hub now.

    Attributes:
        symbol: the stream, always ``FEED`` (a status is not about an instrument).
        provider: the provider whose state changed.
        state: its new state: starting, up, stale, backoff, disabled, stopped.
        active: the provider whose data is published now; "" while none is.
        reason: why, for a human ("connection closed", "no data for 15 s", "failback").
        ts: when, epoch seconds UTC.
        source: always ``tickcast`` (the gateway, not a vendor, says this).
    """

    symbol: str
    provider: str
    state: str
    active: str
    reason: str
    ts: float
    source: str = "tickcast"


MarketEvent = Quote | Trade | Bar | BookUpdate | Status
