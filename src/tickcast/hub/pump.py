"""Pump: the one writer that flushes due outboxes, with no task per connection.

Rules: the only hub module that touches the event loop. Every outbox has the same
window, so outboxes become due in the order they became non-empty: a FIFO of
``(deadline, writer)`` and one loop timer replace a task or a timer per connection.
With a window of 0 the pump flushes every outbox that received data at the end of the
current loop pass, so a connection gets one write per pass however many updates hit it.

A pass never holds the loop for more than ``slice_s``: the rest of the due outboxes are
flushed in the next loop iteration, after reads, ingest and handshakes have had their
turn. Without that bound, one late pass makes every window due at once, the population of
connections synchronizes into a single burst, and the loop stalls for the whole burst
(measured: 5,000 connections, one 100 ms pass per window).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from tickcast.observability.faults import Faults


class Writer(Protocol):
    """A connection as the pump sees it."""

    def flush(self, now: float, *, force: bool) -> None:
        """Write what is due at ``now`` (everything, if ``force``)."""

    def due_at(self) -> float | None:
        """When its outbox is due, or None if empty."""


class Pump:
    """Schedules outbox flushes.

    Args:
        window_s: the batching window every outbox uses; 0 = flush each loop pass.
        slack_s: outboxes due within this much of a timer firing are flushed with it,
            so one timer serves many connections (adds at most ``slack_s`` of latency
            to none: it only ever flushes early).
        slice_s: the longest one pass may run before yielding to the loop.

    Attributes:
        now: monotonic time of the current publish pass, set by the node before it
            publishes, read by connections when they queue (saves a clock call per put).
        flushes: flush calls made (one per connection per batch).
        stall_clock: ``stall_clock(now)`` is how long the event loop has stood still up
            to ``now`` (monotonic seconds), cumulative, the stall in progress included;
            set by the node's loop monitor. A connection does not count that time
            against a client that was blocked meanwhile (the gateway's lag is not the
            client's).
        faults: where a writer whose flush raised is reported (``"pump"``; the writers
            behind it go on), and where its connections report their own contained
            failures (``"subscriber"``, ``"command"``, ``"timer"``).
    """

    def __init__(
        self,
        window_s: float,
        *,
        slack_s: float = 0.002,
        slice_s: float = 0.005,
        faults: Faults | None = None,
    ) -> None:
        self.window_s = window_s
        self.slack_s = slack_s
        self.slice_s = slice_s
        self.faults = Faults() if faults is None else faults
        self.now = 0.0
        self.flushes = 0
        self.stall_clock: Callable[[float], float] | None = None
        self._queue: deque[tuple[float, Writer]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._soon: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def stalled(self, now: float) -> float:
        """Seconds the event loop has stood still up to ``now``, ever (0 without a clock)."""
        clock = self.stall_clock
        return 0.0 if clock is None else clock(now)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def mark(self, writer: Writer, deadline: float) -> None:
        """``writer``'s outbox just became non-empty and is due at ``deadline``."""
        self._queue.append((deadline, writer))
        if self.window_s == 0:
            if self._soon is None:
                self._soon = self.loop.call_soon(self._run)
        elif self._timer is None and self._soon is None:
            # A pending continuation (_soon) re-arms the timer when it is done.
            self._timer = self.loop.call_at(deadline, self._run)

    def _run(self) -> None:
        self._soon = self._timer = None
        loop = self.loop
        now = loop.time()
        horizon = now + self.slack_s
        queue = self._queue
        give_up = time.perf_counter() + self.slice_s
        flushed = 0
        while queue:
            deadline, writer = queue[0]
            if deadline > horizon:
                break
            queue.popleft()
            due = writer.due_at()
            # A writer whose outbox is due later than this entry was flushed early (a
            # control reply) and refilled: its newer entry is further back in the queue.
            if due is not None and due <= deadline:
                try:
                    writer.flush(now, force=True)
                except Exception as exc:  # one writer's bug must not strand the writers behind it
                    self.faults.report("pump", exc, writer=type(writer).__name__)
                flushed += 1
                if not flushed & 31 and time.perf_counter() > give_up:
                    break
        self.flushes += flushed
        if queue:
            if self.window_s == 0 or queue[0][0] <= horizon:
                self._soon = loop.call_soon(self._run)
            else:
                self._timer = loop.call_at(queue[0][0], self._run)

    def close(self) -> None:
        for handle in (self._timer, self._soon):
            if handle is not None:
                handle.cancel()
        self._timer = self._soon = None
        self._queue.clear()
