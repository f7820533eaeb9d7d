"""SignalService: trading signals as a stream of the hub, from every source, with their
history and the signal workers' statuses.

Rules: this is the signal side's I/O (a periodic task, the Redis source's task); every
decision is pure (``engine.Engine``, ``history.SignalHistory``, ``intake.read_signal``,
``worker_statuses``). It listens through a tap on the node's publisher
(``on_published``, registered by the composition root) and publishes through the same
``Publisher`` as the market data:

- every published ``Bar`` goes to the engine (when there is one); the signals it gives
  are published too. A tap never publishes: taps run inside ``publish``, and a publish
  from a tap would show the signal batch to the taps after this one before the bar
  batch that caused it (and, through a bus, would wait on the bus from inside a
  delivery). So the engine's signals are published on the next loop pass
  (``schedule``, ``loop.call_soon`` by default), in the order they were found;
- every published ``Signal`` envelope goes into the ``SignalHistory``, whoever
  published it, so the history is exactly what the hub carried.

Ingestion (``submit``, ``ingest``): a signal without an id gets one
(``<source>-<wall ms>-<n>``); a signal whose id the history holds is refused
(``Duplicate``: a producer's retry must not be published twice). Signals are reliable:
none is dropped silently. Every refusal is counted (``refused``, by source and reason),
and a document refused from a pushed source (Redis: no one to answer) is a dead letter,
kept for inspection (``dead_letters``) and counted by reason.

Worker status: one ``WorkerStatus`` per source (``engine`` when the engine runs,
``redis`` when configured; see ``worker_statuses`` for what each state means) and the
aggregate ``SignalMonitorWorker``. They are computed from the sources' real health by
``check`` (every ``check_interval_s``, and at once when a source says its state
changed) and published on the ``signal_status`` channel only when a status changes:
one publish per change.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Final, Protocol

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tickcast.clock import Clock
from tickcast.hub.publisher import Publisher, listens_to
from tickcast.model.envelope import Envelope
from tickcast.model.market import Bar
from tickcast.model.signal import Signal, WorkerState, WorkerStatus
from tickcast.observability.faults import Faults
from tickcast.signals.engine import Engine
from tickcast.signals.history import SignalHistory
from tickcast.signals.intake import Refused, read_signal

log = logging.getLogger("tickcast.signals")

#: The aggregate worker's name, as the seed's ``status_update`` carries it.
MONITOR: Final = "SignalMonitorWorker"
#: The built-in engine's status name.
ENGINE: Final = "engine"
#: Longest raw document kept per dead letter, in characters.
MAX_RAW_CHARS: Final = 4096
#: Dead letters kept for inspection (the newest).
DEAD_LETTERS: Final = 1000
STATES: Final[tuple[WorkerState, ...]] = ("active", "degraded", "offline")


class Duplicate(ValueError):
    """A signal whose id the history already holds."""

    def __init__(self, signal_id: str) -> None:
        super().__init__(f"a signal with id {signal_id!r} was published already")
        self.signal_id = signal_id


class Source(Protocol):
    """A signal source the service watches: its name and its health now."""

    @property
    def name(self) -> str: ...

    def status(self) -> WorkerStatus: ...

    def events(self) -> dict[str, int]:
        """Counts of what happened to it, by event (``connected``, ``lost``...), ever."""
        ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class SignalDeadLetter(msgspec.Struct, frozen=True):
    """A document a source pushed that was refused.

    Attributes:
        source: where it came from (``redis``).
        reason: ``too_large``, ``malformed``, ``invalid`` (``intake.py``) or ``duplicate``.
        error: what was wrong, in the decoder's words.
        raw: the document (UTF-8 text, or hex when it is not UTF-8), truncated.
        ts: when it was refused, epoch seconds.
    """

    source: str
    reason: str
    error: str
    raw: str
    ts: float


def engine_status(running: bool, feed_ready: bool) -> WorkerStatus:
    """The engine's health: active while bars arrive from a live feed; degraded while
    the feed is not ready (no market data yet, or no provider feeding the hub: the
    engine runs but has nothing to work on)."""
    if not running:
        return WorkerStatus(ENGINE, "offline", "stopped")
    if feed_ready:
        return WorkerStatus(ENGINE, "active", "computing signals from the live bars")
    return WorkerStatus(ENGINE, "degraded", "the market feed is not ready: no live bars")


def worker_statuses(sources: Sequence[WorkerStatus]) -> WorkerStatus:
    """The aggregate ``SignalMonitorWorker`` from the sources' statuses.

    - **active**: every source is active (or there is none to watch: signals arrive
      over HTTP only, which is always open);
    - **degraded**: some source is not active, at least one is;
    - **offline**: no source is active: nothing can produce signals on its own.
    """
    if not sources:
        return WorkerStatus(MONITOR, "active", "no source to watch: signals over HTTP only")
    unhealthy = [s for s in sources if s.status != "active"]
    if not unhealthy:
        names = ", ".join(s.service for s in sources)
        return WorkerStatus(MONITOR, "active", f"every source is active ({names})")
    detail = "; ".join(f"{s.service} {s.status}: {s.message}" for s in unhealthy)
    if len(unhealthy) == len(sources):
        return WorkerStatus(MONITOR, "offline", f"no source can produce signals: {detail}")
    return WorkerStatus(MONITOR, "degraded", detail)


def _raw_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.hex()
    return text[:MAX_RAW_CHARS]


class SignalService:
    """The signal stream's producer side (see the module docstring).

    Args:
        publisher: where signals and statuses are published (the node's).
        history: where published signals are kept for catch-up.
        clock: the node's clock (wall time: ids, history ages, dead letters).
        engine: the built-in rules; None runs none.
        feed_ready: whether the market feed delivers (the engine's health).
        faults: where a failed periodic check is reported (``"service"``).
        check_interval_s: seconds between two health checks.
        schedule: runs a callable soon, outside the current tap (``loop.call_soon``).
        dead_letter_capacity: dead letters kept (the newest).
        max_symbols: distinct symbols outside the feed's universe that signals may name;
            a signal for one more is refused (``too_many_symbols``). Every symbol is a
            topic the hub keeps (its sequence, history, last value) for the process's
            life, and a producer may name any: this keeps that memory bounded.
        is_known: whether a symbol is in the feed's universe (never counted).
    """

    def __init__(
        self,
        publisher: Publisher,
        history: SignalHistory,
        *,
        clock: Clock,
        engine: Engine | None = None,
        feed_ready: Callable[[], bool] = lambda: True,
        faults: Faults | None = None,
        check_interval_s: float = 1.0,
        schedule: Callable[[Callable[[], None]], object] | None = None,
        dead_letter_capacity: int = DEAD_LETTERS,
        max_symbols: int = 10_000,
        is_known: Callable[[str], bool] = lambda _: False,
    ) -> None:
        self.publisher = publisher
        # in a cluster: whether this node publishes what it decides alone (its workers'
        # statuses); the leader does (cluster/service.py)
        self.primary: Callable[[], bool] = lambda: True
        self.history = history
        self.clock = clock
        self.engine = engine
        self.feed_ready = feed_ready
        self.faults = Faults() if faults is None else faults
        self.check_interval_s = check_interval_s
        self._schedule = schedule
        self.sources: list[Source] = []
        self.published: dict[str, int] = {}  # by the source that submitted
        self.refused: dict[tuple[str, str], int] = {}  # (source, reason) -> count
        self.dead_letter_totals: dict[tuple[str, str], int] = {}
        self.dead_letters: deque[SignalDeadLetter] = deque(maxlen=dead_letter_capacity)
        self._statuses: dict[str, WorkerStatus] = {}  # as last published
        self._pending: list[Signal] = []  # the engine's, until the next loop pass
        self._ids = itertools.count(1)
        self.max_symbols = max_symbols
        self.is_known = is_known
        self._outside: set[str] = set()  # symbols signalled outside the feed's universe
        self._running = False
        self._task: asyncio.Task[None] | None = None

    # -- life cycle

    def add_source(self, source: Source) -> None:
        """Watch (and start and stop with this service) a pushed source."""
        self.sources.append(source)

    async def start(self) -> None:
        self._running = True
        for source in self.sources:
            await source.start()
        self.check()
        self._task = asyncio.create_task(self._tick(), name="signal-status")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for source in reversed(self.sources):
            await source.aclose()
        self._flush()  # nothing found is left behind
        self._running = False

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval_s)
            try:
                self.check()
            except Exception as exc:  # a bug here must not end the status checks
                self.faults.report("service", exc, service="signals")

    # -- the tap

    @listens_to(Bar, Signal)
    def on_published(self, envelopes: Sequence[Envelope]) -> None:
        """The publisher's tap: bars to the engine, signals to the history."""
        found: list[Signal] = []
        now: float | None = None
        for envelope in envelopes:
            payload = envelope.payload
            kind = type(payload)
            if kind is Bar:
                if self.engine is not None:
                    assert isinstance(payload, Bar)
                    found.extend(self.engine.on_bar(payload))
            elif kind is Signal:
                if now is None:
                    now = self.clock.wall()
                if self.history.size and not self.history.add(envelope, now):
                    # published on the hub by another than ``submit`` under an id held:
                    # carried, but not kept twice; counted so that it is seen
                    self._count_refused("history", "duplicate")
        if found:
            first = not self._pending
            self._pending.extend(found)
            if first:
                self._later(self._flush)

    def _later(self, fn: Callable[[], None]) -> None:
        if self._schedule is not None:
            self._schedule(fn)
        else:
            asyncio.get_running_loop().call_soon(fn)

    def _flush(self) -> None:
        """Publish the engine's signals found so far (none twice)."""
        pending, self._pending = self._pending, []
        fresh: list[Signal] = []
        seen: set[str] = set()
        for signal in pending:
            if signal.id in self.history or signal.id in seen:
                self._count_refused(ENGINE, "duplicate")
                continue
            seen.add(signal.id)
            fresh.append(signal)
        if fresh:
            self.publisher.publish(fresh)
            self.published[ENGINE] = self.published.get(ENGINE, 0) + len(fresh)

    # -- ingestion

    def submit(self, signal: Signal, source: str) -> Signal:
        """Publish a signal from ``source`` (``http``, ``redis``...): give it an id if it
        has none, refuse it if its id was published already. Returns it as published.

        Raises:
            Duplicate: the history holds a signal with its id (counted as refused).
            Refused: ``too_many_symbols``: its symbol would be one more than
                ``max_symbols`` outside the feed's universe; ``invalid``: it claims
                the built-in engine as its source (counted as refused).
        """
        if not signal.id:
            signal = msgspec.structs.replace(signal, id=self._new_id(source))
        elif signal.id in self.history:
            self._count_refused(source, "duplicate")
            raise Duplicate(signal.id)
        if signal.source == ENGINE and source != ENGINE:
            self._count_refused(source, "invalid")
            raise Refused("invalid", f"source {ENGINE!r} is the built-in engine's; name yours")
        symbol = signal.symbol
        if symbol not in self._outside and not self.is_known(symbol):
            if len(self._outside) >= self.max_symbols:
                self._count_refused(source, "too_many_symbols")
                raise Refused(
                    "too_many_symbols",
                    f"signals already name {self.max_symbols} symbols outside the feed "
                    f"(signals_max_symbols): {symbol!r} is refused",
                )
            self._outside.add(symbol)
        self.publisher.publish([signal])
        self.published[source] = self.published.get(source, 0) + 1
        return signal

    def ingest(self, data: bytes, source: str) -> Signal | None:
        """A document a source pushed (nobody to answer): published, or a dead letter."""
        try:
            signal = read_signal(data)
        except Refused as exc:
            self._count_refused(source, exc.reason)
            self._dead_letter(source, exc.reason, exc.message, data)
            return None
        try:
            return self.submit(signal, source)
        except Refused as exc:  # counted by submit
            self._dead_letter(source, exc.reason, exc.message, data)
        except Duplicate as exc:
            self._dead_letter(source, "duplicate", str(exc), data)
        return None

    def refuse(self, source: str, reason: str) -> None:
        """Count a refusal decided elsewhere (the HTTP API's: an answer was given)."""
        self._count_refused(source, reason)

    def _new_id(self, source: str) -> str:
        return f"{source}-{round(self.clock.wall() * 1000)}-{next(self._ids)}"

    def _count_refused(self, source: str, reason: str) -> None:
        key = (source, reason)
        self.refused[key] = self.refused.get(key, 0) + 1

    def _dead_letter(self, source: str, reason: str, error: str, data: bytes) -> None:
        letter = SignalDeadLetter(source, reason, error, _raw_text(data), self.clock.wall())
        self.dead_letters.append(letter)
        key = (source, reason)
        self.dead_letter_totals[key] = self.dead_letter_totals.get(key, 0) + 1
        log.warning(
            "signal from %s refused (%s): %s",
            source,
            reason,
            error,
            extra={"source": source, "reason": reason},
        )

    def recent_dead_letters(self, limit: int = 100) -> list[SignalDeadLetter]:
        """The newest ``limit`` dead letters, newest last."""
        if limit <= 0:
            return []
        return list(self.dead_letters)[-limit:]

    # -- status

    def source_statuses(self) -> list[WorkerStatus]:
        """Each source's health now (the engine's first)."""
        found = []
        if self.engine is not None:
            found.append(engine_status(self._running, self.feed_ready()))
        found.extend(source.status() for source in self.sources)
        return found

    def statuses(self) -> list[WorkerStatus]:
        """The statuses as last published: the aggregate first, then each source (what
        a client that just arrived should be shown)."""
        current = self._statuses
        ordered = [current[MONITOR]] if MONITOR in current else []
        ordered.extend(s for name, s in current.items() if name != MONITOR)
        return ordered

    def check(self) -> list[WorkerStatus]:
        """Compute every status; publish each one whose state changed (one publish per
        change); return those."""
        sources = self.source_statuses()
        changed = []
        for status in (*sources, worker_statuses(sources)):
            last = self._statuses.get(status.service)
            if last is None or last.status != status.status:
                self._statuses[status.service] = status
                changed.append(status)
                log.info(
                    "signal worker %s is %s: %s",
                    status.service,
                    status.status,
                    status.message,
                    extra={"service": status.service, "status": status.status},
                )
        if self.primary():  # in a cluster, the leader's statuses are the cluster's
            for status in changed:
                self.publisher.publish([status])
        return changed

    def collector(self) -> Collector:
        """This service's Prometheus metrics (register it on the node's registry)."""
        return _SignalCollector(self)


class _SignalCollector(Collector):
    def __init__(self, service: SignalService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        s = self.service
        published = CounterMetricFamily(
            "tickcast_signals_published",
            "Signals published on the hub, by the source that submitted them",
            labels=["source"],
        )
        for source, count in sorted(s.published.items()):
            published.add_metric([source], count)
        yield published
        refused = CounterMetricFamily(
            "tickcast_signals_refused",
            "Signals refused (too large, malformed, invalid, duplicate...), by source and reason",
            labels=["source", "reason"],
        )
        for (source, reason), count in sorted(s.refused.items()):
            refused.add_metric([source, reason], count)
        yield refused
        dead = CounterMetricFamily(
            "tickcast_signal_dead_letters",
            "Signal documents a pushed source (Redis) sent that were refused, by reason",
            labels=["source", "reason"],
        )
        for (source, reason), count in sorted(s.dead_letter_totals.items()):
            dead.add_metric([source, reason], count)
        yield dead
        state = GaugeMetricFamily(
            "tickcast_signal_worker_state",
            "1 for each signal worker's current state (active, degraded, offline)",
            labels=["service", "state"],
        )
        for status in s.statuses():
            for name in STATES:
                state.add_metric([status.service, name], 1 if status.status == name else 0)
        yield state
        yield GaugeMetricFamily(
            "tickcast_signal_history", "Signals held for catch-up", value=len(s.history)
        )
        events = CounterMetricFamily(
            "tickcast_signal_source_events",
            "What happened to the pushed signal sources (connected, lost, failed "
            "connection attempts), by source and event",
            labels=["source", "event"],
        )
        for pushed in s.sources:
            for event, count in sorted(pushed.events().items()):
                events.add_metric([pushed.name, event], count)
        yield events
