"""Last-value cache: what a new subscriber gets at once.

Rules: pure. Quotes and bars keep the latest envelope; the L2 book keeps the whole
current book (snapshot with deltas applied) so a late subscriber gets a full snapshot,
never a bare delta. Trades and trading signals are events, not state: nothing is cached
for them (a new subscriber of a symbol's signals gets the next one, not an old one
again; a client that missed some resumes from history).
"""

from __future__ import annotations

from tickcast.model.book import OrderBook
from tickcast.model.envelope import Envelope
from tickcast.model.market import BookUpdate, Trade
from tickcast.model.signal import Signal

#: Payloads that are events, not state: never a new subscriber's current value.
EVENTS: frozenset[type] = frozenset({Trade, Signal})


class LastValueCache:
    """Latest state per topic key (the topic's string form)."""

    __slots__ = ("books", "values")

    def __init__(self) -> None:
        #: key -> the latest envelope of a state topic. The hub's fan-out stores in it
        #: directly a payload that is neither an event (``EVENTS``) nor a book update,
        #: as ``update`` would: the hot path's one dict store, without a call.
        self.values: dict[str, Envelope] = {}
        #: key -> the whole current book of a book topic (the fan-out applies each book
        #: update to it, as ``update`` does, and stores the envelope in ``values``)
        self.books: dict[str, OrderBook] = {}

    def update(self, key: str, envelope: Envelope) -> None:
        payload = envelope.payload
        if type(payload) in EVENTS:
            return
        if isinstance(payload, BookUpdate):
            book = self.books.get(key)
            if book is None:
                book = self.books[key] = OrderBook()
            book.apply(payload)
        self.values[key] = envelope

    def of_channel(self, channel: str) -> list[Envelope]:
        """The current value of every topic of ``channel`` (a scan: for a channel-wide
        subscription's snapshot, which is rare; books are not served this way)."""
        prefix = f"{channel}."
        return [
            envelope
            for key, envelope in self.values.items()
            if key.startswith(prefix) and not isinstance(envelope.payload, BookUpdate)
        ]

    def get(self, key: str) -> Envelope | None:
        """The current value; for a book, a full snapshot carrying the latest seq."""
        envelope = self.values.get(key)
        if envelope is None or not isinstance(envelope.payload, BookUpdate):
            return envelope
        snapshot = self.books[key].snapshot(envelope.payload)
        return Envelope(envelope.topic, envelope.seq, envelope.server_ts, snapshot, envelope.epoch)
