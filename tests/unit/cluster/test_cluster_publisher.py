"""ClusterPublisher: one sequence for the cluster, the leader's; followers fan out what
it stamped, forward their own writes, and never re-publish what they derive."""

from __future__ import annotations

from collections.abc import Sequence

from support.clock import ManualClock
from tickcast.bus import wire
from tickcast.cluster.publisher import ClusterPublisher, Gated, Mode, Verdict
from tickcast.hub.hub import Hub
from tickcast.hub.sequencer import Sequencer
from tickcast.model.envelope import Envelope
from tickcast.model.market import Bar, Quote, Trade
from tickcast.model.signal import Signal
from tickcast.model.topic import Channel, Topic
from tickcast.observability.faults import Faults

TRADES = Topic(Channel.TRADES, "AAPL")


def trade(n: int) -> Trade:
    return Trade("AAPL", 100.0 + n, 1.0, 1.0, "sim", f"t{n}")


class Node:
    """A hub and its cluster publisher, with what it sent on the bus."""

    def __init__(self, name: str) -> None:
        self.clock = ManualClock()
        self.hub = Hub(history_size=16, sequencer=Sequencer("boot"))
        self.sent: list[tuple[str, bytes]] = []
        self.publisher = ClusterPublisher(
            self.hub.sequencer,
            self.hub,
            Faults(),
            clock=self.clock,
            node=name,
            codec=wire.Codec(self.hub.channels),
            send=lambda kind, data: self.sent.append((kind, data)),
        )
        self.tapped: list[Envelope] = []
        self.publisher.tap(self.tapped.extend, name="log")

    def batches(self) -> list[wire.Batch]:
        out = []
        for kind, data in self.sent:
            message = wire.decode(data)
            if kind == "batch" and isinstance(message, wire.Batch):
                out.append(message)
        return out


def test_the_leader_stamps_fans_out_sends_then_taps() -> None:
    a = Node("a")
    a.publisher.lead("E1", token=4)
    a.publisher.publish([trade(1), trade(2)])
    assert a.hub.epoch == "E1"
    assert a.hub.position(TRADES) == ("E1", 2)
    [batch] = a.batches()
    assert (batch.node, batch.epoch, batch.n, batch.token) == ("a", "E1", 1, 4)
    assert [e.seq for e in a.tapped] == [1, 2]
    a.publisher.publish([trade(3)])
    assert [b.n for b in a.batches()] == [1, 2]


def test_a_follower_fans_out_the_leaders_numbers_and_holds_its_history() -> None:
    a, b = Node("a"), Node("b")
    a.publisher.lead("E1", token=1)
    a.publisher.publish([trade(1)])
    a.publisher.publish([trade(2)])
    for batch in a.batches():
        b.publisher.apply(batch)
    assert b.hub.epoch == "E1"
    assert b.hub.position(TRADES) == ("E1", 2)
    assert [e.payload for e in b.tapped] == [trade(1), trade(2)]
    from tickcast.model.envelope import ResumePoint

    resumed = b.hub.resume(TRADES, ResumePoint(1, "E1"))
    assert [e.seq for e in resumed] == [2]  # a client of a's resumes on b


def test_a_followers_own_write_goes_to_the_leader_and_comes_back_stamped() -> None:
    a, b = Node("a"), Node("b")
    a.publisher.lead("E1", token=1)
    b.publisher.publish([trade(9)])
    assert b.hub.position(TRADES) == ("boot", 0)  # not stamped by b
    [(kind, data)] = b.sent
    assert kind == "publish"
    forwarded = wire.decode(data)
    assert isinstance(forwarded, wire.Publish)
    a.publisher.publish(a.publisher.codec.events_in(forwarded.items))
    b.publisher.apply(a.batches()[0])
    assert b.hub.position(TRADES) == ("E1", 1)


def test_what_a_followers_taps_derive_from_a_batch_is_not_published_again() -> None:
    a, b = Node("a"), Node("b")

    def engine(envelopes: Sequence[Envelope]) -> None:  # a signal from every bar
        for e in envelopes:
            if isinstance(e.payload, Bar):
                signal = Signal("signal", "BUY", 1.0, "AAPL", "1m", "2026-12-05T10:00:00Z")
                b.publisher.publish([signal])

    b.publisher.tap(engine, name="engine")
    a.publisher.lead("E1", token=1)
    a.publisher.publish([Bar("AAPL", 1.0, 2.0, 0.5, 1.5, 10.0, 60.0, 1.0, "sim")])
    b.publisher.apply(a.batches()[0])
    assert b.sent == []
    assert b.publisher.derived_dropped == 1


def test_a_leader_ignores_other_batches_and_counts_them_as_a_gap_once_it_follows() -> None:
    a, b = Node("a"), Node("b")
    a.publisher.lead("E1", token=1)
    b.publisher.lead("E2", token=2)
    b.publisher.publish([trade(1)])
    b.publisher.publish([trade(2)])
    first, second = b.batches()
    assert a.publisher.apply(first) is Verdict.DEPOSED  # not applied while a leads
    a.publisher.follow()
    assert a.publisher.apply(second) is Verdict.GAP  # the first was never applied


def test_a_node_alone_stamps_in_an_epoch_of_its_own_and_sends_nothing() -> None:
    a, b = Node("a"), Node("b")
    a.publisher.lead("E1", token=1)
    for n in range(3):
        a.publisher.publish([trade(n)])
    first, _second, third = a.batches()
    b.publisher.apply(first)
    b.publisher.alone("L1")
    b.publisher.publish([trade(1)])
    assert b.hub.position(TRADES) == ("L1", 1)
    assert b.sent == []
    assert b.publisher.mode is Mode.ALONE
    b.publisher.follow()
    # back on the bus: the leader's numbering tells whether anything was missed
    assert b.publisher.apply(third) is Verdict.GAP
    assert b.hub.position(TRADES) == ("E1", 3)


def test_the_gated_publisher_publishes_only_while_primary() -> None:
    a = Node("a")
    primary = [False]
    gated = Gated(a.publisher, lambda: primary[0])
    a.publisher.lead("E1", token=1)
    gated.publish([Quote("AAPL", 1, 1, 1, 1, 1, 1, 1.0, "sim")])
    assert a.sent == []
    primary[0] = True
    gated.publish([Quote("AAPL", 1, 1, 1, 1, 1, 1, 1.0, "sim")])
    assert len(a.batches()) == 1
