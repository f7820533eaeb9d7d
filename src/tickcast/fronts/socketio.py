"""Front 5: Socket.IO at ``/socket.io/`` on the gateway's port (docs/socketio.md).

Rules: thin I/O over python-socketio (Engine.IO 4 / Socket.IO 5: transports, packets,
heartbeat, upgrade, namespaces, acknowledgements) and the front contract
(``fronts/base.py``). Each Socket.IO client is one client of the ``socketio`` front,
run exactly as a WebSocket client is (``WebSocketFront.connect``): admitted by the
guard (origin allow-list, credentials, per-user and per-address caps, the rate limit on
its events), under a ``Connection`` (its Outbox, batching window, the slow-client rule,
the metrics), fed from the hub's ``signals`` and ``signal_status`` channels, released
when it disconnects. What a client's events mean is the pure session's
(``protocols/socketio``); where the bytes go is ``transport/socketio_socket.py``'s.

The client's life:

1. Engine.IO's handshake (polling or websocket) is python-engineio's. Every Origin is
   let through at that level (``cors_allowed_origins="*"``), so that the guard decides
   at the Socket.IO CONNECT and a refusal reaches the client in Socket.IO's words.
2. CONNECT: the connect handler asks the guard, with the CONNECT ``auth`` payload's
   ``token`` when there is one (else the handshake's header, cookie or ``?token=``). A
   refusal is a CONNECT_ERROR whose ``message`` is the guard's
   (``socketio.exceptions.ConnectionRefusedError``). Admitted, the client gets its
   session and connection, which start only once python-socketio has queued its
   CONNECT answer (``_Manager.connect``): ``welcome`` is then the first event.
3. Then: ``welcome``; the signals missed since ``auth.last_signal_id`` (or ``reset``);
   live ``new_signal`` and ``status_update`` events; the answers to its events.
4. Disconnect (the client's, Engine.IO's heartbeat, or the connection's close: rate
   limit, slow consumer) releases everything, and is logged with the sid.

python-socketio internals relied on, besides the socket's (its module docstring):
``AsyncServer.eio`` (the Engine.IO server) and its ``sockets`` by Engine.IO sid;
``AsyncServer._handle_eio_connect`` (extended, for the CONNECT timeout);
``eio._async["websocket"]``, the ASGI driver's WebSocket class, replaced by a subclass
on this server only (a copy of the table) that records each client's WebSocket scope
(for tickcast's socket extension) and reports Engine.IO's websocket writes
(``drained``); ``AsyncSocket._websocket_handler`` being the handler that class is given
(its ``__self__`` is the Engine.IO socket); and ``AsyncManager.connect`` being called
after the CONNECT answer is queued (python-socketio 5, without ``always_connect``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

import msgspec
import socketio
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from engineio.async_drivers import asgi as eio_asgi
from socketio import packet as sio_packet
from socketio.exceptions import ConnectionRefusedError as SocketIORefusal
from starlette.types import Receive, Scope, Send

from tickcast.auth.credentials import Principal
from tickcast.auth.limits import SubscriptionCap
from tickcast.closecodes import CloseCode, info
from tickcast.config.groups import SignalsSettings
from tickcast.errors import ConfigError
from tickcast.fronts.base import FrontContext, FrontSpec, Opened, WebSocketFront
from tickcast.fronts.guard import RateLimited, Ticket, client_address, header
from tickcast.model.envelope import Envelope
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.socketio import codec
from tickcast.protocols.socketio.session import CAP_MESSAGE, SocketIOSession
from tickcast.signals.history import SignalHistory
from tickcast.transport.connection import Connection
from tickcast.transport.socket import EXTENSION, FrameSocket
from tickcast.transport.socketio_socket import DEFAULT_QUEUE_LIMIT, Replayed, SocketIOSocket
from tickcast.transport.uvicorn_protocols import SHUTDOWN_EXTENSION, ShutdownNotice

log = logging.getLogger("tickcast.fronts.socketio")

NAME: Final = "socketio"
#: Where the front is mounted (``app.py``), and python-socketio's ``socketio_path``.
PREFIX: Final = "/socket.io"
NAMESPACE: Final = "/"
WELCOME: Final = "Connected to tickcast: trading signals and worker statuses follow"

_json: Final = msgspec.json.Encoder()
#: Digits past which a JSON integer in a client's packet is not converted (python-engineio's
#: own bound, against the quadratic cost of converting a long digit string).
_INT_DIGITS: Final = 100


def _bounded_int(text: str) -> int | str:
    """A JSON integer as an int, or as its digits in a string when it has more than
    ``_INT_DIGITS``: no field takes a string for a number, so the session refuses it in
    its own words. (python-engineio's ``json`` raises there, so python-socketio drops
    the packet and logs a traceback: a client would get no answer, and could fill the
    error log. An infinity would not do: the event is encoded again for the session,
    and JSON has no infinity.)"""
    if len(text) - text.startswith("-") > _INT_DIGITS:
        return text
    return int(text)


class _PacketJson:
    """The ``json`` module python-socketio and python-engineio decode packets with: the
    standard one, but for integers too long to convert (``_bounded_int``)."""

    dumps = staticmethod(json.dumps)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return json.loads(text, parse_int=_bounded_int, **kwargs)


#: Engine.IO's packet types (open, close, ping, pong, message, upgrade, noop).
_PACKET_TYPES: Final = frozenset(range(7))
#: What a client may POST: Engine.IO's CLOSE, PONG, MESSAGE and UPGRADE (as text:
#: Front 5 takes no binary).
_CLIENT_PACKETS: Final = frozenset((b"1", b"3", b"4", b"5"))
#: Packets one long-polling POST may carry: socket.io-client puts every packet queued
#: while a POST is in flight into the next one. Each event in it counts against the
#: rate limit; more packets than this are refused with 400 (python-engineio's own limit,
#: 16, drops the whole POST and answers 200, so a burst of 20 events would vanish).
MAX_POST_PACKETS: Final = 256


class SocketIOSpec(FrontSpec):
    """Front 5's spec: guarded, credentials at the CONNECT, the ``socketio`` wire; no
    WebSocket path of its own (``SocketIOEndpoint`` serves it)."""

    name = NAME
    paths = ()
    codecs = codec.CODECS

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        session = SocketIOSession(
            welcome=WELCOME,
            is_known=ctx.is_known,
            cap=SubscriptionCap(ctx.limits.max_subscriptions, CAP_MESSAGE),
        )
        return Opened(session, wire=codec.WIRE, window_s=ctx.outbox.batch_ms / 1000)

    def snapshot(self, topic: Topic, cached: Envelope | None, ctx: FrontContext) -> Envelope | None:
        """A quote's current value at once; never a signal already sent: a signal is
        news once (catch-up is by ``last_signal_id``)."""
        return None if topic.channel == Channel.SIGNALS else cached


class _Client:
    __slots__ = ("connection", "eio_sid", "peer", "session", "sid", "sock")

    def __init__(
        self,
        sid: str,
        eio_sid: str,
        sock: SocketIOSocket,
        connection: Connection,
        session: SocketIOSession,
        peer: str,
    ) -> None:
        self.sid = sid
        self.eio_sid = eio_sid
        self.sock = sock
        self.connection = connection
        self.session = session
        self.peer = peer


class _Server(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, ending an Engine.IO session that joins no namespace
    within ``connect_timeout_s`` (Socket.IO's ``connectTimeout``; python-socketio has
    none): the guard's caps count Socket.IO clients, so an Engine.IO session that never
    sends CONNECT would otherwise be held for as long as it answers pings."""

    connect_timeout_s: float = 45.0
    #: Called with an Engine.IO sid when its session ends, whatever the namespace state.
    on_session_end: Callable[[str], None] | None = None
    #: Ends an Engine.IO session (its CLOSE, then its transport): the endpoint's.
    end_session: Callable[[str], None] | None = None

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """Front 5 carries text events only: a binary message, or a Socket.IO packet
        announcing binary attachments (BINARY_EVENT 5, BINARY_ACK 6), ends the session
        at once (python-socketio would keep every attachment announced, up to
        999,999,999 of them, outside any rate limit or memory bound)."""
        if not isinstance(data, str) or data[:1] in ("5", "6"):
            if self.end_session is not None:
                self.end_session(eio_sid)
            return
        await super()._handle_eio_message(eio_sid, data)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        """A namespace other than ``/`` is refused with a CONNECT_ERROR whose data is an
        object with a ``message`` (python-socketio sends a bare string, and
        socket.io-client reads ``err.message`` from the object: it would be empty)."""
        if (namespace or NAMESPACE) != NAMESPACE:
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    sio_packet.CONNECT_ERROR,
                    data={"message": f"Unknown namespace {namespace!r}: only '/' is served"},
                    namespace=namespace,
                ),
            )
            return
        await super()._handle_connect(eio_sid, namespace, data)

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> Any:
        result = await super()._handle_eio_connect(eio_sid, environ)
        loop = asyncio.get_running_loop()
        loop.call_later(self.connect_timeout_s, self._joined_or_closed, eio_sid)
        return result

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            if self.on_session_end is not None:
                self.on_session_end(eio_sid)

    def _joined_or_closed(self, eio_sid: str) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or socket.closing:
            return
        if self.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is not None:
            return
        if self.end_session is not None:
            self.end_session(eio_sid)


