"""The market simulator: determinism, rate, books, bars, calendars, and its asyncio driver."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

import pytest

from tickcast.model.market import Bar, BookUpdate, MarketEvent, Quote, Trade
from tickcast.providers.calendar import AlwaysOpen
from tickcast.providers.simulator import (
    DEFAULT_SYMBOLS,
    MarketSimulator,
    SimulatorConfig,
    SimulatorProvider,
)
from tickcast.providers.simulator.stream import default_tick_interval_s

T = TypeVar("T", bound=MarketEvent)

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z, on a minute boundary


class Closed:
    """A calendar whose market never opens."""

    def is_open(self, ts: float) -> bool:
        return False


class ClosedBetween:
    """A calendar closed over ``[close_ts, open_ts)`` and open otherwise."""

    def __init__(self, close_ts: float, open_ts: float) -> None:
        self.close_ts = close_ts
        self.open_ts = open_ts

    def is_open(self, ts: float) -> bool:
        return not self.close_ts <= ts < self.open_ts


def simulator(**config: object) -> MarketSimulator:
    return MarketSimulator(SimulatorConfig(**config), AlwaysOpen(), START)  # type: ignore[arg-type]


def run(sim: MarketSimulator, seconds: float, step_s: float = 0.25) -> list[MarketEvent]:
    """Advance in ``step_s`` steps over ``seconds`` of simulated time after START."""
    events: list[MarketEvent] = []
    for i in range(1, round(seconds / step_s) + 1):
        events += sim.advance(START + i * step_s)
    return events


def of_type(events: Sequence[MarketEvent], kind: type[T]) -> list[T]:
    return [e for e in events if isinstance(e, kind)]


def test_same_seed_gives_identical_events_and_another_seed_differs() -> None:
    first = run(simulator(seed=7, rate=200), 30)
    assert first == run(simulator(seed=7, rate=200), 30)
    assert first != run(simulator(seed=8, rate=200), 30)


def test_events_do_not_depend_on_how_often_advance_is_called() -> None:
    one_call = simulator(rate=300, max_backlog_s=None).advance(START + 65)
    many_calls = run(simulator(rate=300), 65, step_s=0.01)
    assert one_call == many_calls


@pytest.mark.parametrize(("rate", "step_s"), [(50.0, 0.25), (3.0, 0.125), (20_000.0, 0.005)])
def test_quote_count_matches_rate_over_elapsed_time(rate: float, step_s: float) -> None:
    sim = simulator(rate=rate)
    counts = [len(of_type(sim.advance(START + i * step_s), Quote)) for i in range(1, 33)]
    seconds = 32 * step_s
    assert sum(counts) == int(rate * seconds)  # fractional ticks carry over between calls
    if rate == 3.0:
        assert set(counts) == {0, 1}  # 0.375 ticks per call: most calls emit none


def test_timestamps_increase_and_stay_inside_each_window() -> None:
    sim = simulator(rate=300)
    last = START
    for i in range(1, 200):
        now = START + i * 0.37
        events = sim.advance(now)
        stamps = [e.ts for e in events]
        assert stamps == sorted(stamps)
        assert all(last < ts <= now for ts in stamps)
        last = now


def test_advance_to_a_time_not_after_the_previous_one_returns_nothing() -> None:
    sim = simulator(rate=100)
    assert sim.advance(START) == []
    assert sim.advance(START + 1)
    assert sim.advance(START + 0.5) == []
    assert sim.advance(START + 1) == []


def test_quotes_have_positive_spreads_of_a_few_bps_on_the_tick_grid() -> None:
    quotes = of_type(run(simulator(rate=500), 20), Quote)
    assert {q.symbol for q in quotes} == set(DEFAULT_SYMBOLS)
    for q in quotes:
        assert 0 < q.bid < q.ask
        assert (q.ask - q.bid) / q.bid < 10e-4  # under 10 bps
        assert q.bid_size > 0
        assert q.ask_size > 0
        assert round(q.bid, 2) == q.bid  # 0.01 ticks for the default universe
        assert round(q.ask, 2) == q.ask
        assert q.source == "simulator"


def test_default_universe_starts_at_realistic_prices() -> None:
    first: dict[str, Quote] = {}
    for q in of_type(run(simulator(rate=200), 5), Quote):
        first.setdefault(q.symbol, q)
    assert first["AAPL"].bid == pytest.approx(190, rel=0.01)
    assert first["SPY"].bid == pytest.approx(550, rel=0.01)
    assert first["BTC/USDT"].bid == pytest.approx(65_000, rel=0.01)
    assert first["ETH/USDT"].bid == pytest.approx(3_500, rel=0.01)


def test_unknown_symbols_get_seeded_prices_and_crypto_gets_fractional_sizes() -> None:
    def first_quote(seed: int, symbol: str) -> Quote:
        sim = simulator(symbols=("ZZZZ", "DOGE/USDT"), seed=seed, rate=100)
        return next(q for q in of_type(run(sim, 2), Quote) if q.symbol == symbol)

    assert first_quote(1, "ZZZZ") == first_quote(1, "ZZZZ")
    assert first_quote(1, "ZZZZ").bid != first_quote(2, "ZZZZ").bid
    events = run(simulator(symbols=("ZZZZ", "BTC/USDT"), rate=400), 10)
    trades = of_type(events, Trade)
    equity = [t.size for t in trades if t.symbol == "ZZZZ"]
    crypto = [t.size for t in trades if t.symbol == "BTC/USDT"]
    assert equity
    assert all(size == int(size) and size >= 1 for size in equity)
    assert any(size % 100 == 0 for size in equity)  # round lots
    assert crypto
    assert any(size != int(size) for size in crypto)


def test_trades_print_at_or_inside_the_spread_and_quotes_carry_last_price_and_volume() -> None:
    events = run(simulator(rate=500), 20)
    volume: dict[str, float] = defaultdict(float)
    last_trade: dict[str, Trade] = {}
    for previous, event in itertools.pairwise(events):
        if isinstance(event, Quote):
            if isinstance(previous, Trade):  # a trade is followed by its tick's quote
                assert event.bid <= previous.price <= event.ask
            if event.symbol in last_trade:
                assert event.price == last_trade[event.symbol].price
            else:
                assert event.price == pytest.approx((event.bid + event.ask) / 2)
            assert event.volume == pytest.approx(volume[event.symbol])
        if isinstance(event, Trade):
            assert event.size > 0
            volume[event.symbol] += event.size
            last_trade[event.symbol] = event
    trade_ids = [t.trade_id for t in of_type(events, Trade) if t.symbol == "AAPL"]
    assert trade_ids == [str(i) for i in range(1, len(trade_ids) + 1)]


def apply(book: dict[float, float], levels: Sequence[tuple[float, float]]) -> None:
    for price, size in levels:
        if size == 0:
            del book[price]
        else:
            book[price] = size


def test_book_starts_with_a_full_snapshot_then_deltas_that_track_the_quotes() -> None:
    depth = 5
    events = run(simulator(rate=500, book_depth=depth), 20)
    bids: dict[str, dict[float, float]] = {}
    asks: dict[str, dict[float, float]] = {}
    sequence: dict[str, int] = {}
    for event in events:
        if isinstance(event, BookUpdate):
            if event.symbol not in sequence:
                assert event.snapshot
                assert event.sequence == 1
                assert len(event.bids) == depth
                assert len(event.asks) == depth
                bids[event.symbol], asks[event.symbol] = {}, {}
            else:
                assert not event.snapshot
                assert event.sequence == sequence[event.symbol] + 1
                bid_prices = [p for p, _ in event.bids]
                ask_prices = [p for p, _ in event.asks]
                assert bid_prices == sorted(bid_prices, reverse=True)
                assert ask_prices == sorted(ask_prices)
            sequence[event.symbol] = event.sequence
            apply(bids[event.symbol], event.bids)
            apply(asks[event.symbol], event.asks)
        elif isinstance(event, Quote):
            book_bids, book_asks = bids[event.symbol], asks[event.symbol]
            assert len(book_bids) == len(book_asks) == depth
            assert max(book_bids) == event.bid
            assert book_bids[event.bid] == event.bid_size
            assert min(book_asks) == event.ask
            assert book_asks[event.ask] == event.ask_size
    assert set(sequence) == set(DEFAULT_SYMBOLS)


def test_bars_close_on_minute_boundaries_with_the_interval_trades_ohlcv() -> None:
    events = run(simulator(rate=200), 185, step_s=0.5)
    bars = of_type(events, Bar)
    assert {b.ts for b in bars} == {START + 60, START + 120, START + 180}
    trades: dict[tuple[str, float], list[Trade]] = defaultdict(list)
    for t in of_type(events, Trade):
        trades[t.symbol, t.ts // 60 * 60].append(t)
    for bar in bars:
        assert bar.start % 60 == 0
        assert bar.ts == bar.start + 60
        assert bar.interval_s == 60
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        in_bar = trades[bar.symbol, bar.start]
        assert bar.open == in_bar[0].price
        assert bar.close == in_bar[-1].price
        assert bar.high == max(t.price for t in in_bar)
        assert bar.low == min(t.price for t in in_bar)
        assert bar.volume == pytest.approx(sum(t.size for t in in_bar))
    assert len(bars) == len({k for k in trades if k[1] < START + 180})  # none for empty bars
    first_of_third_minute = next(i for i, e in enumerate(events) if e.ts >= START + 120)
    assert isinstance(events[first_of_third_minute], Bar)  # bars come before the new minute


def test_bars_close_when_time_passes_a_boundary_between_ticks() -> None:
    sim = simulator(rate=7.01)  # no tick lands on the minute
    events = sim.advance(START + 59.99)
    assert not of_type(events, Bar)
    bars = of_type(sim.advance(START + 60.01), Bar)
    assert bars
    assert all(b.ts == START + 60 for b in bars)


def test_a_one_level_book_moves_with_the_touch() -> None:
    events = run(simulator(rate=300, book_depth=1), 5)
    for book in of_type(events, BookUpdate):
        assert len([size for _, size in book.bids if size > 0]) == 1  # the (new) touch
        assert len(book.bids) <= 2  # and the old touch, removed


def test_closed_calendar_silences_equities_while_crypto_goes_on() -> None:
    sim = MarketSimulator(SimulatorConfig(rate=900), Closed(), START)
    events = sim.advance(START + 10) + sim.advance(START + 70)
    assert events
    assert {e.symbol for e in events} == {"BTC/USDT", "ETH/USDT"}
    assert {q.symbol for q in of_type(sim.snapshot(), Quote)} == {"BTC/USDT", "ETH/USDT"}


def test_equities_pause_while_closed_and_reopen_with_a_fresh_session_volume() -> None:
    close_ts, open_ts = START + 5, START + 10
    sim = MarketSimulator(SimulatorConfig(rate=500), ClosedBetween(close_ts, open_ts), START)
    events = run(sim, 15)
    assert any(close_ts <= e.ts < open_ts for e in events if e.symbol == "BTC/USDT")
    aapl = [e for e in events if e.symbol == "AAPL"]
    assert not any(close_ts <= e.ts < open_ts for e in aapl)
    before = [q for q in of_type(aapl, Quote) if q.ts < close_ts]
    after = [q for q in of_type(aapl, Quote) if q.ts >= open_ts]
    assert before[-1].volume > 0
    last_trade = [t for t in of_type(aapl, Trade) if t.ts <= after[0].ts][-1]
    assert after[0].volume == (last_trade.size if last_trade.ts >= open_ts else 0)


def test_a_stall_longer_than_max_backlog_is_skipped_and_counted() -> None:
    sim = simulator(rate=100, max_backlog_s=2.0)
    sim.advance(START + 1)
    events = sim.advance(START + 61)
    assert len(of_type(events, Quote)) == 200
    assert min(e.ts for e in events if not isinstance(e, Bar)) > START + 59
    assert sim.skipped_ticks == 5800
    catch_up_all = simulator(rate=100, max_backlog_s=None)
    assert len(of_type(catch_up_all.advance(START + 61), Quote)) == 6100


def test_resume_drops_what_nobody_was_reading_without_counting_it_as_skipped() -> None:
    sim = simulator(rate=100, max_backlog_s=1.0)
    sim.resume(START + 30)  # e.g. the gateway's start-up, before the first wake-up
    events = sim.advance(START + 30.5)
    assert sim.skipped_ticks == 0
    assert len(of_type(events, Quote)) == 50
    assert min(e.ts for e in events if not isinstance(e, Bar)) > START + 30
    sim.resume(START + 30.2)  # not after the previous call: nothing changes
    assert len(of_type(sim.advance(START + 31), Quote)) == 50
    assert sim.skipped_ticks == 0
    sim.advance(START + 40)  # a real stall still counts
    assert sim.skipped_ticks == 800


async def test_provider_built_long_before_it_runs_skips_nothing() -> None:
    now = [START]
    provider = SimulatorProvider(SimulatorConfig(rate=100), clock=lambda: now[0])
    now[0] += 60  # a slow start-up: migrations, a cold import
    delivered = asyncio.Event()

    def sink(events: Sequence[MarketEvent]) -> None:
        delivered.set()

    task = asyncio.create_task(provider.run(sink))
    for _ in range(1000):  # until run() has read the clock and started the market
        if provider.simulator.ticks:
            break
        await asyncio.sleep(0)
    now[0] += 0.05
    await asyncio.wait_for(delivered.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert provider.skipped_events == 0


def test_snapshot_holds_the_latest_quote_and_full_book_per_symbol() -> None:
    sim = simulator(symbols=("AAPL", "BTC/USDT"), rate=100, book_depth=4)
    assert sim.snapshot() == []
    events = sim.advance(START + 3)
    snapshot = sim.snapshot()
    for symbol in ("AAPL", "BTC/USDT"):
        quote = [q for q in of_type(snapshot, Quote) if q.symbol == symbol]
        assert quote == [[q for q in of_type(events, Quote) if q.symbol == symbol][-1]]
        (book,) = [b for b in of_type(snapshot, BookUpdate) if b.symbol == symbol]
        last_delta = [b for b in of_type(events, BookUpdate) if b.symbol == symbol][-1]
        assert book.snapshot
        assert book.sequence == last_delta.sequence
        assert len(book.bids) == len(book.asks) == 4
        assert book.bids[0] == (quote[0].bid, quote[0].bid_size)
        assert book.asks[0] == (quote[0].ask, quote[0].ask_size)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("symbols", ()),
        ("symbols", ("AAPL", "AAPL")),
        ("rate", 0.0),
        ("rate", float("nan")),
        ("book_depth", 0),
        ("bar_interval_s", 0),
        ("max_backlog_s", 0.0),
    ],
)
def test_config_rejects_invalid_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SimulatorConfig(**{field: value})  # type: ignore[arg-type]


def test_tick_interval_is_5ms_at_high_rates_and_coarser_at_low_rates() -> None:
    assert default_tick_interval_s(20_000) == 0.005
    assert default_tick_interval_s(50) == 0.02
    assert default_tick_interval_s(1) == 1.0  # one wake-up per tick


def test_simulator_interval_ms_sets_the_cadence_and_zero_keeps_the_default() -> None:
    from tickcast.config.settings import Settings
    from tickcast.providers.registry import create

    def provider(**fields: object) -> SimulatorProvider:
        made = create("simulator", Settings(rate=2000, **fields).upstream)  # type: ignore[arg-type]
        assert isinstance(made, SimulatorProvider)
        return made

    assert provider().tick_interval_s == 0.005
    assert provider(simulator_interval_ms=0).tick_interval_s == 0.005
    assert provider(simulator_interval_ms=1).tick_interval_s == 0.001
    with pytest.raises(ValueError, match="simulator_interval_ms"):
        Settings(simulator_interval_ms=-1)


async def test_provider_delivers_batches_to_the_sink_until_cancelled() -> None:
    now = [START]

    def clock() -> float:  # 100 ms of market time per wake-up
        now[0] += 0.1
        return now[0]

    provider = SimulatorProvider(SimulatorConfig(rate=100), clock=clock, tick_interval_s=0.001)
    assert provider.name == "simulator"
    assert provider.tick_interval_s == 0.001
    assert provider.simulator.config.rate == 100
    assert provider.symbols == frozenset(DEFAULT_SYMBOLS)
    batches: list[list[MarketEvent]] = []
    enough = asyncio.Event()

    def sink(events: Sequence[MarketEvent]) -> None:
        batches.append(list(events))
        if len(batches) == 4:
            enough.set()

    task = asyncio.create_task(provider.run(sink))
    await asyncio.wait_for(enough.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # run() starts the market at its own first clock reading (what came due since the
    # construction is dropped, uncounted), so every batch spans one clock step.
    quotes = [len(of_type(batch, Quote)) for batch in batches[:4]]
    assert all(9 <= n <= 11 for n in quotes)  # 100 ms at 100 ticks/s, give or take rounding
    assert sum(quotes) in (39, 40)
    assert provider.skipped_events == 0
    assert provider.snapshot()
    assert SimulatorProvider().tick_interval_s == 0.02  # default rate 50/s
    with pytest.raises(ValueError, match="tick_interval_s"):
        SimulatorProvider(tick_interval_s=0)
