"""The monitoring service: samples the gateway and its host, evaluates the alert rules
and publishes the monitoring streams through the node's publisher.

Rules: I/O (a background task, psutil), like ``signals/service.py``; every decision is
pure (``rules.py``, ``alerts.py``, ``figures.py``). Every ``monitoring_interval_s`` it:

1. reads psutil (CPU percent since the last reading, non-blocking; memory; the disk of
   the database or the working directory; the network's byte counters), the node's
   counters (``Stats``, the hub's, the supervisor's per-provider inflow, ``Faults``), the
   gauges (outbox depth, conflations), the latency histogram's buckets and the GC
   pauses;
2. turns two readings into rates and the interval's latency percentiles
   (``figures.percentiles`` over the Prometheus histogram's bucket deltas: bucket
   resolution, no reservoir), and publishes ``SystemMetrics``, ``Pipeline`` and
   ``Telemetry`` (conflated: the latest wins);
3. builds a ``rules.Reading``, evaluates the rules against the previous one and
   publishes the alerts that changed as one ``AlertBatch`` (reliable).

Dead letters are looked for every second at most (``min(1, interval)``): the providers'
store and the signal service's are compared with what was seen (two integer sums), and
the new ones are published as one ``DeadLetterBatch`` (reliable), previewed.

``tick()`` and ``collect_dead_letters()`` do one pass on demand (tests call them: no
sleeps). Each probe is contained on its own (``Faults``, ``"service"``, ``probe=...``,
logged rate-limited): a probe that fails (psutil's disk reading of a path that is
gone...) gives no figure for its part (None, ``null`` on the wire), and the other
samples and the alerts go on. A failure elsewhere in a pass is contained the same way;
the next pass goes on.

Alert ids carry a token drawn at random when the service is made (``TOKEN_CHARS``
lowercase letters and digits): ``<rule>-<token>.<n>``, so an id a dashboard kept from
before a restart never names another alert after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import psutil

from tickcast.clock import Clock, Now
from tickcast.config.groups import MonitoringSettings
from tickcast.hub.publisher import Publisher
from tickcast.model.monitoring import (
    Alert,
    AlertBatch,
    DeadLetterBatch,
    DeadLetterItem,
    MonitoringEvent,
    Pipeline,
    ProviderFlow,
    SystemMetrics,
    Telemetry,
)
from tickcast.monitoring.alerts import AlertBook
from tickcast.monitoring.figures import (
    KEEP_LETTERS,
    DeadLetterLog,
    Letter,
    above_top,
    percentiles,
    rate,
)
from tickcast.monitoring.rules import (
    ProviderReading,
    Reading,
    Silence,
    Thresholds,
    conditions,
    down_since_fed,
    unknown,
)
from tickcast.observability.faults import Faults
from tickcast.observability.gcstats import GcPauses
from tickcast.observability.metrics import LATENCY_BUCKETS, Gauges
from tickcast.observability.stats import Stats
from tickcast.providers.deadletter import DeadLetter
from tickcast.signals.service import SignalDeadLetter

log = logging.getLogger("tickcast.monitoring")

#: The most seconds between two looks for dead letters.
DLQ_CHECK_S = 1.0
#: Characters of the random token in alert ids (36**6: about two billion).
TOKEN_CHARS = 6

T = TypeVar("T")


def id_token() -> str:
    """A random token for a service's alert ids: lowercase letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(TOKEN_CHARS))


class Feed(Protocol):
    """What the service reads of the feed (``providers.supervisor.Supervisor``)."""

    @property
    def active(self) -> str: ...

    @property
    def preferred(self) -> str: ...

    @property
    def left(self) -> Mapping[str, int]: ...

    def states(self) -> Mapping[str, object]: ...

    def inflow(self) -> Mapping[str, tuple[int, float]]: ...

    def market_open(self) -> bool: ...

    def watches_silence(self, name: str) -> bool:
        """Whether the feed judges ``name``'s silence at all (a replay's it does not)."""
        ...


class LetterStore(Protocol):
    """A store of dead letters: totals per source, ever, and the newest letters."""

    def totals(self) -> Mapping[str, int]: ...

    def recent(self, limit: int) -> Sequence[Letter]: ...


