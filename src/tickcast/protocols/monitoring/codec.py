"""The monitoring sockets' wire: each payload as the JSON its socket carries.

Rules: pure. One wire (``WIRE``) serves the five monitoring channels; the shape follows
the payload's type::

    /ws/alerts    [{"id": "stale_feed-k3x9qa.3", "severity": "CRITICAL", "message": "...",
                    "timestamp": "2026-12-05T11:30:00.123Z", "source": "feed",
                    "resolved": false}, ...]
    /ws/metrics   {"timestamp": ..., "cpu": {"usage": 12.5, "cores": 2},
                   "memory": {"used": n, "total": n, "percentage": 41.2},
                   "disk": {"used": n, "total": n, "percentage": 63.0},
                   "network": {"bytesIn": n, "bytesOut": n}}
    /ws/pipeline  {"timestamp": ..., "providers": [{"name": ..., "state": ...,
                   "active": true, "messages_per_s": ..., "last_message_age_s": ...,
                   "dead_letters": n, "failovers": n}],
                   "hub": {"publish_per_s": ..., "deliveries_per_s": ...,
                   "outbox_depth": n, "conflated": n, "slow_closes": n}}
    /ws/telemetry {"timestamp": ..., "connections": {"<front>": n, ..., "total": n},
                   "messages_in_per_s": ..., "messages_out_per_s": ...,
                   "latency_ms": {"p50": ..., "p95": ..., "p99": ...},
                   "gc": {"collections": n, "pause_ms_total": ..., "pause_ms_max": ...}}
    /ws/dlq       [{"id": ..., "source": ..., "reason": ..., "preview": ...,
                    "timestamp": ...}, ...]
    error         {"type": "error", "data": {"message": "..."}}

Timestamps are ISO 8601 UTC with milliseconds and a ``Z``. The HTTP polling routes
answer with these same bytes (``encode_payload``), so that a poll and a socket frame of
one state are equal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

from tickcast.model.envelope import Envelope
from tickcast.model.monitoring import (
    Alert,
    AlertBatch,
    DeadLetterBatch,
    DeadLetterItem,
    MonitoringEvent,
    Pipeline,
    SystemMetrics,
    Telemetry,
)
from tickcast.model.signal import iso_utc

WIRE: Final = "monitoring"

_encoder: Final = msgspec.json.Encoder()


def alert(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "severity": a.severity.value,
        "message": a.message,
        "timestamp": iso_utc(a.timestamp),
        "source": a.source,
        "resolved": a.resolved,
    }


def alerts(items: Iterable[Alert]) -> list[dict[str, Any]]:
    return [alert(a) for a in items]


def metrics(m: SystemMetrics) -> dict[str, Any]:
    return {
        "timestamp": iso_utc(m.timestamp),
        "cpu": {"usage": m.cpu_usage, "cores": m.cores},
        "memory": {"used": m.memory_used, "total": m.memory_total, "percentage": m.memory_percent},
        "disk": {"used": m.disk_used, "total": m.disk_total, "percentage": m.disk_percent},
        "network": {"bytesIn": m.bytes_in, "bytesOut": m.bytes_out},
    }


def pipeline(p: Pipeline) -> dict[str, Any]:
    return {
        "timestamp": iso_utc(p.timestamp),
        "providers": [
            {
                "name": f.name,
                "state": f.state,
                "active": f.active,
                "messages_per_s": f.messages_per_s,
                "last_message_age_s": f.last_message_age_s,
                "dead_letters": f.dead_letters,
                "failovers": f.failovers,
            }
            for f in p.providers
        ],
        "hub": {
            "publish_per_s": p.publish_per_s,
            "deliveries_per_s": p.deliveries_per_s,
            "outbox_depth": p.outbox_depth,
            "conflated": p.conflated,
            "slow_closes": p.slow_closes,
        },
    }


def telemetry(t: Telemetry) -> dict[str, Any]:
    connections = dict(t.connections)
    connections["total"] = sum(n for _, n in t.connections)
    return {
        "timestamp": iso_utc(t.timestamp),
        "connections": connections,
        "messages_in_per_s": t.messages_in_per_s,
        "messages_out_per_s": t.messages_out_per_s,
        "latency_ms": {"p50": t.latency_p50_ms, "p95": t.latency_p95_ms, "p99": t.latency_p99_ms},
        "gc": {
            "collections": t.gc_collections,
            "pause_ms_total": t.gc_pause_ms_total,
            "pause_ms_max": t.gc_pause_ms_max,
        },
    }


def dead_letter(d: DeadLetterItem) -> dict[str, Any]:
    return {
        "id": d.id,
        "source": d.source,
        "reason": d.reason,
        "preview": d.preview,
        "timestamp": iso_utc(d.timestamp),
    }


def dead_letters(items: Iterable[DeadLetterItem]) -> list[dict[str, Any]]:
    return [dead_letter(d) for d in items]


_SHAPES: Final[dict[type, Callable[[Any], Any]]] = {
    AlertBatch: lambda b: alerts(b.alerts),
    SystemMetrics: metrics,
    Pipeline: pipeline,
    Telemetry: telemetry,
    DeadLetterBatch: lambda b: dead_letters(b.letters),
}


def shape(payload: MonitoringEvent) -> Any:
    """``payload`` as JSON-ready data (TypeError for anything else)."""
    try:
        build = _SHAPES[type(payload)]
    except KeyError:
        raise TypeError(f"not a monitoring payload: {type(payload).__name__}") from None
    return build(payload)


def encode_payload(payload: MonitoringEvent) -> bytes:
    """``payload`` as its socket's frame text (and the polling route's body)."""
    return _encoder.encode(shape(payload))


def encode(envelope: Envelope) -> bytes:
    """The hub's codec for ``WIRE``."""
    payload = envelope.payload
    if not isinstance(payload, AlertBatch | SystemMetrics | Pipeline | Telemetry | DeadLetterBatch):
        raise TypeError(f"not a monitoring payload: {type(payload).__name__}")
    return encode_payload(payload)


def error(message: str) -> bytes:
    """An error in the monitoring sockets' words (sent before a refusal's close)."""
    return _encoder.encode({"type": "error", "data": {"message": message}})


CODECS: Final = {WIRE: encode}
