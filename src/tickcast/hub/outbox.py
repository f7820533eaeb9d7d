"""Outbox: a per-connection bounded buffer that conflates by key and batches by time.

Rules: pure. No asyncio, no clock: ``now`` is passed in (monotonic seconds). The outbox
never drops anything silently: a conflatable item replaces the pending item with the
same key (the latest value wins and keeps its place in the batch); a reliable item is
appended, and when it no longer fits ``put`` returns an ``Overflow`` verdict, on which
the caller closes the connection as a slow consumer.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Overflow:
    """Verdict: the outbox is full and the new item may not be dropped."""

    __slots__ = ("pending",)

    def __init__(self, pending: int) -> None:
        self.pending = pending

    def __repr__(self) -> str:
        return f"Overflow(pending={self.pending})"


class Outbox(Generic[T]):
    """Per-connection outbound buffer.

    Args:
        window_s: batching window in seconds, measured from the first item put into an
            empty outbox; 0 means the outbox is due as soon as it holds anything.
        max_items: most pending items; a reliable item (or a conflatable one with a new
            key) beyond it yields ``Overflow``. Must be at least 1.

    Attributes:
        conflated: how many items were replaced by a newer one with the same key.
    """

    __slots__ = ("_deadline", "_next_id", "_pending", "conflated", "max_items", "window_s")

    def __init__(self, window_s: float, max_items: int) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.window_s = window_s
        self.max_items = max_items
        # Reliable items get negative int keys, which never collide with the caller's
        # (string) conflation keys; dicts keep insertion order, so batches keep it too.
        self._pending: dict[object, T] = {}
        self._next_id = 0
        self._deadline: float | None = None
        self.conflated = 0

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, item: T, now: float, key: str | None = None) -> Overflow | None:
        """Queue ``item``; with a ``key`` it replaces a pending item with that key.

        Returns:
            ``Overflow`` when the item cannot be queued without dropping data, else None.
        """
        pending = self._pending
        if key is not None and key in pending:
            pending[key] = item
            self.conflated += 1
            return None
        if len(pending) >= self.max_items:
            return Overflow(len(pending))
        if not pending:
            self._deadline = now + self.window_s
        if key is None:
            self._next_id -= 1
            pending[self._next_id] = item
        else:
            pending[key] = item
        return None

    def next_flush(self) -> float | None:
        """When the pending batch is due (monotonic seconds), or None when empty."""
        return self._deadline

    def flush(self, now: float, *, force: bool = False) -> list[T]:
        """Take the pending batch if it is due at ``now`` (or ``force``), else []."""
        if self._deadline is None or (not force and now < self._deadline):
            return []
        batch = list(self._pending.values())
        self._pending.clear()
        self._deadline = None
        return batch

    def discard(self, key: str) -> bool:
        """Drop the pending conflatable item with ``key`` (after an unsubscribe)."""
        if self._pending.pop(key, None) is None:
            return False
        if not self._pending:
            self._deadline = None
        return True
