"""Front 2: the realtime envelope at ``/ws/realtime/``.

Maps the session's commands onto the hub: asset subscriptions to ``assets.<symbol>``,
portfolio subscriptions (owner checked by the session) to ``portfolio.<id>`` and
``positions.<id>``, live-position subscriptions to ``live_positions.<id>`` (the hub's
first/last-subscriber hooks tell the PortfolioService who watches, so that unwatched
positions are not computed), each with the current value at once; first-message
authentication through ``Identity``. Admission (origin, credentials, connection cap) and
the message rate are the Guard's. The wire
format lives in ``protocols/envelope``; the I/O in ``transport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid

from starlette.types import Receive, Scope, Send

from tickcast.auth import policy
from tickcast.auth.credentials import InvalidCredentials
from tickcast.closecodes import CloseCode
from tickcast.fronts.guard import (
    Guard,
    RateLimited,
    Ticket,
    client_address,
    close_on_expiry,
    header,
    refuse,
)
from tickcast.fronts.identity import CredentialsUnavailable
from tickcast.hub.outbox import Outbox
from tickcast.model.envelope import Envelope
from tickcast.model.topic import Channel, Event, Topic
from tickcast.node import Node
from tickcast.protocols.base import (
    Authenticate,
    Authenticated,
    Command,
    Refused,
    Reply,
    Subscribe,
    Unsubscribe,
)
from tickcast.protocols.envelope import codec
from tickcast.protocols.envelope.session import RealtimeSession, subscription_cap
from tickcast.transport.asgi_socket import open_frame_socket
from tickcast.transport.connection import Connection, payload_size
from tickcast.transport.socket import FrameSocket

PATH = "/ws/realtime/"
#: The front's name in the guard's rosters and in ``/realtime/status/``.
NAME = "realtime"
log = logging.getLogger("tickcast.fronts.realtime")


class RealtimeFront:
    """The ASGI endpoint of Front 2.

    Attributes:
        tickets: the open connections and who each acts as (the guard's roster
            ``realtime``).
    """

    def __init__(self, node: Node, guard: Guard) -> None:
        self.node = node
        self.guard = guard
        self.tickets: dict[Connection, Ticket] = guard.roster(NAME)
        self._auth_tasks: dict[Connection, asyncio.Task[None]] = {}
        self._expiry: dict[Connection, asyncio.TimerHandle | None] = {}
        self.cache_timeout_s = node.settings.cache_timeout_s
        node.hub.codecs.setdefault(codec.WIRE, codec.encode)

    def is_known(self, symbol: str) -> bool:
        return self.node.is_known(symbol) or symbol in self.node.portfolios.known_assets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        ticket, refusal = await self.guard.admit(scope, first_message_auth=True)
        if refusal is not None:
            await refuse(scope, send, refusal)
            return
        try:  # from here the ticket holds a connection slot: give it back on any exit
            await send({"type": "websocket.accept"})
            close_timeout_s = self.node.settings.close_timeout_s
            async with open_frame_socket(scope, receive, send, close_timeout_s=close_timeout_s) as (
                sock,
                receive,
            ):
                await self._serve(scope, receive, sock, ticket)
        finally:
            self.guard.release(ticket)

    async def _serve(
        self, scope: Scope, receive: Receive, sock: FrameSocket, ticket: Ticket
    ) -> None:
        settings = self.node.settings
        principal = ticket.principal
        now = self.node.clock.now()
        session = RealtimeSession(
            connection_id=str(uuid.uuid4()),
            user_id=principal.user_id,
            anonymous_allowed=settings.allow_anonymous,
            is_known=self.is_known,
            owner_of=self.node.portfolios.owner_of,
            cap=subscription_cap(settings.max_subscriptions),
            now=now,
            auth_timeout_s=settings.auth_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
        )
        limited = RateLimited(session, self.guard.rate_limit())
        connection = Connection(
            sock=sock,
            session=limited,
            wire=codec.WIRE,
            array=False,
            outbox=Outbox(
                settings.batch_ms / 1000,
                settings.outbox_max_items,
                settings.outbox_max_bytes,
                size=payload_size,
            ),
            pump=self.node.pumps.get(settings.batch_ms / 1000),
            stats=self.node.stats,
            on_commands=self._apply,
            on_close=self._closed,
            latency=self.node.metrics.latency.observe,
            slow_timeout_s=settings.slow_client_timeout_s,
        )
        self.tickets[connection] = ticket
        self.node.stats.connections_total += 1
        self.node.connections.add(connection)
        self._expiry[connection] = close_on_expiry(connection, principal)
        peer = client_address(scope)
        log.info(
            "realtime client connected",
            extra={
                "client": peer,
                "origin": header(scope, b"origin"),
                "user_id": principal.user_id,
            },
        )
        await connection.run(receive)
        log.info(
            "realtime client disconnected", extra={"client": peer, "code": connection.close_code}
        )

    # -- commands

    def _apply(self, connection: Connection, commands: list[Command]) -> None:
        hub = self.node.hub
        for command in commands:
            if isinstance(command, Subscribe):
                for topic in command.topics:
                    cached = hub.subscribe(connection, topic)
                    self._send_current(connection, topic, cached)
                    if topic.channel is Channel.PORTFOLIO:  # its position updates too
                        hub.subscribe(connection, _positions(topic))
            elif isinstance(command, Unsubscribe):
                for topic in command.topics:
                    self._unsubscribe(connection, topic)
                    connection.outbox.discard(str(topic))
            elif isinstance(command, Authenticate):
                task = asyncio.create_task(self._authenticate(connection, command.token))
                self._auth_tasks[connection] = task
                task.add_done_callback(functools.partial(self._auth_done, connection))

    def _send_current(self, connection: Connection, topic: Topic, cached: Envelope | None) -> None:
        """Give a new subscriber the topic's value at once: the last published one while
        it is younger than ``cache_timeout_s``; else one computed now, which is
        *published*: it gets its own seq (one seq never carries two contents), enters the
        cache, and reaches this subscriber by fan-out with the same bytes and conflation
        key. The topic's other subscribers get it too: one more conflatable update."""
        hub = self.node.hub
        portfolios = self.node.portfolios
        event: Event | None = None
        if topic.channel is Channel.LIVE_POSITIONS:
            # always afresh: while nobody watched, they were not published (the hub's hooks)
            event = portfolios.positions(int(topic.symbol))
        elif cached is not None and time.time() - cached.server_ts <= self.cache_timeout_s:
            connection.queue(hub.encode(codec.WIRE, cached), str(topic))
            return
        elif topic.channel is Channel.ASSETS:
            event = portfolios.asset_update(topic.symbol)
        elif topic.channel is Channel.PORTFOLIO:
            event = portfolios.value(int(topic.symbol))
        if event is not None:
            self.node.publisher.publish([event])

    async def _authenticate(self, connection: Connection, token: str) -> None:
        """First-message auth: answer the session, move the connection's slot to the
        user. The connection may close meanwhile: then this does nothing."""
        reply: Reply
        try:
            principal = await self.guard.identity.authenticate(token)
        except InvalidCredentials as exc:
            refusal = self.guard.count(policy.invalid_credentials(exc))
            reply = Refused(refusal.message, refusal.close_code)
        except CredentialsUnavailable as exc:
            refusal = self.guard.count(policy.unavailable(str(exc)))
            reply = Refused(refusal.message, refusal.close_code)
        except Exception:  # a bug must still answer the client, never leave it pending
            log.exception("first-message authentication failed")
            reply = Refused("Authentication failed: try again later", CloseCode.INTERNAL_ERROR)
        else:
            ticket = self.tickets.get(connection)
            if connection.closing or ticket is None:
                return  # the client left while its credentials were checked
            late = self.guard.authenticate_late(ticket, principal)
            if late is not None:
                reply = Refused(late.message, late.close_code)
            else:
                self._expiry[connection] = close_on_expiry(connection, principal)
                reply = Authenticated(principal.user_id)
        connection.session.answer(reply, self.node.clock.now())
        connection.poke()

    def _auth_done(self, connection: Connection, task: asyncio.Task[None]) -> None:
        if self._auth_tasks.get(connection) is task:
            del self._auth_tasks[connection]

    async def aclose(self) -> None:
        """Cancel the authentications still running (shutdown)."""
        tasks = list(self._auth_tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _unsubscribe(self, connection: Connection, topic: Topic) -> None:
        """Undo what subscribing to ``topic`` did (``_apply``)."""
        self.node.hub.unsubscribe(connection, topic)
        if topic.channel is Channel.PORTFOLIO:
            self.node.hub.unsubscribe(connection, _positions(topic))

    def _closed(self, connection: Connection) -> None:
        session = connection.session
        held = tuple(session.topics)
        for topic in held:
            self._unsubscribe(connection, topic)
        session.release(held)
        self.node.connections.discard(connection)
        task = self._auth_tasks.pop(connection, None)
        if task is not None:
            task.cancel()
        expiry = self._expiry.pop(connection, None)
        if expiry is not None:
            expiry.cancel()
        ticket = self.tickets.pop(connection, None)
        if ticket is not None:
            self.guard.release(ticket)


def _positions(portfolio: Topic) -> Topic:
    """The position updates that go with a portfolio subscription."""
    return Topic(Channel.POSITIONS, portfolio.symbol)
