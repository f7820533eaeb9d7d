"""The Alpaca market data stream v2, served from the simulator (``tickcast emulate alpaca``).

Rules: this module knows Alpaca's wire and session flow (as Alpaca's market-data stream
documentation describes it); the
market, the per-key connection limit and the faults come from ``emulators/base.py``. It
stays faithful enough for alpaca-py and the Go SDK: a control message goes alone in a
length-1 array, ``T`` is every map's first key, msgpack ``t`` is a Timestamp extension.

Paths: ``/v2/iex``, ``/v2/sip``, ``/v2/delayed_sip`` (stocks: the symbols without ``/``
except FAKEPACA), ``/v2/test`` (FAKEPACA only), ``/v1beta3/crypto/us`` (the pairs, e.g.
``BTC/USD``). Any other path is refused at the upgrade with HTTP 404.

Encoding: ``Content-Type: application/msgpack`` on the upgrade request gives binary
msgpack frames; anything else gives JSON text frames with RFC 3339 nanosecond ``t``.
Client messages are accepted in either encoding (text or binary, fragmented or not).

Session: ``connected``; auth by message or by the APCA-API-KEY-ID / APCA-API-SECRET-KEY
headers, within ``auth_timeout_s`` (else 404 and close); 402 on bad credentials (then
close); 406 when the key already holds ``connection_limit`` connections (then close);
403 on a second auth; 401 on (un)subscribe before auth; 400 on anything unreadable;
405 when the subscription would exceed ``symbol_limit`` symbols (it is left unchanged);
410 for a channel the feed does not offer. Subscribe adds and unsubscribe removes;
``null`` lists are empty; ``*`` means every symbol; the reply is the full set, with
``corrections`` and ``cancelErrors`` following ``trades`` on stocks.

Data: trades ``t``, quotes ``q`` (stock sizes in round lots), minute bars ``b`` each
with the day's bar ``d``, crypto books ``o`` (the first after subscribing: the whole
book, ``r: true``). ``c``, ``x``, ``s``, ``l``, ``i``, ``u`` are subscribable, never sent.

Faults: ``silent`` sends no data (books still advance); ``malformed`` turns one data
message per connection into one with a string price; ``slow`` sends error 407 and
closes, as does a client that falls ``MAX_QUEUED_BATCHES`` behind or blocks a write for
``SEND_TIMEOUT_S``. Alpaca documents no close codes; the emulator closes with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import msgpack  # type: ignore[import-untyped]
import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from tickcast.emulators.base import EmulatorServer, Fault, MarketFeed
from tickcast.model.market import Bar, BookUpdate, MarketEvent, Quote, Trade
from tickcast.providers.simulator.market import SimulatorConfig

TEST_SYMBOL: Final = "FAKEPACA"
#: Stocks, the test stream's symbol and crypto pairs (Alpaca's crypto quotes in USD).
_STOCKS: Final = ("AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY")
DEFAULT_SYMBOLS: Final = (*_STOCKS, TEST_SYMBOL, "BTC/USD", "ETH/USD")
#: Path -> kind of feed.
FEEDS: Final = dict.fromkeys(("/v2/iex", "/v2/sip", "/v2/delayed_sip"), "stocks") | {
    "/v2/test": "test",
    "/v1beta3/crypto/us": "crypto",
}
_BASIC: Final = ("trades", "quotes", "bars")
#: Channels each kind of feed offers, in the order of its subscription reply.
OFFERED: Final = {
    "stocks": (*_BASIC, "updatedBars", "dailyBars", "statuses", "lulds", "imbalances"),
    "test": _BASIC,
    "crypto": ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars"),
}
#: Subscribed automatically with ``trades`` on stocks (a client's own lists are ignored).
FOLLOW_TRADES: Final = ("corrections", "cancelErrors")
#: Channels some Alpaca stream offers; a non-empty list for one the feed lacks is a 410.
KNOWN_CHANNELS: Final = {*OFFERED["stocks"], *OFFERED["crypto"], *FOLLOW_TRADES, "news"}
#: Seconds a data write may block before the client counts as slow.
SEND_TIMEOUT_S: Final = 5.0
#: Seconds allowed for the last error message and close handshake of a dying connection.
CLOSE_TIMEOUT_S: Final = 1.0
_SYMBOL: Final = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9./-]{0,30})$")
_ERRORS: Final = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    410: "invalid subscribe action for this feed",
}
#: The price field a ``malformed`` fault spoils, by message type.
_SPOIL: Final = {"t": "p", "q": "bp", "b": "o", "d": "o", "o": "b"}


class AlpacaError(Exception):
    """A request answered with an Alpaca error code (Alpaca's documented codes)."""

    def __init__(self, code: int) -> None:
        super().__init__(_ERRORS[code])
        self.code = code


class Subscriptions:
    """One connection's channels -> symbols, changed by subscribe/unsubscribe messages.

    Pure. ``change`` validates a whole message before applying any of it, so that a
    refused message (400, 405, 410) leaves the subscription as it was.
    """

    def __init__(self, kind: str, symbol_limit: int = 0) -> None:
        self.kind = kind
        self.symbol_limit = symbol_limit
        self.channels: dict[str, dict[str, None]] = {c: {} for c in OFFERED[kind]}

    def change(self, message: dict[str, Any]) -> dict[str, list[str]]:
        """Apply a subscribe/unsubscribe message; the symbols it added, per channel.

        Raises:
            AlpacaError: 400 (bad lists or symbols), 410 (channel not offered), 405
                (too many symbols; nothing changed).
        """
        subscribe = message["action"] == "subscribe"
        wanted: dict[str, list[str]] = {}
        for key, value in message.items():
            if key not in KNOWN_CHANNELS:
                continue
            names = [] if value is None else value
            if not isinstance(names, list) or not all(
                isinstance(n, str) and _SYMBOL.match(n) for n in names
            ):
                raise AlpacaError(400)
            if key in FOLLOW_TRADES and self.kind == "stocks":
                continue
            if names and key not in self.channels:
                raise AlpacaError(410)
            if names:
                wanted[key] = names
        new = {c: dict(names) for c, names in self.channels.items()}
        added: dict[str, list[str]] = {}
        for channel, names in wanted.items():
            current = new[channel]
            for name in names:
                if subscribe and name not in current:
                    current[name] = None
                    added.setdefault(channel, []).append(name)
                elif not subscribe:
                    current.pop(name, None)
        if subscribe and self.symbol_limit:
            symbols = {n for names in new.values() for n in names if n != "*"}
            if len(symbols) > self.symbol_limit:
                raise AlpacaError(405)
        self.channels = new
        return added

    def wants(self, channel: str, symbol: str) -> bool:
        """True when ``symbol``'s data of ``channel`` is subscribed (False if not offered)."""
        names = self.channels.get(channel, {})
        return symbol in names or "*" in names

    def reply(self) -> dict[str, Any]:
        """The ``subscription`` message: every channel of the feed, in wire order."""
        out: dict[str, Any] = {"T": "subscription"}
        for channel in OFFERED[self.kind]:
            out[channel] = list(self.channels[channel])
        if self.kind == "stocks":
            for channel in FOLLOW_TRADES:
                out[channel] = list(self.channels["trades"])
        return out


# -- the wire: timestamps and messages


@functools.lru_cache(maxsize=1024)
def _second_prefix(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _split_ns(ts: float) -> tuple[int, int]:
    """Epoch seconds -> (whole seconds, nanoseconds)."""
    second = math.floor(ts)
    return divmod(second * 1_000_000_000 + round((ts - second) * 1e9), 1_000_000_000)


def rfc3339(ts: float) -> str:
    """Epoch seconds -> ``"2024-07-24T07:56:53.639713735Z"`` (no fraction on whole seconds)."""
    second, nanos = _split_ns(ts)
    if not nanos:
        return f"{_second_prefix(second)}Z"
    return f"{_second_prefix(second)}.{nanos:09d}Z"


def msgpack_time(ts: float) -> Any:
    """Epoch seconds -> a msgpack Timestamp (packed as the ext type -1)."""
    second, nanos = _split_ns(ts)
    return msgpack.Timestamp(second, nanos)


@dataclasses.dataclass(slots=True)
class _Symbol:
    """What the connection tracks per symbol to fill bars: minute and day totals."""

    day: int = -1
    day_open: float = 0.0
    day_high: float = 0.0
    day_low: float = 0.0
    last: float = 0.0
    day_n: int = 0
    day_notional: float = 0.0
    day_volume: float = 0.0  # traded since the connection opened
    session_volume: float = 0.0  # the simulator's own count, from its quotes
    minute_n: int = 0
    minute_notional: float = 0.0
    minute_volume: float = 0.0

    def trade(self, price: float, size: float, ts: float) -> None:
        day = int(ts // 86_400)
        if day != self.day:
            self.day, self.day_open, self.day_high, self.day_low = day, price, price, price
            self.day_n, self.day_notional, self.day_volume = 0, 0.0, 0.0
        self.day_high = max(self.day_high, price)
        self.day_low = min(self.day_low, price)
        self.last = price
        self.day_n += 1
        self.day_notional += price * size
        self.day_volume += size
        self.minute_n += 1
        self.minute_notional += price * size
        self.minute_volume += size


class _Connection:
    """One client connection: its session state, its reader and its data writer."""

    def __init__(self, emulator: AlpacaEmulator, ws: ServerConnection, request: Request) -> None:
        self.emulator = emulator
        self.ws = ws
        self.kind = FEEDS[urlsplit(request.path).path.rstrip("/")]
        content_type = request.headers.get("Content-Type", "")
        self.binary = content_type.split(";")[0].strip().lower() == "application/msgpack"
        self.stamp = msgpack_time if self.binary else rfc3339
        symbols = emulator.market.config.symbols
        if self.kind == "test":
            self.served = frozenset({TEST_SYMBOL} & set(symbols))
        elif self.kind == "crypto":
            self.served = frozenset(s for s in symbols if "/" in s)
        else:
            self.served = frozenset(s for s in symbols if "/" not in s and s != TEST_SYMBOL)
        self.stocks = self.kind != "crypto"
        self.subs = Subscriptions(self.kind, emulator.symbol_limit)
        self.key: str | None = None
        self.lock = asyncio.Lock()
        self.seen: dict[Fault, int] = dict(emulator.faults.generation)
        self.totals = {s: _Symbol() for s in self.served}
        self.books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
        self.pending_snapshots: set[str] = set()
        self.closing = False

    # -- sending

    async def _send(self, messages: list[dict[str, Any]]) -> None:
        if self.binary:
            await self.ws.send(msgpack.packb(messages))
        else:
            await self.ws.send(msgspec.json.encode(messages).decode())

    async def control(self, message: dict[str, Any]) -> None:
        """A control message, always alone in its array."""
        async with self.lock:
            await self._send([message])

    async def fail(self, code: int) -> None:
        """Send error ``code``, then close (abort if the client does not read)."""
        self.closing = True
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._send([{"T": "error", "code": code, "msg": _ERRORS[code]}])
                await self.ws.close(1008, _ERRORS[code])
        except (TimeoutError, ConnectionClosed):
            self.ws.transport.abort()

    # -- reading

    async def serve(self) -> None:
        with self.emulator.market.feed() as feed:
            if not self.stocks:
                for event in self.emulator.market.snapshot():
                    if type(event) is BookUpdate and event.symbol in self.served:
                        self._apply_book(event)
            writer = asyncio.create_task(self._write(feed), name="alpaca-emulator-writer")
            try:
                await self.control({"T": "success", "msg": "connected"})
                headers = self.ws.request.headers if self.ws.request else None
                if headers and "APCA-API-KEY-ID" in headers:
                    key = headers.get("APCA-API-KEY-ID", "")
                    try:
                        await self._auth(key, headers.get("APCA-API-SECRET-KEY", ""))
                    except AlpacaError:  # only 402 can come from a first auth
                        await self.fail(402)
                await self._read()
            except ConnectionClosed:
                pass
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await writer
                if self.key is not None:
                    self.emulator.release(self.key)

    async def _read(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.emulator.auth_timeout_s
        while not self.closing:
            if self.key is None:
                try:
                    async with asyncio.timeout_at(deadline):
                        raw = await self.ws.recv()
                except TimeoutError:
                    await self.fail(404)
                    return
            else:
                raw = await self.ws.recv()
            try:
                await self._handle(_decode(raw))
            except AlpacaError as exc:
                if exc.code == 402:
                    await self.fail(402)
                    return
                await self.control({"T": "error", "code": exc.code, "msg": str(exc)})

    async def _handle(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("action"), str):
            raise AlpacaError(400)
        action = message["action"]
        if action == "auth":
            key, secret = message.get("key"), message.get("secret")
            if not isinstance(key, str) or not isinstance(secret, str):
                raise AlpacaError(400)
            await self._auth(key, secret)
        elif action in ("subscribe", "unsubscribe"):
            if self.key is None:
                raise AlpacaError(401)
            async with self.lock:
                added = self.subs.change(message)
                await self._send([self.subs.reply()])
                await self._send_snapshots(added.get("orderbooks", []))
        else:
            raise AlpacaError(400)

    async def _auth(self, key: str, secret: str) -> None:
        if self.key is not None:
            raise AlpacaError(403)
        if key != self.emulator.key or secret != self.emulator.secret:
            raise AlpacaError(402)
        if not self.emulator.claim(key):
            await self.fail(406)
            return
        self.key = key
        await self.control({"T": "success", "msg": "authenticated"})

    async def _send_snapshots(self, added: list[str]) -> None:
        """The whole book (``r: true``) of each newly subscribed symbol; a symbol whose
        book is still empty gets it with its first update."""
        wanted = {s for s in self.pending_snapshots if self.subs.wants("orderbooks", s)}
        self.pending_snapshots = wanted
        symbols = sorted(self.served) if "*" in added else [s for s in added if s in self.served]
        snapshots = []
        for symbol in symbols:
            if symbol in self.books:
                snapshots.append(self._book_message(symbol, ts=time.time()))
            else:
                self.pending_snapshots.add(symbol)
        if snapshots:
            await self._send(snapshots)

    # -- writing data

    async def _write(self, feed: MarketFeed) -> None:
        faults = self.emulator.faults
        while True:
            events = await feed.get()
            async with self.lock:
                if self.closing:
                    return
                slow = self.key is not None and faults.pending(Fault.SLOW, self.seen)
                if feed.overflowed or slow:
                    await self.fail(407)
                    return
                emit = self.key is not None and not faults.silent(time.time())
                frame = self._translate(events, self.subs.wants if emit else _nothing)
                if not frame:
                    continue
                if faults.pending(Fault.MALFORMED, self.seen):
                    frame[0] = _spoil(frame[0])
                try:
                    async with asyncio.timeout(SEND_TIMEOUT_S):
                        await self._send(frame)
                except TimeoutError:
                    await self.fail(407)
                    return

    def _translate(
        self, events: Sequence[MarketEvent], wants: Callable[[str, str], bool]
    ) -> list[dict[str, Any]]:
        """Update the connection's books and totals; the wanted events, on the wire."""
        out: list[dict[str, Any]] = []
        served = self.served
        stamp = self.stamp
        for event in events:
            symbol = event.symbol
            if symbol not in served:
                continue
            if type(event) is Quote:
                self.totals[symbol].session_volume = event.volume
                if wants("quotes", symbol):
                    out.append(self._quote(event))
            elif type(event) is Trade:
                self.totals[symbol].trade(event.price, event.size, event.ts)
                if wants("trades", symbol):
                    out.append(self._trade(event))
            elif type(event) is BookUpdate:
                if self.stocks:
                    continue
                self._apply_book(event)
                if wants("orderbooks", symbol):
                    if symbol in self.pending_snapshots:
                        self.pending_snapshots.discard(symbol)
                        out.append(self._book_message(symbol, ts=event.ts))
                    else:
                        bids = [{"p": p, "s": s} for p, s in event.bids]
                        asks = [{"p": p, "s": s} for p, s in event.asks]
                        o = {"T": "o", "S": symbol, "t": stamp(event.ts), "b": bids, "a": asks}
                        out.append(o)
            elif type(event) is Bar:
                out.extend(self._bars(event, wants))
        return out

    def _quote(self, q: Quote) -> dict[str, Any]:
        t = self.stamp(q.ts)
        if not self.stocks:
            return _message(_CRYPTO_QUOTE, "q", q.symbol, q.bid, q.bid_size, q.ask, q.ask_size, t)
        bid_lots, ask_lots = max(1, round(q.bid_size / 100)), max(1, round(q.ask_size / 100))
        values = ("V", q.bid, bid_lots, "V", q.ask, ask_lots, ["R"], "C", t)
        return _message(_STOCK_QUOTE, "q", q.symbol, *values)

    def _trade(self, t: Trade) -> dict[str, Any]:
        trade_id = int(t.trade_id) if t.trade_id.isdigit() else 0
        ts = self.stamp(t.ts)
        if not self.stocks:
            side = "B" if trade_id % 2 else "S"
            return _message(_CRYPTO_TRADE, "t", t.symbol, t.price, t.size, ts, trade_id, side)
        values = (trade_id, "V", t.price, round(t.size), ["@"], "C", ts)
        return _message(_STOCK_TRADE, "t", t.symbol, *values)

    def _bars(self, bar: Bar, wants: Callable[[str, str], bool]) -> list[dict[str, Any]]:
        """The minute bar ``b`` and, on feeds that have them, the day's bar ``d`` so far."""
        symbol, totals, out = bar.symbol, self.totals[bar.symbol], []
        size = round if self.stocks else float
        if wants("bars", symbol):
            vwap = totals.minute_notional / totals.minute_volume if totals.minute_volume else 0
            ohlc = (bar.open, bar.high, bar.low, bar.close, size(bar.volume))
            rest = (self.stamp(bar.start), totals.minute_n, round(vwap or bar.close, 6))
            out.append(_message(_BAR, "b", symbol, *ohlc, *rest))
        totals.minute_n, totals.minute_notional, totals.minute_volume = 0, 0.0, 0.0
        if wants("dailyBars", symbol) and totals.day >= 0:
            vwap = round(totals.day_notional / totals.day_volume, 6)
            day = (totals.day_open, totals.day_high, totals.day_low, totals.last)
            rest = (self.stamp(totals.day * 86_400), totals.day_n, vwap)
            volume = max(totals.session_volume, totals.day_volume)
            out.append(_message(_BAR, "d", symbol, *day, size(volume), *rest))
        return out

    def _apply_book(self, update: BookUpdate) -> None:
        if update.snapshot or update.symbol not in self.books:
            self.books[update.symbol] = (dict(update.bids), dict(update.asks))
            return
        for side, levels in zip(self.books[update.symbol], (update.bids, update.asks), strict=True):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)

    def _book_message(self, symbol: str, ts: float) -> dict[str, Any]:
        bids, asks = self.books[symbol]
        return {
            "T": "o",
            "S": symbol,
            "t": self.stamp(ts),
            "b": [{"p": p, "s": bids[p]} for p in sorted(bids, reverse=True)],
            "a": [{"p": p, "s": asks[p]} for p in sorted(asks)],
            "r": True,
        }


#: Wire keys of each message, ``T`` first (the Go SDK requires it), in Alpaca's order.
_STOCK_QUOTE: Final = ("T", "S", "bx", "bp", "bs", "ax", "ap", "as", "c", "z", "t")
_CRYPTO_QUOTE: Final = ("T", "S", "bp", "bs", "ap", "as", "t")
_STOCK_TRADE: Final = ("T", "S", "i", "x", "p", "s", "c", "z", "t")
_CRYPTO_TRADE: Final = ("T", "S", "p", "s", "t", "i", "tks")
_BAR: Final = ("T", "S", "o", "h", "l", "c", "v", "t", "n", "vw")


def _message(keys: tuple[str, ...], *values: Any) -> dict[str, Any]:
    return dict(zip(keys, values, strict=True))


def _decode(raw: str | bytes) -> Any:
    """A client message: JSON text, or msgpack (binary, or JSON sent as binary)."""
    try:
        if isinstance(raw, str) or raw[:1] in (b"{", b"["):
            return json.loads(raw)
        return msgpack.unpackb(raw)
    except (ValueError, TypeError):
        raise AlpacaError(400) from None


def _nothing(channel: str, symbol: str) -> bool:
    """``wants`` while nothing may be sent (before auth, while silent)."""
    return False


def _spoil(message: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``message`` with its price replaced by a string (the malformed fault)."""
    field = _SPOIL.get(message["T"], "p")
    return {**message, field: "not-a-price"}


class AlpacaEmulator(EmulatorServer):
    """The emulator's server: the base machinery plus Alpaca's paths and credentials.

    Attributes:
        key, secret: the only credentials accepted.
        auth_timeout_s: seconds a connection has to authenticate (Alpaca: 10).
        symbol_limit: distinct symbols one connection may subscribe; 0 = no limit.
    """

    key = "emulator-key"
    secret = "emulator-secret"
    auth_timeout_s = 10.0
    symbol_limit = 0


async def _serve(server: EmulatorServer, ws: ServerConnection) -> None:
    if not isinstance(server, AlpacaEmulator) or ws.request is None:
        raise TypeError("the Alpaca handler runs under an AlpacaEmulator")
    await _Connection(server, ws, ws.request).serve()


def build_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    key: str = "emulator-key",
    secret: str = "emulator-secret",
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    seed: int = 42,
    rate: float = 50.0,
    schedule: Sequence[tuple[float, Fault, float]] = (),
    connection_limit: int = 1,
    symbol_limit: int = 0,
    auth_timeout_s: float = 10.0,
    bar_interval_s: int = 60,
) -> EmulatorServer:
    """An Alpaca stream emulator (not started: ``await server.start()`` or ``async with``).

    Args:
        host, port: where to listen; port 0 picks a free one (``server.url``).
        key, secret: the only API key pair accepted.
        symbols: the simulated universe: stocks, ``FAKEPACA`` for ``/v2/test``, and
            crypto pairs (with ``/``) for ``/v1beta3/crypto/us``.
        seed, rate: the simulator's seed and quote ticks per second (all symbols).
        schedule: faults to inject at given seconds after start.
        connection_limit: open connections per key (Alpaca: 1); one more gets 406.
        symbol_limit: distinct symbols per connection; 0 = no limit; over it, 405.
        auth_timeout_s: seconds to authenticate before 404 (Alpaca: 10).
        bar_interval_s: seconds per bar (Alpaca: 60; tests shorten it).
    """
    config = SimulatorConfig(
        symbols=tuple(symbols), seed=seed, rate=rate, source="alpaca", bar_interval_s=bar_interval_s
    )
    limit = connection_limit
    server = AlpacaEmulator(
        "alpaca",
        _serve,
        config,
        host=host,
        port=port,
        connection_limit=limit,
        schedule=schedule,
        paths=tuple(FEEDS),
    )
    server.key, server.secret, server.symbol_limit = key, secret, symbol_limit
    server.auth_timeout_s = auth_timeout_s
    return server
