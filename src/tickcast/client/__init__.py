"""tickcast's Python client for the market feed (``/ws/market/feed``).

::

    import tickcast.client

    async with tickcast.client.connect("ws://127.0.0.1:8000/ws/market/feed") as feed:
        await feed.subscribe(["AAPL"], channels=["quotes", "trades"])
        async for message in feed:
            print(message)

It reconnects with capped, jittered back-off, resubscribes and resumes every stream
from its last ``(epoch, seq)``, detects dead connections by heartbeat, keeps order books
client-side, and conflates quotes (never trades) when the caller falls behind. See
docs/client.md. It imports only the model, the native protocol, retry, errors,
closecodes and clock (tests/architecture/test_layers.py).
"""

from __future__ import annotations

from tickcast.client.feed import Feed, FeedStats, Message, connect
from tickcast.client.sync import SyncFeed, connect_sync
from tickcast.errors import (
    FeedError,
    FeedGaveUp,
    FeedRefused,
    FeedSubscriptionError,
    SlowConsumer,
)
from tickcast.model.book import OrderBook
from tickcast.model.market import Bar, BookUpdate, Quote, Status, Trade
from tickcast.model.signal import Signal
from tickcast.protocols.native.client import Degraded, Reset, Resumed, Stamps

__all__ = [
    "Bar",
    "BookUpdate",
    "Degraded",
    "Feed",
    "FeedError",
    "FeedGaveUp",
    "FeedRefused",
    "FeedStats",
    "FeedSubscriptionError",
    "Message",
    "OrderBook",
    "Quote",
    "Reset",
    "Resumed",
    "Signal",
    "SlowConsumer",
    "Stamps",
    "Status",
    "SyncFeed",
    "Trade",
    "connect",
    "connect_sync",
]
