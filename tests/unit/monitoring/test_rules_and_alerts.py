"""The alert rules and the alert book, at the pure level: plain calls, ``now`` passed in."""

from __future__ import annotations

from tickcast.model.monitoring import Severity
from tickcast.monitoring.alerts import AlertBook
from tickcast.monitoring.rules import (
    Condition,
    ProviderReading,
    Reading,
    Silence,
    Thresholds,
    conditions,
    down_since_fed,
    unknown,
)

LIMITS = Thresholds(
    cpu_percent=90,
    memory_percent=90,
    disk_percent=95,
    latency_p99_ms=500,
    stale_feed_s=30,
    outbox_depth=1000,
)
UP = (ProviderReading("alpaca", "up", 0.5), ProviderReading("simulator", "stopped", None))
HEALTHY = Reading(providers=UP, active="alpaca", preferred="alpaca", market_open=True)


def names(found: list[Condition]) -> set[tuple[str, str]]:
    return {c.name for c in found}


def test_a_healthy_gateway_raises_nothing() -> None:
    assert conditions(HEALTHY, None, LIMITS) == []
    assert conditions(HEALTHY, HEALTHY, LIMITS) == []


def test_a_provider_down_and_the_feed_failed_over() -> None:
    reading = HEALTHY._replace(
        providers=(
            ProviderReading("alpaca", "backoff", 40.0),
            ProviderReading("simulator", "up", 0.1),
        ),
        active="simulator",
        failovers=1,
    )
    found = {c.name: c for c in conditions(reading, HEALTHY, LIMITS)}
    assert set(found) == {("provider_down", "alpaca"), ("failed_over", ""), ("failover", "")}
    assert found[("provider_down", "alpaca")].severity is Severity.HIGH
    assert found[("failed_over", "")].severity is Severity.MEDIUM
    assert "simulator" in found[("failed_over", "")].message
    assert found[("failover", "")].source == "feed"


def test_no_provider_feeding_is_critical_unless_one_is_starting() -> None:
    down = (
        ProviderReading("alpaca", "backoff", None),
        ProviderReading("simulator", "disabled", None),
    )
    reading = HEALTHY._replace(providers=down, active="")
    found = {c.name: c for c in conditions(reading, None, LIMITS)}
    assert found[("feed_down", "")].severity is Severity.CRITICAL
    starting = (*down, ProviderReading("polygon", "starting", None))
    assert names(conditions(reading._replace(providers=starting), None, LIMITS)) == {
        ("provider_down", "alpaca"),
        ("provider_down", "simulator"),
    }
    stopped = (ProviderReading("alpaca", "stopped", None),)  # the feed has not started
    assert conditions(reading._replace(providers=stopped), None, LIMITS) == []


def test_a_stale_feed_counts_only_while_the_market_is_open() -> None:
    stale = HEALTHY._replace(providers=(ProviderReading("alpaca", "up", 3600.0, 31.0),))
    found = conditions(stale, None, LIMITS)
    assert names(found) == {("stale_feed", "")}
    assert found[0].severity is Severity.CRITICAL
    assert "for 31 s" in found[0].message
    assert conditions(stale._replace(market_open=False), None, LIMITS) == []
    fresh = HEALTHY._replace(providers=(ProviderReading("alpaca", "up", 3600.0, 30.0),))
    assert conditions(fresh, None, LIMITS) == []
    unjudged = HEALTHY._replace(providers=(ProviderReading("alpaca", "up", 3600.0, None),))
    assert conditions(unjudged, None, LIMITS) == []


def test_silence_counts_from_the_later_of_the_last_message_the_activation_and_the_open() -> None:
    silence = Silence()
    # active since 100, never a message: silent from 100
    assert silence.update(100.0, "alpaca", True, 0.0, True) == 0.0
    assert silence.update(160.0, "alpaca", True, 0.0, True) == 60.0
    assert silence.update(170.0, "alpaca", True, 165.0, True) == 5.0
    # closed overnight: not judged; the open starts the count again
    assert silence.update(200.0, "alpaca", False, 165.0, True) is None
    assert silence.update(5000.0, "alpaca", True, 165.0, True) == 0.0
    assert silence.update(5010.0, "alpaca", True, 165.0, True) == 10.0
    # another provider takes over: counted from then
    assert silence.update(5020.0, "polygon", True, 0.0, True) == 0.0
    # a provider the feed does not watch (a replay) is never judged
    assert silence.update(9000.0, "polygon", True, 0.0, False) is None


