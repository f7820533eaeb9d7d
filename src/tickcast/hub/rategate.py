"""RateGate: a per-key minimum interval between releases, holding the latest value.

Rules: pure. No asyncio, no clock: ``now`` is passed in (monotonic seconds). The gate
knows keys (an outbox's conflation keys, ``str(Topic)``) and opaque items; it never
looks inside an item, so the hub's encode-once items go through it untouched: the gate
only decides *when* an already-encoded, shared item may go out.

Why the gate sits in the outbox, keyed by the conflation key (``max_rate`` of the market
feed, docs/market-feed.md):

- A rate is a promise about one client's stream of one topic ("at most N messages a
  second, always the latest value"). Only a conflatable topic can keep it without losing
  anything: the value held back is *replaced* by a newer one, exactly as the outbox
  already conflates quotes within a batching window. So the gate is keyed by the
  conflation key, and the hub's channel registry decides which topics have one.
  Reliable topics (trades, bars, book, status, signals) have no conflation key: a rate
  asked for them is never applied, and each of their items travels in the batch it
  would have travelled in anyway. Nothing is dropped.
- Holding back must not cost the clients that ask for no rate anything: an outbox
  without a gate checks one attribute per keyed put, and the pump's FIFO (every mark is
  ``now + window``, so its deadlines never go backwards) is left as it is. A held value
  is due at ``last release + 1 / max_rate``, a time that goes backwards across keys; the
  connection that holds one therefore arms one loop timer of its own for the earliest
  due time (``next_due``), as it does for its session's deadlines. Connections without a
  rate arm nothing.
- Strictly "at most": a release is stamped with the time its batch is taken
  (``sent``), and the next value of that key is held until that time plus the
  interval. A value that arrives when its key is not held and the interval has passed is
  not held at all (``admits``): it joins the outbox's batch like any other quote, with
  the batching window, the byte budget and the forced flush after a client command (the
  snapshot on subscribe goes out with the ``subscribed`` reply) all as before.

The gate holds at most one item per rated key, so it needs no budget of its own: a
connection's rated keys are bounded by its subscription cap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Generic, TypeVar

T = TypeVar("T")


def interval_of(max_rate: float) -> float:
    """The minimum interval (seconds) between two releases at ``max_rate`` per second.
    (A protocol bounds what a client may ask for: ``protocols.base.MAX_RATE``.)

    Raises:
        ValueError: ``max_rate`` is not a finite number above 0 (a caller's bug: the
            session refuses such a request in its own words first).
    """
    if not (max_rate > 0 and math.isfinite(max_rate)):  # NaN fails the comparison too
        raise ValueError(f"max_rate must be a finite number above 0, not {max_rate}")
    return 1.0 / max_rate


class RateGate(Generic[T]):
    """Per-key minimum intervals, and the latest value held back per key.

    Attributes:
        intervals: key -> minimum seconds between two releases (only rated keys).
        replaced: held values replaced by a newer one of their key, ever.
    """

    __slots__ = ("_due", "_held", "_next", "_sent", "intervals", "replaced")

    def __init__(self) -> None:
        self.intervals: dict[str, float] = {}
        # key -> when it was last released (monotonic seconds); rated keys only
        self._sent: dict[str, float] = {}
        # key -> the latest value held back, and when it may go out
        self._held: dict[str, T] = {}
        self._due: dict[str, float] = {}
        # min(self._due.values()), kept up to date (a put must not scan the keys)
        self._next: float | None = None
        self.replaced = 0

    def __len__(self) -> int:
        """Values held back now."""
        return len(self._held)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is rated."""
        return key in self.intervals

    # -- rates

    def set_rate(self, key: str, max_rate: float | None) -> T | None:
        """Rate ``key`` at ``max_rate`` messages a second (None: unrated again).

        A new rate replaces the old one and counts from the key's last release. Made
        unrated, the key forgets its last release, and the value it held (if any) is
        returned: the caller queues it at once (it must not be lost).

        Raises:
            ValueError: ``max_rate`` is out of bounds (``interval_of``).
        """
        if max_rate is None:
            self.intervals.pop(key, None)
            self._sent.pop(key, None)
            return self._drop(key)
        interval = self.intervals[key] = interval_of(max_rate)
        if key in self._held:
            sent = self._sent.get(key)
            self._due[key] = 0.0 if sent is None else sent + interval
            self._next = min(self._due.values())
        return None

    def forget(self, key: str) -> T | None:
        """Drop ``key``'s rate, its last release and the value it held (unsubscribed);
        the value, if any, is returned (the caller discards it)."""
        self.intervals.pop(key, None)
        self._sent.pop(key, None)
        return self._drop(key)

    # -- values

    def admits(self, key: str, now: float) -> bool:
        """Whether a value of rated ``key`` may join the batch at ``now``: none is held
        and its interval since the last release has passed (or it never went out)."""
        if key in self._held:
            return False
        sent = self._sent.get(key)
        return sent is None or now >= sent + self.intervals[key]

    def hold(self, key: str, item: T) -> T | None:
        """Hold ``item`` as ``key``'s latest value, replacing the one held (returned);
        it is due one interval after the key's last release."""
        held = self._held
        old = held.get(key)
        held[key] = item
        if old is not None:
            self.replaced += 1
            return old
        sent = self._sent.get(key)
        # a key is held only after a release (``admits``); one never released is due at once
        due = self._due[key] = 0.0 if sent is None else sent + self.intervals[key]
        if self._next is None or due < self._next:
            self._next = due
        return None

    def next_due(self) -> float | None:
        """When the earliest held value may go out (monotonic seconds), or None."""
        return self._next

    def release(self, now: float) -> list[tuple[str, T]]:
        """Take the held values due at ``now``, in the order they were first held."""
        if self._next is None or now < self._next:
            return []
        due = self._due
        ready = [key for key, at in due.items() if at <= now]
        out = [(key, self._held.pop(key)) for key in ready]
        for key in ready:
            del due[key]
        self._next = min(due.values()) if due else None
        return out

    def sent(self, keys: Iterable[object], now: float) -> None:
        """``keys`` went out at ``now`` (a batch was taken): their intervals start over.
        Keys that are not rated are ignored."""
        intervals = self.intervals
        last = self._sent
        if isinstance(keys, Mapping | AbstractSet) and len(intervals) < len(keys):
            for rated in intervals:  # fewer rated keys than a batch of trades, say
                if rated in keys:
                    last[rated] = now
            return
        for key in keys:
            if isinstance(key, str) and key in intervals:
                last[key] = now

    def discard_where(self, stale: Callable[[T], bool]) -> list[T]:
        """Drop the held values ``stale`` says are no longer wanted; returns them."""
        gone = [key for key, item in self._held.items() if stale(item)]
        return [item for key in gone if (item := self._drop(key)) is not None]

    def clear(self) -> list[T]:
        """Drop every held value (the connection is closing); returns them."""
        items = list(self._held.values())
        self._held.clear()
        self._due.clear()
        self._next = None
        return items

    def _drop(self, key: str) -> T | None:
        item = self._held.pop(key, None)
        if item is not None:
            del self._due[key]
            self._next = min(self._due.values()) if self._due else None
        return item
