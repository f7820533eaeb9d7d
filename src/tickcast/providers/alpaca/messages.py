"""The Alpaca market data stream v2 wire messages, as msgspec Structs.

Rules: pure. One Struct per server message type, tagged by ``T`` exactly as on the wire
(Alpaca's market-data stream documentation). Field names are Python names mapped to the wire's
one-letter
keys with ``msgspec.field(name=...)``; nothing is normalized here (``parse.py`` does
that). The same Structs decode JSON text and msgpack frames: a timestamp ``t`` is an
RFC 3339 string in JSON and a msgpack Timestamp extension (``msgspec.msgpack.Ext`` with
code -1) in msgpack, hence ``Timestamp = str | Ext``.

Data messages are ``Trade`` (t), ``Quote`` (q), ``Bar`` (b), ``UpdatedBar`` (u),
``DailyBar`` (d) and ``Orderbook`` (o, crypto). Control messages are ``Success``,
``Error`` and ``Subscription``. The stock side channels (``TradingStatus`` s, ``Luld`` l,
``CancelError`` x, ``Correction`` c, ``Imbalance`` i) and ``News`` (n) are decoded too
and reach the adapter as controls: tickcast's model has no event for them. Optional
fields that crypto or the test stream leave out have defaults; required fields are the
ones normalization needs.
"""

from __future__ import annotations

from typing import Final

import msgspec

#: An RFC 3339 string (JSON) or a msgpack Timestamp extension (msgpack).
Timestamp = str | msgspec.msgpack.Ext

#: Code of the msgpack Timestamp extension type.
TIMESTAMP_EXT: Final = -1


class _Message(msgspec.Struct, frozen=True, tag_field="T"):
    """Base of every server message: the ``T`` key selects the Struct."""


class Trade(_Message, frozen=True, tag="t"):
    """A trade. ``size`` is in shares (stocks) or coins (crypto)."""

    symbol: str = msgspec.field(name="S")
    price: float = msgspec.field(name="p")
    size: float = msgspec.field(name="s")
    t: Timestamp = msgspec.field(name="t")
    id: int = msgspec.field(name="i", default=0)
    exchange: str = msgspec.field(name="x", default="")
    conditions: list[str] | None = msgspec.field(name="c", default=None)
    tape: str = msgspec.field(name="z", default="")
    taker_side: str = msgspec.field(name="tks", default="")


class Quote(_Message, frozen=True, tag="q"):
    """A top-of-book quote. Stock sizes are in round lots; crypto sizes in coins."""

    symbol: str = msgspec.field(name="S")
    bid_price: float = msgspec.field(name="bp")
    bid_size: float = msgspec.field(name="bs")
    ask_price: float = msgspec.field(name="ap")
    ask_size: float = msgspec.field(name="as")
    t: Timestamp = msgspec.field(name="t")
    bid_exchange: str = msgspec.field(name="bx", default="")
    ask_exchange: str = msgspec.field(name="ax", default="")
    conditions: list[str] | None = msgspec.field(name="c", default=None)
    tape: str = msgspec.field(name="z", default="")


class BarFields(_Message, frozen=True):
    """OHLCV of one bar; ``t`` is the bar's start."""

    symbol: str = msgspec.field(name="S")
    open: float = msgspec.field(name="o")
    high: float = msgspec.field(name="h")
    low: float = msgspec.field(name="l")
    close: float = msgspec.field(name="c")
    volume: float = msgspec.field(name="v")
    t: Timestamp = msgspec.field(name="t")
    trade_count: int = msgspec.field(name="n", default=0)
    vwap: float = msgspec.field(name="vw", default=0.0)


class Bar(BarFields, frozen=True, tag="b"):
    """A minute bar, sent right after the minute ends."""


class UpdatedBar(BarFields, frozen=True, tag="u"):
    """A corrected minute bar (a late trade changed it); replaces the earlier ``b``."""


class DailyBar(BarFields, frozen=True, tag="d"):
    """The day's bar so far, sent every minute after the open."""


class BookLevel(msgspec.Struct, frozen=True):
    """One orderbook level; a size of 0 removes the level."""

    price: float = msgspec.field(name="p")
    size: float = msgspec.field(name="s")


class Orderbook(_Message, frozen=True, tag="o"):
    """A crypto orderbook change; ``reset`` True means the levels are the whole book."""

    symbol: str = msgspec.field(name="S")
    t: Timestamp = msgspec.field(name="t")
    bids: list[BookLevel] = msgspec.field(name="b", default_factory=list)
    asks: list[BookLevel] = msgspec.field(name="a", default_factory=list)
    reset: bool = msgspec.field(name="r", default=False)


# -- control messages


class Success(_Message, frozen=True, tag="success"):
    """``connected`` after the upgrade, ``authenticated`` after auth."""

    msg: str


