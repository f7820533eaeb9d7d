"""Portfolio revaluation: portfolios revalued per CPU second, and the CPU that 2,000 ticks/s costs.

The book: 10,000 portfolios of 20 positions each (distinct symbols drawn from 500), every
symbol priced and with a previous close, so each symbol has about 400 holders. The feed: a
tick is one random symbol's new last price, a float on a +-0.5 % random walk rounded to the
cent, as a provider sends it; each tick is converted with ``price_to_decimal`` and fed to
``PortfolioBook.on_price``. "Revalued" counts every (tick, affected portfolio) pair.

Modes, each on a fresh book over the same ticks:

- ``totals``: ``on_price`` only (the running totals of every holder move).
- ``summary``: ``on_price`` + ``valuation(pid, positions=False)`` per affected portfolio:
  Front 2's ``portfolio_update`` (total value, daily change and percent).
- ``summary+position``: the same + ``position(pid, symbol)``: Front 3's unrealized P&L of
  the position that ticked.
- ``full``: ``on_price`` + ``valuation(pid)`` with its 20 positions.
- ``conflated 100 ms``: ``on_price`` per tick, affected ids gathered in a set, and every
  200 ticks (100 ms at 2,000 ticks/s) one ``valuation(pid, positions=False)`` per dirty
  portfolio, as a service behind a 100 ms batch window does.
- ``from scratch``: the reference without incremental state: ``value()`` over the
  holdings per affected portfolio.

CPU is ``time.process_time`` on one core (the process is pinned to CPU 0 when it can be),
the best of ``--repeat`` passes, each over its own ticks (the walk goes on).
"CPU at 2,000/s" is the share of that core that 2,000 ticks/s would take; over 100 %
means one core cannot keep up. The last lines check the book against ``value()``.

Run: .venv/bin/python bench/portfolio.py [--ticks 4000] [--repeat 3] [--portfolios 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from decimal import Decimal

from tickcast.portfolio.book import PortfolioBook
from tickcast.portfolio.valuation import Holding, price_to_decimal, value

RATE = 2000  # the feed's ticks per second
WINDOW_TICKS = RATE // 10  # ticks in one 100 ms batch window

Tick = tuple[str, float]


def symbols(count: int) -> list[str]:
    return [f"S{i:03}" for i in range(count)]


def start_prices(rng: random.Random, names: list[str]) -> dict[str, float]:
    return {name: round(rng.uniform(5, 500), 2) for name in names}


def holdings_for(
    rng: random.Random, names: list[str], prices: dict[str, float], positions: int
) -> list[Holding]:
    held = []
    for name in rng.sample(names, positions):
        quantity = Decimal(rng.randint(1, 100_000)).scaleb(-2)  # 0.01 .. 1000.00 units
        cost = price_to_decimal(round(prices[name] * rng.uniform(0.7, 1.3), 2))
        held.append(Holding(name, quantity, (quantity * cost).quantize(Decimal("0.01"))))
    return held


def ticks(rng: random.Random, prices: dict[str, float], count: int) -> list[Tick]:
    walk = dict(prices)
    names = list(walk)
    out = []
    for _ in range(count):
        name = rng.choice(names)
        walk[name] = max(0.01, round(walk[name] * (1 + rng.uniform(-0.005, 0.005)), 2))
        out.append((name, walk[name]))
    return out


def build(args: argparse.Namespace) -> tuple[PortfolioBook, float]:
    """A fresh book; returns it and the CPU seconds its loading took."""
    rng = random.Random(args.seed)
    names = symbols(args.symbols)
    prices = start_prices(rng, names)
    portfolios = [holdings_for(rng, names, prices, args.positions) for _ in range(args.portfolios)]
    book = PortfolioBook()
    started = time.process_time()
    for name, price in prices.items():
        book.set_previous_close(name, price_to_decimal(price))
        book.on_price(name, price_to_decimal(price))
    for portfolio_id, held in enumerate(portfolios):
        book.load(portfolio_id, held)
    return book, time.process_time() - started


def feed(args: argparse.Namespace) -> list[Tick]:
    """``--repeat`` passes of ``--ticks`` ticks: one walk, each pass goes on from the last."""
    rng = random.Random(args.seed)
    names = symbols(args.symbols)
    return ticks(random.Random(args.seed + 1), start_prices(rng, names), args.ticks * args.repeat)


Mode = Callable[[PortfolioBook, list[Tick]], int]


def totals(book: PortfolioBook, feed: list[Tick]) -> int:
    revalued = 0
    for symbol, price in feed:
        revalued += len(book.on_price(symbol, price_to_decimal(price)))
    return revalued


def summary(book: PortfolioBook, feed: list[Tick]) -> int:
    revalued = 0
    valuation = book.valuation
    for symbol, price in feed:
        for portfolio_id in book.on_price(symbol, price_to_decimal(price)):
            valuation(portfolio_id, positions=False)
            revalued += 1
    return revalued


def summary_and_position(book: PortfolioBook, feed: list[Tick]) -> int:
    revalued = 0
    valuation, position = book.valuation, book.position
    for symbol, price in feed:
        for portfolio_id in book.on_price(symbol, price_to_decimal(price)):
            valuation(portfolio_id, positions=False)
            position(portfolio_id, symbol)
            revalued += 1
    return revalued


def full(book: PortfolioBook, feed: list[Tick]) -> int:
    revalued = 0
    valuation = book.valuation
    for symbol, price in feed:
        for portfolio_id in book.on_price(symbol, price_to_decimal(price)):
            valuation(portfolio_id)
            revalued += 1
    return revalued


def conflated(book: PortfolioBook, feed: list[Tick]) -> int:
    revalued = 0
    dirty: set[int] = set()
    for n, (symbol, price) in enumerate(feed, 1):
        dirty |= book.on_price(symbol, price_to_decimal(price))
        if n % WINDOW_TICKS == 0 or n == len(feed):
            for portfolio_id in dirty:
                book.valuation(portfolio_id, positions=False)
            revalued += len(dirty)
            dirty.clear()
    return revalued


def from_scratch(book: PortfolioBook, feed: list[Tick]) -> int:
    revalued = 0
    prices: dict[str, Decimal] = dict(book.prices)
    closes = book.previous_closes
    holdings = {p: book.holdings(p) for p in range(len(book))}
    for symbol, price in feed:
        prices[symbol] = price_to_decimal(price)
        for portfolio_id in book.holders(symbol):  # the index, but no running totals
            value(portfolio_id, holdings[portfolio_id], prices, closes)
            revalued += 1
    return revalued


def check(book: PortfolioBook) -> int:
    """Compare 100 of the book's valuations with ``value()``; returns how many."""
    sample = range(0, len(book), max(1, len(book) // 100))
    for portfolio_id in sample:
        held = book.holdings(portfolio_id)
        expected = value(portfolio_id, held, book.prices, book.previous_closes)
        if book.valuation(portfolio_id) != expected:
            raise SystemExit(f"portfolio {portfolio_id}: the book differs from value()")
    return len(sample)


MODES: list[tuple[str, Mode, int]] = [  # name, run, share of --ticks it runs
    ("totals", totals, 1),
    ("summary", summary, 1),
    ("summary+position", summary_and_position, 1),
    ("full", full, 10),
    ("conflated 100 ms", conflated, 1),
    ("from scratch", from_scratch, 10),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=4000, help="ticks per mode (default 4000)")
    parser.add_argument("--portfolios", type=int, default=10_000)
    parser.add_argument("--positions", type=int, default=20, help="positions per portfolio")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="passes per mode, best counts")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    ticks_all = feed(args)
    print(
        f"{args.portfolios:,} portfolios x {args.positions} positions over {args.symbols} "
        f"symbols; feed {RATE:,} ticks/s"
    )
    print(
        f"{'mode':18} {'ticks':>6} {'revalued':>10} {'revalued/CPU s':>15} "
        f"{'us/revalue':>10} {'ticks/CPU s':>12} {'CPU at 2,000/s':>15}"
    )
    load_s = 0.0
    checked = 0
    for name, run, share in MODES:
        book, load_s = build(args)
        size = max(1, args.ticks // share)
        cpu, revalued = float("inf"), 0
        for k in range(args.repeat):
            part = ticks_all[k * size : (k + 1) * size]
            started = time.process_time()
            count = run(book, part)
            elapsed = time.process_time() - started
            if elapsed / max(count, 1) < cpu / max(revalued, 1):
                cpu, revalued = elapsed, count
        per_tick = cpu / len(part)
        print(
            f"{name:18} {len(part):6} {revalued:10,} {revalued / cpu:15,.0f} "
            f"{cpu / max(revalued, 1) * 1e6:10.2f} {1 / per_tick:12,.0f} "
            f"{RATE * per_tick:14.0%}"
        )
        checked += check(book)
    print(f"load: {args.portfolios:,} portfolios in {load_s:.2f} CPU s")
    print(f"check: {checked} valuations after the runs equal value() from scratch")
    print(
        f"command: .venv/bin/python bench/portfolio.py --ticks {args.ticks} --repeat {args.repeat}"
    )


if __name__ == "__main__":
    main()
