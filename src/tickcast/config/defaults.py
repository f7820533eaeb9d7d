"""Default values that settings and the components they configure share.

Pure constants: this module imports nothing, so that ``config`` depends on no provider and
a provider may take its defaults from here.
"""

from __future__ import annotations

from typing import Final

#: The default universe: US equities and an ETF (follow the calendar), two crypto pairs (24/7).
DEFAULT_SYMBOLS: Final = (
    "AAPL",
    "MSFT",
    "GOOGL",
    "AMZN",
    "TSLA",
    "NVDA",
    "SPY",
    "BTC/USDT",
    "ETH/USDT",
)
