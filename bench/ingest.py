"""The cost of a tick nobody reads: CPU per simulator tick with no client connected.

A *tick* is one simulator tick: a quote, with the book delta it carries and, three times
in ten, a trade (about 2.3 events), plus the bars the simulator closes on the interval.

In process (``--mode``, default all three), on a node built as ``tickcast serve --demo``
builds it (``app.build_app``: the portfolio service over the demo's portfolios, the
signal engine, the leaderboard, the monitoring; the database a fresh SQLite file seeded
with ``demo.seed_demo``), fed through the real supervisor sink (book checks, failover
policy), ``Node.ingest``, the publisher (sequencer, hub fan-out: history, last-value
cache; nothing is encoded, nobody subscribed) and its taps:

- ``sim``: the simulator alone, ``MarketSimulator.advance`` in 5 ms steps of simulated
  time (its cadence at 200 ticks/s and above), nothing ingested;
- ``ingest``: the same batches, generated beforehand, handed to the provider's sink one
  batch per event-loop pass (as the simulator's provider does, one per wake-up): the
  whole ingest path, and whatever the node's services ran on the loop meanwhile
  (the portfolio ticker, the leaderboard's window, the monitoring's samples);
- ``both``: the simulator generating and the sink ingesting, batch after batch.

Each reports CPU microseconds per tick (``time.process_time`` over the run, divided by
the ticks), and for ``ingest`` also the CPU inside the sink calls alone ("in sink"). The
best of ``--repeat`` runs, each on a fresh node. ``--profile`` prints cProfile's top
entries of one ``ingest`` run.

End to end (``--serve RATE[,RATE...]``): ``tickcast serve --demo --rate RATE`` in a
subprocess (its own SQLite file, no client), then the process's CPU over ``--window``
seconds by psutil after ``--warmup`` seconds, and the ticks it simulated in that window
(from ``/metrics``: quotes ingested).

Run: PYTHONPATH=src .venv/bin/python bench/ingest.py [--rate 20000] [--ticks 100000]
     [--repeat 3] [--profile] [--serve 5000,20000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

STEP_S = 0.005  # the simulator's wake-up cadence at 200 ticks/s and above


def settings_for(rate: float, database: Path) -> object:
    from tickcast.cli.main import demo_settings
    from tickcast.config.settings import Settings

    settings = Settings(
        rate=rate,
        database_url=f"sqlite+aiosqlite:///{database}",
        log_level="warning",
    )
    return demo_settings(settings)


def simulator_for(settings: object) -> object:
    from tickcast.providers import registry

    provider = registry.create("simulator", settings.upstream)  # type: ignore[attr-defined]
    return provider


def generate(simulator: object, start: float, ticks: int, rate: float) -> list[list[object]]:
    """Batches of one 5 ms step each, until ``ticks`` quotes were simulated."""
    advance = simulator.advance  # type: ignore[attr-defined]
    batches = []
    step = 0
    while simulator.ticks < ticks:  # type: ignore[attr-defined]
        step += 1
        events = advance(start + step * STEP_S)
        if events:
            batches.append(events)
    return batches


def quotes_in(batches: Sequence[Sequence[object]]) -> int:
    from tickcast.model.market import Quote

    return sum(1 for batch in batches for e in batch if type(e) is Quote)


class _Feeder:
    """A provider named ``simulator`` that hands pre-generated batches (or a live
    simulator's) to the supervisor's sink, one per event-loop pass, then stops."""

    name = "simulator"
    watch_silence = False
    skipped_events = 0

    def __init__(
        self,
        symbols: frozenset[str],
        batches: list[list[object]] | None,
        simulator: object | None,
        start: float,
        ticks: int,
    ) -> None:
        self._symbols = symbols
        self.batches = batches
        self.simulator = simulator
        self.start = start
        self.ticks = ticks
        self.done = asyncio.Event()
        self.cpu = 0.0
        self.sink_cpu = 0.0

    @property
    def symbols(self) -> frozenset[str]:
        return self._symbols

    def snapshot(self) -> list[object]:
        return []

    async def resync(self, symbol: str) -> None:
        pass

    async def run(self, sink: object) -> None:
        cpu = time.process_time
        sink_cpu = 0.0
        started = cpu()
        if self.batches is not None:
            # popped, so that the sink holds the only reference: an event is freed when
            # the hub's history lets it go, as in a running gateway
            batches = self.batches
            batches.reverse()
            while batches:
                batch = batches.pop()
                t = cpu()
                sink(batch)  # type: ignore[operator]
                del batch
                sink_cpu += cpu() - t
                await asyncio.sleep(0)
        else:
            simulator = self.simulator
            advance = simulator.advance  # type: ignore[attr-defined]
            step = 0
            while simulator.ticks < self.ticks:  # type: ignore[attr-defined]
                step += 1
                events = advance(self.start + step * STEP_S)
                if events:
                    sink(events)  # type: ignore[operator]
                await asyncio.sleep(0)
        self.cpu = cpu() - started
        self.sink_cpu = sink_cpu
        self.done.set()
        await asyncio.Event().wait()  # a provider runs until cancelled


async def _seed(settings: object) -> None:
    from tickcast.demo import seed_demo
    from tickcast.storage.engine import make_engine

    engine = make_engine(settings.database_url)  # type: ignore[attr-defined]
    try:
        await seed_demo(engine)
    finally:
        await engine.dispose()


async def _ingest_once(
    settings: object, feeder: _Feeder, profile: cProfile.Profile | None
) -> tuple[float, float]:
    from tickcast.app import build_app
    from tickcast.node import Node

    node = Node(settings, providers=[feeder])  # type: ignore[arg-type, list-item]
    build_app(settings, node)  # type: ignore[arg-type]
    await node.start()
    try:
        if profile is not None:
            profile.enable()
        await feeder.done.wait()
        if profile is not None:
            profile.disable()
    finally:
        await node.aclose()
    errors = dict(node.faults.counts)
    if errors:
        raise SystemExit(f"contained failures during the run: {errors}")
    return feeder.cpu, feeder.sink_cpu


def run_in_process(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(args.rate, Path(tmp) / "bench.db")
        asyncio.run(_seed(settings))
        print(
            f"in process: rate {args.rate:g}/s (batches of {args.rate * STEP_S:g} ticks), "
            f"{args.ticks} ticks, best of {args.repeat}; pid {os.getpid()}"
        )
        modes = args.mode.split(",")
        for mode in modes:
            best: tuple[float, float] | None = None
            for _ in range(args.repeat):
                provider = simulator_for(settings)
                simulator = provider.simulator  # type: ignore[attr-defined]
                start = provider._start_ts  # type: ignore[attr-defined]
                if mode == "sim":
                    t = time.process_time()
                    batches = generate(simulator, start, args.ticks, args.rate)
                    cpu, sink = time.process_time() - t, 0.0
                    ticks = quotes_in(batches)
                else:
                    if mode == "ingest":
                        batches = generate(simulator, start, args.ticks, args.rate)
                        ticks = quotes_in(batches)
                        feeder = _Feeder(provider.symbols, batches, None, start, args.ticks)
                    else:
                        feeder = _Feeder(provider.symbols, None, simulator, start, args.ticks)
                    cpu, sink = asyncio.run(_ingest_once(settings, feeder, None))
                    if mode == "both":
                        ticks = simulator.ticks
                if best is None or cpu < best[0]:
                    best = (cpu / ticks * 1e6, sink / ticks * 1e6)
            assert best is not None
            extra = f" (in sink {best[1]:.2f} us)" if mode == "ingest" else ""
            print(
                f"  {mode:7} {best[0]:7.2f} us per tick{extra}"
                f"  -> {1e6 / best[0]:,.0f} ticks/s per core"
            )
        if args.profile:
            provider = simulator_for(settings)
            simulator = provider.simulator  # type: ignore[attr-defined]
            start = provider._start_ts  # type: ignore[attr-defined]
            batches = generate(simulator, start, args.ticks, args.rate)
            feeder = _Feeder(provider.symbols, batches, None, start, args.ticks)
            profile = cProfile.Profile()
            asyncio.run(_ingest_once(settings, feeder, profile))
            stats = pstats.Stats(profile)
            stats.sort_stats("tottime").print_stats(args.top)


def _scrape_quotes(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.search(r'^tickcast_events_in_total\{kind="quote"\} ([0-9.e+]+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def run_serve(args: argparse.Namespace) -> None:
    import psutil

    for rate in [float(r) for r in args.serve.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            port = args.port
            cmd = [
                sys.executable,
                "-m",
                "tickcast",
                "serve",
                "--demo",
                "--rate",
                f"{rate:g}",
                "--port",
                str(port),
                "--database-url",
                f"sqlite+aiosqlite:///{Path(tmp) / 'serve.db'}",
                "--log-level",
                "warning",
            ]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2):
                            break
                    except OSError as exc:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            err = proc.stderr.read() if proc.stderr else b""
                            raise SystemExit(f"serve did not get ready: {err!r}") from exc
                        time.sleep(0.2)
                time.sleep(args.warmup)
                p = psutil.Process(proc.pid)
                q0, c0, w0 = _scrape_quotes(port), p.cpu_times(), time.monotonic()
                time.sleep(args.window)
                q1, c1, w1 = _scrape_quotes(port), p.cpu_times(), time.monotonic()
                cpu = (c1.user + c1.system) - (c0.user + c0.system)
                ticks = q1 - q0
                print(
                    f"serve --rate {rate:g}: {100 * cpu / (w1 - w0):5.1f} % of a core, "
                    f"{ticks / (w1 - w0):,.0f} ticks/s simulated, "
                    f"{cpu / max(ticks, 1) * 1e6:.2f} us CPU per tick (whole process)"
                )
            finally:
                proc.terminate()
                proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rate", type=float, default=20000.0, help="ticks/s the batches are cut for"
    )
    parser.add_argument("--ticks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", default="sim,ingest,both")
    parser.add_argument("--profile", action="store_true", help="cProfile one ingest run")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--serve", default="", help="rates for the end-to-end check, e.g. 5000,20000"
    )
    parser.add_argument("--port", type=int, default=18731)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--no-in-process", action="store_true")
    args = parser.parse_args()
    if not args.no_in_process:
        run_in_process(args)
    if args.serve:
        run_serve(args)


if __name__ == "__main__":
    main()
