"""Front 1: the market feed at ``/ws/market/feed``.

Maps the session's commands onto the hub: subscribe (with an instant snapshot from the
last-value cache, or a resume from history), unsubscribe. The wire format lives in
``protocols/native``; the I/O in ``transport``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

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
from tickcast.node import Node
from tickcast.protocols.native import codec
from tickcast.protocols.native.session import (
    MarketFeedSession,
    Subscribe,
    Unsubscribe,
    parse_options,
)
from tickcast.protocols.wire import Encoded
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
            max_subscriptions=settings.max_subscriptions,
            now=time.time(),
            options=options,
            idle_timeout_s=settings.idle_timeout_s,
        )
        for message in option_errors:
            session.send_error(message)
        guarded: Any = session
        if self.guard is not None:
            guarded = RateLimited(
                session, self.guard.rate_limit(), lambda message, now: session.send_error(message)
            )
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

    def _apply(self, connection: Connection, commands: Sequence[object]) -> None:
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
                        connection.queue(_reset(str(topic), missed, with_epoch=bool(point.epoch)))
                    if current is not None:
                        connection.queue(hub.encode(wire, current), key)
            elif isinstance(command, Unsubscribe):
                for topic in command.topics:
                    hub.unsubscribe(connection, topic)
                    connection.outbox.discard(str(topic))

    def _closed(self, connection: Connection) -> None:
        session: Any = connection.session
        for topic in session.topics:
            self.node.hub.unsubscribe(connection, topic)
        session.topics.clear()
        self.node.connections.discard(connection)
        self.tickets.pop(connection, None)


def _reset(topic_name: str, gap: Gap, *, with_epoch: bool) -> Encoded:
    """Tell the client its resume point is gone; a snapshot (if any) follows.

    ``reason`` is ``history_gap`` (not held any more, or not yet) or ``epoch_changed``
    (the point counts in another numbering: the server restarted). A client that resumed
    with an epoch also gets the current ``epoch``; a bare-seq resume gets exactly the
    fields it got before epochs.
    """
    fields: dict[str, object] = {
        "topic": topic_name,
        "seq": gap.latest,
        "requested": gap.requested,
        "reason": gap.reason,
    }
    if with_epoch:
        fields["epoch"] = gap.epoch
    return Encoded(codec.control("reset", 0, **fields), control=True)
