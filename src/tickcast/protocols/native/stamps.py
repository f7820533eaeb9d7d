"""Latency stamps on the market feed (the ``stamps=1`` option): where an update's time went.

Rules: pure. The mechanism is ``protocols/stamps.py``'s, shared with the realtime
envelope: a stamped data message ends with one more field, ``stamps``::

    {"symbol": "AAPL", ..., "source": "simulator",
     "stamps": {"event_us": 1764957491123000, "recv_us": 1764957491123412,
                "send_us": 1764957491125108}}

- ``event_us``: the event's own time (the provider's timestamp; ``timestamp`` at
  microsecond precision, as the provider gave it; a trading signal's ``timestamp``;
  left out for an event without one);
- ``recv_us``: the envelope's server time: the wall time the publisher read once per
  upstream batch, when it stamped the batch's sequence numbers, in the same event-loop
  step that read the batch off the provider's socket and parsed it (no queue between);
- ``send_us``: when this connection's socket write of the message happened (one clock
  read per write; every message of one write carries the same value).

The first two are the same for every subscriber, so they are encoded once per update
with the rest of the message, by the stamped wires' codecs (``market+stamps``,
``market+seq+stamps``); the payload then ends with ``"recv_us":R}}``. A quote or a
trade is encoded with its stamps in one go (structs with a last ``stamps`` field), unless
the market feed has just encoded its plain body (the hub encodes an update for each wire
in use in turn): then, as for every other message, the stamps are spliced into that body
(``with_stamps``). The bytes are the same either way. The third is per
connection: ``stamped_payloads`` splices ``,"send_us":S`` before the last two bytes at
write time (``transport.connection``'s ``_write``, for a connection on a stamped wire
only), a slice and a concatenation per message, then frames them. Clients on the other
wires get the same bytes (the same frame objects) as before.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec

from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote, Trade
from tickcast.protocols import stamps as _stamps
from tickcast.protocols.native import codec
from tickcast.protocols.native.timefmt import iso_ms
from tickcast.protocols.stamps import (
    FIELD,
    Stamps,
    event_time,
    micros,
    stamp,
    stamped_codecs,
    stamped_payloads,
    stamps_of,
    with_stamps,
)
from tickcast.protocols.wire import Codec

__all__ = [
    "CODECS",
    "FIELD",
    "STAMPED_WIRES",
    "WIRE_SEQ_STAMPS",
    "WIRE_STAMPS",
    "encode_seq_stamped",
    "encode_stamped",
    "event_time",
    "micros",
    "stamp",
    "stamped_payloads",
    "wire",
    "with_stamps",
]

WIRE_STAMPS: Final = _stamps.stamped_wire(codec.WIRE)  # "market+stamps"
WIRE_SEQ_STAMPS: Final = _stamps.stamped_wire(codec.WIRE_SEQ)  # "market+seq+stamps"
#: The wires whose data messages carry ``stamps`` and are completed per connection.
STAMPED_WIRES: Final = frozenset((WIRE_STAMPS, WIRE_SEQ_STAMPS))


def wire(*, seq: bool, stamps: bool) -> str:
    """The native wire for these options."""
    if stamps:
        return WIRE_SEQ_STAMPS if seq else WIRE_STAMPS
    return codec.WIRE_SEQ if seq else codec.WIRE


class _StampedPlainQuote(msgspec.Struct, gc=False):
    """``codec._PlainQuote`` and its stamps, encoded in one go."""

    symbol: str
    price: float
    bid: float
    ask: float
    volume: float | int
    timestamp: str
    source: str
    stamps: Stamps


class _StampedPlainTrade(
    msgspec.Struct, gc=False, omit_defaults=True, tag_field="type", tag="trade"
):
    """``codec._PlainTrade`` and its stamps (always given: never the default)."""

    symbol: str
    price: float
    size: float | int
    timestamp: str
    source: str
    trade_id: str = ""
    stamps: Stamps | None = None


class _StampedQuote(msgspec.Struct, gc=False, omit_defaults=True):
    """``codec._Quote`` (the ``seq`` option's) and its stamps."""

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
    stamps: Stamps | None = None


class _StampedTrade(msgspec.Struct, gc=False, omit_defaults=True, tag_field="type", tag="trade"):
    """``codec._Trade`` (the ``seq`` option's) and its stamps."""

    symbol: str
    price: float
    size: float | int
    timestamp: str
    source: str
    trade_id: str = ""
    topic: str = ""
    seq: int = 0
    epoch: str = ""
    stamps: Stamps | None = None


_encode = msgspec.json.Encoder().encode
_float = float
#: A whole float's int: ``floor`` is the same int as ``int`` for one, in a third of the
#: time (a builtin's call, not a type's).
_floor = math.floor


def encode_stamped(envelope: Envelope) -> bytes:
    """The plain Front 1 message with its event and receive stamps: spliced into the
    plain message when the market feed has just encoded it (``codec._last``: the body
    shared), else a quote or a trade encoded with them in one go (no body to share, no
    splice); the same bytes either way."""
    last = codec._last
    if last[0] is not envelope:
        e: Any = envelope.payload
        kind = type(e)
        if kind is Quote:
            ts = e.ts
            if ts:
                v = e.volume
                return _encode(
                    _StampedPlainQuote(
                        e.symbol,
                        e.price,
                        e.bid,
                        e.ask,
                        _floor(v) if type(v) is _float and v.is_integer() else v,
                        iso_ms(ts),
                        e.source,
                        stamps_of(ts, envelope.server_ts),
                    )
                )
        elif kind is Trade:
            ts = e.ts
            if ts:
                v = e.size
                return _encode(
                    _StampedPlainTrade(
                        e.symbol,
                        e.price,
                        _floor(v) if type(v) is _float and v.is_integer() else v,
                        iso_ms(ts),
                        e.source,
                        e.trade_id,
                        stamps_of(ts, envelope.server_ts),
                    )
                )
        return with_stamps(codec.encode(envelope), envelope)
    return with_stamps(last[1], envelope)


def encode_seq_stamped(envelope: Envelope) -> bytes:
    """The ``seq=1`` message with its event and receive stamps: a quote or a trade
    encoded with them in one go, anything else spliced (``with_stamps``); the same
    bytes either way."""
    e: Any = envelope.payload
    kind = type(e)
    if kind is Quote:
        ts = e.ts
        if ts:
            v = e.volume
            return _encode(
                _StampedQuote(
                    e.symbol,
                    e.price,
                    e.bid,
                    e.ask,
                    _floor(v) if type(v) is _float and v.is_integer() else v,
                    iso_ms(ts),
                    e.source,
                    codec.topic_text(envelope.topic),
                    envelope.seq,
                    envelope.epoch,
                    stamps_of(ts, envelope.server_ts),
                )
            )
    elif kind is Trade:
        ts = e.ts
        if ts:
            v = e.size
            return _encode(
                _StampedTrade(
                    e.symbol,
                    e.price,
                    _floor(v) if type(v) is _float and v.is_integer() else v,
                    iso_ms(ts),
                    e.source,
                    e.trade_id,
                    codec.topic_text(envelope.topic),
                    envelope.seq,
                    envelope.epoch,
                    stamps_of(ts, envelope.server_ts),
                )
            )
    return with_stamps(codec.encode_with_seq(envelope), envelope)


#: Every native wire: the front registers these with the hub.
CODECS: Final[dict[str, Codec]] = {
    **stamped_codecs(codec.CODECS),
    WIRE_STAMPS: encode_stamped,
    WIRE_SEQ_STAMPS: encode_seq_stamped,
}
