"""The market-feed client: one connection that stays up, and the messages it gets.

Rules: this is the SDK's driver (asyncio and websockets); what it decides is pure and
lives beside it: ``streams.py`` (positions, gaps, books, what to resubscribe),
``queue.py`` (the bounded, conflating receive queue), ``retry.Backoff`` (the delays),
``advice.py`` (whether a close or a refused handshake is worth a retry) and
``protocols.native.client`` (the wire). Time is read through the ``Clock`` it is given.

One ``Feed`` runs one task that connects, resubscribes everything (resuming each
reliable stream from its last ``(epoch, seq)``, or from where the server's
acknowledgement said it started), reads until the connection ends, and waits a capped,
fully jittered back-off before the next try. A resubscription the server refuses is
split until the refused topics are found; each is dropped and announced with
``Reset(reason="refused")``. A connection that delivers nothing (no data, no heartbeat,
no pong to the pings sent while it is quiet) for ``heartbeat_timeout_s`` is taken for
dead and aborted; a close or HTTP refusal whose advice is "do not reconnect" ends the
feed with ``FeedRefused``. When the server degrades this client (it fell behind: its
socket did not take data), each suspended stream's ``Degraded`` and then its
``Resumed`` (``how``: ``replay`` or ``reset``) are delivered in order with the data,
and the seqs skipped meanwhile are not taken for gaps (``streams.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import (
    ConnectionClosed,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)
from websockets.uri import parse_uri

from tickcast.client.advice import feed_url, refusal_of
from tickcast.client.advice import retry as _retry
from tickcast.client.queue import ConflationStats, Put, ReceiveQueue
from tickcast.client.streams import (
    StreamCounters,
    Streams,
    check_channels,
    normalize,
    split_topic,
    topic_name,
)
from tickcast.clock import SYSTEM, Clock
from tickcast.errors import (
    FeedError,
    FeedGaveUp,
    FeedRefused,
    FeedSubscriptionError,
    InvalidMessage,
    SlowConsumer,
)
from tickcast.model.book import OrderBook
from tickcast.protocols.native import client as wire
from tickcast.retry import Backoff

#: What a caller gets: data, a stream's reset, and a slow client's suspended and
#: resumed streams (``Degraded``, ``Resumed``).
Message = wire.Payload | wire.Reset | wire.Degraded | wire.Resumed
OnFull = Literal["raise", "block"]
DEFAULT_BACKOFF: Final = Backoff(base_s=0.25, cap_s=15.0)
#: A connection that lived this long (or delivered data) starts the back-off over.
HEALTHY_AFTER_S: Final = 5.0


@dataclass
class FeedStats:
    """What the feed did so far.

    Attributes:
        connected: whether a connection is up now.
        connects: connections opened; reconnects: those after the first.
        received: data messages read; delivered: messages the caller took.
        latency_ms: the latest data message's age on arrival (receive wall time minus
            its timestamp; includes the clocks' difference when not on one machine).
        heartbeat_timeouts: connections found dead by silence.
        last_close: the latest close code and reason ((1006, "") for an abort).
        errors: unsolicited error replies, refused resubscriptions, unreadable frames.
        refused: topics the server refused to resubscribe after a reconnect, with its
            words (each was delivered as ``Reset(reason="refused")`` and dropped).
        stamps: with ``stamps=True``, the latest data message's latency stamps
            (``Stamps``: event, gateway receive, gateway send, and ``arrived_us``, this
            client's wall clock when the frame arrived); None before the first.
    """

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    received: int = 0
    delivered: int = 0
    latency_ms: float | None = None
    heartbeat_timeouts: int = 0
    last_close: tuple[int, str] | None = None
    errors: int = 0
    refused: dict[str, str] = field(default_factory=dict)
    stamps: wire.Stamps | None = None


def check_url(url: str) -> None:
    """Raises ValueError for a URL no connection can use (not ws:// or wss://, no host):
    at once, rather than a retry loop."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"not a market-feed URL: {exc}") from None


@dataclass
class _Pending:
    """A request waiting for its answer (``subscribed``, ``unsubscribed`` or ``error``):
    a caller's (``done``), or a resubscription after a reconnect (``symbols`` on
    ``channel``, whose refusal the feed handles itself)."""

    done: asyncio.Future[None] | None
    symbols: list[str] = field(default_factory=list)
    channel: str = ""


class Feed:
    """A market-feed connection that reconnects, resubscribes and resumes by itself.

    Use ``connect(url, ...)``: ``async with connect(url) as feed``. Arguments are
    ``connect``'s.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        heartbeat_s: float = 5.0,
        heartbeat_timeout_s: float | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_attempts: int | None = None,
        max_queue: int = 10_000,
        on_full: OnFull = "raise",
        array_frames: bool = True,
        stamps: bool = False,
        open_timeout_s: float = 10.0,
        clock: Clock = SYSTEM,
        rng: random.Random | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if on_full not in ("raise", "block"):
            raise ValueError("on_full must be 'raise' or 'block'")
        if heartbeat_s and not 1 <= heartbeat_s <= 3600:
            raise ValueError("heartbeat_s must be 0 (none) or 1 to 3600 seconds")
        self.url = feed_url(url, heartbeat_s, array_frames, stamps)
        check_url(self.url)
        self.heartbeat_timeout_s = heartbeat_timeout_s or max(3 * heartbeat_s, 3.0)
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.on_full = on_full
        self.open_timeout_s = open_timeout_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.headers = dict(headers or {})
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.stats = FeedStats()
        self.streams = Streams()
        self.queue: ReceiveQueue[Message] = ReceiveQueue(max_queue)
        self._ready = asyncio.Event()  # the caller may have something to take
        self._space = asyncio.Event()  # the reader may queue again
        self._up = asyncio.Event()  # a connection is up and resubscribed
        self._error: FeedError | None = None
        self._closing = False
        self._blocked = False
        self._ws: ClientConnection | None = None
        self._pending: deque[_Pending] = deque()
        self._task: asyncio.Task[None] | None = None
        self._last_rx = 0.0

    # -- life

    async def __aenter__(self) -> Feed:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect (retrying as the back-off says) and return once connected.

        Raises:
            FeedRefused: the server refused for good (e.g. a bad token); nothing retried.
            FeedGaveUp: ``max_attempts`` tries failed.
        """
        self._task = asyncio.create_task(self._run(), name="tickcast-feed")
        up = asyncio.create_task(self._up.wait())
        try:
            await asyncio.wait({up, self._task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (a timeout around connect): stop the task too
            await self.close()
            raise
        finally:
            up.cancel()
        if self._error is not None:
            raise self._error
        if self._task.done():
            self._task.result()  # a bug in the client: raised here, not swallowed

    async def close(self) -> None:
        self._closing = True
        self._ready.set()
        self._space.set()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- what a caller asks

    async def subscribe(
        self, symbols: Iterable[str], channels: Sequence[str] = ("quotes",)
    ) -> None:
        """Subscribe (and keep subscribed across reconnects) to ``symbols`` x ``channels``.

        Returns once the server acknowledged, or at once while reconnecting (the
        subscription is then made with the others). The request is one message, so the
        server takes it whole or refuses it whole.

        Raises:
            FeedSubscriptionError: the server refused the request (an unknown symbol,
                too many subscriptions); nothing of it is kept, and what was subscribed
                before stays subscribed.
            ValueError: an unknown channel, no symbol or channel, or a symbol none of
                the channels carries (``status`` has the one symbol ``FEED``).
        """
        topics = normalize(symbols, channels)
        names = list(dict.fromkeys(split_topic(t)[1] for t in topics))
        new = [t for t in topics if t not in self.streams.wanted]
        self.streams.add(new)
        try:
            await self._request(wire.subscribe(names, list(dict.fromkeys(channels))))
        except FeedSubscriptionError:
            self.streams.remove(new)  # the server kept what it had: so does the client
            raise

    async def unsubscribe(
        self, symbols: Iterable[str], channels: Sequence[str] | None = None
    ) -> None:
        """Stop ``symbols`` on ``channels`` (every channel when None). Updates still in
        flight for them are dropped.

        Raises:
            ValueError: no symbol, an unknown channel, or ``channels=[]`` (none).
        """
        names = list(dict.fromkeys(s.strip().upper() for s in symbols))
        if not names:
            raise ValueError("unsubscribe at least one symbol")
        chans = None if channels is None else check_channels(channels)
        gone = [
            t
            for t in self.streams.wanted
            if split_topic(t)[1] in names and (chans is None or split_topic(t)[0] in chans)
        ]
        self.streams.remove(gone)
        await self._request(wire.unsubscribe(names, chans))

    def book(self, symbol: str) -> OrderBook | None:
        """The client-side order book of ``symbol`` (subscribed on ``book``), or None
        until its snapshot came."""
        return self.streams.books.get(symbol.upper())

    def position(self, topic: str) -> tuple[str, int] | None:
        """The last ``(epoch, seq)`` delivered on ``topic`` (``"trades.AAPL"``)."""
        return self.streams.positions.get(topic)

    @property
    def degraded(self) -> dict[str, wire.Degraded]:
        """The topics the server suspended (this client fell behind) and has not resumed
        yet, with their ``Degraded`` message; empty while none is."""
        return dict(self.streams.suspended)

    @property
    def conflation(self) -> ConflationStats:
        """Quotes conflated in the receive queue because the caller fell behind."""
        return self.queue.conflation

    @property
    def counters(self) -> StreamCounters:
        return self.streams.counters

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    def _take(self) -> Message | None:
        """The next message if one waits (None if not); raises as ``__anext__``."""
        if isinstance(self._error, SlowConsumer):
            raise self._error
        item = self.queue.get()
        if item is not None:
            self.stats.delivered += 1
            self._space.set()
            return item
        if self._error is not None:
            raise self._error
        if self._closing:
            raise StopAsyncIteration
        return None

    async def __anext__(self) -> Message:
        while (item := self._take()) is None:
            self._ready.clear()
            await self._ready.wait()
        return item

    async def _get(self, wait_s: float | None) -> Message | None:
        """The next message, or None after ``wait_s`` seconds without one (0: only
        one waiting now). Only the wait is timed: a message taken is never lost to the
        timeout (``SyncFeed.get``)."""
        loop = asyncio.get_running_loop()
        deadline = None if wait_s is None else loop.time() + wait_s
        while (item := self._take()) is None:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return None
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._ready.wait()
        return item

    async def run(self, callback: Callable[[Message], Awaitable[None] | None]) -> None:
        """Call ``callback`` with every message (awaited when it returns an awaitable)
        until the feed closes or fails."""
        async for message in self:
            result = callback(message)
            if result is not None:
                await result

    # -- the connection

    async def _request(self, text: str) -> None:
        ws = self._ws
        if ws is None or not self._up.is_set():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(done))
        self._space.set()  # a reader waiting for the caller reads on to the answer
        try:
            await ws.send(text)
        except ConnectionClosed:
            return  # resent with the others on reconnect
        await done

    def _fail(self, error: FeedError) -> None:
        if self._error is None:
            self._error = error
        self._ready.set()

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                ws = await websockets.connect(
                    self.url,
                    additional_headers=self.headers,
                    open_timeout=self.open_timeout_s,
                    ping_interval=None,  # the watchdog pings, and counts the pongs
                    ping_timeout=None,
                    close_timeout=2.0,
                    max_size=None,
                    compression=None,
                    proxy=None,
                )
            except InvalidStatus as exc:
                code, reason, again = refusal_of(exc.response.status_code, exc.response.body or b"")
                self.stats.last_close = (code, reason)
                if not again:
                    self._fail(FeedRefused(code, reason))
                    return
            except (OSError, TimeoutError, WebSocketException) as exc:
                self.stats.last_close = (1006, f"{type(exc).__name__}: {exc}")
            else:
                started = self.clock.monotonic()
                delivered = self.stats.received
                await self._connection(ws)
                if self._error is not None:  # the caller fell behind (SlowConsumer)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(), 2.0)
                    return
                closed = ws.close_code
                reason = ws.close_reason or ""
                self.stats.last_close = (closed or 1006, reason)
                if self._closing:
                    return
                if not _retry(closed):
                    self._fail(FeedRefused(closed or 1006, reason))
                    return
                lived = self.clock.monotonic() - started
                if lived >= HEALTHY_AFTER_S or self.stats.received > delivered:
                    attempt = 0
            if self.max_attempts is not None and attempt + 1 >= self.max_attempts:
                code, reason = self.stats.last_close or (1006, "")
                self._fail(
                    FeedGaveUp(
                        f"{self.max_attempts} connection attempts failed; "
                        f"the last: {code} {reason}".rstrip()
                    )
                )
                return
            await asyncio.sleep(self.backoff.delay(attempt, self.rng))
            attempt += 1

    async def _connection(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        self.stats.connected = True
        self._last_rx = self.clock.monotonic()
        watchdog = asyncio.create_task(self._watchdog(ws))
        try:
            for symbols, channels, resume in self.streams.resubscribe():
                self._pending.append(_Pending(None, symbols, channels[0]))
                await ws.send(wire.subscribe(symbols, channels, resume))
            self._up.set()
            async for frame in ws:
                await self._frame(frame, ws)
        except ConnectionClosed:
            pass
        finally:
            watchdog.cancel()
            self._up.clear()
            self._ws = None
            self.stats.connected = False
            while self._pending:
                done = self._pending.popleft().done
                if done is not None and not done.done():
                    done.set_result(None)
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _watchdog(self, ws: ClientConnection) -> None:
        """Abort the connection after ``heartbeat_timeout_s`` without a frame or a pong
        (not while the reader waits for the caller: then nothing is read on purpose).
        A connection quiet for a third of that is sent a WebSocket ping, whose pong
        counts as a sign of life (so no application heartbeat is needed)."""
        timeout = self.heartbeat_timeout_s
        interval = timeout / 3
        while True:
            quiet = self.clock.monotonic() - self._last_rx
            if not self._blocked:
                if quiet >= timeout:
                    self.stats.heartbeat_timeouts += 1
                    ws.transport.abort()
                    return
                if quiet >= interval:
                    with contextlib.suppress(ConnectionClosed):
                        pong = asyncio.ensure_future(await ws.ping())
                        pong.add_done_callback(self._ponged)
            await asyncio.sleep(interval / 2)

    def _ponged(self, pong: asyncio.Future[float]) -> None:
        if not pong.cancelled() and pong.exception() is None:
            self._last_rx = self.clock.monotonic()

    async def _frame(self, frame: str | bytes, ws: ClientConnection) -> None:
        self._last_rx = self.clock.monotonic()
        try:
            messages = wire.decode(frame)
        except InvalidMessage:
            self.stats.errors += 1
            return
        streams = self.streams
        for m in messages:
            if isinstance(m, wire.Update):
                self.stats.received += 1
                ts = getattr(m.payload, "ts", 0.0)
                if ts:
                    self.stats.latency_ms = (self.clock.wall() - ts) * 1000.0
                if m.stamps is not None:
                    arrived = round(self.clock.wall() * 1_000_000)
                    self.stats.stamps = m.stamps._replace(arrived_us=arrived)
                for out in streams.accept(m):
                    await self._deliver(out.payload if isinstance(out, wire.Update) else out)
            elif isinstance(m, wire.Reset):
                reset = streams.reset(m)
                if reset is not None:
                    await self._deliver(reset)
            elif isinstance(m, wire.Degraded):
                degraded = streams.degraded(m)
                if degraded is not None:
                    await self._deliver(degraded)
            elif isinstance(m, wire.Resumed):
                for notice in streams.resumed(m):
                    await self._deliver(notice)
            elif isinstance(m, wire.Subscribed):
                streams.acknowledged(m.positions)
                await self._answer(None, ws)
            elif isinstance(m, wire.Unsubscribed):
                await self._answer(None, ws)
            elif isinstance(m, wire.ServerError):
                await self._answer(m.message, ws)
        for symbol in streams.resnapshot():
            self._pending.extend((_Pending(None), _Pending(None)))
            await ws.send(wire.unsubscribe([symbol], ["book"]))
            await ws.send(wire.subscribe([symbol], ["book"]))

    async def _answer(self, error: str | None, ws: ClientConnection) -> None:
        pending = self._pending.popleft() if self._pending else None
        done = pending.done if pending is not None else None
        if done is not None:
            if not done.done():
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(FeedSubscriptionError(error))
            return
        if error is None:
            return
        self.stats.errors += 1
        if pending is not None and pending.symbols:
            await self._resubscription_refused(pending, error, ws)

    async def _resubscription_refused(
        self, refused: _Pending, error: str, ws: ClientConnection
    ) -> None:
        """The server refused a resubscription (the whole channel's request: e.g. one
        symbol left its universe while the client was away). The request is split in
        halves and each sent again, down to the topics refused on their own, which are
        dropped and announced with ``Reset(reason="refused")``; the others go on."""
        channel, wanted = refused.channel, self.streams.wanted
        symbols = [s for s in refused.symbols if topic_name(channel, s) in wanted]
        if len(symbols) == 1:
            topic = topic_name(channel, symbols[0])
            self.stats.refused[topic] = error
            await self._deliver(self.streams.refused(topic))
            return
        half = len(symbols) // 2
        for part in (symbols[:half], symbols[half:]):
            if part:
                self._pending.append(_Pending(None, part, channel))
                await ws.send(wire.subscribe(part, [channel], self.streams.resume(part, channel)))

    def _caller_waits(self) -> bool:
        """Whether a caller awaits the answer to a request (which comes after the data
        the server sent before it)."""
        return any(p.done is not None and not p.done.done() for p in self._pending)

    async def _deliver(self, item: Message) -> None:
        while True:
            if self.queue.put(item) is not Put.FULL:
                self._ready.set()
                return
            if self.on_full == "block" and self._caller_waits():
                # the caller waits for an answer behind this data and takes nothing
                # meanwhile: queue it over the bound rather than wait for each other
                self.queue.put(item, force=True)
                self._ready.set()
                return
            if self.on_full == "raise":
                self._fail(SlowConsumer(f"{self.queue.reliable} reliable messages not taken"))
                raise ConnectionClosed(None, None)  # ends this connection's reader
            self._blocked = True
            self._space.clear()
            await self._space.wait()
            self._blocked = False
            self._last_rx = self.clock.monotonic()
            if self._closing:
                return


def connect(url: str, **options: Any) -> Feed:
    """A ``Feed`` for ``async with`` (see ``Feed``'s arguments)::

    async with connect("ws://127.0.0.1:8000/ws/market/feed", token=...) as feed:
        await feed.subscribe(["AAPL"], channels=["quotes", "trades"])
        async for message in feed:
            ...
    """
    return Feed(url, **options)