class Error(_Message, frozen=True, tag="error"):
    """An error; the codes are Alpaca's documented ones (402 auth failed, 406 connection limit)."""

    code: int
    msg: str = ""


#: A channel's symbol list; Go clients send ``null`` for an empty one.
Symbols = list[str] | None


class Subscription(_Message, frozen=True, tag="subscription"):
    """The full current subscription, after every (un)subscribe. Missing keys are empty."""

    trades: Symbols = None
    quotes: Symbols = None
    bars: Symbols = None
    updated_bars: Symbols = msgspec.field(name="updatedBars", default=None)
    daily_bars: Symbols = msgspec.field(name="dailyBars", default=None)
    statuses: Symbols = None
    lulds: Symbols = None
    imbalances: Symbols = None
    corrections: Symbols = None
    cancel_errors: Symbols = msgspec.field(name="cancelErrors", default=None)
    orderbooks: Symbols = None
    news: Symbols = None

    def channel(self, wire_name: str) -> list[str]:
        """The symbols of a channel by its wire name (``"dailyBars"``); [] when absent."""
        return getattr(self, _ATTRIBUTES.get(wire_name, wire_name), None) or []


_ATTRIBUTES: Final = {
    "updatedBars": "updated_bars",
    "dailyBars": "daily_bars",
    "cancelErrors": "cancel_errors",
}


# -- stock side channels: decoded, then passed on as controls


class TradingStatus(_Message, frozen=True, tag="s"):
    """A trading status change (halt, resume...)."""

    symbol: str = msgspec.field(name="S")
    t: Timestamp = msgspec.field(name="t")
    status_code: str = msgspec.field(name="sc", default="")
    status_message: str = msgspec.field(name="sm", default="")
    reason_code: str = msgspec.field(name="rc", default="")
    reason_message: str = msgspec.field(name="rm", default="")
    tape: str = msgspec.field(name="z", default="")


class Luld(_Message, frozen=True, tag="l"):
    """Limit up / limit down bands."""

    symbol: str = msgspec.field(name="S")
    t: Timestamp = msgspec.field(name="t")
    limit_up: float = msgspec.field(name="u")
    limit_down: float = msgspec.field(name="d")
    indicator: str = msgspec.field(name="i", default="")
    tape: str = msgspec.field(name="z", default="")


class CancelError(_Message, frozen=True, tag="x"):
    """A trade cancelled (``action`` "C") or in error ("E")."""

    symbol: str = msgspec.field(name="S")
    t: Timestamp = msgspec.field(name="t")
    id: int = msgspec.field(name="i")
    price: float = msgspec.field(name="p", default=0.0)
    size: float = msgspec.field(name="s", default=0.0)
    action: str = msgspec.field(name="a", default="")
    exchange: str = msgspec.field(name="x", default="")
    tape: str = msgspec.field(name="z", default="")


class Correction(_Message, frozen=True, tag="c"):
    """A trade correction: original (``o*``) and corrected (``c*``) id, price, size."""

    symbol: str = msgspec.field(name="S")
    t: Timestamp = msgspec.field(name="t")
    original_id: int = msgspec.field(name="oi")
    original_price: float = msgspec.field(name="op")
    original_size: float = msgspec.field(name="os")
    corrected_id: int = msgspec.field(name="ci")
    corrected_price: float = msgspec.field(name="cp")
    corrected_size: float = msgspec.field(name="cs")
    original_conditions: list[str] | None = msgspec.field(name="oc", default=None)
    corrected_conditions: list[str] | None = msgspec.field(name="cc", default=None)
    exchange: str = msgspec.field(name="x", default="")
    tape: str = msgspec.field(name="z", default="")


class Imbalance(_Message, frozen=True, tag="i"):
    """An order imbalance (auction)."""

    symbol: str = msgspec.field(name="S")
    t: Timestamp = msgspec.field(name="t")
    price: float = msgspec.field(name="p", default=0.0)
    tape: str = msgspec.field(name="z", default="")


class News(_Message, frozen=True, tag="n"):
    """A news article (the news stream; tickcast does not subscribe to it)."""

    id: int = 0
    headline: str = ""
    symbols: list[str] | None = None
    source: str = ""


#: Every server message type; decode a frame as ``list[Message]``.
Message = (
    Trade
    | Quote
    | Bar
    | UpdatedBar
    | DailyBar
    | Orderbook
    | Success
    | Error
    | Subscription
    | TradingStatus
    | Luld
    | CancelError
    | Correction
    | Imbalance
    | News
)

#: The control messages the adapter acts on, and the side channels it only logs.
Control = Success | Error | Subscription
SideChannel = TradingStatus | Luld | CancelError | Correction | Imbalance | News
