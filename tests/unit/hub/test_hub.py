"""Hub: per-topic (epoch, seq), encode-once fan-out, subscriptions, cache and resume."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from support.publishing import stamp_and_fan_out
from tickcast.hub.history import Gap
from tickcast.hub.hub import Hub, Overlap
from tickcast.hub.sequencer import Sequencer
from tickcast.model.envelope import Envelope, ResumePoint
from tickcast.model.market import BookUpdate, Quote, Trade
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.wire import Encoded

TS = 1_700_000_000.0
QUOTES_AAPL = Topic(Channel.QUOTES, "AAPL")
TRADES_AAPL = Topic(Channel.TRADES, "AAPL")
EPOCH = "B"


def quote(symbol: str, price: float, ts: float = TS) -> Quote:
    return Quote(symbol, price - 0.01, price + 0.01, 1.0, 1.0, price, 100.0, ts, "test")


def trade(symbol: str, price: float, trade_id: str, ts: float = TS) -> Trade:
    return Trade(symbol, price, 1.0, ts, "test", trade_id)


class CountingCodec:
    """A codec that records every envelope it encodes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[Envelope] = []

    def __call__(self, envelope: Envelope) -> bytes:
        self.calls.append(envelope)
        return f"{self.name}:{envelope.topic}:{envelope.seq}".encode()


@dataclass(eq=False)
class FakeSubscriber:
    wire: str
    received: list[tuple[Encoded, str | None]] = field(default_factory=list)
    nows: list[float] = field(default_factory=list)

    faults: int = 0

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        self.received.append((item, key))
        self.nows.append(now)

    def fault(self) -> None:
        self.faults += 1

    @property
    def payloads(self) -> list[bytes]:
        return [item.payload for item, _ in self.received]


@pytest.fixture
def codecs() -> dict[str, CountingCodec]:
    return {"a": CountingCodec("a"), "b": CountingCodec("b")}


@pytest.fixture
def hub(codecs: dict[str, CountingCodec]) -> Hub:
    return Hub(dict(codecs), history_size=16, sequencer=Sequencer(EPOCH))


def test_seq_per_topic_starts_at_one_and_increments_by_one(
    hub: Hub, codecs: dict[str, CountingCodec]
) -> None:
    sub = FakeSubscriber("a")
    hub.subscribe(sub, QUOTES_AAPL)
    hub.subscribe(sub, Topic(Channel.QUOTES, "MSFT"))
    stamp_and_fan_out(
        hub, [quote("AAPL", 1.0), quote("MSFT", 2.0), quote("AAPL", 1.1)], server_ts=TS
    )
    stamp_and_fan_out(hub, [quote("AAPL", 1.2)], server_ts=TS + 1)
    seqs = [(str(e.topic), e.seq) for e in codecs["a"].calls]
    assert seqs == [
        ("quotes.AAPL", 1),
        ("quotes.MSFT", 1),
        ("quotes.AAPL", 2),
        ("quotes.AAPL", 3),
    ]
    assert hub.latest_seq(QUOTES_AAPL) == 3
    assert hub.latest_seq(Topic(Channel.QUOTES, "MSFT")) == 1
    assert hub.latest_seq(TRADES_AAPL) == 0


def test_publish_stamps_the_envelope_with_topic_and_server_time(
    hub: Hub, codecs: dict[str, CountingCodec]
) -> None:
    hub.subscribe(FakeSubscriber("a"), QUOTES_AAPL)
    event = quote("AAPL", 1.0)
    stamp_and_fan_out(hub, [event], server_ts=TS + 5)
    assert codecs["a"].calls == [Envelope(QUOTES_AAPL, 1, TS + 5, event, EPOCH)]


def test_encode_happens_once_per_wire_per_update_regardless_of_subscribers(
    hub: Hub, codecs: dict[str, CountingCodec]
) -> None:
    a_subs = [FakeSubscriber("a") for _ in range(50)]
    b_subs = [FakeSubscriber("b") for _ in range(3)]
    for sub in a_subs + b_subs:
        hub.subscribe(sub, QUOTES_AAPL)
    stamp_and_fan_out(hub, [quote("AAPL", 1.0), quote("AAPL", 1.1)], server_ts=TS)
    assert [e.seq for e in codecs["a"].calls] == [1, 2]
    assert [e.seq for e in codecs["b"].calls] == [1, 2]
    assert all(s.payloads == [b"a:quotes.AAPL:1", b"a:quotes.AAPL:2"] for s in a_subs)
    assert all(s.payloads == [b"b:quotes.AAPL:1", b"b:quotes.AAPL:2"] for s in b_subs)


