"""``tickcast update-prices``: a one-time update of the assets' prices from the feed.

Rules:
    - The prices come from the configured feed (``settings.feed``), run by the same
      Supervisor as ``serve`` and ``feed`` (failover, back-off, refused credentials are
      terminal), until every requested symbol has a price or ``timeout_s`` passes. The
      symbols still without a price are named on stderr; the others are written.
    - Everything is written in one transaction: existing assets get ``last_price`` and
      ``updated_at`` (and ``previous_close`` with ``--historical``); new ones are inserted,
      a crypto pair (``/`` in the symbol) as crypto, anything else as a stock.
    - ``--historical --days N`` builds N daily closes (00:00 UTC) per symbol. Only the
      simulator has a history here: the simulated market is run over the N days in
      day-sized steps (a few ticks per symbol per hour: the random walk's variance does
      not depend on the step), and the path is scaled to end at the live price just
      fetched, so the history leads to today's price instead of jumping to it. The
      latest complete day's close becomes ``previous_close``. Vendor feeds (Alpaca,
      Polygon) are streams; tickcast has no REST history client, so ``--historical``
      with them is refused (exit 2) before anything runs.
    - ``--dry-run`` prints what would be written and writes nothing: it does not
      migrate, and does not create a SQLite file that does not exist.
    - A progress bar (rich) is shown when stdout is a terminal and more than
      ``PROGRESS_THRESHOLD`` symbols or days are processed; otherwise plain lines.

Exit codes: 0 every requested symbol written (or shown, with ``--dry-run``); 1 some or
all symbols got no price (the others were written), credentials refused or database
unavailable; 2 bad usage (unknown symbols, ``--historical`` without the simulator);
130 interrupted (nothing written).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from sqlalchemy.exc import OperationalError

from tickcast.cli.feedcmds import supervise_until
from tickcast.config.groups import FeedSettings, StorageSettings
from tickcast.config.settings import Settings
from tickcast.errors import ConfigError, UpstreamAuthError
from tickcast.model.market import Bar, MarketEvent, Quote, Trade
from tickcast.portfolio.valuation import price_to_decimal
from tickcast.providers import registry
from tickcast.providers.base import Provider
from tickcast.providers.calendar import MarketCalendar, calendar_for
from tickcast.providers.simulator.market import MarketSimulator, SimulatorConfig, is_crypto
from tickcast.providers.supervisor import Supervisor
from tickcast.storage import migrate
from tickcast.storage.engine import make_engine, normalize_url
from tickcast.storage.records import Asset, AssetKind
from tickcast.storage.repositories import Assets

#: Longest wait for the feed to price every requested symbol, in seconds.
DEFAULT_TIMEOUT_S: Final = 30.0
#: Above this many symbols or days, a terminal gets a progress bar.
PROGRESS_THRESHOLD: Final = 20
#: Simulated ticks per symbol per day for ``--historical`` (equities tick only while
#: their calendar is open, so fewer under an exchange calendar).
HISTORY_TICKS_PER_DAY: Final = 48

_DAY_S: Final = 86400
_SIMULATOR: Final = ("simulator",)


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceUpdate:
    """What is (or would be) written for one symbol.

    Attributes:
        last_price: the feed's latest price.
        previous_close: the latest complete day's close (``--historical``); None keeps
            the stored one.
        closes: the daily closes built by ``--historical``, oldest first.
        new: the asset is not in the table yet (it is inserted).
    """

    symbol: str
    kind: AssetKind
    last_price: Decimal
    previous_close: Decimal | None = None
    closes: tuple[tuple[date, Decimal], ...] = ()
    new: bool = False


def run_update_prices(
    settings: Settings,
    symbols: Sequence[str] | None = None,
    historical_days: int | None = None,
    dry_run: bool = False,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``tickcast update-prices [--symbols ...] [--historical --days N] [--dry-run]``.

    Args:
        settings: the feed, the simulator's universe, seed and calendar
            (``settings.upstream``) and the database (``settings.storage``), each handed
            on as its group.
        symbols: the symbols to update; None = the feed's whole universe.
        historical_days: build this many daily closes and set ``previous_close``;
            None = live prices only.
        dry_run: print what would be written; write nothing.
        timeout_s: the longest wait for prices, in seconds (> 0).
        out, err: where the table and progress go, and the errors (stdout, stderr).
    """
    out, err = out or sys.stdout, err or sys.stderr
    feed, storage = settings.upstream, settings.storage

    def fail(code: int, message: str) -> int:
        print(f"tickcast update-prices: {message}", file=err)
        return code

    if not timeout_s > 0:
        return fail(2, "--timeout must be > 0 seconds")
    if historical_days is not None:
        if historical_days < 1:
            return fail(2, "--days must be at least 1")
        if feed.feed != _SIMULATOR:
            return fail(2, _no_history(feed.feed))
    try:
        providers = [registry.create(name, feed) for name in feed.feed]
        calendar = calendar_for(feed.calendar)
    except (ConfigError, ValueError) as exc:
        return fail(2, str(exc))
    universe = frozenset().union(*(p.symbols for p in providers))
    wanted = _wanted(symbols, universe)
    unknown = [s for s in wanted if s not in universe]
    if unknown:
        return fail(
            2,
            f"not in the feed's universe: {', '.join(unknown)} (the configured symbols are "
            f"{', '.join(sorted(universe))}; the universe is the `symbols` setting: "
            "TICKCAST_SYMBOLS or the settings file)",
        )

    big = len(wanted) > PROGRESS_THRESHOLD or (historical_days or 0) > PROGRESS_THRESHOLD
    progress = _progress_for(out, rich=big and out.isatty())
    try:
        with progress:
            live, timed_out = asyncio.run(_collect(feed, providers, wanted, timeout_s, progress))
            history: dict[str, list[tuple[date, float]]] = {}
            path_end: dict[str, float] = {}
            if historical_days is not None and live:
                history, path_end = simulate_daily_closes(
                    feed.symbols,
                    seed=feed.seed,
                    calendar=calendar,
                    days=historical_days,
                    now=time.time(),
                    progress=progress,
                )
    except KeyboardInterrupt:
        return fail(130, "interrupted; nothing written")
    except UpstreamAuthError as exc:
        return fail(1, f"credentials refused: {exc}")

    missing = [s for s in wanted if s not in live]
    updates = build_updates(
        {s: live[s] for s in wanted if s in live}, history, path_end, historical_days
    )
    if updates:
        try:
            stored = asyncio.run(
                _stored_symbols(storage) if dry_run else _write(storage, updates, datetime.now(UTC))
            )
        except (OSError, OperationalError) as exc:
            return fail(1, f"cannot use the database: {exc}")
        updates = [replace(u, new=u.symbol not in stored) for u in updates]
        _print_table(updates, out, historical_days, rich=out.isatty())
        verb = "would write" if dry_run else "wrote"
        inserted = sum(u.new for u in updates)
        print(
            f"{verb} {len(updates)} asset prices ({inserted} new assets)"
            + (" [dry run: nothing written]" if dry_run else ""),
            file=out,
        )
    no_history = [u.symbol for u in updates if historical_days and u.previous_close is None]
    if no_history:
        print(
            "tickcast update-prices: no simulated close (the market never opened in the "
            f"period) for: {', '.join(no_history)}; their previous close is unchanged",
            file=err,
        )
    if missing:
        hint = ""
        if feed.calendar.strip().lower() != "always":
            hint = f" (is the market closed? the feed follows the calendar {feed.calendar})"
        if not timed_out:
            return fail(1, f"the feed ended without a price for: {', '.join(missing)}")
        return fail(1, f"no price within {timeout_s:g} s for: {', '.join(missing)}{hint}")
    return 0


