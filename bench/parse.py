"""Upstream parse + normalize throughput per vendor, against the vendors' own SDKs.

Side by side in one process and one run (so the ratios hold on a noisy machine):

- tickcast: ``providers/<vendor>/parse.parse(raw, received_at)`` then
  ``enrich.SessionState.apply`` (the whole per-frame work of the adapter but the socket).
- alpaca-py: what ``alpaca.data.live.websocket`` does per frame: ``msgpack.unpackb``
  then ``_cast`` (Timestamp -> datetime, a pydantic Quote/Trade model).
- massive (the official Polygon client): ``json.loads`` then ``models.parse`` (a
  dataclass per event).

Frames are the shape the vendors send: arrays of 10 quotes and trades over 8 symbols,
built from the vendors' documented examples. One core: the process is pinned to CPU 0
when it can be. Run: .venv/bin/python bench/parse.py [--frames N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any

import msgpack

from tickcast.providers.alpaca import parse as alpaca_parse
from tickcast.providers.enrich import SessionState
from tickcast.providers.polygon import parse as polygon_parse

SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY", "AMD")
PER_FRAME = 10
REPEAT = 5


def alpaca_items(rng: random.Random, n: int) -> list[dict[str, Any]]:
    base = dt.datetime(2024, 7, 24, 14, 30, tzinfo=dt.UTC)
    items = []
    for i in range(n):
        symbol = rng.choice(SYMBOLS)
        t = base + dt.timedelta(microseconds=i * 1731)
        price = round(100 + rng.random() * 50, 2)
        if i % 3:
            items.append(
                {
                    "T": "q",
                    "S": symbol,
                    "bx": "K",
                    "bp": price,
                    "bs": 2,
                    "ax": "Q",
                    "ap": round(price + 0.03, 2),
                    "as": 1,
                    "c": ["R"],
                    "z": "C",
                    "t": t,
                }
            )
        else:
            items.append(
                {
                    "T": "t",
                    "S": symbol,
                    "i": 1000 + i,
                    "x": "K",
                    "p": price,
                    "s": 100,
                    "c": ["@", "F", "T", "I"],
                    "z": "C",
                    "t": t,
                }
            )
    return items


def alpaca_json(items: list[dict[str, Any]]) -> str:
    def text(item: dict[str, Any]) -> dict[str, Any]:
        t = item["t"]
        return {**item, "t": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}511Z"}

    return json.dumps([text(i) for i in items], separators=(",", ":"))


def alpaca_msgpack(items: list[dict[str, Any]]) -> bytes:
    packed = [{**i, "t": msgpack.Timestamp.from_datetime(i["t"])} for i in items]
    return msgpack.packb(packed)


def polygon_frame(rng: random.Random, start: int, n: int) -> str:
    items = []
    for i in range(start, start + n):
        symbol = rng.choice(SYMBOLS)
        price = round(100 + rng.random() * 50, 3)
        ms = 1651684192462 + i
        if i % 3:
            items.append(
                {
                    "ev": "Q",
                    "sym": symbol,
                    "bx": 4,
                    "bp": price,
                    "bs": 100,
                    "ax": 7,
                    "ap": round(price + 0.03, 3),
                    "as": 160,
                    "c": 0,
                    "i": [604],
                    "t": ms,
                    "q": 50385480 + i,
                    "z": 3,
                }
            )
        else:
            items.append(
                {
                    "ev": "T",
                    "sym": symbol,
                    "i": str(5096 + i),
                    "x": 10,
                    "p": price,
                    "s": 300,
                    "c": [14, 41],
                    "t": ms,
                    "q": 4009402 + i,
                    "z": 3,
                }
            )
    return json.dumps(items, separators=(",", ":"))


def tickcast_runner(parse: Callable[..., Any], frames: list[Any]) -> Callable[[], int]:
    def run() -> int:
        state = SessionState()
        now = time.time()
        count = 0
        for frame in frames:
            parsed = parse(frame, now)
            count += len(state.apply(parsed.events))
        return count

    return run


def alpaca_py_runner(frames: list[bytes]) -> Callable[[], int]:
    from alpaca.data.live.stock import StockDataStream

    stream = StockDataStream("key", "secret", raw_data=False)

    def run() -> int:
        count = 0
        for frame in frames:
            for msg in msgpack.unpackb(frame):
                stream._cast(msg)
                count += 1
        return count

    return run


def massive_runner(frames: list[str]) -> Callable[[], int]:
    from massive.websocket.models import Market, parse

    logger = logging.getLogger("bench.massive")

    def run() -> int:
        count = 0
        for frame in frames:
            count += len(parse(json.loads(frame), logger, Market.Stocks))
        return count

    return run


def measure(run: Callable[[], int]) -> float:
    """Messages per second: the best of REPEAT runs (the least disturbed)."""
    best = 0.0
    for _ in range(REPEAT):
        started = time.perf_counter()
        count = run()
        best = max(best, count / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000, help="frames per run (default 5000)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    rng = random.Random(42)
    items = [alpaca_items(rng, PER_FRAME) for _ in range(args.frames)]
    a_json = [alpaca_json(i) for i in items]
    a_msgpack = [alpaca_msgpack(i) for i in items]
    p_json = [polygon_frame(rng, k * PER_FRAME, PER_FRAME) for k in range(args.frames)]
    rows = [
        ("alpaca", "tickcast (JSON)", measure(tickcast_runner(alpaca_parse.parse, a_json))),
        ("alpaca", "tickcast (msgpack)", measure(tickcast_runner(alpaca_parse.parse, a_msgpack))),
        ("alpaca", "alpaca-py (msgpack)", measure(alpaca_py_runner(a_msgpack))),
        ("polygon", "tickcast (JSON)", measure(tickcast_runner(polygon_parse.parse, p_json))),
        ("polygon", "massive (JSON)", measure(massive_runner(p_json))),
    ]
    print(f"{'vendor':8} {'parser':22} {'messages/s':>12}")
    for vendor, name, rate in rows:
        print(f"{vendor:8} {name:22} {rate:12,.0f}")


if __name__ == "__main__":
    main()
