"""The Polygon.io (Massive) stocks WebSocket, served from the simulator.

Rules: this module speaks Polygon's wire (as Polygon's stocks WebSocket documentation describes
it) and nothing else. The
market, the per-key connection limit, the faults and the control endpoint come from
``emulators/base.py``; the message shapes from ``tickcast.providers.polygon.messages``
(the Structs the adapter decodes). Point the official client at it with
``WebSocketClient(feed="127.0.0.1:<port>", market="stocks", secure=False)``.

The session, per connection on ``/stocks`` (any other path: HTTP 404 at the handshake):

1. ``connected`` status.
2. ``{"action":"auth","params":KEY}`` within ``auth_timeout_s``, else ``auth_timeout``
   and close. A wrong key gets ``auth_failed`` and close. When the key already holds
   ``connection_limit`` connections, ``max_connections`` and close (the newcomer is
   refused; the open connection is left alone). Otherwise ``auth_success``.
3. ``subscribe`` / ``unsubscribe`` with a comma-separated ``EV.SYM`` list, each param
   trimmed (the vendor's own docs put spaces after the commas); ``EV.*`` means every
   symbol. One ``success`` status per param: "subscribed to: T.AAPL", "unsubscribed
   to: T.AAPL". A param without ``EV.`` and ``SYM`` gets an ``error`` status.
4. Data frames: every simulator batch becomes one frame (at most
   ``MAX_MESSAGES_PER_FRAME`` messages) that mixes event types, in market order. Status
   messages always travel alone.

Events (as Polygon documents them):

- T from each simulator trade: ``i`` the trade id as a string, ``x`` an exchange id from
  a fixed list, ``s`` shares, ``c`` ``[37]`` (odd lot) for trades under 100 shares and
  omitted otherwise (as in the official client's mock), ``t`` ms, ``z`` tape (2 for SPY,
  3 otherwise).
- Q from each simulator quote: ``bs``/``as`` in round lots of 100 shares, ``c`` 0 (one
  int), ``i`` ``[]``.
- ``q`` of T and Q: one sequence per symbol, from the simulator's book sequence (2n for
  the trade of tick n, 2n+1 for its quote), so that each stream increases but skips.
- A: per-second aggregates computed from the trades, sent when a later event shows the
  second is over. AM: the simulator's one-minute bars. In both, ``av`` is the
  simulator's session volume; ``op`` (the day's open), ``a`` (the day's VWAP) and
  ``vw``/``z`` of a minute the connection saw only part of are computed from the
  trades this connection has seen: an emulator's approximation.
- ``delayed=True`` is the 15-minute delayed cluster: every timestamp is 15 minutes in
  the past and Q is never sent (the spec lists Q as real-time only); Q subscriptions are
  still acknowledged.

Faults (``server.faults``): ``silent`` sends no data (acks and pings still flow);
``malformed`` puts one T item without a price at the head of the connection's next
data frame; ``slow``, and a client that really stops reading (its queue of batches
overflows, or one data write stays blocked for ``SEND_TIMEOUT_S``), get
``[{"ev":"status","status":"slow_consumer",...}]`` and a normal close (1000), or a TCP
abort when even that cannot be written within ``KILL_TIMEOUT_S``: the
vendor's knowledge base says slow consumers are "killed", and the official client
expects a status before a clean close ("the server sends a status (e.g. slow_consumer)
before closing"). Refusals (auth_failed, auth_timeout, max_connections) close with 1008.
``drop`` is done by the base (TCP abort).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tickcast.emulators.base import EmulatorServer, Fault
from tickcast.model.market import Bar, BookUpdate, MarketEvent, Quote, Trade
from tickcast.providers.polygon.messages import (
    Action,
    Message,
    MinuteAgg,
    QuoteEvent,
    SecondAgg,
    Status,
    TradeEvent,
)
from tickcast.providers.simulator.market import DEFAULT_SYMBOLS, SimulatorConfig, is_crypto

log = logging.getLogger("tickcast.emulator.polygon")

#: The only path served (the stocks market).
STOCKS_PATH: Final = "/stocks"
#: The simulator's stocks: its default universe without the crypto pairs.
DEFAULT_STOCKS: Final = tuple(s for s in DEFAULT_SYMBOLS if not is_crypto(s))
#: Seconds a new connection has to authenticate.
AUTH_TIMEOUT_S: Final = 10.0
#: How far in the past the delayed cluster's timestamps are, in seconds.
DELAY_S: Final = 15 * 60
#: Most messages in one data frame; a bigger batch is split.
MAX_MESSAGES_PER_FRAME: Final = 1000
#: A data write blocked this long (the client stopped reading) kills the connection as slow.
SEND_TIMEOUT_S: Final = 5.0
#: Seconds allowed for the slow-consumer status and close before the socket is aborted.
KILL_TIMEOUT_S: Final = 1.0
#: Close code of a refused connection (auth failed or timed out, connection limit).
CLOSE_REFUSED: Final = 1008

CONNECTED: Final = Status(status="connected", message="Connected Successfully")
AUTH_SUCCESS: Final = Status(status="auth_success", message="authenticated")
AUTH_FAILED: Final = Status(status="auth_failed", message="authentication failed")
AUTH_TIMEOUT: Final = Status(status="auth_timeout", message="No authentication request received.")
MAX_CONNECTIONS: Final = Status(
    status="max_connections",
    message="Maximum number of websocket connections exceeded. You have reached the"
    " connection limit for your account. Please contact support at"
    " https://polygon.io/contact to increase your limit.",
)
SLOW_CONSUMER: Final = Status(
    status="slow_consumer",
    message="Your connection is not consuming data fast enough and is being disconnected.",
)

#: Exchange ids given to trades and quotes, in turn.
_EXCHANGES: Final = (4, 10, 11, 12, 15, 19)
#: Tape per symbol (1 NYSE, 2 NYSE Arca/AMEX..., 3 Nasdaq); 3 when not listed.
_TAPES: Final = {"SPY": 2}
_ODD_LOT: Final = 37
_ROUND_LOT: Final = 100
_DAY_S: Final = 86_400

_encode = msgspec.json.Encoder().encode
_decode_action = msgspec.json.Decoder(Action).decode


def build_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    key: str = "emulator-key",
    symbols: Sequence[str] = DEFAULT_STOCKS,
    seed: int = 42,
    rate: float = 50.0,
    schedule: Sequence[tuple[float, Fault, float]] = (),
    connection_limit: int = 1,
    delayed: bool = False,
    auth_timeout_s: float = AUTH_TIMEOUT_S,
) -> EmulatorServer:
    """A Polygon stocks emulator (not started: ``await server.start()`` or ``async with``).

    Args:
        host, port: where to listen; port 0 picks a free port (``server.port``).
        key: the one API key accepted.
        symbols: the stock tickers traded (no crypto pairs).
        seed, rate: the simulator's seed and quote ticks per second.
        schedule: faults to inject at given seconds after start.
        connection_limit: connections one key may hold open.
        delayed: emulate the 15-minute delayed cluster (no Q, timestamps 15 min old).
        auth_timeout_s: seconds a connection has to authenticate (> 0).

    Raises:
        ValueError: a crypto pair in ``symbols``, a bad ``auth_timeout_s``, or a bad
            simulator setting.
    """
    if any(is_crypto(s) for s in symbols):
        raise ValueError(f"the polygon stocks emulator trades stocks only: {tuple(symbols)}")
    if not auth_timeout_s > 0:
        raise ValueError(f"auth_timeout_s must be > 0: {auth_timeout_s}")
    options = _Options(key=key, delayed=delayed, auth_timeout_s=auth_timeout_s)

    async def handler(server: EmulatorServer, ws: ServerConnection) -> None:
        await _Connection(server, ws, options).run()

    config = SimulatorConfig(symbols=tuple(symbols), seed=seed, rate=rate, source="polygon")
    return EmulatorServer(
        "polygon",
        handler,
        config,
        host=host,
        port=port,
        connection_limit=connection_limit,
        schedule=schedule,
        paths=(STOCKS_PATH,),
    )


@dataclass(frozen=True, slots=True)
class _Options:
    key: str
    delayed: bool
    auth_timeout_s: float


class Subscriptions:
    """One connection's subscriptions: ``EV.SYM`` pairs and ``EV.*`` wildcards."""

    def __init__(self) -> None:
        self.wildcards: set[str] = set()
        self.pairs: set[tuple[str, str]] = set()

    def wants(self, ev: str, symbol: str) -> bool:
        return ev in self.wildcards or (ev, symbol) in self.pairs

    def change(self, params: str, *, subscribe: bool) -> list[Status]:
        """Apply a subscribe or unsubscribe ``params`` list; one status per param."""
        replies = []
        verb = "subscribed" if subscribe else "unsubscribed"
        for param in (p.strip() for p in params.split(",")):
            if not param:
                continue
            ev, _, symbol = param.partition(".")
            if not ev or not symbol:
                replies.append(Status(status="error", message=f"invalid subscription: {param}"))
                continue
            target: set[Any] = self.wildcards if symbol == "*" else self.pairs
            item: Any = ev if symbol == "*" else (ev, symbol)
            if subscribe:
                target.add(item)
            else:
                target.discard(item)
            replies.append(Status(status="success", message=f"{verb} to: {param}"))
        return replies


