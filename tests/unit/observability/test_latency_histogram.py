"""LatencyHistogram: plain ints on the write path, the samples of a prometheus Histogram."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from tickcast.observability.metrics import LATENCY_BUCKETS, Gauges, LatencyHistogram, Metrics
from tickcast.observability.stats import Stats

VALUES = [
    0.0,
    0.001,
    0.0025,
    0.0011,
    2.5,
    3.0,
    1e9,
    *[random.Random(7).random() for _ in range(200)],
]


def _lines(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines, ``_created`` (a creation time) left out."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_the_exposition_is_a_prometheus_histograms() -> None:
    reference = CollectorRegistry()
    expected = Histogram("t_seconds", "doc", buckets=LATENCY_BUCKETS, registry=reference)
    registry = CollectorRegistry()
    ours = LatencyHistogram("t_seconds", "doc", LATENCY_BUCKETS)
    registry.register(ours)
    for value in VALUES:
        expected.observe(value)
        ours.observe(value)
    assert _lines(registry) == _lines(reference)
    assert "t_seconds_created" in generate_latest(registry).decode()


def test_a_value_on_a_bound_counts_in_that_bucket() -> None:
    histogram = LatencyHistogram("t", "doc", (0.1, 0.2))
    histogram.observe(0.1)
    histogram.observe(0.2)
    histogram.observe(0.25)
    assert histogram.cumulative() == [1.0, 2.0, 3.0]


def test_the_cumulative_buckets_are_the_reference_histogram_buckets() -> None:
    reference = Histogram("t_seconds", "doc", buckets=LATENCY_BUCKETS, registry=CollectorRegistry())
    ours = LatencyHistogram("t_seconds", "doc", LATENCY_BUCKETS)
    for value in VALUES:
        reference.observe(value)
        ours.observe(value)
    buckets = [
        sample.value
        for family in reference.collect()
        for sample in family.samples
        if sample.name.endswith("_bucket")
    ]
    assert ours.cumulative() == buckets


def test_the_node_metrics_export_the_latency_histogram() -> None:
    gauges = Gauges(0, 0, 0, 0, 0, {}, "", {}, {}, {}, False, 0, 0.0, {})
    metrics = Metrics(Stats(), lambda: gauges)
    metrics.latency.observe(0.003)
    text = metrics.render().decode()
    assert 'tickcast_latency_seconds_bucket{le="0.005"} 1.0' in text
    assert 'tickcast_latency_seconds_bucket{le="0.0025"} 0.0' in text
    assert "tickcast_latency_seconds_count 1.0" in text


def test_buckets_must_increase() -> None:
    with pytest.raises(ValueError, match="increase"):
        LatencyHistogram("t", "doc", (0.2, 0.1))
