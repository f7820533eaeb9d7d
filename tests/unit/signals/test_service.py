"""SignalService's logic on a real publisher and hub, a manual clock and a hand-run
scheduler: no loop, no Redis (tests/integration/test_signals.py has those)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec
import pytest

from support.clock import WALL0, ManualClock
from tickcast.hub.hub import Hub
from tickcast.hub.publisher import LocalPublisher
from tickcast.hub.sequencer import Sequencer
from tickcast.model.envelope import Envelope
from tickcast.model.market import Bar
from tickcast.model.signal import Signal, WorkerStatus, encode
from tickcast.observability.faults import Faults
from tickcast.signals.engine import Engine, EngineParams
from tickcast.signals.history import SignalHistory
from tickcast.signals.intake import Refused, read_signal
from tickcast.signals.service import (
    MONITOR,
    Duplicate,
    SignalService,
    engine_status,
    worker_statuses,
)

SIGNAL = Signal("QUANTUM_CIPHER", "BUY", 162.5, "BTC/USDT", "1m", "2026-01-02T03:04:05.000Z")


class FakeSource:
    """A pushed source whose health the test sets."""

    name = "redis"

    def __init__(self) -> None:
        self.state: WorkerStatus = WorkerStatus("redis", "active", "subscribed")

    def status(self) -> WorkerStatus:
        return self.state

    def events(self) -> dict[str, int]:
        return {"connected": 1}

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class Rig:
    def __init__(self, *, engine: Engine | None = None, history_size: int = 100) -> None:
        self.clock = ManualClock()
        sequencer = Sequencer("e1")
        self.faults = Faults()
        self.publisher = LocalPublisher(
            sequencer, Hub(sequencer=sequencer, faults=self.faults), self.faults, clock=self.clock
        )
        self.seen: list[Envelope] = []
        self.batches: list[int] = []
        self.publisher.tap(self._record, name="recorder")
        self.later: list[Callable[[], None]] = []
        self.ready = True
        self.service = SignalService(
            self.publisher,
            SignalHistory(history_size, 3600.0),
            clock=self.clock,
            engine=engine,
            feed_ready=lambda: self.ready,
            faults=self.faults,
            schedule=self.later.append,
        )
        self.publisher.tap(self.service.on_published, name="signals")

    def _record(self, batch: Sequence[Envelope]) -> None:
        self.seen.extend(batch)
        self.batches.append(len(batch))

    def run_later(self) -> None:
        pending = list(self.later)
        self.later.clear()  # the service holds this list's append
        for fn in pending:
            fn()

    def payloads(self, kind: type) -> list[object]:
        return [e.payload for e in self.seen if type(e.payload) is kind]


def bars(closes: Sequence[float], symbol: str = "BTC/USDT") -> list[Bar]:
    start = 1_767_225_600
    return [
        Bar(symbol, c, c, c, c, 1.0, start + 60 * i, start + 60 * (i + 1), "sim")
        for i, c in enumerate(closes)
    ]


# -- ingestion


def test_a_signal_without_an_id_gets_one_and_is_published_and_held() -> None:
    rig = Rig()
    published = rig.service.submit(SIGNAL, "http")
    assert published.id == f"http-{round(WALL0 * 1000)}-1"
    assert rig.payloads(Signal) == [published]
    assert published.id in rig.service.history
    again = rig.service.submit(SIGNAL, "http")
    assert again.id == f"http-{round(WALL0 * 1000)}-2"
    assert rig.service.published == {"http": 2}


def test_a_repeated_id_is_refused_and_counted() -> None:
    rig = Rig()
    mine = msgspec.structs.replace(SIGNAL, id="abc")
    rig.service.submit(mine, "http")
    with pytest.raises(Duplicate):
        rig.service.submit(mine, "http")
    assert rig.payloads(Signal) == [mine]
    assert rig.service.refused == {("http", "duplicate"): 1}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"x" * 5000, "too_large"),
        (b"{not json", "malformed"),
        (b"\xff\xfe", "malformed"),
        (encode(SIGNAL)[:-1] + b', "extra": 1}', "invalid"),
        (encode(SIGNAL).replace(b"162.5", b'"162.5"'), "invalid"),
        (encode(SIGNAL).replace(b'"BUY"', b'"buy"'), "invalid"),
        (b"[]", "invalid"),
    ],
)
def test_a_pushed_document_that_is_not_a_signal_is_a_dead_letter(data: bytes, reason: str) -> None:
    rig = Rig()
    assert rig.service.ingest(data, "redis") is None
    letter = rig.service.recent_dead_letters()[-1]
    assert (letter.source, letter.reason, letter.ts) == ("redis", reason, WALL0)
    assert rig.service.dead_letter_totals == {("redis", reason): 1}
    assert rig.service.refused == {("redis", reason): 1}
    assert rig.payloads(Signal) == []
    # and the next good one goes through
    assert rig.service.ingest(encode(SIGNAL), "redis") is not None
    assert len(rig.payloads(Signal)) == 1


def test_a_pushed_duplicate_is_a_dead_letter_too() -> None:
    rig = Rig()
    data = encode(msgspec.structs.replace(SIGNAL, id="dup"))
    assert rig.service.ingest(data, "redis") is not None
    assert rig.service.ingest(data, "redis") is None
    assert rig.service.recent_dead_letters()[-1].reason == "duplicate"
    assert rig.service.dead_letter_totals == {("redis", "duplicate"): 1}


def test_read_signal_says_why() -> None:
    with pytest.raises(Refused) as refused:
        read_signal(b'{"type": "X"}')
    assert refused.value.reason == "invalid"
    assert "signal" in refused.value.message


def test_signals_published_by_anyone_fill_the_history() -> None:
    rig = Rig()
    rig.publisher.publish([msgspec.structs.replace(SIGNAL, id="from-elsewhere")])
    assert "from-elsewhere" in rig.service.history
    held = rig.service.history.query(rig.clock.wall())
    assert [e.payload.id for e in held] == ["from-elsewhere"]  # type: ignore[union-attr]


# -- the engine


def test_engine_signals_are_published_after_the_tap_not_inside_it() -> None:
    rig = Rig(engine=Engine(EngineParams(fast=2, slow=3, rsi=False, cooldown_s=0)))
    rig.publisher.publish(bars([10, 9, 8, 9, 11]))
    assert rig.payloads(Signal) == []  # found in the tap, not published from it
    assert len(rig.later) == 1  # one flush scheduled for the whole batch
    rig.run_later()
    [signal] = rig.payloads(Signal)
    assert isinstance(signal, Signal)
    assert (signal.id, signal.signal, signal.source) == (
        "MA_CROSS-BTC/USDT-1m-1767225840000",
        "BUY",
        "engine",
    )
    assert signal.id in rig.service.history
    assert rig.service.published == {"engine": 1}
    # the bars' batch came first on the hub, the signal after it
    kinds = [type(e.payload) for e in rig.seen]
    assert kinds.index(Signal) > max(i for i, k in enumerate(kinds) if k is Bar)


def test_the_same_bars_replayed_into_a_new_engine_are_not_published_twice() -> None:
    rig = Rig(engine=Engine(EngineParams(fast=2, slow=3, rsi=False, cooldown_s=0)))
    rig.publisher.publish(bars([10, 9, 8, 9, 11]))
    rig.run_later()
    rig.service.engine = Engine(EngineParams(fast=2, slow=3, rsi=False, cooldown_s=0))
    rig.publisher.publish(bars([10, 9, 8, 9, 11]))
    rig.run_later()
    assert len(rig.payloads(Signal)) == 1
    assert rig.service.refused == {("engine", "duplicate"): 1}


def test_aclose_flushes_what_the_engine_found() -> None:
    rig = Rig(engine=Engine(EngineParams(fast=2, slow=3, rsi=False, cooldown_s=0)))
    rig.publisher.publish(bars([10, 9, 8, 9, 11]))
    rig.service._flush()  # what aclose does last
    assert len(rig.payloads(Signal)) == 1


# -- statuses


def test_the_aggregate_follows_the_sources() -> None:
    active = WorkerStatus("engine", "active", "ok")
    degraded = WorkerStatus("redis", "degraded", "reconnecting")
    offline = WorkerStatus("redis", "offline", "down")
    assert worker_statuses([]).status == "active"
    assert worker_statuses([active]).status == "active"
    assert worker_statuses([active, degraded]).status == "degraded"
    assert "redis degraded: reconnecting" in worker_statuses([active, degraded]).message
    assert worker_statuses([active, offline]).status == "degraded"
    assert worker_statuses([WorkerStatus("engine", "degraded", "x"), offline]).status == "offline"
    assert worker_statuses([offline]).service == MONITOR


def test_the_engine_is_degraded_while_the_feed_is_not_ready() -> None:
    assert engine_status(True, True).status == "active"
    assert engine_status(True, False).status == "degraded"
    assert engine_status(False, True).status == "offline"


def test_statuses_are_published_once_per_change() -> None:
    rig = Rig(engine=Engine())
    source = FakeSource()
    rig.service.add_source(source)
    rig.service._running = True  # what start() sets, without its tasks
    first = rig.service.check()
    assert [(s.service, s.status) for s in first] == [
        ("engine", "active"),
        ("redis", "active"),
        (MONITOR, "active"),
    ]
    assert rig.service.check() == []  # nothing changed: nothing published
    rig.ready = False
    changed = rig.service.check()
    assert [(s.service, s.status) for s in changed] == [
        ("engine", "degraded"),
        (MONITOR, "degraded"),
    ]
    source.state = WorkerStatus("redis", "offline", "down")
    changed = rig.service.check()
    assert [(s.service, s.status) for s in changed] == [("redis", "offline"), (MONITOR, "offline")]
    source.state = WorkerStatus("redis", "offline", "down, another message")
    assert rig.service.check() == []  # a new message alone is not a change
    rig.ready = True
    source.state = WorkerStatus("redis", "active", "subscribed")
    rig.service.check()
    published = rig.payloads(WorkerStatus)
    assert len(published) == 3 + 2 + 2 + 3  # each change, one publish
    assert [(s.service, s.status) for s in rig.service.statuses()] == [
        (MONITOR, "active"),
        ("engine", "active"),
        ("redis", "active"),
    ]
    # every change was its own batch (one publish each)
    assert rig.batches == [1] * len(published)


def test_with_no_source_to_watch_the_monitor_is_active() -> None:
    rig = Rig()
    rig.service._running = True
    [status] = rig.service.check()
    assert (status.service, status.status) == (MONITOR, "active")


def test_the_metrics_name_every_count() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    rig = Rig(engine=Engine())
    rig.service.add_source(FakeSource())
    rig.service._running = True
    rig.service.check()
    rig.service.submit(SIGNAL, "http")
    rig.service.ingest(b"{", "redis")
    registry = CollectorRegistry()
    registry.register(rig.service.collector())
    text = generate_latest(registry).decode()
    assert 'tickcast_signals_published_total{source="http"} 1.0' in text
    assert 'tickcast_signal_dead_letters_total{reason="malformed",source="redis"} 1.0' in text
    assert 'tickcast_signals_refused_total{reason="malformed",source="redis"} 1.0' in text
    assert 'tickcast_signal_worker_state{service="redis",state="active"} 1.0' in text
    assert 'tickcast_signal_source_events_total{event="connected",source="redis"} 1.0' in text
    assert "tickcast_signal_history 1.0" in text


def test_an_outside_signal_may_not_claim_the_engine_as_its_source() -> None:
    rig = Rig()
    posing = msgspec.structs.replace(SIGNAL, source="engine")
    with pytest.raises(Refused, match="built-in engine"):
        rig.service.submit(posing, "http")
    rig.service.ingest(encode(posing), "redis")
    assert rig.service.refused == {("http", "invalid"): 1, ("redis", "invalid"): 1}
    assert [letter.reason for letter in rig.service.dead_letters] == ["invalid"]
    assert rig.service.published == {}
