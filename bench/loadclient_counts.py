"""bench/loadclient.py's counting and statistics: every market message bucketed by its
timestamp, the latency samples, the server's tick counter at the window's boundaries
(``snapshot``), and what was delivered in the window (``in_window``, ``coverage``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from picows import WSTransport

from freshness import Freshness, ts_epoch
from tickcast.client import load

if TYPE_CHECKING:
    from loadclient_listeners import FeedListener

_time = time.time

# Per timestamp bucket (23-byte ISO prefix, millisecond resolution): message count and the
# wall time of the latest arrival. Shared by all connections; asyncio is single-threaded.
COUNTS: dict[bytes, int] = {}
LAST_RECV: dict[bytes, float] = {}
SAMPLES: list[tuple[bytes, float]] = []


class Window:
    """End of the measured window as a timestamp prefix, once known (b"~" sorts last)."""

    limit = b"~"


class Sampler:
    every = 10
    k = 0
    total = 0


def iso23(ms: int) -> bytes:
    """The 23-byte ISO prefix of epoch millisecond ``ms``."""
    sec, frac = divmod(ms, 1000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:03d}").encode()


#: what the tracked pairs hold, sampled on a fixed clock (see bench/freshness.py)
FRESH = Freshness()


def _record(data: bytes, now: float) -> bytes:
    """Bucket one JSON market message by timestamp; return the timestamp bytes."""
    i = data.find(b'"timestamp"')
    j = data.find(b'"', i + 11)
    ts = data[j + 1 : j + 24]
    COUNTS[ts] = COUNTS.get(ts, 0) + 1
    LAST_RECV[ts] = now
    s = Sampler
    s.total += 1
    s.k += 1
    if s.k >= s.every:
        s.k = 0
        SAMPLES.append((ts, now))
    return ts


def _symbol(data: bytes) -> bytes:
    i = data.find(b'"symbol"')
    j = data.find(b'"', i + 8)
    return data[j + 1 : data.find(b'"', j + 1)]


# ---------------------------------------------------------------------------------------------
# Server tick counter
# ---------------------------------------------------------------------------------------------


async def http_get(url: str, timeout_s: float) -> bytes:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the benchmark only targets 127.0.0.1")
    path = parts.path + (f"?{parts.query}" if parts.query else "")

    async def go() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            raw = await reader.read()
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1] if b" " in head else b"?"
        if status != b"200":
            raise RuntimeError(f"GET {url}: HTTP {status.decode(errors='replace')}")
        if b"transfer-encoding: chunked" in head.lower():
            out, rest = b"", body
            while rest:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0] or b"0", 16)
                if size == 0:
                    break
                out, rest = out + rest[:size], rest[size + 2 :]
            body = out
        return body

    return await asyncio.wait_for(go(), timeout_s)


def parse_prometheus(text: str, spec: str) -> float:
    """Sum the samples of ``spec`` (``name`` or ``name{label="v",...}``) in exposition text."""
    name, _, want = spec.partition("{")
    wanted = [w.strip() for w in want.rstrip("}").split(",") if w.strip()]
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        rest = line[len(name) :]
        if rest[:1] == "{":
            labels, _, value = rest[1:].partition("}")
        elif rest[:1] == " ":
            labels, value = "", rest
        else:
            continue
        if all(w in labels for w in wanted):
            total += float(value.split()[0])
            found = True
    if not found:
        raise RuntimeError(f"metric {spec!r} not found in /metrics")
    return total


async def snapshot(args: argparse.Namespace) -> tuple[float, int, float]:
    """(ticks stamped before the boundary, boundary in epoch ms, its uncertainty in s).

    The client counts messages whose millisecond timestamp lies in [boundary0, boundary1).
    """
    t_a = _time()
    if args.stats_kind.startswith("schedule:"):
        # The server stamps tick k at start + k / rate and skips none (a skip is a loss), so
        # rate * (B1 - B0) ticks are stamped in [B0, B1), to +-1 tick.
        boundary = math.floor(t_a * 1000.0)
        return float(args.stats_kind.removeprefix("schedule:")) * boundary / 1000.0, boundary, 0.0
    body = await http_get(args.stats_url, args.stats_timeout)
    t_b = _time()
    if args.stats_kind == "peer":
        doc = json.loads(body)
        return float(doc["ticks"]), int(doc["boundary_ms"]), 0.0
    ticks = parse_prometheus(body.decode(), args.stats_kind.removeprefix("prom:"))
    return ticks, round((t_a + t_b) * 500.0), (t_b - t_a) / 2


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------


def symbols_for(i: int, args: argparse.Namespace) -> list[str]:
    """The rule ``tickcast loadgen`` uses too (``tickcast.client.load.symbols_for``)."""
    universe = [args.symbol_format.format(n) for n in range(args.nsymbols)]
    return load.symbols_for(i, args.per_client, universe)


def in_window(b0: bytes, b1: bytes) -> int:
    return sum(n for ts, n in COUNTS.items() if b0 <= ts < b1)


def coverage(
    conns: list[tuple[WSTransport, FeedListener] | None],
    args: argparse.Namespace,
    b0: bytes,
    b1: bytes,
    t0: float,
    strict: bool = False,
) -> tuple[float, int]:
    """Mean over (connection, symbol) of the window's ticks whose latest value arrived.

    A pair is fully covered when it received a message stamped at or after the window end,
    or the newest in-window timestamp any subscriber of the symbol received (the symbol's last
    tick in the window, as far as anyone can tell). Otherwise it is covered up to the newest
    timestamp it did receive, ticks assumed spread evenly over the window. A symbol none of
    whose subscribers received anything stamped in the window had, as far as anyone can
    tell, no tick in it (W3's near-idle feed): its pairs are covered, unless ``strict`` (the
    drain's test, which waits for late messages). Per-tick delivery counts any loss.
    """
    pairs = [(c, s.encode()) for i, c in enumerate(conns) for s in symbols_for(i, args)]
    newest: dict[bytes, bytes] = {}
    for c, s in pairs:
        if c is not None:
            last = c[1].last.get(s)
            if last is not None and b0 <= last < b1 and last > newest.get(s, b""):
                newest[s] = last
    total, uncovered = 0.0, 0
    for c, s in pairs:
        target = newest.get(s)
        if c is None:
            uncovered += 1
            continue
        if target is None and not strict:
            total += 1.0
            continue
        last = c[1].last.get(s)
        if s in c[1].after or (last is not None and (last >= b1 or (target and last >= target))):
            total += 1.0
            continue
        uncovered += 1
        if last is not None and target is not None and last > b0:
            span = ts_epoch(target) - t0
            total += max(0.0, min(1.0, (ts_epoch(last) - t0) / span)) if span > 0 else 0.0
    return (total / len(pairs) if pairs else 0.0), uncovered
