"""Front 1 wire format: market data objects and control messages, as JSON bytes.

Rules: pure. A quote keeps exactly the original market-data shape (symbol, price, bid,
ask, volume, timestamp, source) so that clients which know only that shape keep working;
the other channels carry a ``type`` (trade, bar, book). With the ``seq`` option every
data message also carries ``topic`` and ``seq``. Wire names live here, not in model/.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tickcast.model.envelope import Envelope
from tickcast.model.market import Bar, BookUpdate, Level, Quote, Trade
from tickcast.protocols.native.timefmt import iso_ms

WIRE = "market"
WIRE_SEQ = "market+seq"


class _Quote(msgspec.Struct, omit_defaults=True):
    symbol: str
    price: float
    bid: float
    ask: float
    volume: float | int
    timestamp: str
    source: str
    topic: str = ""
    seq: int = 0


class _Trade(msgspec.Struct, omit_defaults=True, tag_field="type", tag="trade"):
    symbol: str
    price: float
    size: float | int
    timestamp: str
    source: str
    trade_id: str = ""
    topic: str = ""
    seq: int = 0


class _Bar(msgspec.Struct, omit_defaults=True, tag_field="type", tag="bar"):
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


class _Book(msgspec.Struct, omit_defaults=True, tag_field="type", tag="book"):
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    snapshot: bool
    timestamp: str
    source: str
    sequence: int = 0
    topic: str = ""
    seq: int = 0


_encode = msgspec.json.Encoder().encode


def _number(value: float) -> float | int:
    """Whole volumes and sizes print as integers (``1000``, not ``1000.0``)."""
    return int(value) if value.is_integer() else value


def _message(envelope: Envelope, topic: str, seq: int) -> msgspec.Struct:
    event = envelope.payload
    if isinstance(event, Quote):
        return _Quote(
            event.symbol,
            event.price,
            event.bid,
            event.ask,
            _number(event.volume),
            iso_ms(event.ts),
            event.source,
            topic,
            seq,
        )
    if isinstance(event, Trade):
        return _Trade(
            event.symbol,
            event.price,
            _number(event.size),
            iso_ms(event.ts),
            event.source,
            event.trade_id,
            topic,
            seq,
        )
    if isinstance(event, Bar):
        return _Bar(
            event.symbol,
            event.open,
            event.high,
            event.low,
            event.close,
            _number(event.volume),
            iso_ms(event.start),
            iso_ms(event.ts),
            event.source,
            topic,
            seq,
        )
    if isinstance(event, BookUpdate):
        return _Book(
            event.symbol,
            event.bids,
            event.asks,
            event.snapshot,
            iso_ms(event.ts),
            event.source,
            event.sequence,
            topic,
            seq,
        )
    raise TypeError(f"not a market event: {event!r}")


def encode(envelope: Envelope) -> bytes:
    """The plain Front 1 message (no seq)."""
    return _encode(_message(envelope, "", 0))


def encode_with_seq(envelope: Envelope) -> bytes:
    """The Front 1 message with ``topic`` and ``seq`` (the ``seq=1`` option)."""
    return _encode(_message(envelope, str(envelope.topic), envelope.seq))


CODECS = {WIRE: encode, WIRE_SEQ: encode_with_seq}


def control(type_: str, now: float, **fields: Any) -> bytes:
    """A control message: ``{"type": type_, **fields}`` plus ``timestamp`` when asked."""
    message: dict[str, Any] = {"type": type_, **fields}
    if type_ in ("pong", "heartbeat"):
        message["timestamp"] = iso_ms(now)
    return _encode(message)


def error(message: str) -> bytes:
    return _encode({"type": "error", "message": message})
