"""Review of the changes merged on 2026-12-05 (round 4): findings reproduced through the
real code, each marked ``xfail(strict=True)`` until it is fixed. Waits are bounded; no
assertion is on a duration."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tickcast.config.settings import Settings
from tickcast.providers.registry import create
from tickcast.providers.simulator.stream import SimulatorProvider


@pytest.mark.xfail(
    strict=True,
    reason="simulator_interval_ms above simulator_max_backlog_s (both valid: up to 1000 ms "
    "and 0.1 s by default): every wake-up is 'late' to MarketSimulator.advance, which skips "
    "all but the last max_backlog_s of the interval's ticks and counts them as skipped",
)
async def test_a_coarse_simulator_interval_does_not_skip_ticks_on_an_idle_gateway() -> None:
    """docs/configuration.md: simulator_interval_ms = "milliseconds between the simulator's
    wake-ups, each delivering the ticks due since the one before" (0 to 1000 allowed);
    simulator_max_backlog_s (0.1 by default) is "the most simulated time one wake-up
    catches up on when the gateway falls behind". A gateway that keeps up with a 300 ms
    cadence has fallen behind on nothing: every tick must be delivered, none skipped
    (tickcast_skipped_events_total stays 0)."""
    settings = Settings(rate=200, simulator_interval_ms=300)
    provider = create("simulator", settings.upstream)  # type: ignore[arg-type]
    assert isinstance(provider, SimulatorProvider)
    wakeups: list[int] = []
    enough = asyncio.Event()

    def sink(events: Sequence[object]) -> None:
        wakeups.append(len(events))
        if len(wakeups) >= 4:
            enough.set()

    task = asyncio.create_task(provider.run(sink))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(enough.wait(), 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert provider.skipped_events == 0, (provider.skipped_events, wakeups)
