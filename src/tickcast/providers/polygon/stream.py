"""PolygonProvider: the Polygon.io (Massive) stocks WebSocket as a tickcast Provider.

Rules: this is the Polygon adapter's only I/O. It connects, runs the session's steps,
reads the clock for ``received_at`` and hands what ``parse.py`` made of each frame to
the sink. Parsing and the meaning of status messages (``parse.classify``) stay pure;
back-off, fail-over and staleness belong to the supervisor, which restarts ``run``.

The session (Polygon's stocks WebSocket documentation), each step bounded by
``handshake_timeout_s``::

    S: [{"ev":"status","status":"connected",...}]          -> sink.state("connected")
    C: {"action":"auth","params":"<KEY>"}
    S: [{"ev":"status","status":"auth_success",...}]       -> sink.state("authenticated")
    C: {"action":"subscribe","params":"T.AAPL,Q.AAPL,AM.AAPL,T.MSFT,..."}
    S: one "success" status per param ("subscribed to: T.AAPL")
                                                            -> sink.state("subscribed")
    S: data frames, until the connection ends

Every ``run`` is a fresh connection that subscribes the whole universe again: the
provider keeps no subscription state between runs. Events that arrive while the acks
are still coming are delivered, not held back.

How ``run`` ends (``tickcast.errors``):

- ``UpstreamAuthError``: ``auth_failed``, or any status saying "not authorized" (a plan
  without WebSocket access or without a subscribed channel). Terminal.
- ``UpstreamLimitError``: ``max_connections``, in reply to auth (another connection
  holds the key) or later (a newer connection took our place).
- ``UpstreamError``: ``auth_timeout``, a step that timed out, a status announcing a
  disconnect (``slow_consumer``, ``force_disconnect``), an ``error`` status during the
  handshake, the connection closing for any reason, or no connection at all.

Status messages after the handshake are handled by meaning: the ones above raise,
``error`` is logged and the stream goes on, the rest are ignored. LULD and NOI
messages (valid, but without a normalized shape) are ignored; unparseable items go to
``sink.dead_letter`` and the stream goes on.

Choice: the channels are T (trades), Q (NBBO quotes) and AM (minute bars). A (second
bars) is parsed but not subscribed by default: trades already carry every print, and a
bar a second per symbol would double the upstream load for nothing tickcast serves.
Pass ``channels`` to change that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.uri import parse_uri

from tickcast.config.groups import FeedSettings
from tickcast.errors import ConfigError, UpstreamAuthError, UpstreamError, UpstreamLimitError
from tickcast.model.market import MarketEvent, Quote
from tickcast.providers.base import Provider, Sink
from tickcast.providers.enrich import SessionState
from tickcast.providers.polygon.messages import Action, Status
from tickcast.providers.polygon.parse import StatusKind, classify, parse, subscription_param

log = logging.getLogger("tickcast.providers.polygon")

#: Seconds allowed for each step of the session: the connected status, the reply to
#: auth, all the subscription acks (and for opening the WebSocket itself).
HANDSHAKE_TIMEOUT_S: Final = 10.0
#: WebSocket keepalive: a ping every 10 s; no pong within 10 s closes the connection.
PING_INTERVAL_S: Final = 10.0
PING_TIMEOUT_S: Final = 10.0
#: Seconds to wait for the close handshake when we end the connection.
CLOSE_TIMEOUT_S: Final = 2.0
#: Largest frame accepted, in bytes (a busy second can batch thousands of events).
MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
#: Channels subscribed for every symbol, in this order.
DEFAULT_CHANNELS: Final = ("T", "Q", "AM")
#: Channels this adapter normalizes.
CHANNELS: Final = frozenset({"T", "Q", "A", "AM"})

_encode = msgspec.json.Encoder().encode


class PolygonProvider(Provider):
    """Polygon's stocks stream: trades, NBBO quotes and minute bars for ``symbols``.

    Args:
        url: the stocks endpoint, e.g. ``wss://socket.polygon.io/stocks`` or the delayed
            ``wss://delayed.polygon.io/stocks``.
        api_key: the account's API key (sent in the auth message, never logged).
        symbols: the tickers to subscribe, e.g. ``("AAPL", "MSFT")``; not empty.
        channels: event types subscribed per symbol, among T, Q, A and AM.
        handshake_timeout_s: seconds for each session step (> 0).

    Raises:
        ValueError: an invalid url, an empty key, no symbols, or an unknown channel.
    """

    name = "polygon"

    def __init__(
        self,
        url: str,
        api_key: str,
        symbols: Iterable[str],
        *,
        channels: Sequence[str] = DEFAULT_CHANNELS,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
    ) -> None:
        try:
            parse_uri(url)
        except InvalidURI as exc:
            raise ValueError(f"invalid polygon url {url!r}: {exc}") from exc
        if not api_key:
            raise ValueError("the polygon API key is empty")
        symbols = tuple(dict.fromkeys(symbols))
        if not symbols or any(not s or "/" in s or "," in s for s in symbols):
            raise ValueError(f"polygon needs one or more stock tickers: {symbols!r}")
        unknown = set(channels) - CHANNELS
        if not channels or unknown:
            raise ValueError(f"polygon channels are {sorted(CHANNELS)}: {list(channels)!r}")
        if not handshake_timeout_s > 0:
            raise ValueError(f"handshake_timeout_s must be > 0: {handshake_timeout_s}")
        self._url = url
        self._api_key = api_key
        self._symbols = frozenset(symbols)
        self._params = tuple(f"{ev}.{symbol}" for symbol in symbols for ev in channels)
        self._handshake_timeout_s = handshake_timeout_s
        self._enrich = SessionState()
        self._quotes: dict[str, Quote] = {}

    @classmethod
    def from_settings(cls, settings: FeedSettings) -> PolygonProvider:
        """The provider for the feed's settings group (``settings.upstream``):
        ``polygon_url``, the key, the stock symbols.

        Crypto pairs (symbols with a ``/``) are left to other providers.

        Raises:
            ConfigError: no ``POLYGON_API_KEY`` (or ``MASSIVE_API_KEY``), no stock symbol
                in ``symbols``, or an invalid ``polygon_url``.
        """
        key = settings.polygon_api_key
        if key is None or not key.get_secret_value().strip():
            raise ConfigError(
                "the polygon provider needs an API key: set POLYGON_API_KEY"
                " (or MASSIVE_API_KEY) in the environment"
            )
        stocks = [s for s in settings.symbols if "/" not in s]
        if not stocks:
            raise ConfigError(
                f"the polygon provider serves stocks, and symbols has none: {settings.symbols}"
            )
        try:
            return cls(settings.polygon_url, key.get_secret_value().strip(), stocks)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    @property
    def symbols(self) -> frozenset[str]:
        """The stock tickers subscribed upstream."""
        return self._symbols

    @property
    def params(self) -> tuple[str, ...]:
        """The subscription params sent on every connection ("T.AAPL", "Q.AAPL", ...)."""
        return self._params

    def snapshot(self) -> Sequence[MarketEvent]:
        """The latest quote of every symbol quoted so far (price and volume filled in)."""
        return list(self._quotes.values())

    async def run(self, sink: Sink) -> None:
        """Connect, authenticate, subscribe everything, then stream until the end.

        Raises:
            UpstreamAuthError, UpstreamLimitError, UpstreamError: see the module docstring.
        """
        sink.state("connecting", self._url)
        try:
            async with connect(
                self._url,
                open_timeout=self._handshake_timeout_s,
                ping_interval=PING_INTERVAL_S,
                ping_timeout=PING_TIMEOUT_S,
                close_timeout=CLOSE_TIMEOUT_S,
                max_size=MAX_FRAME_BYTES,
            ) as ws:
                await self._session(ws, sink)
        except UpstreamError:
            raise
        except ConnectionClosed as exc:
            raise UpstreamError(f"polygon closed the connection: {exc}") from exc
        except InvalidStatus as exc:
            status = exc.response.status_code
            text = f"polygon refused the WebSocket upgrade: HTTP {status}"
            if status in (401, 403):
                raise UpstreamAuthError(text) from exc
            if status == 429:
                raise UpstreamLimitError(f"{text} (too many connections)") from exc
            raise UpstreamError(text) from exc
        except TimeoutError as exc:  # before OSError, its base class
            raise UpstreamError(f"polygon: no connection to {self._url} in time") from exc
        except (OSError, WebSocketException) as exc:
            raise UpstreamError(f"cannot connect to polygon at {self._url}: {exc!r}") from exc

    async def _session(self, ws: ClientConnection, sink: Sink) -> None:
        await self._until(ws, sink, "connected status", _is(StatusKind.CONNECTED))
        sink.state("connected", self._url)

        await ws.send(_encode(Action("auth", self._api_key)), text=True)
        await self._until(ws, sink, "reply to auth", _is(StatusKind.AUTHENTICATED))
        sink.state("authenticated")

        pending = set(self._params)

        def acked(kind: StatusKind, status: Status) -> bool:
            if kind is StatusKind.SUBSCRIBED:
                pending.discard(subscription_param(status))
            return not pending

        await ws.send(_encode(Action("subscribe", ",".join(self._params))), text=True)
        await self._until(ws, sink, "subscription acks", acked)
        sink.state("subscribed", f"{len(self._params)} streams")

        while True:
            for status in self._deliver(await ws.recv(), sink):
                kind = classify(status)
                _raise_for(kind, status)
                if kind is StatusKind.ERROR:
                    log.warning(
                        "polygon error status",
                        extra={"status": status.status, "detail": status.message},
                    )

    async def _until(
        self,
        ws: ClientConnection,
        sink: Sink,
        step: str,
        done: Callable[[StatusKind, Status], bool],
    ) -> None:
        """Deliver frames until a status completes the step; raise on error statuses."""
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                while True:
                    complete = False
                    for status in self._deliver(await ws.recv(), sink):
                        kind = classify(status)
                        _raise_for(kind, status)
                        if kind is StatusKind.ERROR:
                            raise UpstreamError(f"polygon error awaiting {step}: {status.message}")
                        complete = done(kind, status) or complete
                    if complete:
                        return
        except TimeoutError:
            raise UpstreamError(
                f"polygon: no {step} within {self._handshake_timeout_s} s"
            ) from None

    def _deliver(self, raw: str | bytes, sink: Sink) -> list[Status]:
        """Parse a frame, send its events and dead letters on; its status messages."""
        received_at = time.time()
        events, controls, errors = parse(raw, received_at)
        for error in errors:
            sink.dead_letter(error.raw, error.error, received_at)
        if events:
            events = self._enrich.apply(events)
            quotes = self._quotes
            for event in events:
                if type(event) is Quote:
                    quotes[event.symbol] = event
            sink(events)
        return [control for control in controls if type(control) is Status]


def _is(wanted: StatusKind) -> Callable[[StatusKind, Status], bool]:
    """A step that completes on a status of kind ``wanted``."""
    return lambda kind, _: kind is wanted


def _raise_for(kind: StatusKind, status: Status) -> None:
    """Raise the UpstreamError a status means, if it means one."""
    if kind is StatusKind.AUTH_FAILED:
        raise UpstreamAuthError(f"polygon refused the API key ({status.status}): {status.message}")
    if kind is StatusKind.LIMIT:
        raise UpstreamLimitError(f"polygon connection limit: {status.message}")
    if kind is StatusKind.AUTH_TIMEOUT:
        raise UpstreamError(f"polygon auth timed out: {status.message}")
    if kind is StatusKind.DISCONNECTED:
        raise UpstreamError(f"polygon is dropping us ({status.status}): {status.message}")
