"""bench/cluster.py's pure parts: inputs, percentiles, the schedule, the cost table, and
that each way really does its work (no clocks asserted)."""

from __future__ import annotations

import math

import pytest

from support.benchmod import load_bench
from tickcast.bus import wire

bc = load_bench("bench_cluster", "cluster.py")


def test_quote_batches_are_sized_and_repeatable() -> None:
    batches = bc.quote_batches(5, 3)
    assert [len(b) for b in batches] == [3, 3, 3, 3, 3]
    assert batches == bc.quote_batches(5, 3)
    assert batches != bc.quote_batches(5, 3, seed=2)
    times = [q.ts for b in batches for q in b]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    assert all(q.symbol in bc.SYMBOLS for b in batches for q in b)


def test_percentile_by_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert bc.percentile(values, 0.5) == 3.0
    assert bc.percentile(values, 0.99) == 5.0
    assert bc.percentile(values, 0.0) == 1.0
    assert bc.percentile(list(range(1, 101)), 0.99) == 99
    assert math.isnan(bc.percentile([], 0.5))


def test_schedule_is_absolute() -> None:
    assert bc.due(10.0, 0, 500.0) == 10.0
    assert bc.due(10.0, 500, 500.0) == pytest.approx(11.0)
    assert bc.due(10.0, 3, 2.0) == pytest.approx(11.5)


def test_cost_units_and_table() -> None:
    costs = [
        bc.Cost("local", 10, 100, 1_000_000.0),
        bc.Cost("lead", 10, 100, 1_500_000.0),
        bc.Cost("follow", 10, 100, 2_000_000.0),
    ]
    assert costs[0].us_per_message == pytest.approx(10.0)
    assert costs[0].us_per_quote == pytest.approx(1.0)
    header, rule, row = bc.cost_table(costs)
    assert header.startswith("| quotes per batch")
    assert rule.startswith("|---:")
    assert row == "| 10 | 10.00 | 15.00 | 20.00 | 5.00 | 1.50 | 2.00 | 1.00 / 1.50 / 2.00 |"


def test_lead_sends_one_batch_per_publish_and_the_follower_applies_them_all() -> None:
    batches = bc.quote_batches(4, 10)
    sent: list[bytes] = []
    bc.time_lead(batches, lambda _kind, data: sent.append(data))
    assert len(sent) == 4
    decoded = [wire.decode(d) for d in sent]
    assert all(isinstance(b, wire.Batch) for b in decoded)
    assert [b.n for b in decoded] == [1, 2, 3, 4]  # type: ignore[union-attr]
    assert all(len(b.items) == 10 for b in decoded)  # type: ignore[union-attr]
    bc.time_follow(sent)  # raises unless every batch was applied in order


def test_follow_says_when_a_message_was_not_applied() -> None:
    sent: list[bytes] = []
    bc.time_lead(bc.quote_batches(2, 2), lambda _kind, data: sent.append(data))
    with pytest.raises(RuntimeError, match="applied 2 of 3"):
        bc.time_follow([sent[0], sent[0], sent[1]])  # the duplicate is ignored


def test_costs_reports_three_ways_per_size() -> None:
    out = bc.costs([1, 5], quotes=20, rounds=1)
    assert [(c.way, c.size, c.messages) for c in out] == [
        ("local", 1, 20), ("lead", 1, 20), ("follow", 1, 20),
        ("local", 5, 4), ("lead", 5, 4), ("follow", 5, 4),
    ]  # fmt: skip
    assert all(c.ns > 0 for c in out)
