"""The simulated market: random-walk quotes, trades, level-2 books and bars.

Rules: this module is pure. It imports no ``asyncio``, ``time`` or ``socket``; the caller
passes ``now`` (epoch seconds, UTC) to ``MarketSimulator.advance`` and gets the events
due since the previous call. The only randomness is one ``random.Random(seed)`` per
simulator (and per-symbol parameter draws seeded from ``seed`` and the symbol), so the
same config, start time and sequence of ``now`` values give the same events.

The clock of the simulated market is fixed by ``start_ts`` and ``rate``: tick ``k`` happens
at ``start_ts + k / rate``. ``advance`` only decides how many of those ticks are emitted
per call, so the event stream does not depend on how often it is called (except when a
stall longer than ``max_backlog_s`` is skipped, which is counted in ``skipped_ticks``).

Prices and sizes are held as integers (ticks and size units) and turned into floats by
dividing by a power of ten, so every float printed is the nearest double to a decimal
with the instrument's precision (``190.01``, never ``190.01000000000002``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

# Re-exported: the default universe is config's, the simulator's default config uses it.
from tickcast.config.defaults import DEFAULT_SYMBOLS as DEFAULT_SYMBOLS
from tickcast.model.market import Bar, BookUpdate, Level, MarketEvent, Quote, Trade
from tickcast.providers.calendar import MarketCalendar

#: Starting price, annualized volatility and quoted spread (bps) of the default universe.
_KNOWN: Final[dict[str, tuple[float, float, float]]] = {
    "AAPL": (190.0, 0.25, 2.0),
    "MSFT": (420.0, 0.22, 2.0),
    "GOOGL": (170.0, 0.28, 2.0),
    "AMZN": (185.0, 0.30, 2.0),
    "TSLA": (250.0, 0.55, 3.0),
    "NVDA": (130.0, 0.50, 2.0),
    "SPY": (550.0, 0.14, 1.0),
    "BTC/USDT": (65000.0, 0.55, 1.0),
    "ETH/USDT": (3500.0, 0.70, 2.0),
}

#: Seconds in a volatility year: 252 sessions of 6.5 hours for equities, 365.25 days for crypto.
_EQUITY_YEAR_S: Final = 252 * 6.5 * 3600
_CRYPTO_YEAR_S: Final = 365.25 * 86400
_DAY_S: Final = 86400

#: Chance that a tick also prints a trade, and that a trade prints inside the spread.
_TRADE_PROBABILITY: Final = 0.3
_INSIDE_PROBABILITY: Final = 0.2
#: Chance that an equity trade is an odd lot (1 to 99 shares) rather than round lots.
_ODD_LOT_PROBABILITY: Final = 0.2
#: Distance between book levels behind the touch, in bps of the price (at least one tick).
_LEVEL_STEP_BPS: Final = 1.0
#: Notional of one crypto size lot, in quote currency (USDT).
_CRYPTO_LOT_NOTIONAL: Final = 2000.0


def is_crypto(symbol: str) -> bool:
    """Crypto pairs contain a slash (``BTC/USDT``); they trade 24/7 in fractional sizes."""
    return "/" in symbol


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """What the simulator trades and how fast.

    Attributes:
        symbols: the universe. A symbol containing ``/`` is a crypto pair (24/7,
            fractional sizes); any other is an equity (round lots, follows the calendar).
            Unknown symbols get a starting price and volatility seeded from their name.
        seed: seed of the simulator's random generator.
        rate: quote ticks per second across all symbols when every market is open
            (each tick also carries a book delta and, sometimes, a trade). Must be > 0;
            rates of 20,000 and more are supported.
        book_depth: levels per side of each symbol's level-2 book (>= 1).
        bar_interval_s: bar length in seconds (>= 1); bars align to multiples of it in
            epoch time, so 60 gives bars on the wall-clock minute.
        source: the ``source`` field of every event.
        max_backlog_s: longest stretch, in seconds, that one ``advance`` call catches up
            on; the ticks of a longer stall (a suspended laptop, a blocked loop) are
            skipped and counted in ``MarketSimulator.skipped_ticks``. None catches up on
            everything, however long.
    """

    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    seed: int = 42
    rate: float = 50.0
    book_depth: int = 10
    bar_interval_s: int = 60
    source: str = "simulator"
    max_backlog_s: float | None = 5.0

    def __post_init__(self) -> None:
        if not self.symbols or any(not s for s in self.symbols):
            raise ValueError("symbols must be a non-empty tuple of non-empty names")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"duplicate symbols in {self.symbols!r}")
        if not self.rate > 0 or math.isinf(self.rate):
            raise ValueError(f"rate must be a positive number of ticks per second: {self.rate}")
        if self.book_depth < 1:
            raise ValueError(f"book_depth must be >= 1: {self.book_depth}")
        if self.bar_interval_s < 1:
            raise ValueError(f"bar_interval_s must be >= 1 second: {self.bar_interval_s}")
        if self.max_backlog_s is not None and not self.max_backlog_s > 0:
            raise ValueError(f"max_backlog_s must be > 0 or None: {self.max_backlog_s}")


class _Side:
    """One side of a book: level prices (ticks, best first) and sizes (units) by price."""

    __slots__ = ("bids", "prices", "sizes")

    def __init__(self, *, bids: bool) -> None:
        self.bids = bids
        self.prices: list[int] = []
        self.sizes: dict[int, int] = {}

    def levels(self, tick_inv: int, size_inv: int) -> tuple[Level, ...]:
        sizes = self.sizes
        return tuple([(p / tick_inv, sizes[p] / size_inv) for p in self.prices])


class _Instrument:
    """Everything the simulator tracks for one symbol. Prices in ticks, sizes in units."""

    __slots__ = (
        "bar_close",
        "bar_high",
        "bar_low",
        "bar_open",
        "bar_volume",
        "book_ask",
        "book_bid",
        "crypto",
        "fair",
        "half_spread",
        "last_price",
        "last_quote",
        "last_ts",
        "lot",
        "sequence",
        "session_end",
        "size_inv",
        "step",
        "symbol",
        "tick_inv",
        "trades",
        "vol_per_sqrt_s",
        "volume",
    )

    def __init__(self, symbol: str, seed: int, start_ts: float) -> None:
        self.symbol = symbol
        self.crypto = is_crypto(symbol)
        params = random.Random(f"{seed}:{symbol}")
        if symbol in _KNOWN:
            price, vol, spread_bps = _KNOWN[symbol]
        elif self.crypto:
            price = math.exp(params.uniform(math.log(0.05), math.log(5000.0)))
            vol, spread_bps = params.uniform(0.5, 1.0), params.uniform(1.0, 5.0)
        else:
            price = math.exp(params.uniform(math.log(10.0), math.log(500.0)))
            vol, spread_bps = params.uniform(0.2, 0.6), params.uniform(2.0, 5.0)
        digits = max(0, math.ceil(math.log10(price)))
        if self.crypto:
            self.tick_inv = 10 ** max(2, 6 - digits)
            self.size_inv = 10**digits
            self.lot = max(1, round(_CRYPTO_LOT_NOTIONAL / price * self.size_inv))
            year_s = _CRYPTO_YEAR_S
        else:
            self.tick_inv = 100
            self.size_inv = 1
            self.lot = 100
            year_s = _EQUITY_YEAR_S
        self.vol_per_sqrt_s = vol / math.sqrt(year_s)
        self.half_spread = spread_bps / 2e4
        self.step = max(1, round(price * _LEVEL_STEP_BPS / 1e4 * self.tick_inv))
        self.fair = price * self.tick_inv
        self.last_ts = start_ts
        self.book_bid = _Side(bids=True)
        self.book_ask = _Side(bids=False)
        self.sequence = 0
        self.last_price: float | None = None
        self.last_quote: Quote | None = None
        self.volume = 0
        self.session_end = 0.0
        self.trades = 0
        self.bar_open = self.bar_high = self.bar_low = self.bar_close = 0.0
        self.bar_volume = 0


class MarketSimulator:
    """A seeded, clock-free market: ``advance(now)`` returns the events due up to ``now``.

    Every tick picks one symbol with the seeded generator and produces, all at the
    tick's time and in this order: a ``BookUpdate`` (a full snapshot with ``book_depth``
    levels per side the first time, then deltas of the changed levels, size 0 meaning
    removed, ``sequence`` +1 each), sometimes a ``Trade`` (at or inside the spread), and
    a ``Quote`` (``price`` is the last trade, the mid before any; ``volume`` the session's
    cumulative volume, reset at 00:00 UTC and when an equity market reopens). When a
    bar boundary is crossed every symbol that traded in the bar gets a ``Bar`` stamped
    with the boundary time. Equities produce nothing while the calendar says closed;
    their ticks are not given to other symbols, and crypto goes on.

    Args:
        config: the universe, seed and rate.
        calendar: when equities trade; crypto ignores it.
        start_ts: the simulated market's start, epoch seconds UTC.
    """

    def __init__(self, config: SimulatorConfig, calendar: MarketCalendar, start_ts: float) -> None:
        self._config = config
        self._calendar = calendar
        self._rng = random.Random(config.seed)
        self._start = start_ts
        self._rate = config.rate
        self._last = start_ts
        self._ticks = 0  # ticks consumed so far, tick k happens at start + k / rate
        self._skipped = 0
        interval = config.bar_interval_s
        self._next_bar = float((math.floor(start_ts / interval) + 1) * interval)
        self._instruments = [_Instrument(s, config.seed, start_ts) for s in config.symbols]

    @property
    def config(self) -> SimulatorConfig:
        """The configuration this simulator runs."""
        return self._config

    @property
    def skipped_ticks(self) -> int:
        """Ticks skipped because an ``advance`` call came more than ``max_backlog_s`` late."""
        return self._skipped

    @property
    def ticks(self) -> int:
        """Ticks consumed so far, skipped ones included (tick k is due at start + k / rate)."""
        return self._ticks

    def resume(self, now: float) -> None:
        """Start (or restart) delivering at ``now``: the market was not being read before.

        The ticks due up to ``now`` and not yet delivered are dropped without being
        counted in ``skipped_ticks``: nobody was reading them, so missing them is not the
        stall that ``skipped_ticks`` measures (e.g. the gateway's start-up between
        building the simulator and its first wake-up). A ``now`` at or before the
        previous call changes nothing.
        """
        if now > self._last:
            self._last = now
            self._ticks = max(self._ticks, self._last_due(now))

    def _last_due(self, now: float) -> int:
        """The highest i with ``start + i / rate <= now``, computed the same way as the
        tick times so that rounding cannot put a tick in two windows or none."""
        start, rate = self._start, self._rate
        due = math.floor((now - start) * rate)
        while start + (due + 1) / rate <= now:
            due += 1
        while due > 0 and start + due / rate > now:
            due -= 1
        return due

    def advance(self, now: float, max_ticks: int | None = None) -> list[MarketEvent]:
        """The events due after the previous call (or ``start_ts``) and up to ``now``.

        Args:
            now: the current time, epoch seconds UTC. A ``now`` at or before the previous
                one returns no events.
            max_ticks: the most ticks to simulate in this call (>= 1): the newest ones;
                older ones are skipped and counted in ``skipped_ticks``. None: as many as
                are due (within ``max_backlog_s``).

        Returns:
            The events in time order; every ``ts`` lies in ``(previous now, now]``.
        """
        last = self._last
        if not now > last:
            return []
        self._last = now
        start, rate = self._start, self._rate
        k = self._ticks
        backlog = self._config.max_backlog_s
        if backlog is not None and now - last > backlog:
            resume = math.floor((now - backlog - start) * rate)
            if resume > k:
                self._skipped += resume - k
                k = resume
        due = max(self._last_due(now), k)
        if max_ticks is not None and due - k > max_ticks:
            self._skipped += due - max_ticks - k
            k = due - max_ticks
        self._ticks = due
        events: list[MarketEvent] = []
        instruments = self._instruments
        n = len(instruments)
        rng_random = self._rng.random
        is_open = self._calendar.is_open
        next_bar = self._next_bar
        tick = self._tick
        for i in range(k + 1, due + 1):
            ts = start + i / rate
            if ts >= next_bar:
                next_bar = self._close_bars(next_bar, ts, events)
            inst = instruments[int(rng_random() * n)]
            if not inst.crypto and not is_open(ts):
                inst.session_end = 0.0  # reopening starts a new session
                continue
            tick(inst, ts, events)
        if now >= next_bar:
            next_bar = self._close_bars(next_bar, now, events)
        self._next_bar = next_bar
        return events

    def snapshot(self) -> list[MarketEvent]:
        """The latest Quote and a full book snapshot of every symbol that has ticked.

        The snapshot carries the book's current ``sequence``: apply deltas with a higher one.
        """
        events: list[MarketEvent] = []
        source = self._config.source
        for inst in self._instruments:
            if inst.last_quote is None:
                continue
            events.append(inst.last_quote)
            events.append(
                BookUpdate(
                    inst.symbol,
                    inst.book_bid.levels(inst.tick_inv, inst.size_inv),
                    inst.book_ask.levels(inst.tick_inv, inst.size_inv),
                    True,
                    inst.last_quote.ts,
                    source,
                    inst.sequence,
                )
            )
        return events

    def _close_bars(self, boundary: float, ts: float, events: list[MarketEvent]) -> float:
        """Emit the bars of every interval ending at or before ``ts``; the next boundary."""
        interval = self._config.bar_interval_s
        source = self._config.source
        while ts >= boundary:
            for inst in self._instruments:
                if inst.bar_volume:
                    events.append(
                        Bar(
                            inst.symbol,
                            inst.bar_open,
                            inst.bar_high,
                            inst.bar_low,
                            inst.bar_close,
                            inst.bar_volume / inst.size_inv,
                            boundary - interval,
                            boundary,
                            source,
                            interval,
                        )
                    )
                    inst.bar_volume = 0
            boundary += interval
        return boundary

    def _tick(self, inst: _Instrument, ts: float, events: list[MarketEvent]) -> None:
        """Move one symbol's price and emit its book update, maybe a trade, and a quote."""
        rng = self._rng
        rnd = rng.random
        source = self._config.source
        tick_inv = inst.tick_inv
        size_inv = inst.size_inv

        dt = ts - inst.last_ts
        inst.last_ts = ts
        if ts >= inst.session_end:
            inst.volume = 0
            inst.session_end = (ts // _DAY_S + 1) * _DAY_S
        sigma = inst.vol_per_sqrt_s * math.sqrt(dt)  # dt > 0: tick times strictly increase
        inst.fair *= math.exp(sigma * rng.gauss() - 0.5 * sigma * sigma)
        fair = inst.fair
        half = fair * inst.half_spread
        # max(1, ...) and max(bid + 1, ...) written out: the same ints, without two calls
        bid = int(fair - half)
        if bid < 1:
            bid = 1
        ask = -int(-(fair + half))
        if ask < bid + 1:
            ask = bid + 1
        lot = inst.lot
        bid_units = lot * (1 + int(rnd() * 20))
        ask_units = lot * (1 + int(rnd() * 20))

        # Level-2 book: the touch, then levels on a grid of `step` ticks behind it.
        inst.sequence += 1
        if inst.sequence == 1:
            _rebuild(inst.book_bid, bid, bid_units, inst.step, self._config.book_depth, rnd, lot)
            _rebuild(inst.book_ask, ask, ask_units, inst.step, self._config.book_depth, rnd, lot)
            events.append(
                BookUpdate(
                    inst.symbol,
                    inst.book_bid.levels(tick_inv, size_inv),
                    inst.book_ask.levels(tick_inv, size_inv),
                    True,
                    ts,
                    source,
                    1,
                )
            )
        else:
            depth = self._config.book_depth
            step = inst.step
            bid_levels = _update(
                inst.book_bid, bid, bid_units, step, depth, rnd, lot, tick_inv, size_inv
            )
            ask_levels = _update(
                inst.book_ask, ask, ask_units, step, depth, rnd, lot, tick_inv, size_inv
            )
            events.append(
                BookUpdate(inst.symbol, bid_levels, ask_levels, False, ts, source, inst.sequence)
            )

        u = rnd()
        if u < _TRADE_PROBABILITY:
            if rnd() < _INSIDE_PROBABILITY:
                price_ticks = bid + int(rnd() * (ask - bid + 1))
            else:
                price_ticks = ask if u < _TRADE_PROBABILITY / 2 else bid
            if inst.crypto:
                v = rnd()
                units = 1 + int(v * v * v * lot * 10)
            elif rnd() < _ODD_LOT_PROBABILITY:
                units = 1 + int(rnd() * 99)
            else:
                v = rnd()
                units = lot * (1 + int(v * v * 10))
            price = price_ticks / tick_inv
            inst.trades += 1
            inst.volume += units
            inst.last_price = price
            if inst.bar_volume:
                if price > inst.bar_high:
                    inst.bar_high = price
                elif price < inst.bar_low:
                    inst.bar_low = price
            else:
                inst.bar_open = inst.bar_high = inst.bar_low = price
            inst.bar_close = price
            inst.bar_volume += units
            events.append(Trade(inst.symbol, price, units / size_inv, ts, source, str(inst.trades)))

        last = inst.last_price
        quote = Quote(
            inst.symbol,
            bid / tick_inv,
            ask / tick_inv,
            bid_units / size_inv,
            ask_units / size_inv,
            last if last is not None else (bid + ask) / (2 * tick_inv),
            inst.volume / size_inv,
            ts,
            source,
        )
        inst.last_quote = quote
        events.append(quote)


def _grid(side: _Side, top: int, step: int, depth: int) -> list[int]:
    """Level prices, best first: the touch, then grid points strictly behind it."""
    if side.bids:
        first = ((top - 1) // step) * step
        return [top, *range(first, max(0, first - step * (depth - 1)), -step)]
    first = (top // step + 1) * step
    return [top, *range(first, first + step * (depth - 1), step)]


#: The bound ``random`` method of the simulator's generator: a float in [0, 1).
_Random = Callable[[], float]


def _level_units(rnd: _Random, lot: int) -> int:
    """A resting level's size: 1 to 40 lots."""
    return lot * (1 + int(rnd() * 40))


def _rebuild(
    side: _Side, top: int, top_units: int, step: int, depth: int, rnd: _Random, lot: int
) -> None:
    """Fill an empty side: ``depth`` levels from the touch back (fewer near a zero price)."""
    side.prices = _grid(side, top, step, depth)
    side.sizes = {p: _level_units(rnd, lot) for p in side.prices}
    side.sizes[top] = top_units


def _update(
    side: _Side,
    top: int,
    top_units: int,
    step: int,
    depth: int,
    rnd: _Random,
    lot: int,
    tick_inv: int,
    size_inv: int,
) -> tuple[Level, ...]:
    """Move a side to a new touch; the changed levels, best first, as the book update's
    ``(price, size)`` (ticks / ``tick_inv``, units / ``size_inv``).

    Besides the touch (whose size changes every tick) one deeper level, picked at random,
    is resized; levels that fell out of the book come back with size 0.
    """
    prices = side.prices
    sizes = side.sizes
    if prices[0] == top:  # the common case, built as it goes (no list, no sort)
        sizes[top] = top_units
        if len(prices) > 1:
            p = prices[1 + int(rnd() * (len(prices) - 1))]
            units = sizes[p] = lot * (1 + int(rnd() * 40))  # _level_units, inlined
            return ((top / tick_inv, top_units / size_inv), (p / tick_inv, units / size_inv))
        return ((top / tick_inv, top_units / size_inv),)
    new = _grid(side, top, step, depth)
    keep = set(new)
    changes = []
    for p in prices:
        if p not in keep:
            del sizes[p]
            changes.append((p, 0))
    for p in new:
        if p not in sizes and p != top:
            units = sizes[p] = _level_units(rnd, lot)
            changes.append((p, units))
    sizes[top] = top_units
    changes.append((top, top_units))
    side.prices = new
    changes.sort(reverse=side.bids)  # one entry per price, so this orders by price
    return tuple([(p / tick_inv, s / size_inv) for p, s in changes])