class _Manager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's client manager, telling the front when a client's CONNECT
    has been answered (so that ``welcome`` follows it)."""

    def __init__(self, connected: Callable[[str], None]) -> None:
        super().__init__()
        self._connected = connected

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        if namespace == NAMESPACE:
            self._connected(sid)
        return result


def _resume_point(auth: object) -> str | None:
    if isinstance(auth, dict):
        value = auth.get("last_signal_id")
        if isinstance(value, str) and value:
            return value
    return None


def check_internals(server: socketio.AsyncServer) -> None:
    """Refuse to start on a python-socketio / python-engineio that lacks what this front
    relies on (the module docstrings list it), with a message that says so, rather than
    fail on the first client."""
    eio = server.eio
    missing = [
        name
        for name, present in (
            ("engineio AsyncServer.reason", hasattr(eio, "reason")),
            ("engineio AsyncServer._async['websocket']", "websocket" in getattr(eio, "_async", {})),
            (
                "engineio Payload.max_decode_packets",
                hasattr(eio_payload.Payload, "max_decode_packets"),
            ),
            (
                "engineio Packet.encode_cache",
                hasattr(eio_packet.Packet(eio_packet.NOOP), "encode_cache"),
            ),
            (
                "socketio AsyncServer._handle_eio_disconnect",
                hasattr(server, "_handle_eio_disconnect"),
            ),
            ("socketio AsyncServer._handle_eio_message", hasattr(server, "_handle_eio_message")),
            ("socketio AsyncServer._handle_connect", hasattr(server, "_handle_connect")),
        )
        if not present
    ]
    if missing:
        raise ConfigError(
            "the installed python-socketio/python-engineio lack what Front 5 relies on "
            f"({', '.join(missing)}): install python-socketio>=5.18.1 and python-engineio>=4.15.1"
        )


class SocketIOEndpoint:
    """The ASGI endpoint of Front 5 under ``PREFIX`` (see the module docstring).

    Args:
        front: the contract front whose spec, guard, roster and context it uses.
        settings: the signals group (Engine.IO's heartbeat).
        history: recent signals, for ``last_signal_id`` (None: no catch-up; every
            resume is a ``reset``).
        queue_limit: Engine.IO packets a client's queue may hold before its Outbox
            takes over (``SocketIOSocket``).
    """

    prefix = PREFIX

    def __init__(
        self,
        front: WebSocketFront,
        settings: SignalsSettings,
        history: SignalHistory | None,
        *,
        queue_limit: int | None = None,
    ) -> None:
        self.front = front
        self.ctx = front.ctx
        self.history = history
        self.queue_limit = queue_limit or DEFAULT_QUEUE_LIMIT
        self.clients: dict[str, _Client] = {}
        self.pending: dict[str, _Client] = {}
        self.by_eio: dict[str, SocketIOSocket] = {}
        #: The server's WebSocket of each Engine.IO client on the websocket transport.
        self.carriers: dict[str, FrameSocket] = {}
        #: Engine.IO sessions being ended: no client joins through one again.
        self.ending: set[str] = set()
        #: The ``last_signal_id`` of each client between its CONNECT and its start.
        self._resume: dict[str, str | None] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        server = _Server(
            async_mode="asgi",
            client_manager=_Manager(self._connected),
            cors_allowed_origins="*",  # the guard decides, at the CONNECT (docstring)
            cors_credentials=True,
            ping_interval=settings.socketio_ping_interval_s,
            ping_timeout=settings.socketio_ping_timeout_s,
            max_http_buffer_size=self.ctx.server.max_message_bytes,
            logger=_quiet("socketio"),
            engineio_logger=_quiet("engineio"),
            async_handlers=False,  # a client's events in the order they came
            json=_PacketJson,
        )
        check_internals(server)
        server.on_session_end = self._session_ended
        server.end_session = self._end_session
        server.on("connect", self._connect)
        server.on("disconnect", self._disconnect)
        server.on("*", self._event)
        eio = server.eio
        eio._async = {**eio._async, "websocket": self._websocket_class()}
        # python-engineio's packet limit of a POST is a class attribute: ours is checked
        # before (``__call__``), so it must let everything up to it through
        eio_payload.Payload.max_decode_packets = max(
            eio_payload.Payload.max_decode_packets, MAX_POST_PACKETS
        )
        self.server = server
        self.app = socketio.ASGIApp(server, socketio_path=PREFIX.lstrip("/"))

    # -- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sid: str | None = None
        if scope["type"] == "http":
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if "j" in query:
                # JSONP polling (a <script> tag: no Origin header, the cookie sent
                # cross-site) would pass the origin allow-list: not served
                await _plain(send, 400, b"JSONP polling is not served")
                return
            sid = query["sid"][0] if query.get("sid") else None
            if sid is not None and scope.get("method") == "POST":
                read = await _read_body(receive, self.server.eio.max_http_buffer_size)
                if read is None:
                    return  # the client left
                if isinstance(read, int):
                    await _plain(send, read, b"The POST is too large")
                    return
                body, receive = read
                packets = body.split(b"\x1e")
                if len(packets) > MAX_POST_PACKETS:
                    # python-engineio would drop the whole POST and answer 200
                    await _plain(send, 400, b"Too many packets in one POST")
                    return
                if any(packet[:1] not in _CLIENT_PACKETS for packet in packets):
                    # python-engineio would end the session and hold this POST until a
                    # poll takes the CLOSE (for ever, if the client does not poll)
                    await _plain(send, 400, b"Not an Engine.IO packet a client sends")
                    return
        notice = scope.get("extensions", {}).get(SHUTDOWN_EXTENSION)
        if sid is not None and isinstance(notice, ShutdownNotice):
            notice.callback = functools.partial(self._shutting_down, sid)
        watcher: asyncio.Future[None] | None = None
        if sid is not None and scope.get("method") == "GET":
            # a poll waits for packets; if its client goes away meanwhile (a tab shut),
            # nobody can take them: end the session, so that the poll returns now
            # (uvicorn cannot ask a connection it has lost to shut down)
            first = await receive()
            if first["type"] != "http.request":
                return
            watcher = asyncio.ensure_future(self._gone_while_polling(receive, sid))
            receive = _replaying(first)
        try:
            await self.app(scope, receive, send)
        finally:
            if watcher is not None:
                watcher.cancel()
            if isinstance(notice, ShutdownNotice):
                notice.callback = None
        if sid is not None and scope.get("method") == "GET":
            # a poll answered: Engine.IO's queue was taken, the outbox may go on
            sock = self.by_eio.get(sid)
            if sock is not None:
                sock.drained()

    async def _gone_while_polling(self, receive: Receive, eio_sid: str) -> None:
        """Wait for the poll's client to disconnect (cancelled when the poll returns)."""
        message = await receive()
        if message["type"] == "http.disconnect":
            self._end_session(eio_sid)

    def _websocket_class(self) -> type[eio_asgi.WebSocket]:
        endpoint = self

        class EngineWebSocket(eio_asgi.WebSocket):  # type: ignore[misc]
            """python-engineio's ASGI WebSocket, noting the server's socket of its
            client (tickcast's extension) and telling the client's FrameSocket when
            Engine.IO has written."""

            eio_sid = ""

            async def __call__(self, environ: dict[str, Any]) -> Any:
                scope = environ["asgi.scope"]
                self.eio_sid = getattr(getattr(self.handler, "__self__", None), "sid", "")
                carrier = scope.get("extensions", {}).get(EXTENSION)
                if carrier is not None and self.eio_sid:
                    endpoint.carriers[self.eio_sid] = carrier
                try:
                    return await super().__call__(environ)
                finally:
                    if endpoint.carriers.get(self.eio_sid) is carrier:
                        endpoint.carriers.pop(self.eio_sid, None)

            async def wait(self) -> Any:
                """The next message; one that is no Engine.IO packet at all (empty, an
                unknown type, not decodable) ends the connection as a closed socket
                would: python-engineio decodes it outside its handler's ``try``, so
                its exception would escape to the server, a traceback per message."""
                data = await super().wait()
                try:
                    decoded = eio_packet.Packet(encoded_packet=data)
                except (ValueError, IndexError):
                    raise OSError("not an Engine.IO packet") from None
                if decoded.packet_type not in _PACKET_TYPES:
                    raise OSError("not an Engine.IO packet")
                return data

            async def send(self, message: Any) -> None:
                await super().send(message)
                sock = endpoint.by_eio.get(self.eio_sid)
                if sock is not None:
                    sock.drained()

        return EngineWebSocket

    # -- Socket.IO events

    async def _connect(self, sid: str, environ: Any, auth: Any = None, *rest: Any) -> None:
        manager = self.server.manager
        if not manager.is_pre_connected(sid, NAMESPACE):
            return  # a client emitting "connect" as an event: ignored
        if manager.eio_sid_from_sid(sid, NAMESPACE) in self.ending:
            raise SocketIORefusal("this session has ended: open a new one")
        scope: Scope = environ["asgi.scope"]
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is not None and not isinstance(token, str):
            raise SocketIORefusal("auth.token must be a string")
        guard = self.front.guard
        ticket: Ticket | None = None
        if guard is not None:
            ticket, refusal = await guard.admit(scope, token=token)
            if refusal is not None:
                log.info(
                    "client refused",
                    extra={"front": NAME, "sid": sid, "client": client_address(scope)},
                )
                raise SocketIORefusal(refusal.message)
        eio_sid = manager.eio_sid_from_sid(sid, NAMESPACE)
        eio_socket = self.server.eio.sockets.get(eio_sid)
        if eio_socket is None or eio_socket.closed or eio_socket.closing:  # gone meanwhile
            if guard is not None and ticket is not None:
                guard.release(ticket)
            raise SocketIORefusal("the connection is gone")
        sock = SocketIOSocket(
            eio_socket,
            lambda: self.carriers.get(eio_sid),
            lambda code, reason: self._close(sid, code, reason),
            self.ctx.clock,
            self.queue_limit,
        )
        try:
            connection = self.front.connect(scope, sock, ticket)  # its close releases it
        except BaseException:
            if guard is not None and ticket is not None:
                guard.release(ticket)
            raise
        sock.outbox = connection.outbox
        session = connection.session
        inner = session.session if isinstance(session, RateLimited) else session
        assert isinstance(inner, SocketIOSession)
        client = _Client(sid, eio_sid, sock, connection, inner, client_address(scope))
        self.pending[sid] = client
        self.by_eio[eio_sid] = sock
        self._resume[sid] = _resume_point(auth)
        principal = ticket.principal.user_id if ticket is not None else None
        log.info(
            "client connected",
            extra={
                "front": NAME,
                "sid": sid,
                "client": client.peer,
                "origin": header(scope, b"origin"),
                "user_id": principal,
            },
        )

    def _connected(self, sid: str) -> None:
        """python-socketio queued the CONNECT answer: start the client's stream."""
        client = self.pending.pop(sid, None)
        if client is None:
            return
        self.clients[sid] = client
        connection = client.connection
        connection.start()  # welcome; the channels held channel-wide
        last = self._resume.pop(sid, None)
        if last is not None and not connection.closing:
            self._replay(connection, last)

    def _replay(self, connection: Connection, last_signal_id: str) -> None:
        """The signals published after ``last_signal_id``, in order, ahead of any live
        one (this runs in the same loop step as the subscription); ``reset`` when the
        history does not hold that id."""
        hub = self.ctx.hub
        missed = (
            None
            if self.history is None
            else self.history.after(last_signal_id, self.ctx.clock.wall())
        )
        if missed is None:
            connection.queue(
                codec.control(
                    codec.RESET, last_signal_id=last_signal_id, reason="unknown_signal_id"
                )
            )
        else:
            for envelope in missed:  # never narrowed by a later subscribe's types
                connection.queue(Replayed.of(hub.encode(codec.WIRE, envelope)))
        connection.flush_now()

    async def _disconnect(self, sid: str, reason: Any = None, *rest: Any) -> None:
        if self.server.manager.is_connected(sid, NAMESPACE):
            return  # a client emitting "disconnect" as an event: ignored
        self._resume.pop(sid, None)
        client = self._release(sid, 1000)
        if client is None:
            return
        # one Socket.IO client per Engine.IO session: a client that leaves the namespace
        # (``41``) ends its session too, as socket.io-client does itself, so that a
        # session never outlives its client uncounted, nor joins again with a fresh rate
        # limit
        self._end_session(client.eio_sid)
        log.info(
            "client disconnected",
            extra={
                "front": NAME,
                "sid": sid,
                "client": client.peer,
                "reason": str(reason),
                "code": client.connection.close_code,
            },
        )

    async def _event(self, event: str, sid: str, *args: Any) -> Any:
        client = self.clients.get(sid)
        if client is None:
            return None
        session = client.session
        session.ack = None
        text = _json.encode([event, *args]).decode()
        client.connection.receive_text(text)
        client.sock.types = session.types
        return session.ack

    # -- closing

    def _close(self, sid: str, code: int, reason: str) -> None:
        """The connection closed (rate limit, slow consumer, expired credential...). A
        close whose advice is to reconnect (``closecodes``: 3002, 1013, 1001, 1011)
        ends the Engine.IO session only: socket.io-client then reconnects with its
        back-off. A terminal one (3501, an expired credential) is Socket.IO's DISCONNECT
        first, which socket.io-client takes as final ("io server disconnect")."""
        client = self.clients.get(sid) or self.pending.get(sid)
        eio_sid = client.eio_sid if client is not None else None
        try:
            final = not info(CloseCode(code)).reconnect
        except ValueError:
            final = True
        task = asyncio.ensure_future(self._disconnect_client(sid, eio_sid, final=final))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info(
            "closing client", extra={"front": NAME, "sid": sid, "code": code, "reason": reason}
        )

    async def _disconnect_client(self, sid: str, eio_sid: str | None, *, final: bool) -> None:
        """Socket.IO's DISCONNECT when ``final``, then Engine.IO's CLOSE: the client is
        gone from the namespace and the transport (its further packets reach nothing)."""
        if final:
            await self.server.disconnect(sid, namespace=NAMESPACE)
        await self._close_session(eio_sid)

    def _end_session(self, eio_sid: str) -> None:
        """End an Engine.IO session from a callback (``_close_session`` in a task); from
        now on it joins nothing (a CONNECT that came before its close is refused)."""
        self.ending.add(eio_sid)
        task = asyncio.ensure_future(self._close_session(eio_sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_session(self, eio_sid: str | None) -> None:
        """Engine.IO's CLOSE, then, on the websocket transport, the WebSocket itself: a
        client that ignores the CLOSE and goes on sending is cut (python-engineio keeps
        reading a socket it has closed for as long as its client writes)."""
        eio = self.server.eio
        socket = eio.sockets.get(eio_sid) if eio_sid is not None else None
        if socket is not None and not socket.closed and not socket.closing:
            # not eio.disconnect: it waits until the client takes its CLOSE, which a
            # slow client never does
            await socket.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
        carrier = self.carriers.get(eio_sid) if eio_sid is not None else None
        if carrier is None or socket is None:
            return
        with contextlib.suppress(TimeoutError):  # the CLOSE first, if the client reads
            await asyncio.wait_for(socket.queue.join(), self.ctx.server.close_timeout_s)
        carrier.close(CloseCode.NORMAL, "session closed")

    def _shutting_down(self, eio_sid: str) -> None:
        """Server shutdown reached a poll still waiting: end its Engine.IO session, so
        that the poll returns the CLOSE now (the client reconnects elsewhere) instead of
        holding the shutdown until its heartbeat's deadline."""
        task = asyncio.ensure_future(self._close_session(eio_sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Shutdown: end every client's Engine.IO session (socket.io-client reconnects,
        elsewhere), then release what is left."""
        for client in [*self.clients.values(), *self.pending.values()]:
            self._shutting_down(client.eio_sid)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        for sid in list(self.clients) + list(self.pending):
            await self._disconnect_now(sid)

    def _session_ended(self, eio_sid: str) -> None:
        """The Engine.IO session ended: a client python-socketio did not report gone (it
        was between its CONNECT and its start, say) is released here."""
        self.ending.discard(eio_sid)
        for sid, client in [*self.clients.items(), *self.pending.items()]:
            if client.eio_sid == eio_sid:
                self._resume.pop(sid, None)
                self._release(sid, 1006)

    async def _disconnect_now(self, sid: str) -> None:
        self._release(sid, 1001)

    def _release(self, sid: str, code: int) -> _Client | None:
        """Forget the client ``sid``: nothing more is written, its connection releases
        what it held (hub subscriptions, the guard's slot)."""
        client = self.clients.pop(sid, None) or self.pending.pop(sid, None)
        if client is not None:
            self.by_eio.pop(client.eio_sid, None)
            client.sock.gone()
            client.connection.finished(code)
        return client


class _ClientFault(logging.Filter):
    """python-engineio logs what a client got wrong (a payload of too many packets, a
    malformed one) as an ERROR with a traceback: any client could fill the log so. Such
    a record is kept as one WARNING line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet(name: str) -> logging.Logger:
    """The logger python-socketio or python-engineio is given: under tickcast's, at
    ERROR (their INFO is a line per packet, and python-socketio warns once per event a
    client sends after it was disconnected), client faults without tracebacks."""
    logger = logging.getLogger(f"tickcast.fronts.socketio.{name}")
    logger.setLevel(logging.ERROR)
    if not any(isinstance(f, _ClientFault) for f in logger.filters):
        logger.addFilter(_ClientFault())
    return logger


async def _plain(send: Send, status: int, text: bytes) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(text)),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


def _replaying(first: Any) -> Receive:
    """A ``receive`` that gives ``first`` (a request already read), then nothing more:
    the real one is another's to wait on."""
    given = False

    async def receive() -> Any:
        nonlocal given
        if not given:
            given = True
            return first
        await asyncio.Event().wait()  # never: python-engineio reads a GET's request once

    return receive


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, Receive] | int | None:
    """A request's whole body (at most ``limit`` bytes), and a ``receive`` that hands it
    to the application again; 413 when it is larger; None when the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return 413
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    given = False

    async def again() -> Any:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, again
