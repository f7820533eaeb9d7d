"""Polygon.io (Massive) stocks frames -> normalized tickcast events. Pure.

Rules: this module takes a frame (text or bytes) and returns data. It imports no
``asyncio``, ``time``, ``socket`` or ``websockets``; the I/O and the session's decisions
live in ``stream.py``. It only reads what ``messages.py`` defines.

Normalization (Polygon's stocks WebSocket documentation, per event):

=========  ============================================================================
``T``      ``Trade``: price ``p``, size ``s`` (``ds``, the decimal string, when present),
           ``trade_id`` the string ``i``, ts from ``t``.
``Q``      ``Quote``: bid ``bp`` / ask ``ap``; sizes ``bs`` / ``as`` are documented as
           round lots, so they are multiplied by ``ROUND_LOT_SHARES`` (100) to give
           shares, tickcast's unit. ``price`` is the mid and ``volume`` 0 here: the
           stream fills both from the trades (``enrich.SessionState``).
``A``      ``Bar`` with ``interval_s`` 1: o/h/l/c, volume ``v``, start ``s``, ts ``e``.
``AM``     ``Bar`` with ``interval_s`` 60, the same fields.
``status`` a ``Status`` in ``controls`` (the stream decides what it means: ``classify``).
``LULD``,  typed controls (``LimitUpLimitDown``, ``Imbalance``): valid messages that have
``NOI``    no normalized shape yet. They are never dead letters; the stream ignores them.
=========  ============================================================================

Timestamps arrive "as they come": the spec says Unix ms, but its own LULD example is in
µs and its NOI example in ns. ``epoch_s`` tells them apart by magnitude (see there) and
returns float epoch seconds.

Errors: a frame that is not JSON, or not a JSON array, is one ``ParseError`` carrying
the whole frame. Otherwise each item stands alone: an item that is not an object, has an
unknown ``ev`` (a type tickcast never subscribes to, so a surprise worth a dead letter),
lacks a field the normalized event needs or has a wrongly typed one is a ``ParseError``
carrying that item's text, and the rest of the frame is still parsed. The fast path
decodes the whole frame in one msgspec call; only a frame with a bad item is decoded
again item by item.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import msgspec

from tickcast.model.market import Bar, MarketEvent, Quote, Trade
from tickcast.providers.base import Parsed, ParseError
from tickcast.providers.polygon.messages import (
    KNOWN_EVENTS,
    MinuteAgg,
    QuoteEvent,
    SecondAgg,
    ServerMessage,
    Status,
    TradeEvent,
)

#: The ``source`` of every event this parser makes.
SOURCE: Final = "polygon"
#: Shares in the round lot that ``Q``'s ``bs``/``as`` count (the spec: "a bid size of 2
#: means 200 shares"). Set to 1 if Polygon starts sending quote sizes in shares.
ROUND_LOT_SHARES: Final = 100

#: Magnitude limits of ``epoch_s``: 1e11 ms, µs or ns is March 1973 in that unit; below
#: 1e11 a value is taken as seconds (which reach 1e11 only in the year 5138).
_MS_FROM: Final = 10**11
_US_FROM: Final = 10**14
_NS_FROM: Final = 10**17

_decode_frame = msgspec.json.Decoder(list[ServerMessage]).decode
_decode_items = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_item = msgspec.json.Decoder(ServerMessage).decode


class _Head(msgspec.Struct):
    """Just enough of a bad item to name its type in the error."""

    ev: Any = None


_decode_head = msgspec.json.Decoder(_Head).decode


def epoch_s(t: int) -> float:
    """Epoch seconds from a Polygon timestamp in ns, µs, ms or s, told apart by magnitude.

    ``t`` >= 1e17 is ns, >= 1e14 µs, >= 1e11 ms, anything smaller is seconds: each unit
    spans 1973 to 5138 within its range, so no real time is ambiguous.
    """
    if t >= _MS_FROM:
        if t >= _NS_FROM:
            return t / 1e9
        if t >= _US_FROM:
            return t / 1e6
        return t / 1e3
    return float(t)


def parse(raw: str | bytes, received_at: float) -> Parsed:
    """Normalize one Polygon stocks frame (a JSON array of ``ev``-tagged objects).

    A real frame (from the official client's mock server)::

        [{"ev":"T","sym":"AAPL","i":"5096","x":10,"p":161.87,"s":300,"c":[14,41],
          "t":1651684192462,"q":4009402,"z":3}]

    becomes ``Trade("AAPL", 161.87, 300.0, 1651684192.462, "polygon", "5096")``.

    Args:
        raw: the frame as received.
        received_at: when it was received (epoch seconds). Unused: every Polygon event
            carries its own SIP time. Kept for the common parser signature.

    Returns:
        The events in frame order, the controls (``Status``, ``LimitUpLimitDown``,
        ``Imbalance``) in frame order, and one ``ParseError`` per bad item (or one for
        the frame when it is not a JSON array).
    """
    try:
        messages = _decode_frame(raw)
        events: list[MarketEvent] = []
        controls: list[Any] = []
        for message in messages:
            event = _normalize(message)
            if event is None:
                controls.append(message)
            else:
                events.append(event)
    except (msgspec.DecodeError, ValueError):
        return _parse_items(raw)
    return Parsed(events, controls, [])


def _normalize(m: ServerMessage) -> MarketEvent | None:
    """The event a message normalizes to; None for controls. Raises ValueError."""
    if isinstance(m, QuoteEvent):
        return Quote(
            m.sym,
            m.bp,
            m.ap,
            float(m.bs * ROUND_LOT_SHARES),
            float(m.as_ * ROUND_LOT_SHARES),
            (m.bp + m.ap) / 2,
            0.0,
            epoch_s(m.t),
            SOURCE,
        )
    if isinstance(m, TradeEvent):
        size = float(m.s) if m.ds is None else float(m.ds)
        return Trade(m.sym, m.p, size, epoch_s(m.t), SOURCE, m.i)
    if isinstance(m, MinuteAgg | SecondAgg):
        return Bar(
            m.sym,
            m.o,
            m.h,
            m.l,
            m.c,
            float(m.v) if m.dv is None else float(m.dv),
            epoch_s(m.s),
            epoch_s(m.e),
            SOURCE,
            60 if isinstance(m, MinuteAgg) else 1,
        )
    return None


def _parse_items(raw: str | bytes) -> Parsed:
    """The slow path: each item decoded alone, so that one bad item spoils only itself."""
    try:
        items = _decode_items(raw)
    except msgspec.DecodeError as exc:
        text = str(exc)
        if text.startswith("JSON is malformed") or text.startswith("Input data was truncated"):
            return Parsed([], [], [ParseError(f"invalid JSON: {text}", raw)])
        return Parsed([], [], [ParseError(f"expected a JSON array of messages: {text}", raw)])
    events: list[MarketEvent] = []
    controls: list[Any] = []
    errors: list[ParseError] = []
    for item in items:
        try:
            message = _decode_item(item)
            event = _normalize(message)
        except (msgspec.DecodeError, ValueError) as exc:
            text = bytes(item).decode("utf-8", "replace")
            errors.append(ParseError(_item_error(item, exc), text))
            continue
        if event is None:
            controls.append(message)
        else:
            events.append(event)
    return Parsed(events, controls, errors)


def _item_error(item: msgspec.Raw, exc: Exception) -> str:
    try:
        ev = _decode_head(item).ev
    except msgspec.DecodeError:
        return "expected a JSON object with an 'ev' field"
    if ev is None:
        return "missing 'ev'"
    if ev not in KNOWN_EVENTS:
        return f"unknown event type {ev!r}"
    if isinstance(exc, msgspec.DecodeError):
        return f"{ev}: {exc}"
    return f"{ev}: invalid value: {exc}"


class StatusKind(enum.Enum):
    """What a ``Status`` means to a client (``classify``)."""

    CONNECTED = "connected"
    AUTHENTICATED = "authenticated"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    AUTH_FAILED = "auth_failed"  # key refused, or the plan is not entitled: terminal
    AUTH_TIMEOUT = "auth_timeout"  # we did not authenticate in time
    LIMIT = "limit"  # max_connections: refused, or kicked by a newer connection
    DISCONNECTED = "disconnected"  # the server is dropping us (slow consumer, ...)
    ERROR = "error"  # any other error status
    INFO = "info"  # anything else: logged, no action


#: Statuses by which the server announces it is dropping the connection. The official
#: client names "slow_consumer" and "force_disconnect" as statuses it has seen.
_DISCONNECTS: Final = frozenset({"slow_consumer", "force_disconnect", "disconnected"})


def classify(status: Status) -> StatusKind:
    """The meaning of a status message (Polygon's documented statuses, and marketstore's
    ``statusHandler``).

    "not authorized" in any status's message (plans without WebSocket access, or a
    channel the plan lacks) is ``AUTH_FAILED``, as is the pre-2021 form
    ``{"status":"error","message":"authentication failed"}``; so is
    ``{"status":"success","message":"authenticated"}`` (the 2019 form) ``AUTHENTICATED``.
    """
    name = status.status
    message = status.message
    if "not authorized" in message.lower():
        return StatusKind.AUTH_FAILED
    if name == "success":
        if message.startswith("subscribed to:"):
            return StatusKind.SUBSCRIBED
        if message.startswith("unsubscribed to:"):
            return StatusKind.UNSUBSCRIBED
        if message == "authenticated":
            return StatusKind.AUTHENTICATED
        return StatusKind.INFO
    if name == "connected":
        return StatusKind.CONNECTED
    if name == "auth_success":
        return StatusKind.AUTHENTICATED
    if name == "auth_failed" or (name == "error" and message == "authentication failed"):
        return StatusKind.AUTH_FAILED
    if name == "auth_timeout":
        return StatusKind.AUTH_TIMEOUT
    if name == "max_connections":
        return StatusKind.LIMIT
    if name in _DISCONNECTS:
        return StatusKind.DISCONNECTED
    if name == "error":
        return StatusKind.ERROR
    return StatusKind.INFO


def subscription_param(status: Status) -> str:
    """The param a subscription ack names: "subscribed to: T.AAPL" -> "T.AAPL"."""
    return status.message.partition(":")[2].strip()
