"""Prometheus metrics: hot-path counters are plain ints (Stats), exported at scrape time.

Every metric is prefixed ``tickcast_``. The latency histogram is observed on the write
path, sampled (one flush in eight per connection): it too is kept in plain ints
(``LatencyHistogram``: one bucket index and an add, no lock, as the event loop is its
only writer) and turned into Prometheus samples at scrape time, the same samples a
``prometheus_client.Histogram`` gives.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import pairwise
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from tickcast.observability.gcstats import GcPauses
from tickcast.observability.stats import Stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
#: The states a slow client's degradation enters (``hub.degrade.State``), each exported.
DEGRADE_STATES = ("conflating", "suspended", "recovering", "normal", "closed")
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Gauges(NamedTuple):
    """Current values, derived at scrape time from the state that holds them."""

    connections: int
    subscriptions: int
    outbox_depth: int
    outbox_bytes: int
    conflated: int  # outbox updates replaced by a newer one, ever
    providers: dict[str, str]  # provider -> state (starting, up, backoff...)
    active_provider: str  # "" while no provider feeds the hub
    dead_letters: dict[str, int]  # provider -> unparseable messages, ever
    skipped_events: dict[str, int]  # provider -> events skipped because the gateway lagged
    book_events: dict[tuple[str, str], int]  # (provider, outcome) -> order-book checks
    overloaded: bool
    overload_episodes: int
    loop_stalled_s: float
    internal_errors: dict[str, int]  # where -> exceptions caught and contained


class _StatsCollector(Collector):
    def __init__(self, stats: Stats, gauges: Callable[[], Gauges]) -> None:
        self.stats = stats
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        yield _by_label(
            "tickcast_events_in",
            "Normalized market events ingested from providers, by kind",
            "kind",
            s.events_by_kind,
        )
        yield _by_label(
            "tickcast_refusals",
            "Connections and credentials refused (origin, credentials, limits...), by reason",
            "reason",
            s.refusals,
        )
        yield _by_label(
            "tickcast_degrade_transitions",
            "Slow clients' degradation steps (hub/degrade.py), by the state entered: "
            "conflating, suspended, recovering, normal, closed",
            "to",
            {**dict.fromkeys(DEGRADE_STATES, 0), **s.degrade_transitions},
        )
        yield _by_label(
            "tickcast_resumed_streams",
            "Suspended reliable streams resumed, by how: replay (from history) or reset",
            "how",
            {"replay": 0, "reset": 0, **s.resumed_streams},
        )
        counters = (
            (
                "degraded_streams",
                "Reliable streams suspended for a slow client (a degraded message each)",
                s.degraded_streams,
            ),
            (
                "suspended_updates",
                "Updates of suspended streams not queued (replayed or reset on resume)",
                s.suspended_updates,
            ),
            ("messages_in", "Messages received from clients", s.client_messages_in),
            ("messages_out", "Messages (data and replies) written to clients", s.items_out),
            ("frames_out", "WebSocket frames written to clients", s.frames_out),
            ("connections", "WebSocket connections accepted", s.connections_total),
            (
                "slow_client_closes",
                "Clients closed (1013) for not taking what was written to them",
                s.slow_closes,
            ),
            (
                "slow_client_aborts",
                "Slow clients aborted: they took nothing for close_timeout_s after the close, "
                "or not the rest within 60 s",
                s.slow_aborts,
            ),
            (
                "overload_closes",
                "Readers closed (1013) because the gateway could not write to them for 4 times "
                "their outbox budget",
                s.overload_closes,
            ),
            (
                "outbox_write_throughs",
                "Outboxes over budget written out before their window (the gateway's lag)",
                s.write_throughs,
            ),
            (
                "outbox_early_writes",
                "Batch 0: writes within an event-loop pass so that an update is not replaced by "
                "its successor of the same pass",
                s.early_writes,
            ),
            (
                "provider_restarts",
                "Provider runs that ended (failed, stale, refused)",
                s.provider_restarts,
            ),
            ("feed_failovers", "Moves of the feed to a less preferred provider", s.failovers),
            ("feed_failbacks", "Moves of the feed back to a preferred provider", s.failbacks),
            ("feed_transitions", "Provider state changes (status messages)", s.feed_transitions),
            ("standby_events", "Events from recovering providers, not published", s.standby_events),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(f"tickcast_{name}", doc, value=value)
        now = self.gauges()
        gauges = (
            ("active_connections", "Open WebSocket connections", now.connections),
            ("subscriptions", "Current subscriptions (connection x topic)", now.subscriptions),
            ("outbox_depth", "Messages queued in client outboxes", now.outbox_depth),
            ("outbox_bytes", "Payload bytes queued in client outboxes", now.outbox_bytes),
            ("overloaded", "1 while the event loop lags more than overload_lag_s", now.overloaded),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(f"tickcast_{name}", doc, value=value)
        totals: tuple[tuple[str, str, float], ...] = (
            (
                "conflated",
                "Conflatable updates (quotes, values) replaced in an outbox by a newer one",
                now.conflated,
            ),
            ("overload_episodes", "Times the gateway became overloaded", now.overload_episodes),
            (
                "event_loop_stalled_seconds",
                "Time the event loop ran late, summed (beyond 5 ms per probe)",
                now.loop_stalled_s,
            ),
        )
        for name, doc, total in totals:
            yield CounterMetricFamily(f"tickcast_{name}", doc, value=total)
        yield _by_label(
            "tickcast_skipped_events",
            "Events a provider left out because the gateway fell behind (simulator ticks)",
            "provider",
            now.skipped_events,
        )
        yield _by_label(
            "tickcast_internal_errors",
            "Exceptions caught and contained (logged; the others went on), by where",
            "where",
            now.internal_errors,
        )
        books = CounterMetricFamily(
            "tickcast_book_events",
            "Order-book checks by provider and outcome: gap, duplicate (dropped), resync, "
            "overflow (a buffered delta dropped while waiting for a snapshot)",
            labels=["provider", "outcome"],
        )
        for (provider, outcome), count in sorted(now.book_events.items()):
            books.add_metric([provider, outcome], count)
        yield books
        up = GaugeMetricFamily(
            "tickcast_provider_up",
            "1 when the provider's upstream session is up",
            labels=["provider"],
        )
        active = GaugeMetricFamily(
            "tickcast_provider_active", "1 for the provider feeding the hub", labels=["provider"]
        )
        for provider, state in sorted(now.providers.items()):
            up.add_metric([provider], 1 if state == "up" else 0)
            active.add_metric([provider], 1 if provider == now.active_provider else 0)
        yield up
        yield active
        dead = CounterMetricFamily(
            "tickcast_dead_letters",
            "Upstream messages that could not be parsed, by provider",
            labels=["provider"],
        )
        for provider in sorted(now.providers):
            dead.add_metric([provider], now.dead_letters.get(provider, 0))
        yield dead


def _by_label(name: str, doc: str, label: str, counts: Mapping[str, int]) -> Metric:
    """A counter with one label, a sample per key of ``counts`` (sorted)."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