def test_wire_with_no_subscriber_on_the_topic_is_not_encoded(
    hub: Hub, codecs: dict[str, CountingCodec]
) -> None:
    hub.subscribe(FakeSubscriber("a"), QUOTES_AAPL)
    hub.subscribe(FakeSubscriber("b"), Topic(Channel.QUOTES, "MSFT"))
    stamp_and_fan_out(hub, [quote("AAPL", 1.0), quote("TSLA", 3.0)], server_ts=TS)
    assert [str(e.topic) for e in codecs["a"].calls] == ["quotes.AAPL"]
    assert codecs["b"].calls == []


def test_same_encoded_object_goes_to_every_subscriber_of_a_wire(hub: Hub) -> None:
    subs = [FakeSubscriber("a") for _ in range(3)]
    for sub in subs:
        hub.subscribe(sub, QUOTES_AAPL)
    stamp_and_fan_out(hub, [quote("AAPL", 1.0, ts=TS - 0.25)], server_ts=TS)
    items = [sub.received[0][0] for sub in subs]
    assert items[0] is items[1] is items[2]
    assert items[0].ts == TS - 0.25  # event time, for latency metrics
    assert items[0].control is False


def test_quotes_get_a_conflation_key_and_trades_none(hub: Hub) -> None:
    sub = FakeSubscriber("a")
    hub.subscribe(sub, QUOTES_AAPL)
    hub.subscribe(sub, TRADES_AAPL)
    hub.subscribe(sub, Topic(Channel.BOOK, "AAPL"))
    stamp_and_fan_out(
        hub,
        [
            quote("AAPL", 1.0),
            trade("AAPL", 1.0, "t1"),
            BookUpdate("AAPL", ((1.0, 1.0),), ((1.1, 1.0),), True, TS, "test"),
        ],
        server_ts=TS,
    )
    assert [(item.payload, key) for item, key in sub.received] == [
        (b"a:quotes.AAPL:1", "quotes.AAPL"),
        (b"a:trades.AAPL:1", None),
        (b"a:book.AAPL:1", None),
    ]


def test_unsubscribe_stops_delivery(hub: Hub) -> None:
    stays, leaves = FakeSubscriber("a"), FakeSubscriber("a")
    hub.subscribe(stays, QUOTES_AAPL)
    hub.subscribe(leaves, QUOTES_AAPL)
    stamp_and_fan_out(hub, [quote("AAPL", 1.0)], server_ts=TS)
    hub.unsubscribe(leaves, QUOTES_AAPL)
    stamp_and_fan_out(hub, [quote("AAPL", 1.1)], server_ts=TS)
    assert leaves.payloads == [b"a:quotes.AAPL:1"]
    assert stays.payloads == [b"a:quotes.AAPL:1", b"a:quotes.AAPL:2"]
    assert hub.subscription_count == 1


def test_unsubscribe_cleans_empty_topics(hub: Hub, codecs: dict[str, CountingCodec]) -> None:
    a, b = FakeSubscriber("a"), FakeSubscriber("b")
    hub.subscribe(a, QUOTES_AAPL)
    hub.subscribe(b, QUOTES_AAPL)
    hub.unsubscribe(b, QUOTES_AAPL)
    hub.unsubscribe(a, QUOTES_AAPL)
    assert hub.subscription_count == 0
    assert hub.topic_count == 0
    stamp_and_fan_out(hub, [quote("AAPL", 1.0)], server_ts=TS)
    assert codecs["a"].calls == codecs["b"].calls == []
    assert hub.deliveries == 0