def _no_history(feed: Sequence[str]) -> str:
    return (
        f"--historical works with the simulator feed only; the configured feed "
        f"({', '.join(feed)}) streams live data and tickcast has no history (REST) client "
        "for it. Run without --historical, or with --feed simulator."
    )


def _wanted(symbols: Sequence[str] | None, universe: frozenset[str]) -> list[str]:
    if symbols is None:
        return sorted(universe)
    return list(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))


# -- the live prices


async def _collect(
    settings: FeedSettings,
    providers: Sequence[Provider],
    wanted: Sequence[str],
    timeout_s: float,
    progress: _Progress,
) -> tuple[dict[str, float], bool]:
    """Run the feed until every ``wanted`` symbol has a price, ``timeout_s`` passes or
    the feed ends (a replay); the prices, and whether the time ran out."""
    prices: dict[str, float] = {}
    wanted_set = frozenset(wanted)
    complete = asyncio.Event()
    progress.start(f"waiting for the prices of {len(wanted_set)} symbols", len(wanted_set))

    def sink(events: Sequence[MarketEvent]) -> None:
        for event in events:
            if isinstance(event, Quote | Trade):
                price = event.price
            elif isinstance(event, Bar):
                price = event.close
            else:
                continue
            symbol = event.symbol
            if symbol in wanted_set and math.isfinite(price) and price > 0:
                if symbol not in prices:
                    progress.advance()
                prices[symbol] = price
        if len(prices) == len(wanted_set):
            complete.set()

    supervisor = Supervisor.from_settings(settings, providers, sink)
    timed_out = asyncio.Event()

    def time_out() -> None:
        timed_out.set()
        complete.set()

    timer = asyncio.get_running_loop().call_later(timeout_s, time_out)
    try:
        await supervise_until(supervisor, complete)
    finally:
        timer.cancel()
        progress.finish(f"priced {len(prices)}/{len(wanted_set)} symbols")
    return prices, timed_out.is_set()


