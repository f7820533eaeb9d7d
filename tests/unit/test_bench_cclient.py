"""The compiled load client (bench/cclient/loadclient.c), built with gcc, against a tiny
WebSocket server written here with ``websockets``, and beside the Python load client
(bench/loadclient.py) on the same messages.

The server stamps every message itself and answers ``/stats`` (the peer kind) with a
window it chose, so every count is known in advance and nothing depends on timing: text
frames whole, split into continuation frames, and larger than one read; array frames;
a message stamped before the window; a ping that must be answered; a server-side close.
No speed is asserted. Without gcc the tests skip (fail under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from support.benchmod import load_bench
from tickcast.client.load import percentile

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


build = load_bench("bench_cclient_build", "cclient/build.py")
sys.path.insert(0, str(BENCH))  # bench/freshness.py, as bench/loadclient.py imports it
freshness = load_bench("freshness", "freshness.py")


@pytest.fixture(scope="module")
def cbin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not build.available():
        if os.environ.get("CI") == "true":
            pytest.fail("gcc is required under CI to build bench/cclient")
        pytest.skip("gcc not found")
    path: Path = build.binary(cache=tmp_path_factory.mktemp("cclient"))
    return path


def iso(ms: int) -> str:
    """tickcast's wire stamp (iso_ms) of epoch millisecond ``ms``."""
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def quote(symbol: str, ms: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "price": 101.5,
        "bid": 101.4,
        "ask": 101.6,
        "volume": 100,
        "timestamp": iso(ms),
        "source": "sim",
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class Feed:
    """The test server: per connection, a fixed script of messages, all stamped in a
    2-second window 10 s in the past (so every latency is above 8 s, by causality)."""

    def __init__(
        self, clients: int, close_symbol: str | None = None, fragment: bool = True
    ) -> None:
        self.b0 = int(time.time() * 1000) - 10_000
        self.b1 = self.b0 + 2000
        self.clients = clients
        self.close_symbol = close_symbol
        #: split two messages into continuation frames (the Python client, on picows,
        #: reads each fragment as a frame of its own and so misses them: tickcast never
        #: fragments what it sends)
        self.fragment = fragment
        self.stats_calls = 0
        self.subscribes: list[Any] = []
        self.pongs = 0
        self.closes_answered: list[int] = []
        self.sent = 0

    def stamps(self, n: int, offset: int) -> list[int]:
        return [self.b0 + (offset + 7 * k) % 2000 for k in range(n)]

    def in_window_per_connection(self) -> int:
        return 5 + 1 + 1200 + 300

    async def send(self, ws: ServerConnection, text: str, parts: int) -> None:
        """``text`` as one frame, or as ``parts`` continuation frames."""
        if not self.fragment or parts == 1:
            await ws.send(text)
            return
        step = len(text) // parts + 1
        await ws.send([text[i : i + step] for i in range(0, len(text), step)])

    def stats(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != "/stats":
            return None
        self.stats_calls += 1
        if self.stats_calls == 1:
            doc = {"ticks": 0, "boundary_ms": self.b0}
        else:
            ticks = self.in_window_per_connection() * self.clients
            doc = {"ticks": ticks, "boundary_ms": self.b1}
        return connection.respond(HTTPStatus.OK, json.dumps(doc))

    async def handler(self, ws: ServerConnection) -> None:
        sub = json.loads(await ws.recv())
        self.subscribes.append(sub)
        sym = sub["symbols"][0]
        await ws.send(dumps({"type": "subscribed", "symbols": sub["symbols"]}))
        waiter = await ws.ping(b"hi")
        await asyncio.wait_for(waiter, 30)
        self.pongs += 1
        # five whole objects, then one stamped just before the window (not counted in it)
        for ms in self.stamps(5, 1):
            await ws.send(dumps(quote(sym, ms)))
        await ws.send(dumps(quote(sym, self.b0 - 1)))
        # one object in three continuation frames
        await self.send(ws, dumps(quote(sym, self.b0 + 500)), 3)
        # an array frame far larger than one read, with a control object that has no price
        items: list[Any] = [quote(sym, ms) for ms in self.stamps(1200, 3)]
        items.insert(600, {"type": "heartbeat", "timestamp": iso(self.b0 + 1)})
        await ws.send(dumps(items))
        # an array split into two fragments
        await self.send(ws, dumps([quote(sym, ms) for ms in self.stamps(300, 5)]), 2)
        self.sent += 1
        if sym == self.close_symbol:
            await ws.close(1000, "bye")
            if ws.protocol.close_rcvd is not None:
                self.closes_answered.append(ws.protocol.close_rcvd.code)
            return
        await ws.wait_closed()


async def run_client(cmd: list[str]) -> list[dict[str, Any]]:
    """Run a load client; its JSON lines (run.py's LineReader reads the same)."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(BENCH)])},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, err.decode()[-2000:]
    return lines


def flags(port: int, clients: int) -> list[str]:
    return [
        "--url", f"ws://127.0.0.1:{port}/ws/market/feed",
        "--protocol", "native",
        "--stats-url", f"http://127.0.0.1:{port}/stats", "--stats-kind", "peer",
        "--clients", str(clients), "--per-client", "1", "--nsymbols", str(clients),
        "--warmup", "0", "--duration", "0.1", "--drain-min", "0", "--drain-stall", "2",
        "--drain-max", "30", "--sample-every", "1", "--fresh-pairs", "0",
        "--connect-timeout", "30",
    ]  # fmt: skip


async def start(feed: Feed) -> tuple[Server, int]:
    server = await serve(feed.handler, "127.0.0.1", 0, process_request=feed.stats)
    port = next(iter(server.sockets)).getsockname()[1]
    return server, int(port)


def by_event(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["event"]: line for line in lines}


async def test_counts_fragments_pings_and_close(cbin: Path) -> None:
    feed = Feed(clients=2, close_symbol="S001")
    server, port = await start(feed)
    try:
        lines = await run_client([str(cbin), *flags(port, 2)])
    finally:
        server.close()
        await server.wait_closed()
    events = [line["event"] for line in lines]
    assert events == ["connected", "measure_start", "measure_end", "result"]
    got = by_event(lines)
    assert got["measure_start"]["boundary"] == feed.b0
    assert got["measure_end"]["boundary"] == feed.b1
    r = got["result"]
    assert "error" not in r
    assert r["client"] == "c"
    assert r["clients_connected"] == 2
    assert sorted(s["symbols"][0] for s in feed.subscribes) == ["S000", "S001"]
    assert all(s == {"action": "subscribe", "symbols": s["symbols"]} for s in feed.subscribes)
    assert feed.pongs == 2
    assert feed.closes_answered == [1000]
    per_conn = feed.in_window_per_connection()
    assert r["received_in_window"] == 2 * per_conn
    assert r["expected_deliveries"] == 2 * per_conn
    assert r["per_tick_delivered_ratio"] == 1.0
    assert r["per_client_received_min"] == r["per_client_received_max"] == per_conn + 1
    assert r["latency_samples"] == 2 * per_conn
    assert r["disconnected_during_run"] == 1
    # stamped 8 to 10 s before they were sent: every latency is at least 8 s
    assert 8000 <= r["latency_p50_ms"] <= r["latency_p99_ms"] <= r["latency_max_ms"]


async def test_same_figures_and_format_as_the_python_client(cbin: Path) -> None:
    results = {}
    for name, cmd in (
        ("c", [str(cbin)]),
        ("python", [sys.executable, str(BENCH / "loadclient.py")]),
    ):
        feed = Feed(clients=2, close_symbol="S001", fragment=False)
        server, port = await start(feed)
        try:
            results[name] = by_event(await run_client([*cmd, *flags(port, 2)]))["result"]
        finally:
            server.close()
            await server.wait_closed()
    c, py = results["c"], results["python"]
    assert "error" not in py, py
    assert set(py) - {"event"} <= set(c), set(py) - set(c)  # the fields run.py reads
    for key in (
        "clients_connected",
        "received_in_window",
        "expected_deliveries",
        "per_tick_delivered_ratio",
        "latency_samples",
        "per_client_received_min",
        "per_client_received_max",
        "disconnected_during_run",
        "window_s",
    ):
        assert c[key] == py[key], key


def python_latency(rows: list[tuple[int, float]], b0: int, b1: int, every: int) -> dict[str, Any]:
    """bench/loadclient.py's figures over ``(stamp ms, receive time)`` in arrival order:
    ``_record``'s sampling and buckets, ``run``'s percentiles and exact max."""
    counts: dict[bytes, int] = {}
    last: dict[bytes, float] = {}
    samples: list[tuple[bytes, float]] = []
    k = 0
    for ms, now in rows:
        ts = iso(ms)[:23].encode()
        counts[ts] = counts.get(ts, 0) + 1
        last[ts] = now
        k += 1
        if k >= every:
            k = 0
            samples.append((ts, now))
    lo, hi = iso(b0)[:23].encode(), iso(b1)[:23].encode()
    ts_epoch = freshness.ts_epoch
    lat = sorted((now - ts_epoch(ts)) * 1000.0 for ts, now in samples if lo <= ts < hi)
    return {
        "received_in_window": sum(n for ts, n in counts.items() if lo <= ts < hi),
        "latency_samples": len(lat),
        "latency_p50_ms": percentile(lat, 0.50),
        "latency_p99_ms": percentile(lat, 0.99),
        "latency_max_ms": max(
            ((last[ts] - ts_epoch(ts)) * 1000.0 for ts in counts if lo <= ts < hi), default=None
        ),
    }


@pytest.mark.parametrize(("n", "every"), [(1, 1), (2, 1), (1000, 10), (4321, 7)])
async def test_latency_summary_is_the_python_clients(cbin: Path, n: int, every: int) -> None:
    b0 = 1_796_000_000_000
    b1 = b0 + 500
    rows = [
        (b0 - 20 + (k * 37) % 560, (b0 + (k * 53) % 700) / 1000 + 0.0123 * (k % 9))
        for k in range(n)
    ]
    proc = await asyncio.create_subprocess_exec(
        str(cbin), "--summary-stdin", str(b0), str(b1), str(every),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    text = "".join(f"{ms} {now!r}\n" for ms, now in rows).encode()
    out, _ = await asyncio.wait_for(proc.communicate(text), 60)
    got = json.loads(out)
    want = python_latency(rows, b0, b1, every)
    assert got["received_in_window"] == want["received_in_window"]
    assert got["latency_samples"] == want["latency_samples"]
    for key in ("latency_p50_ms", "latency_p99_ms", "latency_max_ms"):
        if want[key] is None:
            assert got[key] is None
        else:
            assert got[key] == pytest.approx(want[key], abs=1e-6), key
