"""Garbage-collector pauses as a metric: each collection stops the event loop.

With thousands of long-lived connections a full (generation 2) collection walks every
tracked object of every connection, and its pause shows up directly as tail latency.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class GcPauses:
    """Times every collection, by generation, while installed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram(
            "tickcast_gc_pause_seconds",
            "Garbage-collection pauses by generation",
            ["generation"],
            buckets=PAUSE_BUCKETS,
            registry=registry,
        )
        self._started = 0.0
        self.collections = 0  # collections timed, ever
        self.total_s = 0.0  # their pauses, summed
        self.max_s = 0.0  # the longest pause since ``take_max`` last read it

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._started
            self.collections += 1
            self.total_s += pause
            if pause > self.max_s:
                self.max_s = pause
            self.histogram.labels(generation=str(info["generation"])).observe(pause)

    def take_max(self) -> float:
        """The longest pause since the last call (seconds), and start a new window."""
        longest, self.max_s = self.max_s, 0.0
        return longest

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
