"""SignalHistory: catch-up by last id and by query, bounded by size and by age."""

from __future__ import annotations

import pytest

from tickcast.model.envelope import Envelope
from tickcast.model.signal import Signal
from tickcast.model.topic import Channel, Topic
from tickcast.signals.history import SignalHistory

T0 = 1_767_225_600.0


def stamped(n: int, symbol: str = "AAPL", ts: float | None = None) -> Envelope:
    signal = Signal("RSI", "BUY", 100.0 + n, symbol, "1m", "2026-01-01T00:00:00.000Z", id=f"s{n}")
    return Envelope(Topic(Channel.SIGNALS, symbol), n, T0 + n if ts is None else ts, signal)


def ids(envelopes: list[Envelope]) -> list[str]:
    return [e.payload.id for e in envelopes]  # type: ignore[union-attr]


def test_after_gives_what_followed_in_order() -> None:
    history = SignalHistory(10, 3600)
    for n in range(1, 6):
        assert history.add(stamped(n, "AAPL" if n % 2 else "MSFT"), T0 + n)
    assert ids(history.after("s2", T0 + 6) or []) == ["s3", "s4", "s5"]
    assert history.after("s5", T0 + 6) == []
    assert history.after("nope", T0 + 6) is None


def test_size_evicts_the_oldest() -> None:
    history = SignalHistory(3, 3600)
    for n in range(1, 6):
        history.add(stamped(n), T0 + n)
    assert len(history) == 3
    assert history.after("s2", T0 + 6) is None  # evicted: the caller must say so
    assert ids(history.after("s3", T0 + 6) or []) == ["s4", "s5"]


def test_window_expires_by_age() -> None:
    history = SignalHistory(100, 10)
    history.add(stamped(1, ts=T0), T0)
    history.add(stamped(2, ts=T0 + 8), T0 + 8)
    assert ids(history.query(T0 + 9)) == ["s1", "s2"]
    assert ids(history.query(T0 + 15)) == ["s2"]
    assert "s1" not in history


def test_duplicate_id_is_refused() -> None:
    history = SignalHistory(10, 3600)
    assert history.add(stamped(1), T0)
    assert not history.add(stamped(1), T0 + 1)
    assert len(history) == 1


def test_query_by_symbol_since_and_limit() -> None:
    history = SignalHistory(100, 3600)
    for n in range(1, 9):
        history.add(stamped(n, "AAPL" if n % 2 else "MSFT"), T0 + n)
    assert ids(history.query(T0 + 9, symbol="AAPL")) == ["s1", "s3", "s5", "s7"]
    assert ids(history.query(T0 + 9, since=T0 + 6)) == ["s6", "s7", "s8"]
    assert ids(history.query(T0 + 9, symbol="MSFT", limit=2)) == ["s6", "s8"]
    assert history.query(T0 + 9, limit=0) == []


def test_size_zero_keeps_nothing() -> None:
    history = SignalHistory(0, 3600)
    assert not history.add(stamped(1), T0)
    assert history.query(T0) == []


def test_a_signal_without_id_is_a_bug() -> None:
    history = SignalHistory(10, 3600)
    anonymous = Envelope(
        Topic(Channel.SIGNALS, "AAPL"),
        1,
        T0,
        Signal("RSI", "BUY", 1.0, "AAPL", "1m", "2026-01-01T00:00:00Z"),
    )
    with pytest.raises(ValueError, match="with an id"):
        history.add(anonymous, T0)


@pytest.mark.parametrize(("size", "window"), [(-1, 10.0), (1, 0.0)])
def test_invalid_bounds(size: int, window: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        SignalHistory(size, window)
