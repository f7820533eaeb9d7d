"""Outbox: conflation by key, reliable appends, overflow verdicts, the batching window,
the budget in items and in bytes.

Items are plain strings: the outbox is generic and never looks inside them (a byte budget
counts them with the ``size`` it is given: ``len`` here).
"""

from __future__ import annotations

import pytest

from tickcast.hub.outbox import HELD, SUPERSEDES, Outbox, Overflow


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
    assert repr(verdict) == "Overflow(pending=2, pending_bytes=0)"
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


def test_discard_where_drops_conflatable_and_reliable_items_and_keeps_the_order() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=10, size=len)
    box.put("a quote", now=0.0, key="quotes.AAPL\na")
    box.put("b quote", now=0.0, key="quotes.AAPL\nb")
    box.put("a trade", now=0.0)
    box.put("b trade", now=0.0)
    assert box.discard_where(lambda item: item.startswith("a ")) == 2
    assert box.pending_bytes == len("b quote") + len("b trade")
    assert box.discard_where(lambda item: False) == 0
    assert box.flush(now=0.1) == ["b quote", "b trade"]


def test_discard_where_everything_clears_the_deadline() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=10)
    box.put("a trade", now=0.0)
    assert box.discard_where(lambda item: True) == 1
    assert box.next_flush() is None
    assert len(box) == 0


# -- the byte budget


def test_bytes_are_counted_on_put_replace_discard_and_flush() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=100, max_bytes=1000, size=len)
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")  # 6 bytes
    box.put("trade 1", now=0.0)  # 7
    assert box.pending_bytes == 13
    box.put("AAPL 100", now=0.0, key="quotes.AAPL")  # replaces 6 with 8
    assert box.pending_bytes == 15
    box.discard("quotes.AAPL")
    assert box.pending_bytes == 7
    box.flush(now=0.1)
    assert box.pending_bytes == 0


def test_an_item_past_the_byte_budget_is_refused_and_nothing_pending_changes() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=100, max_bytes=20, size=len)
    assert box.put("0123456789", now=0.0) is None
    assert box.put("012345678", now=0.0) is None  # 19 bytes: fits
    verdict = box.put("xy", now=0.0)  # 21: does not
    assert isinstance(verdict, Overflow)
    assert (verdict.pending, verdict.pending_bytes) == (2, 19)
    assert box.put("x", now=0.0) is None  # 20: fits exactly
    assert box.flush(now=0.0, force=True) == ["0123456789", "012345678", "x"]


def test_a_replacement_is_taken_even_past_the_byte_budget() -> None:
    # Conflation adds no item: refusing it would turn a quote into a slow-client verdict.
    box: Outbox[str] = Outbox(window_s=0.1, max_items=100, max_bytes=10, size=len)
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")
    assert box.put("AAPL 1.000001", now=0.0, key="quotes.AAPL") is None
    assert box.pending_bytes == 13
    assert box.conflated == 1


def test_an_empty_outbox_takes_one_item_larger_than_the_budget() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=100, max_bytes=4, size=len)
    assert box.put("a book snapshot", now=0.0) is None
    assert isinstance(box.put("x", now=0.0), Overflow)
    assert box.flush(now=0.1) == ["a book snapshot"]
    assert box.put("x", now=0.2) is None


def test_zero_max_bytes_means_no_byte_limit() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=100, max_bytes=0, size=len)
    for _ in range(50):
        assert box.put("x" * 1000, now=0.0) is None
    assert box.pending_bytes == 50_000


def test_without_size_items_cost_nothing() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=3, max_bytes=1)
    for i in range(3):
        assert box.put(f"trade {i}", now=0.0) is None
    assert box.pending_bytes == 0
    assert isinstance(box.put("trade 3", now=0.0), Overflow)  # the item budget still holds


def test_clear_drops_everything_and_says_how_much() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=100, max_bytes=100, size=len)
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")
    box.put("trade 1", now=0.0)
    assert box.clear() == 2
    assert (len(box), box.pending_bytes, box.next_flush()) == (0, 0, None)
    assert box.flush(now=1.0, force=True) == []


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


def test_a_negative_byte_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes must be >= 0"):
        Outbox(window_s=0.1, max_items=10, max_bytes=-1)


# -- chunked flushes and forced puts


