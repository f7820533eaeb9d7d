"""Review of the changes merged on 2026-12-05 (round 4): findings reproduced through the
real code, each marked ``xfail(strict=True)`` until it is fixed. Waits are bounded; no
assertion is on a duration."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tickcast.config.settings import Settings
from tickcast.model.market import Quote
from tickcast.providers.registry import create
from tickcast.providers.simulator.market import SimulatorConfig
from tickcast.providers.simulator.stream import SimulatorProvider


async def test_a_coarse_simulator_interval_does_not_skip_ticks_on_an_idle_gateway() -> None:
    """docs/configuration.md: simulator_interval_ms = "milliseconds between the simulator's
    wake-ups, each delivering the ticks due since the one before" (0 to 1000 allowed);
    simulator_max_backlog_s (0.1 by default) is "the most simulated time one wake-up
    catches up on, beyond its own interval, when the gateway falls behind". A gateway
    that keeps up with a 300 ms cadence has fallen behind on nothing: every tick must be
    delivered, none skipped. The market's clock moves exactly one interval per wake-up,
    so a busy machine cannot make a wake-up late."""
    settings = Settings(rate=200, simulator_interval_ms=300)
    made = create("simulator", settings.upstream)  # type: ignore[arg-type]
    assert isinstance(made, SimulatorProvider)
    assert made.tick_interval_s == 0.3
    now = [1_700_000_000.0]

    def clock() -> float:
        now[0] += 0.3
        return now[0]

    config = SimulatorConfig(rate=200, max_backlog_s=settings.simulator_max_backlog_s)
    provider = SimulatorProvider(config, clock=clock, tick_interval_s=made.tick_interval_s)
    wakeups: list[int] = []
    enough = asyncio.Event()

    def sink(events: Sequence[object]) -> None:
        wakeups.append(sum(type(e) is Quote for e in events))
        if len(wakeups) >= 4:
            enough.set()

    task = asyncio.create_task(provider.run(sink))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(enough.wait(), 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert provider.skipped_events == 0, (provider.skipped_events, wakeups)
    assert all(59 <= n <= 61 for n in wakeups[:4]), wakeups  # 0.3 s at 200 ticks/s
