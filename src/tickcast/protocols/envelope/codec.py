"""Front 2 wire format: every message is ``{"type": ..., "data": {...}, "timestamp": ...}``.

Rules: pure. Money (Decimal) is written as a JSON number, exactly as stored (no float
rounding on the way out). Timestamps are ISO 8601 UTC with milliseconds, like Front 1's.

    {"type": "asset_update", "data": {"symbol": "AAPL", "price": 190.02, "change": 1.52,
     "change_percent": 0.81, "volume": 1200, "high": 190.4, "low": 188.1},
     "timestamp": "2024-01-15T10:30:00.000Z"}
    {"type": "portfolio_update", "data": {"portfolio_id": 123, "name": "Growth",
     "total_value": 10523.5, "daily_change": 120.25, "daily_change_percent": 1.16,
     "unrealized_pnl": 523.5, "realized_pnl": 0, "market_value": 10000,
     "cash": 523.5, "net_deposits": 10000}, "timestamp": "..."}
    {"type": "positions_update", "data": {"portfolio_id": 123, "positions": [
     {"symbol": "AAPL", "quantity": 10, "cost_basis": 1500, "price": 190.02,
      "market_value": 1900.2, "unrealized_pnl": 400.2, "realized_pnl": 0,
      "daily_change": 15.2, "created_at": "...", "updated_at": "..."}]},
     "timestamp": "..."}

Trading signals (``subscribe_signals``, an extension) are ``new_signal`` with the signal
in the shape every front gives it (``model.signal.encode``), and a signal worker's state
(``subscribe_signal_status``) is ``status_update``; both are stamped with the time the
gateway published them (a signal's own time is its ``timestamp`` field)::

    {"type": "new_signal", "data": {"type": "MA_CROSS", "signal": "BUY", "price": 162.5,
     "symbol": "AAPL", "timeframe": "1m", "timestamp": "...", "id": "...",
     "source": "engine"}, "timestamp": "..."}
    {"type": "status_update", "data": {"service": "SignalMonitorWorker",
     "status": "active", "message": "..."}, "timestamp": "..."}

With ``?stamps=1`` (the wire ``realtime+stamps``) every update ends with the latency
stamps of ``protocols/stamps.py``, ``"stamps": {"event_us", "recv_us", "send_us"}``,
as the market feed's do; replies (``connection``, ``pong``, ``error``...) carry none.

The fields after ``daily_change_percent`` in ``portfolio_update``, after
``realized_pnl`` in ``position_update``, and the ``positions_update`` message (sent only
to a client that asked with ``subscribe_positions``) are extensions of the original
protocol; a client that does not know them ignores them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Context, Decimal
from typing import Any, Final

import msgspec

from tickcast.model.envelope import Envelope
from tickcast.model.portfolio import (
    AssetUpdate,
    LivePosition,
    PortfolioValue,
    PositionsUpdate,
    PositionUpdate,
)
from tickcast.model.signal import Signal, WorkerStatus
from tickcast.protocols.native.timefmt import iso_ms
from tickcast.protocols.stamps import Stamps, stamped_wire, stamps_of, with_stamps
from tickcast.protocols.wire import Codec

WIRE: Final = "realtime"
#: ``?stamps=1``: every update with its latency stamps (``protocols/stamps.py``).
WIRE_STAMPS: Final = stamped_wire(WIRE)  # "realtime+stamps"

_encode = msgspec.json.Encoder(decimal_format="number").encode


_ONE = Decimal(1)
#: Enough digits for any stored amount (28 digits, 10 after the point) and then some:
#: the default context's 28 would round a large exact sum.
_EXACT = Context(prec=100)


def _money(value: Decimal) -> Decimal:
    """The exact amount without trailing zeros (``22248.95``, not ``22248.9500000000``)."""
    normal = value.normalize(_EXACT)
    exponent = normal.as_tuple().exponent
    return (
        normal
        if isinstance(exponent, int) and exponent <= 0
        else normal.quantize(_ONE, context=_EXACT)
    )


def _money_or_none(value: Decimal | None) -> Decimal | None:
    return None if value is None else _money(value)


_float = float
#: A whole float's int: ``floor`` is the same int as ``int`` for one, in a third of the
#: time (a builtin's call, not a type's).
_floor = math.floor
#: ``round(x, digits)`` by float, per digits: about 0.4 us a call, and a symbol's change
#: against its previous close takes few values (prices sit on a tick grid). Only
#: nonzero floats are kept: ``-0.0`` equals ``0.0`` and ``2`` equals ``2.0`` as keys,
#: but they print differently.
_ROUNDED: dict[int, dict[float, float]] = {4: {}, 6: {}}
_ROUNDED_MAX: Final = 65_536


def _rounded(value: float, digits: int) -> float:
    """``round(value, digits)``, the same value (and type), from the memo when it can."""
    if type(value) is _float:
        memo = _ROUNDED[digits]
        done = memo.get(value)
        if done is None:
            done = round(value, digits)
            if value and value == value:
                if len(memo) >= _ROUNDED_MAX:
                    memo.clear()
                memo[value] = done
        return done
    return round(value, digits)


def _round(value: float) -> float | int:
    return _floor(value) if type(value) is _float and value.is_integer() else round(value, 6)


class _AssetData(msgspec.Struct, gc=False):
    """``asset_update``'s data, in its fields' order (a struct is cheaper than a dict)."""

    symbol: str
    price: float
    change: float
    change_percent: float
    volume: float | int
    high: float
    low: float


class _AssetMessage(msgspec.Struct, gc=False, tag_field="type", tag="asset_update"):
    data: _AssetData
    timestamp: str


class _StampedAssetMessage(msgspec.Struct, gc=False, tag_field="type", tag="asset_update"):
    """``_AssetMessage`` and its stamps, encoded in one go (``realtime+stamps``)."""

    data: _AssetData
    timestamp: str
    stamps: Stamps


_ROUNDED_6: Final = _ROUNDED[6]
_ROUNDED_4: Final = _ROUNDED[4]


def _asset_message(e: AssetUpdate, stamps: Stamps | None = None) -> bytes:
    """``{"type": "asset_update", "data": {...}, "timestamp": ...}``: change rounded to 6
    decimals, change_percent to 4, a whole volume as an integer (else 6 decimals). The
    memo's hits read inline (``_rounded`` otherwise). With ``stamps``, they are its last
    field (the stamped wire's message, in one go)."""
    value = e.change
    change = _ROUNDED_6.get(value) if type(value) is _float else None
    if change is None:
        change = _rounded(value, 6)
    value = e.change_percent
    percent = _ROUNDED_4.get(value) if type(value) is _float else None
    if percent is None:
        percent = _rounded(value, 4)
    volume = e.volume
    data = _AssetData(
        e.symbol,
        e.price,
        change,
        percent,
        _floor(volume) if type(volume) is _float and volume.is_integer() else round(volume, 6),
        e.high,
        e.low,
    )
    if stamps is None:
        return _encode(_AssetMessage(data, iso_ms(e.ts)))
    return _encode(_StampedAssetMessage(data, iso_ms(e.ts), stamps))


def _portfolio(e: PortfolioValue) -> tuple[str, dict[str, Any]]:
    return "portfolio_update", {
        "portfolio_id": e.portfolio_id,
        "name": e.name,
        "total_value": _money(e.total_value),
        "daily_change": _money(e.daily_change),
        "daily_change_percent": _money(e.daily_change_percent),
        "unrealized_pnl": _money(e.unrealized_pnl),
        "realized_pnl": _money(e.realized_pnl),
        "market_value": _money(e.market_value),
        "cash": _money(e.cash),
        "net_deposits": _money(e.net_deposits),
    }


def _position(e: PositionUpdate) -> tuple[str, dict[str, Any]]:
    return "position_update", {
        "portfolio_id": e.portfolio_id,
        "symbol": e.symbol,
        "quantity": _money(e.quantity),
        "cost_basis": _money(e.cost_basis),
        "realized_pnl": _money(e.realized_pnl),
        "price": _money_or_none(e.price),
        "market_value": _money(e.market_value),
        "unrealized_pnl": _money(e.unrealized_pnl),
    }


def _live(p: LivePosition) -> dict[str, Any]:
    return {
        "symbol": p.symbol,
        "quantity": _money(p.quantity),
        "cost_basis": _money(p.cost_basis),
        "price": _money_or_none(p.price),
        "market_value": _money(p.market_value),
        "unrealized_pnl": _money(p.unrealized_pnl),
        "realized_pnl": _money(p.realized_pnl),
        "daily_change": _money(p.daily_change),
        "created_at": iso_ms(p.created_at),
        "updated_at": iso_ms(p.updated_at),
    }


def _positions(e: PositionsUpdate) -> tuple[str, dict[str, Any]]:
    return "positions_update", {
        "portfolio_id": e.portfolio_id,
        "positions": [_live(p) for p in e.positions],
    }


_MESSAGE: Final[dict[type, Callable[[Any], tuple[str, dict[str, Any]]]]] = {
    PortfolioValue: _portfolio,
    PositionUpdate: _position,
    PositionsUpdate: _positions,
}


class _NewSignal(msgspec.Struct, tag_field="type", tag="new_signal"):
    data: Signal
    timestamp: str


class _StatusUpdate(msgspec.Struct, tag_field="type", tag="status_update"):
    data: WorkerStatus
    timestamp: str


def encode(envelope: Envelope) -> bytes:
    """The envelope of one published update; an ``asset_update`` as ``_asset_message``
    makes it without stamps, inline (no call: the per-tick message)."""
    e: Any = envelope.payload
    if type(e) is AssetUpdate:
        value = e.change
        change = _ROUNDED_6.get(value) if type(value) is _float else None
        if change is None:
            change = _rounded(value, 6)
        value = e.change_percent
        percent = _ROUNDED_4.get(value) if type(value) is _float else None
        if percent is None:
            percent = _rounded(value, 4)
        v = e.volume
        data = _AssetData(
            e.symbol,
            e.price,
            change,
            percent,
            _floor(v) if type(v) is _float and v.is_integer() else round(v, 6),
            e.high,
            e.low,
        )
        return _encode(_AssetMessage(data, iso_ms(e.ts)))
    build = _MESSAGE.get(type(e))
    if build is None:
        return _signal_message(envelope)
    type_, fields = build(e)
    return _encode({"type": type_, "data": fields, "timestamp": iso_ms(e.ts)})


def _signal_message(envelope: Envelope) -> bytes:
    """A signal or a worker's status, stamped with the server's time (they carry no
    event time of the gateway's: their ``ts`` is 0)."""
    event = envelope.payload
    if type(event) is Signal:
        return _encode(_NewSignal(event, iso_ms(envelope.server_ts)))
    if type(event) is WorkerStatus:
        return _encode(_StatusUpdate(event, iso_ms(envelope.server_ts)))
    raise TypeError(f"not a realtime event: {event!r}")


def encode_stamped(envelope: Envelope) -> bytes:
    """The stamped wire's message: an ``asset_update`` with a time encoded with its
    stamps in one go, anything else the plain message with them spliced in
    (``with_stamps``); the same bytes either way."""
    event = envelope.payload
    if type(event) is AssetUpdate:
        ts = event.ts
        if ts:
            return _asset_message(event, stamps_of(ts, envelope.server_ts))
    return with_stamps(encode(envelope), envelope)


#: Both wires, plain and stamped (its messages completed per connection as written).
CODECS: Final[dict[str, Codec]] = {WIRE: encode, WIRE_STAMPS: encode_stamped}


def message(type_: str, data: dict[str, Any], now: float) -> bytes:
    """A control message (connection, pong, error...)."""
    return _encode({"type": type_, "data": data, "timestamp": iso_ms(now)})


def error(text: str, now: float) -> bytes:
    return message("error", {"message": text}, now)
