"""Pumps: the writers that flush due outboxes, one per batching window, with no task per
connection.

Rules: the only hub module that touches the event loop. Every outbox of one window
becomes due in the order it became non-empty, so a ``Pump`` (one per window, handed out
by ``Pumps.get``) keeps a FIFO of ``(deadline, writer)`` and one loop timer instead of a
task or a timer per connection. Fronts with different windows get different pumps, each
with its own FIFO; a connection is marked only on its own window's pump. With a window
of 0 the pump flushes every outbox that received data at the end of the current loop
pass, so a connection gets one write per pass however many updates hit it; its FIFO
holds the writers alone (every one is due at once: no deadline to keep, no tuple a
mark), and a writer marked twice (flushed early, then refilled) is flushed at its
first entry, the other finding it empty.

Time is the injected clock's monotonic seconds (``tickcast.clock``), the same time the
connections queue at: deadlines are compared with it, and the loop timer is set from the
delay (``call_later``), never against the loop's own clock.

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

from tickcast.clock import SYSTEM, Clock
from tickcast.observability.faults import Faults


class Writer(Protocol):
    """A connection as the pump sees it."""

    def flush(self, now: float, force: bool) -> None:
        """Write what is due at ``now`` (everything, if ``force``). The pump passes
        ``force`` by position (Python 3.11's fast call path: no keyword-only parameter,
        no keyword at the call)."""

    def due_at(self) -> float | None:
        """When its outbox is due, or None if empty."""


class Pumps:
    """One ``Pump`` per batching window, created on first use; what they share.

    Args:
        clock: the monotonic clock every pump and connection reads (``now``).
        faults: where a writer whose flush raised is reported (``"pump"``; the writers
            behind it go on), and where connections report their own contained failures
            (``"subscriber"``, ``"command"``, ``"timer"``).
        slack_s: outboxes due within this much of a timer firing are flushed with it,
            so one timer serves many connections (adds at most ``slack_s`` of latency
            to none: it only ever flushes early).
        slice_s: the longest one pass may run before yielding to the loop (measured on
            ``time.perf_counter``: how long the loop is held, not a deadline).

    Attributes:
        stall_clock: ``stall_clock(now)`` is how long the event loop has stood still up
            to ``now`` (monotonic seconds), cumulative, the stall in progress included;
            set by the node's loop monitor. A connection does not count that time
            against a client that was blocked meanwhile (the gateway's lag is not the
            client's).
    """

    def __init__(
        self,
        clock: Clock = SYSTEM,
        *,
        faults: Faults | None = None,
        slack_s: float = 0.002,
        slice_s: float = 0.005,
    ) -> None:
        self.clock = clock
        self.faults = Faults() if faults is None else faults
        self.slack_s = slack_s
        self.slice_s = slice_s
        self.stall_clock: Callable[[float], float] | None = None
        self._by_window: dict[float, Pump] = {}

    def get(self, window_s: float) -> Pump:
        """The pump of ``window_s`` (seconds; 0 = flush each loop pass)."""
        pump = self._by_window.get(window_s)
        if pump is None:
            if window_s < 0:
                raise ValueError(f"a batching window is >= 0 s, not {window_s}")
            pump = self._by_window[window_s] = Pump(window_s, self)
        return pump

    @property
    def windows(self) -> tuple[float, ...]:
        """The windows that have a pump, in the order they were first used."""
        return tuple(self._by_window)

    @property
    def flushes(self) -> int:
        """Flush calls made by every pump (one per connection per batch)."""
        return sum(p.flushes for p in self._by_window.values())

    def stalled(self, now: float) -> float:
        """Seconds the event loop has stood still up to ``now``, ever (0 without a clock)."""
        clock = self.stall_clock
        return 0.0 if clock is None else clock(now)

    def close(self) -> None:
        """Stop every pump (their timers; what is queued is dropped)."""
        for pump in self._by_window.values():
            pump.close()


class Pump:
    """Schedules the outbox flushes of one batching window (from ``Pumps.get``).

    Attributes:
        window_s: the window every outbox marked here uses.
        clock, faults: its ``Pumps``'s.
        flushes: flush calls made (one per connection per batch).
        behind: window 0: a pass ran out of ``slice_s`` with writers left, and no pass
            since has flushed every writer it found within the slice (the gateway is
            behind: a connection then adds no early write, it conflates).
    """

    __slots__ = (
        "_continued",
        "_loop",
        "_now",
        "_pumps",
        "_queue",
        "_soon",
        "_timer",
        "behind",
        "clock",
        "faults",
        "flushes",
        "window_s",
    )

    def __init__(self, window_s: float, pumps: Pumps) -> None:
        self.window_s = window_s
        self._pumps = pumps
        self.clock = pumps.clock
        self.faults = pumps.faults
        self.flushes = 0
        self.behind = False
        self._continued = False  # this window-0 pass goes on from one that ran out of time
        self._queue: deque[tuple[float, Writer]] = deque()
        self._now: deque[Writer] = deque()  # window 0's FIFO: every writer in it is due
        self._timer: asyncio.TimerHandle | None = None
        self._soon: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def stalled(self, now: float) -> float:
        """Seconds the event loop has stood still up to ``now``, ever (``Pumps.stalled``)."""
        return self._pumps.stalled(now)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def mark(self, writer: Writer, deadline: float) -> None:
        """``writer``'s outbox just became non-empty and is due at ``deadline``
        (monotonic seconds)."""
        if self.window_s == 0:
            self._now.append(writer)
            if self._soon is None:
                self._soon = self.loop.call_soon(self._run)
            return
        self._queue.append((deadline, writer))
        if self._timer is None and self._soon is None:
            # A pending continuation (_soon) re-arms the timer when it is done.
            self._arm(deadline, self.clock.monotonic())

    def _arm(self, deadline: float, now: float) -> None:
        self._timer = self.loop.call_later(max(0.0, deadline - now), self._run)

    def _run(self) -> None:
        self._soon = self._timer = None
        if self.window_s == 0:
            self._run_now()
            return
        now = self.clock.monotonic()
        horizon = now + self._pumps.slack_s
        queue = self._queue
        give_up = time.perf_counter() + self._pumps.slice_s
        flushed = 0
        popleft = queue.popleft
        while queue:
            entry = popleft()
            deadline, writer = entry
            if deadline > horizon:
                queue.appendleft(entry)
                break
            due = writer.due_at()
            # A writer whose outbox is due later than this entry was flushed early (a
            # control reply) and refilled: its newer entry is further back in the queue.
            if due is not None and due <= deadline:
                try:
                    writer.flush(now, True)  # force
                except Exception as exc:  # one writer's bug must not strand the writers behind it
                    self.faults.report("pump", exc, writer=type(writer).__name__)
                flushed += 1
                if not flushed & 31 and time.perf_counter() > give_up:
                    break
        self.flushes += flushed
        if queue:
            if self.window_s == 0 or queue[0][0] <= horizon:
                self._soon = self.loop.call_soon(self._run)
            else:
                self._arm(queue[0][0], now)

    def _run_now(self) -> None:
        """Window 0's pass: flush every writer marked, in order, within ``slice_s``."""
        now = self.clock.monotonic()
        queue = self._now
        give_up = time.perf_counter() + self._pumps.slice_s
        flushed = 0
        popleft = queue.popleft
        while queue:
            writer = popleft()
            if writer.due_at() is not None:  # None: flushed since it was marked
                try:
                    writer.flush(now, True)  # force
                except Exception as exc:  # one writer's bug must not strand the writers behind it
                    self.faults.report("pump", exc, writer=type(writer).__name__)
                flushed += 1
                if not flushed & 31 and time.perf_counter() > give_up:
                    break
        self.flushes += flushed
        self.behind = bool(queue) or self._continued
        self._continued = bool(queue)
        if queue:
            self._soon = self.loop.call_soon(self._run)

    def close(self) -> None:
        for handle in (self._timer, self._soon):
            if handle is not None:
                handle.cancel()
        self._timer = self._soon = None
        self._queue.clear()
        self._now.clear()
