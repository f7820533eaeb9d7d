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

The ``websocket`` transport, under tickcast's uvicorn protocol with ``ws_fast_path`` on,
runs on the fast path (``transport/direct.py``): once accepted and opened, the session's
``_DirectWebSocket`` is handed to the protocol, which gives it each message and the
WebSocket's end, and the ASGI call returns; its writes go out inside the connection's
flush, its heartbeat on a loop timer. Elsewhere it runs as the HTTP transports do: the
ASGI receive loop, and a writer task (``_drive``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from tickcast.auth import policy
from tickcast.auth.credentials import find_credential
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.fronts.base import WebSocketFront
from tickcast.fronts.guard import Ticket, client_address, header, refuse
from tickcast.protocols.sockjs import urls
from tickcast.protocols.sockjs.framing import (
    BROKEN_FRAMING,
    WEBSOCKET,
    XHR_SEND,
    EscapeMemo,
    PayloadError,
)
from tickcast.protocols.sockjs.session import (
    Receiver,
    SockJSOptions,
    SockJSSession,
    SockJSSessions,
)
from tickcast.protocols.wsframe import frame_header
from tickcast.transport.connection import Connection
from tickcast.transport.direct import DIRECT_EXTENSION, Direct
from tickcast.transport.socket import EXTENSION, FrameSocket
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


class _DirectWebSocket:
    """A ``websocket`` transport session on the fast path (``transport/direct.py``): what
    the server protocol hands each client message to, and tells when the WebSocket is
    over (``direct.Attached``). Nothing awaits per session: writes go out inside the
    connection's flush (``SockJSSocket.on_data``), the heartbeat on a loop timer armed
    for the session's deadline (and left alone while writes put the deadline off: an
    early ``handle_timer`` does nothing, and the timer is armed again for the new one)."""

    __slots__ = (
        "_carrier",
        "_clock",
        "_code",
        "_connection",
        "_endpoint",
        "_loop",
        "_over",
        "_raw",
        "_receiver",
        "_session",
        "_shut",
        "_sock",
        "_timer",
    )

    def __init__(
        self,
        endpoint: SockJSEndpoint,
        client: _Client,
        receiver: Receiver,
        carrier: FrameSocket,
    ) -> None:
        self._endpoint = endpoint
        self._session = client.session
        self._sock = client.sock
        self._connection = client.connection
        self._receiver = receiver
        self._carrier = carrier
        #: no extension negotiated (fixed once accepted): frames may be written as built
        self._raw = carrier.raw
        self._clock = endpoint.ctx.clock
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        #: the close frame went (the receiver is done)
        self._shut = False
        #: the session is over (``finished``)
        self._over = False
        #: the close code this side ended the WebSocket with (broken framing), if any
        self._code: int | None = None

    def start(self) -> None:
        """Write the open frame and what the session holds; heartbeats from now on."""
        sock = self._sock
        sock.on_data = self._flush
        sock.attached()
        self._arm()

    def _flush(self) -> None:
        receiver = self._receiver
        frames = receiver.take_frames()
        if frames:  # a message per frame, one write
            if self._raw:  # no extension: the WebSocket frames built here, as Front 1's
                if len(frames) == 1:
                    frame = frames[0]
                    self._carrier.write_frames(frame_header(len(frame)) + frame)
                else:
                    self._carrier.write_frames(b"".join([frame_header(len(f)) + f for f in frames]))
            else:
                self._carrier.send_texts(frames)
        if receiver.done and not self._shut:
            self._shut = True
            self._carrier.close(1000, "")

    def _arm(self) -> None:
        session = self._session
        if self._over or self._receiver is not session.receiver:
            return
        deadline = session.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self._clock.monotonic())
            self._timer = self._loop.call_later(delay, self._beat)

    def _beat(self) -> None:
        self._timer = None
        if self._over:
            return
        self._session.handle_timer(self._clock.now())
        self._flush()
        self._arm()

    # -- direct.Attached

    def receive_text(self, text: str) -> bool:
        return self._receive(text)

    def receive_bytes(self, data: bytes) -> bool:
        return self._receive(data)

    def _receive(self, data: str | bytes) -> bool:
        if self._over:
            return False
        try:
            self._session.receive_websocket(data, self._clock.now())
        except PayloadError:
            code, reason = BROKEN_FRAMING
            self._code = code
            self._carrier.close(code, reason)
            return False
        except Exception:  # never out of the protocol's data_received
            log.exception("a SockJS websocket message failed")
            self._code = CloseCode.INTERNAL_ERROR
            self._carrier.close(CloseCode.INTERNAL_ERROR, "")
            return False
        return not self._connection.closing

    def finished(self, close_code: int | None = None) -> None:
        if self._over:
            return
        self._over = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sock = self._sock
        if sock.on_data == self._flush:
            sock.on_data = None
        self._carrier.on_writable = None
        self._session.abort(self._receiver, self._clock.now())
        code = close_code if close_code is not None else self._code
        self._endpoint._finish(self._session, code if code is not None else 1006)


