"""Review of the monitoring service and its alert rules (docs/monitoring.md): defects found
by running the service's passes over fake sources and a manual clock. Each test states
what an operator should see and is expected to fail until the defect is fixed."""

from __future__ import annotations

import dataclasses

from tickcast.model.monitoring import Alert
from tickcast.observability.metrics import LATENCY_BUCKETS, LatencyHistogram
from unit.monitoring.test_service import build


def rules_of(alerts: list[Alert]) -> set[str]:
    return {a.rule for a in alerts}


def test_a_psutil_failure_does_not_stop_the_alerts() -> None:
    """The disk whose usage is shown disappears (unmounted, removed): the pass should
    still evaluate the feed's rules and publish what it can read."""
    service, _, clock, feed, _ = build()
    service.sources = dataclasses.replace(service.sources, disk_path="/no/such/directory")
    service.tick()
    feed.state = {"alpaca": "backoff", "simulator": "backoff"}
    feed.active = ""
    clock.advance(5)
    opened = service.tick()
    assert "feed_down" in rules_of(opened)
    assert service.pipeline is not None
    assert service.telemetry is not None


def test_an_active_provider_that_never_delivered_goes_stale() -> None:
    """The provider's session is up (subscribed), the market is open, and not one
    message ever comes (wrong symbols, a data plan without them): the feed is stale."""
    service, _, clock, feed, _ = build(alert_stale_feed_s=30)
    feed.events = {"alpaca": (0, 0.0)}  # up and active, never a message
    service.tick()
    for _ in range(5):
        clock.advance(60)
        service.tick()
    assert "stale_feed" in rules_of(service.alerts(resolved=False))


def test_the_feed_is_not_stale_the_second_the_market_opens() -> None:
    """Quiet overnight, as a feed is while its market is closed: one second after the
    open, the feed has not been silent for ``alert_stale_feed_s`` of open market."""
    service, _, clock, feed, _ = build(alert_stale_feed_s=30)
    is_open = [False]
    feed.market_open = lambda: is_open[0]  # type: ignore[method-assign]
    feed.events = {"alpaca": (10, clock.wall() - 3600)}  # the last quote an hour ago
    service.tick()
    clock.advance(5)
    service.tick()
    is_open[0] = True
    clock.advance(1)
    assert "stale_feed" not in rules_of(service.tick())


def test_feed_down_stays_open_while_the_provider_retries() -> None:
    """One provider, its upstream unreachable: it backs off, retries (starting), fails,
    backs off... The hub is fed at no point, so feed_down must not resolve."""
    service, _, clock, feed, _ = build(alert_cooldown_s=300)
    feed.state = {"alpaca": "up"}
    service.tick()
    feed.active = ""
    changes: list[Alert] = []
    for state in ("backoff", "starting", "backoff", "starting", "backoff"):
        feed.state = {"alpaca": state}
        clock.advance(5)
        changes += service.tick()
    assert "feed_down" in rules_of([a for a in changes if not a.resolved])
    assert [a for a in changes if a.rule == "feed_down" and a.resolved] == []
    assert "feed_down" in rules_of(service.alerts(resolved=False))


def test_a_latency_threshold_above_the_top_bucket_still_fires() -> None:
    """``alert_latency_p99_ms`` accepts any positive number; with 3000 ms and every
    delivery 10 s late, the latency alert should open."""
    service, _, clock, _, _ = build(alert_latency_p99_ms=3000)
    histogram = LatencyHistogram("review_latency_seconds", "test", LATENCY_BUCKETS)
    service.sources = dataclasses.replace(service.sources, latency=histogram)
    service.tick()
    for _ in range(100):
        histogram.observe(10.0)
    clock.advance(5)
    assert "latency" in rules_of(service.tick())


def test_alert_ids_are_not_reused_by_a_restarted_gateway() -> None:
    """A dashboard keeps alerts by id across the gateway's restart (it reconnects and
    polls ``?resolved=true``): one id must never name two different alerts."""
    before, _, clock, feed, _ = build()
    before.tick()
    feed.state = {"alpaca": "backoff", "simulator": "up"}
    feed.active = "simulator"
    clock.advance(5)
    first = {a.id: (a.rule, a.subject) for a in before.tick()}
    # the gateway restarts; now the other provider is down
    after, _, clock, feed, _ = build()
    after.tick()
    feed.state = {"alpaca": "up", "simulator": "backoff"}
    clock.advance(5)
    second = {a.id: (a.rule, a.subject) for a in after.tick()}
    clashes = {i for i in set(first) & set(second) if first[i] != second[i]}
    assert clashes == set()


def test_a_quiet_interval_does_not_resolve_the_latency_alert() -> None:
    """Latency is sampled (one flush in eight per connection): with little traffic an
    interval may have no sample at all. No news is not a recovery: the alert stays open
    until an interval's p99 is under the threshold."""
    service, _, clock, _, _ = build(alert_cooldown_s=300)
    histogram = LatencyHistogram("review_quiet_seconds", "test", LATENCY_BUCKETS)
    service.sources = dataclasses.replace(service.sources, latency=histogram)
    service.tick()
    for _ in range(20):
        histogram.observe(1.0)
    clock.advance(5)
    assert "latency" in rules_of(service.tick())
    clock.advance(5)
    service.tick()  # no delivery sampled in this interval
    for _ in range(20):
        histogram.observe(1.0)  # still a second late
    clock.advance(5)
    service.tick()
    assert "latency" in rules_of(service.alerts(resolved=False))