class _Window:
    """One symbol's aggregation state: the open second, the minute, the day."""

    __slots__ = (
        "close",
        "count",
        "day",
        "day_notional",
        "day_open",
        "day_volume",
        "high",
        "low",
        "minute_count",
        "minute_notional",
        "minute_volume",
        "notional",
        "open",
        "second",
        "sequence",
        "session_volume",
        "volume",
    )

    def __init__(self) -> None:
        self.sequence = 0
        self.session_volume = 0.0
        self.day = -1
        self.day_open = self.day_notional = self.day_volume = 0.0
        self.minute_count = 0
        self.minute_notional = self.minute_volume = 0.0
        self.second = 0  # start of the open second; count 0 means none is open
        self.count = 0
        self.open = self.high = self.low = self.close = 0.0
        self.notional = self.volume = 0.0


#: ``Tape.convert``'s filter: does the connection want event ``ev`` of ``symbol``?
Wants = Callable[[str, str], bool]


class Tape:
    """Turns simulator events into Polygon messages for one connection. Pure.

    State (per-symbol sequences, the open second of each symbol, minute and day sums)
    is updated for every event; a message is built only when ``wants`` asks for it.
    """

    def __init__(self, *, delayed: bool = False) -> None:
        self._shift_s = DELAY_S if delayed else 0
        self._quotes = not delayed
        self._windows: dict[str, _Window] = {}
        self._next_close = math.inf

    def _ms(self, ts: float) -> int:
        return round((ts - self._shift_s) * 1000)

    def _window(self, symbol: str) -> _Window:
        window = self._windows.get(symbol)
        if window is None:
            window = self._windows[symbol] = _Window()
        return window

    def convert(self, events: Sequence[MarketEvent], wants: Wants) -> list[Message]:
        """The messages ``wants`` asks for, in market order."""
        out: list[Message] = []
        for event in events:
            # Time as the wire shows it (whole ms), so that a second's aggregate holds
            # exactly the trades whose sent timestamps fall in that second.
            ts = round(event.ts * 1000) / 1000
            if ts >= self._next_close:
                self._close_seconds(ts, wants, out)
            if type(event) is BookUpdate:
                self._window(event.symbol).sequence = event.sequence
            elif type(event) is Trade:
                self._trade(event, wants, out)
            elif type(event) is Quote:
                window = self._window(event.symbol)
                window.session_volume = event.volume
                if self._quotes and wants("Q", event.symbol):
                    out.append(self._quote(event, window))
            elif type(event) is Bar and event.interval_s == 60:
                self._minute(event, wants, out)
        return out

    def _trade(self, trade: Trade, wants: Wants, out: list[Message]) -> None:
        window = self._window(trade.symbol)
        price, size = trade.price, trade.size
        day = int(trade.ts // _DAY_S)
        if day != window.day:
            window.day, window.day_open = day, price
            window.day_notional = window.day_volume = 0.0
        window.day_notional += price * size
        window.day_volume += size
        window.minute_count += 1
        window.minute_notional += price * size
        window.minute_volume += size
        # The second of the trade's wire timestamp (whole ms): a trade at S + 0.9996 s is
        # sent as S + 1.000 and belongs to the next second's aggregate, as on Polygon.
        second = round(trade.ts * 1000) // 1000
        if window.count == 0:
            window.second, window.count = second, 1
            window.open = window.high = window.low = price
            window.notional, window.volume = price * size, size
            self._next_close = min(self._next_close, second + 1)
        else:
            window.count += 1
            window.high = max(window.high, price)
            window.low = min(window.low, price)
            window.notional += price * size
            window.volume += size
        window.close = price
        if wants("T", trade.symbol):
            n = int(trade.trade_id) if trade.trade_id.isdigit() else window.sequence
            out.append(
                TradeEvent(
                    sym=trade.symbol,
                    i=trade.trade_id or str(n),
                    x=_EXCHANGES[n % len(_EXCHANGES)],
                    p=price,
                    s=round(size),
                    c=[_ODD_LOT] if size < _ROUND_LOT else None,
                    t=self._ms(trade.ts),
                    q=2 * window.sequence,
                    z=_TAPES.get(trade.symbol, 3),
                )
            )

    def _quote(self, quote: Quote, window: _Window) -> QuoteEvent:
        n = window.sequence
        return QuoteEvent(
            sym=quote.symbol,
            bx=_EXCHANGES[n % len(_EXCHANGES)],
            bp=quote.bid,
            bs=round(quote.bid_size / _ROUND_LOT),
            ax=_EXCHANGES[(n + 1) % len(_EXCHANGES)],
            ap=quote.ask,
            as_=round(quote.ask_size / _ROUND_LOT),
            c=0,
            i=[],
            t=self._ms(quote.ts),
            q=2 * n + 1,
            z=_TAPES.get(quote.symbol, 3),
        )

    def _close_seconds(self, now: float, wants: Wants, out: list[Message]) -> None:
        """Emit the A of every open second that ended at or before ``now``."""
        next_close = math.inf
        for symbol, w in self._windows.items():
            if not w.count:
                continue
            if w.second + 1 > now:
                next_close = min(next_close, w.second + 1)
                continue
            if wants("A", symbol):
                out.append(
                    SecondAgg(
                        sym=symbol,
                        v=round(w.volume),
                        av=round(w.session_volume),
                        op=w.day_open,
                        vw=round(w.notional / w.volume, 4),
                        o=w.open,
                        c=w.close,
                        h=w.high,
                        l=w.low,
                        a=round(w.day_notional / w.day_volume, 4),
                        z=round(w.volume / w.count),
                        s=self._ms(w.second),
                        e=self._ms(w.second + 1),
                    )
                )
            w.count = 0
        self._next_close = next_close

    def _minute(self, bar: Bar, wants: Wants, out: list[Message]) -> None:
        w = self._window(bar.symbol)
        if wants("AM", bar.symbol):
            seen = w.minute_volume
            out.append(
                MinuteAgg(
                    sym=bar.symbol,
                    v=round(bar.volume),
                    av=round(w.session_volume),
                    op=w.day_open or bar.open,
                    vw=round(w.minute_notional / seen, 4) if seen else bar.close,
                    o=bar.open,
                    c=bar.close,
                    h=bar.high,
                    l=bar.low,
                    a=round(w.day_notional / w.day_volume, 4) if w.day_volume else bar.close,
                    z=round(bar.volume / w.minute_count) if w.minute_count else round(bar.volume),
                    s=self._ms(bar.start),
                    e=self._ms(bar.ts),
                )
            )
        w.minute_count = 0
        w.minute_notional = w.minute_volume = 0.0


def _malformed(symbol: str, now: float) -> msgspec.Raw:
    """A T item without its price: valid JSON, invalid Polygon."""
    item = {"ev": "T", "sym": symbol, "i": "malformed", "x": 4, "s": 100, "t": round(now * 1000)}
    return msgspec.Raw(msgspec.json.encode(item))


class _Connection:
    """One client's session: handshake, then a reader and a data pump side by side."""

    def __init__(self, server: EmulatorServer, ws: ServerConnection, options: _Options) -> None:
        self.server = server
        self.ws = ws
        self.options = options
        self.subscriptions = Subscriptions()

    async def send(self, messages: Sequence[Message | msgspec.Raw]) -> None:
        await self.ws.send(_encode(messages), text=True)

    async def refuse(self, status: Status) -> None:
        await self.send([status])
        await self.ws.close(CLOSE_REFUSED, status.status)

    async def run(self) -> None:
        key = self.options.key
        try:
            await self.send([CONNECTED])
            if not await self._authenticate():
                return
            if not self.server.claim(key):
                await self.refuse(MAX_CONNECTIONS)
                return
            try:
                await self.send([AUTH_SUCCESS])
                await self._stream()
            finally:
                self.server.release(key)
        except ConnectionClosed:
            pass

    async def _authenticate(self) -> bool:
        """Wait for a valid auth message; False when the connection was refused."""
        try:
            async with asyncio.timeout(self.options.auth_timeout_s):
                while True:
                    action = _action(await self.ws.recv())
                    if action is None:
                        await self.send([Status(status="error", message="invalid message")])
                    elif action.action != "auth":
                        await self.send([Status(status="error", message="not authenticated")])
                    elif action.params == self.options.key:
                        return True
                    else:
                        await self.refuse(AUTH_FAILED)
                        return False
        except TimeoutError:
            await self.refuse(AUTH_TIMEOUT)
            return False

    async def _stream(self) -> None:
        reader = asyncio.create_task(self._read(), name="polygon-emulator-read")
        pump = asyncio.create_task(self._pump(), name="polygon-emulator-pump")
        try:
            done, _ = await asyncio.wait((reader, pump), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, pump):
                task.cancel()
            await asyncio.gather(reader, pump, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, ConnectionClosed):
                raise exc

    async def _read(self) -> None:
        async for data in self.ws:
            action = _action(data)
            if action is None:
                replies = [Status(status="error", message="invalid message")]
            elif action.action in ("subscribe", "unsubscribe"):
                subscribe = action.action == "subscribe"
                replies = self.subscriptions.change(action.params, subscribe=subscribe)
            elif action.action == "auth":
                replies = [Status(status="error", message="already authenticated")]
            else:
                replies = [Status(status="error", message=f"unknown action: {action.action}")]
            for reply in replies:
                await self.send([reply])

    async def _pump(self) -> None:
        faults = self.server.faults
        seen = dict(faults.generation)  # faults injected before this connection: not ours
        tape = Tape(delayed=self.options.delayed)
        wants = self.subscriptions.wants

        def nothing(ev: str, symbol: str) -> bool:
            return False

        with self.server.market.feed() as feed:
            while True:
                events = await feed.get()
                if feed.overflowed or faults.pending(Fault.SLOW, seen):
                    await self._kill_slow()
                    return
                now = time.time()
                silent = faults.silent(now)
                messages: list[Any] = tape.convert(events, nothing if silent else wants)
                if not messages:
                    continue
                if faults.pending(Fault.MALFORMED, seen):
                    messages.insert(0, _malformed(messages[0].sym, now))
                try:
                    async with asyncio.timeout(SEND_TIMEOUT_S):
                        for start in range(0, len(messages), MAX_MESSAGES_PER_FRAME):
                            await self.send(messages[start : start + MAX_MESSAGES_PER_FRAME])
                except TimeoutError:
                    await self._kill_slow()
                    return

    async def _kill_slow(self) -> None:
        log.warning("polygon emulator: slow consumer", extra={"remote": self.ws.remote_address})
        try:
            async with asyncio.timeout(KILL_TIMEOUT_S):
                await self.send([SLOW_CONSUMER])
                await self.ws.close(1000, "slow consumer")
        except TimeoutError:
            self.ws.transport.abort()


def _action(data: str | bytes) -> Action | None:
    try:
        return _decode_action(data)
    except msgspec.DecodeError:
        return None
