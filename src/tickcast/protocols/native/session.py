"""The Front 1 session: the market-feed protocol as a sans-I/O state machine.

Rules: pure; a ``protocols.base.Session``. ``receive_text(data, now)`` parses one client
message; replies (subscribed, unsubscribed, pong, error) are collected for
``frames_to_send()`` and the subscription changes, as ``protocols.base`` commands, for
``commands_received()``, which the driver applies to the hub. The front answers a resume
it cannot replay with ``answer(ResumeGap)``, and the session writes the ``reset``. Time
is passed in as ``now`` (a ``tickcast.clock.Now``): its monotonic ``mono`` for the
deadlines (idle timeout, heartbeats), its ``wall`` for the timestamps replies carry.
Every malformed message gets ``{"type": "error", "message": ...}`` and leaves the
session usable.

Client messages (Front 1, docs/market-feed.md, plus opt-in extensions)::

    {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes", "trades"],
     "resume": {"trades.AAPL": {"epoch": "18bcfe5682a1b2c3", "seq": 41}}}
    ("resume": {"trades.AAPL": 41}, a bare seq, means a seq in the current epoch)
    {"action": "subscribe", "symbols": ["AAPL"], "max_rate": 4}
    {"action": "unsubscribe", "symbols": ["AAPL"], "channels": ["trades"]}
    {"action": "ping"}

The ``signals`` channel carries the trading signals of the symbols named (reliable,
resumable like trades; no current value on subscribe: a signal is an event). Its symbols
need not be in the feed's universe (an outside producer may signal any instrument); they
must only be well formed.

``max_rate`` (messages per second per topic, 0.001 <= max_rate <= 1000; absent or null: no
limit) is the rate of every topic the request names, new or held (a later subscribe
replaces it; unsubscribing forgets it), carried in ``Subscribe.max_rate``, with the held
topics whose rate it changes in ``Subscribe.restated``, and echoed in the
``subscribed`` reply. The front applies it to quotes (always the latest value);
trades, bars, book, status and signals are never held back by it. A bad value refuses
the whole request, as any malformed one does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple, TypeGuard
from urllib.parse import parse_qsl

import msgspec

from tickcast.auth.limits import SUBSCRIPTION_CAP_MESSAGE, SubscriptionCap
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.errors import InvalidMessage, LimitExceeded
from tickcast.model.envelope import ResumePoint
from tickcast.model.market import FEED
from tickcast.model.topic import MARKET_CHANNELS, Channel, Topic
from tickcast.protocols.base import (
    MAX_RATE,
    MIN_RATE,
    Command,
    Refused,
    Reply,
    ResumeGap,
    Subscribe,
    Unsubscribe,
    cap_of,
)
from tickcast.protocols.maxrate import RULE as RATE_RULE
from tickcast.protocols.native import codec
from tickcast.protocols.native.stamps import wire as stamps_wire
from tickcast.protocols.wire import Encoded

#: A symbol: letters, digits and . / - : _ , 1 to 32 characters (``BTC/USDT``, ``BRK.B``).
#: Every malformed request's error starts with the original server's exact text; the
#: detail follows after ": ", so clients that match the original text keep working.
INVALID = "Invalid subscription request"
SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9./:_-]{0,31}")
DEFAULT_CHANNELS = (Channel.QUOTES,)
#: Channels a client may name: the market's and the trading signals.
CHANNELS: Final = (*MARKET_CHANNELS, Channel.SIGNALS)
#: Channels whose symbols must be in the feed's universe (``is_known``).
UNIVERSE_CHANNELS: Final = frozenset(MARKET_CHANNELS) - {Channel.STATUS}
MAX_HEARTBEAT_S = 3600.0
#: The refusal of a subscription over the cap, ``{max}`` standing for the cap.
CAP_MESSAGE: Final = SUBSCRIPTION_CAP_MESSAGE


def subscription_cap(max_subscriptions: int) -> SubscriptionCap:
    """The subscription cap in this protocol's words (the front's wording, pinned)."""
    return SubscriptionCap(max_subscriptions, CAP_MESSAGE)


class Options(NamedTuple):
    """Per-connection options, from the WebSocket URL's query string.

    Attributes:
        seq: ``seq=1`` adds ``topic`` and ``seq`` to every data message.
        array: ``frames=array`` sends each batch of data messages as one JSON array.
        heartbeat_s: ``heartbeat=N`` sends ``{"type": "heartbeat"}`` every N seconds
            (1 to 3600); 0 (the default) sends none.
        stamps: ``stamps=1`` adds the latency stamps (``protocols/native/stamps.py``)
            to every data message: a wire of its own, completed at write time.
    """

    seq: bool = False
    array: bool = False
    heartbeat_s: float = 0.0
    stamps: bool = False

    @property
    def wire(self) -> str:
        return stamps_wire(seq=self.seq, stamps=self.stamps)


def parse_options(query: str) -> tuple[Options, list[str]]:
    """Options from a query string, and an error message per option that was refused."""
    seq, array, heartbeat_s, stamps = False, False, 0.0, False
    errors: list[str] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "seq":
            if value not in ("0", "1", "true", "false"):
                errors.append("option seq must be 0 or 1")
            seq = value in ("1", "true")
        elif name == "stamps":
            if value not in ("0", "1", "true", "false"):
                errors.append("option stamps must be 0 or 1")
            stamps = value in ("1", "true")
        elif name == "frames":
            if value not in ("single", "array"):
                errors.append("option frames must be 'single' or 'array'")
            array = value == "array"
        elif name == "heartbeat":
            try:
                heartbeat_s = float(value)
            except ValueError:
                heartbeat_s = -1.0
            if heartbeat_s != 0 and not 1 <= heartbeat_s <= MAX_HEARTBEAT_S:
                errors.append("option heartbeat must be 0 or 1 to 3600 seconds")
                heartbeat_s = 0.0
    return Options(seq, array, heartbeat_s, stamps), errors


_DEFAULT_OPTIONS = Options()


_decode = msgspec.json.Decoder().decode


class MarketFeedSession:
    """One client's protocol state.

    Args:
        is_known: whether a symbol can be served (validation against the universe).
        cap: topics (symbol x channel) one connection may hold, and the refusal's
            wording (``subscription_cap``).
        max_subscriptions: instead of ``cap``: the cap in this protocol's words.
        now: the time of the connect (the idle and heartbeat clocks start at ``now.mono``).
        options: from the URL (see ``Options``).
        idle_timeout_s: close with 3008 when the client sends nothing for this long;
            0 disables it.
        position: a topic's current ``(epoch, seq)`` (the hub's). With ``seq=1``, the
            ``subscribed`` reply then carries the position of every topic the request
            adds, so a client can resume a topic that has delivered nothing yet. The
            front applies the subscription in the same pass, before anything else is
            published, so updates after that seq are exactly what the client gets.
    """

    __slots__ = (
        "_commands",
        "_frames",
        "_last_received",
        "_next_heartbeat",
        "_rates",
        "cap",
        "close_reason",
        "idle_timeout_s",
        "is_known",
        "options",
        "position",
        "topics",
    )

    def __init__(
        self,
        *,
        is_known: Callable[[str], bool],
        now: Now,
        cap: SubscriptionCap | None = None,
        max_subscriptions: int | None = None,
        options: Options = _DEFAULT_OPTIONS,
        idle_timeout_s: float = 0.0,
        position: Callable[[Topic], tuple[str, int] | None] | None = None,
    ) -> None:
        self.is_known = is_known
        self.cap = cap_of(cap, max_subscriptions, CAP_MESSAGE)
        self.options = options
        self.idle_timeout_s = idle_timeout_s
        self.position = position
        self.topics: set[Topic] = set()
        self.close_reason: CloseCode | None = None
        self._frames: list[Encoded] = []
        self._commands: list[Command] = []
        # topic -> its max_rate (only rated topics; what the front was told)
        self._rates: dict[Topic, float] = {}
        # monotonic seconds
        self._last_received = now.mono
        self._next_heartbeat = now.mono + options.heartbeat_s if options.heartbeat_s else None

    # -- sans-I/O surface

    def receive_text(self, data: str, now: Now) -> None:
        """Handle one text message from the client."""
        self._last_received = now.mono
        try:
            self._handle(data, now)
        except InvalidMessage as exc:
            self.send_error(f"{INVALID}: {exc}", now)
        except LimitExceeded as exc:
            self.send_error(str(exc), now)

    def receive_bytes(self, data: bytes, now: Now) -> None:
        self._last_received = now.mono
        self.send_error(f"{INVALID}: binary frames are not supported; send JSON text", now)

    def handle_timer(self, now: Now) -> None:
        mono = now.mono
        if self.idle_timeout_s and mono >= self._last_received + self.idle_timeout_s:
            self.close_reason = CloseCode.IDLE_TIMEOUT
            return
        if self._next_heartbeat is not None and mono >= self._next_heartbeat:
            self._frames.append(Encoded(codec.control("heartbeat", now.wall), control=True))
            self._next_heartbeat = mono + self.options.heartbeat_s

    def next_deadline(self) -> float | None:
        deadlines = [
            d
            for d in (
                self._last_received + self.idle_timeout_s if self.idle_timeout_s else None,
                self._next_heartbeat,
            )
            if d is not None
        ]
        return min(deadlines) if deadlines else None

    def frames_to_send(self) -> list[Encoded]:
        frames, self._frames = self._frames, []
        return frames

    def commands_received(self) -> list[Command]:
        commands, self._commands = self._commands, []
        return commands

    def send_error(self, message: str, now: Now) -> None:
        """Queue ``{"type": "error", "message": ...}`` (the wire carries no time)."""
        self._frames.append(Encoded(codec.error(message), control=True))

    def answer(self, reply: Reply, now: Now) -> None:
        """A ``ResumeGap`` becomes a ``reset`` (the front queues the snapshot after it);
        a ``Refused`` is an error and a close. The market feed never asks to
        authenticate, so an ``Authenticated`` changes nothing."""
        if isinstance(reply, ResumeGap):
            self._frames.append(_reset(reply))
        elif isinstance(reply, Refused):
            self.send_error(reply.message, now)
            self.close_reason = reply.code

    def release(self, topics: Iterable[Topic]) -> None:
        topics = tuple(topics)
        self.topics.difference_update(topics)
        if self._rates:
            for topic in topics:
                self._rates.pop(topic, None)

    def send_control(self, type_: str, now: Now, **fields: Any) -> None:
        self._frames.append(Encoded(codec.control(type_, now.wall, **fields), control=True))

    # -- message handling

    def _handle(self, data: str, now: Now) -> None:
        try:
            message = _decode(data)
        except (msgspec.DecodeError, RecursionError):  # RecursionError: absurd nesting
            raise InvalidMessage("invalid JSON") from None
        if not isinstance(message, dict):
            raise InvalidMessage("expected a JSON object")
        action = message.get("action")
        if action == "ping":
            self.send_control("pong", now)
        elif action == "subscribe":
            self._subscribe(message)
        elif action == "unsubscribe":
            self._unsubscribe(message)
        elif action is None:
            raise InvalidMessage("missing 'action'")
        else:
            raise InvalidMessage(f"unknown action {str(action)[:40]!r}")

    def _symbols(self, message: dict[str, Any]) -> list[str]:
        symbols = message.get("symbols")
        if not isinstance(symbols, list) or not symbols:
            raise InvalidMessage("'symbols' must be a non-empty list of strings")
        result: dict[str, None] = {}  # in order, once each (a list lookup is quadratic)
        for symbol in symbols:
            if not isinstance(symbol, str):
                raise InvalidMessage("'symbols' must be a non-empty list of strings")
            symbol = symbol.strip().upper()
            if not SYMBOL_RE.fullmatch(symbol):
                raise InvalidMessage(f"invalid symbol {symbol[:40]!r}")
            result[symbol] = None
        return list(result)

    @staticmethod
    def _channels(message: dict[str, Any]) -> tuple[Channel, ...]:
        channels = message.get("channels")
        if channels is None:
            return DEFAULT_CHANNELS
        if not isinstance(channels, list) or not channels:
            raise InvalidMessage("'channels' must be a non-empty list")
        try:
            chosen = tuple(dict.fromkeys(Channel(c) for c in channels))
        except (ValueError, TypeError):
            chosen = ()
        if not chosen or any(c not in CHANNELS for c in chosen):
            names = ", ".join(c.value for c in CHANNELS)
            raise InvalidMessage(f"unknown channel: choose from {names}")
        return chosen

    def _subscribe(self, message: dict[str, Any]) -> None:
        symbols = self._symbols(message)
        channels = self._channels(message)
        # a signal's symbol need not be the feed's; a market channel's must be
        universe = not UNIVERSE_CHANNELS.isdisjoint(channels)
        unknown = [s for s in symbols if universe and s != FEED and not self.is_known(s)]
        if unknown:
            raise InvalidMessage(f"unknown symbol: {', '.join(unknown[:10])}")
        # The status channel has one stream, FEED, which carries nothing else.
        wanted = [
            Topic(c, s) for s in symbols for c in channels if (c is Channel.STATUS) == (s == FEED)
        ]
        if {t.symbol for t in wanted} != set(symbols):
            raise InvalidMessage("the status channel has one symbol, FEED")
        new = [t for t in wanted if t not in self.topics]
        self.cap.check(len(self.topics), len(new))  # all or nothing
        # Resume applies to topics this request adds; an existing subscription is live.
        resume = {t: s for t, s in self._resume(message, set(wanted)).items() if t in new}
        max_rate = _max_rate(message)
        rates = self._rates
        # held topics named again whose rate this request changes (the front resets them)
        restated = tuple(t for t in wanted if t in self.topics and rates.get(t) != max_rate)
        self.topics.update(new)
        if max_rate is None:
            for t in restated:
                del rates[t]
        else:
            rates.update(dict.fromkeys((*new, *restated), max_rate))
        fields: dict[str, Any] = {"symbols": symbols}
        if max_rate is not None:
            fields["max_rate"] = message["max_rate"]  # echoed as sent (4, not 4.0)
        if self.options.seq and self.position is not None:  # opt-in: the seq=1 wire only
            where = self.position
            # a topic whose position this node cannot know yet (it joined a numbering
            # under way) is left out: its first message says where it is
            fields["positions"] = {
                str(t): {"epoch": p[0], "seq": p[1]} for t in new if (p := where(t)) is not None
            }
        self._frames.append(Encoded(codec.control("subscribed", 0, **fields), control=True))
        self._commands.append(Subscribe(tuple(new), resume, max_rate, restated))

    @staticmethod
    def _resume(message: dict[str, Any], wanted: set[Topic]) -> dict[Topic, ResumePoint]:
        raw = message.get("resume")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise InvalidMessage("'resume' must map topics to seq numbers")
        resume: dict[Topic, ResumePoint] = {}
        for name, position in raw.items():
            try:
                topic = Topic.parse(name)
                topic = Topic(topic.channel, topic.symbol.upper())
            except ValueError:
                raise InvalidMessage(f"invalid resume topic {str(name)[:40]!r}") from None
            if topic not in wanted:
                raise InvalidMessage(f"resume topic {topic} is not in this subscription")
            if isinstance(position, dict):
                resume[topic] = _position(topic, position)
            elif _is_seq(position):
                resume[topic] = ResumePoint(position)  # the current epoch, as before epochs
            else:
                raise InvalidMessage(f"invalid resume seq for {topic}: must be an integer >= 0")
        return resume

    def _unsubscribe(self, message: dict[str, Any]) -> None:
        symbols = self._symbols(message)
        channels = self._channels(message) if message.get("channels") is not None else CHANNELS
        gone = tuple(t for t in self.topics if t.symbol in symbols and t.channel in channels)
        self.release(gone)
        self._frames.append(
            Encoded(codec.control("unsubscribed", 0, symbols=symbols), control=True)
        )
        self._commands.append(Unsubscribe(gone))


def _max_rate(message: dict[str, Any]) -> float | None:
    """``max_rate``: a number of messages per second in (0, 1000]; None when absent or
    null (no limit)."""
    value = message.get("max_rate")
    if value is None:
        return None
    # NaN and infinities fail the bounds (and JSON carries neither); an int is compared
    # as it is, so one past any float is refused, never converted
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not MIN_RATE <= value <= MAX_RATE
    ):
        raise InvalidMessage(f"'max_rate' must be {RATE_RULE}")
    return float(value)


def _is_seq(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _position(topic: Topic, position: dict[str, Any]) -> ResumePoint:
    """``{"epoch": "<as sent>", "seq": 41}``: a seq in the numbering named by epoch."""
    epoch, seq = position.get("epoch"), position.get("seq")
    if set(position) != {"epoch", "seq"} or not isinstance(epoch, str) or not epoch:
        raise InvalidMessage(
            f"invalid resume position for {topic}: expected "
            '{"epoch": "<as sent>", "seq": <integer >= 0>}'
        )
    if not _is_seq(seq):
        raise InvalidMessage(f"invalid resume position for {topic}: seq must be an integer >= 0")
    return ResumePoint(seq, epoch)


def _reset(gap: ResumeGap) -> Encoded:
    """Tell the client its resume point is gone; a snapshot (if any) follows.

    ``reason`` is ``history_gap`` (not held any more, or not yet) or ``epoch_changed``
    (the point counts in another numbering: the server restarted). A client that resumed
    with an epoch also gets the current ``epoch``; a bare-seq resume gets exactly the
    fields it got before epochs.
    """
    fields: dict[str, object] = {
        "topic": str(gap.topic),
        "seq": gap.latest,
        "requested": gap.requested,
        "reason": gap.reason,
    }
    if gap.epoch is not None:
        fields["epoch"] = gap.epoch
    return Encoded(codec.control("reset", 0, **fields), control=True)
