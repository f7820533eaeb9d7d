"""Front 1 wire format: market data objects and control messages, as JSON bytes.

Rules: pure. A quote keeps exactly the original market-data shape (symbol, price, bid,
ask, volume, timestamp, source) so that clients which know only that shape keep working;
the other channels carry a ``type`` (trade, bar, book, status). A trading signal has a
``type`` of its own (its strategy), so it travels whole under ``data``, in the shape every
front gives it (``model.signal.encode``), beside ``"type": "signal"``::

    {"type": "signal", "data": {"type": "MA_CROSS", "signal": "BUY", "price": 162.5,
     "symbol": "AAPL", "timeframe": "1m", "timestamp": "...", "id": "...",
     "source": "engine"}}

With the ``seq`` option every data message also carries ``topic``, ``seq`` and
``epoch`` (the numbering ``seq`` counts in). Wire names live here, not in model/.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgspec

from tickcast.model.envelope import Envelope
from tickcast.model.market import Bar, BookUpdate, Level, Quote, Status, Trade
from tickcast.model.signal import Signal
from tickcast.model.topic import Topic
from tickcast.protocols.native.timefmt import iso_ms

WIRE = "market"
WIRE_SEQ = "market+seq"


class _Quote(msgspec.Struct, gc=False, omit_defaults=True):
    symbol: str
    price: float
    bid: float
    ask: float
    volume: float | int
    timestamp: str
    source: str
    topic: str = ""
    seq: int = 0
    epoch: str = ""


class _PlainQuote(msgspec.Struct, gc=False):
    """A quote without the ``seq`` option's fields: nothing to omit, so nothing checked."""

    symbol: str
    price: float
    bid: float
    ask: float
    volume: float | int
    timestamp: str
    source: str


class _PlainTrade(msgspec.Struct, gc=False, omit_defaults=True, tag_field="type", tag="trade"):
    symbol: str
    price: float
    size: float | int
    timestamp: str
    source: str
    trade_id: str = ""


class _Trade(msgspec.Struct, gc=False, omit_defaults=True, tag_field="type", tag="trade"):
    symbol: str
    price: float
    size: float | int
    timestamp: str
    source: str
    trade_id: str = ""
    topic: str = ""
    seq: int = 0
    epoch: str = ""


class _Bar(msgspec.Struct, gc=False, omit_defaults=True, tag_field="type", tag="bar"):
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float | int
    start: str
    timestamp: str
    source: str
    topic: str = ""
    seq: int = 0
    epoch: str = ""


class _Book(msgspec.Struct, gc=False, omit_defaults=True, tag_field="type", tag="book"):
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    snapshot: bool
    timestamp: str
    source: str
    sequence: int = 0
    topic: str = ""
    seq: int = 0
    epoch: str = ""


class _Status(msgspec.Struct, gc=False, omit_defaults=True, tag_field="type", tag="status"):
    provider: str
    state: str
    active: str
    reason: str
    timestamp: str
    source: str
    topic: str = ""
    seq: int = 0
    epoch: str = ""


class _Signal(msgspec.Struct, gc=False, omit_defaults=True, tag_field="type", tag="signal"):
    data: Signal
    topic: str = ""
    seq: int = 0
    epoch: str = ""


_encode = msgspec.json.Encoder().encode


def _number(value: float) -> float | int:
    """Whole volumes and sizes print as integers (``1000``, not ``1000.0``)."""
    return _floor(value) if type(value) is float and value.is_integer() else value


def _quote(e: Quote, topic: str, seq: int, epoch: str) -> msgspec.Struct:
    return _Quote(
        e.symbol,
        e.price,
        e.bid,
        e.ask,
        _number(e.volume),
        iso_ms(e.ts),
        e.source,
        topic,
        seq,
        epoch,
    )


def _trade(e: Trade, topic: str, seq: int, epoch: str) -> msgspec.Struct:
    size = _number(e.size)
    return _Trade(e.symbol, e.price, size, iso_ms(e.ts), e.source, e.trade_id, topic, seq, epoch)


def _bar(e: Bar, topic: str, seq: int, epoch: str) -> msgspec.Struct:
    return _Bar(
        e.symbol,
        e.open,
        e.high,
        e.low,
        e.close,
        _number(e.volume),
        iso_ms(e.start),
        iso_ms(e.ts),
        e.source,
        topic,
        seq,
        epoch,
    )


def _book(e: BookUpdate, topic: str, seq: int, epoch: str) -> msgspec.Struct:
    return _Book(
        e.symbol,
        e.bids,
        e.asks,
        e.snapshot,
        iso_ms(e.ts),
        e.source,
        e.sequence,
        topic,
        seq,
        epoch,
    )


def _status(e: Status, topic: str, seq: int, epoch: str) -> msgspec.Struct:
    return _Status(
        e.provider, e.state, e.active, e.reason, iso_ms(e.ts), e.source, topic, seq, epoch
    )


def _signal(e: Signal, topic: str, seq: int, epoch: str) -> msgspec.Struct:
    return _Signal(e, topic, seq, epoch)


_Build = Callable[[Any, str, int, str], msgspec.Struct]

_MESSAGE: dict[type, _Build] = {
    Quote: _quote,
    Trade: _trade,
    Bar: _bar,
    BookUpdate: _book,
    Status: _status,
    Signal: _signal,
}


