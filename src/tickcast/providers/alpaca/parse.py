"""Alpaca market data stream v2 frames -> tickcast's normalized events (pure).

Rules: pure. ``parse(raw, received_at)`` takes one WebSocket message (JSON text, or
msgpack bytes) and returns ``Parsed``; it reads no clock and keeps no state (the only
module state is a bounded memo of RFC 3339 second prefixes). Vendor quirks that need
state (last price, session volume) belong to ``stream.py`` and ``providers/enrich.py``.

A frame is an array of maps, each with ``T`` (Alpaca's market-data stream documentation). The
whole frame is
decoded in one msgspec call; only when that fails are its items decoded one by one, so
that one bad item becomes one ``ParseError`` and the rest of the frame still counts.
Text that is not JSON, or a frame that is not an array, is one ``ParseError``. An item
whose ``T`` is unknown is a ``ParseError`` too (a vendor change must be seen, not lost).

Normalization choices (where the vendor documentation is silent or tickcast differs):
    - Stock quote sizes (``bs``/``as``) are in round lots; they become shares (x100) so
      that a Quote's sizes are in the same unit as Trade sizes and bar volumes. Crypto
      sizes (symbol with ``/``) are in coins and are kept as sent.
    - ``Quote.price`` is the mid and ``Quote.volume`` 0 here; the stream completes
      them with ``enrich.SessionState`` (last trade price, session volume).
    - ``b`` and ``u`` become 60 s Bars (``u`` carries the same ``start`` as the ``b`` it
      replaces); ``ts`` is the bar's end. ``d`` becomes an 86400 s Bar whose ``ts`` is
      ``received_at`` (the day is still running; ``start`` is the vendor's day start).
    - ``o`` becomes a BookUpdate: ``r`` true -> ``snapshot``; levels sorted best first;
      ``sequence`` 0 (Alpaca books carry none).
    - ``Trade.trade_id`` is ``str(i)``; crypto trades' taker side is dropped.
    - Controls: ``success``, ``error``, ``subscription``, and the stock side channels
      ``s`` (status), ``l`` (LULD), ``x`` (cancel/error), ``c`` (correction), ``i``
      (imbalance) and ``n`` (news), which tickcast's model cannot express: they are
      returned as typed controls (``messages.py``) for the stream to log, never as
      dead letters.
    - Timestamps become epoch seconds (float, UTC). Nanoseconds are kept as far as a
      float allows (about 0.2 us today): the fraction is added to the whole seconds,
      not rounded to microseconds as ``datetime`` would.

A real frame (the test stream, from Alpaca's documentation)::

    [{"T":"q","S":"FAKEPACA","bx":"O","bp":133.85,"bs":4,"ax":"R","ap":135.77,"as":5,
      "c":["R"],"z":"A","t":"2024-07-24T07:56:53.639713735Z"}]

becomes ``Quote(symbol="FAKEPACA", bid=133.85, ask=135.77, bid_size=400.0,
ask_size=500.0, price=134.81, volume=0.0, ts=1721807813.6397138, source="alpaca")``.
"""

from __future__ import annotations

import calendar
import functools
from typing import Any, Final

import msgpack  # type: ignore[import-untyped]
import msgspec

from tickcast.model.market import Bar, BookUpdate, Level, MarketEvent, Quote, Trade
from tickcast.providers.alpaca import messages as wire
from tickcast.providers.base import Parsed, ParseError

SOURCE: Final = "alpaca"
#: Shares per round lot: the unit of stock quote sizes.
ROUND_LOT: Final = 100
MINUTE_S: Final = 60
DAY_S: Final = 86_400

_json_frame = msgspec.json.Decoder(list[wire.Message])
_json_items = msgspec.json.Decoder(list[msgspec.Raw])
_json_item = msgspec.json.Decoder(wire.Message)
_msgpack_frame = msgspec.msgpack.Decoder(list[wire.Message])
_msgpack_items = msgspec.msgpack.Decoder(list[msgspec.Raw])
_msgpack_item = msgspec.msgpack.Decoder(wire.Message)

