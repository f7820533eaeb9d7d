"""The signal engine: bars in, signals out (pure; all time comes from the bars).

``Engine(params).on_bar(bar)`` runs every enabled rule on the bar's close, per
(symbol, timeframe), and returns the signals that pass the gate:

- de-duplication: per (rule, symbol, timeframe) a direction equal to the last emitted one
  is not repeated (BUY, BUY, SELL emits BUY then SELL);
- cooldown: per (rule, symbol, timeframe) no signal within ``cooldown_s`` seconds of the
  last emitted one, measured on bar times (``bar.start``). A signal held back by the
  cooldown is dropped, not queued, and does not count as emitted.

A bar whose ``start`` is not after the last bar seen for its (symbol, timeframe) (a
replay, or a provider's update of the bar in progress) is ignored, so indicators see each
bar once. Signal ids are ``<rule>-<symbol>-<timeframe>-<bar start in ms>``.
"""

from __future__ import annotations

import msgspec

from tickcast.model.market import Bar
from tickcast.model.signal import Direction, Signal, iso_utc
from tickcast.signals.indicators import Rsi, SmaCross, timeframe_label

MA_CROSS = "MA_CROSS"
RSI = "RSI"
SOURCE = "engine"


class EngineParams(msgspec.Struct, frozen=True):
    """Rule parameters.

    Attributes:
        fast, slow: SMA periods in bars for the crossover (1 <= fast < slow).
        rsi_period: RSI period in bars (>= 1).
        overbought: RSI at or above it emits SELL; oversold: at or below it emits BUY
            (0 <= oversold < overbought <= 100).
        cooldown_s: seconds of bar time between two signals of one rule on one series.
        ma_cross, rsi: which rules run.
    """

    fast: int = 9
    slow: int = 21
    rsi_period: int = 14
    overbought: float = 70.0
    oversold: float = 30.0
    cooldown_s: float = 300.0
    ma_cross: bool = True
    rsi: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={self.fast} slow={self.slow}")
        if self.rsi_period < 1:
            raise ValueError(f"rsi_period must be >= 1: {self.rsi_period}")
        if not 0 <= self.oversold < self.overbought <= 100:
            raise ValueError(
                f"need 0 <= oversold < overbought <= 100, got {self.oversold}, {self.overbought}"
            )
        if self.cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0: {self.cooldown_s}")


class _Gate:
    """De-duplication and cooldown for one (rule, symbol, timeframe)."""

    __slots__ = ("_cooldown", "_last_at", "_last_direction")

    def __init__(self, cooldown_s: float) -> None:
        self._cooldown = cooldown_s
        self._last_direction: Direction | None = None
        self._last_at: float | None = None

    def admit(self, direction: Direction, at: float) -> bool:
        if direction == self._last_direction:
            return False
        if self._last_at is not None and at - self._last_at < self._cooldown:
            return False
        self._last_direction, self._last_at = direction, at
        return True


class _Series:
    """Per (symbol, timeframe) state: the indicators, the gates, the last bar start."""

    __slots__ = ("cross", "gates", "last_start", "rsi")

    def __init__(self, params: EngineParams) -> None:
        self.cross = SmaCross(params.fast, params.slow) if params.ma_cross else None
        self.rsi = Rsi(params.rsi_period) if params.rsi else None
        self.gates = {MA_CROSS: _Gate(params.cooldown_s), RSI: _Gate(params.cooldown_s)}
        self.last_start: float | None = None


class Engine:
    """Runs the rules of ``params`` over bars; ``on_bar`` is the whole API."""

    def __init__(self, params: EngineParams | None = None) -> None:
        self.params = params or EngineParams()
        self._series: dict[tuple[str, str], _Series] = {}

    def on_bar(self, bar: Bar) -> list[Signal]:
        timeframe = timeframe_label(bar.interval_s)
        key = (bar.symbol, timeframe)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self.params)
        if series.last_start is not None and bar.start <= series.last_start:
            return []
        series.last_start = bar.start
        found: list[tuple[str, Direction]] = []
        if series.cross is not None:
            crossed = series.cross.update(bar.close)
            if crossed is not None:
                found.append((MA_CROSS, crossed))
        if series.rsi is not None:
            value = series.rsi.update(bar.close)
            if value is not None:
                if value >= self.params.overbought:
                    found.append((RSI, "SELL"))
                elif value <= self.params.oversold:
                    found.append((RSI, "BUY"))
        out: list[Signal] = []
        for rule, direction in found:
            if series.gates[rule].admit(direction, bar.start):
                out.append(
                    Signal(
                        type=rule,
                        signal=direction,
                        price=bar.close,
                        symbol=bar.symbol,
                        timeframe=timeframe,
                        timestamp=iso_utc(
                            bar.start + bar.interval_s
                        ),  # the bar closed: when it fired
                        id=f"{rule}-{bar.symbol}-{timeframe}-{round(bar.start * 1000)}",
                        source=SOURCE,
                    )
                )
        return out