def _build(event: Any) -> _Build:
    build = _MESSAGE.get(type(event))
    if build is None:
        raise TypeError(f"not a market event or signal: {event!r}")
    return build


_float = float
#: A whole float's int: ``floor`` is the same int as ``int`` for one, in a third of the
#: time (a builtin's call, not a type's).
_floor = math.floor
#: The text of a topic (``str(topic)``, an f-string) by topic, for the ``seq`` option.
_TOPIC_TEXT: dict[Topic, str] = {}
_TOPIC_TEXT_MAX = 65_536


def _topic_text(topic: Topic) -> str:
    text = str(topic)
    if len(_TOPIC_TEXT) >= _TOPIC_TEXT_MAX:
        _TOPIC_TEXT.clear()
    _TOPIC_TEXT[topic] = text
    return text


def topic_text(topic: Topic) -> str:
    """``str(topic)``, from the cache the ``seq`` option's messages use."""
    return _TOPIC_TEXT.get(topic) or _topic_text(topic)


#: The last envelope ``encode`` encoded and its bytes. The hub encodes an update for
#: every wire in use on its topic in turn, and STOMP's and Socket.IO's codecs (and the
#: stamped market wire's) carry this same body: encoded once, not once per wire. The
#: envelope is held, so no other can take its identity; envelopes are immutable. One
#: tuple, read and replaced whole. A trading signal's message is never kept: the other
#: wires carry the signal in a shape of their own, so whatever is kept here is their body
#: too, and they take it on the envelope's identity alone, without its payload's type.
_last: tuple[Envelope | None, bytes] = (None, b"")


def encode(envelope: Envelope) -> bytes:
    """The plain Front 1 message (no seq), kept as ``_last`` for the wires that carry it
    (which read it there before they call this: encoded here, it is encoded anew)."""
    global _last
    e: Any = envelope.payload  # its type read once, below
    kind = type(e)
    # The two per-tick messages built inline (no builder call, no seq fields to omit):
    # the same bytes as the builders' structs give.
    if kind is Quote:
        v = e.volume
        body = _encode(
            _PlainQuote(
                e.symbol,
                e.price,
                e.bid,
                e.ask,
                _floor(v) if type(v) is _float and v.is_integer() else v,
                iso_ms(e.ts),
                e.source,
            )
        )
    elif kind is Trade:
        v = e.size
        body = _encode(
            _PlainTrade(
                e.symbol,
                e.price,
                _floor(v) if type(v) is _float and v.is_integer() else v,
                iso_ms(e.ts),
                e.source,
                e.trade_id,
            )
        )
    else:
        body = _encode(_build(e)(e, "", 0, ""))
        if kind is Signal:  # not the body the other wires carry (see ``_last``)
            return body
    _last = (envelope, body)
    return body


def encode_with_seq(envelope: Envelope) -> bytes:
    """The Front 1 message with ``topic``, ``seq`` and ``epoch`` (the ``seq=1`` option)."""
    e: Any = envelope.payload  # its type read once, below
    kind = type(e)
    topic = envelope.topic
    text = _TOPIC_TEXT.get(topic) or _topic_text(topic)
    if kind is Quote:
        v = e.volume
        return _encode(
            _Quote(
                e.symbol,
                e.price,
                e.bid,
                e.ask,
                _floor(v) if type(v) is _float and v.is_integer() else v,
                iso_ms(e.ts),
                e.source,
                text,
                envelope.seq,
                envelope.epoch,
            )
        )
    if kind is Trade:
        v = e.size
        return _encode(
            _Trade(
                e.symbol,
                e.price,
                _floor(v) if type(v) is _float and v.is_integer() else v,
                iso_ms(e.ts),
                e.source,
                e.trade_id,
                text,
                envelope.seq,
                envelope.epoch,
            )
        )
    return _encode(_build(e)(e, text, envelope.seq, envelope.epoch))


CODECS = {WIRE: encode, WIRE_SEQ: encode_with_seq}


def control(type_: str, now: float, **fields: Any) -> bytes:
    """A control message: ``{"type": type_, **fields}`` plus ``timestamp`` when asked."""
    message: dict[str, Any] = {"type": type_, **fields}
    if type_ in ("pong", "heartbeat"):
        message["timestamp"] = iso_ms(now)
    return _encode(message)


def error(message: str) -> bytes:
    return _encode({"type": "error", "message": message})


def degraded(topic: str, seq: int, epoch: str) -> bytes:
    """A reliable stream suspended for a slow client: ``seq`` is the last of ``topic``
    sent before the hole (in ``epoch``); nothing of it follows until ``resumed``."""
    message: dict[str, Any] = {"type": "degraded", "topic": topic, "seq": seq}
    if epoch:
        message["epoch"] = epoch
    message["reason"] = "slow_consumer"
    return _encode(message)


def resumed(topic: str, seq: int, epoch: str, replayed: int) -> bytes:
    """A suspended stream is live again: ``replayed`` updates of it were sent after its
    ``degraded`` message (or a ``reset`` and a snapshot were), the last at ``seq``; live
    updates follow from ``seq + 1``."""
    message: dict[str, Any] = {"type": "resumed", "topic": topic, "seq": seq}
    if epoch:
        message["epoch"] = epoch
    message["replayed"] = replayed
    return _encode(message)