#: First bytes of a JSON frame received as bytes (msgpack arrays start at 0x90).
_JSON_STARTS: Final = (b"[", b" ", b"\n", b"\r", b"\t")


class _Invalid(ValueError):
    """An item that decoded but cannot be normalized (a bad timestamp)."""


def parse(raw: str | bytes, received_at: float) -> Parsed:
    """Normalize one Alpaca stream frame.

    Args:
        raw: the WebSocket message: JSON text (``str``), or msgpack ``bytes``. Bytes that
            start with ``[`` are taken as JSON (a text frame delivered as bytes).
        received_at: when the frame arrived, epoch seconds UTC (daily bars' ``ts``).

    Returns:
        The events (upstream order), controls (typed, ``messages.py``) and errors.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    is_json = isinstance(raw, str) or data[:1] in _JSON_STARTS
    try:
        items = _json_frame.decode(data) if is_json else _msgpack_frame.decode(data)
        return _normalize(items, received_at)
    except (msgspec.DecodeError, _Invalid):
        return _parse_items(raw, data, received_at, is_json)


def _parse_items(raw: str | bytes, data: bytes, received_at: float, is_json: bool) -> Parsed:
    """The slow path: decode item by item, so that each bad one is its own ParseError."""
    try:
        raws = _json_items.decode(data) if is_json else _msgpack_items.decode(data)
    except msgspec.ValidationError as exc:
        return Parsed([], [], [ParseError(f"frame is not an array of messages: {exc}", raw)])
    except msgspec.DecodeError as exc:
        kind = "JSON" if is_json else "msgpack"
        return Parsed([], [], [ParseError(f"invalid {kind}: {exc}", raw)])
    decode_item = _json_item.decode if is_json else _msgpack_item.decode
    events: list[MarketEvent] = []
    controls: list[Any] = []
    errors: list[ParseError] = []
    for item in raws:
        item_data = bytes(item)
        kept: str | bytes = item_data.decode("utf-8", "replace") if is_json else item_data
        try:
            one = _normalize([decode_item(item_data)], received_at)
        except (msgspec.DecodeError, _Invalid) as exc:
            reason = str(exc)
            if reason.startswith("Invalid value") and reason.endswith("`$.T`"):
                reason = f"unknown message type: {reason}"
            errors.append(ParseError(reason, kept))
            continue
        events.extend(one.events)
        controls.extend(one.controls)
    return Parsed(events, controls, errors)


def _normalize(items: list[wire.Message], received_at: float) -> Parsed:
    events: list[MarketEvent] = []
    controls: list[Any] = []
    append = events.append
    for item in items:
        if type(item) is wire.Quote:
            append(_quote(item))
        elif type(item) is wire.Trade:
            append(_trade(item))
        elif type(item) is wire.Orderbook:
            append(_book(item))
        elif type(item) is wire.Bar or type(item) is wire.UpdatedBar:
            append(_bar(item, MINUTE_S, None))
        elif type(item) is wire.DailyBar:
            append(_bar(item, DAY_S, received_at))
        else:
            controls.append(item)
    return Parsed(events, controls, [])


def _quote(q: wire.Quote) -> Quote:
    bid, ask = q.bid_price, q.ask_price
    symbol = q.symbol
    if "/" in symbol:
        bid_size, ask_size = q.bid_size, q.ask_size
    else:
        bid_size, ask_size = q.bid_size * ROUND_LOT, q.ask_size * ROUND_LOT
    mid = (bid + ask) / 2
    return Quote(symbol, bid, ask, bid_size, ask_size, mid, 0.0, epoch_s(q.t), SOURCE)


def _trade(t: wire.Trade) -> Trade:
    return Trade(t.symbol, t.price, t.size, epoch_s(t.t), SOURCE, str(t.id))


def _bar(b: wire.BarFields, interval_s: int, received_at: float | None) -> Bar:
    start = epoch_s(b.t)
    ts = start + interval_s if received_at is None else received_at
    return Bar(b.symbol, b.open, b.high, b.low, b.close, b.volume, start, ts, SOURCE, interval_s)


def _book(o: wire.Orderbook) -> BookUpdate:
    bids: list[Level] = sorted(((lv.price, lv.size) for lv in o.bids), reverse=True)
    asks: list[Level] = sorted((lv.price, lv.size) for lv in o.asks)
    return BookUpdate(o.symbol, tuple(bids), tuple(asks), o.reset, epoch_s(o.t), SOURCE, 0)


# -- timestamps


def epoch_s(t: wire.Timestamp) -> float:
    """An Alpaca timestamp (RFC 3339 text, or msgpack Timestamp ext) in epoch seconds."""
    if type(t) is str:
        return rfc3339_to_epoch_s(t)
    if isinstance(t, msgspec.msgpack.Ext) and t.code == wire.TIMESTAMP_EXT:
        try:
            stamp = msgpack.Timestamp.from_bytes(t.data)
        except ValueError as exc:
            raise _Invalid(f"invalid msgpack timestamp: {exc}") from None
        seconds: int = stamp.seconds
        nanoseconds: int = stamp.nanoseconds
        return seconds + nanoseconds / 1e9
    raise _Invalid(f"expected a timestamp for 't', got {t!r}")


def rfc3339_to_epoch_s(text: str) -> float:
    """``"2024-07-24T07:56:53.639713735Z"`` -> 1721807813.639713735 (as a float).

    Accepts any number of fraction digits and a ``Z`` or ``+HH:MM`` / ``-HH:MM`` offset.
    Raises ``_Invalid`` (a ValueError) for anything else.
    """
    n = len(text)
    if n < 20 or text[10] not in "Tt ":
        raise _Invalid(f"invalid timestamp {text!r}")
    seconds = _prefix_s(text[:19])
    i = 19
    fraction = 0.0
    if text[i] == ".":
        j = i + 1
        while j < n and text[j].isdigit():
            j += 1
        digits = text[i + 1 : j]
        if not digits:
            raise _Invalid(f"invalid timestamp {text!r}")
        fraction = int(digits) / 10 ** len(digits)
        i = j
    zone = text[i:]
    if zone not in ("Z", "z"):
        seconds -= _offset_s(zone, text)
    return seconds + fraction


@functools.lru_cache(maxsize=4096)
def _prefix_s(prefix: str) -> int:
    """``"YYYY-MM-DDTHH:MM:SS"`` (UTC) in epoch seconds; memoized (most frames share it)."""
    digits = prefix[0:4] + prefix[5:7] + prefix[8:10] + prefix[11:13] + prefix[14:16] + prefix[17:]
    separators = prefix[4] + prefix[7] + prefix[13] + prefix[16]
    if not (len(digits) == 14 and digits.isascii() and digits.isdigit() and separators == "--::"):
        raise _Invalid(f"invalid timestamp {prefix!r}...")
    year, month, day = int(digits[0:4]), int(digits[4:6]), int(digits[6:8])
    hour, minute, second = int(digits[8:10]), int(digits[10:12]), int(digits[12:14])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second <= 60):
        raise _Invalid(f"invalid timestamp {prefix!r}...")
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def _offset_s(zone: str, text: str) -> int:
    hours, minutes = zone[1:3], zone[4:6]
    if not (len(zone) == 6 and zone[0] in "+-" and zone[3] == ":" and (hours + minutes).isdigit()):
        raise _Invalid(f"invalid timestamp {text!r}")
    offset = int(hours) * 3600 + int(minutes) * 60
    return offset if zone[0] == "+" else -offset
