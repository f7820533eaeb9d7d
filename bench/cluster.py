"""What the bus adds per message: in-process costs side by side, then end to end through
a real Redis and a real NATS.

Part 1, ``costs`` (one process, no sockets, no event-loop turns). Batches of ``N`` quotes
(``--sizes``, default 1, 10, 100) of 100 symbols, published to a hub with no
subscribers, three ways, interleaved round by round (best of ``--rounds``):

- ``local``: ``LocalPublisher.publish`` (stamp, fan out): a single node;
- ``lead``: ``ClusterPublisher.publish`` in ``LEAD`` mode: the same, then the envelopes
  to the wire (``Codec.items``: each payload msgpack-encoded), ``wire.encode`` of the
  ``Batch``, into a ``send`` that drops it (the bus driver's own cost is part 2's);
- ``follow``: what a follower does with each of those messages: ``wire.decode``, then
  ``ClusterPublisher.apply`` (judge the numbering, ``Codec.envelopes``, fan out).

Reported per bus message (one batch) and per quote; ``lead - local`` is what leading
adds over a single node, ``follow / local`` what a follower pays to receive a batch
against what the single node paid to produce it.

Part 2, ``latency``: a leader and a follower in one process, each over its own
connection to the engine (two ``RedisBus``, two ``NatsBus``; two ``MemoryBus`` on one
broker as the floor), as the cluster service joins them: the leader's ``send`` queues, a
sender task sends what is queued with ``bus.publish_many``, and both nodes are
subscribed to the batch subject (the leader decodes its own batch back and ignores it,
as a node does). The leader publishes ``--batches`` batches of ``--latency-size`` quotes
at ``--rate`` batches/s on a fixed schedule (``applied batches/s`` says whether the path
kept up with it); the latency of a batch is from just before the leader's ``publish`` to
just after the follower's ``apply`` (``perf_counter``, one process: one clock). Both
ends share one event loop and one core, so a figure includes each waiting for the other.
The sender sends everything queued in one call, as the cluster service's does (one Redis
pipeline: a round trip per call, not per message). ``CPU us per batch`` is this
process's CPU time over the run per batch: both ends with their bus clients and the
event loop, what the codec alone costs being part 1's.

Subjects are ``bench-cluster-<pid>.batch``: nothing is shared with another run or test.
Nothing is asserted on time; the figures are printed.

Run: .venv/bin/python bench/cluster.py [--parts costs,latency] [--buses memory,redis,nats]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from tickcast.bus import registry, wire
from tickcast.bus.base import Bus
from tickcast.bus.memory import MemoryBroker, MemoryBus
from tickcast.clock import SYSTEM, Clock, Now
from tickcast.cluster.publisher import ClusterPublisher, Verdict
from tickcast.cluster.service import SEND_BATCH
from tickcast.hub.hub import Hub
from tickcast.hub.publisher import LocalPublisher
from tickcast.model.market import Quote
from tickcast.observability.faults import Faults

SYMBOLS = [f"S{i:03d}" for i in range(100)]
TS = 1_700_000_000.0
BUS_URLS = {
    "memory": "memory://",
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
}


# -- the pure part: inputs, statistics, the schedule


def quote_batches(count: int, size: int, seed: int = 1) -> list[list[Quote]]:
    """``count`` batches of ``size`` quotes on random symbols of ``SYMBOLS`` (the same
    for a seed), with increasing exchange times."""
    rng = random.Random(seed)
    out: list[list[Quote]] = []
    i = 0
    for _ in range(count):
        batch = []
        for _ in range(size):
            price = 100.0 + rng.random()
            symbol = rng.choice(SYMBOLS)
            batch.append(
                Quote(symbol, price - 0.01, price + 0.01, 1.0, 1.0, price, 1e4, TS + i / 1e3, "b")
            )
            i += 1
        out.append(batch)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest rank; ``nan`` for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def due(start: float, i: int, rate: float) -> float:
    """When batch ``i`` (from 0) is due on a fixed schedule of ``rate`` per second: late
    batches are not made up by bunching, nor skipped, the schedule stays absolute."""
    return start + i / rate


@dataclass(frozen=True)
class Cost:
    """One way's best round: ``ns`` for ``messages`` bus messages of ``size`` quotes."""

    way: str
    size: int
    messages: int
    ns: float

    @property
    def us_per_message(self) -> float:
        return self.ns / self.messages / 1e3

    @property
    def us_per_quote(self) -> float:
        return self.ns / (self.messages * self.size) / 1e3


