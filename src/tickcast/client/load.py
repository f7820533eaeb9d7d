"""What a load generator decides, shared by ``tickcast loadgen`` and the benchmark's load
client (bench/loadclient.py): which symbols each client takes, latency percentiles, and
a bounded sample of latencies.

Rules: pure; the random source is passed in.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field


def symbols_for(client: int, per_client: int, universe: Sequence[str]) -> list[str]:
    """Client ``client``'s symbols: ``universe[(client * per_client + j) % n]`` for
    ``j < per_client``, so that when ``clients * per_client`` is a multiple of ``n``
    every symbol has exactly as many subscribers (and otherwise within one)."""
    n = len(universe)
    if n == 0 or per_client < 1:
        raise ValueError("need at least one symbol and one symbol per client")
    return list(dict.fromkeys(universe[(client * per_client + j) % n] for j in range(per_client)))


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0 to 1) of ascending ``sorted_values``, nearest rank; None
    when there are none."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


@dataclass
class Reservoir:
    """A uniform sample of at most ``size`` values out of all those offered (Vitter's
    algorithm R), plus the exact count and maximum."""

    size: int = 100_000
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    values: list[float] = field(default_factory=list)
    count: int = 0
    maximum: float | None = None

    def add(self, value: float) -> None:
        self.count += 1
        if self.maximum is None or value > self.maximum:
            self.maximum = value
        if len(self.values) < self.size:
            self.values.append(value)
            return
        slot = self.rng.randrange(self.count)
        if slot < self.size:
            self.values[slot] = value

    def summary(self) -> dict[str, float | None]:
        """p50, p90, p99 and the exact max, in the values' unit."""
        ordered = sorted(self.values)
        return {
            "p50": percentile(ordered, 0.50),
            "p90": percentile(ordered, 0.90),
            "p99": percentile(ordered, 0.99),
            "max": self.maximum,
        }
