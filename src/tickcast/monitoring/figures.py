"""The numbers the monitoring streams show, from the gateway's counters: rates,
latency percentiles, and dead letters numbered and previewed.

Rules: pure. The monitoring service reads counters every interval; what they mean over
that interval is computed here from two readings, with the interval's length given.

- ``rate(now, before, dt)``: a counter's rise per second (0 when ``dt`` is not > 0, or
  the counter went back: a restart of what counts).
- ``percentiles(bounds, now, before)``: latency percentiles of the observations made
  between two readings of a cumulative histogram (the Prometheus latency histogram's
  buckets: ``observability/metrics.py``), estimated at bucket resolution by linear
  interpolation within the bucket that holds the rank; a rank above the last bound (the
  overflow bucket) is given as that bound: a lower bound, which ``above_top`` tells.
  None when nothing was observed in the interval.
- ``DeadLetterLog``: the newest dead letters of every source as the ``/ws/dlq`` items,
  each numbered per source (``<source>-<n>``, the n-th of that source) and previewed
  (at most ``preview_bytes`` of UTF-8, cut on a character boundary).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from tickcast.model.monitoring import DeadLetterItem

#: Dead letters kept for a new ``/ws/dlq`` subscriber and the polling route.
KEEP_LETTERS = 100


def rate(now: float, before: float, dt: float) -> float:
    """``now - before`` per second over ``dt`` seconds, rounded to 0.01."""
    if dt <= 0 or now < before:
        return 0.0
    return round((now - before) / dt, 2)


def percentiles(
    bounds: Sequence[float],
    now: Sequence[float],
    before: Sequence[float] | None,
    qs: Sequence[float] = (0.5, 0.95, 0.99),
) -> list[float | None]:
    """Percentiles (milliseconds, 0.01 ms) of what a cumulative histogram observed
    between two readings.

    Args:
        bounds: the buckets' upper bounds in seconds, ascending, without +Inf.
        now, before: cumulative counts per bucket, ``len(bounds) + 1`` each (the last
            one +Inf's, the total); ``before`` None: from the start.
        qs: the quantiles wanted, in (0, 1].
    """
    if len(now) != len(bounds) + 1 or (before is not None and len(before) != len(now)):
        raise ValueError("a count per bound, and one for +Inf")
    counts = [n - (before[i] if before is not None else 0) for i, n in enumerate(now)]
    total = counts[-1]
    if total <= 0:
        return [None for _ in qs]
    found: list[float | None] = []
    for q in qs:
        rank = q * total
        value = bounds[-1]
        for i, cumulative in enumerate(counts[:-1]):
            if cumulative >= rank:
                lower = bounds[i - 1] if i else 0.0
                below = counts[i - 1] if i else 0.0
                inside = cumulative - below
                share = (rank - below) / inside if inside > 0 else 1.0
                value = lower + (bounds[i] - lower) * share
                break
        found.append(round(value * 1000, 2))
    return found


def above_top(now: Sequence[float], before: Sequence[float] | None, q: float) -> bool:
    """Whether the ``q`` quantile of what a cumulative histogram observed between two
    readings (as ``percentiles`` takes them) lies above its last bound: then the value
    ``percentiles`` gives for it is that bound, and the quantile is at least that."""
    if len(now) < 2 or (before is not None and len(before) != len(now)):
        raise ValueError("a count per bound, and one for +Inf")
    total = now[-1] - (before[-1] if before is not None else 0)
    top = now[-2] - (before[-2] if before is not None else 0)
    return total > 0 and top < q * total


def preview(text: str, limit_bytes: int) -> str:
    """The start of ``text``: at most ``limit_bytes`` bytes of UTF-8, whole characters."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit_bytes:
        return text
    return data[:limit_bytes].decode("utf-8", "ignore")


class Letter(NamedTuple):
    """A dead letter as its store keeps it: who sent it, why it was refused, what it
    was (text), when (wall seconds)."""

    source: str
    reason: str
    raw: str
    ts: float


class DeadLetterLog:
    """The newest dead letters of every source, as ``/ws/dlq`` items.

    Each group of sources (the providers' store, the signal service's) is observed
    apart: ``observe(group, totals, letters)`` is given the group's totals per source,
    ever, and its newest letters (newest last); it returns the letters that arrived
    since the group's last observation (the newest of them, when more arrived than the
    store keeps), oldest first, and keeps them.

    Args:
        preview_bytes: the longest preview of a payload.
        keep: letters kept (the newest).
    """

    def __init__(self, preview_bytes: int, keep: int = KEEP_LETTERS) -> None:
        self.preview_bytes = preview_bytes
        self._seen: dict[str, int] = {}
        self._letters: deque[DeadLetterItem] = deque(maxlen=max(1, keep))

    def observe(
        self, group: str, totals: Mapping[str, int], letters: Sequence[Letter]
    ) -> list[DeadLetterItem]:
        total = sum(totals.values())
        arrived = total - self._seen.get(group, 0)
        self._seen[group] = total
        if arrived <= 0:
            return []
        numbers = dict(totals)
        items: list[DeadLetterItem] = []
        for letter in reversed(letters[-arrived:]):
            n = numbers.get(letter.source, 0)
            numbers[letter.source] = n - 1
            items.append(
                DeadLetterItem(
                    f"{letter.source}-{max(n, 1)}",
                    letter.source,
                    letter.reason,
                    preview(letter.raw, self.preview_bytes),
                    letter.ts,
                )
            )
        items.reverse()
        self._letters.extend(items)
        return items

    def seen(self, group: str) -> int:
        """The dead letters of ``group`` observed so far (its totals' sum)."""
        return self._seen.get(group, 0)

    def current(self) -> list[DeadLetterItem]:
        """The newest letters kept, oldest first."""
        return list(self._letters)
