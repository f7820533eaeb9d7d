"""The Socket.IO session of Front 5: a client's events in, the core's commands out.

Rules: pure (no clock, no I/O). python-socketio decodes Engine.IO and Socket.IO; the
front hands each event to the session as the JSON array Socket.IO carries it in
(``["subscribe", {...}]``), so this module sees the same text a client sent and decides
everything about it. It holds no topics of its own making: it asks the front through
typed commands (``protocols.base``), and replies with events built by ``codec``.

On opening it says ``welcome`` and holds the ``signals`` and ``signal_status`` channels
channel-wide (every symbol, every worker): the seed's behaviour.

Events a client may emit (anything else: an ``error`` event, the client stays):

``subscribe`` ``{"symbols": [...], "channels": [...], "types": [...], "max_rate": N}``
    Replaces what the client receives besides worker statuses (always held).
    ``channels`` (default ``["signals"]``) is any of ``signals`` and ``quotes``;
    ``symbols`` narrows them (``quotes`` needs symbols, each one the feed knows; without
    symbols, ``signals`` is every symbol); ``types`` narrows signals to those strategy
    types (``MA_CROSS``, ``RSI``...; default every type). ``max_rate`` (messages per
    second per symbol, 0.001 <= N <= 1000, as Front 1's; absent or null: no limit) is the
    rate of the selection's quotes, those it held already included (a selection
    replaces the last, its rate too): ``Subscribe.max_rate``, with the quote topics
    kept whose rate changes in ``restated``. Signals are never held back by it.
    Answered by the event ``subscribed`` with the selection (``max_rate`` in it only
    when given, as sent), which is also the acknowledgement when the client asked for
    one. At most ``cap`` topics (symbols x channels).
``unsubscribe`` (no argument)
    Back to the default: every signal, every worker status.

A refused ``subscribe`` changes nothing and is answered ``error`` ``{"message": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any, Final

import msgspec

from tickcast.auth.limits import SubscriptionCap
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.errors import LimitExceeded
from tickcast.model.topic import Channel, Topic
from tickcast.protocols import maxrate
from tickcast.protocols.base import (
    NO_RESUME,
    Command,
    Reply,
    Subscribe,
    SubscribeChannel,
    Unsubscribe,
    UnsubscribeChannel,
)
from tickcast.protocols.socketio import codec
from tickcast.protocols.wire import Encoded

#: The channels a ``subscribe`` may name.
SUBSCRIBABLE: Final = (Channel.SIGNALS, Channel.QUOTES)

#: What every client holds from the start: (channel, channel-wide).
DEFAULT_CHANNELS: Final = (Channel.SIGNALS, Channel.SIGNAL_STATUS)

CAP_MESSAGE: Final = "Too many subscriptions: at most {max} (symbols x channels)"

#: Longest symbol or type name accepted in a ``subscribe``.
MAX_NAME_CHARS: Final = 64

_decoder: Final = msgspec.json.Decoder()


class BadRequest(ValueError):
    """An event the session refuses, with the message the client is told."""


class Selection(msgspec.Struct, frozen=True):
    """What a client chose to receive (the ``subscribed`` event's body; ``max_rate``
    only when given, as the client wrote it: 4, not 4.0)."""

    channels: list[str]
    symbols: list[str] | None = None
    types: list[str] | None = None
    max_rate: int | float | None = None

    def body(self) -> dict[str, Any]:
        """The ``subscribed`` event's body (and the acknowledgement's)."""
        body: dict[str, Any] = msgspec.to_builtins(self)
        if self.max_rate is None:
            del body["max_rate"]  # a selection without a rate is answered as before
        return body


DEFAULT_SELECTION: Final = Selection(channels=[Channel.SIGNALS])


def _names(value: object, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise BadRequest(f"'{field}' must be a non-empty list of strings")
    names: list[str] = []
    for name in value:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise BadRequest(f"'{field}' must hold non-empty strings of at most {MAX_NAME_CHARS}")
        if name not in names:
            names.append(name)
    return names


def parse_selection(args: list[Any], is_known: Callable[[str], bool]) -> Selection:
    """A ``subscribe`` event's argument as a ``Selection``, or ``BadRequest``."""
    if len(args) != 1 or not isinstance(args[0], dict):
        raise BadRequest("subscribe takes one object: {symbols, channels, types}")
    body: dict[str, Any] = args[0]
    unknown = sorted(set(body) - {"symbols", "channels", "types", "max_rate"})
    if unknown:
        raise BadRequest(f"unknown subscribe field(s): {', '.join(unknown)}")
    channels = _names(body.get("channels"), "channels") or [Channel.SIGNALS]
    for channel in channels:
        if channel not in SUBSCRIBABLE:
            raise BadRequest(f"unknown channel {channel!r}: one of {', '.join(SUBSCRIBABLE)}")
    symbols = _names(body.get("symbols"), "symbols")
    types = _names(body.get("types"), "types")
    if Channel.QUOTES in channels:
        if symbols is None:
            raise BadRequest("quotes need symbols")
        unknown_symbols = [s for s in symbols if not is_known(s)]
        if unknown_symbols:
            raise BadRequest(f"unknown symbol(s) for quotes: {', '.join(unknown_symbols)}")
    if types is not None and Channel.SIGNALS not in channels:
        raise BadRequest("types narrow signals: add 'signals' to channels")
    rate = body.get("max_rate")
    try:
        maxrate.from_json(rate)
    except ValueError:
        raise BadRequest(f"'max_rate' must be {maxrate.RULE}") from None
    return Selection(
        channels=[str(c) for c in channels], symbols=symbols, types=types, max_rate=rate
    )


