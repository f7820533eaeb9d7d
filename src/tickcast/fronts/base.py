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

The contract is laid out in three modules, every name importable from this one:
``fronts/spec.py`` (``FrontSpec``, ``FrontContext``, ``Opened``, ``Notices``: what a front
says and is given), ``fronts/dispatcher.py`` (the ``Dispatcher``) and this one
(``WebSocketFront``, the endpoint).

A front module built on this contract imports what ``FrontContext`` gives and the pure
layers (``protocols/``, ``model/``, ``auth/``, ``config/``), never ``node``,
``transport/``, ``hub.hub`` or ``hub.pump`` (tests/architecture/test_layers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send

from tickcast.auth.credentials import ANONYMOUS, Principal
from tickcast.fronts.dispatcher import Dispatcher, gap_reply
from tickcast.fronts.guard import (
    RateLimited,
    Ticket,
    client_address,
    close_on_expiry,
    header,
    refuse,
)
from tickcast.fronts.spec import FrontContext, FrontSpec, Notices, Opened, Subscriptions
from tickcast.hub.outbox import Outbox
from tickcast.transport.asgi_socket import open_frame_socket
from tickcast.transport.connection import Connection, payload_size
from tickcast.transport.direct import DIRECT_EXTENSION, Direct
from tickcast.transport.headed import HeadedConnection
from tickcast.transport.socket import EXTENSION, FrameSocket

__all__ = [
    "Dispatcher",
    "FrontContext",
    "FrontSpec",
    "Notices",
    "Opened",
    "Subscriptions",
    "WebSocketFront",
    "gap_reply",
]


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
        # the callbacks every connection is given: bound once, not once per connection
        self._on_commands = self.dispatcher.apply
        self._on_close = self._closed
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

    def connect_direct(self, scope: Scope, direct: Direct) -> bool:
        """The fast path's connect without an ASGI call (``transport/direct.py``:
        ``DirectConnect``): a client the guard admits at once (no credential to look
        up) is accepted and its connection attached now, and True. False, with nothing
        done, when the fast path is off or anything is to be waited for or refused: the
        ASGI call (``__call__``) then admits or refuses it."""
        if not self.ctx.server.ws_fast_path:
            return False
        guard = self.guard
        ticket: Ticket | None = None
        if guard is not None:
            ticket = guard.admit_now(
                scope, first_message_auth=self.spec.first_message_auth, user_cap=self.spec.user_cap
            )
            if ticket is None:
                return False
        try:  # from here the ticket holds a connection slot: give it back on any exit
            direct.accept(self.spec.subprotocol(scope))
            self._attach(scope, direct, ticket)
            ticket = None  # the connection's close gives the slot back (_closed)
        finally:
            if guard is not None and ticket is not None:
                guard.release(ticket)
        return True

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
        try:
            peer = self._connected(scope, ticket)
            connection.start()
            # its disconnect is logged if its connect was (INFO on then)
            direct.attach(
                connection, None if peer is None else functools.partial(self._disconnected, peer)
            )
        except BaseException:
            # undo connect(): the connection ends here, unregistered; the ticket stays the
            # caller's to give back (its finally), so the connection does not release it
            self.tickets.pop(connection, None)
            connection.finished()
            raise

    def _connected(self, scope: Scope, ticket: Ticket | None) -> str | None:
        """Log the client's connect (INFO): its address, for its disconnect's record;
        None when INFO is off (nothing gathered for records that are not written)."""
        if not self._log.isEnabledFor(logging.INFO):
            return None
        peer = client_address(scope)
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
        if peer is not None:
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
            on_commands=self._on_commands,
            on_close=self._on_close,
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