def cost_table(costs: Sequence[Cost]) -> list[str]:
    """A Markdown table: each size's three ways, and the ratios to ``local``."""
    out = [
        "| quotes per batch | local us/msg | lead us/msg | follow us/msg | lead - local us "
        "| lead / local | follow / local | local / lead / follow us per quote |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in dict.fromkeys(c.size for c in costs):
        by = {c.way: c for c in costs if c.size == size}
        loc, lead, fol = by["local"], by["lead"], by["follow"]
        out.append(
            f"| {size} | {loc.us_per_message:.2f} | {lead.us_per_message:.2f} "
            f"| {fol.us_per_message:.2f} | {lead.us_per_message - loc.us_per_message:.2f} "
            f"| {lead.ns / loc.ns:.2f} | {fol.ns / loc.ns:.2f} "
            f"| {loc.us_per_quote:.2f} / {lead.us_per_quote:.2f} / {fol.us_per_quote:.2f} |"
        )
    return out


# -- the drivers


class FixedClock:
    """A clock that stands still (the reads are not what is measured)."""

    __slots__ = ("_now",)

    def __init__(self) -> None:
        self._now = Now(0.0, TS)

    def monotonic(self) -> float:
        return float(self._now.mono)

    def wall(self) -> float:
        return float(self._now.wall)

    def now(self) -> Now:
        return self._now


def node(name: str, clock: Clock, send: Callable[[str, bytes], None]) -> ClusterPublisher:
    hub = Hub(history_size=256)
    return ClusterPublisher(
        hub.sequencer, hub, Faults(), clock=clock, node=name, codec=wire.Codec(hub.channels),
        send=send,
    )  # fmt: skip


def leader(clock: Clock, send: Callable[[str, bytes], None]) -> ClusterPublisher:
    publisher = node("lead", clock, send)
    publisher.lead("bench-epoch", 1)
    return publisher


def time_local(batches: list[list[Quote]]) -> float:
    hub = Hub(history_size=256)
    publish = LocalPublisher(hub.sequencer, hub, Faults(), clock=FixedClock()).publish
    start = time.perf_counter_ns()
    for batch in batches:
        publish(batch)
    return time.perf_counter_ns() - start


def _drop(_kind: str, _data: bytes) -> None:
    pass


def _keep(sink: list[bytes], _kind: str, data: bytes) -> None:
    sink.append(data)


def time_lead(batches: list[list[Quote]], send: Callable[[str, bytes], None] = _drop) -> float:
    publish = leader(FixedClock(), send).publish
    start = time.perf_counter_ns()
    for batch in batches:
        publish(batch)
    return time.perf_counter_ns() - start


def time_follow(messages: list[bytes]) -> float:
    follower = node("follow", FixedClock(), _drop)
    decode, apply = wire.decode, follower.apply
    start = time.perf_counter_ns()
    for data in messages:
        batch = decode(data)
        if isinstance(batch, wire.Batch):  # as the cluster service tells a batch
            apply(batch)
    elapsed = time.perf_counter_ns() - start
    if follower.follower.n != len(messages):
        raise RuntimeError(f"follower applied {follower.follower.n} of {len(messages)}")
    return elapsed


def costs(sizes: Sequence[int], quotes: int, rounds: int) -> list[Cost]:
    out: list[Cost] = []
    for size in sizes:
        batches = quote_batches(max(1, quotes // size), size)
        messages: list[bytes] = []
        time_lead(batches, partial(_keep, messages))
        ways: dict[str, Callable[[], float]] = {
            "local": partial(time_local, batches),
            "lead": partial(time_lead, batches),
            "follow": partial(time_follow, messages),
        }
        best = dict.fromkeys(ways, math.inf)
        for _ in range(rounds):  # interleaved: a burst of other load hits all three
            for way, run in ways.items():
                gc.collect()
                best[way] = min(best[way], run())
        out += [Cost(way, size, len(batches), ns) for way, ns in best.items()]
    return out


def make_buses(name: str) -> tuple[Bus, Bus]:
    if name == "memory":
        broker = MemoryBroker()
        return MemoryBus(broker), MemoryBus(broker)
    return registry.create(BUS_URLS[name]), registry.create(BUS_URLS[name])


async def latency(name: str, count: int, size: int, rate: float) -> dict[str, float]:
    """Leader publish -> follower applied, over bus ``name``: ms percentiles."""
    subject = f"bench-cluster-{os.getpid()}.batch"
    lead_bus, follow_bus = make_buses(name)
    queue: asyncio.Queue[bytes] = asyncio.Queue(10_000)
    lead = leader(SYSTEM, lambda _kind, data: queue.put_nowait(data))
    follower = node("follow", SYSTEM, _drop)
    started: dict[int, float] = {}
    took: list[float] = []
    gaps = 0
    done = asyncio.Event()

    def on_follower(data: bytes) -> None:
        nonlocal gaps
        batch = wire.decode(data)
        assert isinstance(batch, wire.Batch)
        verdict = follower.apply(batch)
        took.append(time.perf_counter() - started.pop(batch.n))
        gaps += verdict is Verdict.GAP
        if batch.n >= count:
            done.set()

    def on_leader(data: bytes) -> None:  # its own batch back: decoded and ignored
        batch = wire.decode(data)
        assert isinstance(batch, wire.Batch)
        lead.apply(batch)

    async def sender() -> None:  # as cluster/service.py's: what is queued, in one call
        while True:
            messages = [(subject, await queue.get())]
            while not queue.empty() and len(messages) < SEND_BATCH:
                messages.append((subject, queue.get_nowait()))
            await lead_bus.publish_many(messages)

    batches = quote_batches(count, size)
    await lead_bus.start()
    await follow_bus.start()
    task = asyncio.create_task(sender())
    try:
        await follow_bus.subscribe(subject, on_follower)
        await lead_bus.subscribe(subject, on_leader)
        await asyncio.sleep(0.5)  # the subscriptions in place on the engine
        start, cpu0 = time.perf_counter(), time.process_time()
        for i, batch in enumerate(batches):
            delay = due(start, i, rate) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            started[lead.follower.n + 1] = time.perf_counter()
            lead.publish(batch)
        await asyncio.wait_for(done.wait(), 30.0)
        finished, cpu1 = time.perf_counter(), time.process_time()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await lead_bus.aclose()
        await follow_bus.aclose()
    ms = [t * 1e3 for t in took]
    return {
        "batches": len(ms),
        "p50": percentile(ms, 0.5),
        "p90": percentile(ms, 0.9),
        "p99": percentile(ms, 0.99),
        "max": max(ms),
        "gaps": gaps,
        # batches applied per second, first publish to last apply: below ``rate`` when
        # the path cannot keep up (the latencies then grow with the backlog)
        "achieved": len(ms) / (finished - start),
        # this process's CPU (both ends, their bus clients, the event loop) per batch
        "cpu_us": (cpu1 - cpu0) / max(1, len(ms)) * 1e6,
    }


async def main(args: argparse.Namespace) -> None:
    parts = [p for p in args.parts.split(",") if p]
    print(
        f"bench/cluster.py, Python {sys.version.split()[0]}, pid {os.getpid()}, "
        f"affinity {sorted(os.sched_getaffinity(0))}, load average {os.getloadavg()}"
    )
    if "costs" in parts:
        sizes = [int(s) for s in args.sizes.split(",") if s]
        print(f"\ncosts: {args.quotes:,} quotes per way and size, best of {args.rounds}\n")
        print("\n".join(cost_table(costs(sizes, args.quotes, args.rounds))))
    if "latency" in parts:
        print(
            f"\nlatency: {args.batches:,} batches of {args.latency_size} quotes at "
            f"{args.rate:g} batches/s, leader publish -> follower applied, ms\n"
        )
        print(
            "| bus | batches | p50 | p90 | p99 | max | gaps | applied batches/s "
            "| CPU us per batch, both ends |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in [b for b in args.buses.split(",") if b]:
            r = await latency(name, args.batches, args.latency_size, args.rate)
            print(
                f"| {name} | {r['batches']:,.0f} | {r['p50']:.3f} | {r['p90']:.3f} "
                f"| {r['p99']:.3f} | {r['max']:.3f} | {r['gaps']:.0f} | {r['achieved']:,.0f} "
                f"| {r['cpu_us']:,.0f} |"
            )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--parts", default="costs,latency", help="comma list of costs, latency")
    p.add_argument("--sizes", default="1,10,100", help="quotes per batch in the costs part")
    p.add_argument("--quotes", type=int, default=20_000, help="quotes per way and size")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--buses", default="memory,redis,nats", help="comma list of memory, redis, nats")
    p.add_argument("--batches", type=int, default=3000, help="batches per bus (latency)")
    p.add_argument("--latency-size", type=int, default=10, help="quotes per batch (latency)")
    p.add_argument("--rate", type=float, default=500.0, help="batches/s (latency)")
    asyncio.run(main(p.parse_args()))