class SocketIOSession:
    """One Socket.IO client's session (see the module docstring).

    Args:
        welcome: the ``welcome`` event's message.
        is_known: whether a symbol is in the feed's universe (quotes only: signals may
            name instruments the feed does not carry).
        cap: the subscription cap.
    """

    def __init__(
        self, *, welcome: str, is_known: Callable[[str], bool], cap: SubscriptionCap
    ) -> None:
        self.close_reason: CloseCode | None = None
        self.is_known = is_known
        self.cap = cap
        self.selection = DEFAULT_SELECTION
        #: The reply to the last event handled (the Socket.IO acknowledgement's body).
        self.ack: dict[str, Any] | None = None
        self._held: set[Topic] = set()
        self._signals_wide = True
        self._frames: list[Encoded] = [codec.control(codec.WELCOME, message=welcome)]
        self._commands: list[Command] = [SubscribeChannel(c) for c in DEFAULT_CHANNELS]

    # -- Session

    @property
    def topics(self) -> Collection[Topic]:
        return self._held

    @property
    def types(self) -> frozenset[str] | None:
        """The signal types this client narrowed to (None: every type)."""
        types = self.selection.types
        return None if types is None else frozenset(types)

    def receive_text(self, data: str, now: Now) -> None:
        self.ack = None
        try:
            name, args = self._event(data)
            if name == "subscribe":
                self._select(parse_selection(args, self.is_known))
            elif name == "unsubscribe":
                self._select(DEFAULT_SELECTION)
            else:
                raise BadRequest(f"unknown event {name!r}")
        except BadRequest as exc:
            self.send_error(str(exc), now)

    def receive_bytes(self, data: bytes, now: Now) -> None:
        self.send_error("binary events are not supported", now)

    def handle_timer(self, now: Now) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None  # Engine.IO keeps the heartbeat

    def frames_to_send(self) -> list[Encoded]:
        frames, self._frames = self._frames, []
        return frames

    def commands_received(self) -> list[Command]:
        commands, self._commands = self._commands, []
        return commands

    def answer(self, reply: Reply, now: Now) -> None:
        pass  # no first-message authentication, no resume by topic: no reply is asked for

    def send_error(self, message: str, now: Now) -> None:
        self.ack = {"error": message}
        self._frames.append(codec.control(codec.ERROR, message=message))

    def release(self, topics: Iterable[Topic]) -> None:
        for topic in topics:
            self._held.discard(topic)

    # -- events

    @staticmethod
    def _event(data: str) -> tuple[str, list[Any]]:
        try:
            decoded = _decoder.decode(data)
        except msgspec.DecodeError:
            raise BadRequest("malformed event") from None
        if not isinstance(decoded, list) or not decoded or not isinstance(decoded[0], str):
            raise BadRequest("malformed event")
        return decoded[0], decoded[1:]

    def _select(self, selection: Selection) -> None:
        wanted = {
            Topic(channel, symbol)
            for channel in selection.channels
            for symbol in selection.symbols or ()
        }
        wide = Channel.SIGNALS in selection.channels and selection.symbols is None
        adding = wanted - self._held
        dropping = self._held - wanted
        rate = maxrate.from_json(selection.max_rate)
        # the topics kept whose rate this selection changes (the front sets it again)
        old_rate = maxrate.from_json(self.selection.max_rate)
        restated = () if rate == old_rate else tuple(sorted(self._held & wanted, key=str))
        try:
            self.cap.check(len(self._held) - len(dropping), len(adding))
        except LimitExceeded as exc:
            raise BadRequest(str(exc)) from None
        commands = self._commands
        if self._signals_wide and not wide:
            commands.append(UnsubscribeChannel(Channel.SIGNALS))
        if dropping:
            commands.append(Unsubscribe(tuple(sorted(dropping, key=str))))
        if wide and not self._signals_wide:
            commands.append(SubscribeChannel(Channel.SIGNALS))
        if adding or restated:
            commands.append(Subscribe(tuple(sorted(adding, key=str)), NO_RESUME, rate, restated))
        self._held = wanted
        self._signals_wide = wide
        self.selection = selection
        body = selection.body()
        self.ack = body
        self._frames.append(codec.control(codec.SUBSCRIBED, **body))
