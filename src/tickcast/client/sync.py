"""A synchronous wrapper for scripts and notebooks: the asyncio ``Feed`` on a thread.

Rules: a driver. The feed runs in an event loop of its own, on a daemon thread; every
call hands a coroutine to that loop and waits for its answer, so a script needs no
``async``::

    with tickcast.client.connect_sync(url) as feed:
        feed.subscribe(["AAPL"], channels=["trades"])
        for message in feed:
            print(message)

It works inside a notebook whose own loop is running (it never touches that loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType
from typing import Any, TypeVar

from tickcast.client.feed import Feed, FeedStats, Message
from tickcast.model.book import OrderBook

T = TypeVar("T")


class SyncFeed:
    """``Feed`` with blocking methods. Arguments are ``Feed``'s."""

    def __init__(self, url: str, **options: Any) -> None:
        self._closed = False
        self._feed: Feed | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tickcast-feed", daemon=True
        )
        self._thread.start()

        async def make() -> Feed:
            return Feed(url, **options)

        try:  # a bad option (ValueError) as much as a refusal: stop the thread
            self._feed = self._call(make())
            self._call(self._feed.start())
        except BaseException:
            self.close()
            raise

    @property
    def feed(self) -> Feed:
        if self._feed is None:
            raise RuntimeError("the feed is not set up")
        return self._feed

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the feed is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def subscribe(self, symbols: Iterable[str], channels: Sequence[str] = ("quotes",)) -> None:
        self._call(self.feed.subscribe(list(symbols), channels))

    def unsubscribe(self, symbols: Iterable[str], channels: Sequence[str] | None = None) -> None:
        self._call(self.feed.unsubscribe(list(symbols), channels))

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after ``timeout`` seconds without one (0: only one
        that waits already). The wait is timed in the feed's loop, so a message is never
        taken and then dropped by the timeout.

        Raises:
            StopIteration: the feed is closed (after the messages it still held).
            FeedError: the feed failed (refused, gave up, slow consumer).
        """
        feed = self.feed
        try:
            if self._closed:  # its loop is gone: what it still holds, then the end
                item = feed._take()
                if item is None:
                    raise StopIteration
                return item
            return self._call(feed._get(timeout))
        except StopAsyncIteration:
            raise StopIteration from None

    def __iter__(self) -> Iterator[Message]:
        while True:
            try:
                message = self.get()
            except StopIteration:
                return
            if message is not None:
                yield message

    def book(self, symbol: str) -> OrderBook | None:
        return self.feed.book(symbol)

    @property
    def stats(self) -> FeedStats:
        return self.feed.stats

    def close(self) -> None:
        if self._closed:
            return
        feed = self._feed
        try:
            if feed is not None:
                with contextlib.suppress(FutureTimeout):
                    self._call(feed.close(), timeout=10)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> SyncFeed:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def connect_sync(url: str, **options: Any) -> SyncFeed:
    """Connect and return once connected (see ``Feed`` for the options)."""
    return SyncFeed(url, **options)
