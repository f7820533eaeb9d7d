"""The Front 3 session: STOMP 1.2 (and 1.1, 1.0) as a sans-I/O state machine.

Rules: pure; a ``protocols.base.Session``. ``receive_text`` / ``receive_bytes`` take
whatever the transport delivered (several frames, or part of one: ``frames.FrameParser``
buffers per connection); replies (CONNECTED, RECEIPT, ERROR, heart-beat EOLs) are
collected for ``frames_to_send()`` and subscription changes and credentials, as
``protocols.base`` commands, for ``commands_received()``. Time is passed in as ``now``:
its ``mono`` for every deadline (login timeout, heart-beats); no reply carries a stamp.

The connection, as the session sees it::

    CONNECT | STOMP   the first frame, within login_timeout_s (else ERROR, close 3502);
                      any other first frame: ERROR, close 1002
      version         the highest of 1.0, 1.1, 1.2 both sides accept (no accept-version:
                      1.0); none in common: ERROR with a ``version`` header, close 1002
      heart-beat      client cx,cy vs ours sx,sy (default 10000,10000): we send an EOL
                      every max(sx,cy) ms when both are non-zero; the client is dead
                      after ``tolerance`` (2) x max(cx,sy) ms of silence when both are
                      non-zero: close 3008, no ERROR (nobody would read it). 1.0 has none
      credentials     ``Authorization: Bearer <t>``, else ``passcode``, else ``login``:
                      an ``Authenticate(token)`` for the front, and CONNECTED once it
                      answers ``Authenticated`` (``Refused``: ERROR, close with its
                      code); frames that come meanwhile wait (at most MAX_PENDING). A
                      session whose handshake already authenticated (``user_id``) sends
                      CONNECTED at once; one without credentials, at once too when
                      ``anonymous_allowed``, else ERROR and close 3503
    SUBSCRIBE         ``id`` (unique on the connection) and ``destination`` (the front's
                      ``resolve`` maps it to a Topic, or None: unknown, ERROR); ``ack``
                      auto, client or client-individual; ``resume-seq`` (and optionally
                      ``resume-epoch``): resume from there, as Front 1 does;
                      ``max-rate``: at most that many MESSAGEs a second for this
                      subscription, the latest value (below)
    UNSUBSCRIBE       by ``id`` (an unknown id is an ERROR)
    ACK, NACK         accepted and ignored: the gateway's streams are at-most-once after
                      a connection's outbox (nothing is redelivered, a slow client is
                      closed, never held up), so an acknowledgement has nothing to
                      release; ``ack`` modes other than auto only add the ``ack`` header
                      clients need to send one
    SEND              ERROR, close 1008: clients read, they do not publish
    BEGIN, COMMIT,    ERROR, close 1002 (no transactions: there is nothing to send)
    ABORT
    DISCONNECT        RECEIPT when asked, then close 1000
    receipt           any frame but CONNECT may ask: RECEIPT receipt-id once it is
                      handled (ERROR carries receipt-id instead when it failed)

Every ERROR ends the connection (the specification's rule): a malformed frame or an
undefined escape closes 1002, a frame over ``Limits`` 1009, a refusal (``send_error``:
the front's "not allowed", the rate limit, the subscription cap, an unknown destination,
SEND) 1008. ERROR carries ``message`` (and the text again as its body).

Several subscriptions may name one topic: the front holds the topic once
(``Unsubscribe`` when its last id goes) and gives each subscription its own head
(``subscriptions_for(topic)``; ``Subscription.head_for``) before the shared MESSAGE
payload (``codec.encode``). A resume applies to the SUBSCRIBE that adds the topic;
another id on a topic already held is live from now, and is owed the current value: it
is a ``Subscribe`` of the topic again (the front fetches the current value), and the id
is *fresh* (``take_fresh``) until the front has given it that value alone, never again
to the ids that have it (see ``fronts/stomp.py``).

``max-rate: N`` (a decimal number of messages per second, 0.001 <= N <= 1000, as Front 1's
``max_rate``; a bad value is an ERROR, close 1002, as any bad header) is the rate of that
subscription id alone. The connection keeps each id's MESSAGEs under a conflation key of
their own (the topic's key joined with the id, ``HeadedConnection``), so the rate is
kept per id too: two ids on one destination each get their own rate (or none), never
the other's. The front learns the rates through ``take_rates()`` (each id's rate as it
subscribes, and None as it goes) and applies them to conflatable topics only (quotes):
a reliable destination's MESSAGEs are never held back by a rate. The rate is not part
of ``Subscribe`` (whose rate is per topic, the same for every id).

A destination may name a whole channel: ``resolve`` then gives a topic whose key is
``WHOLE`` (``/topic/signals``: every signal). Such a subscription is a
``SubscribeChannel`` (``UnsubscribeChannel`` when its last id goes), gets no current
value and takes no resume (``resume-seq`` counts per topic: ERROR); it receives every
topic of its channel (``subscriptions_for`` names it for any topic of the channel that
no subscription names by key). One connection reads a channel whole or by key, never
both (the hub holds a channel one way per subscriber): the other kind is an ERROR.

After an UNSUBSCRIBE nothing more goes to its id: ``subscriptions_for`` no longer names
it, and ``forgotten()`` tells the connection (once) that what it queued for a dropped
id must be discarded before its next write.

Until CONNECT has named the version, the parser stops after the CONNECT (or STOMP)
frame: what follows it in the same message is parsed once the version is known (STOMP
1.0 has no header escaping).

A resume the front cannot replay (``answer(ResumeGap)``) becomes, for every
subscription of that topic, a MESSAGE that carries no update but says so
(``codec.reset_payload``), and the current value (if any) follows as an ordinary one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Final

from tickcast.auth.limits import SubscriptionCap
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.errors import LimitExceeded
from tickcast.model.topic import Topic
from tickcast.protocols.base import (
    Authenticate,
    Authenticated,
    Command,
    Refused,
    Reply,
    ResumeGap,
    Subscribe,
    SubscribeChannel,
    Unsubscribe,
    UnsubscribeChannel,
    cap_of,
)
from tickcast.protocols.stomp.codec import reset_payload
from tickcast.protocols.stomp.frames import (
    DEFAULT_LIMITS,
    Frame,
    FrameParser,
    Limits,
    StompFrameError,
    encode_frame,
    error_frame,
    message_head,
)
from tickcast.protocols.stomp.headers import (
    ACK_MODES,
    CAP_MESSAGE,
    MAX_RATE_HEADER,
    VERSIONS,
    WHOLE,
    Fatal,
    Subscription,
    Unreadable,
    check_overlap,
    connect_heartbeats,
    connect_version,
    credentials,
    negotiate_heartbeat,
    negotiate_version,
    read_subscribe,
    resume_point,
    subscription_cap,
    unsubscribe_id,
)
from tickcast.protocols.wire import Encoded

__all__ = [
    "ACK_MODES",
    "CAP_MESSAGE",
    "MAX_RATE_HEADER",
    "VERSIONS",
    "WHOLE",
    "StompSession",
    "Subscription",
    "Unreadable",
    "negotiate_heartbeat",
    "negotiate_version",
    "subscription_cap",
]

#: Frames held while the front checks the credentials.
MAX_PENDING: Final = 32

_HEARTBEAT: Final = b"\n"


class StompSession:
    """One client's STOMP state (see the module docstring).

    Args:
        resolve: a destination's topic, or None when the front serves no such
            destination (the front decides the mapping; ``codec.topic_of`` reads the
            ``/topic/<channel>.<key>`` syntax); it raises ``Unreadable`` for one the
            client may not read.
        now: the time of the connect (the login deadline counts from ``now.mono``).
        session_id: the CONNECTED frame's ``session``.
        user_id: the user the handshake authenticated, or None.
        anonymous_allowed: whether a client without credentials may connect.
        cap: subscriptions (ids) per connection, and the refusal's wording
            (``subscription_cap``).
        max_subscriptions: instead of ``cap``: the cap in this protocol's words.
        heart_beat: ours, ``(sx, sy)`` in ms: the least interval we send at, and the one
            we want to receive at (0: none).
        tolerance: a client silent for ``tolerance`` x the incoming interval is dead.
        login_timeout_s: until CONNECTED (CONNECT and its credentials' check).
        limits: of one client frame.
        server: the CONNECTED frame's ``server`` (``name/version``).
    """

    def __init__(
        self,
        *,
        resolve: Callable[[str], Topic | None],
        now: Now,
        session_id: str = "",
        user_id: int | None = None,
        anonymous_allowed: bool = True,
        cap: SubscriptionCap | None = None,
        max_subscriptions: int | None = None,
        heart_beat: tuple[int, int] = (10_000, 10_000),
        tolerance: float = 2.0,
        login_timeout_s: float = 10.0,
        limits: Limits = DEFAULT_LIMITS,
        server: str = "tickcast",
    ) -> None:
        self.resolve = resolve
        self.session_id = session_id
        self.user_id = user_id
        self.anonymous_allowed = anonymous_allowed
        self.cap = cap_of(cap, max_subscriptions, CAP_MESSAGE)
        self.heart_beat = heart_beat
        self.tolerance = tolerance
        self.server = server
        self.close_reason: CloseCode | None = None
        #: the negotiated version (None until CONNECT)
        self.version: str | None = None
        #: negotiated (outgoing, incoming) heart-beat intervals in ms
        self.heartbeats: tuple[int, int] = (0, 0)
        self.connected = False
        self._parser = FrameParser(limits, hold_after_connect=True)
        self._authenticating = False
        self._pending: list[Frame] = []
        self._subscriptions: dict[str, Subscription] = {}
        # topic -> its subscriptions in SUBSCRIBE order (a tuple: fan-out reads it per update)
        self._by_topic: dict[Topic, tuple[Subscription, ...]] = {}
        # channel -> its channel-wide subscriptions in SUBSCRIBE order
        self._whole: dict[str, tuple[Subscription, ...]] = {}
        # ids that joined a topic already held and still wait for its current value
        self._fresh: dict[Topic, list[str]] = {}
        # a subscription was dropped since the last ``forgotten()``
        self._dropped = False
        #: bumped whenever what ``subscriptions_for`` answers may have changed (a
        #: subscription added or dropped): a front that keeps per-topic plans built
        #: from it (``fronts/stomp.py``) rebuilds them when it moves
        self.changes = 0
        #: called (with nothing) as the subscriptions change, before anything else is
        #: delivered: a front's per-topic plans (``fronts/stomp.py``) are dropped then
        self.on_change: Callable[[], None] | None = None
        # (topic, id, max_rate or None) changes the front has not taken yet (take_rates)
        self._rates: list[tuple[Topic, str, float | None]] = []
        self._frames: list[Encoded] = []
        self._commands: list[Command] = []
        self._resets = 0
        # monotonic seconds
        self._login_deadline: float | None = now.mono + login_timeout_s
        self._last_received = now.mono
        self._next_beat: float | None = None

    # -- what the front reads

    @property
    def topics(self) -> Collection[Topic]:
        """The topics at least one subscription holds."""
        return self._by_topic.keys()

    def subscriptions_for(self, topic: Topic) -> tuple[Subscription, ...]:
        """The subscriptions that receive ``topic``'s MESSAGEs (in SUBSCRIBE order):
        those naming it, else those holding its channel whole."""
        held = self._by_topic.get(topic)
        if held is not None:
            return held
        return self._whole.get(topic.channel, ()) if self._whole else ()

    def subscription(self, id_: str) -> Subscription | None:
        return self._subscriptions.get(id_)

    def _changed(self) -> None:
        self.changes += 1
        if self.on_change is not None:
            self.on_change()

    def has_fresh(self, topic: Topic) -> bool:
        """Whether ids on ``topic`` wait for its current value (``take_fresh``)."""
        return bool(self._fresh) and topic in self._fresh

    def take_fresh(self, topic: Topic) -> tuple[str, ...]:
        """The ids that joined ``topic`` while it was held and have had nothing of it
        yet; they are no longer fresh after this call (the front gives them the next
        item: the current value alone, or a live update with everyone)."""
        if not self._fresh:
            return ()
        return tuple(self._fresh.pop(topic, ()))

    def take_rates(self) -> list[tuple[Topic, str, float | None]]:
        """The rate changes since the last call, in order: ``(topic, id, max_rate)`` for a
        keyed subscription that came with ``max-rate``, ``(topic, id, None)`` for a rated
        one that went (unsubscribed or released)."""
        if not self._rates:
            return []
        rates, self._rates = self._rates, []
        return rates

    def forgotten(self) -> bool:
        """Whether a subscription was dropped since the last call (then the connection
        discards what it queued for a subscription that is gone)."""
        dropped, self._dropped = self._dropped, False
        return dropped

    # -- sans-I/O surface

    def receive_text(self, data: str, now: Now) -> None:
        self._receive(data, now)

    def receive_bytes(self, data: bytes, now: Now) -> None:
        """STOMP frames in a binary message are frames all the same."""
        self._receive(data, now)

    def frames_to_send(self) -> list[Encoded]:
        frames, self._frames = self._frames, []
        return frames

    def commands_received(self) -> list[Command]:
        commands, self._commands = self._commands, []
        return commands

    def handle_timer(self, now: Now) -> None:
        if self.close_reason is not None:
            return
        mono = now.mono
        if self._login_deadline is not None and mono >= self._login_deadline:
            what = "credentials check" if self._authenticating else "CONNECT frame"
            self._error(f"Login timeout: no {what} in time", CloseCode.AUTH_TIMEOUT)
            return
        if not self.connected:
            return
        incoming = self.heartbeats[1]
        if incoming and mono >= self._last_received + self.tolerance * incoming / 1000:
            self.close_reason = CloseCode.IDLE_TIMEOUT
            return
        if self._next_beat is not None and mono >= self._next_beat:
            self._frames.append(Encoded(_HEARTBEAT, control=True))
            self._next_beat = mono + self.heartbeats[0] / 1000

    def next_deadline(self) -> float | None:
        if self.close_reason is not None:
            return None
        if self._login_deadline is not None:
            return self._login_deadline
        deadlines = [] if self._next_beat is None else [self._next_beat]
        incoming = self.heartbeats[1]
        if self.connected and incoming:
            deadlines.append(self._last_received + self.tolerance * incoming / 1000)
        return min(deadlines) if deadlines else None

    def send_error(self, message: str, now: Now) -> None:
        """ERROR, then close 1008 (in STOMP every ERROR ends the connection); a close
        code set already (the rate limit's) stays."""
        self._error(message, self.close_reason or CloseCode.POLICY_VIOLATION)

    def release(self, topics: Iterable[Topic]) -> None:
        self._changed()
        for topic in topics:
            self._fresh.pop(topic, None)
            for subscription in self._by_topic.pop(topic, ()):
                self._subscriptions.pop(subscription.id, None)
                self._dropped = True
                if subscription.max_rate is not None:
                    self._rates.append((topic, subscription.id, None))

    def answer(self, reply: Reply, now: Now) -> None:
        """``Authenticated``: CONNECTED, then the frames that waited. ``Refused``: ERROR
        with its message, close with its code. ``ResumeGap``: the reset MESSAGE (see the
        module docstring)."""
        if isinstance(reply, Authenticated):
            if not self._authenticating or self.close_reason is not None:
                return
            self._authenticating = False
            self.user_id = reply.user_id
            self._connect(now)
            pending, self._pending = self._pending, []
            self._handle(pending, now)
        elif isinstance(reply, Refused):
            self._authenticating = False
            self._pending = []
            self._error(reply.message, reply.code)
        elif isinstance(reply, ResumeGap):
            self._reset(reply)

    # -- frames in

    def _receive(self, data: str | bytes, now: Now) -> None:
        if self.close_reason is not None:
            return
        self._last_received = now.mono
        parser = self._parser
        while True:
            try:
                frames = parser.feed(data)
            except StompFrameError as exc:
                self._handle(exc.frames, now)
                if self.close_reason is None:
                    self._error(str(exc), exc.code)
                return
            self._handle(frames, now)
            if not parser.held or self.close_reason is not None:
                return
            # the parser stopped after CONNECT: the rest, now that the version is known
            data = b""

    def _handle(self, frames: list[Frame], now: Now) -> None:
        for frame in frames:
            if self.close_reason is not None:
                return
            if self._authenticating:
                if len(self._pending) >= MAX_PENDING:
                    self._error("Too many frames before CONNECTED", CloseCode.POLICY_VIOLATION)
                    return
                self._pending.append(frame)
                continue
            receipt = (
                None if frame.command in ("CONNECT", "STOMP") else frame.headers.get("receipt")
            )
            try:
                self._frame(frame, now)
            except Fatal as exc:
                self._error(str(exc), exc.code, receipt=receipt, version=exc.version)
                return
            except LimitExceeded as exc:
                self._error(str(exc), CloseCode.POLICY_VIOLATION, receipt=receipt)
                return
            if receipt is not None and self.close_reason in (None, CloseCode.NORMAL):
                self._control("RECEIPT", [("receipt-id", receipt)])

    def _frame(self, frame: Frame, now: Now) -> None:
        command = frame.command
        if not self.connected:
            if command not in ("CONNECT", "STOMP"):
                raise Fatal(
                    f"The first frame must be CONNECT or STOMP, not {command[:20]}",
                    CloseCode.PROTOCOL_ERROR,
                )
            self._on_connect(frame, now)
        elif command == "SUBSCRIBE":
            self._subscribe(frame.headers)
        elif command == "UNSUBSCRIBE":
            self._unsubscribe(frame.headers)
        elif command in ("ACK", "NACK"):
            pass  # at-most-once streams: nothing to release (module docstring)
        elif command == "DISCONNECT":
            self.close_reason = CloseCode.NORMAL
        elif command == "SEND":
            raise Fatal("SEND is not accepted: clients read here", CloseCode.POLICY_VIOLATION)
        elif command in ("BEGIN", "COMMIT", "ABORT"):
            raise Fatal(f"{command}: transactions are not supported", CloseCode.PROTOCOL_ERROR)
        elif command in ("CONNECT", "STOMP"):
            raise Fatal("Already connected", CloseCode.PROTOCOL_ERROR)
        else:
            raise Fatal(f"Unknown command {command[:20]}", CloseCode.PROTOCOL_ERROR)

    def _on_connect(self, frame: Frame, now: Now) -> None:
        headers = frame.headers
        version = self.version = connect_version(headers)
        self._parser.unescape = version != "1.0"
        if version != "1.0":
            self.heartbeats = connect_heartbeats(headers, self.heart_beat)
        if self.user_id is not None:
            self._connect(now)
            return
        token = credentials(headers)
        if token:
            self._authenticating = True
            self._commands.append(Authenticate(token))
        elif self.anonymous_allowed:
            self._connect(now)
        else:
            raise Fatal("Authentication required", CloseCode.AUTHENTICATION_REQUIRED)

    def _connect(self, now: Now) -> None:
        self.connected = True
        self._login_deadline = None
        self._last_received = now.mono
        assert self.version is not None
        headers = [("version", self.version)]
        if self.version != "1.0":
            sx, sy = self.heart_beat
            headers.append(("heart-beat", f"{sx},{sy}"))
        headers.append(("server", self.server))
        if self.session_id:
            headers.append(("session", self.session_id))
        self._control("CONNECTED", headers)
        outgoing = self.heartbeats[0]
        self._next_beat = now.mono + outgoing / 1000 if outgoing else None

    def _subscribe(self, headers: dict[str, str]) -> None:
        asked = read_subscribe(headers, self.version, self._subscriptions)
        destination, id_, max_rate = asked.destination, asked.id, asked.max_rate
        try:
            topic = self.resolve(destination)
        except Unreadable as exc:
            raise Fatal(str(exc), CloseCode.POLICY_VIOLATION) from None
        if topic is None:
            raise Fatal(f"Unknown destination {destination[:80]}", CloseCode.POLICY_VIOLATION)
        point = resume_point(headers)
        check_overlap(topic, destination, point, self._subscriptions.values(), self._whole)
        self.cap.check(len(self._subscriptions), 1)
        escaped = self.version != "1.0"
        head = message_head(id_, escaped=escaped)
        subscription = Subscription(id_, topic, destination, asked.ack, head, escaped, max_rate)
        self._subscriptions[id_] = subscription
        self._changed()
        if topic.key == WHOLE:  # a reliable channel (signals): a rate holds nothing back
            whole = self._whole.get(topic.channel, ())
            self._whole[topic.channel] = (*whole, subscription)
            if not whole:
                self._commands.append(SubscribeChannel(topic.channel))
            return
        if max_rate is not None:
            self._rates.append((topic, id_, max_rate))
        held = self._by_topic.get(topic)
        if held is not None:
            # held already: live from now (no resume), and owed the current value
            self._by_topic[topic] = (*held, subscription)
            self._fresh.setdefault(topic, []).append(id_)
            self._commands.append(Subscribe((topic,)))
            return
        self._by_topic[topic] = (subscription,)
        self._commands.append(Subscribe((topic,), {topic: point} if point else {}))

    def _unsubscribe(self, headers: dict[str, str]) -> None:
        id_ = unsubscribe_id(headers, self.version, self._subscriptions)
        subscription = self._subscriptions.pop(id_, None)
        if subscription is None:
            raise Fatal(f"No subscription {id_[:60]}", CloseCode.PROTOCOL_ERROR)
        self._dropped = True
        self._changed()
        topic = subscription.topic
        if topic.key == WHOLE:
            self._drop_whole(subscription)
            return
        if subscription.max_rate is not None:
            self._rates.append((topic, id_, None))
        fresh = self._fresh.get(topic)
        if fresh is not None and id_ in fresh:
            fresh.remove(id_)
            if not fresh:
                del self._fresh[topic]
        held = self._by_topic.get(topic)
        if held is None:
            return
        rest = tuple(s for s in held if s is not subscription)
        if rest:
            self._by_topic[topic] = rest
        else:
            del self._by_topic[topic]
            self._commands.append(Unsubscribe((topic,)))

    def _drop_whole(self, subscription: Subscription) -> None:
        channel = subscription.topic.channel
        rest = tuple(s for s in self._whole.get(channel, ()) if s is not subscription)
        if rest:
            self._whole[channel] = rest
        else:
            self._whole.pop(channel, None)
            self._commands.append(UnsubscribeChannel(channel))

    # -- frames out

    def _control(self, command: str, headers: list[tuple[str, str]]) -> None:
        escaped = self.connected and self.version != "1.0"
        self._frames.append(Encoded(encode_frame(command, headers, escaped=escaped), control=True))

    def _error(
        self,
        message: str,
        code: CloseCode,
        *,
        receipt: str | None = None,
        version: bool = False,
    ) -> None:
        """ERROR with ``message`` (a header, and the body), then close with ``code``."""
        # Until CONNECTED the client knows no version: an ERROR then goes unescaped (as
        # CONNECT and CONNECTED do), since clients unescape only once they have read
        # 1.1 or later there (stompjs showed "Login timeout\\c ..."); ``error_frame``
        # keeps it parseable.
        frame = error_frame(
            message,
            escaped=self.connected and self.version != "1.0",
            slashes=not self.connected,
            receipt=receipt,
            versions=",".join(VERSIONS) if version else None,
        )
        self._frames.append(Encoded(frame, control=True))
        self.close_reason = code
        self._next_beat = None

    def _reset(self, gap: ResumeGap) -> None:
        for subscription in self.subscriptions_for(gap.topic):
            self._resets += 1
            message_id = f"reset-{self._resets}"
            payload = reset_payload(gap, subscription.destination, message_id)
            self._frames.append(
                Encoded(payload, control=True).headed(subscription.head_for(message_id))
            )
