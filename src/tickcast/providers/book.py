"""BookBuilder: level-2 books checked for sequence continuity, resynced one symbol at a time.

Rules: pure (no clock, no I/O). Each symbol runs its own state machine, so a gap in one
book never disturbs another (cryptofeed#291 resets every pair on one gap; we do not)::

    EMPTY ──snapshot──▶ LIVE ──delta with a gap──▶ SYNCING ──snapshot──▶ LIVE
      │                  ▲  └─delta seq+1 / unsequenced: applied, published
      └─delta: buffered──┘     duplicate or older seq: dropped (counted)

- A provider that numbers its book updates (``sequence > 0``) must send ``last + 1``
  next; anything higher is a gap. An unnumbered update (sequence 0: Alpaca crypto, Polygon
  XL2) cannot be checked and is applied as it comes ("no guarantee", as cryptofeed says).
- While a symbol is EMPTY or SYNCING its deltas are buffered (bounded: on overflow the
  oldest are dropped, which the next snapshot makes harmless), nothing is published for
  it, and ``resync`` asks the driver for a fresh snapshot, once per gap.
- A snapshot replaces the book; buffered deltas newer than it are replayed (drop
  ``seq <= snapshot``, then each must follow the previous one), and one full snapshot is
  published, so that clients replace their book too.

Scope: one ``sequence`` per update, each the previous plus one (Coinbase's
``sequence_num``, the simulator). Binance's ranged updates (``U``..``u``, with the first
applied one straddling the snapshot's ``lastUpdateId``) would need the first id of each
update as well; no provider sends them yet. A resync is requested once per gap; the
driver does not re-ask if the snapshot never comes. Deltas dropped because the buffer
was full are counted in ``overflowed``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final, NamedTuple

from tickcast.model.book import OrderBook
from tickcast.model.market import BookUpdate, MarketEvent

#: Deltas kept per symbol while waiting for a snapshot.
MAX_BUFFERED: Final = 1000


class BookState(enum.Enum):
    EMPTY = "empty"
    LIVE = "live"
    SYNCING = "syncing"


class BookStep(NamedTuple):
    """What one update leads to.

    Attributes:
        publish: the updates to publish downstream (empty while the symbol resyncs).
        resync: True when the driver should fetch a fresh snapshot of this symbol now.
    """

    publish: tuple[BookUpdate, ...]
    resync: bool


_NOTHING: Final = BookStep((), False)


class _Symbol:
    __slots__ = ("book", "buffer", "last", "latest", "state")

    def __init__(self) -> None:
        self.state = BookState.EMPTY
        self.book = OrderBook()
        self.last = 0
        self.latest: BookUpdate | None = None  # the last update applied
        self.buffer: deque[BookUpdate] = deque(maxlen=MAX_BUFFERED)


class BookBuilder:
    """Per-symbol books with sequence checks. Counters are for metrics."""

    def __init__(self) -> None:
        self._symbols: dict[str, _Symbol] = {}
        self.gaps = 0
        self.duplicates = 0
        self.resyncs = 0
        self.overflowed = 0

    def state(self, symbol: str) -> BookState:
        entry = self._symbols.get(symbol)
        return entry.state if entry is not None else BookState.EMPTY

    def snapshots(self) -> list[BookUpdate]:
        """A full snapshot of every live book (to republish when this provider takes over)."""
        return [
            entry.book.snapshot(entry.latest)
            for entry in self._symbols.values()
            if entry.state is BookState.LIVE and entry.latest is not None
        ]

    def book(self, symbol: str) -> OrderBook | None:
        entry = self._symbols.get(symbol)
        return entry.book if entry is not None and entry.state is BookState.LIVE else None

    def apply(self, update: BookUpdate) -> BookStep:
        entry = self._symbols.get(update.symbol)
        if entry is None:
            entry = self._symbols[update.symbol] = _Symbol()
        if update.snapshot:
            return self._snapshot(entry, update)
        if entry.state is not BookState.LIVE:
            first = not entry.buffer and entry.state is BookState.EMPTY
            if len(entry.buffer) == MAX_BUFFERED:
                self.overflowed += 1
            entry.buffer.append(update)
            if first:
                self.resyncs += 1
            return BookStep((), first)
        seq = update.sequence
        if seq and entry.last:
            if seq <= entry.last:
                self.duplicates += 1
                return _NOTHING
            if seq != entry.last + 1:
                self.gaps += 1
                self.resyncs += 1
                entry.state = BookState.SYNCING
                entry.buffer.clear()
                entry.buffer.append(update)
                return BookStep((), True)
        entry.book.apply(update)
        entry.latest = update
        if seq:
            entry.last = seq
        return BookStep((update,), False)

    def fold(
        self,
        events: Iterable[MarketEvent],
        resync: Callable[[str], Iterable[MarketEvent]],
    ) -> list[MarketEvent]:
        """A batch through the checks: what to publish, in order. Each book update is
        ``apply``'d and replaced by what its step publishes; when a step asks for a
        resync, what ``resync(symbol)`` returns follows it at once. Other events pass.

        The same as ``apply`` per update, with the common case (a live book's next
        delta) taken here without building a step.
        """
        out: list[MarketEvent] = []
        append = out.append
        symbols = self._symbols
        live = BookState.LIVE
        for event in events:
            if type(event) is not BookUpdate:
                append(event)
                continue
            entry = symbols.get(event.symbol)
            if entry is not None and entry.state is live and not event.snapshot:
                seq = event.sequence
                last = entry.last
                if not seq or not last or seq == last + 1:  # applied, published
                    entry.book.apply(event)
                    entry.latest = event
                    if seq:
                        entry.last = seq
                    append(event)
                    continue
            step = self.apply(event)
            out.extend(step.publish)
            if step.resync:
                out.extend(resync(event.symbol))
        return out

    def _snapshot(self, entry: _Symbol, snapshot: BookUpdate) -> BookStep:
        entry.book.apply(snapshot)
        entry.last = snapshot.sequence
        entry.state = BookState.LIVE
        latest = snapshot
        buffered, entry.buffer = entry.buffer, deque(maxlen=MAX_BUFFERED)
        while buffered:
            delta = buffered.popleft()
            seq = delta.sequence
            if seq and entry.last:
                if seq <= entry.last:
                    continue
                if seq != entry.last + 1:  # a gap after the snapshot: fetch another
                    self.gaps += 1
                    self.resyncs += 1
                    entry.state = BookState.SYNCING
                    entry.buffer.append(delta)
                    entry.buffer.extend(buffered)
                    return BookStep((), True)
            entry.book.apply(delta)
            entry.last = seq or entry.last
            latest = delta
        entry.latest = latest
        return BookStep((entry.book.snapshot(latest),), False)
