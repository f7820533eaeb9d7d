"""The Front 2 session: the realtime envelope protocol as a sans-I/O state machine.

Rules: pure; a ``protocols.base.Session``. ``receive_text(data, now)`` handles one client
message; replies are collected for ``frames_to_send()`` and subscription changes and
authentication requests, as ``protocols.base`` commands, for ``commands_received()``,
which the driver (``fronts/realtime.py``) carries out; it answers an ``Authenticate``
with ``answer(Authenticated(...))`` or ``answer(Refused(...))``.
Anything malformed or refused gets ``{"type": "error", "data": {"message": ...}}`` and
leaves the session usable; only a failed or missing authentication (when anonymous
access is off) closes it: 3502 (authentication timeout) or the refusal's own code.

Client messages (Front 2, docs/realtime.md)::

    {"type": "ping", "data": {}}
    {"type": "subscribe_asset", "data": {"symbol": "AAPL"}}
    {"type": "unsubscribe_asset", "data": {"symbol": "AAPL"}}
    {"type": "subscribe_portfolio", "data": {"portfolio_id": 123}}      (owner only)
    {"type": "unsubscribe_portfolio", "data": {"portfolio_id": 123}}
    {"type": "subscribe_positions", "data": {"portfolio_id": 123}}      (owner only)
    {"type": "unsubscribe_positions", "data": {"portfolio_id": 123}}
    {"type": "subscribe_signals", "data": {"symbols": ["AAPL"]}}       (no symbols: all)
    {"type": "unsubscribe_signals", "data": {"symbols": ["AAPL"]}}     (no symbols: all)
    {"type": "subscribe_signal_status", "data": {}}
    {"type": "unsubscribe_signal_status", "data": {}}
    {"type": "auth", "data": {"token": "<JWT or API key>"}}            (first message)

Time is passed in as ``now`` (a ``tickcast.clock.Now``): its monotonic ``mono`` for the
deadlines (authentication and idle timeouts), its ``wall`` for the ``timestamp`` every
reply carries.

Fields are read from ``data``, or from the message itself when a client puts them there.
``subscribe_positions`` (the live positions of a portfolio, ``positions_update``) is an
extension of the original protocol, and so are the trading signals: ``subscribe_signals``
with symbols holds ``signals.<symbol>`` per symbol, without them every signal (a
channel-wide ``SubscribeChannel``, one subscription under the cap); the two forms do not
mix on one connection (an error says to unsubscribe first). ``subscribe_signal_status``
holds every signal worker's status (channel-wide). Signals carry no current value: each
is acknowledged by ``signals_subscribed`` (``signal_status_subscribed``), whose
``symbols`` is null for all; ``unsubscribe_*`` by ``signals_unsubscribed``
(``signal_status_unsubscribed``), idempotent as ``unsubscribe_asset`` is.

``subscribe_asset``, ``subscribe_portfolio`` and ``subscribe_positions`` may carry
``"max_rate": N`` (messages per second, 0.001 <= N <= 1000, as Front 1's; absent or null: no
limit): at most N updates a second of that subscription, always the latest value
(``Subscribe.max_rate``). It applies to the conflated streams (``asset_update``,
``portfolio_update``, ``positions_update``); a portfolio's ``position_update`` events
are reliable and never held back. Subscribing again to a held topic with another rate
(or none) replaces it (``Subscribe.restated``); unsubscribing forgets it. A bad value
is an ``error`` and changes nothing. These subscribes have no acknowledgement, so the
rate is not echoed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qsl

import msgspec

from tickcast.auth.limits import SubscriptionCap
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.errors import InvalidMessage, LimitExceeded
from tickcast.model.topic import Channel, Topic
from tickcast.protocols import maxrate
from tickcast.protocols.base import (
    NO_RESUME,
    Authenticate,
    Authenticated,
    Command,
    Refused,
    Reply,
    Subscribe,
    SubscribeChannel,
    Unsubscribe,
    UnsubscribeChannel,
    cap_of,
)
from tickcast.protocols.envelope import codec
from tickcast.protocols.wire import Encoded

SYMBOL_RE: Final = re.compile(r"[A-Z0-9][A-Z0-9./:_-]{0,31}")
MAX_TOKEN_CHARS: Final = 4096
MAX_PORTFOLIO_ID: Final = 2**63 - 1
#: The refusal of a subscription over the cap, ``{max}`` standing for the cap.
CAP_MESSAGE: Final = "Too many subscriptions: at most {max} per connection"
MAX_RATE_ERROR: Final = f"Invalid request: 'max_rate' must be {maxrate.RULE}"
SYMBOLS_ERROR: Final = (
    "Invalid request: 'symbols' must be a non-empty list of tickers such as 'AAPL'"
)


class Options(NamedTuple):
    """A connection's options, from the URL's query string (``/ws/realtime/?stamps=1``).

    Attributes:
        stamps: ``stamps=1`` adds the latency stamps (``protocols/stamps.py``) to every
            update: the wire ``realtime+stamps``, completed at write time.
    """

    stamps: bool = False

    @property
    def wire(self) -> str:
        return codec.WIRE_STAMPS if self.stamps else codec.WIRE


def parse_options(query: str) -> tuple[Options, list[str]]:
    """Options from a query string (other parameters, such as ``token``, are not
    options), and an error message per option that was refused (its default applies)."""
    stamps = False
    errors: list[str] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "stamps":
            if value not in ("0", "1", "true", "false"):
                errors.append("option stamps must be 0 or 1")
            stamps = value in ("1", "true")
    return Options(stamps), errors


def subscription_cap(max_subscriptions: int) -> SubscriptionCap:
    """The subscription cap in this protocol's words (the front's wording, pinned)."""
    return SubscriptionCap(max_subscriptions, CAP_MESSAGE)


_decode = msgspec.json.Decoder().decode


class RealtimeSession:
    """One client's protocol state.

    Args:
        connection_id: the id announced in the ``connection`` message.
        user_id: the user authenticated at the handshake, or None.
        anonymous_allowed: whether an unauthenticated client may read asset updates;
            when False, it must authenticate by its first message within
            ``auth_timeout_s`` or be closed with 3502 (authentication timeout).
        is_known: whether a symbol exists (the asset table).
        owner_of: the owner of a portfolio id, or None when there is no such portfolio.
        cap: topics per connection, and the refusal's wording (``subscription_cap``).
        max_subscriptions: instead of ``cap``: the cap in this protocol's words.
        now: the time of the connect (the authentication and idle clocks start at
            ``now.mono``; the announcement is stamped ``now.wall``).
        idle_timeout_s: close with 3008 when the client sends nothing for this long
            (0 disables).
    """

    def __init__(
        self,
        *,
        connection_id: str,
        user_id: int | None,
        anonymous_allowed: bool,
        is_known: Callable[[str], bool],
        owner_of: Callable[[int], int | None],
        now: Now,
        cap: SubscriptionCap | None = None,
        max_subscriptions: int | None = None,
        auth_timeout_s: float = 10.0,
        idle_timeout_s: float = 0.0,
    ) -> None:
        self.connection_id = connection_id
        self.user_id = user_id
        self.anonymous_allowed = anonymous_allowed
        self.is_known = is_known
        self.owner_of = owner_of
        self.cap = cap_of(cap, max_subscriptions, CAP_MESSAGE)
        self.idle_timeout_s = idle_timeout_s
        self.topics: set[Topic] = set()
        # topic -> its max_rate (rated topics only: what the front was told)
        self._rates: dict[Topic, float] = {}
        #: the channels held whole, channel-wide (every signal, every worker's status)
        self.whole: set[str] = set()
        self.close_reason: CloseCode | None = None
        self._frames: list[Encoded] = []
        self._commands: list[Command] = []
        # monotonic seconds
        self._last_received = now.mono
        self._auth_pending = False
        self._auth_deadline = (
            now.mono + auth_timeout_s if user_id is None and not anonymous_allowed else None
        )
        self._announce(now)

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    # -- sans-I/O surface

    def receive_text(self, data: str, now: Now) -> None:
        self._last_received = now.mono
        try:
            self._handle(data, now)
        except (InvalidMessage, LimitExceeded) as exc:
            self.send_error(str(exc), now)

    def receive_bytes(self, data: bytes, now: Now) -> None:
        self._last_received = now.mono
        self.send_error("binary frames are not supported; send JSON text", now)

    def frames_to_send(self) -> list[Encoded]:
        frames, self._frames = self._frames, []
        return frames

    def commands_received(self) -> list[Command]:
        commands, self._commands = self._commands, []
        return commands

    def handle_timer(self, now: Now) -> None:
        mono = now.mono
        if self._auth_deadline is not None and mono >= self._auth_deadline:
            self._close(CloseCode.AUTH_TIMEOUT, "authentication timeout", now)
        elif self.idle_timeout_s and mono >= self._last_received + self.idle_timeout_s:
            self.close_reason = CloseCode.IDLE_TIMEOUT

    def next_deadline(self) -> float | None:
        deadlines = [
            d
            for d in (
                self._auth_deadline,
                self._last_received + self.idle_timeout_s if self.idle_timeout_s else None,
            )
            if d is not None
        ]
        return min(deadlines) if deadlines else None

    def send_error(self, message: str, now: Now) -> None:
        self._frames.append(Encoded(codec.error(message, now.wall), control=True))

    def release(self, topics: Iterable[Topic]) -> None:
        topics = tuple(topics)
        self.topics.difference_update(topics)
        if self._rates:
            for topic in topics:
                self._rates.pop(topic, None)

    # -- the driver's answers

    def answer(self, reply: Reply, now: Now) -> None:
        """``Authenticated``: the credentials were good, announce the new state.
        ``Refused``: they were refused (3500, 3501, 3001...) or could not be checked
        (1013 / 1011): say why and close. A ``ResumeGap`` cannot happen: this protocol
        has no resume."""
        if isinstance(reply, Authenticated):
            self.user_id = reply.user_id
            self._auth_pending = False
            self._auth_deadline = None
            self._announce(now)
        elif isinstance(reply, Refused):
            self._auth_pending = False
            self._close(reply.code, reply.message, now)

    # -- message handling

    def _announce(self, now: Now) -> None:
        data = {
            "status": "connected",
            "connection_id": self.connection_id,
            "authenticated": self.authenticated,
            "user_id": self.user_id,
        }
        self._frames.append(Encoded(codec.message("connection", data, now.wall), control=True))

    def _close(self, code: CloseCode, message: str, now: Now) -> None:
        self.send_error(message, now)
        self.close_reason = code

    def _handle(self, data: str, now: Now) -> None:
        try:
            message = _decode(data)
        except (msgspec.DecodeError, RecursionError):
            raise InvalidMessage("Invalid JSON") from None
        if not isinstance(message, dict):
            raise InvalidMessage("Invalid message: expected a JSON object")
        type_ = message.get("type")
        body = message.get("data")
        if body is None:
            body = message
        if not isinstance(body, dict):
            raise InvalidMessage("Invalid message: 'data' must be an object")
        if type_ == "ping":
            self._frames.append(Encoded(codec.message("pong", {}, now.wall), control=True))
        elif type_ == "auth":
            self._auth(body)
        elif type_ in ("subscribe_asset", "unsubscribe_asset"):
            self._asset(type_ == "subscribe_asset", body)
        elif type_ in ("subscribe_portfolio", "unsubscribe_portfolio"):
            self._portfolio(Channel.PORTFOLIO, type_ == "subscribe_portfolio", body)
        elif type_ in ("subscribe_positions", "unsubscribe_positions"):
            self._portfolio(Channel.LIVE_POSITIONS, type_ == "subscribe_positions", body)
        elif type_ == "subscribe_signals":
            self._subscribe_signals(body, now)
        elif type_ == "unsubscribe_signals":
            self._unsubscribe_signals(body, now)
        elif type_ in ("subscribe_signal_status", "unsubscribe_signal_status"):
            self._signal_status(type_ == "subscribe_signal_status", now)
        elif type_ is None:
            raise InvalidMessage("Invalid message: missing 'type'")
        else:
            raise InvalidMessage(f"Unknown message type: {str(type_)[:40]!r}")

    def _auth(self, body: dict[str, Any]) -> None:
        token = body.get("token")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidMessage("Invalid auth message: 'token' must be a non-empty string")
        if self.authenticated or self._auth_pending:
            raise InvalidMessage("Already authenticated")
        self._auth_pending = True
        self._commands.append(Authenticate(token))

    def _require_reader(self) -> None:
        if not self.authenticated and not self.anonymous_allowed:
            raise InvalidMessage("Authentication required")

    def _add(self, topic: Topic, max_rate: float | None = None) -> None:
        """Hold ``topic`` at ``max_rate``; held already, restate its rate if it changed."""
        rates = self._rates
        if topic in self.topics:
            if rates.get(topic) != max_rate:
                self._rate(topic, max_rate)
                self._commands.append(Subscribe((), NO_RESUME, max_rate, (topic,)))
            return
        self.cap.check(len(self.topics) + len(self.whole), 1)
        self.topics.add(topic)
        self._rate(topic, max_rate)
        self._commands.append(Subscribe((topic,), NO_RESUME, max_rate))

    def _rate(self, topic: Topic, max_rate: float | None) -> None:
        if max_rate is None:
            self._rates.pop(topic, None)
        else:
            self._rates[topic] = max_rate

    def _remove(self, topic: Topic) -> None:
        if topic in self.topics:
            self.topics.discard(topic)
            self._rates.pop(topic, None)
            self._commands.append(Unsubscribe((topic,)))

    @staticmethod
    def _max_rate(body: dict[str, Any]) -> float | None:
        try:
            return maxrate.from_json(body.get("max_rate"))
        except ValueError:
            raise InvalidMessage(MAX_RATE_ERROR) from None

    def _asset(self, subscribe: bool, body: dict[str, Any]) -> None:
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol.strip().upper()):
            raise InvalidMessage("Invalid request: 'symbol' must be a ticker such as 'AAPL'")
        symbol = symbol.strip().upper()
        topic = Topic(Channel.ASSETS, symbol)
        if not subscribe:
            self._remove(topic)
            return
        self._require_reader()
        if not self.is_known(symbol):
            raise InvalidMessage(f"Unknown symbol: {symbol}")
        self._add(topic, self._max_rate(body))

    def _portfolio(self, channel: Channel, subscribe: bool, body: dict[str, Any]) -> None:
        """A portfolio's value (``Channel.PORTFOLIO``) or live positions
        (``Channel.LIVE_POSITIONS``): the same checks, the owner only."""
        raw = body.get("portfolio_id")
        if isinstance(raw, str) and raw.isdigit():
            raw = int(raw)
        if not isinstance(raw, int) or isinstance(raw, bool) or not 0 < raw <= MAX_PORTFOLIO_ID:
            raise InvalidMessage("Invalid request: 'portfolio_id' must be a positive integer")
        topic = Topic(channel, str(raw))
        if not subscribe:
            self._remove(topic)
            return
        if not self.authenticated:
            raise InvalidMessage("Authentication required for portfolio data")
        if self.owner_of(raw) != self.user_id:
            # the same answer whether it does not exist or is someone else's
            raise InvalidMessage(f"Portfolio {raw} not found")
        self._add(topic, self._max_rate(body))

    # -- trading signals (an extension)

    def _reply(self, type_: str, data: dict[str, Any], now: Now) -> None:
        self._frames.append(Encoded(codec.message(type_, data, now.wall), control=True))

    @staticmethod
    def _signal_symbols(body: dict[str, Any]) -> list[str] | None:
        """The ``symbols`` asked for, upper-case and once each; None when absent (all)."""
        raw = body.get("symbols")
        if raw is None:
            return None
        if not isinstance(raw, list) or not raw:
            raise InvalidMessage(SYMBOLS_ERROR)
        symbols: dict[str, None] = {}  # in order, once each (a list lookup is quadratic)
        for symbol in raw:
            if not isinstance(symbol, str):
                raise InvalidMessage(SYMBOLS_ERROR)
            symbol = symbol.strip().upper()
            if not SYMBOL_RE.fullmatch(symbol):
                raise InvalidMessage(SYMBOLS_ERROR)
            symbols[symbol] = None
        return list(symbols)

    def _held_signals(self) -> list[str]:
        return sorted(t.symbol for t in self.topics if t.channel == Channel.SIGNALS)

    def _subscribe_signals(self, body: dict[str, Any], now: Now) -> None:
        """Signals of some symbols (any well-formed symbol: an outside producer may
        signal an instrument the feed does not carry), or all of them."""
        symbols = self._signal_symbols(body)
        self._require_reader()
        if symbols is None:
            held = self._held_signals()
            if held:
                raise InvalidMessage(
                    f"Already subscribed to the signals of {', '.join(held[:10])}: "
                    "send unsubscribe_signals first"
                )
            if Channel.SIGNALS not in self.whole:
                self.cap.check(len(self.topics) + len(self.whole), 1)
                self.whole.add(Channel.SIGNALS)
                self._commands.append(SubscribeChannel(Channel.SIGNALS))
        else:
            if Channel.SIGNALS in self.whole:
                raise InvalidMessage(
                    "Already subscribed to every signal: send unsubscribe_signals first"
                )
            new = [Topic(Channel.SIGNALS, s) for s in symbols]
            new = [t for t in new if t not in self.topics]
            self.cap.check(len(self.topics) + len(self.whole), len(new))  # all or nothing
            self.topics.update(new)
            if new:
                self._commands.append(Subscribe(tuple(new)))
        self._reply("signals_subscribed", {"symbols": symbols}, now)

    def _unsubscribe_signals(self, body: dict[str, Any], now: Now) -> None:
        """Without symbols: every signal subscription; with them, those symbols'."""
        symbols = self._signal_symbols(body)
        if symbols is None:
            if Channel.SIGNALS in self.whole:
                self.whole.discard(Channel.SIGNALS)
                self._commands.append(UnsubscribeChannel(Channel.SIGNALS))
            gone = tuple(t for t in self.topics if t.channel == Channel.SIGNALS)
        else:
            if Channel.SIGNALS in self.whole:
                raise InvalidMessage(
                    "Subscribed to every signal: send unsubscribe_signals without symbols"
                )
            gone = tuple(t for s in symbols if (t := Topic(Channel.SIGNALS, s)) in self.topics)
        if gone:
            self.topics.difference_update(gone)
            self._commands.append(Unsubscribe(gone))
        self._reply("signals_unsubscribed", {"symbols": symbols}, now)

    def _signal_status(self, subscribe: bool, now: Now) -> None:
        """Every signal worker's status (channel-wide)."""
        channel = Channel.SIGNAL_STATUS
        if subscribe:
            self._require_reader()
            if channel not in self.whole:
                self.cap.check(len(self.topics) + len(self.whole), 1)
                self.whole.add(channel)
                self._commands.append(SubscribeChannel(channel))
            self._reply("signal_status_subscribed", {}, now)
        else:
            if channel in self.whole:
                self.whole.discard(channel)
                self._commands.append(UnsubscribeChannel(channel))
            self._reply("signal_status_unsubscribed", {}, now)
