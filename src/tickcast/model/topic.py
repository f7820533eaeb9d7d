"""Topic: what a client subscribes to, as a value object.

A market topic is channel x symbol and prints as ``"<channel>.<symbol>"`` (e.g.
``"quotes.AAPL"``, ``"trades.BTC/USDT"``); that string is also the stream name a client
uses to resume. The upstream feed's status is ``"status.FEED"``. Portfolio topics are
channel x id (``"portfolio.123"``); per-user streams channel x user id
(``"user_positions.7"``). Which payload goes on which channel, what conflates
and who may read it is the channel registry's (``model/channel.py``); a new channel is
one registration there, its topics plain ``Topic(name, key)``.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

from tickcast.model.leaderboard import AroundView, BoardMessage, TopView
from tickcast.model.market import MarketEvent
from tickcast.model.monitoring import MonitoringEvent
from tickcast.model.portfolio import (
    AssetUpdate,
    PortfolioValue,
    PositionsUpdate,
    PositionUpdate,
    UserPnl,
    UserPositions,
)
from tickcast.model.signal import Signal, WorkerStatus

#: The payloads of the built-in channels (a registered channel may carry others).
Event = (
    MarketEvent
    | AssetUpdate
    | PortfolioValue
    | PositionUpdate
    | PositionsUpdate
    | UserPositions
    | UserPnl
    | Signal
    | WorkerStatus
    | BoardMessage
    | TopView
    | AroundView
    | MonitoringEvent
)


class Channel(enum.StrEnum):
    """The built-in channels' names (named constants: each equals its string)."""

    QUOTES = "quotes"
    TRADES = "trades"
    BARS = "bars"
    BOOK = "book"
    STATUS = "status"
    ASSETS = "assets"
    PORTFOLIO = "portfolio"
    POSITIONS = "positions"
    LIVE_POSITIONS = "live_positions"
    USER_POSITIONS = "user_positions"
    USER_PNL = "user_pnl"
    SIGNALS = "signals"
    SIGNAL_STATUS = "signal_status"


#: Channels a market-feed client may name (the others are other fronts' vocabulary).
MARKET_CHANNELS: Final = (
    Channel.QUOTES,
    Channel.TRADES,
    Channel.BARS,
    Channel.BOOK,
    Channel.STATUS,
)


class Topic(msgspec.Struct, frozen=True, gc=False):
    """``channel`` is a channel's name: a ``Channel`` member for the built-in ones (which
    equals, hashes and prints as its string) or any registered name. ``symbol`` is the
    key (a symbol, or an id); ``key`` is the same, by its general name."""

    channel: str
    symbol: str

    def __str__(self) -> str:
        return f"{self.channel}.{self.symbol}"

    @property
    def key(self) -> str:
        return self.symbol

    @classmethod
    def parse(cls, text: str) -> Topic:
        """Parse ``"<channel>.<symbol>"`` of a built-in channel; raises ValueError on
        anything else."""
        channel, sep, symbol = text.partition(".")
        if not sep or not symbol:
            raise ValueError(f"not a topic: {text!r}")
        return cls(Channel(channel), symbol)
