"""Built-in trading signals: indicator rules over bars (pure; time comes from the bars)."""

from tickcast.signals.engine import Engine, EngineParams
from tickcast.signals.indicators import Rsi, SmaCross, timeframe_label

__all__ = ["Engine", "EngineParams", "Rsi", "SmaCross", "timeframe_label"]