def test_a_flush_with_max_bytes_takes_the_oldest_items_that_fit_and_keeps_the_rest_due() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=100, max_bytes=0, size=len)
    for item in ("aaaa", "bbbb", "cccc", "dddd"):
        box.put(item, now=0.0)
    assert box.flush(now=0.1, max_bytes=9) == ["aaaa", "bbbb"]
    assert box.pending_bytes == 8
    assert box.next_flush() == pytest.approx(0.1)  # the rest is still due
    assert box.flush(now=0.1, max_bytes=9) == ["cccc", "dddd"]
    assert box.next_flush() is None


def test_a_chunked_flush_always_takes_one_item_even_if_larger() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=100, size=len)
    box.put("a long item", now=0.0)
    box.put("b", now=0.0)
    assert box.flush(now=0.1, max_bytes=3) == ["a long item"]
    assert box.flush(now=0.1, max_bytes=3) == ["b"]


def test_a_chunked_flush_keeps_conflation_keys_of_what_stays() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=100, size=len)
    box.put("trade 1", now=0.0)
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")
    assert box.flush(now=0.1, max_bytes=7) == ["trade 1"]
    box.put("AAPL 2", now=0.2, key="quotes.AAPL")  # still pending: replaced in place
    assert box.flush(now=0.2) == ["AAPL 2"]


def test_a_forced_put_goes_past_the_budget() -> None:
    box: Outbox[str] = Outbox(window_s=0.1, max_items=1, max_bytes=4, size=len)
    box.put("aaaa", now=0.0)
    assert isinstance(box.put("bbbb", now=0.0), Overflow)
    assert box.put("bbbb", now=0.0, force=True) is None
    assert (len(box), box.pending_bytes) == (2, 8)


# -- degraded: every conflatable key at the degraded interval (conflate_all, restore)


def test_degraded_a_per_tick_client_gets_latest_value_conflation() -> None:
    box: Outbox[str] = Outbox(window_s=0.0, max_items=1000)  # batch 0: every tick
    box.conflate_all(0.5)
    assert box.degraded
    assert box.put("AAPL 1", now=1.0, key="quotes.AAPL") is None  # the first goes at once
    assert box.flush(now=1.0) == ["AAPL 1"]
    assert box.put("AAPL 2", now=1.1, key="quotes.AAPL") is HELD
    assert box.put("AAPL 3", now=1.2, key="quotes.AAPL") is HELD  # replaces the held one
    assert box.put("trade 1", now=1.2) is None  # reliable items are untouched
    assert box.next_release() == 1.5
    assert box.flush(now=1.2) == ["trade 1"]
    assert box.flush(now=1.5) == ["AAPL 3"]


def test_restore_unrates_the_keys_and_queues_what_they_held() -> None:
    box: Outbox[str] = Outbox(window_s=0.0, max_items=1000)
    box.conflate_all(0.5)
    box.put("AAPL 1", now=1.0, key="quotes.AAPL")
    box.flush(now=1.0)
    assert box.put("AAPL 2", now=1.1, key="quotes.AAPL") is HELD
    assert box.restore(now=1.2) is True
    assert not box.degraded
    assert not box.rated("quotes.AAPL")
    assert box.flush(now=1.2) == ["AAPL 2"]
    assert box.put("AAPL 3", now=1.3, key="quotes.AAPL") is None  # per tick again
    assert box.restore(now=1.3) is False


def test_degraded_a_clients_own_rate_wins_when_slower_and_comes_back() -> None:
    box: Outbox[str] = Outbox(window_s=0.0, max_items=1000)
    box.set_rate("quotes.SLOW", 1.0, now=0.0)  # 1 a second: slower than degraded
    box.set_rate("quotes.FAST", 100.0, now=0.0)  # faster: the degraded interval applies
    box.conflate_all(0.5)
    for key in ("quotes.SLOW", "quotes.FAST"):
        box.put(f"{key} 1", now=1.0, key=key)
    box.flush(now=1.0)
    box.put("quotes.SLOW 2", now=1.1, key="quotes.SLOW")
    box.put("quotes.FAST 2", now=1.1, key="quotes.FAST")
    assert box.flush(now=1.5) == ["quotes.FAST 2"]
    assert box.flush(now=2.0) == ["quotes.SLOW 2"]
    # a rate asked for while degraded is the client's own once restored
    box.set_rate("quotes.NEW", 10.0, now=2.0)
    box.restore(now=2.0)
    assert box.rated("quotes.SLOW")
    assert box.rated("quotes.FAST")
    assert box.rated("quotes.NEW")
    box.put("quotes.FAST 3", now=2.0, key="quotes.FAST")  # its interval (10 ms) has passed
    assert box.flush(now=2.0) == ["quotes.FAST 3"]
    assert box.put("quotes.FAST 4", now=2.001, key="quotes.FAST") is HELD
    assert box.next_release() == pytest.approx(2.01)


