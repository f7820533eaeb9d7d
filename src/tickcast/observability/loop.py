"""LoopMonitor: measures how far behind the event loop runs, and says when it is overloaded.

Rules: the driver of ``overload.OverloadDetector``. A timer fires every ``interval_s``;
how late it fires, on the pumps' injected monotonic clock (``Pumps.clock``, the one
connections judge clients by), is the loop's lag (a busy loop, a long callback, a
process the OS did not schedule). Each lateness goes to the detector and to the lag
histogram; every pump reads the stall time through ``stalled_at`` (``Pumps.stall_clock``,
shared by the pumps of every window), so that a client is never judged slow for time the
gateway itself stood still.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tickcast.hub.pump import Pumps
from tickcast.observability.overload import OverloadDetector, Transition


class LoopMonitor:
    """A periodic lateness probe on the running loop.

    Args:
        detector: turns lateness into overload episodes and stall time.
        pumps: receive the cumulative stall time; their clock is the one read.
        observe: called with every lateness, in seconds (a histogram's ``observe``).
        on_transition: called when an overload episode starts or ends.
        shed: how many events the gateway has left out to keep up, ever (skipped
            simulator ticks); an increase between probes counts as an overload.
        interval_s: seconds between probes.
    """

    def __init__(
        self,
        detector: OverloadDetector,
        pumps: Pumps,
        *,
        observe: Callable[[float], None] | None = None,
        on_transition: Callable[[Transition, OverloadDetector], None] | None = None,
        shed: Callable[[], int] | None = None,
        interval_s: float = 0.05,
    ) -> None:
        self.detector = detector
        self.pumps = pumps
        self.clock = pumps.clock
        self.observe = observe
        self.on_transition = on_transition
        self.shed = shed
        self._shed_seen = 0
        self.interval_s = interval_s
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def stalled_at(self, now: float) -> float:
        """How long the loop has stood still up to ``now``, the stall in progress included.

        A stall is only measured when the probe finally fires; a connection that judges
        a client in the same loop pass, before the probe, must still see it: the time
        past the probe's due time counts already.
        """
        pending = now - self._due - self.detector.tolerance_s
        return self.detector.stalled_s + (pending if pending > 0 else 0.0)

    def start(self) -> None:
        """Start probing (call from the running loop); does nothing if running."""
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._due = self.clock.monotonic() + self.interval_s
        self._handle = self._loop.call_later(self.interval_s, self._fire)
        self.pumps.stall_clock = self.stalled_at

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.pumps.stall_clock = None

    def _fire(self) -> None:
        loop = self._loop
        if loop is None:  # closed meanwhile
            return
        now = self.clock.monotonic()
        lateness = max(0.0, now - self._due)
        detector = self.detector
        shedding = False
        if self.shed is not None:
            shed = self.shed()
            shedding, self._shed_seen = shed > self._shed_seen, shed
        transition = detector.observe(lateness, now, shedding=shedding)
        if self.observe is not None:
            self.observe(lateness)
        if transition is not None and self.on_transition is not None:
            self.on_transition(transition, detector)
        self._due = now + self.interval_s
        self._handle = loop.call_later(self.interval_s, self._fire)