def test_unsubscribe_of_something_never_subscribed_is_a_no_op(hub: Hub) -> None:
    a, b = FakeSubscriber("a"), FakeSubscriber("b")
    hub.unsubscribe(a, QUOTES_AAPL)  # unknown topic
    hub.subscribe(a, QUOTES_AAPL)
    hub.unsubscribe(b, QUOTES_AAPL)  # known topic, no subscriber on wire b
    hub.unsubscribe(FakeSubscriber("a"), QUOTES_AAPL)  # known wire, other subscriber
    stamp_and_fan_out(hub, [quote("AAPL", 1.0)], server_ts=TS)
    assert a.payloads == [b"a:quotes.AAPL:1"]


def test_subscribing_twice_delivers_once(hub: Hub) -> None:
    sub = FakeSubscriber("a")
    hub.subscribe(sub, QUOTES_AAPL)
    hub.subscribe(sub, QUOTES_AAPL)
    stamp_and_fan_out(hub, [quote("AAPL", 1.0)], server_ts=TS)
    assert sub.payloads == [b"a:quotes.AAPL:1"]
    assert hub.subscription_count == 1


def test_subscribe_returns_the_cached_value(hub: Hub) -> None:
    first, latest = quote("AAPL", 1.0), quote("AAPL", 1.1)
    stamp_and_fan_out(hub, [first, latest, trade("AAPL", 1.1, "t1")], server_ts=TS)
    cached = Envelope(QUOTES_AAPL, 2, TS, latest, EPOCH)
    assert hub.subscribe(FakeSubscriber("a"), QUOTES_AAPL) == cached
    assert hub.subscribe(FakeSubscriber("a"), TRADES_AAPL) is None
    assert hub.subscribe(FakeSubscriber("a"), Topic(Channel.QUOTES, "MSFT")) is None


def test_resume_delegates_to_history(hub: Hub) -> None:
    events = [trade("AAPL", 1.0 + i, f"t{i}") for i in range(5)]
    stamp_and_fan_out(hub, events, server_ts=TS)
    assert hub.resume(TRADES_AAPL, ResumePoint(2, EPOCH)) == [
        Envelope(TRADES_AAPL, 3, TS, events[2], EPOCH),
        Envelope(TRADES_AAPL, 4, TS, events[3], EPOCH),
        Envelope(TRADES_AAPL, 5, TS, events[4], EPOCH),
    ]
    assert hub.resume(TRADES_AAPL, ResumePoint(5, EPOCH)) == []
    assert hub.resume(TRADES_AAPL, ResumePoint(9, EPOCH)) == Gap(9, 1, 5, "history_gap", EPOCH)


def test_bare_seq_resumes_in_the_current_epoch(hub: Hub) -> None:
    events = [trade("AAPL", 1.0 + i, f"t{i}") for i in range(5)]
    stamp_and_fan_out(hub, events, server_ts=TS)
    assert hub.resume(TRADES_AAPL, ResumePoint(3)) == hub.resume(TRADES_AAPL, ResumePoint(3, EPOCH))
    assert [e.seq for e in hub.resume(TRADES_AAPL, ResumePoint(3)) if isinstance(e, Envelope)] == [
        4,
        5,
    ]
    assert hub.resume(TRADES_AAPL, ResumePoint(9)) == Gap(9, 1, 5, "history_gap", EPOCH)


def test_resume_with_another_epoch_is_a_gap_never_data() -> None:
    """History holds seqs 1-100 of epoch B; a client last saw seq 41 of epoch A (the
    process before a restart): it gets a Gap, not 59 envelopes of an unrelated stream."""
    hub = Hub({}, history_size=256, sequencer=Sequencer("B"))
    stamp_and_fan_out(hub, [trade("AAPL", 1.0, f"t{i}") for i in range(100)], server_ts=TS)
    assert hub.resume(TRADES_AAPL, ResumePoint(41, "A")) == Gap(
        requested=41, oldest=1, latest=100, reason="epoch_changed", epoch="B"
    )
    # a topic nothing was published on yet is in the hub's epoch too
    assert hub.resume(QUOTES_AAPL, ResumePoint(0, "A")) == Gap(0, 0, 0, "epoch_changed", "B")
    assert hub.resume(QUOTES_AAPL, ResumePoint(0, "B")) == []


