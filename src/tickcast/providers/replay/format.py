"""The recording format: JSON lines of normalized events with their receive times.

Rules: pure. The first line is a header; every other line is one event::

    {"format": "tickcast-recording", "version": 1, "provider": "alpaca",
     "symbols": ["AAPL", "MSFT"], "started": 1732150000.0}
    {"recv": 1732150000.123, "type": "quote", "data": {"symbol": "AAPL", "bid": 189.98, ...}}
    {"recv": 1732150000.125, "type": "trade", "data": {"symbol": "AAPL", "price": 190.0, ...}}

``recv`` is when the gateway received the event (epoch seconds); ``data`` holds the
normalized fields of tickcast's model (``model/market.py``), so a recording made from
any provider replays the same way. A line that cannot be read is a ParseError (a dead
letter for the replay), never the end of the replay.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from tickcast.model.market import Bar, BookUpdate, MarketEvent, Quote, Trade
from tickcast.providers.base import ParseError

FORMAT: Final = "tickcast-recording"
VERSION: Final = 1

_TYPES: Final[dict[str, type[MarketEvent]]] = {
    "quote": Quote,
    "trade": Trade,
    "bar": Bar,
    "book": BookUpdate,
}
_NAMES: Final = {cls: name for name, cls in _TYPES.items()}


class Header(msgspec.Struct, frozen=True):
    format: str
    version: int
    provider: str
    symbols: tuple[str, ...]
    started: float


class _Line(msgspec.Struct):
    recv: float
    type: str
    data: dict[str, Any]


_encode = msgspec.json.Encoder().encode
_decode_line = msgspec.json.Decoder(_Line).decode
_decode_header = msgspec.json.Decoder(Header).decode


def encode_header(
    provider: str, symbols: frozenset[str] | tuple[str, ...], started: float
) -> bytes:
    return _encode(Header(FORMAT, VERSION, provider, tuple(sorted(symbols)), started)) + b"\n"


def encode_event(event: MarketEvent, received_at: float) -> bytes | None:
    """One recording line, or None for what is not recorded (feed status messages)."""
    name = _NAMES.get(type(event))
    if name is None:
        return None
    return _encode({"recv": received_at, "type": name, "data": event}) + b"\n"


def decode_header(line: bytes | str) -> Header:
    """The header line. Raises ValueError when this is not a tickcast recording."""
    try:
        header = _decode_header(line)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a tickcast recording: {exc}") from None
    if header.format != FORMAT or header.version != VERSION:
        raise ValueError(f"unsupported recording: {header.format} v{header.version}")
    return header


def decode_event(line: bytes | str) -> tuple[float, MarketEvent] | ParseError:
    """``(receive time, event)`` from one line, or a ParseError."""
    try:
        parsed = _decode_line(line)
        cls = _TYPES[parsed.type]
        return parsed.recv, msgspec.convert(parsed.data, cls)
    except KeyError as exc:
        return ParseError(f"unknown event type {exc}", line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return ParseError(str(exc), line)


def retime(event: MarketEvent, shift: float) -> MarketEvent:
    """The event moved ``shift`` seconds forward in time (a replay looks live)."""
    if type(event) is Bar:
        return msgspec.structs.replace(event, ts=event.ts + shift, start=event.start + shift)
    return msgspec.structs.replace(event, ts=event.ts + shift)
