"""SockJS at a prefix (``/stomp``): a WebSocket front's sessions over SockJS 0.3.3.

Rules: thin I/O over the pure SockJS layer (``protocols/sockjs``: routes, frames,
sessions) and the front contract (``fronts/base.py``). A ``SockJSEndpoint`` serves one
``WebSocketFront``'s spec under a prefix; each SockJS session is one client of that
front, run exactly as a WebSocket client is (``WebSocketFront.connect``): admitted by
the guard (origin, credentials from header, cookie or query, per-user and per-address
caps, rate limit; first-message authentication when the spec has it), under a
``Connection`` (its Outbox, batching window, conflation, the slow-client rule, the
metrics), in the node's connections and the front's roster, and released
(``Connection.finished``: hub subscriptions, guard slot) when the session ends.

Routes (``urls.parse``): the greeting, ``/info`` (GET, OPTIONS), and
``<server>/<session>/<transport>`` for ``websocket``, ``xhr``, ``xhr_streaming``,
``eventsource`` (receiving) and ``xhr_send`` (posting); anything else 404, a wrong
method 405 with ``Allow``. A foreign Origin gets 403 before any session sees it (the
guard's origin policy, as on the WebSocket fronts); an allowed one gets its CORS grant.

A session is opened by the first receiving request naming an unknown id (after the
guard admits it) and lives until it closes or goes ``disconnect_delay_s`` without a
receiving request (a sweep timer expires it). Each receiving request writes what the
session's ``Receiver`` holds: a poll one frame, a stream frames as they come (until the
response limit), with heartbeats on the session's deadline; a client that goes away
mid-request aborts the session. The connection writes through a ``SockJSSocket``
(``transport/sockjs_socket.py``: backpressure and escaping once per shared item).

The module is the endpoint (routing, admission, the sessions and their sweep, posting);
what a receiving request writes is ``fronts/sockjs_stream.py`` (a ``Stream``, and the
HTTP answers), and the ``websocket`` transport, on the fast path or over ASGI, is
``fronts/sockjs_websocket.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send

from tickcast.auth import policy
from tickcast.auth.credentials import find_credential
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.fronts.base import WebSocketFront
from tickcast.fronts.guard import Ticket, client_address, header
from tickcast.fronts.sockjs_stream import (
    Stream,
    Write,
    WriteNow,
    encode_headers,
    http_writer,
    respond,
    respond_start,
    text,
    until_disconnect,
)
from tickcast.fronts.sockjs_websocket import serve_websocket
from tickcast.protocols.sockjs import urls
from tickcast.protocols.sockjs.framing import WEBSOCKET, XHR_SEND, EscapeMemo, PayloadError
from tickcast.protocols.sockjs.session import (
    Receiver,
    SockJSOptions,
    SockJSSession,
    SockJSSessions,
)
from tickcast.transport.connection import Connection
from tickcast.transport.sockjs_socket import SockJSSocket
from tickcast.transport.uvicorn_protocols import SHUTDOWN_EXTENSION, ShutdownNotice

log = logging.getLogger("tickcast.fronts.sockjs")

#: An ``xhr_send`` body may hold this many times the largest WebSocket message (its
#: messages are JSON strings in an array: escaping makes them longer).
BODY_FACTOR = 4


class _Link:
    """A SockJS session's handler: the client's messages to its connection."""

    __slots__ = ("connection",)

    def __init__(self) -> None:
        self.connection: Connection | None = None

    def receive_text(self, data: str, now: Now) -> None:
        connection = self.connection
        if connection is not None:
            connection.receive_text(data)


class Client:
    """A session's client: its socket and connection, and who opened it."""

    __slots__ = ("connection", "going_away", "owner", "session", "sock")

    def __init__(
        self, session: SockJSSession, sock: SockJSSocket, connection: Connection, owner: str
    ) -> None:
        self.session = session
        self.sock = sock
        self.connection = connection
        #: who opened the session (``owner_of``): only the same may use it
        self.owner = owner
        #: server shutdown: the session ends with ``c[1001,...]`` (which ends a response)
        self.going_away: Callable[[], None] = functools.partial(
            connection.close, CloseCode.GOING_AWAY, "Server shutting down"
        )


def owner_of(scope: Scope) -> str:
    """Who a request comes from, as far as HTTP tells: its address and the credential
    its handshake carries (header, cookie or query; none for a client that signs in by
    its CONNECT frame), hashed. A session answers only requests of the owner that opened
    it: its id, which sockjs-client keeps to itself, is not a bearer credential for
    another client (another user's key, or another address, gets 404 as if the session
    did not exist)."""
    found = find_credential(scope.get("headers", ()), scope.get("query_string", b""))
    credential = found.value if found is not None else ""
    return hashlib.sha256(f"{client_address(scope)}\0{credential}".encode()).hexdigest()


