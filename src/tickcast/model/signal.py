"""Trading signals and worker status, in the shapes the signal front will broadcast.

A ``Signal`` is what the ``new_signal`` event carries::

    {"id": "...", "source": "engine", "type": "MA_CROSS", "signal": "BUY", "price": 162.5,
     "symbol": "BTC/USDT", "timeframe": "1m", "timestamp": "2026-01-02T03:04:05.000Z"}

A ``WorkerStatus`` is what ``status_update`` carries::

    {"service": "SignalMonitorWorker", "status": "active", "message": "..."}

Ingestion policy of ``decode_signal`` (for signals arriving from outside, as JSON bytes):
    - at most ``MAX_SIGNAL_BYTES`` bytes, else refused before parsing;
    - a JSON object with exactly the known fields: unknown fields are refused (a typo in a
      producer should fail loudly, not lose data silently); ``id`` and ``source`` may be
      omitted (``id`` defaults to "", ``source`` to "external"); the others are required;
    - strict types: ``price`` is a JSON number (no strings, no booleans), finite and > 0;
      ``signal`` is ``BUY`` or ``SELL``; ``type``, ``symbol``, ``timeframe`` are non-empty
      strings; ``symbol`` is a ticker (``SYMBOL_RE``, matched upper-case, and stored
      upper-case: ``btc/usdt`` becomes ``BTC/USDT``, as every front's subscriptions name
      it); ``timestamp`` is an ISO 8601 date-time with a time zone.
Every refusal raises ``SignalError`` with a message saying what was wrong.

Pure: no I/O, no clock. Timestamps are given, never read.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

Direction = Literal["BUY", "SELL"]
WorkerState = Literal["active", "degraded", "offline"]

#: Largest JSON document ``decode_signal`` accepts, in bytes.
MAX_SIGNAL_BYTES: Final = 4096
#: A signal's symbol, upper-case: the tickers every front accepts in a subscription.
SYMBOL_RE: Final = re.compile(r"[A-Z0-9][A-Z0-9./:_-]{0,31}")


class SignalError(ValueError):
    """A signal document was refused (malformed, wrong type, missing/unknown field, too big)."""


class Signal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One trading signal.

    Attributes:
        type: the strategy that produced it, e.g. ``QUANTUM_CIPHER``, ``MA_CROSS``, ``RSI``.
        signal: ``BUY`` or ``SELL``.
        price: the price it refers to (the bar's close for engine signals).
        symbol: instrument, e.g. ``BTC/USDT``.
        timeframe: bar length label, e.g. ``1m``, ``5m``, ``1h``.
        timestamp: ISO 8601 UTC time of the signal (e.g. ``2026-01-02T03:04:05.000Z``).
        id: an identifier; deterministic for engine signals, "" when a producer gave none.
        source: who produced it: ``engine`` (built in) or ``external`` (ingested).
    """

    type: str
    signal: Direction
    price: float
    symbol: str
    timeframe: str
    timestamp: str
    id: str = ""
    source: str = "external"

    @property
    def ts(self) -> float:
        """No event time for the gateway's latency figure (0: not sampled). A signal's
        ``timestamp`` is its strategy's, not the time an upstream tick arrived."""
        return 0.0


class WorkerStatus(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A worker's state, e.g. ``WorkerStatus("SignalMonitorWorker", "active", "listening")``."""

    service: str
    status: WorkerState
    message: str = ""

    @property
    def ts(self) -> float:
        """No event time for the gateway's latency figure (0: not sampled). A status is
        the gateway's own news, not an upstream tick."""
        return 0.0


_signal_decoder: Final = msgspec.json.Decoder(Signal)
_status_decoder: Final = msgspec.json.Decoder(WorkerStatus)
_encoder: Final = msgspec.json.Encoder()


def iso_utc(ts: float) -> str:
    """Epoch seconds to ISO 8601 UTC with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _check_size(data: bytes) -> None:
    if len(data) > MAX_SIGNAL_BYTES:
        raise SignalError(f"signal document is {len(data)} bytes, limit {MAX_SIGNAL_BYTES}")


def validate_signal(sig: Signal) -> Signal:
    """Check the values a schema cannot: non-empty text, a positive finite price, a time."""
    for name in ("type", "symbol", "timeframe"):
        if not getattr(sig, name).strip():
            raise SignalError(f"signal field {name!r} is empty")
    symbol = sig.symbol.strip().upper()
    if not SYMBOL_RE.fullmatch(symbol):
        raise SignalError(
            f"signal symbol {sig.symbol[:40]!r} is not a ticker (1-32 of A-Z 0-9 . / : _ -)"
        )
    if symbol != sig.symbol:  # subscriptions name symbols upper-case: so does the signal
        sig = msgspec.structs.replace(sig, symbol=symbol)
    if isinstance(sig.price, bool) or not math.isfinite(sig.price) or sig.price <= 0:
        raise SignalError(f"signal price must be a finite number > 0, got {sig.price!r}")
    try:
        moment = datetime.fromisoformat(sig.timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise SignalError(f"signal timestamp is not ISO 8601: {sig.timestamp!r}") from None
    if moment.tzinfo is None:
        raise SignalError(f"signal timestamp has no time zone: {sig.timestamp!r}")
    return sig


def decode_signal(data: bytes) -> Signal:
    """Parse and validate one signal document (see the module's ingestion policy)."""
    _check_size(data)
    try:
        sig = _signal_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise SignalError(f"invalid signal: {exc}") from None
    except msgspec.DecodeError as exc:
        raise SignalError(f"malformed signal JSON: {exc}") from None
    return validate_signal(sig)


def decode_status(data: bytes) -> WorkerStatus:
    """Parse one worker status document (same size limit and strictness as signals)."""
    _check_size(data)
    try:
        status = _status_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise SignalError(f"invalid status: {exc}") from None
    except msgspec.DecodeError as exc:
        raise SignalError(f"malformed status JSON: {exc}") from None
    if not status.service.strip():
        raise SignalError("status field 'service' is empty")
    return status


def encode(item: Signal | WorkerStatus) -> bytes:
    """JSON in the seed's shape (field names as in the structs)."""
    return _encoder.encode(item)