class Histogram(Protocol):
    """The node's latency histogram (``observability.metrics.LatencyHistogram``)."""

    def cumulative(self) -> list[float]:
        """The cumulative bucket counts, +Inf's last."""
        ...


@dataclass(frozen=True, slots=True)
class Sources:
    """What the service samples; assembled by ``app.add_monitoring``.

    Attributes:
        stats, faults: the node's counters and contained failures.
        hub_counts: the hub's ``(published, deliveries)``, ever.
        gauges: the node's current values (outbox depth, conflations...).
        feed: the supervisor.
        letters: dead-letter stores by group (``providers``, ``signals``).
        latency: the end-to-end latency histogram.
        gc: the GC pause timer.
        connections: open connections by front.
        disk_path: whose disk usage is reported (the database's directory).
    """

    stats: Stats
    faults: Faults
    hub_counts: Callable[[], tuple[int, int]]
    gauges: Callable[[], Gauges]
    feed: Feed
    letters: Mapping[str, LetterStore]
    latency: Histogram | None
    gc: GcPauses | None
    connections: Callable[[], Mapping[str, int]]
    disk_path: str = "."


@dataclass(frozen=True, slots=True)
class _Sample:
    """The counters of one pass (what the next one computes rates against)."""

    mono: float
    inflow: Mapping[str, tuple[int, float]]
    published: int
    deliveries: int
    messages_in: int
    messages_out: int
    latency: Sequence[float] | None


