"""Outbox: a per-connection bounded buffer that conflates by key and batches by time.

Rules: pure. No asyncio, no clock: ``now`` is passed in (monotonic seconds). The outbox
never drops anything silently: a conflatable item replaces the pending item with the
same key (the latest value wins and keeps its place in the batch, and ``conflated``
counts it); a reliable item is appended. The outbox is bounded by what it costs, in
items and in bytes: when an item does not fit, ``put`` refuses it with an ``Overflow``
verdict and the caller decides. The outbox cannot know why it is full (a client that
does not read, or a gateway that could not write in time); the connection can, so the
verdict is only "over budget", never "slow client".

A key may be rated (``set_rate``: at most N releases a second, the latest value; see
``hub/rategate.py`` for why it lives here): a value of a rated key that comes before
its interval has passed is held back by the outbox's ``RateGate``, replacing the value
held before it, and ``put`` says so (``HELD``); it joins the batch that ``flush`` takes
once it is due (``next_release``). An outbox with no rated key has no gate and behaves,
and costs, as before.

Degraded (``conflate_all``, the connection's ``hub/degrade.py`` machine decides when):
every conflatable key is rated at the degraded interval, or at the client's own rate
when that is slower, whatever batching or rate the client chose, so that a per-tick
client gets latest-value conflation too; ``restore`` gives each key its own rate back
(a key with none queues the value it held at once). Reliable items are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Generic, TypeVar

from tickcast.hub.rategate import RateGate, interval_of

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


class Held:
    """Verdict: the item's key is rated and its interval has not passed: the item is
    held back (replacing the one held before it) until ``next_release``. Not an error:
    the caller needs only to see that the release is timed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HELD"


#: The one ``Held`` verdict.
HELD: Final = Held()