# -- the simulated history


def simulate_daily_closes(
    symbols: Sequence[str],
    *,
    seed: int,
    calendar: MarketCalendar,
    days: int,
    now: float,
    progress: _Progress | None = None,
    ticks_per_day: int = HISTORY_TICKS_PER_DAY,
) -> tuple[dict[str, list[tuple[date, float]]], dict[str, float]]:
    """The simulator's daily closes over the ``days`` complete UTC days before ``now``.

    Returns:
        The closes per symbol, oldest first, dated by their day (a symbol that has not
        traded yet on a day, under an exchange calendar, has no close for it), and the
        path's price at ``now``, per symbol that traded at all.
    """
    progress = progress or _Lines(None)
    today = math.floor(now / _DAY_S) * _DAY_S
    start = today - days * _DAY_S
    config = SimulatorConfig(
        symbols=tuple(symbols),
        seed=seed,
        rate=len(symbols) * ticks_per_day / _DAY_S,
        book_depth=1,
        bar_interval_s=_DAY_S,
        max_backlog_s=None,  # a day per step: catch up on every tick
    )
    simulator = MarketSimulator(config, calendar, start)
    closes: dict[str, list[tuple[date, float]]] = {s: [] for s in symbols}
    progress.start(f"simulating {days} days of history", days)
    for day in range(1, days + 1):
        boundary = start + day * _DAY_S
        simulator.advance(boundary)
        closing_day = datetime.fromtimestamp(boundary - _DAY_S, UTC).date()
        for symbol, price in _last_prices(simulator).items():
            closes[symbol].append((closing_day, price))
        progress.advance()
    simulator.advance(now)
    progress.finish(f"simulated {days} days of history")
    return closes, _last_prices(simulator)


def _last_prices(simulator: MarketSimulator) -> dict[str, float]:
    return {e.symbol: e.price for e in simulator.snapshot() if isinstance(e, Quote)}


def build_updates(
    live: Mapping[str, float],
    history: Mapping[str, Sequence[tuple[date, float]]],
    path_end: Mapping[str, float],
    historical_days: int | None,
) -> list[PriceUpdate]:
    """The rows to write: live prices as Decimal, and the history scaled to end at them."""
    updates = []
    for symbol, price in live.items():
        last = price_to_decimal(price)
        closes: tuple[tuple[date, Decimal], ...] = ()
        end = path_end.get(symbol)
        if historical_days is not None and end:
            scale = last / price_to_decimal(end)
            places = _places(last)
            closes = tuple(
                (day, (price_to_decimal(close) * scale).quantize(places))
                for day, close in history.get(symbol, ())
            )
        updates.append(
            PriceUpdate(
                symbol=symbol,
                kind=AssetKind.CRYPTO if is_crypto(symbol) else AssetKind.STOCK,
                last_price=last,
                previous_close=closes[-1][1] if closes else None,
                closes=closes,
            )
        )
    return updates


