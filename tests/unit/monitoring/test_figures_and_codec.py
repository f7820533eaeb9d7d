"""Rates, latency percentiles, dead-letter numbering and previews, and the monitoring
wire shapes (the contract's), at the pure level."""

from __future__ import annotations

import json

import pytest

from tickcast.model.envelope import Envelope
from tickcast.model.monitoring import (
    Alert,
    AlertBatch,
    DeadLetterBatch,
    DeadLetterItem,
    Pipeline,
    ProviderFlow,
    Severity,
    SystemMetrics,
    Telemetry,
)
from tickcast.model.topic import Topic
from tickcast.monitoring.figures import DeadLetterLog, Letter, above_top, percentiles, preview, rate
from tickcast.protocols.monitoring import codec

T = 1_796_470_200.123  # 2026-12-05T11:30:00.123Z


def test_rate() -> None:
    assert rate(150, 100, 5.0) == 10.0
    assert rate(100, 100, 5.0) == 0.0
    assert rate(10, 100, 5.0) == 0.0  # the counter went back
    assert rate(150, 100, 0.0) == 0.0


def test_percentiles_from_histogram_bucket_deltas() -> None:
    bounds = (0.001, 0.01, 0.1)
    before = [0, 0, 0, 0]
    # 100 observations: 50 under 1 ms, 45 in (1, 10] ms, 5 in (10, 100] ms
    now = [50, 95, 100, 100]
    p50, p95, p99 = percentiles(bounds, now, before)
    assert p50 == 1.0
    assert p95 == 10.0
    assert p99 is not None
    assert 10.0 < p99 <= 100.0
    # only the interval counts: the same cumulative counts again mean nothing observed
    assert percentiles(bounds, now, now) == [None, None, None]
    # over the last bound: reported as the last bound
    assert percentiles(bounds, [0, 0, 0, 10], None) == [100.0, 100.0, 100.0]
    # ... a lower bound, which above_top tells
    assert above_top([0, 0, 0, 10], None, 0.99)
    assert not above_top(now, before, 0.99)
    assert above_top([50, 95, 98, 100], None, 0.99)  # 2 of 100 over: p99 is over
    assert not above_top(now, now, 0.99)  # nothing observed
    with pytest.raises(ValueError, match="a count per bound"):
        percentiles(bounds, [1, 2], None)


def test_preview_cuts_on_a_character_boundary() -> None:
    assert preview("abc", 16) == "abc"
    assert preview("é" * 10, 5) == "éé"  # 2 bytes each: 4 bytes, never half a character
    assert len(preview("x" * 5000, 512).encode()) == 512


def test_dead_letters_are_numbered_per_source_and_only_new_ones_returned() -> None:
    log = DeadLetterLog(preview_bytes=4, keep=3)
    letters = [Letter("alpaca", "bad json", "{oops", 1.0), Letter("polygon", "x", "[1,", 2.0)]
    first = log.observe("providers", {"alpaca": 1, "polygon": 1}, letters)
    assert [(d.id, d.preview) for d in first] == [("alpaca-1", "{oop"), ("polygon-1", "[1,")]
    assert log.observe("providers", {"alpaca": 1, "polygon": 1}, letters) == []
    letters += [Letter("alpaca", "e", "a", 3.0), Letter("alpaca", "e", "b", 4.0)]
    new = log.observe("providers", {"alpaca": 3, "polygon": 1}, letters)
    assert [d.id for d in new] == ["alpaca-2", "alpaca-3"]
    assert log.seen("providers") == 4
    # another group is counted apart; the log keeps the newest ``keep``
    signals = log.observe("signals", {"signals:redis": 1}, [Letter("signals:redis", "r", "z", 5)])
    assert [d.id for d in signals] == ["signals:redis-1"]
    assert [d.id for d in log.current()] == ["alpaca-2", "alpaca-3", "signals:redis-1"]


def test_more_letters_than_the_store_kept_gives_the_newest() -> None:
    log = DeadLetterLog(preview_bytes=64)
    kept = [Letter("alpaca", "e", str(n), float(n)) for n in (9, 10)]
    assert [d.id for d in log.observe("providers", {"alpaca": 10}, kept)] == [
        "alpaca-9",
        "alpaca-10",
    ]


def test_alerts_are_a_json_array_in_the_seed_shape() -> None:
    alert = Alert("stale_feed-3", "stale_feed", "", Severity.CRITICAL, "No data", "feed", T)
    frame = json.loads(
        codec.encode(Envelope(Topic("alerts", "gateway"), 1, T, AlertBatch((alert,))))
    )
    assert frame == [
        {
            "id": "stale_feed-3",
            "severity": "CRITICAL",
            "message": "No data",
            "timestamp": "2026-12-05T11:30:00.123Z",
            "source": "feed",
            "resolved": False,
        }
    ]
    assert json.loads(codec.encode_payload(AlertBatch(()))) == []


def test_metrics_pipeline_telemetry_and_dlq_shapes() -> None:
    metrics = SystemMetrics(T, 12.5, 2, 100, 400, 25.0, 6, 10, 60.0, 7, 8)
    assert json.loads(codec.encode_payload(metrics)) == {
        "timestamp": "2026-12-05T11:30:00.123Z",
        "cpu": {"usage": 12.5, "cores": 2},
        "memory": {"used": 100, "total": 400, "percentage": 25.0},
        "disk": {"used": 6, "total": 10, "percentage": 60.0},
        "network": {"bytesIn": 7, "bytesOut": 8},
    }
    flow = ProviderFlow("simulator", "up", True, 12.0, 0.2, 0, 1)
    pipeline = json.loads(codec.encode_payload(Pipeline(T, (flow,), 10.0, 20.0, 3, 4, 5)))
    assert pipeline["providers"] == [
        {
            "name": "simulator",
            "state": "up",
            "active": True,
            "messages_per_s": 12.0,
            "last_message_age_s": 0.2,
            "dead_letters": 0,
            "failovers": 1,
        }
    ]
    assert pipeline["hub"] == {
        "publish_per_s": 10.0,
        "deliveries_per_s": 20.0,
        "outbox_depth": 3,
        "conflated": 4,
        "slow_closes": 5,
    }
    telemetry = Telemetry(
        T, (("market_feed", 2), ("monitoring", 1)), 1.0, 2.0, 1.5, 3.0, None, 9, 4.5, 1.25
    )
    assert json.loads(codec.encode_payload(telemetry)) == {
        "timestamp": "2026-12-05T11:30:00.123Z",
        "connections": {"market_feed": 2, "monitoring": 1, "total": 3},
        "messages_in_per_s": 1.0,
        "messages_out_per_s": 2.0,
        "latency_ms": {"p50": 1.5, "p95": 3.0, "p99": None},
        "gc": {"collections": 9, "pause_ms_total": 4.5, "pause_ms_max": 1.25},
    }
    letter = DeadLetterItem("alpaca-1", "alpaca", "bad json", "{oops", T)
    assert json.loads(codec.encode_payload(DeadLetterBatch((letter,)))) == [
        {
            "id": "alpaca-1",
            "source": "alpaca",
            "reason": "bad json",
            "preview": "{oops",
            "timestamp": "2026-12-05T11:30:00.123Z",
        }
    ]
    assert json.loads(codec.error("no")) == {"type": "error", "data": {"message": "no"}}