class Supersedes:
    """Verdict: the outbox is not ``conflating`` and a value of the item's key is
    pending: nothing was queued or replaced. The caller writes the pending batch first
    and puts the item again (the older value goes out before its successor)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SUPERSEDES"


#: The one ``Supersedes`` verdict.
SUPERSEDES: Final = Supersedes()


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
        conflated: items replaced by a newer one with the same key, ever (held values
            of a rated key included).
        pending_bytes: the bytes pending now (values held back by a rate not counted:
            at most one per rated key, bounded by the subscriptions).
        deadline: when the pending batch is due (monotonic seconds), None exactly when
            nothing is pending (read-only; ``next_flush`` returns it): the writer's hot
            path reads it rather than calling ``len`` or ``next_flush``.
        conflating: whether a newer value replaces the pending value of its key (True,
            the default). False: ``put`` answers ``SUPERSEDES`` instead and the caller
            writes the pending value first (a connection of window 0 sets it while its
            client takes its data, so that every update goes out; see
            ``transport/connection.py``). Puts with ``force``, and keys a rate holds
            (``set_rate``, ``conflate_all``: their promise is the latest value), always
            conflate.
    """

    __slots__ = (
        "_floor",
        "_gate",
        "_next_id",
        "_own",
        "_pending",
        "_size",
        "conflated",
        "conflating",
        "deadline",
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
        self.deadline: float | None = None  # None exactly while nothing is pending
        self.conflating = True
        # created by the first set_rate; None keeps the unrated hot path as it was
        self._gate: RateGate[T] | None = None
        # degraded: the least interval of every conflatable key (None: not degraded), and
        # the keys rated for it -> the client's own interval (None: it had no rate)
        self._floor: float | None = None
        self._own: dict[str, float | None] = {}
        self.conflated = 0
        self.pending_bytes = 0

    def __len__(self) -> int:
        return len(self._pending)

    def put(
        self, item: T, now: float, key: str | None = None, force: bool = False
    ) -> Overflow | Held | Supersedes | None:
        """Queue ``item``; with a ``key`` it replaces a pending item with that key (when
        ``conflating``, or with ``force``).

        ``force`` queues it past the budget (the caller decided the backlog is not the
        client's fault and bounds it itself). It and ``flush``'s parameters are not
        keyword-only: on Python 3.11 a call into a function with keyword-only parameters
        misses the interpreter's fast path, and these run once per delivery.

        Returns:
            ``Overflow`` when the item does not fit (it was not queued, and nothing
            pending was touched); ``HELD`` when its key is rated and it is held back
            until ``next_release``; ``SUPERSEDES`` when not ``conflating`` and its key
            has a value pending (nothing queued: write that first); else None.
        """
        pending = self._pending
        size = self._size(item)
        if key is not None:
            old = pending.get(key)
            if old is not None:
                if not self.conflating and not force and not self._limits(key):
                    return SUPERSEDES
                pending[key] = item
                self.pending_bytes += size - self._size(old)
                self.conflated += 1
                return None
            gate = self._gate
            if self._floor is not None and key not in self._own:
                gate = self._degrade_key(key)
            if gate is not None and key in gate.intervals and not gate.admits(key, now):
                if gate.hold(key, item) is not None:
                    self.conflated += 1
                return HELD
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
            self.deadline = now + self.window_s
        if key is None:
            self._next_id -= 1
            pending[self._next_id] = item
        else:
            pending[key] = item
        self.pending_bytes += size
        return None

    def _limits(self, key: str) -> bool:
        """Whether a rate holds ``key`` (its own, or the degraded one): its releases are
        the latest values, so a pending value is replaced, never written first."""
        gate = self._gate
        return self._floor is not None or (gate is not None and key in gate.intervals)

    def next_flush(self) -> float | None:
        """When the pending batch is due (monotonic seconds), or None when empty."""
        return self.deadline

    def next_release(self) -> float | None:
        """When the earliest value held back by a rate may go out (monotonic seconds),
        or None when none is held. ``flush`` at that time takes it."""
        gate = self._gate
        return None if gate is None else gate.next_due()

    @property
    def held(self) -> int:
        """Values held back by a rate now (not counted in ``len``)."""
        gate = self._gate
        return 0 if gate is None else len(gate)

    def rated(self, key: str) -> bool:
        """Whether ``key`` has a rate."""
        gate = self._gate
        return gate is not None and key in gate.intervals

    def set_rate(self, key: str, max_rate: float | None, now: float) -> bool:
        """At most ``max_rate`` releases a second of ``key`` (None: no limit again).

        A new rate replaces the old one and counts from the key's last release. When a
        key loses its rate, the value it held is queued at once (like a conflatable
        ``put`` at ``now``, past the budget).

        Returns:
            True when that queued an item (the caller marks a newly non-empty outbox).

        Raises:
            ValueError: ``max_rate`` is not a finite number above 0.
        """
        gate = self._gate
        floor = self._floor
        if floor is not None:  # degraded: remember the client's rate, apply the slower
            own = self._own[key] = None if max_rate is None else interval_of(max_rate)
            if gate is None:
                gate = self._gate = RateGate()
            gate.set_rate(key, 1.0 / (floor if own is None else max(own, floor)))
            return False
        if max_rate is None:
            if gate is None:
                return False
            item = gate.set_rate(key, None)
            if item is None:
                return False
            self.put(item, now, key, force=True)
            return True
        if gate is None:
            gate = self._gate = RateGate()
        gate.set_rate(key, max_rate)
        return False

    # -- degraded

    @property
    def degraded(self) -> bool:
        """Whether every conflatable key is held to the degraded interval now."""
        return self._floor is not None

    def conflate_all(self, interval_s: float) -> None:
        """Hold every conflatable key (from its next value on) to at most one release
        per ``interval_s``, the latest value, or to its own rate when that is slower.

        Raises:
            ValueError: ``interval_s`` is not above 0.
        """
        if not interval_s > 0:
            raise ValueError("interval_s must be above 0")
        self._floor = interval_s
        gate = self._gate
        if gate is not None:  # keys rated already: the slower of the two
            for key, own in list(gate.intervals.items()):
                if key not in self._own:
                    self._own[key] = own
                    gate.set_rate(key, 1.0 / max(own, interval_s))

    def restore(self, now: float) -> bool:
        """Every key back to the client's own rate (a key that had none is unrated, and
        the value it held is queued at once, past the budget). True when that queued an
        item (the caller marks a newly non-empty outbox)."""
        self._floor = None
        own, self._own = self._own, {}
        gate = self._gate
        if gate is None:
            return False
        queued = False
        for key, interval in own.items():
            if key not in gate.intervals:
                continue  # unsubscribed meanwhile
            if interval is None:
                item = gate.set_rate(key, None)
                if item is not None:
                    self.put(item, now, key, force=True)
                    queued = True
            else:
                gate.set_rate(key, 1.0 / interval)
        return queued

    def _degrade_key(self, key: str) -> RateGate[T]:
        """Rate ``key`` at the degraded interval (its first value while degraded)."""
        gate = self._gate
        if gate is None:
            gate = self._gate = RateGate()
        floor = self._floor
        assert floor is not None
        own = self._own[key] = gate.intervals.get(key)
        gate.set_rate(key, 1.0 / (floor if own is None else max(own, floor)))
        return gate

    def flush(self, now: float, force: bool = False, max_bytes: int = 0) -> list[T]:
        """Take the pending batch if it is due at ``now`` (or ``force``), else [].

        With ``max_bytes`` (> 0) take only the oldest items that fit in that many bytes
        (always at least one); the rest stay pending, in order, and stay due.

        Values held back by a rate that are due at ``now`` join the batch (at its end)
        and make it due, forced or not; one that is not due stays held, even when
        forced (a rate is a promise to the client). The rated keys taken start their
        interval again at ``now``.
        """
        gate = self._gate
        if gate is not None:
            due = gate.next_due()
            if due is not None and now >= due:
                self._release(gate, now)
        deadline = self.deadline
        if deadline is None or (not force and now < deadline):
            return []
        pending = self._pending
        if len(pending) == 1:  # one item (most batches at batch 0): always taken whole
            key, item = pending.popitem()  # keeps the dict's table for the next put
            if gate is not None:
                gate.sent((key,), now)
            self.deadline = None
            self.pending_bytes = 0
            return [item]
        if not max_bytes or self.pending_bytes <= max_bytes:
            if gate is not None:
                gate.sent(pending, now)
            batch = list(pending.values())
            pending.clear()
            self.deadline = None
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
        if gate is not None:
            gate.sent(keys, now)
        return chunk

    def _release(self, gate: RateGate[T], now: float) -> None:
        """Move the held values due at ``now`` into the batch, and make it due now."""
        pending = self._pending
        size = self._size
        for key, item in gate.release(now):
            old = pending.get(key)  # a rated key is never held while pending; be exact
            if old is not None:
                self.pending_bytes -= size(old)
            pending[key] = item
            self.pending_bytes += size(item)
        if pending and (self.deadline is None or self.deadline > now):
            self.deadline = now

    def discard(self, key: str) -> bool:
        """Drop the pending conflatable item with ``key`` (after an unsubscribe), and
        its rate and held value if it had one; whether an item was dropped."""
        gate = self._gate
        held = None if gate is None else gate.forget(key)
        self._own.pop(key, None)
        item = self._pending.pop(key, None)
        if item is None:
            return held is not None
        self.pending_bytes -= self._size(item)
        if not self._pending:
            self.deadline = None
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
            self.deadline = None
        gate = self._gate
        held = 0 if gate is None else len(gate.discard_where(stale))
        return len(dropped) + held

    def clear(self) -> int:
        """Drop everything pending (the connection is closing); how many items."""
        dropped = len(self._pending)
        if self._gate is not None:
            dropped += len(self._gate.clear())
        self._pending.clear()
        self.deadline = None
        self.pending_bytes = 0
        return dropped
