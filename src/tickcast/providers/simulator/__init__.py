"""The built-in market simulator: a pure market (``market.py``) and its asyncio driver.

``MarketSimulator`` turns ``now`` into seeded quotes, trades, books and bars;
``SimulatorProvider`` runs it on the event loop's clock as a ``Provider``.
"""

from tickcast.config.defaults import DEFAULT_SYMBOLS
from tickcast.providers.simulator.market import (
    MarketSimulator,
    SimulatorConfig,
    is_crypto,
)
from tickcast.providers.simulator.stream import SimulatorProvider

__all__ = [
    "DEFAULT_SYMBOLS",
    "MarketSimulator",
    "SimulatorConfig",
    "SimulatorProvider",
    "is_crypto",
]