class LatencyHistogram(Collector):
    """A histogram of seconds kept in plain ints, exported at scrape time.

    ``observe`` costs one ``bisect`` and two adds (``prometheus_client.Histogram.observe``
    takes a lock and goes through its value objects); ``collect`` gives the samples a
    ``Histogram`` of the same name, documentation and buckets gives: the cumulative
    ``_bucket`` per bound (``le``, +Inf last), ``_count``, ``_sum`` and ``_created``. A
    value equal to a bound counts in that bound's bucket, as there. Only the event loop
    observes; a scrape from another thread reads a count or two that may be one
    observation apart, never a torn int.

    Args:
        name: the metric's name (no suffix).
        documentation: its help text.
        buckets: upper bounds, increasing (+Inf is added).
    """

    __slots__ = ("_bounds", "_counts", "_created", "_les", "_sum", "documentation", "name")

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        bounds = [float(b) for b in buckets]
        if not bounds or any(a >= b for a, b in pairwise(bounds)):
            raise ValueError(f"buckets must increase: {buckets}")
        if bounds[-1] != float("inf"):
            bounds.append(float("inf"))
        self.name = name
        self.documentation = documentation
        self._bounds: list[float] = bounds
        # each bound's ``le`` label as prometheus_client writes it ("0.001", "+Inf")
        self._les: list[str] = [floatToGoString(b) for b in bounds]  # type: ignore[no-untyped-call]
        # per bucket (not cumulative): the index ``bisect_left`` gives
        self._counts: list[int] = [0] * len(bounds)
        self._sum = 0.0
        self._created = time.time()

    def observe(self, value: float) -> None:
        """Count one observation of ``value`` (seconds)."""
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def cumulative(self) -> list[float]:
        """The cumulative bucket counts, +Inf's last (what the ``_bucket`` samples say)."""
        total = 0
        out: list[float] = []
        for count in self._counts:
            total += count
            out.append(float(total))
        return out

    def collect(self) -> Iterator[Metric]:
        family = Metric(self.name, self.documentation, "histogram")
        cumulative = self.cumulative()
        for le, count in zip(self._les, cumulative, strict=True):
            family.add_sample(f"{self.name}_bucket", {"le": le}, count)
        family.add_sample(f"{self.name}_count", {}, cumulative[-1])
        family.add_sample(f"{self.name}_sum", {}, self._sum)
        family.add_sample(f"{self.name}_created", {}, self._created)
        yield family


class Metrics:
    """A registry per gateway (so tests can build several apps in one process)."""

    def __init__(self, stats: Stats, gauges: Callable[[], Gauges]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(stats, gauges))
        self.latency = LatencyHistogram(
            "tickcast_latency_seconds",
            "End-to-end latency from event time to socket write (sampled)",
            LATENCY_BUCKETS,
        )
        self.registry.register(self.latency)
        self.loop_lag = Histogram(
            "tickcast_event_loop_lag_seconds",
            "How late a 50 ms probe timer fires: the event loop's lag",
            buckets=LOOP_LAG_BUCKETS,
            registry=self.registry,
        )
        self.gc_pauses = GcPauses(self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
