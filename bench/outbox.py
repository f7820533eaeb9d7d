"""The outbox's hot path, before and after per-key rates (``max_rate``), side by side.

What a connection does with every update the hub delivers (``Outbox.put``) and every
batch the pump takes (``Outbox.flush``), for a client that asked for no rate: the
outbox as it was at ``--baseline`` (a git revision, read with ``git show``; by default
``main``) against the one in this tree, in one process and one run, interleaved, so that
the ratio holds on a noisy machine even when the absolute figures move. A third column
gives the same work with every quote key rated (not a comparison: what a ``max_rate``
client costs).

Workloads, per batch window: ``quotes`` 50 symbols x 20 updates conflated to 50 items;
``trades`` 200 reliable items; ``mixed`` both. Figures are nanoseconds per put (the
flush included), the best of ``REPEAT`` runs, and the median of the ratios of the runs
made back to back (the figure least moved by a noisy neighbour).

Run: PYTHONPATH=src .venv/bin/python bench/outbox.py [--baseline REV]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import timeit
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tickcast.hub import outbox as current

REPO = Path(__file__).resolve().parents[1]
REPEAT = 9
BATCHES = 200
SYMBOLS = [f"quotes.S{i:02d}" for i in range(50)]


def baseline(rev: str) -> types.ModuleType:
    """``hub/outbox.py`` as it was at ``rev``, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:src/tickcast/hub/outbox.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("outbox_baseline")
    exec(compile(source, f"{rev}:outbox.py", "exec"), module.__dict__)
    return module


def workload(name: str) -> tuple[list[tuple[bytes, str | None]], int]:
    """One batch window's puts (item, key), and how many puts that is."""
    item = b'{"symbol":"S00","price":150.25}'
    quotes: list[tuple[bytes, str | None]] = [(item, k) for _ in range(20) for k in SYMBOLS]
    trades: list[tuple[bytes, str | None]] = [(item, None)] * 200
    puts = {"quotes": quotes, "trades": trades, "mixed": [*quotes, *trades]}[name]
    return puts, len(puts)


def runner(
    outbox_type: Any, puts: list[tuple[bytes, str | None]], rated: bool
) -> Callable[[], None]:
    box = outbox_type(0.1, 65536, 8 * 1024 * 1024, size=len)
    if rated:
        for key in SYMBOLS:
            box.set_rate(key, 1000.0, 0.0)
    put = box.put
    flush = box.flush

    def run() -> None:
        now = 0.0
        for _ in range(BATCHES):
            for item, key in puts:
                put(item, now, key)
            now += 0.1
            flush(now, max_bytes=64 * 1024)

    return run


def best_ns(fn: Callable[[], None], per: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=1)) * 1e9 / per


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision (default: main)")
    args = parser.parse_args(argv)
    old = baseline(args.baseline)
    print(f"Outbox.put + flush, ns per put (best of {REPEAT}, interleaved)")
    print(
        f"{'workload':<8} {'before':>8} {'after':>8} {'after/before':>13} "
        f"{'paired median':>14} {'rated':>8}"
    )
    for name in ("quotes", "trades", "mixed"):
        puts, n = workload(name)
        per = n * BATCHES
        figures: dict[str, list[float]] = {"before": [], "after": [], "rated": []}
        for _ in range(REPEAT):  # interleaved: a noisy moment hits all three alike
            figures["before"].append(best_ns(runner(old.Outbox, puts, False), per))
            figures["after"].append(best_ns(runner(current.Outbox, puts, False), per))
            figures["rated"].append(best_ns(runner(current.Outbox, puts, True), per))
        before, after, rated = (min(figures[k]) for k in ("before", "after", "rated"))
        paired = statistics.median(
            a / b for a, b in zip(figures["after"], figures["before"], strict=True)
        )
        print(
            f"{name:<8} {before:>8.1f} {after:>8.1f} {after / before:>13.3f} {paired:>14.3f}"
            f" {rated:>8.1f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
