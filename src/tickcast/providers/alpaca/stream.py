"""AlpacaProvider: the Alpaca market data stream v2 as a tickcast Provider (the I/O).

Rules: this module owns the socket, the clock and the session flow (Alpaca's market-data stream
documentation);
every frame goes through the pure ``parse.parse`` and every vendor message is typed in
``messages.py``. It keeps no subscription state across ``run`` calls: each ``run`` is a
fresh connection that authenticates and subscribes the whole universe again. Back-off,
failover and staleness are the supervisor's business, not this module's.

Session: connect (JSON on the wire: ``Content-Type: application/json``), expect
``[{"T":"success","msg":"connected"}]``, send ``auth``, expect ``authenticated``,
subscribe every channel of the feed for the whole universe, expect the
``subscription`` reply, then stream. Each step has ``handshake_timeout_s``.

How ``run`` ends (the supervisor acts on the class, see ``tickcast.errors``):
    - ``UpstreamAuthError``: error 402 (auth failed), 409 (insufficient subscription:
      the plan lacks this feed), 411 (insufficient scope), or HTTP 401/403 at the upgrade.
    - ``UpstreamLimitError``: 406 (connection limit: another connection uses this key),
      405 (symbol limit), or HTTP 429 at the upgrade.
    - ``UpstreamError``: 404 (auth timeout: our auth was late, which a slow network can
      cause; the credentials are not in question), 407 (slow client), any other error
      code, a handshake step timing out, a refused or closed connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from tickcast import __version__
from tickcast.errors import ConfigError, UpstreamAuthError, UpstreamError, UpstreamLimitError
from tickcast.model.market import MarketEvent, Quote
from tickcast.providers.alpaca import messages as wire
from tickcast.providers.alpaca.parse import parse
from tickcast.providers.base import Parsed, Provider, Sink
from tickcast.providers.enrich import SessionState

if TYPE_CHECKING:
    from tickcast.config.groups import FeedSettings

log = logging.getLogger("tickcast.providers.alpaca")

_C = TypeVar("_C")

USER_AGENT: Final = f"tickcast/{__version__}"
#: The test stream's only symbol (Alpaca's documentation: FAKEPACA on v2/test).
TEST_SYMBOL: Final = "FAKEPACA"
#: Seconds to wait for the server's close frame when we close (then the TCP is cut).
CLOSE_TIMEOUT_S: Final = 2.0
#: Largest frame accepted, in bytes (a crypto book snapshot can be large).
MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024

#: Channels subscribed for the whole universe, per kind of feed.
CHANNELS: Final[dict[str, tuple[str, ...]]] = {
    "stocks": ("trades", "quotes", "bars", "dailyBars", "updatedBars"),
    "crypto": ("trades", "quotes", "bars", "orderbooks"),
    "test": ("trades", "quotes", "bars"),
}

#: Error codes that refuse our credentials or entitlement, and what to do about them.
_AUTH_ERRORS: Final = {
    402: "the key was refused: check ALPACA_API_KEY_ID and ALPACA_API_SECRET_KEY",
    409: "the account's plan does not include this feed (SIP needs a paid plan; try v2/iex)",
    411: "the credentials lack the scope this stream needs",
}
_LIMIT_ERRORS: Final = {
    405: "symbol limit exceeded: subscribe fewer symbols (TICKCAST_SYMBOLS)",
    406: (
        "connection limit exceeded: another connection already uses this key on this "
        "endpoint (Alpaca allows one per account)"
    ),
}
_OTHER_ERRORS: Final = {
    404: "authentication timed out (the auth message did not arrive within 10 s): retried",
    407: "slow client: the server dropped this connection for reading too slowly",
}


def feed_kind(url: str) -> str:
    """``"test"`` for ``/v2/test``, ``"crypto"`` for a crypto path, else ``"stocks"``."""
    path = urlsplit(url).path.rstrip("/")
    if path.endswith("/v2/test"):
        return "test"
    if "crypto" in path:
        return "crypto"
    return "stocks"


def served_symbols(url: str, universe: Sequence[str]) -> frozenset[str]:
    """The symbols the feed at ``url`` serves: FAKEPACA on the test stream, the pairs
    (``BTC/USD``) on a crypto stream, the other symbols on a stock stream."""
    kind = feed_kind(url)
    if kind == "test":
        return frozenset({TEST_SYMBOL})
    if kind == "crypto":
        return frozenset(s for s in universe if "/" in s)
    return frozenset(s for s in universe if "/" not in s)


def upstream_error(error: wire.Error) -> UpstreamError:
    """The exception that an Alpaca ``error`` message means (Alpaca's documented error codes)."""
    text = f"alpaca error {error.code} ({error.msg})"
    if error.code in _AUTH_ERRORS:
        return UpstreamAuthError(f"{text}: {_AUTH_ERRORS[error.code]}")
    if error.code in _LIMIT_ERRORS:
        return UpstreamLimitError(f"{text}: {_LIMIT_ERRORS[error.code]}")
    hint = _OTHER_ERRORS.get(error.code)
    return UpstreamError(f"{text}: {hint}" if hint else text)


def _encode(message: dict[str, Any]) -> str:
    return msgspec.json.encode(message).decode()


class AlpacaProvider(Provider):
    """The Alpaca stock, test or crypto stream, picked by the URL's path.

    Args:
        url: the stream endpoint, feed path included (``wss://.../v2/iex``,
            ``.../v2/sip``, ``.../v2/test``, ``.../v1beta3/crypto/us``).
        key_id, secret: the API key pair.
        symbols: the universe; the feed serves the part it can (``served_symbols``).
        handshake_timeout_s: time allowed for each session step (connect, auth,
            subscribe), in seconds.
        ping_interval_s, ping_timeout_s: WebSocket keepalive, in seconds.

    Raises:
        ValueError: the URL is not ws:// or wss://, or the feed serves none of the symbols.
    """

    name = "alpaca"

    def __init__(
        self,
        url: str,
        key_id: str,
        secret: str,
        symbols: Sequence[str],
        *,
        handshake_timeout_s: float = 10.0,
        ping_interval_s: float = 10.0,
        ping_timeout_s: float = 10.0,
    ) -> None:
        if urlsplit(url).scheme not in ("ws", "wss"):
            raise ValueError(f"alpaca url must be ws:// or wss://: {url!r}")
        self._url = url
        self._key_id = key_id
        self._secret = secret
        self._kind = feed_kind(url)
        self._symbols = served_symbols(url, symbols)
        if not self._symbols:
            raise ValueError(f"the alpaca {self._kind} feed serves none of {list(symbols)}")
        self._timeout_s = handshake_timeout_s
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s
        self._session = SessionState()
        self._quotes: dict[str, Quote] = {}
        self._ws: ClientConnection | None = None

    @classmethod
    def from_settings(cls, settings: FeedSettings) -> AlpacaProvider:
        """The provider for the feed's settings group (``settings.upstream``):
        ``alpaca_url``, ``symbols`` and the credentials from the environment.

        Raises:
            ConfigError: ALPACA_API_KEY_ID or ALPACA_API_SECRET_KEY is missing, the URL
                is invalid, or the feed serves none of ``settings.symbols``.
        """
        key = settings.alpaca_key_id.get_secret_value() if settings.alpaca_key_id else ""
        secret = settings.alpaca_secret_key.get_secret_value() if settings.alpaca_secret_key else ""
        missing = [
            name
            for name, value in (("ALPACA_API_KEY_ID", key), ("ALPACA_API_SECRET_KEY", secret))
            if not value
        ]
        if missing:
            raise ConfigError(
                f"the alpaca provider needs {' and '.join(missing)} in the environment "
                "(an Alpaca API key pair; paper-trading keys work for v2/iex and v2/test)"
            )
        try:
            return cls(settings.alpaca_url, key, secret, settings.symbols)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    @property
    def symbols(self) -> frozenset[str]:
        """The universe this feed serves (all of it is subscribed on every connection)."""
        return self._symbols

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels subscribed for every symbol."""
        return CHANNELS[self._kind]

    def snapshot(self) -> Sequence[MarketEvent]:
        """The latest quote of every symbol seen (price and volume filled)."""
        return list(self._quotes.values())

    async def run(self, sink: Sink) -> None:
        """Connect, authenticate, subscribe everything, then deliver events until the
        connection fails (raises an UpstreamError, see the module docstring)."""
        sink.state("connecting", self._url)
        mine: ClientConnection | None = None
        try:
            async with connect(
                self._url,
                additional_headers={"Content-Type": "application/json"},
                user_agent_header=USER_AGENT,
                open_timeout=self._timeout_s,
                ping_interval=self._ping_interval_s,
                ping_timeout=self._ping_timeout_s,
                max_size=MAX_MESSAGE_BYTES,
                close_timeout=CLOSE_TIMEOUT_S,
            ) as ws:
                await self._start(ws, sink)
                self._ws = mine = ws
                async for message in ws:
                    received_at = time.time()
                    self._handle(parse(message, received_at), received_at, sink)
                raise UpstreamError(
                    f"alpaca closed the connection (code {ws.close_code}, {ws.close_reason!r})"
                )
        except InvalidStatus as exc:
            status = exc.response.status_code
            text = f"alpaca refused the WebSocket upgrade of {self._url} with HTTP {status}"
            if status in (401, 403):
                raise UpstreamAuthError(text) from exc
            if status == 429:
                raise UpstreamLimitError(f"{text} (too many connections)") from exc
            raise UpstreamError(text) from exc
        except ConnectionClosed as exc:
            raise UpstreamError(f"alpaca connection lost: {exc}") from exc
        except TimeoutError as exc:  # before OSError, its base class
            raise UpstreamError(f"alpaca: no connection to {self._url} in time") from exc
        except (OSError, WebSocketException) as exc:
            raise UpstreamError(f"alpaca connection to {self._url} failed: {exc!r}") from exc
        finally:
            if self._ws is mine:  # an overlapping older run must not clear a newer one's
                self._ws = None

    async def resync(self, symbol: str) -> None:
        """Crypto: re-subscribe ``symbol``'s orderbook, so that the server sends a fresh
        ``r: true`` snapshot. A no-op when not streaming or on a stock feed."""
        ws = self._ws
        if ws is None or "orderbooks" not in self.channels or symbol not in self._symbols:
            return
        with contextlib.suppress(ConnectionClosed):  # run() raises for it
            await ws.send(_encode({"action": "unsubscribe", "orderbooks": [symbol]}))
            await ws.send(_encode({"action": "subscribe", "orderbooks": [symbol]}))

    # -- the session

    async def _start(self, ws: ClientConnection, sink: Sink) -> None:
        """The handshake: connected, auth, subscribe (Alpaca's documented session flow)."""
        success = await self._expect(ws, sink, "connected", (wire.Success,))
        if success.msg != "connected":
            raise UpstreamError(f"alpaca: expected 'connected', got {success.msg!r}")
        sink.state("connected", self._url)

        auth = {"action": "auth", "key": self._key_id, "secret": self._secret}
        await ws.send(_encode(auth))
        success = await self._expect(ws, sink, "auth", (wire.Success,))
        if success.msg != "authenticated":
            raise UpstreamError(f"alpaca: expected 'authenticated', got {success.msg!r}")
        sink.state("authenticated")

        symbols = sorted(self._symbols)
        subscribe: dict[str, Any] = {"action": "subscribe"}
        subscribe.update((channel, symbols) for channel in self.channels)
        await ws.send(_encode(subscribe))
        reply = await self._expect(ws, sink, "subscribe", (wire.Subscription,))
        missing = {
            channel: sorted(set(symbols) - set(reply.channel(channel)))
            for channel in self.channels
            if "*" not in reply.channel(channel)
        }
        missing = {channel: names for channel, names in missing.items() if names}
        detail = f"{len(symbols)} symbols x {', '.join(self.channels)}"
        if missing:
            log.warning("alpaca did not subscribe every symbol", extra={"missing": missing})
            detail += f"; not subscribed: {missing}"
        sink.state("subscribed", detail)

    async def _expect(
        self, ws: ClientConnection, sink: Sink, step: str, kinds: tuple[type[_C], ...]
    ) -> _C:
        """Read frames until a control of one of ``kinds`` arrives; raise on an error."""
        try:
            async with asyncio.timeout(self._timeout_s):
                while True:
                    message = await ws.recv()
                    received_at = time.time()
                    parsed = parse(message, received_at)
                    self._deliver(parsed, received_at, sink)
                    for control in parsed.controls:
                        if isinstance(control, wire.Error):
                            raise upstream_error(control)
                        if isinstance(control, kinds):
                            return control
        except TimeoutError:
            raise UpstreamError(f"alpaca: no reply to {step} within {self._timeout_s} s") from None

    def _handle(self, parsed: Parsed, received_at: float, sink: Sink) -> None:
        """One frame while streaming: deliver it, then act on its controls."""
        self._deliver(parsed, received_at, sink)
        for control in parsed.controls:
            if isinstance(control, wire.Error):
                if control.code == 403:  # already authenticated: harmless
                    log.warning("alpaca: %s", control.msg)
                    continue
                raise upstream_error(control)
            if isinstance(control, wire.Subscription):
                log.debug("alpaca subscription changed", extra={"orderbooks": control.orderbooks})
            else:
                log.debug("alpaca control", extra={"control": msgspec.structs.asdict(control)})

    def _deliver(self, parsed: Parsed, received_at: float, sink: Sink) -> None:
        for error in parsed.errors:
            sink.dead_letter(error.raw, error.error, received_at)
        if parsed.events:
            events = self._session.apply(parsed.events)
            quotes = self._quotes
            for event in events:
                if type(event) is Quote:
                    quotes[event.symbol] = event
            sink(events)
