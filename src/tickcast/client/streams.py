"""What a client knows about its streams: positions, gaps, books, and what it asked for.

Rules: pure (no asyncio, no sockets, no clock). The feed driver (``feed.py``) hands every
decoded ``Update`` to ``Streams.accept``, every ``Reset``, ``Degraded`` and ``Resumed``
to ``reset``, ``degraded`` and ``resumed``, and delivers what they return; it
asks ``Streams`` what to send after a reconnect (``resubscribe``) and which books to
fetch again (``resnapshot``).

Per topic (``"trades.AAPL"``) a client keeps the last ``(epoch, seq)`` it delivered:

- a reliable topic (everything but quotes) must count up by exactly 1 within an epoch;
  a jump is a gap the server did not announce, made explicit here as a ``Reset`` with
  reason ``gap`` before the message (a book is then fetched again);
- a quote topic jumps whenever the server conflated quotes: counted, never a gap;
- a message at or before the position in the same epoch was already delivered (a
  replay that overlaps) and is dropped, so a caller sees each update once;
- a ``Reset`` from the server re-anchors the topic: the snapshot that follows (seq equal
  to the reset's) and the live updates after it are taken without a gap check;
- a ``Degraded`` from the server (this client fell behind; ``seq`` the last update it
  was sent) suspends the topic until its ``Resumed``: what comes between is the
  server's replay from ``seq + 1`` (checked as any update is), or its ``Reset`` (the
  history no longer reached back) and the snapshot. The ``Resumed`` is delivered with
  ``how`` set to ``reset`` or ``replay``, and puts the topic at its ``seq``: the live
  updates that follow from ``seq + 1`` are no gap, however far the seq moved while the
  topic was suspended. Only a replay that ended short of the ``Resumed``'s seq (a
  hole the server did not announce) is a gap, reported before the ``Resumed``. A
  connection that ends while a topic is suspended ends the suspension: the resume
  after the reconnect replays from the last position, or resets.

Books are kept from a snapshot and the deltas that follow it in an unbroken chain; a
delta without a book (or after a gap) is dropped and the book asked for again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tickcast.model.book import OrderBook
from tickcast.model.market import FEED, BookUpdate
from tickcast.model.topic import Channel
from tickcast.protocols.native.client import Degraded, Reset, Resumed, Update

#: Channels a client may subscribe to on the market feed.
CHANNELS = ("quotes", "trades", "bars", "book", "status", "signals")


def topic_name(channel: str, symbol: str) -> str:
    return f"{channel}.{symbol}"


def split_topic(topic: str) -> tuple[str, str]:
    channel, _, symbol = topic.partition(".")
    return channel, symbol


def normalize(symbols: Iterable[str], channels: Iterable[str]) -> list[str]:
    """The topics of a request, as the server names them (symbols upper-case, the status
    channel's one stream ``FEED``).

    Raises:
        ValueError: an unknown channel, no symbol or channel, or a symbol no channel of
            the request carries (the status channel has one symbol, ``FEED``, which the
            market channels do not carry): the server refuses such a request whole.
    """
    names = list(dict.fromkeys(s.strip().upper() for s in symbols))
    chans = check_channels(channels)
    if not names:
        raise ValueError("subscribe to at least one symbol on at least one channel")
    topics = [
        topic_name(c, s) for s in names for c in chans if (c == Channel.STATUS) == (s == FEED)
    ]
    if {split_topic(t)[1] for t in topics} != set(names):
        raise ValueError(
            f"the status channel has one symbol, {FEED}, which no other channel carries"
        )
    return topics


def check_channels(channels: Iterable[str]) -> list[str]:
    """``channels`` once each, in order.

    Raises:
        ValueError: none, or an unknown one.
    """
    chans = list(dict.fromkeys(channels))
    if not chans:
        raise ValueError("name at least one channel (None means every channel)")
    for c in chans:
        if c not in CHANNELS:
            raise ValueError(f"unknown channel {c!r}: choose from {', '.join(CHANNELS)}")
    return chans


@dataclass
class StreamCounters:
    """What ``Streams`` saw: duplicates dropped, gaps found, resets from the server,
    quotes the server conflated (seq jumps on quote topics), book deltas dropped; a slow
    client's suspended streams (``degraded``), those resumed by replay
    (``resumed_replay``, the updates replayed in ``replayed``) or after a reset
    (``resumed_reset``)."""

    duplicates: int = 0
    gaps: int = 0
    resets: int = 0
    server_conflated: int = 0
    book_deltas_dropped: int = 0
    degraded: int = 0
    resumed_replay: int = 0
    resumed_reset: int = 0
    replayed: int = 0


@dataclass
class Streams:
    """The wanted topics, the last position delivered per topic, and the books."""

    wanted: dict[str, None] = field(default_factory=dict)  # in subscription order
    positions: dict[str, tuple[str, int]] = field(default_factory=dict)
    books: dict[str, OrderBook] = field(default_factory=dict)
    counters: StreamCounters = field(default_factory=StreamCounters)
    #: topics the server suspended (``Degraded``) and has not resumed yet
    suspended: dict[str, Degraded] = field(default_factory=dict)
    _reset_while_suspended: set[str] = field(default_factory=set)
    _anchor: set[str] = field(default_factory=set)  # re-anchor on the next message
    _rejoined: set[str] = field(default_factory=set)  # anchored across a reconnect
    _resnapshot: dict[str, None] = field(default_factory=dict)  # to ask for
    _requested: set[str] = field(default_factory=set)  # asked for, not come yet

    # -- subscriptions

    def add(self, topics: Iterable[str]) -> None:
        for t in topics:
            self.wanted[t] = None

    def remove(self, topics: Iterable[str]) -> None:
        for t in topics:
            self.wanted.pop(t, None)
            self.positions.pop(t, None)
            self._anchor.discard(t)
            self._rejoined.discard(t)
            self.suspended.pop(t, None)
            self._reset_while_suspended.discard(t)
            channel, symbol = split_topic(t)
            if channel == Channel.BOOK:
                self.books.pop(symbol, None)
                self._resnapshot.pop(symbol, None)
                self._requested.discard(symbol)

    def resubscribe(self) -> list[tuple[list[str], list[str], dict[str, tuple[str, int]]]]:
        """What to send after a (re)connect: per channel, its symbols and the resume
        points of its reliable topics (``resume``)."""
        by_channel: dict[str, list[str]] = {}
        for t in self.wanted:
            channel, symbol = split_topic(t)
            by_channel.setdefault(channel, []).append(symbol)
        self._resnapshot.clear()
        self._requested.clear()
        # a reliable topic that resumes from its acknowledged start takes a message at
        # that very seq (a snapshot) or the next, and one past that is a gap
        self._rejoined = {t for t in self._anchor if not t.startswith("quotes.")}
        self.suspended.clear()  # a new connection: nothing of it is suspended
        self._reset_while_suspended.clear()
        return [(syms, [ch], self.resume(syms, ch)) for ch, syms in by_channel.items()]

    def resume(self, symbols: Iterable[str], channel: str) -> dict[str, tuple[str, int]]:
        """The resume points of ``symbols`` on ``channel``, as a (re)subscription sends
        them: a reliable topic resumes from its last position (the acknowledgement's
        when nothing came yet); quotes need none (the current one comes at once), nor a
        book the client does not hold (a snapshot comes)."""
        resume: dict[str, tuple[str, int]] = {}
        if channel == Channel.QUOTES:
            return resume
        for s in symbols:
            topic = topic_name(channel, s)
            position = self.positions.get(topic)
            if channel == Channel.BOOK and s not in self.books:
                self._anchor.add(topic)  # no book to resume: a snapshot comes
            elif position is not None and position[0]:
                resume[topic] = position
        return resume

    def acknowledged(self, positions: dict[str, tuple[str, int]]) -> None:
        """The server's positions of the topics a subscription added (``subscribed``
        with ``positions``): where each starts, so that a topic with nothing delivered
        yet still resumes after a reconnect. A topic that has a position keeps it (a
        resume replays from there); the next message of one that takes this is taken as
        it comes (it is the snapshot at this very seq, or the first update after it)."""
        for topic, position in positions.items():
            if topic in self.wanted and topic not in self.positions:
                self.positions[topic] = position
                self._anchor.add(topic)

    def refused(self, topic: str) -> Reset:
        """The server refused to resubscribe ``topic`` after a reconnect: it is no longer
        wanted, and the caller is told by this ``Reset`` (reason ``refused``)."""
        position = self.positions.get(topic)
        self.remove([topic])
        return Reset(topic, 0, position[1] if position else 0, "refused", None)

    def resnapshot(self) -> list[str]:
        """Symbols whose book must be fetched again (each once: taken from here). The
        driver unsubscribes and subscribes their book topics; the snapshot that comes
        re-anchors each topic."""
        symbols = list(self._resnapshot)
        self._resnapshot.clear()
        self._requested.update(symbols)
        self._anchor.update(topic_name(Channel.BOOK, s) for s in symbols)
        return symbols

    # -- incoming

    def reset(self, reset: Reset) -> Reset | None:
        """A reset from the server: the topic starts over at ``reset.seq`` (None: the
        topic is no longer wanted)."""
        if reset.topic not in self.wanted:
            return None
        self.counters.resets += 1
        if reset.topic in self.suspended:
            self._reset_while_suspended.add(reset.topic)
        if reset.epoch is not None:
            self.positions[reset.topic] = (reset.epoch, reset.seq)
        self._anchor.add(reset.topic)
        self._rejoined.discard(reset.topic)
        channel, symbol = split_topic(reset.topic)
        if channel == Channel.BOOK:
            self.books.pop(symbol, None)  # the snapshot that follows replaces it
        return reset

    def degraded(self, degraded: Degraded) -> Degraded | None:
        """The server suspended a topic of this slow client (None: the topic is no longer
        wanted). Nothing of it comes until its ``Resumed``, but the replay (or the reset
        and snapshot) that comes first."""
        topic = degraded.topic
        if topic not in self.wanted:
            return None
        self.counters.degraded += 1
        self.suspended[topic] = degraded
        self._reset_while_suspended.discard(topic)
        if degraded.epoch:
            # the last seq the server gave this client: what follows (the replay) must
            # start at seq + 1, whether or not anything of the topic came yet
            position = self.positions.get(topic)
            if position is None or position[0] != degraded.epoch or position[1] < degraded.seq:
                self.positions[topic] = (degraded.epoch, degraded.seq)
            self._anchor.discard(topic)
            self._rejoined.discard(topic)
        return degraded

    def resumed(self, resumed: Resumed) -> list[Reset | Resumed]:
        """A suspended topic is live again: the ``Resumed`` to deliver, its ``how`` set
        (``reset`` when the server reset the topic while it was suspended, else
        ``replay``), the topic's position moved to its ``seq`` (live updates follow from
        ``seq + 1``); before it, a gap's ``Reset`` if a replay ended short of that seq.
        Nothing when the topic is no longer wanted."""
        topic = resumed.topic
        if self.suspended.pop(topic, None) is None:
            return []  # never degraded (a stray or repeated notice): nothing resumed
        was_reset = topic in self._reset_while_suspended
        self._reset_while_suspended.discard(topic)
        if topic not in self.wanted:
            return []
        counters = self.counters
        out: list[Reset | Resumed] = []
        if was_reset:
            counters.resumed_reset += 1
        else:
            counters.resumed_replay += 1
        counters.replayed += resumed.replayed
        if resumed.epoch:
            position = self.positions.get(topic)
            same = position is not None and position[0] == resumed.epoch
            behind = position is None or not same or position[1] < resumed.seq
            checked = not was_reset and topic not in self._anchor
            if position is not None and checked and behind:
                # the replay stopped short, or the topic was renumbered without a reset
                out.append(self._gap(topic, resumed.seq, position[1], resumed.epoch))
            if behind:
                self.positions[topic] = (resumed.epoch, resumed.seq)
            self._anchor.discard(topic)  # known now: the next update is seq + 1
            self._rejoined.discard(topic)
        out.append(resumed._replace(how="reset" if was_reset else "replay"))
        return out

    def accept(self, update: Update) -> list[Update | Reset]:
        """What to deliver for ``update``: nothing (a duplicate, a delta without its
        book), the update, or a gap's ``Reset`` and then the update."""
        topic = update.topic
        if not topic:
            return [update] if self._book_ok(update) else []
        if topic not in self.wanted:
            return []  # in flight when it was unsubscribed: the caller asked to stop
        out: list[Update | Reset] = []
        position = self.positions.get(topic)
        if position is not None and topic not in self._anchor:
            epoch, seq = position
            if update.epoch == epoch:
                if update.seq <= seq:
                    self.counters.duplicates += 1
                    return []
                if update.seq != seq + 1:
                    if topic.startswith("quotes."):
                        self.counters.server_conflated += update.seq - seq - 1
                    else:
                        out.append(self._gap(topic, update.seq, seq, update.epoch))
            elif not topic.startswith("quotes."):
                out.append(self._gap(topic, update.seq, seq, update.epoch))
        elif position is not None and topic in self._rejoined:
            epoch, seq = position
            snapshot = isinstance(update.payload, BookUpdate) and update.payload.snapshot
            if update.epoch == epoch and update.seq > seq + 1 and not snapshot:
                out.append(self._gap(topic, update.seq, seq, update.epoch))
        self._rejoined.discard(topic)
        self._anchor.discard(topic)
        self.positions[topic] = (update.epoch, update.seq)
        if self._book_ok(update):
            out.append(update)
        return out

    def _gap(self, topic: str, seq: int, last: int, epoch: str) -> Reset:
        """A hole between ``last`` (delivered) and ``seq``: counted, the book dropped."""
        self.counters.gaps += 1
        channel, symbol = split_topic(topic)
        if channel == Channel.BOOK:
            self.books.pop(symbol, None)
        return Reset(topic, seq, last, "gap", epoch or None)

    def _book_ok(self, update: Update) -> bool:
        """Keep the book of a ``BookUpdate``; False for a delta that has no book."""
        book_update = update.payload
        if not isinstance(book_update, BookUpdate):
            return True
        symbol = book_update.symbol
        book = self.books.get(symbol)
        if book_update.snapshot:
            book = self.books[symbol] = OrderBook()
            self._resnapshot.pop(symbol, None)
            self._requested.discard(symbol)
        elif book is None:
            self.counters.book_deltas_dropped += 1
            wanted = topic_name(Channel.BOOK, symbol) in self.wanted
            if wanted and symbol not in self._requested:
                self._resnapshot[symbol] = None
            return False
        book.apply(book_update)
        return True