def test_an_envelope_of_a_new_epoch_clears_the_topics_history() -> None:
    """Fanned-out envelopes stamped elsewhere: when the numbering restarts upstream (a new
    epoch), the topic's history holds the new numbering only."""
    hub = Hub({}, history_size=16)
    old, new = Sequencer("A"), Sequencer("B")
    hub.fan_out(old.stamp([trade("AAPL", 1.0, f"a{i}") for i in range(5)], TS), 10.0)
    hub.fan_out(new.stamp([trade("AAPL", 2.0, f"b{i}") for i in range(2)], TS + 1), 11.0)
    assert hub.latest_seq(TRADES_AAPL) == 2
    replay = hub.resume(TRADES_AAPL, ResumePoint(0, "B"))
    assert [(e.epoch, e.seq) for e in replay if isinstance(e, Envelope)] == [("B", 1), ("B", 2)]
    assert hub.resume(TRADES_AAPL, ResumePoint(1, "A")) == Gap(1, 1, 2, "epoch_changed", "B")


def test_fan_out_delivers_envelopes_as_stamped(hub: Hub, codecs: dict[str, CountingCodec]) -> None:
    sub = FakeSubscriber("a")
    hub.subscribe(sub, QUOTES_AAPL)
    envelopes = Sequencer("L").stamp([quote("AAPL", 1.0), quote("AAPL", 1.1)], TS)
    hub.fan_out(envelopes, 10.0)
    assert codecs["a"].calls == envelopes
    assert sub.payloads == [b"a:quotes.AAPL:1", b"a:quotes.AAPL:2"]
    assert hub.subscribe(sub, QUOTES_AAPL) == envelopes[-1]


def test_fan_out_hands_every_subscriber_the_pass_now(hub: Hub) -> None:
    """The pass's monotonic time comes with every delivery: the hub reads no clock, and
    no subscriber reads an ambient one."""
    a, b, wide = FakeSubscriber("a"), FakeSubscriber("b"), FakeSubscriber("a")
    hub.subscribe(a, QUOTES_AAPL)
    hub.subscribe(b, QUOTES_AAPL)
    hub.subscribe(b, TRADES_AAPL)
    hub.subscribe_channel(wide, "trades")
    hub.fan_out(Sequencer("L").stamp([quote("AAPL", 1.0), trade("AAPL", 1.0, "t1")], TS), 42.5)
    hub.fan_out(Sequencer("L").stamp([quote("AAPL", 1.1)], TS + 1), 43.0)
    assert a.nows == [42.5, 43.0]
    assert b.nows == [42.5, 42.5, 43.0]
    assert wide.nows == [42.5]


def test_resume_beyond_history_is_a_gap() -> None:
    hub = Hub({}, history_size=2)
    stamp_and_fan_out(hub, [trade("AAPL", 1.0 + i, f"t{i}") for i in range(5)], server_ts=TS)
    assert hub.resume(TRADES_AAPL, ResumePoint(1)) == Gap(
        requested=1, oldest=4, latest=5, epoch=hub.epoch
    )


def test_up_to_date_resume_is_empty_even_without_history() -> None:
    hub = Hub({}, history_size=0)
    stamp_and_fan_out(hub, [trade("AAPL", 1.0, "t1")], server_ts=TS)
    assert hub.resume(TRADES_AAPL, ResumePoint(1)) == []
    assert hub.resume(TRADES_AAPL, ResumePoint(0)) == Gap(0, 0, 1, epoch=hub.epoch)


def test_published_and_deliveries_counters(hub: Hub) -> None:
    subs = [FakeSubscriber("a"), FakeSubscriber("a"), FakeSubscriber("b")]
    for sub in subs:
        hub.subscribe(sub, QUOTES_AAPL)
    stamp_and_fan_out(
        hub, [quote("AAPL", 1.0), quote("AAPL", 1.1), quote("MSFT", 2.0)], server_ts=TS
    )
    assert hub.published == 3
    assert hub.deliveries == 6  # 2 AAPL updates x 3 subscribers; MSFT has none
    assert sum(len(s.received) for s in subs) == hub.deliveries


