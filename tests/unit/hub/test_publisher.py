"""LocalPublisher: stamp, fan out, then the taps; a tap's failure is contained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from support.clock import ManualClock
from tickcast.clock import Now
from tickcast.hub.hub import Hub
from tickcast.hub.publisher import Discard, LocalPublisher, Publisher
from tickcast.hub.sequencer import Sequencer
from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote, Trade
from tickcast.model.topic import Channel, Topic
from tickcast.observability.faults import Faults
from tickcast.protocols.wire import Encoded

WALL = 1_700_000_000.0
EPOCH = "E1"
QUOTES_AAPL = Topic(Channel.QUOTES, "AAPL")
TRADES_AAPL = Topic(Channel.TRADES, "AAPL")


def quote(price: float) -> Quote:
    return Quote("AAPL", price - 0.01, price + 0.01, 1.0, 1.0, price, 100.0, WALL, "test")


def trade(price: float, trade_id: str) -> Trade:
    return Trade("AAPL", price, 1.0, WALL, "test", trade_id)


@dataclass(eq=False)
class Subscriber:
    """A subscriber that notes, in a shared log, each delivery it gets."""

    log: list[str]
    wire: str = "w"
    received: list[bytes] = field(default_factory=list)
    nows: list[float] = field(default_factory=list)

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        self.received.append(item.payload)
        self.nows.append(now)
        self.log.append(f"deliver {item.payload.decode()}")

    def fault(self) -> None:
        raise AssertionError("no delivery raises here")


class LoggedClock(ManualClock):
    """A manual clock that notes, in the shared log, each time it is read."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(wall=WALL)
        self.log = log
        self.passes = 0

    def now(self) -> Now:
        self.passes += 1
        self.log.append("clock")
        return super().now()


class World:
    """A hub with one subscriber on AAPL's quotes, and its publisher (a manual clock)."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.faults = Faults()
        self.clock = LoggedClock(self.log)
        sequencer = Sequencer(EPOCH)
        codecs = {"w": lambda envelope: f"{envelope.topic}:{envelope.seq}".encode()}
        self.hub = Hub(codecs, history_size=8, faults=self.faults, sequencer=sequencer)
        self.publisher = LocalPublisher(sequencer, self.hub, self.faults, clock=self.clock)
        self.subscriber = Subscriber(self.log)
        self.hub.subscribe(self.subscriber, QUOTES_AAPL)

    def recording_tap(self, name: str) -> list[Sequence[Envelope]]:
        seen: list[Sequence[Envelope]] = []

        def tap(envelopes: Sequence[Envelope]) -> None:
            seen.append(envelopes)
            self.log.append(f"tap {name}")

        self.publisher.tap(tap, name=name)
        return seen


def test_taps_see_stamped_envelopes_after_fan_out() -> None:
    world = World()
    seen = world.recording_tap("first")

    world.publisher.publish([quote(1.0), trade(1.0, "t1"), quote(1.1)])

    assert seen == [
        [
            Envelope(QUOTES_AAPL, 1, WALL, quote(1.0), EPOCH),
            Envelope(TRADES_AAPL, 1, WALL, trade(1.0, "t1"), EPOCH),
            Envelope(QUOTES_AAPL, 2, WALL, quote(1.1), EPOCH),
        ]
    ]
    # the clock read once per batch, before the fan-out; the tap after every delivery
    assert world.log == [
        "clock",
        "deliver quotes.AAPL:1",
        "deliver quotes.AAPL:2",
        "tap first",
    ]
    assert world.hub.latest_seq(QUOTES_AAPL) == 2  # what the taps see is what was fanned out
    assert world.hub.cache.get(str(QUOTES_AAPL)) == seen[0][2]


def test_a_raising_tap_is_counted_and_the_next_tap_and_batch_go_on() -> None:
    world = World()
    calls = 0

    def broken(envelopes: Sequence[Envelope]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug in a service")

    world.publisher.tap(broken, name="broken")
    after = world.recording_tap("after")

    world.publisher.publish([quote(1.0)])
    world.publisher.publish([quote(1.1)])

    assert calls == 2
    assert [[e.seq for e in batch] for batch in after] == [[1], [2]]
    assert world.subscriber.received == [b"quotes.AAPL:1", b"quotes.AAPL:2"]
    assert world.faults.counts == {"tap": 2}


def test_a_removed_tap_sees_nothing() -> None:
    world = World()
    gone: list[Sequence[Envelope]] = []
    remove = world.publisher.tap(gone.append, name="gone")
    kept = world.recording_tap("kept")

    remove()
    remove()  # idempotent
    world.publisher.publish([quote(1.0)])

    assert gone == []
    assert len(kept) == 1
    assert world.publisher.taps == ("kept",)


def test_a_tap_removed_while_the_taps_run_is_removed_from_the_next_batch() -> None:
    world = World()
    seen: list[int] = []
    removers = []

    def once(envelopes: Sequence[Envelope]) -> None:
        seen.append(envelopes[0].seq)
        removers[0]()

    removers.append(world.publisher.tap(once, name="once"))
    kept = world.recording_tap("kept")

    world.publisher.publish([quote(1.0)])
    world.publisher.publish([quote(1.1)])

    assert seen == [1]
    assert len(kept) == 2  # the batch being tapped still reached the taps after it


def test_an_empty_batch_is_not_published() -> None:
    world = World()
    seen = world.recording_tap("t")
    world.publisher.publish([])
    assert seen == []
    assert world.clock.passes == 0
    assert world.hub.published == 0


def test_discard_is_a_publisher() -> None:
    publisher: Publisher = Discard()
    publisher.publish([quote(1.0)])


def test_a_batch_is_stamped_on_the_wall_and_delivered_at_the_monotonic_time() -> None:
    world = World()
    seen = world.recording_tap("t")
    world.publisher.publish([quote(1.0)])
    world.clock.advance(2.5)
    world.clock.jump_wall(-3600)  # the wall clock steps back: stamps follow it, deadlines not
    world.publisher.publish([quote(1.1)])
    assert [batch[0].server_ts for batch in seen] == [WALL, WALL + 2.5 - 3600]
    start = ManualClock().monotonic()
    assert world.subscriber.nows == [start, start + 2.5]
