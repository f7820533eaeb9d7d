"""What latency stamps (``stamps=1``) cost a connection that does not ask for them, and
what they cost one that does.

``Connection._write`` as it was at ``--baseline`` (a git revision, read with ``git
show``; by default ``main``) against the one in this tree, in one process and one run,
interleaved, so that the ratio holds on a noisy machine. Both write to a socket that
takes everything and does nothing (``raw``: the frames joined), so the figure is the
connection's own work and the difference is as large as it can look: a real socket
write costs microseconds more on both sides. A third column is the same work on a
stamped connection (not a comparison: what a ``stamps=1`` client costs; its items are
the stamped wire's, completed with the send time at each write).

Workloads, per write: ``1 quote`` (``batch_ms=0``: a write per update), ``50 quotes``
(a batch of single frames), ``50 array`` (the same batch as one array frame, the
``frames=array`` option); and ``pass 50``: a publish pass's 50 deliveries to the outbox,
then the flush that writes them (what a connection does per pass, queueing included).
Figures are nanoseconds per write (per pass for ``pass 50``), the best of ``REPEAT``
runs, and the median of the ratios of the runs made back to back.

Run: PYTHONPATH=src .venv/bin/python bench/stamps.py [--baseline REV] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import timeit
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tickcast.clock import SYSTEM
from tickcast.hub.outbox import Outbox
from tickcast.hub.pump import Pumps
from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote
from tickcast.model.topic import Channel, Topic
from tickcast.observability.stats import Stats
from tickcast.protocols.native import codec, stamps
from tickcast.protocols.wire import Encoded
from tickcast.transport import connection as current
from tickcast.transport.connection import payload_size

REPO = Path(__file__).resolve().parents[1]
REPEAT = 9
WRITES = 20_000
PASSES = 2_000


def baseline(rev: str) -> types.ModuleType:
    """``transport/connection.py`` as it was at ``rev``, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:src/tickcast/transport/connection.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("connection_baseline")
    exec(compile(source, f"{rev}:connection.py", "exec"), module.__dict__)
    return module


class NullSocket:
    """Takes every write and keeps nothing."""

    raw = True
    writable = True
    on_writable: Callable[[], None] | None = None

    def write_frames(self, data: bytes) -> bool:
        return True

    def send_texts(self, payloads: Any) -> None:
        pass

    def peer_limited(self) -> bool:
        return False


class Session:
    close_reason = None

    def next_deadline(self) -> None:
        return None


def items(wire: str, n: int) -> list[Encoded]:
    encode = stamps.CODECS[wire]
    out = []
    for i in range(n):
        q = Quote(f"S{i:02d}", 99.5, 100.5, 1.0, 1.0, 100.0 + i, 1000.0, 1.7e9 + i, "simulator")
        envelope = Envelope(Topic(Channel.QUOTES, q.symbol), i + 1, 1.7e9 + i, q, "e")
        item = Encoded(encode(envelope), ts=q.ts, topic=str(envelope.topic))
        item.frame  # noqa: B018 (the hub's item is framed once, for every subscriber)
        out.append(item)
    return out


def connection(cls: Any, pumps: Pumps, wire: str, array: bool) -> Any:
    pump = pumps.get(0.0)
    return cls(
        sock=NullSocket(),
        session=Session(),
        wire=wire,
        array=array,
        outbox=Outbox(0.0, 65_536, 8 << 20, size=payload_size),
        pump=pump,
        stats=Stats(),
        on_commands=lambda _c, _cmds: None,
        on_close=lambda _c: None,
    )


def writer(conn: Any, batch: list[Encoded]) -> Callable[[], None]:
    write = conn._write

    def run() -> None:
        for _ in range(WRITES):
            write(batch)

    return run


def passer(conn: Any, batch: list[Encoded]) -> Callable[[], None]:
    deliver = conn.deliver
    flush = conn.flush
    keys = [item.topic for item in batch]
    pairs = list(zip(batch, keys, strict=True))

    def run() -> None:
        now = 0.0
        for _ in range(PASSES):
            for item, key in pairs:
                deliver(item, key, now)
            flush(now, force=True)
            now += 0.001

    return run


WORKLOADS = {
    "1 quote": (1, False, writer, WRITES),
    "50 quotes": (50, False, writer, WRITES),
    "50 array": (50, True, writer, WRITES),
    "pass 50": (50, False, passer, PASSES),
}


def best_ns(fn: Callable[[], None], per: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=1)) * 1e9 / per


async def run(rev: str, repeat: int) -> None:
    old = baseline(rev)
    pumps = Pumps(SYSTEM)
    print(f"Connection._write, ns per write (best of {repeat}, interleaved; before: {rev})")
    print(
        f"{'workload':<10} {'before':>9} {'after':>9} {'after/before':>13} "
        f"{'paired median':>14} {'stamped':>9}"
    )
    for name, (n, array, make, per) in WORKLOADS.items():
        plain, stamped = items(codec.WIRE, n), items(stamps.WIRE_STAMPS, n)
        figures: dict[str, list[float]] = {"before": [], "after": [], "stamped": []}
        for _ in range(repeat):  # interleaved: a noisy moment hits all three alike
            for key, cls, wire, batch in (
                ("before", old.Connection, codec.WIRE, plain),
                ("after", current.Connection, codec.WIRE, plain),
                ("stamped", current.Connection, stamps.WIRE_STAMPS, stamped),
            ):
                conn = connection(cls, pumps, wire, array)
                figures[key].append(best_ns(make(conn, batch), per))
        before, after, cost = (min(figures[k]) for k in ("before", "after", "stamped"))
        paired = statistics.median(
            a / b for a, b in zip(figures["after"], figures["before"], strict=True)
        )
        print(
            f"{name:<10} {before:>9.1f} {after:>9.1f} {after / before:>13.3f} "
            f"{paired:>14.3f} {cost:>9.1f}"
        )
    pumps.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision (default: main)")
    parser.add_argument("--repeat", type=int, default=REPEAT, help=f"runs (default {REPEAT})")
    args = parser.parse_args(argv)
    asyncio.run(run(args.baseline, args.repeat))


if __name__ == "__main__":
    main(sys.argv[1:])
