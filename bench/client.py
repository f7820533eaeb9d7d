"""The Python SDK's own cost: messages per second it can decode and hand to a caller.

Three measures, in one process on one core (pinned to CPU 0 when it can be):

- ``decode``: ``protocols.native.client.decode`` alone (JSON to typed messages);
- ``sdk``: the whole receive path of ``tickcast.client.Feed`` but the socket: a frame
  through ``Feed._frame`` (decode, seq and gap checks, books, the bounded queue) and
  every message taken by the caller (``Feed.__anext__``);
- for each: single-object frames (one quote each, ``?frames=single``) and array frames
  of 50 messages (quotes and trades over 8 symbols, ``?frames=array``).

Frames are made by the server's own codec (``encode_with_seq``), as a gateway sends them.
Run: .venv/bin/python bench/client.py [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from typing import Any

from tickcast.client.feed import Feed
from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote, Trade
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.native import codec
from tickcast.protocols.native.client import decode

SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY", "AMD")
PER_ARRAY = 50
REPEAT = 5


def messages(n: int, trades: bool) -> list[bytes]:
    """``n`` encoded messages, seq counting per topic; every fifth a trade if asked."""
    seqs: dict[Topic, int] = {}
    out = []
    ts = time.time()
    for i in range(n):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        price = 100.0 + (i % 97) / 100
        payload: Any
        if trades and i % 5 == 4:
            payload, channel = Trade(symbol, price, 10.0, ts, "bench", f"t{i}"), Channel.TRADES
        else:
            payload = Quote(symbol, price - 0.01, price + 0.01, 1, 1, price, 1e6, ts, "bench")
            channel = Channel.QUOTES
        topic = Topic(channel, symbol)
        seqs[topic] = seqs.get(topic, 0) + 1
        out.append(codec.encode_with_seq(Envelope(topic, seqs[topic], ts, payload, "bench")))
    return out


def frames(n: int, array: bool) -> list[bytes]:
    encoded = messages(n, trades=array)
    if not array:
        return encoded
    return [
        b"[" + b",".join(encoded[i : i + PER_ARRAY]) + b"]"
        for i in range(0, len(encoded), PER_ARRAY)
    ]


def bench_decode(batch: list[bytes], count: int) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        for frame in batch:
            decode(frame)
        best = min(best, time.perf_counter() - t0)
    return count / best


async def bench_sdk(batch: list[bytes], count: int) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        feed = Feed("ws://127.0.0.1:1/ws/market/feed", max_queue=count + 1)
        feed.streams.add(f"{c}.{s}" for s in SYMBOLS for c in ("quotes", "trades"))
        taken = 0
        t0 = time.perf_counter()
        for frame in batch:
            await feed._frame(frame, None)  # type: ignore[arg-type]  # no resnapshot here
            while len(feed.queue):
                await feed.__anext__()
                taken += 1
        best = min(best, time.perf_counter() - t0)
        # the caller got each trade and every quote it did not fall behind on
        assert taken == feed.stats.delivered
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {0})
    n = args.messages
    print(f"{'frames':<8} {'path':<8} {'msgs/s':>12}")
    for array in (False, True):
        batch = frames(n, array)
        kind = "array" if array else "single"
        print(f"{kind:<8} {'decode':<8} {bench_decode(batch, n):>12,.0f}")
        print(f"{kind:<8} {'sdk':<8} {asyncio.run(bench_sdk(batch, n)):>12,.0f}")


if __name__ == "__main__":
    main()