class RaisingCodec(CountingCodec):
    """A codec with a bug: it raises on every envelope of one topic."""

    def __init__(self, name: str, breaks_on: str) -> None:
        super().__init__(name)
        self.breaks_on = breaks_on

    def __call__(self, envelope: Envelope) -> bytes:
        if str(envelope.topic) == self.breaks_on:
            raise ValueError(f"cannot encode {envelope.topic}")
        return super().__call__(envelope)


class RaisingSubscriber(FakeSubscriber):
    """A subscriber with a bug: its first deliver raises; faulted, it takes nothing more
    (as a closing connection does)."""

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        if self.faults:
            return
        raise RuntimeError("a bug in one subscriber")


def test_a_raising_codec_is_counted_and_the_other_wires_and_events_go_on() -> None:
    hub = Hub({"a": RaisingCodec("a", "trades.AAPL"), "b": CountingCodec("b")})
    a, b = FakeSubscriber("a"), FakeSubscriber("b")
    for sub in (a, b):
        hub.subscribe(sub, TRADES_AAPL)
        hub.subscribe(sub, QUOTES_AAPL)
    stamp_and_fan_out(hub, [trade("AAPL", 1.0, "t1"), quote("AAPL", 1.1)], server_ts=TS)
    assert a.payloads == [b"a:quotes.AAPL:1"]  # wire a missed the trade, not the quote
    assert b.payloads == [b"b:trades.AAPL:1", b"b:quotes.AAPL:1"]
    assert a.faults == b.faults == 0
    assert hub.faults.counts == {"codec": 1}
    assert hub.published == 2


def test_a_raising_subscriber_is_faulted_and_the_others_get_the_whole_batch() -> None:
    hub = Hub({"a": CountingCodec("a")})
    broken, other = RaisingSubscriber("a"), FakeSubscriber("a")
    for sub in (broken, other):
        hub.subscribe(sub, QUOTES_AAPL)
        hub.subscribe(sub, TRADES_AAPL)
    stamp_and_fan_out(
        hub, [quote("AAPL", 1.0), trade("AAPL", 1.0, "t1"), quote("AAPL", 1.1)], server_ts=TS
    )
    assert broken.faults == 1
    assert other.payloads == [b"a:quotes.AAPL:1", b"a:trades.AAPL:1", b"a:quotes.AAPL:2"]
    assert hub.faults.counts == {"subscriber": 1}


def test_encode_uses_the_wire_codec_and_keeps_event_time(hub: Hub) -> None:
    envelope = Envelope(QUOTES_AAPL, 7, TS, quote("AAPL", 1.0, ts=TS - 1), EPOCH)
    item = hub.encode("b", envelope)
    assert item.payload == b"b:quotes.AAPL:7"
    assert item.ts == TS - 1


# -- channel-wide subscriptions


def test_channel_wide_subscriber_gets_every_key_encoded_once(
    hub: Hub, codecs: dict[str, CountingCodec]
) -> None:
    everything, exact, other_wire = FakeSubscriber("a"), FakeSubscriber("a"), FakeSubscriber("b")
    hub.subscribe_channel(everything, Channel.QUOTES)
    hub.subscribe(exact, QUOTES_AAPL)
    hub.subscribe_channel(other_wire, "quotes")
    stamp_and_fan_out(
        hub, [quote("AAPL", 1.0), quote("MSFT", 2.0), trade("AAPL", 1.0, "t1")], server_ts=TS
    )
    stamp_and_fan_out(hub, [quote("NEW", 3.0)], server_ts=TS + 1)  # a topic nobody named

    assert everything.received == [
        (Encoded(b"a:quotes.AAPL:1", ts=TS), "quotes.AAPL"),
        (Encoded(b"a:quotes.MSFT:1", ts=TS), "quotes.MSFT"),
        (Encoded(b"a:quotes.NEW:1", ts=TS), "quotes.NEW"),
    ]
    assert other_wire.payloads == [b"b:quotes.AAPL:1", b"b:quotes.MSFT:1", b"b:quotes.NEW:1"]
    assert exact.payloads == [b"a:quotes.AAPL:1"]
    # once per wire per update: the topic's own subscriber and the channel-wide one share it
    assert [str(e.topic) for e in codecs["a"].calls] == ["quotes.AAPL", "quotes.MSFT", "quotes.NEW"]
    assert exact.received[0][0] is everything.received[0][0]
    assert hub.subscription_count == 3
    assert hub.deliveries == 7

    hub.unsubscribe_channel(everything, Channel.QUOTES)
    hub.unsubscribe_channel(everything, Channel.QUOTES)  # twice: nothing
    hub.unsubscribe_channel(other_wire, Channel.QUOTES)
    stamp_and_fan_out(hub, [quote("MSFT", 2.1)], server_ts=TS + 2)
    assert len(everything.received) == 3
    assert len(other_wire.received) == 3
    assert hub.subscription_count == 1


