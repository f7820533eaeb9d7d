"""Fan-out cost in one process: ns per delivery and per event through the publisher.

Every batch goes through ``LocalPublisher.publish`` as the node's do: stamped by the
sequencer, fanned out by the hub, then shown to one tap (a no-op here: the node has one,
the portfolio service's, whose own cost ``bench/portfolio.py`` measures).

500 subscribers, each on 10 of 100 symbols (quotes and trades), one wire (Front 1's plain
codec), 20,000 events (a trade after every third quote) published in batches of 10, best
of 7 rounds. Two kinds of subscriber:

- ``list``: a fake that appends what it gets (the hub's own cost: topic lookup, seq,
  history, cache, encode once, the delivery loop);
- ``connection``: the real ``Connection`` and ``Outbox`` over a socket that takes
  everything, flushed after each batch as the pump does (queueing, conflation and the
  one write per connection per pass included).
- ``pump``: W4's batch-0 shape (5,000 connections x 10 of 100 symbols, one quote per
  pass, so about one message per connection per pass): the real ``Connection`` (with
  the market feed's degrade machine), ``Outbox`` and ``Pump`` (its pass run after each
  publish, as the loop would) over the real ``UvicornFrameSocket`` on a websockets
  protocol in the OPEN state, whose transport's ``write`` discards (a C call: the send
  syscall is not counted). The Python overhead per delivered message of the whole write
  path.

No sockets, no event loop turns, no other process, and the time is the thread's CPU time
(``time.thread_time_ns``: what a busy neighbour on a shared core does not add): the figures
move little between runs, so a change to the hot path shows as a difference of a few
percent. Compare two trees by running this file with each tree's ``src`` on PYTHONPATH,
alternated (the file uses only public APIs, so one copy of it runs against both).

``--bytecodes`` counts the Python bytecodes executed per delivery instead (one round of
a twentieth of the events): the same on any machine, however busy, so a change to the
hot path's Python shows exactly; it sees neither C calls nor cache misses (the syscall
and memory costs the time includes).

Run: PYTHONPATH=src .venv/bin/python bench/fanout.py [--kinds list,connection,pump] [--rounds 7]
     PYTHONPATH=src .venv/bin/python bench/fanout.py --bytecodes
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
import types
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from tickcast.clock import Clock, Now
from tickcast.hub.degrade import Degrade, Marks
from tickcast.hub.hub import Hub
from tickcast.hub.outbox import Outbox
from tickcast.hub.publisher import LocalPublisher
from tickcast.hub.pump import Pumps
from tickcast.model.envelope import Envelope
from tickcast.model.market import MarketEvent, Quote, Trade
from tickcast.model.topic import Channel, Topic
from tickcast.observability.faults import Faults
from tickcast.observability.metrics import LATENCY_BUCKETS
from tickcast.observability.stats import Stats
from tickcast.protocols.native import codec
from tickcast.protocols.wire import Encoded
from tickcast.transport.connection import Connection, payload_size


class ThreadTime:
    """What a round measures by default: the thread's CPU time, in ns."""

    def start(self) -> float:
        return time.thread_time_ns()

    def stop(self, start: float) -> float:
        return time.thread_time_ns() - start