class SockJSEndpoint:
    """The ASGI endpoint of ``front``'s spec over SockJS under ``prefix``.

    Args:
        front: the WebSocket front whose spec, guard, roster and connections it shares.
        prefix: the URL prefix, without a trailing slash (``/stomp``).
        options: heartbeat, disconnect delay, response limit.
    """

    def __init__(self, front: WebSocketFront, prefix: str, options: SockJSOptions) -> None:
        self.front = front
        self.ctx = front.ctx
        self.prefix = prefix
        self.options = options
        self.sessions = SockJSSessions(options)
        self.memo = EscapeMemo()
        self.clients: dict[SockJSSession, Client] = {}
        guard = front.guard
        origins = guard.auth.allowed_origins if guard is not None else ()
        self.allowed: urls.OriginCheck = lambda origin: policy.origin_allowed(origin, origins)
        self.max_body = BODY_FACTOR * self.ctx.server.max_message_bytes
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at: float | None = None

    def serves(self, path: str) -> bool:
        """``path`` is under the prefix (the prefix itself included)."""
        return path == self.prefix or path.startswith(self.prefix + "/")

    # -- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = urls.parse(scope["path"], self.prefix)
        if scope["type"] == "websocket":
            if isinstance(route, urls.SessionPath) and route.transport is WEBSOCKET:
                await serve_websocket(self, scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1000})
            return
        if scope["type"] != "http":
            return
        if route is None or route == urls.RAW_WEBSOCKET:
            await text(send, 404, "Not found")
            return
        method = scope["method"]
        methods = urls.allowed_methods(route)
        origin = header(scope, b"origin")
        if method not in methods:
            await text(send, 405, "Method not allowed", [("Allow", ", ".join(methods))])
            return
        if route == urls.ROOT:
            await respond(send, 200, urls.greeting_headers(), urls.GREETING)
            return
        if not urls.origin_allowed(origin, self.allowed):
            if self.front.guard is not None:
                self.front.guard.count(policy.origin_refused(origin))
            await text(send, 403, "Origin not allowed")
            return
        if method == "OPTIONS":
            requested = header(scope, b"access-control-request-headers")
            wall = self.ctx.clock.now().wall
            await respond(
                send, 204, urls.options_headers(route, origin, self.allowed, wall, requested)
            )
            return
        if route == urls.INFO:
            body = urls.info_body(websocket=True, cookie_needed=False, entropy=secrets.randbits(32))
            await respond(send, 200, urls.info_headers(origin, self.allowed), body)
            return
        assert isinstance(route, urls.SessionPath)
        if route.transport is XHR_SEND:
            await self._xhr_send(scope, receive, send, route)
        elif route.transport is WEBSOCKET:  # a GET without the upgrade
            await text(send, 400, 'Can "Upgrade" only to "WebSocket".')
        else:
            await self._receiving(scope, receive, send, route)

    # -- sessions

    async def admit(self, scope: Scope) -> tuple[Ticket | None, policy.Refusal | None]:
        guard = self.front.guard
        if guard is None:
            return None, None
        return await guard.admit(scope, first_message_auth=self.front.spec.first_message_auth)

    def open_client(self, scope: Scope, session_id: str | None, ticket: Ticket | None) -> Client:
        """A new session and its connection (the ticket's slot is the connection's from
        here: released when it ends)."""
        ctx = self.ctx
        link = _Link()
        now = ctx.clock.now()
        if session_id is None:
            session = SockJSSession(None, link, now, self.options)
        else:
            session = self.sessions.open(session_id, link, now)
        loop = asyncio.get_running_loop()

        def closed() -> None:  # not from inside the connection's close: on the next turn
            loop.call_soon(self.finish, session)

        sock = SockJSSocket(session, ctx.clock, self.memo, closed)
        try:
            connection = self.front.connect(scope, sock, ticket)
        except BaseException:
            session.close(now)
            if ticket is not None and self.front.guard is not None:
                self.front.guard.release(ticket)
            raise
        link.connection = connection
        sock.outbox = connection.outbox
        client = self.clients[session] = Client(session, sock, connection, owner_of(scope))
        principal = ticket.principal.user_id if ticket is not None else None
        log.info(
            "client connected",
            extra={
                "front": self.front.spec.name,
                "client": client_address(scope),
                "origin": header(scope, b"origin"),
                "user_id": principal,
                "transport": "sockjs",
            },
        )
        connection.start()
        return client

    def finish(self, session: SockJSSession, close_code: int | None = None) -> None:
        """The session's connection ends (it closed, or the session is over)."""
        client = self.clients.pop(session, None)
        if client is None:
            return
        client.sock.on_data = None
        client.connection.finished(close_code)
        log.info(
            "client disconnected",
            extra={"front": self.front.spec.name, "code": client.connection.close_code},
        )

    def _schedule_sweep(self) -> None:
        """Expire the sessions left without a receiving request when the first is due.

        A sweep already due within the disconnect delay is soon enough: no session
        detached from now on expires before it, and it schedules the next (this is
        called as every receiving request ends, and the sessions' scan is O(n))."""
        at = self._sweep_at
        if (
            self._sweep is not None
            and at is not None
            and at <= self.ctx.clock.monotonic() + self.options.disconnect_delay_s
        ):
            return
        due = self.sessions.next_deadline()
        if due is None:
            return
        if self._sweep is not None:
            if self._sweep_at is not None and self._sweep_at <= due:
                return
            self._sweep.cancel()
        delay = max(0.0, due - self.ctx.clock.monotonic()) + 0.01
        self._sweep_at = due
        self._sweep = asyncio.get_running_loop().call_later(delay, self._sweep_now)

    def _sweep_now(self) -> None:
        self._sweep = self._sweep_at = None
        for session in self.sessions.expire(self.ctx.clock.now()):
            self.finish(session, 1006)
        self._schedule_sweep()

    def _owned(self, session: SockJSSession, scope: Scope) -> bool:
        """Whether the request comes from who opened ``session`` (``owner_of``); a
        stranger is logged, and told nothing."""
        client = self.clients.get(session)
        if client is None or client.owner == owner_of(scope):
            return True
        log.warning(
            "a request named another client's SockJS session",
            extra={"front": self.front.spec.name, "client": client_address(scope)},
        )
        return False

    # -- transports

    async def _receiving(
        self, scope: Scope, receive: Receive, send: Send, route: urls.SessionPath
    ) -> None:
        origin = header(scope, b"origin")
        cors = urls.cors_headers(origin, self.allowed)
        session = self.sessions.get(route.session)
        if session is not None and not self._owned(session, scope):
            await text(send, 404, "Not found", cors)
            return
        if session is None:
            ticket, refusal = await self.admit(scope)
            if refusal is not None:
                await text(send, refusal.http_status, refusal.message, cors)
                return
            session = self.sessions.get(route.session)  # opened meanwhile by another
            if session is not None:
                if ticket is not None and self.front.guard is not None:
                    self.front.guard.release(ticket)
                if not self._owned(session, scope):
                    await text(send, 404, "Not found", cors)
                    return
            else:
                session = self.open_client(scope, route.session, ticket).session
        transport = route.transport
        await respond_start(
            send, encode_headers(urls.transport_headers(transport, origin, self.allowed))
        )
        receiver = session.attach(transport, self.ctx.clock.now())
        disconnected = asyncio.ensure_future(until_disconnect(receive))
        notice = scope.get("extensions", {}).get(SHUTDOWN_EXTENSION)
        client = self.clients.get(session)
        if isinstance(notice, ShutdownNotice) and client is not None:
            # server shutdown: the session ends with c[1001,...], which ends this response
            notice.callback = client.going_away
        complete = False
        try:
            complete = await self.stream(session, receiver, None, disconnected, http_writer(send))
        finally:
            if isinstance(notice, ShutdownNotice):
                notice.callback = None
            if complete and not disconnected.done():
                # the response is complete: the server says so to its reader, which ends
                # on the next turn (no cancel: nothing to unwind)
                await asyncio.sleep(0)
            if not disconnected.done():
                disconnected.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await disconnected

    async def stream(
        self,
        session: SockJSSession,
        receiver: Receiver,
        write: Write | None,
        gone: asyncio.Future[Any],
        write_now: WriteNow | None = None,
    ) -> bool:
        """Write what ``receiver`` holds (a ``Stream``) until it is done, the client is
        ``gone`` or the session expires (its connection then ends); True when the last
        frames were written."""
        client = self.clients.get(session) if receiver is session.receiver else None
        sock = client.sock if client is not None else None
        try:
            return await Stream(session, receiver, sock, self.ctx.clock, write, write_now).run(gone)
        finally:
            if session.expired:
                self.finish(session, 1006)
            self._schedule_sweep()

    async def _xhr_send(
        self, scope: Scope, receive: Receive, send: Send, route: urls.SessionPath
    ) -> None:
        origin = header(scope, b"origin")
        cors = urls.cors_headers(origin, self.allowed)
        session = self.sessions.get(route.session)
        if session is None or not self._owned(session, scope):
            await text(send, 404, "Not found", cors)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await text(send, 413, "Payload too large.", cors)
                return
        try:
            session.receive(bytes(body), self.ctx.clock.now())
        except PayloadError as exc:
            await text(send, 500, exc.message, cors)
            return
        await respond(send, 204, urls.transport_headers(XHR_SEND, origin, self.allowed))

    async def aclose(self) -> None:
        """Shutdown: end every session's connection, stop the sweep."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for session in list(self.clients):
            self.finish(session, 1001)
