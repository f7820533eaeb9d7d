"""Alert rules: what is wrong with the gateway, from a reading of its state.

Rules: pure. A ``Reading`` is the gateway's state at one evaluation (the monitoring
service takes it every ``monitoring_interval_s``); ``conditions(reading, previous,
thresholds)`` says which rules hold now, each as a ``Condition`` naming its rule, its
subject (a provider, a source; "" for the gateway), its severity and its message.
``alerts.AlertBook`` turns conditions into alerts that open and resolve.

Two kinds of rule:

- **level** rules hold while a value is past its threshold or a state lasts: a provider
  down, the feed failed over or down, a stale feed while the market is open, the
  outbox depth, CPU, memory, disk, the latency p99;
- **counter** rules hold when a counter rose since the previous reading (dead letters
  arrived, clients were closed for being slow, failures were contained, the feed
  failed over): they clear after an interval in which it did not. The first reading
  has nothing to compare with, so no counter rule holds on it.

- ``feed_down`` CRITICAL (feed): no provider feeds the hub, one is down (backing off
  or disabled) or has been since the hub was last fed (``Reading.down_since_fed``), and
  no other provider is starting: a down provider that retries (``starting``) does not
  resolve it, only a provider feeding the hub again does (before the feed starts,
  every provider is stopped: not an alert);
- ``stale_feed`` CRITICAL (feed): the market is open and the active provider has been
  silent for more than ``stale_feed_s``, silence counted as the feed's failover policy
  counts it (``Silence``): from the later of its last message, the moment it became
  active and the market's opening; a provider the feed does not judge silent (a
  replay, whose gaps are recorded data) is never stale;
- ``provider_down`` HIGH (feed), per provider: it is backing off or disabled;
- ``failed_over`` MEDIUM (feed): a less preferred provider feeds the hub;
- ``failover`` HIGH (feed), counter: the feed failed over;
- ``dead_letters`` MEDIUM (dlq), counter per source: dead letters arrived;
- ``slow_clients`` LOW (clients), counter: clients were closed for being slow;
- ``internal_errors`` HIGH (gateway), counter: failures were contained;
- ``outbox_depth`` HIGH (hub): the outboxes hold more than ``outbox_depth`` items;
- ``latency`` MEDIUM (hub): the interval's latency p99 is over ``latency_p99_ms``; a
  p99 above the histogram's top bucket is a lower bound (``latency_p99_above_top``)
  and counts as over any threshold; an interval with no latency sample judges nothing
  (the alert keeps its state: ``alerts.AlertBook``'s ``unknown``);
- ``cpu``, ``memory`` HIGH, ``disk`` CRITICAL (system): usage over its percentage (100:
  never); the CPU on two readings in a row (a burst, the gateway's own start among
  them, is not a condition), its message giving the lower of the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from tickcast.model.monitoring import Severity

#: Provider states that count as down.
DOWN_STATES = frozenset({"backoff", "disabled"})


class ProviderReading(NamedTuple):
    """One provider: its state (``providers.failover.State`` values), the age of its
    last message (None when none came) and, for the active provider, its silence as the
    feed counts it (``Silence``; None: not judged now)."""

    name: str
    state: str
    last_message_age_s: float | None
    silent_s: float | None = None


class Reading(NamedTuple):
    """The gateway's state at one evaluation.

    Attributes:
        providers: every provider, most preferred first.
        active: the provider feeding the hub ("" for none).
        preferred: the most preferred provider still usable ("" for none).
        market_open: whether the feed's market is open.
        failovers: failovers of the feed, ever.
        dead_letters: dead letters, ever, by source.
        slow_closes: clients closed for being slow, ever.
        internal_errors: failures contained, ever.
        outbox_depth: items queued in every client's outbox now.
        cpu_percent, memory_percent, disk_percent: the host's usage (None: unknown).
        latency_p99_ms: the interval's end-to-end latency p99 (None: nothing sampled).
        latency_p99_above_top: the p99 fell above the histogram's top bucket:
            ``latency_p99_ms`` is that bucket's bound, a lower bound.
        down_since_fed: the providers that have been down at some reading since a
            provider last fed the hub (``down_since_fed``): one of them retrying
            (``starting``) is no sign that the feed is coming back.
    """

    providers: tuple[ProviderReading, ...] = ()
    active: str = ""
    preferred: str = ""
    market_open: bool = False
    failovers: int = 0
    dead_letters: Mapping[str, int] = {}
    slow_closes: int = 0
    internal_errors: int = 0
    outbox_depth: int = 0
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    latency_p99_ms: float | None = None
    latency_p99_above_top: bool = False
    down_since_fed: frozenset[str] = frozenset()


def down_since_fed(
    providers: tuple[ProviderReading, ...], active: str, previous: Reading | None
) -> frozenset[str]:
    """``Reading.down_since_fed`` for a reading of ``providers`` with ``active``
    feeding the hub (""), after ``previous``: reset while a provider feeds the hub."""
    if active:
        return frozenset()
    down = {p.name for p in providers if p.state in DOWN_STATES}
    return frozenset(down | (previous.down_since_fed if previous is not None else set()))


class Silence:
    """How long the active provider has been silent, counted as the feed's failover
    policy counts it (``providers/failover.py``): from the later of its last message,
    the moment it became active and the market's opening. Fed one reading at a time
    (``update``), so "became active" and "the market opened" are the first reading
    that saw it (at most an interval late: the alert is, never early)."""

    def __init__(self) -> None:
        self._active = ""
        self._active_since = 0.0
        self._open_since: float | None = None

    def update(
        self, wall: float, active: str, market_open: bool, last_at: float, watched: bool
    ) -> float | None:
        """The silence of ``active`` at ``wall`` (seconds), given when its last message
        came (``last_at``, 0: never) and whether the feed judges its silence at all
        (``watched``: a replay's is not); None while nothing is judged (no active
        provider, the market closed, a provider not watched)."""
        if active != self._active:
            self._active, self._active_since = active, wall
        if not market_open:
            self._open_since = None
            return None
        if self._open_since is None:
            self._open_since = wall
        if not active or not watched:
            return None
        return round(max(0.0, wall - max(last_at, self._active_since, self._open_since)), 3)


def unknown(reading: Reading) -> set[tuple[str, str]]:
    """The rules ``reading`` cannot judge (their alerts keep their state): without a
    latency sample in the interval, ``latency`` neither holds nor clears."""
    return {("latency", "")} if reading.latency_p99_ms is None else set()


class Thresholds(NamedTuple):
    """The level rules' thresholds (settings ``alert_*``)."""

    cpu_percent: float = 90.0
    memory_percent: float = 90.0
    disk_percent: float = 90.0
    latency_p99_ms: float = 500.0
    stale_feed_s: float = 30.0
    outbox_depth: int = 100_000


