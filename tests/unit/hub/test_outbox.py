"""Outbox: conflation by key, reliable appends, overflow verdicts, the batching window.

Items are plain strings: the outbox is generic and never looks inside them.
"""

from __future__ import annotations

import pytest

from tickcast.hub.outbox import Outbox, Overflow


def test_quotes_conflate_within_window() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=1000)
    box.put("AAPL 150.0", now=0.00, key="quotes.AAPL")
    box.put("AAPL 150.1", now=0.05, key="quotes.AAPL")
    assert box.flush(now=0.10) == ["AAPL 150.1"]


def test_conflated_quote_keeps_the_position_of_the_first() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=1000)
    box.put("AAPL 1", now=0.00, key="quotes.AAPL")
    box.put("MSFT 1", now=0.01, key="quotes.MSFT")
    box.put("trade 1", now=0.02)
    box.put("AAPL 2", now=0.03, key="quotes.AAPL")
    assert box.flush(now=0.10) == ["AAPL 2", "MSFT 1", "trade 1"]


def test_reliable_items_append_in_order_and_are_never_conflated() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=1000)
    for i in range(5):
        assert box.put(f"trade {i}", now=0.01 * i) is None
    box.put("trade 0", now=0.06)  # an identical payload is still a distinct event
    assert box.flush(now=0.10) == [f"trade {i}" for i in range(5)] + ["trade 0"]
    assert box.conflated == 0


def test_conflated_counts_replaced_items() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=1000)
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")
    box.put("AAPL 2", now=0.0, key="quotes.AAPL")
    box.put("AAPL 3", now=0.0, key="quotes.AAPL")
    box.put("MSFT 1", now=0.0, key="quotes.MSFT")
    assert box.conflated == 2
    assert len(box) == 2


def test_reliable_item_overflows_when_full() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=2)
    assert box.put("trade 1", now=0.0) is None
    assert box.put("trade 2", now=0.0) is None
    verdict = box.put("trade 3", now=0.0)
    assert isinstance(verdict, Overflow)
    assert verdict.pending == 2
    assert repr(verdict) == "Overflow(pending=2)"
    # The refused item was not queued and nothing already queued was dropped.
    assert box.flush(now=0.0, force=True) == ["trade 1", "trade 2"]


def test_new_key_overflows_when_full() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=2)
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")
    box.put("MSFT 1", now=0.0, key="quotes.MSFT")
    verdict = box.put("TSLA 1", now=0.0, key="quotes.TSLA")
    assert isinstance(verdict, Overflow)
    assert box.flush(now=0.0, force=True) == ["AAPL 1", "MSFT 1"]


def test_replacing_an_existing_key_never_overflows_when_full() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=2)
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")
    box.put("trade 1", now=0.0)
    assert box.put("AAPL 2", now=0.0, key="quotes.AAPL") is None
    assert box.flush(now=0.1) == ["AAPL 2", "trade 1"]


def test_window_zero_is_due_immediately() -> None:
    box: Outbox[str] = Outbox(window_s=0.0, max_items=10)
    box.put("trade 1", now=5.0)
    assert box.next_flush() == 5.0
    assert box.flush(now=5.0) == ["trade 1"]


def test_next_flush_is_first_put_plus_window() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=10)
    assert box.next_flush() is None
    box.put("trade 1", now=2.0)
    box.put("trade 2", now=2.05)  # later puts do not move the deadline
    assert box.next_flush() == pytest.approx(2.1)


def test_flush_before_deadline_returns_nothing_and_keeps_items() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=10)
    box.put("trade 1", now=1.0)
    assert box.flush(now=1.05) == []
    assert len(box) == 1
    assert box.flush(now=1.1) == ["trade 1"]


def test_forced_flush_before_deadline_takes_the_batch() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=10)
    box.put("trade 1", now=1.0)
    assert box.flush(now=1.0, force=True) == ["trade 1"]
    assert len(box) == 0


def test_flush_empties_and_resets_the_deadline() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=10)
    box.put("trade 1", now=1.0)
    box.flush(now=1.1)
    assert box.next_flush() is None
    assert box.flush(now=9.9, force=True) == []
    # The next window starts at the next put, not at the previous deadline.
    box.put("trade 2", now=3.0)
    assert box.next_flush() == pytest.approx(3.1)


def test_discard_drops_the_pending_item_with_that_key() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=10)
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")
    box.put("MSFT 1", now=0.0, key="quotes.MSFT")
    assert box.discard("quotes.AAPL") is True
    assert box.discard("quotes.AAPL") is False
    assert box.discard("quotes.TSLA") is False
    assert box.next_flush() == pytest.approx(0.1)
    assert box.flush(now=0.1) == ["MSFT 1"]


def test_discarding_the_last_item_clears_the_deadline() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=10)
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")
    box.discard("quotes.AAPL")
    assert box.next_flush() is None
    assert len(box) == 0


def test_discard_frees_room_for_a_new_item() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=1)
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")
    assert isinstance(box.put("trade 1", now=0.0), Overflow)
    box.discard("quotes.AAPL")
    assert box.put("trade 1", now=0.0) is None


@pytest.mark.parametrize(
    ("window_s", "max_items", "message"),
    [
        (-0.001, 10, "window_s must be >= 0"),
        (0.1, 0, "max_items must be >= 1"),
        (0.1, -5, "max_items must be >= 1"),
    ],
)
def test_invalid_constructor_arguments_raise(window_s: float, max_items: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Outbox(window_s=window_s, max_items=max_items)
