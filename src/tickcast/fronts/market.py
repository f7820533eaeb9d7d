"""Front 1: the market feed at ``/ws/market/feed``.

Maps the session's commands onto the hub: subscribe (with an instant snapshot from the
last-value cache, or a resume from history), unsubscribe. The wire format lives in
``protocols/native``; the I/O in ``transport``.
"""

from __future__ import annotations

import logging
import time

from starlette.types import Receive, Scope, Send

from tickcast.auth.credentials import ANONYMOUS
from tickcast.fronts.guard import (
    Guard,
    RateLimited,
    Ticket,
    client_address,
    close_on_expiry,
    header,
    refuse,
)
from tickcast.hub.history import Gap
from tickcast.hub.outbox import Outbox
from tickcast.model.topic import Topic
from tickcast.node import Node
from tickcast.protocols.base import Command, ResumeGap, Session, Subscribe, Unsubscribe
from tickcast.protocols.native import codec
from tickcast.protocols.native.session import (
    MarketFeedSession,
    parse_options,
    subscription_cap,
)
from tickcast.transport.asgi_socket import open_frame_socket
from tickcast.transport.connection import Connection, payload_size
from tickcast.transport.socket import FrameSocket

PATH = "/ws/market/feed"
#: The front's name in the guard's rosters and in ``/realtime/status/``.
NAME = "market_feed"
log = logging.getLogger("tickcast.fronts.market")


class MarketFeedFront:
    """The ASGI endpoint of Front 1.

    Attributes:
        tickets: the open connections and who each acts as (the guard's roster
            ``market_feed``; empty without a guard).
    """

    def __init__(self, node: Node, guard: Guard | None = None) -> None:
        self.node = node
        self.guard = guard
        self.tickets: dict[Connection, Ticket] = guard.roster(NAME) if guard is not None else {}
        for wire, encode in codec.CODECS.items():
            node.hub.codecs.setdefault(wire, encode)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        guard = self.guard
        ticket: Ticket | None = None
        if guard is not None:
            ticket, refusal = await guard.admit(scope)
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
            if guard is not None and ticket is not None:
                guard.release(ticket)

    async def _serve(
        self, scope: Scope, receive: Receive, sock: FrameSocket, ticket: Ticket | None
    ) -> None:
        settings = self.node.settings
        principal = ticket.principal if ticket is not None else ANONYMOUS
        query = scope.get("query_string", b"").decode("latin-1")
        options, option_errors = parse_options(query)
        session = MarketFeedSession(
            is_known=self.node.is_known,
            cap=subscription_cap(settings.max_subscriptions),
            now=time.time(),
            options=options,
            idle_timeout_s=settings.idle_timeout_s,
        )
        for message in option_errors:
            session.send_error(message, 0.0)
        guarded: Session = session
        if self.guard is not None:
            guarded = RateLimited(session, self.guard.rate_limit())
        connection = Connection(
            sock=sock,
            session=guarded,
            wire=options.wire,
            array=options.array,
            outbox=Outbox(
                settings.batch_ms / 1000,
                settings.outbox_max_items,
                settings.outbox_max_bytes,
                size=payload_size,
            ),
            pump=self.node.pump,
            stats=self.node.stats,
            on_commands=self._apply,
            on_close=self._closed,
            latency=self.node.metrics.latency.observe,
            slow_timeout_s=settings.slow_client_timeout_s,
        )
        self.node.stats.connections_total += 1
        self.node.connections.add(connection)
        if ticket is not None:
            self.tickets[connection] = ticket
        expiry = close_on_expiry(connection, principal)
        peer = client_address(scope)
        log.info(
            "client connected",
            extra={
                "client": peer,
                "origin": header(scope, b"origin"),
                "user_id": principal.user_id,
            },
        )
        try:
            await connection.run(receive)
        finally:
            if expiry is not None:
                expiry.cancel()
        log.info(
            "client disconnected",
            extra={"client": peer, "code": connection.close_code},
        )

    def _apply(self, connection: Connection, commands: list[Command]) -> None:
        hub = self.node.hub
        wire = connection.wire
        for command in commands:
            if isinstance(command, Subscribe):
                for topic in command.topics:
                    current = hub.subscribe(connection, topic)
                    key = str(topic) if topic.conflatable else None
                    point = command.resume.get(topic)
                    if point is not None:
                        missed = hub.resume(topic, point)
                        if not isinstance(missed, Gap):
                            for envelope in missed:
                                connection.queue(hub.encode(wire, envelope))
                            continue
                        # another epoch's position is never replayed: reset, then snapshot
                        connection.answer(_gap(topic, missed, point.epoch))
                    if current is not None:
                        connection.queue(hub.encode(wire, current), key)
            elif isinstance(command, Unsubscribe):
                for topic in command.topics:
                    hub.unsubscribe(connection, topic)
                    connection.outbox.discard(str(topic))

    def _closed(self, connection: Connection) -> None:
        session = connection.session
        held = tuple(session.topics)
        for topic in held:
            self.node.hub.unsubscribe(connection, topic)
        session.release(held)
        self.node.connections.discard(connection)
        self.tickets.pop(connection, None)


def _gap(topic: Topic, gap: Gap, requested_epoch: str | None) -> ResumeGap:
    """The hub's gap as the session's reply; the current epoch is shown only to a client
    that resumed with one (a bare seq's reset keeps the fields it had before epochs)."""
    epoch = gap.epoch if requested_epoch else None
    return ResumeGap(topic, gap.requested, gap.latest, gap.reason, epoch)