class Condition(NamedTuple):
    """A rule that holds now: ``(rule, subject)`` names it (one alert per name)."""

    rule: str
    subject: str
    severity: Severity
    source: str
    message: str

    @property
    def name(self) -> tuple[str, str]:
        return (self.rule, self.subject)


def conditions(reading: Reading, previous: Reading | None, limits: Thresholds) -> list[Condition]:
    """The rules that hold at ``reading`` (counter rules against ``previous``)."""
    found = _feed(reading, limits)
    found += _levels(reading, previous, limits)
    if previous is not None:
        found += _counters(reading, previous)
    return found


def _feed(r: Reading, limits: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    states = {p.name: p for p in r.providers}
    # down now, or down since the hub was last fed and retrying now
    down = r.down_since_fed | {p.name for p in r.providers if p.state in DOWN_STATES}
    fresh = any(p.state == "starting" and p.name not in down for p in r.providers)
    if not r.active and down and not fresh:
        found.append(
            Condition(
                "feed_down",
                "",
                Severity.CRITICAL,
                "feed",
                "No provider feeds the hub: "
                + ", ".join(f"{p.name} is {p.state}" for p in r.providers),
            )
        )
    for p in r.providers:
        if p.state in DOWN_STATES:
            found.append(
                Condition(
                    "provider_down",
                    p.name,
                    Severity.HIGH,
                    "feed",
                    f"Provider {p.name} is down ({p.state})",
                )
            )
    if r.active and r.preferred and r.active != r.preferred:
        preferred = states.get(r.preferred)
        state = preferred.state if preferred is not None else "unknown"
        found.append(
            Condition(
                "failed_over",
                "",
                Severity.MEDIUM,
                "feed",
                f"The feed runs on {r.active}: the preferred provider {r.preferred} is {state}",
            )
        )
    active = states.get(r.active)
    silent = active.silent_s if active is not None else None
    if r.market_open and silent is not None and silent > limits.stale_feed_s:
        found.append(
            Condition(
                "stale_feed",
                "",
                Severity.CRITICAL,
                "feed",
                f"No message from {r.active} for {silent:.0f} s while the market is open "
                f"(threshold {limits.stale_feed_s:g} s)",
            )
        )
    return found


def _levels(r: Reading, p: Reading | None, limits: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    if r.outbox_depth > limits.outbox_depth:
        found.append(
            Condition(
                "outbox_depth",
                "",
                Severity.HIGH,
                "hub",
                f"{r.outbox_depth} items queued for clients (threshold {limits.outbox_depth})",
            )
        )
    p99 = r.latency_p99_ms
    if p99 is not None and (r.latency_p99_above_top or p99 > limits.latency_p99_ms):
        over = "over " if r.latency_p99_above_top else ""
        found.append(
            Condition(
                "latency",
                "",
                Severity.MEDIUM,
                "hub",
                f"Latency p99 is {over}{p99:.0f} ms (threshold {limits.latency_p99_ms:g} ms)",
            )
        )
    # CPU is a rate over the interval, and a burst (the gateway's own start, a GC) is
    # not a condition: it must be over on two readings in a row (the first has none
    # before it). Memory and disk are levels: one reading tells.
    cpu_before = p.cpu_percent if p is not None else None
    sustained_cpu = None
    if r.cpu_percent is not None and cpu_before is not None:
        sustained_cpu = min(r.cpu_percent, cpu_before)
    for rule, value, limit, severity in (
        ("cpu", sustained_cpu, limits.cpu_percent, Severity.HIGH),
        ("memory", r.memory_percent, limits.memory_percent, Severity.HIGH),
        ("disk", r.disk_percent, limits.disk_percent, Severity.CRITICAL),
    ):
        if value is not None and value > limit:
            found.append(
                Condition(
                    rule,
                    "",
                    severity,
                    "system",
                    f"{rule.upper() if rule == 'cpu' else rule.capitalize()} usage is "
                    f"{value:.1f}% (threshold {limit:g}%)",
                )
            )
    return found


def _counters(r: Reading, p: Reading) -> list[Condition]:
    found: list[Condition] = []
    if r.failovers > p.failovers:
        found.append(
            Condition(
                "failover",
                "",
                Severity.HIGH,
                "feed",
                f"The feed failed over {r.failovers - p.failovers} time(s)"
                + (f"; it runs on {r.active}" if r.active else "; no provider feeds it"),
            )
        )
    for source, total in sorted(r.dead_letters.items()):
        rose = total - p.dead_letters.get(source, 0)
        if rose > 0:
            found.append(
                Condition(
                    "dead_letters",
                    source,
                    Severity.MEDIUM,
                    "dlq",
                    f"{rose} dead letter(s) from {source} ({total} in all)",
                )
            )
    if r.slow_closes > p.slow_closes:
        found.append(
            Condition(
                "slow_clients",
                "",
                Severity.LOW,
                "clients",
                f"{r.slow_closes - p.slow_closes} slow client(s) closed",
            )
        )
    if r.internal_errors > p.internal_errors:
        found.append(
            Condition(
                "internal_errors",
                "",
                Severity.HIGH,
                "gateway",
                f"{r.internal_errors - p.internal_errors} internal error(s) contained "
                "(see the log)",
            )
        )
    return found