def test_feed_down_holds_while_a_down_provider_retries_until_the_hub_is_fed() -> None:
    down = HEALTHY._replace(providers=(ProviderReading("alpaca", "backoff", None),), active="")
    down = down._replace(down_since_fed=down_since_fed(down.providers, "", None))
    retrying = down._replace(providers=(ProviderReading("alpaca", "starting", None),))
    retrying = retrying._replace(down_since_fed=down_since_fed(retrying.providers, "", down))
    assert ("feed_down", "") in names(conditions(retrying, down, LIMITS))
    fed = HEALTHY._replace(down_since_fed=down_since_fed(HEALTHY.providers, "alpaca", retrying))
    assert fed.down_since_fed == frozenset()
    # the feed starting for the first time is not down
    first = HEALTHY._replace(providers=(ProviderReading("alpaca", "starting", None),), active="")
    assert conditions(first, None, LIMITS) == []


def test_the_latency_above_the_top_bucket_counts_as_over_any_threshold() -> None:
    above = HEALTHY._replace(latency_p99_ms=2500.0, latency_p99_above_top=True)
    found = conditions(above, None, LIMITS._replace(latency_p99_ms=3000))
    assert names(found) == {("latency", "")}
    assert "over 2500 ms" in found[0].message
    assert unknown(HEALTHY) == {("latency", "")}  # no sample: no judgement
    assert unknown(above) == set()


def test_thresholds_of_the_level_rules() -> None:
    busy = HEALTHY._replace(
        cpu_percent=90.1,
        memory_percent=90.0,
        disk_percent=97.0,
        outbox_depth=1001,
        latency_p99_ms=501.0,
    )
    found = {c.name: c for c in conditions(busy, busy, LIMITS)}
    assert set(found) == {("cpu", ""), ("disk", ""), ("outbox_depth", ""), ("latency", "")}
    assert found[("disk", "")].severity is Severity.CRITICAL
    assert found[("cpu", "")].source == "system"
    calm = HEALTHY._replace(cpu_percent=None, outbox_depth=1000, latency_p99_ms=None)
    assert conditions(calm, None, LIMITS) == []


def test_the_cpu_rule_needs_two_readings_in_a_row_over_its_threshold() -> None:
    burst = HEALTHY._replace(cpu_percent=100.0)
    # the first reading (the gateway's own start) has nothing before it: no alert
    assert ("cpu", "") not in {c.name for c in conditions(burst, None, LIMITS)}
    # one reading over, after one under: a burst, not a condition
    calm = HEALTHY._replace(cpu_percent=20.0)
    assert ("cpu", "") not in {c.name for c in conditions(burst, calm, LIMITS)}
    # over twice in a row: the alert, with the lower of the two
    busy = HEALTHY._replace(cpu_percent=95.0)
    found = {c.name: c for c in conditions(burst, busy, LIMITS)}
    assert "CPU usage is 95.0%" in found[("cpu", "")].message
    # and one reading under clears it
    assert ("cpu", "") not in {c.name for c in conditions(calm, burst, LIMITS)}


def test_counter_rules_hold_when_the_counter_rose_since_the_last_reading() -> None:
    before = HEALTHY._replace(dead_letters={"alpaca": 3}, slow_closes=1, internal_errors=2)
    after = before._replace(
        dead_letters={"alpaca": 5, "signals:redis": 1}, slow_closes=2, internal_errors=2
    )
    found = {c.name: c for c in conditions(after, before, LIMITS)}
    assert set(found) == {
        ("dead_letters", "alpaca"),
        ("dead_letters", "signals:redis"),
        ("slow_clients", ""),
    }
    assert "2 dead letter(s) from alpaca" in found[("dead_letters", "alpaca")].message
    assert found[("slow_clients", "")].severity is Severity.LOW
    # the first reading has nothing to compare with; a quiet interval holds nothing
    assert conditions(after, None, LIMITS) == []
    assert conditions(after, after, LIMITS) == []
    errors = after._replace(internal_errors=3)
    assert names(conditions(errors, after, LIMITS)) == {("internal_errors", "")}


