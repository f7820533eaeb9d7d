"""The monitoring service's passes, on demand, over fake sources and a manual clock:
rates over the interval, the alerts it publishes, dead letters, and a contained failure.
(psutil is read for real: the host's numbers are whatever they are.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from support.clock import ManualClock
from support.publishing import Recording
from tickcast.config.settings import Settings
from tickcast.model.monitoring import (
    AlertBatch,
    DeadLetterBatch,
    Pipeline,
    SystemMetrics,
    Telemetry,
)
from tickcast.monitoring.figures import Letter
from tickcast.monitoring.service import MonitoringService, Sources
from tickcast.observability.faults import Faults
from tickcast.observability.metrics import Gauges
from tickcast.observability.stats import Stats


class Feed:
    def __init__(self) -> None:
        self.active = "alpaca"
        self.preferred = "alpaca"
        self.left: dict[str, int] = {}
        self.state = {"alpaca": "up", "simulator": "stopped"}
        self.events = {"alpaca": (0, 0.0)}

    def states(self) -> Mapping[str, object]:
        return self.state

    def inflow(self) -> Mapping[str, tuple[int, float]]:
        return self.events

    def market_open(self) -> bool:
        return True

    def watches_silence(self, name: str) -> bool:
        return True


class Letters:
    def __init__(self) -> None:
        self.letters: list[Letter] = []

    def totals(self) -> Mapping[str, int]:
        found: dict[str, int] = {}
        for letter in self.letters:
            found[letter.source] = found.get(letter.source, 0) + 1
        return found

    def recent(self, limit: int) -> Sequence[Letter]:
        return self.letters[-limit:]


def gauges(depth: int = 0) -> Gauges:
    return Gauges(0, 0, depth, 0, 7, {}, "", {}, {}, {}, False, 0, 0.0, {})


#: The hub's (published, deliveries), as the fake sources read them.
HUB: list[int] = [0, 0]


def build(**settings: Any) -> tuple[MonitoringService, Recording, ManualClock, Feed, Letters]:
    clock = ManualClock()
    feed = Feed()
    letters = Letters()
    recording = Recording()
    HUB[:] = [0, 0]
    stats = Stats()
    sources = Sources(
        stats=stats,
        faults=Faults(),
        hub_counts=lambda: (HUB[0], HUB[1]),
        gauges=gauges,
        feed=feed,
        letters={"providers": letters},
        latency=None,
        gc=None,
        connections=lambda: {"market_feed": 3},
    )
    group = Settings(
        alert_cpu_percent=100, alert_memory_percent=100, alert_disk_percent=100, **settings
    ).monitoring
    service = MonitoringService(recording, group, sources, clock=clock)
    return service, recording, clock, feed, letters


def of(recording: Recording, kind: type) -> list[Any]:
    return [e for e in recording.events if type(e) is kind]


def test_a_pass_publishes_the_samples_and_rates_over_the_interval() -> None:
    service, recording, clock, feed, _ = build()
    assert service.tick() == []
    first = of(recording, Pipeline)[-1]
    assert first.publish_per_s == 0.0  # nothing to compare with yet
    clock.advance(5.0)
    HUB[:] = [500, 1500]
    feed.events = {"alpaca": (250, clock.wall() - 0.5)}
    service.tick()
    pipeline = of(recording, Pipeline)[-1]
    assert (pipeline.publish_per_s, pipeline.deliveries_per_s) == (100.0, 300.0)
    assert pipeline.conflated == 7
    flows = {f.name: f for f in pipeline.providers}
    assert flows["alpaca"].messages_per_s == 50.0
    assert flows["alpaca"].last_message_age_s == 0.5
    assert flows["alpaca"].active
    assert flows["simulator"].last_message_age_s is None
    telemetry = of(recording, Telemetry)[-1]
    assert telemetry.connections == (("market_feed", 3),)
    assert telemetry.latency_p99_ms is None
    metrics = of(recording, SystemMetrics)[-1]
    assert metrics.memory_total > 0
    assert service.snapshot("metrics") is metrics
    assert service.snapshot("alerts") == AlertBatch(())


def test_alerts_open_and_resolve_with_the_state_and_are_published_once() -> None:
    service, recording, clock, feed, _ = build(alert_cooldown_s=60)
    service.tick()
    feed.state["alpaca"] = "backoff"
    feed.active = "simulator"
    feed.state["simulator"] = "up"
    clock.advance(5)
    opened = service.tick()
    assert {a.rule for a in opened} == {"provider_down", "failed_over"}
    assert of(recording, AlertBatch)[-1].alerts == tuple(opened)
    clock.advance(5)
    assert service.tick() == []  # still holding: nothing new
    assert len(of(recording, AlertBatch)) == 1
    feed.state["alpaca"] = "up"
    feed.active = "alpaca"
    clock.advance(5)
    resolved = service.tick()
    assert {(a.id, a.resolved) for a in resolved} == {(a.id, True) for a in opened}
    assert service.alerts(resolved=False) == []
    assert {a.id for a in service.alerts(resolved=True)} == {a.id for a in opened}


def test_dead_letters_are_published_once_each() -> None:
    service, recording, _, _, letters = build(dlq_preview_bytes=16)
    assert service.collect_dead_letters() == []
    letters.letters += [Letter("alpaca", "bad", "x" * 100, 1.0), Letter("alpaca", "bad", "y", 2.0)]
    arrived = service.collect_dead_letters()
    assert [(d.id, len(d.preview)) for d in arrived] == [("alpaca-1", 16), ("alpaca-2", 1)]
    assert of(recording, DeadLetterBatch) == [DeadLetterBatch(tuple(arrived))]
    assert service.collect_dead_letters() == []
    assert service.snapshot("dlq") == DeadLetterBatch(tuple(arrived))


def test_a_failing_pass_is_contained() -> None:
    service, _, _, feed, _ = build()

    def broken() -> Mapping[str, tuple[int, float]]:
        raise RuntimeError("boom")

    feed.inflow = broken  # type: ignore[method-assign]
    assert service.tick() == []
    assert service.sources.faults.counts == {"service": 1}


def test_a_failing_probe_costs_its_own_figure_only() -> None:
    service, recording, _, _, _ = build()
    service.sources = dataclasses.replace(service.sources, disk_path="/no/such/directory")
    service.tick()
    metrics = of(recording, SystemMetrics)[-1]
    assert (metrics.disk_used, metrics.disk_total, metrics.disk_percent) == (None, None, None)
    assert metrics.memory_total is not None
    assert metrics.memory_total > 0
    assert service.sources.faults.counts == {"service": 1}
    assert of(recording, Pipeline)
    assert of(recording, Telemetry)
