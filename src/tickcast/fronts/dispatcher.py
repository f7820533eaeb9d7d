"""The Dispatcher: a front's typed commands carried out against the hub, once for every
front (``fronts/base.py`` says what it does; ``WebSocketFront`` builds one per front).

``Subscribe`` (resume from history, a ``ResumeGap`` reply, then the snapshot; the rate
set for each conflatable topic before the snapshot is queued), ``Unsubscribe``,
``SubscribeChannel`` / ``UnsubscribeChannel`` and ``Authenticate`` (first-message
authentication, a task per check); each command contained (``"command"``: 1011 for
that connection). Who may read what is checked here (``FrontSpec.may_read``). For a
front with ``Notices``, it is also what suspends a slow client's reliable streams and
resumes them from history (``suspend``, ``resume``: ``transport.connection.Degrading``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tickcast.auth import policy
from tickcast.auth.credentials import ANONYMOUS, InvalidCredentials, Principal
from tickcast.closecodes import CloseCode
from tickcast.fronts.guard import Ticket
from tickcast.fronts.identity import CredentialsUnavailable
from tickcast.fronts.spec import FrontContext, FrontSpec
from tickcast.hub.degrade import Degrade, Marks, Replay, State, plan_resume
from tickcast.hub.history import Gap
from tickcast.hub.hub import Overlap
from tickcast.model.channel import Readers
from tickcast.model.envelope import ResumePoint
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
)
from tickcast.protocols.wire import Encoded
from tickcast.transport.connection import Connection

log = logging.getLogger("tickcast.fronts")


class Admitted(Protocol):
    """What the dispatcher asks of its front (``WebSocketFront``): who each open
    connection acts as, and the close at its credential's expiry."""

    tickets: dict[Connection, Ticket]

    def expire_with(self, connection: Connection, principal: Principal) -> None: ...


class Dispatcher:
    """Carries out a front's typed commands; each is contained (``"command"``)."""

    def __init__(self, spec: FrontSpec, ctx: FrontContext, front: Admitted) -> None:
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
        # an outbox budget (items, bytes) -> its degrade marks
        self._marks: dict[tuple[int, int], Marks] = {}

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
        budget = (outbox.max_items, outbox.max_bytes)
        marks = self._marks.get(budget)
        if marks is None:  # the same for every connection of a budget: made once
            marks = self._marks[budget] = Marks.of_budget(
                *budget, settings.degrade_soft, settings.degrade_low
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


def gap_reply(topic: Topic, gap: Gap, requested_epoch: str | None) -> ResumeGap:
    """The hub's gap as the session's reply; the current epoch is shown only to a client
    that resumed with one (a bare seq's reset keeps the fields it had before epochs)."""
    epoch = gap.epoch if requested_epoch else None
    return ResumeGap(topic, gap.requested, gap.latest, gap.reason, epoch)
