"""Hub: topics to subscribers; each update is encoded once per wire format.

Rules: pure and synchronous. The hub fans out envelopes that are already stamped with
their topic, ``(epoch, seq)`` and server time (``hub/sequencer.py`` stamps them; a
follower would fan out what a leader stamped): it records each in history and the
last-value cache, encodes it once per wire format in use on that topic, and hands the
same bytes to every subscriber (each item stamped with its topic's key, ``Encoded.topic``).
An envelope of another epoch than its topic's last one
means the numbering restarted upstream: that topic's history is cleared, so that a
resume never mixes two numberings. It never awaits and never writes to a socket:
subscribers queue (their Outbox) and a pump writes. It knows nothing of any bus or
transport.

A subscription is to one topic, or channel-wide (``subscribe_channel``: every topic of a
channel, present and future). Channel-wide subscribers cost fan-out one branch per event
while there are none; while there are, each event of their channel merges them with the
topic's own subscribers per wire, still encoding once per wire. A subscriber holds a
channel either channel-wide or by topics, never both (``Overlap``), so nothing reaches it
twice.

Hooks (``on_first``, ``on_last``) tell a producer when a topic of a channel gets its
first subscriber and loses its last, counted across wires (channel-wide subscribers are
not counted: they name no topic), so it computes only what someone watches. They run in
``subscribe`` and ``unsubscribe``, never during fan-out.

A failure is contained where it happens: a codec that raises costs its wire that one
update, and a subscriber whose ``deliver`` raises is faulted (``Subscriber.fault``);
both are reported to ``Faults``, and the batch and the other subscribers go on. A hook
that raises is reported as ``"hook"``, and the subscription stands.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from tickcast.hub.cache import LastValueCache
from tickcast.hub.history import Gap, History
from tickcast.hub.sequencer import DEFAULT_EPOCH, Sequencer
from tickcast.model.book import OrderBook
from tickcast.model.channel import Channels, builtin
from tickcast.model.envelope import Envelope, ResumePoint
from tickcast.model.market import Bar, BookUpdate, Quote, Status
from tickcast.model.topic import Topic
from tickcast.observability.faults import Faults
from tickcast.protocols.wire import Codec, Encoded

#: Payload types the last-value cache keeps as they come (the newest envelope wins):
#: state, but not a book (kept whole, ``LastValueCache.update``) nor an event (not kept).
_PLAIN: frozenset[type] = frozenset({Quote, Bar, Status})


class _Slot:
    """What fan-out needs of one topic, computed once: its key (the topic's string), its
    conflation key (None: reliable), its channel, its history buffer (None: none yet, or
    history off);
    and the last envelope fanned out on it (None: none in this numbering), whose
    (epoch, seq) is the topic's position."""

    __slots__ = ("buffer", "channel", "conflation_key", "key", "last")

    def __init__(self, key: str, conflation_key: str | None, channel: str) -> None:
        self.key = key
        self.conflation_key = conflation_key
        self.channel = channel
        # made at the topic's first update (a topic only subscribed to holds none)
        self.buffer: deque[Envelope] | None = None
        self.last: Envelope | None = None


class Overlap(ValueError):
    """A subscriber asked for a channel-wide subscription and exact topics of one channel."""


class Subscriber(Protocol):
    """What the hub needs of a connection."""

    @property
    def wire(self) -> str:
        """Name of the codec this subscriber's frames are encoded with."""

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        """Queue ``item``; a ``key`` means conflatable (replace pending with same key).
        ``now``: the publish pass's monotonic time, one reading for the whole pass."""

    def fault(self) -> None:
        """``deliver`` raised: this subscriber's stream lost an item (a connection closes)."""


class Hub:
    """Subscriptions by topic, encode-once fan-out of stamped envelopes, cache and history.

    Args:
        codecs: wire format name -> codec; fronts register theirs at start.
        history_size: envelopes kept per topic for resume; 0 disables resume.
        faults: where contained failures (codecs, subscribers) are counted and logged.
        sequencer: the numbering the publisher stamps with (``LocalPublisher`` is given
            this one); its epoch is the current one for
            topics nothing was fanned out on yet. The composition root passes one with a
            fresh epoch (``new_epoch``); the default's fixed epoch is for tests and tools.
        channels: the channel registry (what conflates); the sequencer's when omitted,
            and the built-in channels when both are.

    Attributes:
        published: updates published.
        deliveries: items handed to subscribers (one per subscriber per update).
    """

    def __init__(
        self,
        codecs: dict[str, Codec] | None = None,
        history_size: int = 256,
        faults: Faults | None = None,
        sequencer: Sequencer | None = None,
        channels: Channels | None = None,
    ) -> None:
        self.codecs: dict[str, Codec] = dict(codecs or {})
        self.faults = Faults() if faults is None else faults
        self.history = History(history_size)
        self.cache = LastValueCache()
        if channels is None:
            channels = builtin() if sequencer is None else sequencer.channels
        self.channels = channels
        self.sequencer = Sequencer(DEFAULT_EPOCH, channels) if sequencer is None else sequencer
        # the epoch whose positions this hub does not know (joined under way), or ""
        self._unknown = ""
        # topic key -> wire -> subscribers; grouping by wire makes encode-once a lookup.
        self._subs: dict[str, dict[str, set[Subscriber]]] = {}
        # channel -> wire -> subscribers to every topic of that channel (channel-wide).
        self._wild: dict[str, dict[str, set[Subscriber]]] = {}
        # topic -> its key, conflation key, channel and history buffer, computed once per
        # topic from the registry, so that fan-out asks no registry per event.
        self._topics: dict[Topic, _Slot] = {}
        # channel -> hooks called with a topic that got its first / lost its last subscriber
        self._on_first: dict[str, list[Callable[[Topic], None]]] = {}
        self._on_last: dict[str, list[Callable[[Topic], None]]] = {}
        self.published = 0
        self.deliveries = 0

    # -- topics

    def _slot(self, topic: Topic) -> _Slot:
        key = str(topic)
        spec = self.channels.get(topic.channel)
        slot = self._topics[topic] = _Slot(key, key if spec.conflate else None, spec.name)
        return slot

    def conflation_key(self, topic: Topic) -> str | None:
        """What ``topic``'s pending updates conflate under in an outbox (its key), or None
        when its channel is reliable: from this hub's registry, as fan-out keys them."""
        slot = self._topics.get(topic)
        if slot is not None:
            return slot.conflation_key
        # computed, not kept: a topic asked about (a rated subscription to a symbol
        # nothing publishes) must not grow the hub for the process's life
        return str(topic) if self.channels.get(topic.channel).conflate else None

    @property
    def subscription_count(self) -> int:
        """Subscriptions to topics, and channel-wide ones (one each)."""
        subs = (self._subs, self._wild)
        return sum(len(s) for by in subs for wires in by.values() for s in wires.values())

    @property
    def topic_count(self) -> int:
        """Topics with at least one subscriber."""
        return len(self._subs)

    @property
    def epoch(self) -> str:
        """The current epoch: the sequencer's (what the publisher stamps with)."""
        return self.sequencer.epoch

    def position(self, topic: Topic) -> tuple[str, int] | None:
        """``(epoch, seq)`` of the last update fanned out on ``topic``; the current epoch
        and 0 when none was. A subscription made now receives what comes after it. None
        when this hub cannot know (it joined a numbering under way, or lost track of it,
        and nothing came on ``topic`` since: see ``renumber``)."""
        last = self._latest(topic)
        if last is not None:
            return (last.epoch, last.seq)
        if self._unknown == self.sequencer.epoch:
            return None
        return (self.sequencer.epoch, 0)

    def latest_seq(self, topic: Topic) -> int:
        """The seq of the last update fanned out on ``topic`` (0 when none)."""
        last = self._latest(topic)
        return 0 if last is None else last.seq

    def _latest(self, topic: Topic) -> Envelope | None:
        """The last envelope fanned out on ``topic`` (its (epoch, seq) is the topic's)."""
        slot = self._topics.get(topic)
        return None if slot is None else slot.last

    # -- fan-out (producers publish through ``hub/publisher.py``, which stamps first)

    def fan_out(self, envelopes: Iterable[Envelope], now: float) -> None:
        """Record and deliver envelopes already stamped with ``(epoch, seq)``; ``now`` is
        the pass's monotonic time, handed to every subscriber (the hub reads no clock).

        The per-envelope work with nobody subscribed is a few dict operations: the
        topic's slot (key, conflation key, channel, history buffer), its last envelope,
        the history append, the last-value cache's store (as ``LastValueCache.update``
        does it, inlined for quotes, bars, statuses and book updates) and the subscriber
        lookup.
        Nothing is encoded for a topic nobody holds.
        """
        topics = self._topics
        history = self.history
        subs = self._subs
        wild = self._wild
        cache = self.cache
        values = cache.values
        books = cache.books
        count = 0
        try:
            for envelope in envelopes:
                count += 1
                topic = envelope.topic
                slot = topics.get(topic)
                if slot is None:
                    slot = self._slot(topic)
                key = slot.key
                previous = slot.last
                if previous is not None and previous.epoch != envelope.epoch:
                    # the numbering restarted upstream: never mix the two
                    history.clear(key)
                slot.last = envelope
                buffer = slot.buffer
                if buffer is None:  # the topic's first update (or history is off)
                    buffer = slot.buffer = history.buffer(key)
                if buffer is not None:
                    buffer.append(envelope)
                payload = envelope.payload
                kind = type(payload)
                if kind in _PLAIN:
                    values[key] = envelope
                elif kind is BookUpdate:
                    book = books.get(key)
                    if book is None:
                        book = books[key] = OrderBook()
                    book.apply(payload)  # type: ignore[arg-type]
                    values[key] = envelope
                else:
                    cache.update(key, envelope)
                wires = subs.get(key)
                if wild:
                    everything = wild.get(slot.channel)
                    if everything:
                        wires = _merged(wires, everything)
                if wires:
                    self._deliver(envelope, wires, key, slot.conflation_key, now)
        finally:
            self.published += count

    def _deliver(
        self,
        envelope: Envelope,
        wires: dict[str, set[Subscriber]],
        key: str,
        conflation_key: str | None,
        now: float,
    ) -> None:
        """Encode ``envelope`` once per wire and hand it to that wire's subscribers."""
        ts = envelope.payload.ts
        for wire, subscribers in wires.items():
            try:
                item = Encoded(self.codecs[wire](envelope), ts=ts, topic=key)
            except Exception as exc:  # this wire misses this update; the rest go on
                self.faults.report("codec", exc, topic=key, seq=envelope.seq, wire=wire)
                continue
            self.deliveries += len(subscribers)
            for subscriber in subscribers:
                try:
                    subscriber.deliver(item, conflation_key, now)
                except Exception as exc:
                    self._faulted(subscriber, exc, key, envelope.seq)

    def _faulted(self, subscriber: Subscriber, exc: Exception, key: str, seq: int) -> None:
        """``subscriber`` raised on ``deliver``: report it, and fault it (its stream has
        lost an item). Its own fault() raising is contained too."""
        self.faults.report("subscriber", exc, topic=key, seq=seq)
        try:
            subscriber.fault()
        except Exception as again:
            self.faults.report("subscriber", again, topic=key, seq=seq, step="fault")

    def encode(self, wire: str, envelope: Envelope) -> Encoded:
        """Encode one envelope for one subscriber (snapshots and replays)."""
        payload = self.codecs[wire](envelope)
        return Encoded(payload, ts=envelope.payload.ts, topic=str(envelope.topic))

    # -- subscriptions

    def subscribe(self, subscriber: Subscriber, topic: Topic) -> Envelope | None:
        """Add a subscription; returns the topic's current value for an instant snapshot.

        Raises ``Overlap`` when ``subscriber`` holds ``topic``'s channel channel-wide.
        """
        if self._wild and subscriber in self._wild.get(topic.channel, {}).get(subscriber.wire, ()):
            raise Overlap(f"{topic}: the channel {topic.channel!r} is held channel-wide")
        key = str(topic)
        wires = self._subs.get(key)
        if wires is None:
            wires = self._subs[key] = {}
            wires.setdefault(subscriber.wire, set()).add(subscriber)
            self._call(self._on_first, "first", topic)
        else:
            wires.setdefault(subscriber.wire, set()).add(subscriber)
        return self.cache.get(key)

    def unsubscribe(self, subscriber: Subscriber, topic: Topic) -> None:
        if _discard(self._subs, str(topic), subscriber):
            self._call(self._on_last, "last", topic)

    # -- hooks

    def on_first(self, channel: str, hook: Callable[[Topic], None]) -> Callable[[], None]:
        """Call ``hook(topic)`` when a topic of ``channel`` gets its first subscriber
        (on any wire); returns its remover."""
        return _add(self._on_first, channel, hook)

    def on_last(self, channel: str, hook: Callable[[Topic], None]) -> Callable[[], None]:
        """Call ``hook(topic)`` when a topic of ``channel`` loses its last subscriber
        (on every wire); returns its remover."""
        return _add(self._on_last, channel, hook)

    def _call(
        self, hooks: dict[str, list[Callable[[Topic], None]]], which: str, topic: Topic
    ) -> None:
        for hook in hooks.get(topic.channel, ()):
            try:
                hook(topic)
            except Exception as exc:  # the subscription stands; the other hooks run
                self.faults.report("hook", exc, topic=topic, hook=which)

    @property
    def hooked_channels(self) -> frozenset[str]:
        """The channels whose first or last subscriber a producer is told of."""
        return frozenset(self._on_first) | frozenset(self._on_last)

    def watched(self, channels: frozenset[str]) -> list[Topic]:
        """The topics of ``channels`` that have a subscriber now."""
        watched: list[Topic] = []
        for key in self._subs:
            channel, _, name = key.partition(".")  # a channel's name has no dot
            if channel in channels:
                watched.append(Topic(channel, name))
        return watched

    def renumber(self, sequencer: Sequencer, *, from_zero: bool = True) -> None:
        """The numbering restarts (a cluster's new leader, a new epoch): publish in
        ``sequencer``'s from now on and forget every topic's position and history, so
        that a resume from an earlier epoch is a gap (answered with a reset and a
        snapshot) even on a topic nothing was published on since. The last values stay:
        they are the snapshots. ``from_zero``: the numbering starts now (a new epoch);
        False: it is under way (a node joining it, or one that missed part of it), so
        that a topic's position is unknown until its next update."""
        self.sequencer = sequencer
        self._unknown = "" if from_zero else sequencer.epoch
        for slot in self._topics.values():
            slot.last = None
        self.history.clear_all()

    def subscribe_channel(self, subscriber: Subscriber, channel: str) -> None:
        """Subscribe to every topic of ``channel``, present and future (nothing is sent:
        a front that wants the current values asks ``current``).

        Raises KeyError for a channel the registry does not know, and ``Overlap`` when
        ``subscriber`` holds topics of ``channel`` already (unsubscribe them first).
        """
        name = self.channels.get(channel).name
        prefix = f"{name}."
        for key, wires in self._subs.items():
            if key.startswith(prefix) and subscriber in wires.get(subscriber.wire, ()):
                raise Overlap(f"{key}: held already; the channel cannot also be channel-wide")
        self._wild.setdefault(name, {}).setdefault(subscriber.wire, set()).add(subscriber)

    def current(self, channel: str) -> list[Envelope]:
        """The current value of each topic of ``channel`` (what a channel-wide subscriber
        gets at once: each signal worker's status, say); events (trades, signals) have
        none."""
        return self.cache.of_channel(self.channels.get(channel).name)

    def unsubscribe_channel(self, subscriber: Subscriber, channel: str) -> None:
        """Drop a channel-wide subscription (nothing if ``subscriber`` had none)."""
        _discard(self._wild, channel, subscriber)

    def resume(self, topic: Topic, point: ResumePoint) -> list[Envelope] | Gap:
        """Envelopes after ``point`` on ``topic``, or a Gap (then send a snapshot).

        A point in another epoch than the topic's current one is always a Gap (reason
        ``epoch_changed``): its seq counts in another numbering, so nothing is replayed.
        A point without an epoch means the current one.
        """
        key = str(topic)
        last = self._latest(topic)
        latest, epoch = (0, self.sequencer.epoch) if last is None else (last.seq, last.epoch)
        if point.epoch is not None and point.epoch != epoch:
            return Gap(point.seq, self.history.oldest(key), latest, "epoch_changed", epoch)
        missed = self.history.resume(key, point.seq, latest)
        if isinstance(missed, Gap):
            return missed._replace(epoch=epoch)
        return missed


def _merged(
    exact: dict[str, set[Subscriber]] | None, everything: dict[str, set[Subscriber]]
) -> dict[str, set[Subscriber]]:
    """A topic's subscribers and its channel's channel-wide ones, per wire (disjoint:
    a subscriber holds a channel one way only)."""
    if not exact:
        return everything
    merged = dict(exact)
    for wire, subscribers in everything.items():
        own = merged.get(wire)
        merged[wire] = subscribers if own is None else own | subscribers
    return merged


def _add(
    hooks: dict[str, list[Callable[[Topic], None]]], channel: str, hook: Callable[[Topic], None]
) -> Callable[[], None]:
    listed = hooks.setdefault(channel, [])
    listed.append(hook)

    def remove() -> None:
        if hook in listed:
            listed.remove(hook)

    return remove


def _discard(table: dict[str, dict[str, set[Subscriber]]], key: str, sub: Subscriber) -> bool:
    """Remove ``sub`` from ``table[key]`` (by wire); True when that left ``key`` with no
    subscriber on any wire (the key is then gone from ``table``)."""
    wires = table.get(key)
    if wires is None:
        return False
    subscribers = wires.get(sub.wire)
    if subscribers is None or sub not in subscribers:
        return False
    subscribers.discard(sub)
    if subscribers:
        return False
    del wires[sub.wire]
    if wires:
        return False
    del table[key]
    return True