def test_degraded_an_unsubscribed_key_is_forgotten() -> None:
    box: Outbox[str] = Outbox(window_s=0.0, max_items=1000)
    box.conflate_all(0.5)
    box.put("AAPL 1", now=1.0, key="quotes.AAPL")
    box.flush(now=1.0)
    box.put("AAPL 2", now=1.1, key="quotes.AAPL")
    assert box.discard("quotes.AAPL")
    assert box.restore(now=1.2) is False
    assert box.flush(now=1.2, force=True) == []


def test_deadline_is_none_exactly_while_nothing_is_pending() -> None:
    # The connection's hot path reads ``deadline`` instead of ``len``: the two must agree
    # after every operation, rated and degraded keys included.
    import random

    rng = random.Random(7)
    box: Outbox[str] = Outbox(0.1, 6, 64, size=len)
    now = 0.0
    for _ in range(3000):
        now += rng.choice((0.0, 0.01, 0.05, 0.2))
        op = rng.randrange(10)
        key = rng.choice(("a", "b", "c", None))
        if op < 4:
            box.put("x" * rng.randrange(1, 20), now, key, force=rng.random() < 0.2)
        elif op == 4:
            box.flush(now, force=rng.random() < 0.5, max_bytes=rng.choice((0, 10, 30)))
        elif op == 5 and key is not None:
            box.set_rate(key, rng.choice((None, 2.0, 20.0)), now)
        elif op == 6 and key is not None:
            box.discard(key)
        elif op == 7:
            box.discard_where(lambda item: len(item) % 3 == 0)
        elif op == 8:
            if box.degraded:
                box.restore(now)
            else:
                box.conflate_all(0.3)
        elif rng.random() < 0.1:
            box.clear()
        assert (box.deadline is None) == (len(box) == 0)
        assert box.next_flush() == box.deadline


def test_a_single_item_flush_takes_it_and_starts_its_keys_interval() -> None:
    box: Outbox[str] = Outbox(0.0, 10, 0, size=len)
    box.set_rate("q", 10.0, 0.0)
    assert box.put("v1", 0.0, "q") is None
    assert box.flush(0.0, max_bytes=1) == ["v1"]  # one item: taken whole, whatever its size
    assert box.deadline is None
    assert box.pending_bytes == 0
    assert len(box) == 0
    assert box.put("v2", 0.05, "q") is HELD  # the interval started at the flush
    assert box.put("r", 0.05) is None
    assert box.flush(0.05) == ["r"]
    assert box.flush(0.1) == ["v2"]


# -- not conflating (a window-0 connection whose client takes its data)


def test_not_conflating_answers_supersedes_and_touches_nothing() -> None:
    box: Outbox[str] = Outbox(window_s=0, max_items=1000, size=len)
    box.conflating = False
    assert box.put("AAPL 1", now=0.0, key="quotes.AAPL") is None
    assert box.put("trade 1", now=0.0) is None
    assert box.put("AAPL 2", now=0.0, key="quotes.AAPL") is SUPERSEDES
    assert box.put("MSFT 1", now=0.0, key="quotes.MSFT") is None  # another key: queued
    assert box.conflated == 0
    assert box.pending_bytes == len("AAPL 1") + len("trade 1") + len("MSFT 1")
    assert box.flush(now=0.0) == ["AAPL 1", "trade 1", "MSFT 1"]
    # written: the successor now queues behind what went out
    assert box.put("AAPL 2", now=0.0, key="quotes.AAPL") is None
    assert box.flush(now=0.0) == ["AAPL 2"]


def test_not_conflating_still_conflates_a_forced_put() -> None:
    box: Outbox[str] = Outbox(window_s=0, max_items=1000)
    box.conflating = False
    box.put("AAPL 1", now=0.0, key="quotes.AAPL")
    assert box.put("AAPL 2", now=0.0, key="quotes.AAPL", force=True) is None
    assert box.flush(now=0.0) == ["AAPL 2"]
    assert box.conflated == 1


def test_conflating_is_the_default_at_every_window() -> None:
    for window_s in (0.0, 0.1):
        box: Outbox[str] = Outbox(window_s=window_s, max_items=1000)
        assert box.conflating
        box.put("AAPL 1", now=0.0, key="quotes.AAPL")
        assert box.put("AAPL 2", now=0.0, key="quotes.AAPL") is None
        assert box.flush(now=window_s) == ["AAPL 2"]