class Bytecodes:
    """``--bytecodes``: the Python bytecodes a round executes instead of its time
    (``sys.settrace`` with opcode events; the round's own loop not counted, only what it
    calls). Deterministic, so two trees compare on a busy machine too, but blind to C
    (the codec, dict and socket calls) and to memory stalls; slow (a short round)."""

    def __init__(self) -> None:
        self.count = 0

    def _local(self, frame: types.FrameType, event: str, arg: object) -> Any:
        if event == "opcode":
            self.count += 1
        return self._local

    def _global(self, frame: types.FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        return self._local

    def start(self) -> float:
        self.count = 0
        sys.settrace(self._global)
        return 0.0

    def stop(self, start: float) -> float:
        sys.settrace(None)
        return float(self.count)


METER: ThreadTime | Bytecodes = ThreadTime()
SUBSCRIBERS = 500
PER_SUBSCRIBER = 10
SYMBOLS = [f"S{i:03d}" for i in range(100)]
EVENTS = 20_000
BATCH = 10
TS = 1_700_000_000.0
PUMP_CONNECTIONS = 5_000
PUMP_EVENTS = 4_000


class ListSubscriber:
    __slots__ = ("received", "wire")

    def __init__(self) -> None:
        self.wire = codec.WIRE
        self.received: list[Encoded] = []

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        self.received.append(item)

    def fault(self) -> None:
        pass


class NullSocket:
    """Takes every write and keeps only a count."""

    raw = True
    writable = True

    def __init__(self) -> None:
        self.on_writable: Callable[[], None] | None = None
        self.bytes = 0

    def write_frames(self, data: bytes) -> bool:
        self.bytes += len(data)
        return True

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        raise AssertionError("raw")

    def send_bytes(self, payload: bytes) -> None:
        raise AssertionError("raw")

    def peer_limited(self) -> bool | None:
        return False

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        pass


def events(seed: int = 1) -> list[list[MarketEvent]]:
    rng = random.Random(seed)
    out: list[MarketEvent] = []
    for i in range(EVENTS):
        symbol = rng.choice(SYMBOLS)
        price = 100.0 + rng.random()
        ts = TS + i / 2000
        if i % 4 == 3:
            out.append(Trade(symbol, price, 10.0, ts, "bench", str(i)))
        else:
            out.append(Quote(symbol, price - 0.01, price + 0.01, 1.0, 1.0, price, 1e4, ts, "bench"))
    return [out[i : i + BATCH] for i in range(0, EVENTS, BATCH)]


def subscribe_all(hub: Hub, subscribers: Sequence[Any], seed: int = 2) -> None:
    rng = random.Random(seed)
    for sub in subscribers:
        for symbol in rng.sample(SYMBOLS, PER_SUBSCRIBER):
            hub.subscribe(sub, Topic(Channel.QUOTES, symbol))
            hub.subscribe(sub, Topic(Channel.TRADES, symbol))


class FixedClock:
    """A clock that stands still: every pass at one time (what the node's reads cost is
    one ``now()`` per batch, not per delivery)."""

    __slots__ = ("_now",)

    def __init__(self, mono: float, wall: float = TS) -> None:
        self._now = Now(mono, wall)

    def monotonic(self) -> float:
        return self._now.mono

    def wall(self) -> float:
        return self._now.wall

    def now(self) -> Now:
        return self._now


def _tap(envelopes: Sequence[Envelope]) -> None:
    pass


def publisher_of(hub: Hub, clock: Clock) -> LocalPublisher:
    """The node's way in: the hub's sequencer, a fixed clock, one tap."""
    publisher = LocalPublisher(hub.sequencer, hub, Faults(), clock=clock)
    publisher.tap(_tap, name="bench")
    return publisher


def round_list(batches: list[list[MarketEvent]]) -> tuple[float, int]:
    hub = Hub({codec.WIRE: codec.encode}, history_size=256)
    subs = [ListSubscriber() for _ in range(SUBSCRIBERS)]
    subscribe_all(hub, subs)
    publish = publisher_of(hub, FixedClock(0.0)).publish
    start = METER.start()
    for batch in batches:
        publish(batch)
    elapsed = METER.stop(start)
    return elapsed, hub.deliveries


class _Transport:
    """A transport whose ``write`` discards, in C (the syscall left out)."""

    __slots__ = ("write",)

    def __init__(self) -> None:
        self.write = deque(maxlen=0).append


def uvicorn_socket() -> Any:
    """The real ``UvicornFrameSocket`` over what it reads of uvicorn's protocol."""
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    from tickcast.transport.uvicorn_protocols import UvicornFrameSocket, _Flag

    conn = ServerProtocol()
    conn.state = State.OPEN
    protocol = types.SimpleNamespace(
        conn=conn, writable=_Flag(True), disconnected=False, transport=_Transport()
    )
    return UvicornFrameSocket(protocol)  # type: ignore[arg-type]


def latency_histogram() -> Any:
    """The tree's own latency histogram, as the node makes it (``Metrics.latency``): a
    tree without ``LatencyHistogram`` observed a ``prometheus_client.Histogram``."""
    try:
        from tickcast.observability.metrics import LatencyHistogram
    except ImportError:
        return Histogram("latency", "", buckets=LATENCY_BUCKETS, registry=CollectorRegistry())
    return LatencyHistogram("latency", "", LATENCY_BUCKETS)


_NO_DEGRADING: Any = None  # never asked: the machine stays NORMAL without a backlog


def round_pump(batches: list[list[MarketEvent]]) -> tuple[float, int]:
    hub = Hub({codec.WIRE: codec.encode}, history_size=256)
    clock = FixedClock(asyncio.get_running_loop().time())
    pumps = Pumps(clock, slice_s=3600.0)
    pump = pumps.get(0.0)
    stats = Stats()
    latency = latency_histogram()
    conns = [
        Connection(
            sock=uvicorn_socket(),
            session=None,  # type: ignore[arg-type]  # never reads: no client messages
            wire=codec.WIRE,
            array=False,
            outbox=Outbox(0.0, 65_536, 8 << 20, size=payload_size),
            pump=pump,
            stats=stats,
            on_commands=lambda _c, _cmds: None,
            on_close=lambda _c: None,
            latency=latency.observe,
        )
        for _ in range(PUMP_CONNECTIONS)
    ]
    for conn in conns:  # as the market feed's front does (never moved here: no backlog)
        marks = Marks.of_budget(conn.outbox.max_items, conn.outbox.max_bytes, 0.5, 0.25)
        conn.degrade_with(Degrade(marks), _NO_DEGRADING, conflate_interval_s=0.5)
    rng = random.Random(2)
    for conn in conns:
        for symbol in rng.sample(SYMBOLS, PER_SUBSCRIBER):
            hub.subscribe(conn, Topic(Channel.QUOTES, symbol))
    quotes = [e for batch in batches for e in batch if isinstance(e, Quote)][:PUMP_EVENTS]
    publish = publisher_of(hub, clock).publish
    run = pump._run  # the pass the loop would run (its call_soon is cancelled)
    start = METER.start()
    for quote in quotes:
        publish([quote])
        soon = pump._soon
        if soon is not None:
            soon.cancel()
        run()
    elapsed = METER.stop(start)
    pumps.close()
    assert stats.items_out == hub.deliveries, (stats.items_out, hub.deliveries)
    return elapsed, hub.deliveries


def round_connection(batches: list[list[MarketEvent]]) -> tuple[float, int]:
    hub = Hub({codec.WIRE: codec.encode}, history_size=256)
    clock = FixedClock(asyncio.get_running_loop().time())
    pumps = Pumps(clock)
    # never runs: the loop does not turn during a round; the flushes below stand in for
    # the pump's passes
    pump = pumps.get(0.0)
    stats = Stats()
    conns = [
        Connection(
            sock=NullSocket(),
            session=None,  # type: ignore[arg-type]  # never reads: no client messages
            wire=codec.WIRE,
            array=False,
            outbox=Outbox(0.0, 65_536, 8 << 20, size=payload_size),
            pump=pump,
            stats=stats,
            on_commands=lambda _c, _cmds: None,
            on_close=lambda _c: None,
        )
        for _ in range(SUBSCRIBERS)
    ]
    subscribe_all(hub, conns)
    now = clock.monotonic()
    publish = publisher_of(hub, clock).publish
    start = METER.start()
    for batch in batches:
        publish(batch)
        for conn in conns:
            if len(conn.outbox):
                conn.flush(now, force=True)
        # what the pass would have found flushed: dropped, so the pump's FIFO does not
        # grow through the round (a million entries for the collector to walk)
        pump.close()
    elapsed = METER.stop(start)
    pumps.close()
    assert stats.items_out > 0
    return elapsed, hub.deliveries


KINDS: dict[str, Callable[[list[list[MarketEvent]]], tuple[float, int]]] = {
    "list": round_list,
    "connection": round_connection,
    "pump": round_pump,
}


async def main(kinds: list[str], rounds: int) -> None:
    batches = events()
    unit = "ns"
    if isinstance(METER, Bytecodes):
        global PUMP_EVENTS
        PUMP_EVENTS = PUMP_EVENTS // 20
        batches = batches[: len(batches) // 20]
        rounds, unit = 1, "bytecodes"
    print(
        f"fan-out: {SUBSCRIBERS} subscribers x {PER_SUBSCRIBER} of {len(SYMBOLS)} symbols, "
        f"{EVENTS:,} events in batches of {BATCH}, best of {rounds}; "
        f"Python {sys.version.split()[0]}"
    )
    for kind in kinds:
        best: float | None = None
        deliveries = 0
        for _ in range(rounds):
            gc.collect()
            elapsed, deliveries = KINDS[kind](batches)
            best = elapsed if best is None else min(best, elapsed)
        assert best is not None
        per_event = best / (PUMP_EVENTS if kind == "pump" else len(batches) * BATCH)
        print(
            f"{kind:>10}: {best / deliveries:7.1f} {unit} per delivery, "
            f"{per_event:9.0f} {unit} per event ({deliveries:,} deliveries)"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--kinds", default="list,connection,pump", help=f"comma list of {', '.join(KINDS)}"
    )
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument(
        "--bytecodes",
        action="store_true",
        help="count Python bytecodes per delivery instead of time (one short round)",
    )
    args = p.parse_args()
    if args.bytecodes:
        METER = Bytecodes()
    asyncio.run(main([k for k in args.kinds.split(",") if k], args.rounds))