class MonitoringService:
    """Samples, evaluates and publishes (see the module docstring).

    Args:
        publisher: where the monitoring payloads are published (the node's).
        settings: the ``monitoring`` settings group.
        sources: what is sampled.
        clock: the node's clock.
    """

    def __init__(
        self,
        publisher: Publisher,
        settings: MonitoringSettings,
        sources: Sources,
        *,
        clock: Clock,
    ) -> None:
        self.publisher = publisher
        self.settings = settings
        self.sources = sources
        self.clock = clock
        self.thresholds = Thresholds(
            cpu_percent=settings.alert_cpu_percent,
            memory_percent=settings.alert_memory_percent,
            disk_percent=settings.alert_disk_percent,
            latency_p99_ms=settings.alert_latency_p99_ms,
            stale_feed_s=settings.alert_stale_feed_s,
            outbox_depth=settings.alert_outbox_depth,
        )
        self.book = AlertBook(settings.alert_cooldown_s, token=id_token())
        self.silence = Silence()
        self.letters = DeadLetterLog(settings.dlq_preview_bytes)
        self.metrics: SystemMetrics | None = None
        self.pipeline: Pipeline | None = None
        self.telemetry: Telemetry | None = None
        self._reading: Reading | None = None
        self._sample: _Sample | None = None
        self._task: asyncio.Task[None] | None = None
        psutil.cpu_percent(interval=None)  # the first reading is since this one

    # -- life cycle

    async def start(self) -> None:
        self.collect_dead_letters()
        self.tick()
        self._task = asyncio.create_task(self._run(), name="monitoring")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        interval = self.settings.monitoring_interval_s
        step = min(DLQ_CHECK_S, interval)
        due = self.clock.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, min(step, due - self.clock.monotonic())))
            self.collect_dead_letters()
            if self.clock.monotonic() >= due:
                due = max(due + interval, self.clock.monotonic())
                self.tick()

    # -- what the fronts and the routes read

    def snapshot(self, channel: str) -> MonitoringEvent | None:
        """What a new subscriber of ``channel`` gets at once: the open alerts, the
        current dead letters, or the latest sample (None before the first)."""
        if channel == "alerts":
            return AlertBatch(tuple(self.book.open_alerts()))
        if channel == "dlq":
            return DeadLetterBatch(tuple(self.letters.current()))
        if channel == "metrics":
            return self.metrics
        if channel == "pipeline":
            return self.pipeline
        if channel == "telemetry":
            return self.telemetry
        return None

    def alerts(self, resolved: bool | None = None) -> list[Alert]:
        """Open and recently resolved alerts (None), open only (False), resolved only."""
        if resolved is None:
            return self.book.all()
        return self.book.resolved() if resolved else self.book.open_alerts()

    def dead_letters(self) -> list[DeadLetterItem]:
        return self.letters.current()

    # -- the passes

    def tick(self) -> list[Alert]:
        """One sampling and evaluation pass, published; returns the alerts that changed."""
        try:
            return self._tick(self.clock.now())
        except Exception as exc:  # the next pass goes on
            self.sources.faults.report("service", exc, service="monitoring")
            return []

    def collect_dead_letters(self) -> list[DeadLetterItem]:
        """Publish the dead letters that arrived since the last look; returns them."""
        try:
            arrived: list[DeadLetterItem] = []
            for group, store in self.sources.letters.items():
                totals = store.totals()
                if sum(totals.values()) != self.letters.seen(group):
                    recent = store.recent(KEEP_LETTERS)
                    arrived += self.letters.observe(group, totals, recent)
            if arrived:
                self.publisher.publish([DeadLetterBatch(tuple(arrived))])
            return arrived
        except Exception as exc:
            self.sources.faults.report("service", exc, service="monitoring", step="dlq")
            return []

    def _probe(self, name: str, read: Callable[[], T]) -> T | None:
        """``read()``, or None when it fails (reported, rate-limited)."""
        try:
            return read()
        except Exception as exc:  # one probe's failure costs its figure only
            self.sources.faults.report("service", exc, service="monitoring", probe=name)
            return None

    def _tick(self, now: Now) -> list[Alert]:
        src = self.sources
        stats = src.stats
        probe = self._probe
        gauges = probe("gauges", src.gauges)
        published, deliveries = probe("hub", src.hub_counts) or (0, 0)
        inflow = dict(probe("inflow", src.feed.inflow) or {})
        histogram = src.latency
        latency = None
        if histogram is not None:
            latency = probe("latency", histogram.cumulative)
        sample = _Sample(
            now.mono,
            inflow,
            published,
            deliveries,
            stats.client_messages_in,
            stats.items_out,
            latency,
        )
        before = self._sample
        dt = now.mono - before.mono if before is not None else 0.0
        self.metrics = self._system(now.wall)
        p50 = p95 = p99 = None
        p99_above_top = False
        if latency:
            since = before.latency if before is not None else None
            p50, p95, p99 = percentiles(LATENCY_BUCKETS, latency, since)
            p99_above_top = above_top(latency, since, 0.99)
        letters = probe("letters", self._letter_totals) or {}
        states = {
            name: str(getattr(s, "value", s))
            for name, s in (probe("states", src.feed.states) or {}).items()
        }
        active = src.feed.active
        market_open = probe("market", src.feed.market_open) is True
        providers: list[ProviderFlow] = []
        readings: list[ProviderReading] = []
        for name, state in states.items():
            events, last_at = inflow.get(name, (0, 0.0))
            previous = before.inflow.get(name, (events, 0.0))[0] if before is not None else events
            age = round(max(0.0, now.wall - last_at), 3) if last_at else None
            silent = None
            if name == active:
                watched = (
                    probe("watched", functools.partial(src.feed.watches_silence, name)) is not False
                )
                silent = self.silence.update(now.wall, active, market_open, last_at, watched)
            providers.append(
                ProviderFlow(
                    name,
                    state,
                    name == active,
                    rate(events, previous, dt),
                    age,
                    letters.get(name, 0),
                    src.feed.left.get(name, 0),
                )
            )
            readings.append(ProviderReading(name, state, age, silent))
        if not active:
            self.silence.update(now.wall, "", market_open, 0.0, False)
        self.pipeline = Pipeline(
            now.wall,
            tuple(providers),
            rate(published, before.published, dt) if before is not None else 0.0,
            rate(deliveries, before.deliveries, dt) if before is not None else 0.0,
            gauges.outbox_depth if gauges is not None else 0,
            gauges.conflated if gauges is not None else 0,
            stats.slow_closes,
        )
        gc = src.gc
        self.telemetry = Telemetry(
            now.wall,
            tuple(sorted((probe("connections", src.connections) or {}).items())),
            rate(sample.messages_in, before.messages_in, dt) if before is not None else 0.0,
            rate(sample.messages_out, before.messages_out, dt) if before is not None else 0.0,
            p50,
            p95,
            p99,
            gc.collections if gc is not None else 0,
            round(gc.total_s * 1000, 3) if gc is not None else 0.0,
            round(gc.take_max() * 1000, 3) if gc is not None else 0.0,
        )
        providers_read = tuple(readings)
        reading = Reading(
            providers=providers_read,
            active=active,
            preferred=src.feed.preferred,
            market_open=market_open,
            failovers=stats.failovers,
            dead_letters=letters,
            slow_closes=stats.slow_closes,
            internal_errors=sum(src.faults.counts.values()),
            outbox_depth=gauges.outbox_depth if gauges is not None else 0,
            cpu_percent=self.metrics.cpu_usage,
            memory_percent=self.metrics.memory_percent,
            disk_percent=self.metrics.disk_percent,
            latency_p99_ms=p99,
            latency_p99_above_top=p99_above_top,
            down_since_fed=down_since_fed(providers_read, active, self._reading),
        )
        changed = self.book.update(
            conditions(reading, self._reading, self.thresholds),
            now.mono,
            now.wall,
            unknown(reading),
        )
        self._reading = reading
        self._sample = sample
        batch: list[MonitoringEvent] = [self.metrics, self.pipeline, self.telemetry]
        if changed:
            batch.append(AlertBatch(tuple(changed)))
            for alert in changed:
                log.log(
                    logging.INFO if alert.resolved else logging.WARNING,
                    "alert %s %s: %s",
                    alert.id,
                    "resolved" if alert.resolved else "opened",
                    alert.message,
                    extra={"alert": alert.id, "severity": alert.severity.value},
                )
        self.publisher.publish(batch)
        return changed

    def _letter_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for store in self.sources.letters.values():
            for source, count in store.totals().items():
                totals[source] = totals.get(source, 0) + count
        return totals

    def _system(self, wall: float) -> SystemMetrics:
        """psutil's readings, each probe on its own (a failed one: its part None)."""
        probe = self._probe
        cpu = probe("cpu", lambda: round(psutil.cpu_percent(interval=None), 1))
        cores = probe("cores", psutil.cpu_count) or os.cpu_count() or 1
        memory = probe("memory", psutil.virtual_memory)
        disk = probe("disk", lambda: psutil.disk_usage(self.sources.disk_path))
        net = probe("network", psutil.net_io_counters)
        return SystemMetrics(
            timestamp=wall,
            cpu_usage=cpu,
            cores=cores,
            memory_used=int(memory.total - memory.available) if memory is not None else None,
            memory_total=int(memory.total) if memory is not None else None,
            memory_percent=round(float(memory.percent), 1) if memory is not None else None,
            disk_used=int(disk.used) if disk is not None else None,
            disk_total=int(disk.total) if disk is not None else None,
            disk_percent=round(float(disk.percent), 1) if disk is not None else None,
            bytes_in=int(net.bytes_recv) if net is not None else None,
            bytes_out=int(net.bytes_sent) if net is not None else None,
        )


