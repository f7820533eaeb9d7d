"""Signal and worker-status model: the seed's JSON shape, and the strict ingestion policy."""

from __future__ import annotations

import json

import msgspec
import pytest

from tickcast.model.signal import (
    MAX_SIGNAL_BYTES,
    Signal,
    SignalError,
    WorkerStatus,
    decode_signal,
    decode_status,
    encode,
    iso_utc,
)

GOOD = {
    "type": "QUANTUM_CIPHER",
    "signal": "BUY",
    "price": 162.50,
    "symbol": "BTC/USDT",
    "timeframe": "1m",
    "timestamp": "2026-01-02T03:04:05.000Z",
}


def doc(**changes: object) -> bytes:
    body: dict[str, object] = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not DROP}).encode()


DROP = object()


def test_seed_payload_decodes_with_defaults() -> None:
    sig = decode_signal(doc())
    assert sig == Signal(
        "QUANTUM_CIPHER", "BUY", 162.5, "BTC/USDT", "1m", "2026-01-02T03:04:05.000Z"
    )
    assert sig.id == ""
    assert sig.source == "external"


def test_integer_price_is_a_number() -> None:
    assert decode_signal(doc(price=162)).price == 162.0


def test_encode_gives_the_seed_shape_and_round_trips() -> None:
    sig = Signal("RSI", "SELL", 10.25, "AAPL", "5m", "2026-01-02T03:04:05.000Z", "x-1", "engine")
    body = json.loads(encode(sig))
    assert body == {
        "type": "RSI",
        "signal": "SELL",
        "price": 10.25,
        "symbol": "AAPL",
        "timeframe": "5m",
        "timestamp": "2026-01-02T03:04:05.000Z",
        "id": "x-1",
        "source": "engine",
    }
    assert decode_signal(encode(sig)) == sig


def test_signal_is_frozen() -> None:
    sig = decode_signal(doc())
    with pytest.raises(AttributeError):
        sig.price = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"not json", b"[1, 2]", b"null", b'{"type": "X",}'],
    ids=["empty", "truncated", "text", "array", "null", "trailing-comma"],
)
def test_malformed_json_is_refused(data: bytes) -> None:
    with pytest.raises(SignalError):
        decode_signal(data)


@pytest.mark.parametrize(
    "changes",
    [
        {"price": "162.5"},
        {"price": True},
        {"price": None},
        {"signal": "HOLD"},
        {"signal": "buy"},
        {"symbol": 42},
        {"timestamp": 1700000000},
        {"type": ["X"]},
    ],
    ids=lambda c: next(iter(c)) + "=" + repr(next(iter(c.values()))),
)
def test_wrong_types_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(SignalError, match="invalid signal"):
        decode_signal(doc(**changes))


@pytest.mark.parametrize("field", ["type", "signal", "price", "symbol", "timeframe", "timestamp"])
def test_missing_required_field_is_refused(field: str) -> None:
    with pytest.raises(SignalError, match=field):
        decode_signal(doc(**{field: DROP}))


def test_unknown_field_is_refused() -> None:
    with pytest.raises(SignalError, match="confidence"):
        decode_signal(doc(confidence=0.9))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"price": 0}, "price"),
        ({"price": -1.5}, "price"),
        ({"price": 1e999}, "price"),
        ({"symbol": "  "}, "symbol"),
        ({"symbol": "BTC USDT"}, "not a ticker"),
        ({"symbol": "-BTC"}, "not a ticker"),
        ({"symbol": "A" * 33}, "not a ticker"),
        ({"symbol": "AA\nPL"}, "not a ticker"),
        ({"type": ""}, "type"),
        ({"timeframe": ""}, "timeframe"),
        ({"timestamp": "yesterday"}, "ISO 8601"),
        ({"timestamp": "2026-01-02T03:04:05"}, "time zone"),
    ],
)
def test_bad_values_are_refused(changes: dict[str, object], match: str) -> None:
    data = doc(**changes) if changes != {"price": 1e999} else doc().replace(b"162.5", b"1e999")
    with pytest.raises(SignalError, match=match):
        decode_signal(data)


@pytest.mark.parametrize("given", ["btc/usdt", " BTC/USDT ", "Btc/Usdt"])
def test_symbol_is_stored_upper_case_as_subscriptions_name_it(given: str) -> None:
    assert decode_signal(doc(symbol=given)).symbol == "BTC/USDT"


def test_offset_timestamp_is_accepted() -> None:
    assert decode_signal(doc(timestamp="2026-01-02T05:04:05+02:00")).timestamp.endswith("+02:00")


def test_oversized_input_is_refused_before_parsing() -> None:
    padded = doc(symbol="S" * MAX_SIGNAL_BYTES)
    assert len(padded) > MAX_SIGNAL_BYTES
    with pytest.raises(SignalError, match="limit"):
        decode_signal(padded)
    # The limit is the size, not the content: garbage over the limit says "limit" too.
    with pytest.raises(SignalError, match="limit"):
        decode_signal(b"{" * (MAX_SIGNAL_BYTES + 1))


def test_input_at_the_limit_is_parsed() -> None:
    base = doc()
    filler = MAX_SIGNAL_BYTES - len(base)
    padded = base[:-1] + b" " * filler + b"}"
    assert len(padded) == MAX_SIGNAL_BYTES
    assert decode_signal(padded).symbol == "BTC/USDT"


def test_signal_error_is_a_value_error() -> None:
    assert issubclass(SignalError, ValueError)


def test_status_round_trip_and_validation() -> None:
    status = WorkerStatus("SignalMonitorWorker", "degraded", "redis slow")
    assert json.loads(encode(status)) == {
        "service": "SignalMonitorWorker",
        "status": "degraded",
        "message": "redis slow",
    }
    assert decode_status(encode(status)) == status
    assert decode_status(b'{"service": "W", "status": "offline"}').message == ""
    for bad in (
        b'{"service": "W", "status": "sleeping"}',
        b'{"service": "W"}',
        b'{"service": "", "status": "active"}',
        b'{"service": "W", "status": "active", "extra": 1}',
        b"{",
        b" " * (MAX_SIGNAL_BYTES + 1),
    ):
        with pytest.raises(SignalError):
            decode_status(bad)


def test_iso_utc() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1767323045.25) == "2026-01-02T03:04:05.250Z"


def test_msgspec_validation_error_does_not_leak() -> None:
    # Callers catch one error type; msgspec's own never escapes.
    try:
        decode_signal(doc(price="x"))
    except msgspec.ValidationError:  # pragma: no cover - the failure this guards against
        pytest.fail("msgspec.ValidationError leaked")
    except SignalError:
        pass
