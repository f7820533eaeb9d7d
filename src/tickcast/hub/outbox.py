"""Outbox: a per-connection bounded buffer that conflates by key and batches by time.

Rules: pure. No asyncio, no clock: ``now`` is passed in (monotonic seconds). The outbox
never drops anything silently: a conflatable item replaces the pending item with the
same key (the latest value wins and keeps its place in the batch, and ``conflated``
counts it); a reliable item is appended. The outbox is bounded by what it costs, in
items and in bytes: when an item does not fit, ``put`` refuses it with an ``Overflow``
verdict and the caller decides. The outbox cannot know why it is full (a client that
does not read, or a gateway that could not write in time); the connection can, so the
verdict is only "over budget", never "slow client".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Overflow:
    """Verdict: the item does not fit in the outbox's budget and may not be dropped.

    Attributes:
        pending: items pending when the item was refused.
        pending_bytes: their size in bytes.
    """

    __slots__ = ("pending", "pending_bytes")

    def __init__(self, pending: int, pending_bytes: int = 0) -> None:
        self.pending = pending
        self.pending_bytes = pending_bytes

    def __repr__(self) -> str:
        return f"Overflow(pending={self.pending}, pending_bytes={self.pending_bytes})"


def _no_size(_: object) -> int:
    return 0


class Outbox(Generic[T]):
    """Per-connection outbound buffer.

    Args:
        window_s: batching window in seconds, measured from the first item put into an
            empty outbox; 0 means the outbox is due as soon as it holds anything.
        max_items: most pending items (>= 1).
        max_bytes: most pending bytes, as ``size`` counts them; 0 = no byte limit. An
            empty outbox always takes one item, whatever its size, so that an item larger
            than the budget is never refused for ever.
        size: the cost of one item in bytes (e.g. its payload length); items cost 0
            when None.

    An item that would take the outbox past ``max_items`` or ``max_bytes`` is refused
    with ``Overflow``; a conflatable item that replaces a pending one is always taken
    (it adds no item, and at most the difference in size).

    Attributes:
        conflated: items replaced by a newer one with the same key, ever.
        pending_bytes: the bytes pending now.
    """

    __slots__ = (
        "_deadline",
        "_next_id",
        "_pending",
        "_size",
        "conflated",
        "max_bytes",
        "max_items",
        "pending_bytes",
        "window_s",
    )

    def __init__(
        self,
        window_s: float,
        max_items: int,
        max_bytes: int = 0,
        size: Callable[[T], int] | None = None,
    ) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0 (0 = no byte limit)")
        self.window_s = window_s
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._size: Callable[[T], int] = size if size is not None else _no_size
        # Reliable items get negative int keys, which never collide with the caller's
        # (string) conflation keys; dicts keep insertion order, so batches keep it too.
        self._pending: dict[object, T] = {}
        self._next_id = 0
        self._deadline: float | None = None
        self.conflated = 0
        self.pending_bytes = 0

    def __len__(self) -> int:
        return len(self._pending)

    def put(
        self, item: T, now: float, key: str | None = None, *, force: bool = False
    ) -> Overflow | None:
        """Queue ``item``; with a ``key`` it replaces a pending item with that key.

        ``force`` queues it past the budget (the caller decided the backlog is not the
        client's fault and bounds it itself).

        Returns:
            ``Overflow`` when the item does not fit (it was not queued, and nothing
            pending was touched), else None.
        """
        pending = self._pending
        size = self._size(item)
        if key is not None:
            old = pending.get(key)
            if old is not None:
                pending[key] = item
                self.pending_bytes += size - self._size(old)
                self.conflated += 1
                return None
        if (
            pending
            and not force
            and (
                len(pending) >= self.max_items
                or (self.max_bytes and self.pending_bytes + size > self.max_bytes)
            )
        ):
            return Overflow(len(pending), self.pending_bytes)
        if not pending:
            self._deadline = now + self.window_s
        if key is None:
            self._next_id -= 1
            pending[self._next_id] = item
        else:
            pending[key] = item
        self.pending_bytes += size
        return None

    def next_flush(self) -> float | None:
        """When the pending batch is due (monotonic seconds), or None when empty."""
        return self._deadline

    def flush(self, now: float, *, force: bool = False, max_bytes: int = 0) -> list[T]:
        """Take the pending batch if it is due at ``now`` (or ``force``), else [].

        With ``max_bytes`` (> 0) take only the oldest items that fit in that many bytes
        (always at least one); the rest stay pending, in order, and stay due.
        """
        if self._deadline is None or (not force and now < self._deadline):
            return []
        pending = self._pending
        if not max_bytes or self.pending_bytes <= max_bytes:
            batch = list(pending.values())
            pending.clear()
            self._deadline = None
            self.pending_bytes = 0
            return batch
        size = self._size
        keys: list[object] = []
        chunk: list[T] = []
        taken_bytes = 0
        for key, item in pending.items():
            cost = size(item)
            if chunk and taken_bytes + cost > max_bytes:
                break
            keys.append(key)
            chunk.append(item)
            taken_bytes += cost
        for key in keys:
            del pending[key]
        self.pending_bytes -= taken_bytes
        return chunk

    def discard(self, key: str) -> bool:
        """Drop the pending conflatable item with ``key`` (after an unsubscribe)."""
        item = self._pending.pop(key, None)
        if item is None:
            return False
        self.pending_bytes -= self._size(item)
        if not self._pending:
            self._deadline = None
        return True

    def discard_where(self, stale: Callable[[T], bool]) -> int:
        """Drop every pending item, conflatable or reliable, that ``stale`` says is no
        longer wanted (its subscription is gone); the rest keep their order. How many."""
        pending = self._pending
        size = self._size
        dropped = [key for key, item in pending.items() if stale(item)]
        for key in dropped:
            self.pending_bytes -= size(pending.pop(key))
        if not pending:
            self._deadline = None
        return len(dropped)

    def clear(self) -> int:
        """Drop everything pending (the connection is closing); how many items."""
        dropped = len(self._pending)
        self._pending.clear()
        self._deadline = None
        self.pending_bytes = 0
        return dropped