class ProviderLetters:
    """The providers' dead letters (``providers.deadletter.DeadLetters``) as a store."""

    def __init__(self, store: _ProviderStore) -> None:
        self.store = store

    def totals(self) -> Mapping[str, int]:
        return self.store.totals

    def recent(self, limit: int) -> Sequence[Letter]:
        return [Letter(d.provider, d.error, d.raw, d.ts) for d in self.store.recent(limit)]


class SignalLetters:
    """The signal service's dead letters as a store, each source as ``signals:<source>``."""

    def __init__(self, service: _SignalStore) -> None:
        self.service = service

    def totals(self) -> Mapping[str, int]:
        totals: dict[str, int] = {}
        for (source, _), count in self.service.dead_letter_totals.items():
            name = f"signals:{source}"
            totals[name] = totals.get(name, 0) + count
        return totals

    def recent(self, limit: int) -> Sequence[Letter]:
        return [
            Letter(f"signals:{d.source}", f"{d.reason}: {d.error}", d.raw, d.ts)
            for d in self.service.recent_dead_letters(limit)
        ]


class _ProviderStore(Protocol):
    @property
    def totals(self) -> dict[str, int]: ...

    def recent(self, limit: int = ...) -> list[DeadLetter]: ...


class _SignalStore(Protocol):
    @property
    def dead_letter_totals(self) -> dict[tuple[str, str], int]: ...

    def recent_dead_letters(self, limit: int = ...) -> list[SignalDeadLetter]: ...
