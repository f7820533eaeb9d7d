"""Per-key rates (``max_rate``): the pure ``RateGate`` and the outbox that uses it.

A rated key goes out at most once per interval, always with its latest value; reliable
items and unrated keys are untouched; the earliest held value's due time is what a
driver waits for (``next_release``). Items are plain strings; times are monotonic
seconds passed in: no clock, no event loop.
"""

from __future__ import annotations

import itertools
import math

import pytest

from tickcast.hub.outbox import HELD, Outbox
from tickcast.hub.rategate import RateGate, interval_of

AAPL = "quotes.AAPL"
MSFT = "quotes.MSFT"


def rated(window_s: float = 0.0, max_rate: float = 2.0, *keys: str) -> Outbox[str]:
    box: Outbox[str] = Outbox(window_s=window_s, max_items=1000)
    for key in keys or (AAPL,):
        box.set_rate(key, max_rate, now=0.0)
    return box


# -- the gate alone


def test_interval_is_the_inverse_of_the_rate_and_bad_rates_are_a_bug() -> None:
    assert interval_of(4) == 0.25
    assert interval_of(1000) == 0.001
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError, match="finite number above 0"):
            interval_of(bad)


def test_gate_admits_a_never_released_key_and_holds_within_its_interval() -> None:
    gate: RateGate[str] = RateGate()
    gate.set_rate(AAPL, 2)
    assert gate.admits(AAPL, 0.0)
    gate.sent([AAPL], 0.0)
    assert not gate.admits(AAPL, 0.49)
    assert gate.hold(AAPL, "AAPL 1") is None
    assert gate.hold(AAPL, "AAPL 2") == "AAPL 1"  # the latest value wins
    assert gate.replaced == 1
    assert gate.next_due() == 0.5
    assert not gate.admits(AAPL, 0.6)  # held: the held value goes first
    assert gate.release(0.49) == []
    assert gate.release(0.5) == [(AAPL, "AAPL 2")]
    assert gate.next_due() is None


def test_gate_next_due_is_the_earliest_held_key() -> None:
    gate: RateGate[str] = RateGate()
    gate.set_rate(AAPL, 1)
    gate.set_rate(MSFT, 4)
    gate.sent([AAPL, MSFT, -1, "quotes.UNRATED"], 0.0)  # unrated keys are ignored
    gate.hold(AAPL, "AAPL 1")
    gate.hold(MSFT, "MSFT 1")
    assert gate.next_due() == 0.25
    assert gate.release(0.3) == [(MSFT, "MSFT 1")]
    assert gate.next_due() == 1.0
    assert len(gate) == 1


def test_gate_new_rate_counts_from_the_last_release() -> None:
    gate: RateGate[str] = RateGate()
    gate.set_rate(AAPL, 1)
    gate.sent([AAPL], 10.0)
    gate.hold(AAPL, "AAPL 1")
    assert gate.next_due() == 11.0
    gate.set_rate(AAPL, 10)
    assert gate.next_due() == pytest.approx(10.1)


def test_gate_unrating_a_key_returns_its_held_value_and_forget_drops_it() -> None:
    gate: RateGate[str] = RateGate()
    gate.set_rate(AAPL, 1)
    gate.set_rate(MSFT, 1)
    gate.sent([AAPL, MSFT], 0.0)
    gate.hold(AAPL, "AAPL 1")
    gate.hold(MSFT, "MSFT 1")
    assert gate.set_rate(AAPL, None) == "AAPL 1"
    assert AAPL not in gate
    assert gate.admits  # unrated keys are never asked; re-rated, AAPL starts afresh
    gate.set_rate(AAPL, 1)
    assert gate.admits(AAPL, 0.1)
    assert gate.forget(MSFT) == "MSFT 1"
    assert MSFT not in gate
    assert gate.next_due() is None
    assert gate.clear() == []


# -- the outbox with rated keys


def test_a_rated_key_goes_out_at_most_once_per_interval_with_the_latest_value() -> None:
    box = rated(window_s=0.0, max_rate=2.0)
    assert box.put("AAPL 1", now=0.0, key=AAPL) is None  # never sent: admitted
    assert box.flush(now=0.0) == ["AAPL 1"]
    for i, t in enumerate((0.1, 0.2, 0.3, 0.4), start=2):
        assert box.put(f"AAPL {i}", now=t, key=AAPL) is HELD
    assert len(box) == 0
    assert box.held == 1
    assert box.next_flush() is None
    assert box.next_release() == 0.5
    assert box.flush(now=0.49, force=True) == []  # a forced flush never breaks a rate
    assert box.flush(now=0.5) == ["AAPL 5"]  # the latest value, at the due time
    assert box.conflated == 3
    assert box.next_release() is None


def test_a_rated_key_sends_at_most_its_rate_over_a_stream_and_ends_on_the_latest() -> None:
    box = rated(window_s=0.0, max_rate=4.0)
    sent: list[tuple[float, str]] = []
    now = 0.0
    for i in range(1000):  # 1,000 quotes a second for one second, a flush after each
        now = i / 1000
        box.put(f"AAPL {i}", now=now, key=AAPL)
        sent += [(now, item) for item in box.flush(now=now)]
    while (due := box.next_release()) is not None:  # the stream stops: what is held goes
        sent += [(due, item) for item in box.flush(now=due)]
    times = [t for t, _ in sent]
    assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(times))
    assert len(sent) <= 4 + 1
    assert sent[-1][1] == "AAPL 999"