def condition(rule: str, subject: str = "") -> Condition:
    return Condition(rule, subject, Severity.HIGH, "feed", f"{rule} {subject}")


def test_an_alert_opens_once_and_resolves_when_its_condition_clears() -> None:
    book = AlertBook(cooldown_s=300)
    opened = book.update([condition("provider_down", "alpaca")], now=0.0, wall=1000.0)
    assert [(a.id, a.resolved, a.timestamp) for a in opened] == [("provider_down-1", False, 1000.0)]
    # de-duplicated: still holding changes nothing
    assert book.update([condition("provider_down", "alpaca")], now=5.0, wall=1005.0) == []
    assert [a.id for a in book.open_alerts()] == ["provider_down-1"]
    # another subject is another alert
    other = book.update(
        [condition("provider_down", "alpaca"), condition("provider_down", "polygon")], 10.0, 1010.0
    )
    assert [a.id for a in other] == ["provider_down-2"]
    resolved = book.update([condition("provider_down", "polygon")], now=15.0, wall=1015.0)
    assert [(a.id, a.resolved, a.timestamp) for a in resolved] == [
        ("provider_down-1", True, 1015.0)
    ]
    assert [a.id for a in book.open_alerts()] == ["provider_down-2"]
    assert [a.id for a in book.resolved()] == ["provider_down-1"]
    assert [a.id for a in book.all()] == ["provider_down-2", "provider_down-1"]


def test_the_cooldown_keeps_a_flapping_condition_from_reopening() -> None:
    book = AlertBook(cooldown_s=300)
    book.update([condition("cpu")], now=0.0, wall=0.0)
    book.update([], now=5.0, wall=5.0)  # resolved at 5
    assert book.update([condition("cpu")], now=10.0, wall=10.0) == []  # cooling down
    assert book.update([condition("cpu")], now=304.9, wall=304.9) == []
    assert book.suppressed == 2
    again = book.update([condition("cpu")], now=305.0, wall=305.0)
    assert [(a.id, a.resolved) for a in again] == [("cpu-2", False)]  # a new alert, a new id


def test_a_zero_cooldown_reopens_at_once_and_the_order_is_resolves_then_opens() -> None:
    book = AlertBook(cooldown_s=0)
    book.update([condition("cpu")], 0.0, 0.0)
    changed = book.update([condition("memory")], 1.0, 1.0)
    assert [(a.rule, a.resolved) for a in changed] == [("cpu", True), ("memory", False)]
    assert [a.id for a in book.update([condition("cpu")], 1.0, 1.0)] == ["memory-2", "cpu-3"]


def test_rules_and_book_together_counter_alert_resolves_after_a_quiet_interval() -> None:
    book = AlertBook(cooldown_s=60)
    readings = [
        HEALTHY,
        HEALTHY._replace(dead_letters={"alpaca": 1}),
        HEALTHY._replace(dead_letters={"alpaca": 4}),
        HEALTHY._replace(dead_letters={"alpaca": 4}),
        HEALTHY._replace(dead_letters={"alpaca": 5}),
    ]
    seen = []
    previous = None
    for i, reading in enumerate(readings):
        changed = book.update(conditions(reading, previous, LIMITS), float(i * 5), float(i * 5))
        seen.append([(a.id, a.resolved) for a in changed])
        previous = reading
    assert seen == [
        [],
        [("dead_letters-1", False)],
        [],  # still arriving: the same alert
        [("dead_letters-1", True)],  # a quiet interval
        [],  # arriving again within the cooldown: not reopened
    ]


def test_an_unknown_rule_neither_resolves_nor_opens_and_ids_carry_the_token() -> None:
    book = AlertBook(cooldown_s=0, token="k3x9qa")
    opened = book.update([condition("latency")], 0.0, 0.0)
    assert [a.id for a in opened] == ["latency-k3x9qa.1"]
    assert book.update([], 5.0, 5.0, unknown={("latency", "")}) == []
    assert [a.id for a in book.open_alerts()] == ["latency-k3x9qa.1"]
    assert [a.resolved for a in book.update([], 10.0, 10.0)] == [True]
