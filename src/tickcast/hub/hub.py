"""Hub: topics to subscribers; each update is encoded once per wire format.

Rules: pure and synchronous. The hub stamps each event with its topic's next sequence
number and the server time it is given, records it in history and the last-value cache,
encodes it once per wire format in use on that topic, and hands the same bytes to every
subscriber. It never awaits and never writes to a socket: subscribers queue (their
Outbox) and a pump writes. It knows nothing of any bus or transport.

A failure is contained where it happens: a codec that raises costs its wire that one
update, and a subscriber whose ``deliver`` raises is faulted (``Subscriber.fault``);
both are reported to ``Faults``, and the batch and the other subscribers go on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from tickcast.hub.cache import LastValueCache
from tickcast.hub.history import Gap, History
from tickcast.model.envelope import Envelope
from tickcast.model.topic import CONFLATABLE, Channel, Event, Topic, topic_of
from tickcast.observability.faults import Faults
from tickcast.protocols.wire import Codec, Encoded


class Subscriber(Protocol):
    """What the hub needs of a connection."""

    @property
    def wire(self) -> str:
        """Name of the codec this subscriber's frames are encoded with."""

    def deliver(self, item: Encoded, key: str | None) -> None:
        """Queue ``item``; a ``key`` means conflatable (replace pending with same key)."""

    def fault(self) -> None:
        """``deliver`` raised: this subscriber's stream lost an item (a connection closes)."""


class Hub:
    """Subscriptions by topic, publish with encode-once fan-out, cache and history.

    Args:
        codecs: wire format name -> codec; fronts register theirs at start.
        history_size: envelopes kept per topic for resume; 0 disables resume.
        faults: where contained failures (codecs, subscribers) are counted and logged.

    Attributes:
        published: updates published.
        deliveries: items handed to subscribers (one per subscriber per update).
    """

    def __init__(
        self,
        codecs: dict[str, Codec] | None = None,
        history_size: int = 256,
        faults: Faults | None = None,
    ) -> None:
        self.codecs: dict[str, Codec] = dict(codecs or {})
        self.faults = Faults() if faults is None else faults
        self.history = History(history_size)
        self.cache = LastValueCache()
        self._seq: dict[str, int] = {}
        # topic key -> wire -> subscribers; grouping by wire makes encode-once a lookup.
        self._subs: dict[str, dict[str, set[Subscriber]]] = {}
        self._topics: dict[tuple[Channel, str], tuple[Topic, str]] = {}
        self.published = 0
        self.deliveries = 0

    # -- topics

    def _topic(self, event: Event) -> tuple[Topic, str]:
        topic = topic_of(event)
        cached = self._topics.get((topic.channel, topic.symbol))
        if cached is None:
            cached = self._topics[(topic.channel, topic.symbol)] = (topic, str(topic))
        return cached

    @property
    def subscription_count(self) -> int:
        return sum(len(s) for wires in self._subs.values() for s in wires.values())

    @property
    def topic_count(self) -> int:
        """Topics with at least one subscriber."""
        return len(self._subs)

    def latest_seq(self, topic: Topic) -> int:
        return self._seq.get(str(topic), 0)

    # -- publish

    def publish(self, events: Iterable[Event], server_ts: float) -> None:
        """Publish a batch of events stamped with ``server_ts`` (epoch seconds UTC)."""
        seqs = self._seq
        for event in events:
            topic, key = self._topic(event)
            seq = seqs[key] = seqs.get(key, 0) + 1
            envelope = Envelope(topic, seq, server_ts, event)
            self.history.append(key, envelope)
            self.cache.update(key, envelope)
            self.published += 1
            wires = self._subs.get(key)
            if not wires:
                continue
            conflation_key = key if topic.channel in CONFLATABLE else None
            for wire, subscribers in wires.items():
                try:
                    item = Encoded(self.codecs[wire](envelope), ts=event.ts)
                except Exception as exc:  # this wire misses this update; the rest go on
                    self.faults.report("codec", exc, topic=key, seq=seq, wire=wire)
                    continue
                self.deliveries += len(subscribers)
                for subscriber in subscribers:
                    try:
                        subscriber.deliver(item, conflation_key)
                    except Exception as exc:
                        self._faulted(subscriber, exc, key, seq)

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
        return Encoded(self.codecs[wire](envelope), ts=envelope.payload.ts)

    # -- subscriptions

    def subscribe(self, subscriber: Subscriber, topic: Topic) -> Envelope | None:
        """Add a subscription; returns the topic's current value for an instant snapshot."""
        key = str(topic)
        self._subs.setdefault(key, {}).setdefault(subscriber.wire, set()).add(subscriber)
        return self.cache.get(key)

    def unsubscribe(self, subscriber: Subscriber, topic: Topic) -> None:
        key = str(topic)
        wires = self._subs.get(key)
        if wires is None:
            return
        subscribers = wires.get(subscriber.wire)
        if subscribers is None:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del wires[subscriber.wire]
            if not wires:
                del self._subs[key]

    def resume(self, topic: Topic, after_seq: int) -> list[Envelope] | Gap:
        """Envelopes after ``after_seq`` on ``topic``, or a Gap (then send a snapshot)."""
        key = str(topic)
        return self.history.resume(key, after_seq, self._seq.get(key, 0))
