"""Pacer: when simulating falls behind, a wake-up simulates only what fits in its share
of the loop's time; while it keeps up, it does not bind."""

from __future__ import annotations

import pytest

from tickcast.providers.calendar import AlwaysOpen
from tickcast.providers.simulator.market import MarketSimulator, SimulatorConfig
from tickcast.providers.simulator.pacing import Pacer


def test_no_cap_before_the_cost_of_a_tick_is_known() -> None:
    assert Pacer(0.5).max_ticks(0.005) is None


def test_the_cap_is_the_duty_share_of_the_elapsed_time_at_the_measured_cost() -> None:
    pacer = Pacer(0.5)
    pacer.record(ticks=1000, work_s=0.010)  # 10 us a tick
    assert pacer.cost_s == pytest.approx(10e-6)
    assert pacer.max_ticks(0.020) in (999, 1000)  # half of 20 ms at 10 us (float division)
    assert pacer.max_ticks(0.0) == 1  # always at least one


def test_a_simulator_that_keeps_up_is_not_capped() -> None:
    # 20,000 ticks/s at 10 us each is 20 % of a core: the 100 ticks due every 5 ms fit.
    pacer = Pacer(0.5)
    pacer.record(ticks=100, work_s=0.001)
    cap = pacer.max_ticks(0.005)
    assert cap is not None
    assert cap >= 100


def test_the_cost_is_smoothed_and_ignores_empty_wake_ups() -> None:
    pacer = Pacer(0.5)
    pacer.record(ticks=100, work_s=0.001)
    pacer.record(ticks=0, work_s=0.5)  # nothing simulated: no measurement
    assert pacer.cost_s == pytest.approx(10e-6)
    pacer.record(ticks=100, work_s=0.003)  # a slower wake-up moves it a fifth of the way
    assert pacer.cost_s == pytest.approx(10e-6 + 0.2 * 20e-6)


def test_duty_must_be_a_share() -> None:
    with pytest.raises(ValueError, match="duty"):
        Pacer(0)
    with pytest.raises(ValueError, match="duty"):
        Pacer(1.5)


def test_advance_with_max_ticks_simulates_the_newest_and_counts_the_rest_skipped() -> None:
    config = SimulatorConfig(symbols=("AAPL",), rate=1000.0, max_backlog_s=None)
    sim = MarketSimulator(config, AlwaysOpen(), 1_000_000.0)
    events = sim.advance(1_000_001.0, max_ticks=100)  # 1,000 ticks due
    assert sim.skipped_ticks == 900
    assert sim.ticks == 1000
    assert events
    assert min(e.ts for e in events) > 1_000_000.9  # only the last tenth of the second
