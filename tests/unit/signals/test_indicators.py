"""SMA crossover and Wilder's RSI against values worked out by hand."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickcast.signals.indicators import Rsi, SmaCross, timeframe_label


def test_sma_cross_on_a_hand_series() -> None:
    # fast=2, slow=3. Windows (fast SMA, slow SMA, side) from the third close on:
    #   [10, 9, 8]  8.5  9.0    below  (first side after warm-up: no cross)
    #   [9, 8, 9]   8.5  8.667  below
    #   [8, 9, 11]  10   9.333  above  -> BUY  (index 4)
    #   [9, 11, 10] 10.5 10     above
    #   [11, 10, 8] 9    9.667  below  -> SELL (index 6)
    #   [10, 8, 7]  7.5  8.333  below
    #   [8, 7, 9]   8    8      equal  (no side: not a cross)
    #   [7, 9, 12]  10.5 9.333  above  -> BUY  (index 9)
    cross = SmaCross(2, 3)
    closes = [10, 9, 8, 9, 11, 10, 8, 7, 9, 12]
    out = [cross.update(c) for c in closes]
    assert out == [None, None, None, None, "BUY", None, "SELL", None, None, "BUY"]
    assert cross.fast_value == pytest.approx(10.5)
    assert cross.slow_value == pytest.approx(28 / 3)


def test_sma_cross_needs_fast_below_slow() -> None:
    for fast, slow in ((3, 3), (5, 3), (0, 3)):
        with pytest.raises(ValueError, match="fast < slow"):
            SmaCross(fast, slow)


def test_rsi_small_hand_series() -> None:
    # period 3; closes 10, 11, 12, 11, 13, 12.
    # changes: +1, +1, -1 -> first averages: gain 2/3, loss 1/3, RS 2, RSI 100 - 100/3 = 66.667
    # +2: gain (2/3*2 + 2)/3 = 10/9, loss (1/3*2 + 0)/3 = 2/9, RS 5, RSI 100 - 100/6 = 83.333
    # -1: gain (10/9*2)/3 = 20/27, loss (2/9*2 + 1)/3 = 13/27, RS 20/13, RSI 100 - 100*13/33
    rsi = Rsi(3)
    out = [rsi.update(c) for c in (10, 11, 12, 11, 13, 12)]
    assert out[:3] == [None, None, None]
    assert out[3] == pytest.approx(200 / 3)
    assert out[4] == pytest.approx(250 / 3)
    assert out[5] == pytest.approx(100 - 1300 / 33)
    assert rsi.avg_gain == pytest.approx(20 / 27)
    assert rsi.avg_loss == pytest.approx(13 / 27)


# The 14-period worked example widely used to teach Wilder's RSI.
WILDER = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08,
    45.89, 46.03, 45.61, 46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64,
]  # fmt: skip


def test_rsi_wilder_14_period_example() -> None:
    # Changes of the first 15 closes:
    #   -0.25 +0.06 -0.54 +0.72 +0.50 +0.27 +0.32 +0.42 +0.24 -0.19 +0.14 -0.42 +0.67 0.00
    # gains sum 3.34 -> avg 3.34/14 = 0.238571; losses sum 1.40 -> avg 0.1
    # RS = 3.34/1.40 = 2.385714; RSI = 100 - 100/3.385714 = 70.464
    # (textbooks print 70.53 because they round the averages to 0.24 and 0.10 first).
    # Next close 46.00 (change -0.28): gain 0.238571*13/14 = 0.221531,
    # loss (0.1*13 + 0.28)/14 = 0.112857, RS 1.962963, RSI = 100 - 100/2.962963 = 66.250
    # (printed as 66.32 with rounded averages).
    # Next close 46.03 (+0.03): gain (0.221531*13 + 0.03)/14 = 0.207850,
    # loss 0.112857*13/14 = 0.104796, RS 1.983375, RSI = 100 - 100/2.983375 = 66.481
    # (printed 66.55).
    rsi = Rsi(14)
    out = [rsi.update(c) for c in WILDER]
    assert out[:14] == [None] * 14
    assert out[14] == pytest.approx(100 - 100 / (1 + 3.34 / 1.40))
    assert out[14] == pytest.approx(70.464, abs=1e-3)
    assert out[15] == pytest.approx(66.250, abs=1e-3)
    assert out[16] == pytest.approx(66.481, abs=1e-3)
    # Published (rounded-average) values stay within a tenth of a point.
    assert out[14:17] == pytest.approx([70.53, 66.32, 66.55], abs=0.1)


def test_rsi_flat_and_one_sided_series() -> None:
    flat = Rsi(3)
    assert [flat.update(5.0) for _ in range(5)][-1] == 50.0
    rising = Rsi(3)
    assert [rising.update(float(c)) for c in range(6)][-1] == 100.0
    falling = Rsi(3)
    assert [falling.update(float(-c)) for c in range(6)][-1] == 0.0


def test_rsi_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="period"):
        Rsi(0)


@given(
    st.integers(min_value=1, max_value=20),
    st.lists(st.floats(min_value=0.01, max_value=1e6, allow_nan=False), max_size=80),
)
def test_rsi_stays_within_0_and_100(period: int, closes: list[float]) -> None:
    rsi = Rsi(period)
    for i, close in enumerate(closes):
        value = rsi.update(close)
        if i < period:
            assert value is None
        else:
            assert value is not None
            assert 0.0 <= value <= 100.0


@given(
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=1, max_value=10),
    st.lists(st.integers(min_value=1, max_value=50), max_size=80),
)
def test_sma_crosses_alternate(fast: int, extra: int, closes: list[int]) -> None:
    cross = SmaCross(fast, fast + extra)
    seen = [d for d in (cross.update(float(c)) for c in closes) if d is not None]
    assert all(a != b for a, b in itertools.pairwise(seen))


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(60, "1m"), (300, "5m"), (3600, "1h"), (14400, "4h"), (86400, "1d"), (45, "45s"), (90, "90s")],
)
def test_timeframe_label(seconds: int, label: str) -> None:
    assert timeframe_label(seconds) == label


def test_timeframe_label_refuses_nonpositive() -> None:
    with pytest.raises(ValueError, match="interval"):
        timeframe_label(0)