def _places(price: Decimal) -> Decimal:
    """The precision a price is quoted to (its own, at least cents): 0.01, 0.0001..."""
    exponent = price.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) else 2
    return Decimal(1).scaleb(-max(2, places))


# -- the database


async def _write(
    settings: StorageSettings, updates: Sequence[PriceUpdate], at: datetime
) -> frozenset[str]:
    """Write every update in one transaction; the symbols stored before it (for the table)."""
    prices = {u.symbol: (u.last_price, u.previous_close) for u in updates}
    engine = make_engine(settings.database_url)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            repo = Assets(conn)
            absent = await repo.update_prices(prices, at=at)
            await repo.upsert_many(
                Asset(
                    symbol=u.symbol,
                    name=u.symbol,
                    kind=u.kind,
                    last_price=u.last_price,
                    previous_close=u.previous_close,
                    updated_at=at,
                )
                for u in updates
                if u.symbol in absent
            )
            return frozenset(prices.keys() - absent)
    finally:
        await engine.dispose()


def _may_hold_assets(settings: StorageSettings) -> bool:
    """False for a SQLite file that does not exist (``--dry-run`` must not create it)."""
    url = normalize_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return True
    path = url.database
    return bool(path) and path != ":memory:" and Path(path or "").exists()


async def _stored_symbols(settings: StorageSettings) -> frozenset[str]:
    """The symbols in the assets table, read without writing anything (for ``--dry-run``).

    A SQLite file that does not exist is not created, and a database that was never
    migrated is not migrated: both simply hold no assets.
    """
    if not await asyncio.to_thread(_may_hold_assets, settings):
        return frozenset()
    engine = make_engine(settings.database_url)
    try:
        if await migrate.current(engine) is None:
            return frozenset()
        async with engine.connect() as conn:
            return frozenset(a.symbol for a in await Assets(conn).list_all())
    finally:
        await engine.dispose()


# -- output


def _print_table(
    updates: Sequence[PriceUpdate], out: TextIO, historical_days: int | None, *, rich: bool
) -> None:
    header = ["SYMBOL", "KIND", "LAST PRICE", "PREVIOUS CLOSE", "CHANGE %"]
    if historical_days is not None:
        header.append(f"{historical_days}-DAY CLOSES")
    header.append("ACTION")
    rows = []
    for u in sorted(updates, key=lambda u: u.symbol):
        previous = u.previous_close
        change = f"{(u.last_price - previous) / previous * 100:+.2f}" if previous else ""
        row = [
            u.symbol,
            u.kind.value,
            str(u.last_price),
            "" if previous is None else str(previous),
            change,
        ]
        if historical_days is not None:
            closes = [c for _, c in u.closes]
            row.append(f"{min(closes)} - {max(closes)}" if closes else "")
        row.append("insert" if u.new else "update")
        rows.append(row)
    if rich:
        table = Table(*header)
        for row in rows:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


class _Progress(Protocol):
    """A run's progress: phases of known size, each advanced, then finished."""

    def start(self, description: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def finish(self, summary: str) -> None: ...
    def __enter__(self) -> _Progress: ...
    def __exit__(self, *exc: object) -> None: ...


class _Lines:
    """Progress as plain lines: one when a phase finishes (none when ``out`` is None)."""

    def __init__(self, out: TextIO | None) -> None:
        self._out = out

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self, summary: str) -> None:
        if self._out is not None:
            print(summary, file=self._out, flush=True)

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Bars:
    """Progress as rich bars on a terminal, one per phase."""

    def __init__(self, out: TextIO) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(file=out),
            transient=False,
        )
        self._task: TaskID | None = None

    def start(self, description: str, total: int) -> None:
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def finish(self, summary: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=summary)
            self._task = None

    def __enter__(self) -> _Bars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def _progress_for(out: TextIO, *, rich: bool) -> _Progress:
    return _Bars(out) if rich else _Lines(out)
