"""The client's receive queue: bounded, quotes conflated per symbol, nothing else dropped.

Rules: pure (the driver waits on it with an ``asyncio.Event``; this holds no lock and
reads no clock). A quote waits in the queue at most once per symbol: a newer quote of a
symbol whose quote the caller has not taken yet replaces it in place (the newer value
is delivered where the older one would have been) and is counted as conflated. So quotes
take at most one slot per symbol, whatever the caller's pace.

Everything else (trades, bars, book updates, signals, statuses, resets) is reliable: it
is queued whole, up to ``max_items``. When that many wait, ``put`` answers ``FULL`` and
queues nothing; the driver then either raises to the caller (``SlowConsumer``) or stops
reading the socket until the caller takes one (the server then applies its slow
consumer rule and closes the connection with 1013; the client reconnects and resumes).
Memory is bounded by ``max_items`` plus one quote per subscribed symbol, plus, only
while the caller awaits the answer to a request in ``block`` mode, what the server sent
before that answer (``put(force=True)``).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tickcast.model.market import Quote

T = TypeVar("T")


class Put(enum.Enum):
    QUEUED = "queued"
    CONFLATED = "conflated"
    FULL = "full"


class _Slot:
    """A quote's place in the queue; ``quote`` is the newest one not yet taken."""

    __slots__ = ("quote",)

    def __init__(self, quote: Quote) -> None:
        self.quote = quote


@dataclass
class ConflationStats:
    """Quotes replaced before the caller took them: in all, and per symbol."""

    total: int = 0
    by_symbol: dict[str, int] = field(default_factory=dict)


@dataclass
class ReceiveQueue(Generic[T]):
    """FIFO of messages for the caller. ``max_items`` bounds the reliable ones."""

    max_items: int = 10_000
    conflation: ConflationStats = field(default_factory=ConflationStats)
    _items: deque[T | _Slot] = field(default_factory=deque)
    _slots: dict[str, _Slot] = field(default_factory=dict)  # symbol -> its waiting quote
    _reliable: int = 0
    high_water: int = 0

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise ValueError("max_items must be at least 1")

    def __len__(self) -> int:
        return len(self._items)

    @property
    def reliable(self) -> int:
        """Reliable messages waiting."""
        return self._reliable

    def put(self, item: T, force: bool = False) -> Put:
        """Queue ``item``; ``force`` queues a reliable one over ``max_items`` (the driver
        does so only while its caller awaits an answer that comes behind it)."""
        if isinstance(item, Quote):
            slot = self._slots.get(item.symbol)
            if slot is not None:
                slot.quote = item
                stats = self.conflation
                stats.total += 1
                stats.by_symbol[item.symbol] = stats.by_symbol.get(item.symbol, 0) + 1
                return Put.CONFLATED
            slot = self._slots[item.symbol] = _Slot(item)
            self._items.append(slot)
        else:
            if self._reliable >= self.max_items and not force:
                return Put.FULL
            self._reliable += 1
            self._items.append(item)
        if len(self._items) > self.high_water:
            self.high_water = len(self._items)
        return Put.QUEUED

    def get(self) -> T | Quote | None:
        """The oldest message, or None when the queue is empty."""
        if not self._items:
            return None
        item = self._items.popleft()
        if isinstance(item, _Slot):
            del self._slots[item.quote.symbol]
            return item.quote
        self._reliable -= 1
        return item

    def drain(self) -> Iterator[T | Quote]:
        while (item := self.get()) is not None:
            yield item
