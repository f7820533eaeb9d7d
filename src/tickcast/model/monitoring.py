"""The monitoring streams' payloads: alerts, system metrics, the pipeline, telemetry and
dead letters, as the hub carries them (one channel each, read by operators only).

Rules: pure data. Times are wall seconds (epoch, UTC) given by the producer, never read
here; the wire shapes (ISO 8601 strings, camelCase where the seed has it) are the codec's
(``protocols/monitoring/codec.py``). Every payload is published under one key
(``GATEWAY``): each channel is one stream of this gateway's state.

- ``AlertBatch``: the alerts that changed in one evaluation (opened or resolved), or,
  for a new subscriber, the open ones: every frame of ``/ws/alerts`` is an array.
  Reliable: a change is news, never replaced by the next one.
- ``SystemMetrics``, ``Pipeline``, ``Telemetry``: the latest sample of each; a newer one
  replaces a pending older one (conflated).
- ``DeadLetterBatch``: dead letters that arrived since the last look. Reliable.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

#: The one key every monitoring payload is published under.
GATEWAY: Final = "gateway"


class Severity(enum.StrEnum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class Alert(msgspec.Struct, frozen=True):
    """One alert, as it is now.

    Attributes:
        id: ``<rule>-<n>``, unique in this process (a reopened alert gets a new one).
        rule: the rule that raised it (``stale_feed``, ``cpu``...).
        subject: what it is about within the rule (a provider's name, a source), "" when
            the rule has one subject: the gateway.
        severity: CRITICAL, HIGH, MEDIUM or LOW.
        message: what is wrong, for people.
        source: the part of the gateway it concerns (``feed``, ``system``, ``hub``...).
        timestamp: when it opened, or, once resolved, when it resolved (wall seconds).
        resolved: whether its condition has cleared.
    """

    id: str
    rule: str
    subject: str
    severity: Severity
    message: str
    source: str
    timestamp: float
    resolved: bool = False


class AlertBatch(msgspec.Struct, frozen=True):
    """Alerts in one frame of ``/ws/alerts`` (changes, or the open ones on connect)."""

    alerts: tuple[Alert, ...]
    key: str = GATEWAY

    @property
    def ts(self) -> float:
        """No event time for the latency figure (the gateway's own news)."""
        return 0.0


class SystemMetrics(msgspec.Struct, frozen=True):
    """The host as psutil sees it. Bytes are totals since boot (the network's too).
    A part whose reading failed (the disk's path gone...) is None throughout."""

    timestamp: float
    cpu_usage: float | None
    cores: int
    memory_used: int | None
    memory_total: int | None
    memory_percent: float | None
    disk_used: int | None
    disk_total: int | None
    disk_percent: float | None
    bytes_in: int | None
    bytes_out: int | None
    key: str = GATEWAY

    @property
    def ts(self) -> float:
        return 0.0


class ProviderFlow(msgspec.Struct, frozen=True):
    """One upstream provider in the pipeline.

    Attributes:
        last_message_age_s: seconds since its last message; None when none came yet.
        failovers: times the feed failed over away from it.
    """

    name: str
    state: str
    active: bool
    messages_per_s: float
    last_message_age_s: float | None
    dead_letters: int
    failovers: int


class Pipeline(msgspec.Struct, frozen=True):
    """The providers, and the hub: rates over the last interval, depths now."""

    timestamp: float
    providers: tuple[ProviderFlow, ...]
    publish_per_s: float
    deliveries_per_s: float
    outbox_depth: int
    conflated: int
    slow_closes: int
    key: str = GATEWAY

    @property
    def ts(self) -> float:
        return 0.0


class Telemetry(msgspec.Struct, frozen=True):
    """Clients and their traffic over the last interval.

    Attributes:
        connections: (front name, open connections), by name.
        latency_p50_ms, latency_p95_ms, latency_p99_ms: end-to-end latency of the
            deliveries sampled in the interval (None when none was).
        gc_collections, gc_pause_ms_total: collections and their pauses, ever.
        gc_pause_ms_max: the longest pause in the interval.
    """

    timestamp: float
    connections: tuple[tuple[str, int], ...]
    messages_in_per_s: float
    messages_out_per_s: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    gc_collections: int
    gc_pause_ms_total: float
    gc_pause_ms_max: float
    key: str = GATEWAY

    @property
    def ts(self) -> float:
        return 0.0


class DeadLetterItem(msgspec.Struct, frozen=True):
    """One dead letter on ``/ws/dlq``.

    Attributes:
        id: ``<source>-<n>``: the n-th dead letter of that source in this process.
        source: a provider's name (``alpaca``), or ``signals:<source>`` (``signals:redis``).
        reason: why it was refused (the parser's or the intake's words).
        preview: the start of the payload, at most ``dlq_preview_bytes`` of UTF-8.
        timestamp: when it was received (wall seconds).
    """

    id: str
    source: str
    reason: str
    preview: str
    timestamp: float


class DeadLetterBatch(msgspec.Struct, frozen=True):
    """Dead letters in one frame of ``/ws/dlq``, oldest first."""

    letters: tuple[DeadLetterItem, ...]
    key: str = GATEWAY

    @property
    def ts(self) -> float:
        return 0.0


#: The monitoring payloads, by channel name (``model/channel.builtin`` registers them).
CHANNELS: Final = (
    ("alerts", AlertBatch, False),
    ("metrics", SystemMetrics, True),
    ("pipeline", Pipeline, True),
    ("telemetry", Telemetry, True),
    ("dlq", DeadLetterBatch, False),
)

MonitoringEvent = AlertBatch | SystemMetrics | Pipeline | Telemetry | DeadLetterBatch
