"""Deterministic tick schedule shared by the Python peer servers.

Every peer generates the same stream: tick ``i`` belongs to symbol ``i % nsymbols`` and is
scheduled at ``start + i / rate``. The message timestamp is the *scheduled* time, not the
moment the (possibly overloaded) server got round to generating it, so generator lag shows
up in the measured end-to-end latency instead of being hidden.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable
from typing import Any


def symbol_names(args: argparse.Namespace) -> list[str]:
    if args.symbols:
        return [s for s in args.symbols.split(",") if s]
    return [f"S{i:03d}" for i in range(args.nsymbols)]


def add_peer_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--symbols", default="", help="comma-separated symbol list")
    parser.add_argument("--nsymbols", type=int, default=100, help="S000..S{n-1} if no --symbols")
    parser.add_argument("--rate", type=float, default=2000.0, help="total ticks/s, all symbols")
    parser.add_argument("--seed", type=int, default=1)


_sec_cache: dict[int, str] = {}


def stamp_ms(t: float) -> int:
    """The epoch millisecond a tick at ``t`` is stamped with: the nearest, as tickcast's
    ``iso_ms`` rounds (``round(t * 1000)``), so every server in the benchmark stamps by
    one rule and a latency measured against the stamp is off by at most 0.5 ms either way
    for all of them alike."""
    return round(t * 1000.0)


def iso_ms(t: float) -> str:
    """ISO-8601 UTC with millisecond precision (rounded to the nearest millisecond, the
    rule tickcast's wire format uses), e.g. 2023-05-01T12:34:56.789Z."""
    ms_total = stamp_ms(t)
    sec, ms = divmod(ms_total, 1000)
    prefix = _sec_cache.get(sec)
    if prefix is None:
        if len(_sec_cache) > 64:
            _sec_cache.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _sec_cache[sec] = prefix
    return f"{prefix}.{ms:03d}Z"


class TickSource:
    """Round-robin quote schedule at a fixed total rate."""

    def __init__(self, symbols: list[str], rate: float, seed: int, source: str) -> None:
        self.symbols = symbols
        self.rate = rate
        self.source = source
        self.rng = random.Random(seed)
        self.prices = [100.0 + 3.0 * i for i in range(len(symbols))]
        self.start = time.time()
        self.count = 0
        self.last_ts = self.start
        # Exact counter boundary: ticks whose millisecond timestamp is < cur_ms.
        self.cur_ms = 0
        self.count_before_cur_ms = 0

    async def pace(self, generated: int, cap: int) -> None:
        """Between two passes of a broadcast loop: behind schedule (a full pass of ``cap``
        ticks), only yield to the writers; caught up, sleep 1 ms for the next ticks."""
        await asyncio.sleep(0 if generated >= cap else 0.001)

    def due(self, now: float, cap: int) -> int:
        """Ticks scheduled up to ``now`` and not generated yet, at most ``cap``."""
        # tick i is due once start + i / rate <= now
        return max(0, min(cap, int((now - self.start) * self.rate) + 1 - self.count))

    def next_tick(self) -> tuple[str, dict[str, Any]]:
        i = self.count
        n = i % len(self.symbols)
        ts = self.start + i / self.rate
        ms = stamp_ms(ts)
        if ms > self.cur_ms:
            self.cur_ms, self.count_before_cur_ms = ms, i
        price = self.prices[n] * (1.0 + (self.rng.random() - 0.5) * 0.001)
        self.prices[n] = price
        symbol = self.symbols[n]
        msg = {
            "symbol": symbol,
            "price": round(price, 2),
            "bid": round(price - 0.05, 2),
            "ask": round(price + 0.05, 2),
            "volume": 100 * (1 + i % 50),
            "timestamp": iso_ms(ts),
            "source": self.source,
        }
        self.count = i + 1
        self.last_ts = ts
        return symbol, msg

    def stats(self) -> bytes:
        """Ticks stamped before millisecond ``boundary_ms``, which is the last tick's ms.

        Every tick stamped in an earlier millisecond has been generated and sent, none of
        a later one has, so a client can count exactly the same ticks by timestamp.
        """
        return json.dumps(
            {
                "ticks": self.count_before_cur_ms,
                "boundary_ms": self.cur_ms,
                "generated": self.count,
                "rate": self.rate,
                "now": time.time(),
            }
        ).encode()


def run_peer(doc: str | None, build_app: Callable[[argparse.Namespace], Any]) -> None:
    """Parse the common peer flags and serve ``build_app(args)`` with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description=doc)
    add_peer_args(parser)
    args = parser.parse_args()
    uvicorn.run(
        build_app(args),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
