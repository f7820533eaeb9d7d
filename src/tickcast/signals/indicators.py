"""Indicators over a series of closes, one value at a time (pure, no clock).

``SmaCross`` tracks a fast and a slow simple moving average and reports a crossing;
``Rsi`` is Wilder's Relative Strength Index with Wilder's smoothing.
"""

from __future__ import annotations

from collections import deque

from tickcast.model.signal import Direction


def timeframe_label(interval_s: int) -> str:
    """A bar length as a label: 60 -> ``1m``, 3600 -> ``1h``, 86400 -> ``1d``, 45 -> ``45s``."""
    if interval_s < 1:
        raise ValueError(f"interval must be >= 1 second: {interval_s}")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if interval_s % size == 0:
            return f"{interval_s // size}{unit}"
    return f"{interval_s}s"


class SmaCross:
    """Fast/slow simple moving average crossover.

    ``update(close)`` returns BUY when the fast average moves above the slow one, SELL when it
    moves below, else None. Equal averages are no side: a cross is a change of the last
    non-zero side. The first side seen after warm-up (``slow`` closes) is not a cross.
    """

    def __init__(self, fast: int, slow: int) -> None:
        if not 1 <= fast < slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={fast} slow={slow}")
        self.fast = fast
        self.slow = slow
        self._closes: deque[float] = deque(maxlen=slow)
        self._side = 0
        self.fast_value: float | None = None
        self.slow_value: float | None = None

    def update(self, close: float) -> Direction | None:
        self._closes.append(close)
        if len(self._closes) < self.slow:
            return None
        closes = list(self._closes)
        self.fast_value = sum(closes[-self.fast :]) / self.fast
        self.slow_value = sum(closes) / self.slow
        diff = self.fast_value - self.slow_value
        side = (diff > 0) - (diff < 0)
        if side == 0 or side == self._side:
            return None
        previous, self._side = self._side, side
        if previous == 0:
            return None
        return "BUY" if side > 0 else "SELL"


class Rsi:
    """Wilder's RSI over ``period`` changes of the close.

    The first average gain/loss is the plain mean of the first ``period`` changes (so the
    first value needs ``period + 1`` closes); after that each average is smoothed as
    ``(previous * (period - 1) + current) / period``. RSI = 100 - 100 / (1 + gain / loss);
    100 when there was no loss, 50 when there was neither gain nor loss.
    """

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError(f"RSI period must be >= 1: {period}")
        self.period = period
        self._last: float | None = None
        self._gains: list[float] = []
        self._losses: list[float] = []
        self.avg_gain: float | None = None
        self.avg_loss: float | None = None

    def update(self, close: float) -> float | None:
        """Feed one close; the RSI once warmed up, else None."""
        last, self._last = self._last, close
        if last is None:
            return None
        change = close - last
        gain, loss = max(change, 0.0), max(-change, 0.0)
        if self.avg_gain is None or self.avg_loss is None:
            self._gains.append(gain)
            self._losses.append(loss)
            if len(self._gains) < self.period:
                return None
            self.avg_gain = sum(self._gains) / self.period
            self.avg_loss = sum(self._losses) / self.period
            self._gains.clear()
            self._losses.clear()
        else:
            n = self.period
            self.avg_gain = (self.avg_gain * (n - 1) + gain) / n
            self.avg_loss = (self.avg_loss * (n - 1) + loss) / n
        return self.value

    @property
    def value(self) -> float | None:
        if self.avg_gain is None or self.avg_loss is None:
            return None
        if self.avg_loss == 0:
            return 50.0 if self.avg_gain == 0 else 100.0
        return 100.0 - 100.0 / (1.0 + self.avg_gain / self.avg_loss)
