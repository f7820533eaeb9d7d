"""The front contract: what a WebSocket front says, and the endpoint written once.

A front is a ``FrontSpec``: its name (the guard's roster), its paths, its wire formats,
whether it is guarded and authenticates by first message, and ``open``: the session
(``protocols.base.Session``) a new client gets. ``expand`` and ``snapshot`` say what a
subscription means on this front; the defaults are one topic and its cached value.

Everything else is written here once, for every front:

- ``WebSocketFront`` is the ASGI endpoint: admission (origin, credentials, caps counted
  as ``FrontSpec.user_cap`` says) or the refusal, accept (with the sub-protocol
  ``FrontSpec.subprotocol`` picks), the frame socket, the session run under a
  ``Connection`` (rate limited when guarded; closed when the credential expires; a
  ``HeadedConnection`` when ``Opened.heads`` is given), and the clean-up at close. On
  the fast path (``ws_fast_path``, under tickcast's uvicorn protocol) the connection is
  handed to the protocol once started, which drives it from ``data_received``, and the
  ASGI call returns (``transport/direct.py``); otherwise ``Connection.run`` reads the
  ASGI receive channel until the close. With
  ``FrontSpec.recheck_s`` set, the API keys of its open connections are looked at again
  that often (through the identity's cache) and a connection ``FrontSpec.revoked``
  turns away is told why and closed.
- ``Dispatcher`` carries out the session's typed commands against the hub: ``Subscribe``
  (with resume from history, a ``ResumeGap`` reply, then the snapshot; its ``max_rate``
  set on the connection for each conflatable topic, new or restated, before the
  snapshot is queued), ``Unsubscribe`` (which forgets a topic's rate too),
  ``SubscribeChannel`` / ``UnsubscribeChannel`` (channel-wide), ``Authenticate``
  (first-message authentication). Each command is contained: a bug in one is reported
  to ``Faults`` as ``"command"`` and closes that connection with 1011.
- A slow client of a front that can say so (``FrontSpec.notices``: the market feed) is
  degraded before it is closed (``hub/degrade.py``, driven by its ``Connection``): the
  ``Dispatcher`` is what suspends its reliable streams (a ``degraded`` message each,
  with the last seq the client was given: a subscribe's replay cut by the suspension it
  brings about is suspended where it stopped, a topic is suspended only once its
  subscribe has given it its start, and a topic started while the others are suspended
  is suspended at its start) and resumes them from the hub's history (replay then
  ``resumed``; or the protocol's reset, the snapshot, then ``resumed``).
- Who may read what is checked here too, for every front, from the channel registry's
  ``Readers`` (``FrontSpec.may_read``): a topic or channel the client may not read is
  refused with the session's own error and never reaches the hub. A front's session may
  check more (Front 2 answers in its own words first); this is the floor.

A front module built on this contract imports what ``FrontContext`` gives and the pure
layers (``protocols/``, ``model/``, ``auth/``, ``config/``), never ``node``,
``transport/``, ``hub.hub`` or ``hub.pump`` (tests/architecture/test_layers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from starlette.types import Receive, Scope, Send

from tickcast.auth import policy
from tickcast.auth.credentials import ANONYMOUS, InvalidCredentials, Principal
from tickcast.clock import Clock
from tickcast.closecodes import CloseCode
from tickcast.config.groups import LimitsSettings, OutboxSettings, ServerSettings
from tickcast.fronts.guard import (
    Guard,
    RateLimited,
    Ticket,
    UserCap,
    client_address,
    close_on_expiry,
    header,
    refuse,
)
from tickcast.fronts.identity import CredentialsUnavailable
from tickcast.hub.degrade import Degrade, Marks, Replay, State, plan_resume
from tickcast.hub.history import Gap
from tickcast.hub.hub import Overlap, Subscriber
from tickcast.hub.outbox import Outbox
from tickcast.hub.pump import Pumps
from tickcast.model.channel import Channels, Readers
from tickcast.model.envelope import Envelope, ResumePoint
from tickcast.model.topic import Event, Topic
from tickcast.observability.faults import Faults
from tickcast.observability.stats import Stats
from tickcast.protocols.base import (
    Authenticate,
    Authenticated,
    Command,
    Refused,
    Reply,
    ResumeGap,
    Session,
    Subscribe,
    SubscribeChannel,
    Unsubscribe,
    UnsubscribeChannel,
)
from tickcast.protocols.wire import Codec, Encoded
from tickcast.transport.asgi_socket import open_frame_socket
from tickcast.transport.connection import Connection, payload_size
from tickcast.transport.direct import DIRECT_EXTENSION, Direct
from tickcast.transport.headed import HeadedConnection, Heads
from tickcast.transport.socket import EXTENSION, FrameSocket

log = logging.getLogger("tickcast.fronts")


class Subscriptions(Protocol):
    """The hub as a front sees it: subscriptions, resume and encoding; no publish."""

    codecs: dict[str, Codec]
    channels: Channels

    def subscribe(self, subscriber: Subscriber, topic: Topic) -> Envelope | None: ...
    def unsubscribe(self, subscriber: Subscriber, topic: Topic) -> None: ...
    def subscribe_channel(self, subscriber: Subscriber, channel: str) -> None: ...
    def conflation_key(self, topic: Topic) -> str | None: ...
    def position(self, topic: Topic) -> tuple[str, int] | None: ...
    def unsubscribe_channel(self, subscriber: Subscriber, channel: str) -> None: ...
    def current(self, channel: str) -> list[Envelope]: ...
    def resume(self, topic: Topic, point: ResumePoint) -> list[Envelope] | Gap: ...
    def encode(self, wire: str, envelope: Envelope) -> Encoded: ...


@dataclass(frozen=True, slots=True, eq=False)
class FrontContext:
    """What a front may use; built once by ``app.build_app``.

    Attributes:
        hub: subscriptions, resume, encoding (publishing goes through ``publisher``).
        publisher: publishes what the gateway computes itself (a fresh value).
        pumps: the flush schedulers, one per batching window (a connection gets its
            outbox's: ``pumps.get(window_s)``).
        clock: the node's clock: ``clock.now()`` is what a session is opened and
            answered at (monotonic for its deadlines, wall for its stamps).
        stats, faults: the gateway's counters; contained failures.
        latency: observes a delivery's latency (the histogram).
        guard: admission and limits (None: nothing is checked, as in unit tests).
        server, limits, outbox: the settings groups a front reads.
        connections: every open connection of the process (readiness, overload).
        is_known: whether a symbol is in the feed's universe (a subscription to any
            other is refused by the session).
    """

    hub: Subscriptions
    publisher: Callable[[Sequence[Event]], None]
    pumps: Pumps
    clock: Clock
    stats: Stats
    faults: Faults
    latency: Callable[[float], None] | None
    guard: Guard | None
    server: ServerSettings
    limits: LimitsSettings
    outbox: OutboxSettings
    connections: set[Any]
    is_known: Callable[[str], bool]


class Opened(NamedTuple):
    """What ``FrontSpec.open`` gives a new client: its session, the wire format the hub
    encodes for it, whether batches go as one array frame, its batching window (any: each
    window has its own pump), its outbox budget (None: the ``outbox`` settings';
    ``max_bytes`` 0: no byte limit), and ``heads``: for a protocol whose messages name
    the client's own subscription, what one published item becomes on this connection
    (``transport.connection.Heads``: one item per subscription of its topic, each with
    its head; None: the shared item as it is)."""

    session: Session
    wire: str
    array: bool = False
    window_s: float = 0.0
    max_items: int | None = None
    max_bytes: int | None = None
    heads: Heads | None = None


class Notices(NamedTuple):
    """A protocol's words for a slow client's suspended streams (``FrontSpec.notices``):
    ``degraded(topic, last seq sent, epoch)`` and ``resumed(topic, seq, epoch,
    replayed)``, each a control message's payload. The reset is the session's own
    (``ResumeGap``)."""

    degraded: Callable[[str, int, str], bytes]
    resumed: Callable[[str, int, str, int], bytes]


class FrontSpec:
    """A front: override ``open`` (and the class attributes); the rest has defaults.

    Attributes:
        name: the front's name (the guard's roster, logs, ``/realtime/status/``).
        paths: the WebSocket paths it serves.
        codecs: wire format -> codec, registered with the hub once.
        first_message_auth: a client may authenticate after the handshake
            (``Authenticate``), so an anonymous one is admitted to try.
        guarded: admission, rate limit and credential expiry apply.
        user_cap: how its connections count against ``max_connections_per_user``
            (``guard.UserCap``: the user's shared count, or one of their own per path).
        recheck_s: how often the API keys of its open connections are looked at again
            (``revoked`` judges); None: never.
        notices: how its protocol tells a slow client that a stream was suspended and
            resumed; None (the default): its slow clients are closed at the budget, never
            degraded.
    """

    name: str = ""
    paths: tuple[str, ...] = ()
    codecs: Mapping[str, Codec] = {}
    first_message_auth: bool = False
    guarded: bool = True
    user_cap: UserCap = UserCap.SHARED
    recheck_s: float | None = None
    notices: Notices | None = None

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        raise NotImplementedError

    def revoked(self, principal: Principal | None) -> tuple[str, CloseCode] | None:
        """Why an open connection whose API key now names ``principal`` (None: revoked
        or gone) must close, as ``(message, code)``; None: it stays (the default)."""
        return None

    def subprotocol(self, scope: Scope) -> str | None:
        """The WebSocket sub-protocol to accept, from those the client offered
        (``scope["subprotocols"]``): never one it did not offer; None: none (default)."""
        return None

    def expand(self, topic: Topic) -> tuple[Topic, ...]:
        """The hub topics one subscription to ``topic`` holds (the first is ``topic``)."""
        return (topic,)

    def snapshot(self, topic: Topic, cached: Envelope | None, ctx: FrontContext) -> Envelope | None:
        """What a new subscriber gets at once: by default the last value published."""
        return cached

    def may_read(self, principal: Principal, topic: Topic, readers: Readers) -> bool:
        """Whether ``principal`` may read ``topic``, whose channel is read by ``readers``.

        The default: a public channel, anyone; an authenticated one, any user; an
        owner's channel, nobody (a front that serves one overrides this and names the
        owner)."""
        if readers is Readers.PUBLIC:
            return True
        if readers is Readers.AUTHENTICATED:
            return principal.authenticated
        return False

    def may_read_channel(self, principal: Principal, channel: str, readers: Readers) -> bool:
        """Whether ``principal`` may read every topic of ``channel`` (channel-wide): a
        public or authenticated channel as ``may_read``; an owner's channel, never
        (it would be every owner's)."""
        if readers is Readers.OWNER:
            return False
        return self.may_read(principal, Topic(channel, "*"), readers)


class Dispatcher:
    """Carries out a front's typed commands; each is contained (``"command"``)."""

    def __init__(self, spec: FrontSpec, ctx: FrontContext, front: WebSocketFront) -> None:
        self.spec = spec
        self.ctx = ctx
        self.front = front
        self.auth_tasks: dict[Connection, asyncio.Task[None]] = {}
        # connection -> the channels it holds channel-wide (the sessions need not know)
        self.channel_wide: dict[Connection, set[str]] = {}
        # a connection that can be degraded -> the topics it is subscribed to in the hub
        # (a topic its session acknowledged is not, until its subscribe is carried out)
        self._started: dict[Connection, set[str]] = {}
        # connection -> while a subscribe is being carried out, what each topic started
        # so far has been given (its replay, or the hub's position at its start)
        self._starting: dict[Connection, dict[str, ResumePoint]] = {}

    def principal(self, connection: Connection) -> Principal:
        """Who ``connection`` acts as now (after a first-message authentication too)."""
        ticket = self.front.tickets.get(connection)
        return ANONYMOUS if ticket is None else ticket.principal

    def apply(self, connection: Connection, commands: list[Command]) -> None:
        # A session that decided to close (its ERROR is queued: STOMP's rule is that
        # nothing follows it) takes nothing more, but what it drops still goes.
        closing = connection.closing or connection.session.close_reason is not None
        for command in commands:
            if closing and not isinstance(command, Unsubscribe | UnsubscribeChannel):
                continue
            try:
                if isinstance(command, Subscribe):
                    self._subscribe(connection, command)
                elif isinstance(command, Unsubscribe):
                    for topic in command.topics:
                        self.unsubscribe(connection, topic)
                        connection.outbox.discard(str(topic))
                        if connection.suspended:  # not resumed: it is not held any more
                            for gone in self.spec.expand(topic):
                                connection.suspended.pop(str(gone), None)
                elif isinstance(command, SubscribeChannel):
                    self._subscribe_channel(connection, command.channel)
                elif isinstance(command, UnsubscribeChannel):
                    held = self.channel_wide.get(connection)
                    if held is not None and command.channel in held:
                        held.discard(command.channel)
                        self.ctx.hub.unsubscribe_channel(connection, command.channel)
                elif isinstance(command, Authenticate):
                    self._authenticate(connection, command.token)
            except Exception as exc:
                self.ctx.faults.report(
                    "command", exc, front=self.spec.name, command=type(command).__name__
                )
                connection.fault()  # its stream may miss what the command owed it: 1011
                return

    def _readers(self, channel: str) -> Readers | None:
        channels = self.ctx.hub.channels
        return channels.get(channel).readers if channel in channels else None

    def _refuse(self, connection: Connection, message: str) -> None:
        connection.session.send_error(message, self.ctx.clock.now())
        for frame in connection.session.frames_to_send():
            connection.queue(frame)

    def _limit(
        self, connection: Connection, topics: Sequence[Topic], max_rate: float | None
    ) -> None:
        """Rate the conflatable ``topics`` on ``connection`` (None: no limit); a
        reliable topic is never held back by a rate (hub/rategate.py)."""
        hub = self.ctx.hub
        for held in topics:
            key = hub.conflation_key(held)
            if key is not None:
                connection.limit_rate(key, max_rate)

    def _subscribe(self, connection: Connection, command: Subscribe) -> None:
        max_rate = command.max_rate
        for topic in command.restated:  # held already: the request restates its rate
            self._limit(connection, self.spec.expand(topic), max_rate)
        starting = self._starting[connection] = {}
        try:
            for topic in command.topics:
                self._subscribe_one(connection, topic, command, starting)
        finally:
            del self._starting[connection]

    def _subscribe_one(
        self,
        connection: Connection,
        topic: Topic,
        command: Subscribe,
        starting: dict[str, ResumePoint],
    ) -> None:
        """Subscribe to ``topic`` and queue its start: the replay after its resume point,
        or the reset and the snapshot, or the snapshot. ``starting`` follows what it has
        been given, so that a suspension this queueing brings about (the client is
        behind) suspends it at that point; started while the client's streams are
        suspended, it is suspended too, at its start."""
        hub = self.ctx.hub
        wire = connection.wire
        topics = self.spec.expand(topic)
        principal = self.principal(connection)
        denied = next(
            (
                held
                for held in topics
                if (readers := self._readers(held.channel)) is None
                or not self.spec.may_read(principal, held, readers)
            ),
            None,
        )
        if denied is not None:  # the session acknowledged it: take it back
            connection.session.release((topic,))
            self._refuse(connection, f"Not allowed to read {denied}")
            return
        try:
            cached = hub.subscribe(connection, topic)
        except Overlap as exc:  # its channel is held channel-wide already
            connection.session.release((topic,))
            self._refuse(connection, str(exc))
            return
        for also in topics[1:]:
            hub.subscribe(connection, also)
        started = None  # followed for a connection that can be degraded only
        if connection.degrade is not None:
            started = self._started.setdefault(connection, set())
        for held in topics:  # what comes after the hub's position now is theirs
            starting[str(held)] = self._position(held)
            if started is not None:
                started.add(str(held))
        if command.max_rate is not None:  # before the snapshot: the rate counts from it
            self._limit(connection, topics, command.max_rate)
        point = command.resume.get(topic)
        if point is not None:
            missed = hub.resume(topic, point)
            if not isinstance(missed, Gap):
                key = str(topic)
                # the client's position (no epoch: the current one)
                given = ResumePoint(point.seq, point.epoch or starting[key].epoch)
                starting[key] = given
                for envelope in missed:
                    if key in connection.suspended or self._suspending(connection):
                        break  # the rest is replayed when the client is resumed
                    starting[key] = ResumePoint(envelope.seq, envelope.epoch or None)
                    connection.queue(hub.encode(wire, envelope))
                    if connection.closing:
                        return
                self._suspend_started(connection, topics, starting)
                return
            # another epoch's position is never replayed: reset, then snapshot
            connection.answer(gap_reply(topic, missed, point.epoch))
        current = self.spec.snapshot(topic, cached, self.ctx)
        if current is not None:  # queued even while suspended: a stream starts with it
            connection.queue(hub.encode(wire, current), hub.conflation_key(topic))
        self._suspend_started(connection, topics, starting)

    def _position(self, topic: Topic) -> ResumePoint:
        """The hub's position on ``topic`` now (seq 0 and no epoch when unknown)."""
        at = self.ctx.hub.position(topic)
        epoch, seq = at if at is not None else ("", 0)
        return ResumePoint(seq, epoch or None)

    @staticmethod
    def _suspending(connection: Connection) -> bool:
        """Whether ``connection``'s reliable streams are suspended (its machine's
        SUSPENDED: a stream it starts now is suspended too)."""
        degrade = connection.degrade
        return degrade is not None and degrade.state is State.SUSPENDED

    def _suspend_started(
        self,
        connection: Connection,
        topics: Sequence[Topic],
        starting: Mapping[str, ResumePoint],
    ) -> None:
        """Suspend the reliable ``topics`` just started, at what they were given, if the
        client's streams are suspended (a ``degraded`` message each)."""
        if connection.closing or not self._suspending(connection):
            return
        notices = self.spec.notices
        assert notices is not None
        hub = self.ctx.hub
        positions: dict[str, Any] = {}
        messages: list[Encoded] = []
        for held in topics:
            key = str(held)
            given = starting.get(key)
            if given is None or key in connection.suspended:
                continue
            if hub.conflation_key(held) is not None:
                continue
            positions[key] = (held, given, 0)  # 0 replayed yet
            messages.append(
                Encoded(notices.degraded(key, given.seq, given.epoch or ""), control=True)
            )
        if positions:
            connection.suspend_also(positions, messages)

    # -- degrade before disconnecting (transport.connection.Degrading)

    def degrade(self, connection: Connection) -> None:
        """Have ``connection`` degraded before it is closed, if the front's protocol can
        say so and the settings do not turn it off (``degrade_soft`` 0)."""
        settings = self.ctx.outbox
        if self.spec.notices is None or not settings.degrade_soft:
            return
        outbox = connection.outbox
        marks = Marks.of_budget(
            outbox.max_items, outbox.max_bytes, settings.degrade_soft, settings.degrade_low
        )
        machine = Degrade(marks, grace_s=settings.degrade_grace_s, hold_s=settings.degrade_hold_s)
        connection.degrade_with(machine, self, conflate_interval_s=1.0 / settings.degrade_rate)

    def _reliable(self, connection: Connection) -> list[Topic]:
        """The reliable topics ``connection`` holds, in a stable order."""
        hub = self.ctx.hub
        held = {t for topic in connection.session.topics for t in self.spec.expand(topic)}
        return sorted((t for t in held if hub.conflation_key(t) is None), key=str)

    def suspend(self, connection: Connection) -> tuple[dict[str, Any], list[Encoded]]:
        """Suspend ``connection``'s reliable streams: each at the last update it was
        given, and its ``degraded`` message. That is the hub's position for a live
        stream (the connection queues every reliable update the hub hands it); for one
        a subscribe is starting (its replay or snapshot being queued: ``_starting``),
        the last of those queued, and one not started yet is left to its start
        (``_suspend_started``)."""
        notices = self.spec.notices
        assert notices is not None
        starting = self._starting.get(connection, {})
        started = self._started.get(connection, set())
        positions: dict[str, Any] = {}
        messages: list[Encoded] = []
        for topic in self._reliable(connection):
            key = str(topic)
            if key in connection.suspended or key not in started:
                continue  # suspended already; or acknowledged, its subscribe not carried out
            given = starting.get(key) or self._position(topic)
            positions[key] = (topic, given, 0)  # 0 replayed yet
            messages.append(
                Encoded(notices.degraded(key, given.seq, given.epoch or ""), control=True)
            )
        return positions, messages

    def resume(
        self,
        connection: Connection,
        suspended: dict[str, Any],
        room: tuple[int, int | None],
    ) -> dict[str, Any]:
        """Queue what each suspended stream missed since its position: the updates from
        history, then ``resumed``; where history no longer reaches, the session's reset,
        the topic's current value, then ``resumed``. A replay is queued only as far as
        ``room`` (items, bytes or None) goes: the streams it did not reach are returned,
        each at the position it got to, to be resumed further in the next round."""
        notices = self.spec.notices
        assert notices is not None
        hub = self.ctx.hub
        stats = connection.stats.resumed_streams
        wire = connection.wire
        held = set(self._reliable(connection))
        points = {topic: point for topic, point, _ in suspended.values()}
        replayed = {topic: count for topic, _, count in suspended.values()}
        items_left, bytes_left = room
        left: dict[str, Any] = {}
        for step in plan_resume(points, hub.resume, held.__contains__):
            topic = step.topic
            key = str(topic)
            if isinstance(step, Replay):
                point = points[topic]
                for envelope in step.envelopes:
                    if items_left <= 0 or (bytes_left is not None and bytes_left <= 0):
                        break
                    item = hub.encode(wire, envelope)
                    connection.queue(item)
                    point = ResumePoint(envelope.seq, envelope.epoch or None)
                    items_left -= 1
                    if bytes_left is not None:
                        bytes_left -= item.size
                count = replayed[topic] + point.seq - points[topic].seq
                if point.seq != step.seq:  # not all of it fitted: the next round goes on
                    left[key] = (topic, point, count)
                    continue
                resumed = notices.resumed(key, step.seq, point.epoch or "", count)
                stats["replay"] = stats.get("replay", 0) + 1
            else:
                gap = step.gap
                connection.answer(gap_reply(topic, gap, gap.epoch or None))
                # subscribing again to a topic it holds changes nothing, and gives the
                # topic's current value (a book's full snapshot; none for trades)
                snapshot = self.spec.snapshot(topic, hub.subscribe(connection, topic), self.ctx)
                if snapshot is not None:
                    connection.queue(hub.encode(wire, snapshot), hub.conflation_key(topic))
                resumed = notices.resumed(key, gap.latest, gap.epoch, replayed[topic])
                stats["reset"] = stats.get("reset", 0) + 1
                items_left -= 2
            connection.queue(Encoded(resumed, control=True))
            items_left -= 1  # a notice always goes (one a stream), and counts
        return left

    def unsubscribe(self, connection: Connection, topic: Topic) -> None:
        """Undo what subscribing to ``topic`` did."""
        started = self._started.get(connection)
        for held in self.spec.expand(topic):
            self.ctx.hub.unsubscribe(connection, held)
            if started is not None:
                started.discard(str(held))

    def _subscribe_channel(self, connection: Connection, channel: str) -> None:
        readers = self._readers(channel)
        if readers is None:
            self._refuse(connection, f"Unknown channel {channel!r}")
            return
        if not self.spec.may_read_channel(self.principal(connection), channel, readers):
            self._refuse(connection, f"Not allowed to read every topic of {channel!r}")
            return
        held = self.channel_wide.setdefault(connection, set())
        if channel in held:
            return
        hub = self.ctx.hub
        try:
            hub.subscribe_channel(connection, channel)
        except Overlap as exc:
            self._refuse(connection, str(exc))
            return
        held.add(channel)
        for envelope in hub.current(channel):  # state, not events: each topic's value now
            connection.queue(
                hub.encode(connection.wire, envelope), hub.conflation_key(envelope.topic)
            )

    # -- first-message authentication

    def _authenticate(self, connection: Connection, token: str) -> None:
        task = asyncio.create_task(self._check(connection, token))
        self.auth_tasks[connection] = task
        task.add_done_callback(functools.partial(self._checked, connection))

    async def _check(self, connection: Connection, token: str) -> None:
        """Answer the session, and move the connection's slot to the user. The
        connection may close meanwhile: then this does nothing."""
        guard = self.ctx.guard
        reply: Reply
        try:
            if guard is None:
                raise InvalidCredentials("this front checks no credentials")
            principal = await guard.identity.authenticate(token)
        except InvalidCredentials as exc:
            refusal = policy.invalid_credentials(exc)
            reply = self._refused(guard.count(refusal) if guard else refusal)
        except CredentialsUnavailable as exc:
            refusal = policy.unavailable(str(exc))
            reply = self._refused(guard.count(refusal) if guard else refusal)
        except Exception:  # a bug must still answer the client, never leave it pending
            log.exception("first-message authentication failed", extra={"front": self.spec.name})
            reply = Refused("Authentication failed: try again later", CloseCode.INTERNAL_ERROR)
        else:
            ticket = self.front.tickets.get(connection)
            if connection.closing or ticket is None or guard is None:
                return  # the client left while its credentials were checked
            late = guard.authenticate_late(ticket, principal)
            if late is not None:
                reply = self._refused(late)
            else:
                self.front.expire_with(connection, principal)
                reply = Authenticated(principal.user_id)
        if connection.closing:
            return
        connection.session.answer(reply, self.ctx.clock.now())
        connection.poke()

    @staticmethod
    def _refused(refusal: policy.Refusal) -> Refused:
        return Refused(refusal.message, refusal.close_code)

    def _checked(self, connection: Connection, task: asyncio.Task[None]) -> None:
        if self.auth_tasks.get(connection) is task:
            del self.auth_tasks[connection]

    def closed(self, connection: Connection) -> None:
        self._started.pop(connection, None)
        for channel in self.channel_wide.pop(connection, ()):
            self.ctx.hub.unsubscribe_channel(connection, channel)
        task = self.auth_tasks.pop(connection, None)
        if task is not None:
            task.cancel()

    async def aclose(self) -> None:
        """Cancel the authentications still running (shutdown)."""
        tasks = list(self.auth_tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class WebSocketFront:
    """The ASGI endpoint of one front: admit or refuse, accept, run, close.

    Attributes:
        spec: what the front says.
        tickets: its open connections and who each acts as (the guard's roster
            ``spec.name``; empty when the front is not guarded).
    """

    def __init__(self, spec: FrontSpec, ctx: FrontContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.guard = ctx.guard if spec.guarded else None
        self.tickets: dict[Connection, Ticket] = (
            self.guard.roster(spec.name) if self.guard is not None else {}
        )
        self.dispatcher = Dispatcher(spec, ctx, self)
        self._expiry: dict[Connection, asyncio.TimerHandle] = {}
        self._rechecks: asyncio.Task[None] | None = None
        if self.guard is not None and spec.recheck_s is not None:
            self.guard.watch(spec.name, self._judge)
        self._log = logging.getLogger(f"tickcast.fronts.{spec.name}")
        for wire, codec in spec.codecs.items():
            ctx.hub.codecs.setdefault(wire, codec)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        guard = self.guard
        ticket: Ticket | None = None
        if guard is not None:
            ticket, refusal = await guard.admit(
                scope, first_message_auth=self.spec.first_message_auth, user_cap=self.spec.user_cap
            )
            if refusal is not None:
                await refuse(scope, send, refusal)
                return
        try:  # from here the ticket holds a connection slot: give it back on any exit
            accept: dict[str, Any] = {"type": "websocket.accept"}
            subprotocol = self.spec.subprotocol(scope)
            if subprotocol is not None:
                accept["subprotocol"] = subprotocol
            await send(accept)
            direct = self._direct(scope)
            if direct is not None:
                self._attach(scope, direct, ticket)
                ticket = None  # the connection's close gives the slot back (_closed)
                return
            close_timeout_s = self.ctx.server.close_timeout_s
            async with open_frame_socket(scope, receive, send, close_timeout_s=close_timeout_s) as (
                sock,
                receive,
            ):
                await self._serve(scope, receive, sock, ticket)
        finally:
            if guard is not None and ticket is not None:
                guard.release(ticket)

    def _direct(self, scope: Scope) -> Direct | None:
        """The server protocol that drives an accepted connection itself (the fast path:
        tickcast's uvicorn protocol, ``ws_fast_path`` on), or None."""
        if not self.ctx.server.ws_fast_path:
            return None
        extensions = scope.get("extensions") or {}
        direct: Direct | None = extensions.get(DIRECT_EXTENSION)
        return direct if direct is not None and EXTENSION in extensions else None

    def _attach(self, scope: Scope, direct: Direct, ticket: Ticket | None) -> None:
        """The fast path: the connection, started and handed to the server protocol,
        which feeds it each message; no await, and the ASGI call then returns."""
        connection = self.connect(scope, scope["extensions"][EXTENSION], ticket)
        peer = self._connected(scope, ticket)
        connection.start()
        direct.attach(connection, functools.partial(self._disconnected, peer))

    def _connected(self, scope: Scope, ticket: Ticket | None) -> str:
        peer = client_address(scope)
        if not self._log.isEnabledFor(logging.INFO):
            return peer  # nothing to gather for a record that is not written
        principal = ticket.principal if ticket is not None else ANONYMOUS
        self._log.info(
            "client connected",
            extra={
                "front": self.spec.name,
                "client": peer,
                "origin": header(scope, b"origin"),
                "user_id": principal.user_id,
            },
        )
        return peer

    def _disconnected(self, peer: str, connection: Connection) -> None:
        self._log.info(
            "client disconnected",
            extra={"front": self.spec.name, "client": peer, "code": connection.close_code},
        )

    async def _serve(
        self, scope: Scope, receive: Receive, sock: FrameSocket, ticket: Ticket | None
    ) -> None:
        connection = self.connect(scope, sock, ticket)
        peer = self._connected(scope, ticket)
        await connection.run(receive)
        self._disconnected(peer, connection)

    def connect(self, scope: Scope, sock: FrameSocket, ticket: Ticket | None) -> Connection:
        """Set up one accepted client on ``sock``: the spec's session (rate limited when
        guarded), its ``Connection`` with the dispatcher and the clean-up at close, the
        roster and the credential's expiry. ``connection.run`` is what remains."""
        ctx = self.ctx
        principal = ticket.principal if ticket is not None else ANONYMOUS
        opened = self.spec.open(scope, principal, ctx)
        session = opened.session
        if self.guard is not None:
            session = RateLimited(session, self.guard.rate_limit())
        budget = ctx.outbox
        build: Callable[..., Connection] = (
            Connection
            if opened.heads is None
            else functools.partial(HeadedConnection, heads=opened.heads)
        )
        connection = build(
            sock=sock,
            session=session,
            wire=opened.wire,
            array=opened.array,
            outbox=Outbox(
                opened.window_s,
                budget.outbox_max_items if opened.max_items is None else opened.max_items,
                budget.outbox_max_bytes if opened.max_bytes is None else opened.max_bytes,
                size=payload_size,
            ),
            pump=ctx.pumps.get(opened.window_s),
            stats=ctx.stats,
            on_commands=self.dispatcher.apply,
            on_close=self._closed,
            latency=ctx.latency,
            slow_timeout_s=budget.slow_client_timeout_s,
        )
        self.dispatcher.degrade(connection)
        ctx.stats.connections_total += 1
        ctx.connections.add(connection)
        if ticket is not None:
            self.tickets[connection] = ticket
            self.expire_with(connection, principal)
            every_s = self.spec.recheck_s
            if ticket.key is not None and every_s is not None and self._rechecks is None:
                self._rechecks = asyncio.create_task(self._recheck(every_s), name="recheck")
        return connection

    async def _recheck(self, every_s: float) -> None:
        """Every ``every_s``: look again at the keys of the open connections."""
        while self.guard is not None:
            await asyncio.sleep(every_s)
            try:
                await self.guard.recheck(self.spec.name)
            except Exception as exc:
                self.ctx.faults.report("timer", exc, front=self.spec.name, step="recheck")

    def _judge(self, connection: Connection, ticket: Ticket, principal: Principal | None) -> None:
        """The key of ``connection`` names ``principal`` now: close it (after its error)
        when the front turns it away."""
        refused = self.spec.revoked(principal)
        if refused is None:
            if principal is not None:
                ticket.principal = principal
            return
        if connection.closing:
            return
        message, code = refused
        self._log.info("client closed: %s", message, extra={"user_id": ticket.principal.user_id})
        connection.session.send_error(message, self.ctx.clock.now())
        connection.session.close_reason = code
        connection.poke()

    def expire_with(self, connection: Connection, principal: Principal) -> None:
        """Close ``connection`` when ``principal``'s credential expires (3501)."""
        previous = self._expiry.pop(connection, None)
        if previous is not None:
            previous.cancel()
        handle = close_on_expiry(connection, principal, self.ctx.clock)
        if handle is not None:
            self._expiry[connection] = handle

    def _closed(self, connection: Connection) -> None:
        session = connection.session
        held = tuple(session.topics)
        for topic in held:
            self.dispatcher.unsubscribe(connection, topic)
        session.release(held)
        self.ctx.connections.discard(connection)
        self.dispatcher.closed(connection)
        expiry = self._expiry.pop(connection, None)
        if expiry is not None:
            expiry.cancel()
        ticket = self.tickets.pop(connection, None)
        if ticket is not None and self.guard is not None:
            self.guard.release(ticket)

    async def aclose(self) -> None:
        """Stop what runs beside the connections (authentications, rechecks)."""
        task, self._rechecks = self._rechecks, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.dispatcher.aclose()


def gap_reply(topic: Topic, gap: Gap, requested_epoch: str | None) -> ResumeGap:
    """The hub's gap as the session's reply; the current epoch is shown only to a client
    that resumed with one (a bare seq's reset keeps the fields it had before epochs)."""
    epoch = gap.epoch if requested_epoch else None
    return ResumeGap(topic, gap.requested, gap.latest, gap.reason, epoch)
