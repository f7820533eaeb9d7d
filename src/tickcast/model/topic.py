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


class Channel(enum.StrEnum):
    QUOTES = "quotes"
    TRADES = "trades"
    BARS = "bars"
    BOOK = "book"
    STATUS = "status"


#: Channels whose pending updates may be replaced by newer ones (latest value per key).
#: Status changes are never conflated: each transition is news.
CONFLATABLE: Final = frozenset({Channel.QUOTES})


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
}


def topic_of(event: MarketEvent) -> Topic:
    """The topic a market event is published on."""
    return Topic(_CHANNEL_OF[type(event)], event.symbol)
