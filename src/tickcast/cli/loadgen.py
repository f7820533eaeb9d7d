"""``tickcast loadgen``: many SDK clients against a deployment, and what they got.

``tickcast loadgen --url ws://host/ws/market/feed --clients 200 --symbols-per-client 5
--duration 30`` opens that many ``tickcast.client`` feeds (at most ``--concurrency``
connecting at once; several ``--url`` spread them round-robin over nodes or proxies),
subscribes client ``i`` to its share of ``--symbols`` (the benchmark's rule:
``tickcast.client.load.symbols_for``), and counts for ``--duration`` seconds. A progress
line shows connected clients, messages and their rate, latency and reconnects; at the
end a report: messages delivered (and per second), latency percentiles (receive time
minus the message's timestamp: includes the clock difference between the machines),
reconnects, heartbeat timeouts, quotes conflated, resets, gaps and errors. ``--json``
prints the report as one JSON line on stdout.

Each client is an SDK feed: it reconnects, resumes and detects dead connections as any
user's does, so a proxy or node going away mid-run shows as reconnects, not as a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from tickcast.client import Feed, FeedError, FeedGaveUp
from tickcast.client.load import Reservoir, symbols_for
from tickcast.config.defaults import DEFAULT_SYMBOLS


@dataclass
class Run:
    """The counters every client adds to (one event loop: no locks)."""

    clients: int
    feeds: list[Feed] = field(default_factory=list)
    connected: int = 0  # clients subscribed and still running (a failed one leaves)
    delivered: int = 0
    latency: Reservoir = field(default_factory=lambda: Reservoir(rng=random.Random(1)))
    errors: dict[str, int] = field(default_factory=dict)
    measuring: bool = False

    def error(self, exc: BaseException) -> None:
        name = f"{type(exc).__name__}: {exc}" if isinstance(exc, FeedGaveUp) else type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    def totals(self) -> dict[str, int]:
        feeds = self.feeds
        return {
            "reconnects": sum(f.stats.reconnects for f in feeds),
            "heartbeat_timeouts": sum(f.stats.heartbeat_timeouts for f in feeds),
            "conflated": sum(f.conflation.total + f.counters.server_conflated for f in feeds),
            "resets": sum(f.counters.resets for f in feeds),
            "gaps": sum(f.counters.gaps for f in feeds),
        }


async def _client(
    run: Run,
    gate: asyncio.Semaphore,
    url: str,
    symbols: list[str],
    channels: list[str],
    options: dict[str, Any],
) -> None:
    feed: Feed | None = None
    counted = False
    try:
        feed = Feed(url, **options)  # a bad URL is a ValueError: counted, like a refusal
        async with gate:  # at most --concurrency connecting at once
            await feed.start()
            run.feeds.append(feed)
            await feed.subscribe(symbols, channels=channels)
            run.connected += 1
            counted = True
        wall = time.time
        async for message in feed:
            if not run.measuring:
                continue
            run.delivered += 1
            ts = getattr(message, "ts", 0.0)
            if ts:
                run.latency.add((wall() - ts) * 1000.0)
    except (FeedError, ValueError, OSError) as exc:
        run.error(exc)
    finally:
        if counted:
            run.connected -= 1
        if feed is not None:
            await feed.close()


def _progress(run: Run, started: float, duration: float, rate: float) -> Text:
    lat = run.latency.summary()
    p50 = f"{lat['p50']:.1f}" if lat["p50"] is not None else "-"
    p99 = f"{lat['p99']:.1f}" if lat["p99"] is not None else "-"
    totals = run.totals()
    elapsed = min(duration, time.monotonic() - started) if run.measuring else 0.0
    errors = sum(run.errors.values())
    return Text(
        f"{elapsed:5.1f}/{duration:g}s  clients {run.connected}/{run.clients}  "
        f"messages {run.delivered:,} ({rate:,.0f}/s)  latency p50 {p50} ms p99 {p99} ms  "
        f"reconnects {totals['reconnects']}  errors {errors}"
    )


async def generate(options: dict[str, Any], console: Console | None) -> dict[str, Any]:
    urls = [u for arg in options["url"] for u in arg.split(",") if u]
    universe = [s.strip().upper() for s in options["symbols"].split(",") if s.strip()]
    channels = [c.strip() for c in options["channels"].split(",") if c.strip()]
    clients, per_client = options["clients"], options["symbols_per_client"]
    duration = float(options["duration"])
    feed_options: dict[str, Any] = {
        "token": options.get("token") or os.environ.get("TICKCAST_TOKEN"),
        "heartbeat_s": options["heartbeat"],
        "max_attempts": options["max_attempts"],
    }
    run = Run(clients)
    gate = asyncio.Semaphore(options["concurrency"])
    t0 = time.monotonic()
    tasks = [
        asyncio.create_task(
            _client(run, gate, urls[i % len(urls)], symbols_for(i, per_client, universe),
                    channels, feed_options)
        )
        for i in range(clients)
    ]  # fmt: skip
    live = Live(Text("connecting..."), console=console, refresh_per_second=4) if console else None
    with live or contextlib.nullcontext():
        deadline = t0 + options["connect_timeout"]
        while run.connected + sum(run.errors.values()) < clients and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if live is not None:
                live.update(Text(f"connecting: {run.connected}/{clients}"))
        connect_s = time.monotonic() - t0
        run.measuring = True
        started = time.monotonic()
        last, last_t, rate = 0, started, 0.0
        while (now := time.monotonic()) - started < duration:
            await asyncio.sleep(min(0.25, max(0.0, duration - (now - started))))
            if time.monotonic() - last_t >= 1.0:
                rate = (run.delivered - last) / (time.monotonic() - last_t)
                last, last_t = run.delivered, time.monotonic()
            if live is not None:
                live.update(_progress(run, started, duration, rate))
        run.measuring = False
        elapsed = time.monotonic() - started
        connected = run.connected  # still running at the end (before they are stopped)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "urls": urls,
        "clients_requested": clients,
        "clients_connected": connected,
        "connect_s": round(connect_s, 3),
        "duration_s": round(elapsed, 3),
        "delivered": run.delivered,
        "delivered_per_s": round(run.delivered / elapsed, 1) if elapsed > 0 else None,
        "latency_ms": {
            k: None if v is None else round(v, 3) for k, v in run.latency.summary().items()
        },
        "latency_samples": run.latency.count,
        **run.totals(),
        "errors": run.errors,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _print_report(report: dict[str, Any]) -> None:
    lat = report["latency_ms"]
    rows = [
        ("clients", f"{report['clients_connected']}/{report['clients_requested']} connected "
                    f"in {report['connect_s']} s"),
        ("delivered", f"{report['delivered']:,} messages in {report['duration_s']} s "
                      f"({report['delivered_per_s'] or 0:,.0f}/s)"),
        ("latency ms", "  ".join(f"{k} {_ms(v)}" for k, v in lat.items())),
        ("reconnects", f"{report['reconnects']} (heartbeat timeouts "
                       f"{report['heartbeat_timeouts']})"),
        ("conflated", str(report["conflated"])),
        ("resets, gaps", f"{report['resets']}, {report['gaps']}"),
        ("errors", "; ".join(f"{v} x {k}" for k, v in report["errors"].items()) or "none"),
    ]  # fmt: skip
    for name, value in rows:
        print(f"{name:>13}  {value}")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "loadgen",
        help="many SDK clients against a tickcast deployment: deliveries, latency, errors",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument(
        "--url",
        action="append",
        required=True,
        help="a market feed URL; repeat (or comma-separate) to spread clients over nodes",
    )
    p.add_argument("--clients", type=int, default=100, help="clients (default 100)")
    p.add_argument(
        "--symbols-per-client", type=int, default=5, help="symbols per client (default 5)"
    )
    p.add_argument("--duration", type=float, default=30.0, help="seconds measured (default 30)")
    p.add_argument(
        "--symbols",
        default=",".join(DEFAULT_SYMBOLS),
        help="comma-separated symbols to spread (default: the simulator's)",
    )
    p.add_argument("--channels", default="quotes", help="comma-separated (default quotes)")
    p.add_argument("--token", help="a JWT or an API key (default: $TICKCAST_TOKEN)")
    p.add_argument("--concurrency", type=int, default=50, help="connects at once (default 50)")
    p.add_argument(
        "--connect-timeout", type=float, default=120.0, help="seconds for all to connect"
    )
    p.add_argument("--heartbeat", type=float, default=5.0, help="seconds (default 5)")
    p.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        help="give a client up after N failed tries in a row, counted as an error (default 5; "
        "a refused connection, such as the gateway's per-address cap, is one)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")


def run(options: dict[str, Any]) -> int:
    if options["clients"] < 1 or options["symbols_per_client"] < 1 or options["duration"] <= 0:
        print("tickcast loadgen: --clients, --symbols-per-client and --duration must be > 0",
              file=sys.stderr)  # fmt: skip
        return 2
    console = Console(stderr=True) if sys.stderr.isatty() else None
    try:
        report = asyncio.run(generate(options, console))
    except KeyboardInterrupt:
        return 130
    if options["json"]:
        print(json.dumps(report), flush=True)
    else:
        _print_report(report)
    return 0 if report["clients_connected"] else 1