def test_a_channel_is_held_channel_wide_or_by_topics_never_both(hub: Hub) -> None:
    sub = FakeSubscriber("a")
    hub.subscribe(sub, QUOTES_AAPL)
    with pytest.raises(Overlap):
        hub.subscribe_channel(sub, Channel.QUOTES)
    hub.subscribe_channel(sub, Channel.TRADES)  # another channel: fine
    with pytest.raises(Overlap):
        hub.subscribe(sub, TRADES_AAPL)
    with pytest.raises(KeyError):
        hub.subscribe_channel(sub, "nothing")
    hub.unsubscribe(sub, QUOTES_AAPL)
    hub.subscribe_channel(sub, Channel.QUOTES)
    stamp_and_fan_out(hub, [quote("AAPL", 1.0), trade("AAPL", 1.0, "t1")], server_ts=TS)
    assert sub.payloads == [b"a:quotes.AAPL:1", b"a:trades.AAPL:1"]  # each once


# -- first/last-subscriber hooks


def test_first_and_last_hooks_fire_once_per_topic_across_wires(hub: Hub) -> None:
    calls: list[tuple[str, str]] = []
    hub.on_first(Channel.QUOTES, lambda topic: calls.append(("first", str(topic))))
    remove = hub.on_last("quotes", lambda topic: calls.append(("last", str(topic))))
    a1, a2, b = FakeSubscriber("a"), FakeSubscriber("a"), FakeSubscriber("b")
    hub.subscribe(a1, QUOTES_AAPL)
    hub.subscribe(a2, QUOTES_AAPL)
    hub.subscribe(b, QUOTES_AAPL)  # another wire: still the same topic
    hub.subscribe(a1, QUOTES_AAPL)  # again: nothing
    hub.subscribe(a1, TRADES_AAPL)  # another channel: its hooks only
    hub.subscribe_channel(FakeSubscriber("a"), Channel.QUOTES)  # names no topic
    assert calls == [("first", "quotes.AAPL")]

    hub.unsubscribe(a1, QUOTES_AAPL)
    hub.unsubscribe(b, QUOTES_AAPL)
    hub.unsubscribe(b, QUOTES_AAPL)  # not held any more: nothing
    assert calls == [("first", "quotes.AAPL")]
    hub.unsubscribe(a2, QUOTES_AAPL)
    assert calls == [("first", "quotes.AAPL"), ("last", "quotes.AAPL")]

    hub.subscribe(b, QUOTES_AAPL)
    remove()
    hub.unsubscribe(b, QUOTES_AAPL)
    assert calls[2:] == [("first", "quotes.AAPL")]


def test_a_raising_hook_is_counted_and_the_subscription_stands(hub: Hub) -> None:
    seen: list[str] = []

    def broken(topic: Topic) -> None:
        raise RuntimeError("bug in a producer's hook")

    hub.on_first(Channel.QUOTES, broken)
    hub.on_first(Channel.QUOTES, lambda topic: seen.append(str(topic)))
    hub.on_last(Channel.QUOTES, broken)
    sub = FakeSubscriber("a")
    hub.subscribe(sub, QUOTES_AAPL)
    assert seen == ["quotes.AAPL"]  # the next hook ran
    assert hub.faults.counts == {"hook": 1}
    stamp_and_fan_out(hub, [quote("AAPL", 1.0)], server_ts=TS)
    assert sub.payloads == [b"a:quotes.AAPL:1"]  # the subscription stands
    hub.unsubscribe(sub, QUOTES_AAPL)
    assert hub.faults.counts == {"hook": 2}
    assert hub.subscription_count == 0
