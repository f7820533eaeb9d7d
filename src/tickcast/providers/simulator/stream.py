"""SimulatorProvider: runs the pure MarketSimulator on the event loop.

Rules: this is the simulator's only I/O. It reads the wall clock, sleeps, and hands each
non-empty batch to the sink; every market decision stays in ``market.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Final

from tickcast.model.market import MarketEvent
from tickcast.providers.base import EventSink, Provider
from tickcast.providers.calendar import AlwaysOpen, MarketCalendar
from tickcast.providers.simulator.market import MarketSimulator, SimulatorConfig
from tickcast.providers.simulator.pacing import Pacer

#: Bounds of the default batch cadence, in seconds: 5 ms at high rates, 100 ms at the slowest.
MIN_TICK_INTERVAL_S: Final = 0.005
#: Wake-ups land this long after a scheduled tick time, so that the tick is due.
_WAKE_AFTER_TICK_S: Final = 0.0005
#: When it falls behind, the simulator (publishing and fan-out included) takes at most
#: this share of the event loop's time; the rest writes to clients and serves requests.
MAX_DUTY: Final = 0.5


def default_tick_interval_s(rate: float) -> float:
    """The batch cadence for ``rate`` ticks/s: one tick per wake-up, at most 200 a second."""
    return max(MIN_TICK_INTERVAL_S, 1.0 / rate)


class SimulatorProvider(Provider):
    """The built-in market as a provider: seeded quotes, trades, books and bars.

    Args:
        config: universe, seed and rate; the defaults when None.
        calendar: when equities trade; ``AlwaysOpen`` when None.
        clock: wall clock in epoch seconds UTC, read at construction (the simulated
            market's start) and on every wake-up.
        tick_interval_s: seconds between wake-ups, each delivering one batch of the
            events due since the previous one; None picks ``default_tick_interval_s``
            (5 ms at 200 ticks/s and above, 1/rate below: one wake-up per tick).

    Raises:
        ValueError: ``tick_interval_s`` is not positive.
    """

    name = "simulator"

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        calendar: MarketCalendar | None = None,
        clock: Callable[[], float] = time.time,
        *,
        tick_interval_s: float | None = None,
    ) -> None:
        config = config if config is not None else SimulatorConfig()
        if tick_interval_s is None:
            tick_interval_s = default_tick_interval_s(config.rate)
        if not tick_interval_s > 0:
            raise ValueError(f"tick_interval_s must be > 0 seconds: {tick_interval_s}")
        self._clock = clock
        self._interval = tick_interval_s
        self._symbols = frozenset(config.symbols)
        calendar = calendar if calendar is not None else AlwaysOpen()
        if config.max_backlog_s is not None:
            # A wake-up on time catches up one interval: only what lies beyond it is a
            # stall, so the backlog it may catch up on counts from there (an interval
            # longer than the backlog skipped most of every wake-up's ticks).
            backlog = config.max_backlog_s + tick_interval_s
            config = dataclasses.replace(config, max_backlog_s=backlog)
        self._start_ts = clock()
        self._simulator = MarketSimulator(config, calendar, self._start_ts)
        self._pacer = Pacer(MAX_DUTY)

    @property
    def symbols(self) -> frozenset[str]:
        """The configured universe."""
        return self._symbols

    @property
    def simulator(self) -> MarketSimulator:
        """The pure market this provider drives (for metrics such as ``skipped_ticks``)."""
        return self._simulator

    @property
    def skipped_events(self) -> int:
        """Ticks skipped because a wake-up came more than ``max_backlog_s`` late."""
        return self._simulator.skipped_ticks

    @property
    def tick_interval_s(self) -> float:
        """Seconds between wake-ups."""
        return self._interval

    async def run(self, sink: EventSink) -> None:
        """Deliver the simulator's events to ``sink`` every ``tick_interval_s`` until cancelled.

        Wake-ups are scheduled on absolute loop times so that the cadence does not drift,
        and in phase with the simulator's tick schedule (tick k at start + k / rate), so
        that a tick is delivered right after its timestamp, not up to an interval later.
        After a stall longer than one interval the schedule restarts from now rather
        than firing a burst of catch-up wake-ups (``advance`` catches up on the events).
        When the loop is saturated (a wake-up comes a whole interval late, and at least
        ``MIN_TICK_INTERVAL_S``: on a 1 ms cadence a millisecond late is jitter), a wake-up
        simulates only the newest ticks that fit in ``MAX_DUTY`` of the time since the
        previous one (``Pacer``); the others are skipped and counted in
        ``skipped_events``. While the loop keeps up, nothing is capped.
        Cancelling ends it at its next await, with no state left half-updated.
        """
        loop = asyncio.get_running_loop()
        interval = self._interval
        simulator = self._simulator
        advance = simulator.advance
        clock = self._clock
        pacer = self._pacer
        started = clock()
        simulator.resume(started)  # the time since construction is not a stall
        phase = (started - self._start_ts) % interval
        deadline = loop.time() + (interval - phase) + _WAKE_AFTER_TICK_S - interval
        # Work is timed with perf_counter: the loop's clock may tick in whole ms (uvloop).
        perf = time.perf_counter
        previous = perf()
        late = max(interval, MIN_TICK_INTERVAL_S)  # how late a saturated loop wakes us
        saturated = False  # the previous wake-up came ``late`` or more behind
        while True:
            woke = perf()
            ticks, skipped = simulator.ticks, simulator.skipped_ticks
            cap = pacer.max_ticks(max(woke - previous, interval)) if saturated else None
            events = advance(clock(), cap)
            if events:
                sink(events)
            previous = woke
            simulated = simulator.ticks - ticks - (simulator.skipped_ticks - skipped)
            pacer.record(simulated, perf() - woke)
            deadline += interval
            delay = deadline - loop.time()
            saturated = delay < -late
            if delay < 0:
                deadline -= delay  # fell behind: resume the cadence from now
                delay = 0.0
            await asyncio.sleep(delay)

    def snapshot(self) -> Sequence[MarketEvent]:
        """The latest quote and full book of every symbol that has ticked."""
        return self._simulator.snapshot()
