"""Topic: what a client subscribes to, as a value object.

A market topic is channel x symbol and prints as ``"<channel>.<symbol>"`` (e.g.
``"quotes.AAPL"``, ``"trades.BTC/USDT"``); that string is also the stream name a client
uses to resume. The upstream feed's status is ``"status.FEED"``. Other kinds (portfolio,
signals...) join later as new channels.
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

from tickcast.model.market import Bar, BookUpdate, MarketEvent, Quote, Status, Trade
from tickcast.model.portfolio import AssetUpdate, PortfolioValue, PositionsUpdate, PositionUpdate

#: Everything the hub publishes.
Event = MarketEvent | AssetUpdate | PortfolioValue | PositionUpdate | PositionsUpdate


class Channel(enum.StrEnum):
    QUOTES = "quotes"
    TRADES = "trades"
    BARS = "bars"
    BOOK = "book"
    STATUS = "status"
    ASSETS = "assets"
    PORTFOLIO = "portfolio"
    POSITIONS = "positions"
    LIVE_POSITIONS = "live_positions"


#: Channels whose pending updates may be replaced by newer ones (latest value per key).
#: Status changes and position updates after a transaction are never conflated: each is
#: news. Live positions are: each update carries all of a portfolio's open positions.
CONFLATABLE: Final = frozenset(
    {Channel.QUOTES, Channel.ASSETS, Channel.PORTFOLIO, Channel.LIVE_POSITIONS}
)

#: Channels a market-feed client may name (the others are other fronts' vocabulary).
MARKET_CHANNELS: Final = (
    Channel.QUOTES,
    Channel.TRADES,
    Channel.BARS,
    Channel.BOOK,
    Channel.STATUS,
)


class Topic(msgspec.Struct, frozen=True, gc=False):
    channel: Channel
    symbol: str

    def __str__(self) -> str:
        return f"{self.channel.value}.{self.symbol}"

    @property
    def conflatable(self) -> bool:
        return self.channel in CONFLATABLE

    @classmethod
    def parse(cls, text: str) -> Topic:
        """Parse ``"<channel>.<symbol>"``; raises ValueError on anything else."""
        channel, sep, symbol = text.partition(".")
        if not sep or not symbol:
            raise ValueError(f"not a topic: {text!r}")
        return cls(Channel(channel), symbol)


_CHANNEL_OF: Final[dict[type, Channel]] = {
    Quote: Channel.QUOTES,
    Trade: Channel.TRADES,
    Bar: Channel.BARS,
    BookUpdate: Channel.BOOK,
    Status: Channel.STATUS,
    AssetUpdate: Channel.ASSETS,
    PortfolioValue: Channel.PORTFOLIO,
    PositionUpdate: Channel.POSITIONS,
    PositionsUpdate: Channel.LIVE_POSITIONS,
}


def topic_of(event: Event) -> Topic:
    """The topic an event is published on: its channel and its key (symbol or id)."""
    if isinstance(event, PortfolioValue | PositionUpdate | PositionsUpdate | AssetUpdate):
        return Topic(_CHANNEL_OF[type(event)], event.key)
    return Topic(_CHANNEL_OF[type(event)], event.symbol)