def test_a_value_after_a_quiet_interval_is_not_held_and_keeps_the_window() -> None:
    box = rated(window_s=0.1, max_rate=2.0)
    box.put("AAPL 1", now=0.0, key=AAPL)
    assert box.flush(now=0.1) == ["AAPL 1"]
    assert box.put("AAPL 2", now=0.7, key=AAPL) is None  # 0.6 s after the release
    assert box.next_flush() == pytest.approx(0.8)  # the batching window as before
    assert box.put("AAPL 3", now=0.75, key=AAPL) is None  # conflates while pending
    assert box.flush(now=0.8) == ["AAPL 3"]
    assert box.put("AAPL 4", now=0.85, key=AAPL) is HELD
    assert box.next_release() == pytest.approx(1.3)


def test_reliable_items_and_unrated_keys_are_untouched_and_ride_a_due_release() -> None:
    box = rated(window_s=0.1, max_rate=1.0)
    box.put("AAPL 1", now=0.0, key=AAPL)
    box.put("trade 1", now=0.0)
    assert box.flush(now=0.1) == ["AAPL 1", "trade 1"]
    assert box.put("AAPL 2", now=0.2, key=AAPL) is HELD
    for i in range(2, 5):
        assert box.put(f"trade {i}", now=0.2 + i / 100) is None  # every trade is kept
    assert box.put("MSFT 1", now=0.25, key=MSFT) is None
    assert box.flush(now=0.32) == ["trade 2", "trade 3", "trade 4", "MSFT 1"]
    assert box.put("trade 5", now=0.5) is None
    # the pending batch is not due until 0.6, but a release due at 1.1 takes it along
    assert box.flush(now=1.1) == ["trade 5", "AAPL 2"]


def test_a_snapshot_of_a_new_subscription_goes_with_a_forced_flush() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=1000)
    box.set_rate(AAPL, 1.0, now=5.0)
    assert box.put("subscribed", now=5.0) is None
    assert box.put("AAPL snapshot", now=5.0, key=AAPL) is None
    assert box.flush(now=5.0, force=True) == ["subscribed", "AAPL snapshot"]
    assert box.put("AAPL 2", now=5.01, key=AAPL) is HELD


def test_a_release_into_a_chunked_flush_starts_the_interval_of_what_it_took() -> None:
    box: Outbox[str] = Outbox(window_s=0.0, max_items=1000, size=len)
    box.set_rate(AAPL, 1.0, now=0.0)
    box.put("AAPL 1", now=0.0, key=AAPL)
    box.put("trade 1", now=0.0)
    assert box.flush(now=0.0, max_bytes=1) == ["AAPL 1"]  # one item per chunk
    assert box.flush(now=0.0, max_bytes=1) == ["trade 1"]
    assert box.put("AAPL 2", now=0.5, key=AAPL) is HELD
    assert box.next_release() == 1.0


def test_raising_a_rate_makes_the_held_value_due_sooner_and_removing_it_queues_it() -> None:
    box = rated(window_s=0.1, max_rate=1.0)
    box.put("AAPL 1", now=0.0, key=AAPL)
    box.flush(now=0.1)
    box.put("AAPL 2", now=0.2, key=AAPL)
    assert box.next_release() == pytest.approx(1.1)
    box.set_rate(AAPL, 4.0, now=0.2)
    assert box.next_release() == pytest.approx(0.35)
    assert box.set_rate(AAPL, None, now=0.3) is True  # queued like a quote, never lost
    assert not box.rated(AAPL)
    assert box.next_release() is None
    assert box.next_flush() == pytest.approx(0.4)
    assert box.flush(now=0.4) == ["AAPL 2"]
    assert box.put("AAPL 3", now=0.41, key=AAPL) is None  # unrated again
    assert box.set_rate(MSFT, None, now=0.5) is False


def test_discard_forgets_the_rate_and_the_held_value() -> None:
    box = rated(window_s=0.0, max_rate=1.0)
    box.put("AAPL 1", now=0.0, key=AAPL)
    box.flush(now=0.0)
    box.put("AAPL 2", now=0.1, key=AAPL)
    assert box.discard(AAPL) is True
    assert not box.rated(AAPL)
    assert box.held == 0
    assert box.next_release() is None
    assert box.put("AAPL 3", now=0.2, key=AAPL) is None  # a new subscription: no rate


def test_clear_and_discard_where_drop_held_values_too() -> None:
    box = rated(0.0, 1.0, AAPL, MSFT)
    for key in (AAPL, MSFT):
        box.put(f"{key} 1", now=0.0, key=key)
    box.flush(now=0.0)
    box.put("AAPL 2", now=0.1, key=AAPL)
    box.put("MSFT 2", now=0.1, key=MSFT)
    box.put("trade 1", now=0.1)
    assert box.discard_where(lambda item: item.startswith("AAPL")) == 1
    assert box.held == 1
    assert box.clear() == 2  # the trade, and MSFT's held quote
    assert box.held == 0
    assert box.next_release() is None


def test_an_outbox_without_rates_has_no_gate() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=1000)
    assert box.put("AAPL 1", now=0.0, key=AAPL) is None
    assert box.next_release() is None
    assert box.held == 0
    assert not box.rated(AAPL)
    with pytest.raises(ValueError, match="above 0"):
        box.set_rate(AAPL, 0, now=0.0)
