"""The signal engine: rules per series, de-duplication, cooldown on bar time, ids."""

from __future__ import annotations

import msgspec
import pytest

from tickcast.model.market import Bar
from tickcast.model.signal import Signal, decode_signal, encode
from tickcast.signals import Engine, EngineParams

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
# The hand series of test_indicators: with fast=2, slow=3 it crosses BUY at index 4,
# SELL at index 6 and BUY at index 9.
CROSSING = [10, 9, 8, 9, 11, 10, 8, 7, 9, 12]


def bar(i: int, close: float, symbol: str = "BTC/USDT", interval_s: int = 60) -> Bar:
    start = T0 + i * interval_s
    close = float(close)
    end = start + interval_s
    return Bar(symbol, close, close, close, close, 1.0, start, end, "sim", interval_s)


def run(engine: Engine, closes: list[float], **kw: object) -> list[tuple[int, Signal]]:
    out: list[tuple[int, Signal]] = []
    for i, c in enumerate(closes):
        out.extend((i, s) for s in engine.on_bar(bar(i, c, **kw)))  # type: ignore[arg-type]
    return out


def ma(cooldown_s: float = 0.0) -> Engine:
    return Engine(EngineParams(fast=2, slow=3, rsi=False, cooldown_s=cooldown_s))


def test_ma_cross_emits_engine_signals() -> None:
    got = run(ma(), CROSSING)
    assert [(i, s.signal) for i, s in got] == [(4, "BUY"), (6, "SELL"), (9, "BUY")]
    _, first = got[0]
    assert first == Signal(
        type="MA_CROSS",
        signal="BUY",
        price=11.0,
        symbol="BTC/USDT",
        timeframe="1m",
        timestamp="2026-01-01T00:05:00.000Z",  # the bar's close
        id=f"MA_CROSS-BTC/USDT-1m-{int((T0 + 240) * 1000)}",
        source="engine",
    )
    # What the engine emits is what the ingestion side accepts.
    assert decode_signal(encode(first)) == first


def test_ids_are_deterministic() -> None:
    a = [s for _, s in run(ma(), CROSSING)]
    b = [s for _, s in run(ma(), CROSSING)]
    assert a == b
    assert len({s.id for s in a}) == len(a)


def test_cooldown_drops_signals_inside_it_on_bar_time() -> None:
    # BUY at t+240, SELL at t+360 (120 s later), BUY at t+540.
    # cooldown 180: SELL is inside it and dropped; the BUY at 540 repeats the last emitted
    # direction, so de-duplication drops it too.
    assert [(i, s.signal) for i, s in run(ma(180), CROSSING)] == [(4, "BUY")]
    # cooldown exactly 120: the SELL is 120 s after the BUY, which is allowed.
    assert [(i, s.signal) for i, s in run(ma(120), CROSSING)] == [
        (4, "BUY"),
        (6, "SELL"),
        (9, "BUY"),
    ]


def test_cooldown_follows_the_bar_interval() -> None:
    # Same closes on 5-minute bars: the SELL is 600 s after the BUY, past a 300 s cooldown.
    got = run(ma(300), CROSSING, interval_s=300)
    assert [(i, s.signal) for i, s in got] == [(4, "BUY"), (6, "SELL"), (9, "BUY")]
    assert {s.timeframe for _, s in got} == {"5m"}


def rsi_engine(cooldown_s: float = 0.0) -> Engine:
    params = EngineParams(ma_cross=False, rsi_period=3, oversold=30, overbought=70)
    return Engine(msgspec.structs.replace(params, cooldown_s=cooldown_s))


def test_rsi_thresholds_and_dedup() -> None:
    # Falling closes keep RSI at 0 (oversold) from index 3: one BUY, not one per bar.
    # The jump to 20 (+6, index 7): G = 6/3 = 2, L = 1 * 2/3 -> RSI 75 (overbought): SELL;
    # the rises after it keep RSI above 70: no second SELL.
    falling = [20, 19, 18, 17, 16, 15, 14]
    rising = [20, 26, 32, 38, 44]
    got = run(rsi_engine(), falling + rising)
    assert [(i, s.type, s.signal) for i, s in got] == [(3, "RSI", "BUY"), (7, "RSI", "SELL")]
    assert got[0][1].price == 17.0


def test_rsi_neutral_zone_emits_nothing() -> None:
    # Alternating +1/-1 keeps RSI near 50.
    assert run(rsi_engine(), [10, 11, 10, 11, 10, 11, 10, 11]) == []


def test_rules_and_series_are_independent() -> None:
    engine = Engine(EngineParams(fast=2, slow=3, rsi_period=3, cooldown_s=0))
    got = []
    for i, c in enumerate(CROSSING):
        got += engine.on_bar(bar(i, c, symbol="AAA"))
        got += engine.on_bar(bar(i, c, symbol="BBB"))
        got += engine.on_bar(bar(i, c, symbol="AAA", interval_s=300))
    crosses = [(s.symbol, s.timeframe, s.signal) for s in got if s.type == "MA_CROSS"]
    for key in (("AAA", "1m"), ("BBB", "1m"), ("AAA", "5m")):
        assert [d for *k, d in crosses if tuple(k) == key] == ["BUY", "SELL", "BUY"]
    # RSI ran too (period 3; RSI = 100 * G / (G + L)):
    #   10, 9, 8, 9: G 1/3, L 2/3 -> 33.3       11 (+2): G 8/9, L 4/9 -> 66.7
    #   10 (-1): G 16/27, L 17/27 -> 48.5       8 (-2): G 32/81, L 88/81 -> 26.7 -> BUY at 8
    #   7 (-1): 19.9 (BUY again: de-duplicated)  9 (+2): G 614/729, L 514/729 -> 54.4
    #   12 (+3): G 3415/2187, L 1028/2187 -> 76.9 -> SELL at 12
    rsi = [(s.symbol, s.timeframe, s.signal, s.price) for s in got if s.type == "RSI"]
    assert sorted(rsi) == sorted(
        (sym, tf, d, p)
        for sym, tf in (("AAA", "1m"), ("BBB", "1m"), ("AAA", "5m"))
        for d, p in (("BUY", 8.0), ("SELL", 12.0))
    )
    assert len({s.id for s in got}) == len(got)


def test_replayed_or_updated_bar_is_ignored() -> None:
    engine = ma()
    for i, c in enumerate(CROSSING[:4]):
        engine.on_bar(bar(i, c))
    # A provider re-sends bar 3 with another close: not a new bar.
    assert engine.on_bar(bar(3, 50)) == []
    assert engine.on_bar(bar(2, 50)) == []
    # The series continues as if the update never came: BUY at index 4 as before.
    assert [s.signal for s in engine.on_bar(bar(4, 11))] == ["BUY"]


@pytest.mark.parametrize(
    "kw",
    [
        {"fast": 5, "slow": 5},
        {"fast": 0},
        {"rsi_period": 0},
        {"oversold": 70, "overbought": 30},
        {"overbought": 101},
        {"oversold": -1},
        {"cooldown_s": -1},
    ],
)
def test_bad_params_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must be|need"):
        EngineParams(**kw)  # type: ignore[arg-type]


def test_defaults() -> None:
    p = EngineParams()
    assert (p.fast, p.slow, p.rsi_period, p.overbought, p.oversold) == (9, 21, 14, 70, 30)
    assert Engine().params == p