class _Client:
    __slots__ = ("connection", "owner", "session", "sock")

    def __init__(
        self, session: SockJSSession, sock: SockJSSocket, connection: Connection, owner: str
    ) -> None:
        self.session = session
        self.sock = sock
        self.connection = connection
        #: who opened the session (``owner_of``): only the same may use it
        self.owner = owner


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


def _encode_headers(headers: urls.Headers) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers]


async def _respond(send: Send, status: int, headers: urls.Headers, body: bytes = b"") -> None:
    """A whole response (its length known: no chunks, HTTP/1.0 or 1.1)."""
    encoded = _encode_headers(headers)
    if status != 204:
        encoded.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})


async def _text(send: Send, status: int, text: str, headers: urls.Headers | None = None) -> None:
    await _respond(
        send,
        status,
        [("Content-Type", "text/plain; charset=UTF-8"), urls.NO_CACHE, *(headers or ())],
        text.encode(),
    )


async def _until_disconnect(receive: Receive) -> None:
    """Reads the request (a body is ignored) until the client goes away."""
    while (await receive())["type"] != "http.disconnect":
        pass


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
        self.clients: dict[SockJSSession, _Client] = {}
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
                await self._websocket(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1000})
            return
        if scope["type"] != "http":
            return
        if route is None or route == urls.RAW_WEBSOCKET:
            await _text(send, 404, "Not found")
            return
        method = scope["method"]
        methods = urls.allowed_methods(route)
        origin = header(scope, b"origin")
        if method not in methods:
            await _text(send, 405, "Method not allowed", [("Allow", ", ".join(methods))])
            return
        if route == urls.ROOT:
            await _respond(send, 200, urls.greeting_headers(), urls.GREETING)
            return
        if not urls.origin_allowed(origin, self.allowed):
            if self.front.guard is not None:
                self.front.guard.count(policy.origin_refused(origin))
            await _text(send, 403, "Origin not allowed")
            return
        if method == "OPTIONS":
            requested = header(scope, b"access-control-request-headers")
            wall = self.ctx.clock.now().wall
            await _respond(
                send, 204, urls.options_headers(route, origin, self.allowed, wall, requested)
            )
            return
        if route == urls.INFO:
            body = urls.info_body(websocket=True, cookie_needed=False, entropy=secrets.randbits(32))
            await _respond(send, 200, urls.info_headers(origin, self.allowed), body)
            return
        assert isinstance(route, urls.SessionPath)
        if route.transport is XHR_SEND:
            await self._xhr_send(scope, receive, send, route)
        elif route.transport is WEBSOCKET:  # a GET without the upgrade
            await _text(send, 400, 'Can "Upgrade" only to "WebSocket".')
        else:
            await self._receiving(scope, receive, send, route)

    # -- sessions

    async def _admit(self, scope: Scope) -> tuple[Ticket | None, policy.Refusal | None]:
        guard = self.front.guard
        if guard is None:
            return None, None
        return await guard.admit(scope, first_message_auth=self.front.spec.first_message_auth)

    def _open(self, scope: Scope, session_id: str | None, ticket: Ticket | None) -> _Client:
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
            loop.call_soon(self._finish, session)

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
        client = self.clients[session] = _Client(session, sock, connection, owner_of(scope))
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

    def _finish(self, session: SockJSSession, close_code: int | None = None) -> None:
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
            self._finish(session, 1006)
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
            await _text(send, 404, "Not found", cors)
            return
        if session is None:
            ticket, refusal = await self._admit(scope)
            if refusal is not None:
                await _text(send, refusal.http_status, refusal.message, cors)
                return
            session = self.sessions.get(route.session)  # opened meanwhile by another
            if session is not None:
                if ticket is not None and self.front.guard is not None:
                    self.front.guard.release(ticket)
                if not self._owned(session, scope):
                    await _text(send, 404, "Not found", cors)
                    return
            else:
                session = self._open(scope, route.session, ticket).session
        transport = route.transport
        await _respond_start(send, urls.transport_headers(transport, origin, self.allowed))
        receiver = session.attach(transport, self.ctx.clock.now())

        async def write(frames: list[bytes], done: bool) -> None:
            body = frames[0] if len(frames) == 1 else b"".join(frames)
            await send({"type": "http.response.body", "body": body, "more_body": not done})

        def write_now(frames: list[bytes], done: bool) -> asyncio.Future[Any] | None:
            body = frames[0] if len(frames) == 1 else b"".join(frames)
            return _step(send({"type": "http.response.body", "body": body, "more_body": not done}))

        disconnected = asyncio.ensure_future(_until_disconnect(receive))
        notice = scope.get("extensions", {}).get(SHUTDOWN_EXTENSION)
        client = self.clients.get(session)
        if isinstance(notice, ShutdownNotice) and client is not None:
            # server shutdown: the session ends with c[1001,...], which ends this response
            notice.callback = functools.partial(
                client.connection.close, CloseCode.GOING_AWAY, "Server shutting down"
            )
        try:
            await self._drive(session, receiver, write, disconnected, write_now)
        finally:
            if isinstance(notice, ShutdownNotice):
                notice.callback = None
            disconnected.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await disconnected

    async def _drive(
        self,
        session: SockJSSession,
        receiver: Receiver,
        write: Callable[[list[bytes], bool], Awaitable[None]],
        gone: asyncio.Future[Any],
        write_now: Callable[[list[bytes], bool], asyncio.Future[Any] | None] | None = None,
    ) -> None:
        """Write what ``receiver`` holds until it is done, the client is ``gone`` (the
        session is then aborted) or the session expires; heartbeats on its deadline.

        ``write_now``: a write made at once, inside the connection's flush, rather than
        by waking this task for each batch (an asyncio wake-up per batch per session was
        a third of the SockJS websocket transport's cost over raw STOMP, W1): the server's
        own WebSocket (whose buffer ``SockJSSocket.writable`` follows) never makes its
        writer wait; an HTTP stream's ASGI ``send`` is stepped by hand (``_step``) and
        returns, as it does while the transport takes data, or leaves a task that ends
        the write once the peer has taken enough (the socket is not writable until then,
        and nothing else is written meanwhile)."""
        clock = self.ctx.clock
        loop = asyncio.get_running_loop()
        client = self.clients.get(session) if receiver is session.receiver else None
        sock = client.sock if client is not None else None
        ended = False
        # The task sleeps on one future at a time (``waiter``), which data, the client
        # going away or the heartbeat's timer resolves: one wake-up per batch, not the
        # task, the Event and the ``asyncio.wait`` per batch that woke it before (half of
        # the xhr-streaming transport's cost over the websocket one, W1). The timer is
        # armed for the earliest deadline and left alone while later ones come (a write
        # puts the heartbeat off): an early call of ``handle_timer`` does nothing.
        waiter: asyncio.Future[None] | None = None
        woken = False
        fired = False
        timer: asyncio.TimerHandle | None = None
        timer_at = 0.0

        def wake() -> None:
            nonlocal woken
            woken = True
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        async def sleep() -> None:
            """Until ``wake``: data, the client going away, a write's end or the timer."""
            nonlocal waiter
            waiter = loop.create_future()
            try:
                await waiter
            finally:
                waiter = None

        def on_timer() -> None:
            nonlocal timer, fired
            timer = None
            fired = True
            wake()

        in_flight: asyncio.Future[Any] | None = None
        failed: BaseException | None = None

        def written(task: asyncio.Future[Any]) -> None:
            # a write that waited for its peer is over: what came meanwhile goes now
            nonlocal in_flight, failed, ended
            in_flight = None
            if sock is not None:
                sock.sending = False
            if task.cancelled() or task.exception() is not None:
                failed = None if task.cancelled() else task.exception()
                ended = True
            if ended:
                wake()
                return
            if sock is not None:
                sock.drained()
            flush_now()
            # the loop waited while the write did: it re-arms the heartbeat's timer (one
            # that fired meanwhile was spent) and beats if it is due
            wake()

        def put(data: list[bytes], done: bool) -> None:
            nonlocal in_flight
            assert write_now is not None
            pending = write_now(data, done)
            if pending is not None:
                in_flight = pending
                if sock is not None:
                    sock.sending = True
                pending.add_done_callback(written)

        def flush_now() -> None:
            nonlocal ended
            if ended or write_now is None or in_flight is not None:
                return
            data = receiver.take_frames()
            if receiver.done:
                ended = True
                put(data, True)
                wake()  # the loop below returns
            elif data:
                put(data, False)

        def on_gone(_: asyncio.Future[Any]) -> None:
            wake()

        on_data = flush_now if write_now is not None else wake
        gone.add_done_callback(on_gone)
        if sock is not None:
            sock.on_data = on_data
            sock.attached()
        try:
            while True:
                woken = False
                if ended:
                    if in_flight is not None:
                        await in_flight
                    if failed is not None:
                        raise failed
                    return
                if in_flight is not None:  # written on by ``written``, or ended
                    await sleep()
                    if gone.done():
                        session.abort(receiver, clock.now())
                        return
                    continue
                data = receiver.take_frames()
                done = receiver.done
                if data or done:
                    if write_now is not None:
                        put(data, done)
                        if done:
                            ended = True
                        elif in_flight is None and sock is not None:
                            sock.drained()
                        continue
                    if sock is not None:
                        sock.sending = True
                    try:
                        await write(data, done)
                    finally:
                        if sock is not None:
                            sock.sending = False
                    if done:
                        return
                    if sock is not None:
                        sock.drained()
                    continue
                if gone.done() or session.expired:
                    session.abort(receiver, clock.now())
                    return
                deadline = session.next_deadline() if receiver is session.receiver else None
                if deadline is not None and (timer is None or deadline < timer_at):
                    if timer is not None:
                        timer.cancel()
                    timer_at = deadline
                    timer = loop.call_later(max(0.0, deadline - clock.monotonic()), on_timer)
                if not woken:
                    await sleep()
                if gone.done():
                    session.abort(receiver, clock.now())
                    return
                if fired:
                    fired = False
                    session.handle_timer(clock.now())
        finally:
            gone.remove_done_callback(on_gone)
            if in_flight is not None:
                in_flight.remove_done_callback(written)
                in_flight.cancel()
            if timer is not None:
                timer.cancel()
            if sock is not None and sock.on_data is on_data:
                sock.on_data = None
            if session.expired:
                self._finish(session, 1006)
            self._schedule_sweep()

    async def _xhr_send(
        self, scope: Scope, receive: Receive, send: Send, route: urls.SessionPath
    ) -> None:
        origin = header(scope, b"origin")
        cors = urls.cors_headers(origin, self.allowed)
        session = self.sessions.get(route.session)
        if session is None or not self._owned(session, scope):
            await _text(send, 404, "Not found", cors)
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
                await _text(send, 413, "Payload too large.", cors)
                return
        try:
            session.receive(bytes(body), self.ctx.clock.now())
        except PayloadError as exc:
            await _text(send, 500, exc.message, cors)
            return
        await _respond(send, 204, urls.transport_headers(XHR_SEND, origin, self.allowed))

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        ticket, refusal = await self._admit(scope)
        if refusal is not None:
            await refuse(scope, send, refusal)
            return
        await send({"type": "websocket.accept"})
        client = self._open(scope, None, ticket)
        session, sock = client.session, client.sock
        carrier = scope.get("extensions", {}).get(EXTENSION)
        if carrier is not None:  # the server's socket: frames in one write, its buffer seen
            sock.carrier = carrier
            carrier.on_writable = sock.drained
        now = self.ctx.clock.now()
        receiver = session.attach(WEBSOCKET, now)
        direct = self._direct(scope)
        if direct is not None and carrier is not None:
            # the fast path: the server's protocol drives the session from here
            attached = _DirectWebSocket(self, client, receiver, carrier)
            attached.start()
            direct.attach(attached)
            return
        closed: list[tuple[int, str]] = []

        def write_now(frames: list[bytes], done: bool) -> None:
            assert carrier is not None
            if frames:
                carrier.send_texts(frames)  # a message per frame, one write
            if done:
                carrier.close(*(closed[0] if closed else (1000, "")))

        async def write(frames: list[bytes], done: bool) -> None:
            if carrier is not None:
                write_now(frames, done)
                return
            for data in frames:
                await send({"type": "websocket.send", "text": data.decode()})
            if done:
                code, reason = closed[0] if closed else (1000, "")
                await send({"type": "websocket.close", "code": code, "reason": reason})

        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        writer = asyncio.ensure_future(
            self._drive(session, receiver, write, gone, write_now if carrier is not None else None)
        )
        try:
            while not writer.done():
                message = await _first(receive(), writer)
                if message is None or message["type"] == "websocket.disconnect":
                    break
                if message["type"] != "websocket.receive":
                    continue
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                try:
                    session.receive_websocket(data, self.ctx.clock.now())
                except PayloadError:
                    closed.append(BROKEN_FRAMING)
                    code, reason = BROKEN_FRAMING
                    if carrier is not None:
                        carrier.close(code, reason)
                    else:
                        await send({"type": "websocket.close", "code": code, "reason": reason})
                    break
        finally:
            if not gone.done():
                gone.set_result(None)
            with contextlib.suppress(Exception):
                await writer
            session.abort(receiver, self.ctx.clock.now())
            self._finish(session, 1006)

    def _direct(self, scope: Scope) -> Direct | None:
        """The server protocol that drives an accepted WebSocket itself (the fast path:
        tickcast's uvicorn protocol, ``ws_fast_path`` on), or None."""
        if not self.ctx.server.ws_fast_path:
            return None
        direct: Direct | None = (scope.get("extensions") or {}).get(DIRECT_EXTENSION)
        return direct

    async def aclose(self) -> None:
        """Shutdown: end every session's connection, stop the sweep."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for session in list(self.clients):
            self._finish(session, 1001)


class _Resumed:
    """The rest of a coroutine stepped by hand (``_step``) that yielded ``first`` (the
    future it waits on): awaiting this runs it to its end as a task would have."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.coro
        yielded = self.first
        while True:
            try:
                value = yield yielded
            except BaseException as exc:  # a cancel (or anything thrown in) goes to it
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value


async def _resume(rest: _Resumed) -> None:
    await rest


def _step(write: Awaitable[None]) -> asyncio.Future[Any] | None:
    """Run ``write`` (an ASGI ``send``) as far as it goes without waiting: None once it
    is done (what a ``send`` of a body does while the transport takes data: it writes
    and returns), else a task that finishes it (it waits for the transport to drain)."""
    if not isinstance(write, Coroutine):
        return asyncio.ensure_future(write)
    try:
        first = write.send(None)
    except StopIteration:
        return None
    except BaseException:
        write.close()
        raise
    return asyncio.ensure_future(_resume(_Resumed(write, first)))


async def _respond_start(send: Send, headers: urls.Headers) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _encode_headers(headers)})


async def _first(message: Awaitable[Message], writer: asyncio.Future[Any]) -> Message | None:
    """The next message, or None once ``writer`` ended first (the session closed)."""
    task = asyncio.ensure_future(message)
    await asyncio.wait((task, writer), return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
