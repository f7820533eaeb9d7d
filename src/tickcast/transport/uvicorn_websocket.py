"""tickcast's uvicorn WebSocket protocol: uvicorn's sans-I/O one (websockets
``ServerProtocol``) with the limits a gateway needs, the frame socket and the fast path.

Rules: with ``uvicorn_protocols.py`` (the HTTP protocol) and ``uvicorn_socket.py`` (the
frame socket), the only modules that know uvicorn's internals. It adds:

- a ``FrameSocket`` in the ASGI scope (``scope["extensions"]["tickcast.socket"]``), so
  that a batch of pre-built frames is one ``transport.write`` and nothing awaits per
  subscriber;
- a close that works while the peer is not reading (uvicorn's waits for the buffer to
  drain, which a stalled peer never lets happen): the close frame goes behind what is
  buffered, and the connection is aborted only when the peer stops taking data for
  ``close_timeout_s`` (a slow reader still gets every frame whole, then the close), or
  after ``CLOSE_DRAIN_MAX_S`` in all;
- close code 1001 on server shutdown (uvicorn sends 1012);
- a clean close when a Close frame arrives in the middle of a fragmented message (RFC
  6455 section 5.4 allows control frames between fragments; websockets answers 1002,
  Autobahn case 7.1.5);
- a 1007 close for a text message that is not UTF-8 without an ERROR traceback in the
  log (uvicorn logs one per message, which lets any client flood the error log);
- bounded pongs: while the transport's write buffer is over its high-water mark (64
  KiB: the peer is not reading), a ping is not answered at once; only the latest one's
  payload is kept, and one pong goes when the buffer drains (RFC 6455 section 5.5.3
  allows answering only the most recent ping). A client that sends pings and never
  reads its socket then makes the gateway hold at most the high-water mark plus the
  pongs of one read (256 KiB), not a pong per ping (uvicorn writes every one);
- bytes that came after the request head, before the handshake is answered (a client
  that sends its first message without waiting for the 101, even in the upgrade's own
  TCP segment), are held and parsed once the handshake is accepted, in order: parsed
  before, a ping would be answered ahead of the 101 and a compressed frame refused
  (the extensions are not negotiated yet). Past ``EARLY_BYTES_MAX`` the peer is not
  read until then;
- the fast path (``transport/direct.py``): a ``Direct`` in the scope
  (``scope["extensions"]["tickcast.direct"]``, the protocol itself) to which a front
  hands its accepted ``Connection`` (or any ``direct.Attached``: SockJS's websocket
  transport hands its session's adapter); from then on ``data_received`` drives it (each
  complete message to ``receive_text`` / ``receive_bytes``, a close or the lost
  connection to ``finished``), the ASGI task ends without closing the socket, and the
  receive queue, the scope and the write state's ``asyncio.Event`` are dropped for
  plain objects. An app that can connect a client at once (``connect_direct``:
  ``direct.DirectConnect``) is asked to first, at the upgrade: no task, no ASGI call;
- a cheaper connect: uvicorn's ``__init__`` re-stated so that one websockets
  ``ServerProtocol`` (tickcast's) is built per connection, not uvicorn's and then a
  second; the addresses the HTTP protocol read handed on at the upgrade rather than read
  from the socket again; the accept answered as uvicorn answers it, without formatting
  the arguments of an access-log line that INFO being off drops
  (tests/integration/test_connect_path.py holds the re-stated ``__init__`` to uvicorn's);
- the handshake answered from the request head httptools parsed (``upgrade``;
  ``transport/handshake.py`` checks it as websockets would and builds the 101), not from
  the head rebuilt and parsed again by websockets (a ``Response`` with a ``Date`` that
  uvicorn replaces); any request that check does not take goes to websockets as before;
- a cap on pings: ``PING_BURST`` at once, then ``PING_RATE_PER_S`` a second (a keepalive
  pings every few seconds); past that the client is closed with 3002 (too many
  messages), as a client over the message rate is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final, Literal
from urllib.parse import unquote

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_path_with_query_string,
)
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame

from tickcast.auth.limits import TokenBucket
from tickcast.closecodes import CLOSE_INFO, CloseCode
from tickcast.transport import handshake
from tickcast.transport.direct import DIRECT_EXTENSION, Attached
from tickcast.transport.socket import EXTENSION
from tickcast.transport.uvicorn_socket import (
    _DISCARD,
    _OPEN,
    _TIOCOUTQ,
    UvicornFrameSocket,
    _deflate,
    _Flag,
    _kernel_bytes,
    _ServerProtocol,
)

_RATE_LIMITED: Final = CLOSE_INFO[CloseCode.RATE_LIMITED]
#: The 101's header lines from the server's default headers (remade when they change).
_DEFAULT_LINES: Final = handshake.HeaderLines()

#: Bytes a client may send after its upgrade request before the handshake is answered
#: (held until then); past this, its socket is not read until the answer.
EARLY_BYTES_MAX: Final = 64 * 1024

#: Pings a client may send at once, then a second: a keepalive pings every few seconds
#: (websockets' clients every 20 s, browsers never); past it the client is closed (3002).
PING_BURST: Final = 50
PING_RATE_PER_S: Final = 10.0

#: The longest a closing connection whose peer keeps taking data (slowly) is kept, to
#: let it read what was written before the close frame, and the close frame.
CLOSE_DRAIN_MAX_S: Final = 60.0

_UVICORN_LOG: Final = logging.getLogger("uvicorn.error")
#: The uvicorn whose WebSocket protocol ``__init__`` is re-stated below (any other runs its own).
_RESTATED: Final = uvicorn.__version__.startswith("0.55.")


class TickcastWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus a FrameSocket, a non-blocking close and
    the fast path (``attach``: the protocol drives an accepted connection itself)."""

    close_timeout_s: float = 5.0
    conn: _ServerProtocol

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # uvicorn's __init__ (0.55), without building a websockets ServerProtocol that
        # would be replaced at once (each one costs a parser generator, a stream reader
        # and a uuid4: a tenth of a connect's handshake work) and without looking the
        # logger up twice per connection. Another uvicorn runs its own __init__ and has
        # its ServerProtocol replaced (the attributes may differ between versions).
        if not _RESTATED:
            super().__init__(config, server_state, app_state, _loop)
            self.conn = _ServerProtocol(
                extensions=_deflate(config.ws_per_message_deflate),
                max_size=config.ws_max_size,
                logger=_UVICORN_LOG,
            )
            self._tickcast_init()
            return
        if not config.loaded:
            config.load()  # pragma: no cover
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.logger = _UVICORN_LOG
        self.root_path = config.root_path
        self.asgi_version = config.asgi_version
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        self.transport = None  # type: ignore[assignment]
        self.server = None
        self.client = None
        self.scheme = None  # type: ignore[assignment]
        self.queue = asyncio.Queue()
        self.handshake_initiated = False
        self.handshake_complete = False
        self.close_sent = False
        self.disconnected = False
        self.close_timer = None
        self.initial_response = None
        self.conn = _ServerProtocol(
            extensions=_deflate(config.ws_per_message_deflate),
            max_size=config.ws_max_size,
            logger=_UVICORN_LOG,
        )
        self.read_paused = False
        self.writable = asyncio.Event()
        self.writable.set()
        self.ping_interval = config.ws_ping_interval
        self.ping_timeout = config.ws_ping_timeout
        self.ping_timer = None
        self.pong_timer = None
        self.pending_ping_payload = None
        self.ping_sent_at = 0.0
        self.last_ping_rtt = 0.0
        self.frames = []
        self.curr_msg_data_type = "bytes"
        self._tickcast_init()

    def _tickcast_init(self) -> None:
        self.close_timeout = self.close_timeout_s
        self._on_abort: Callable[[], None] | None = None
        self._drain_started = 0.0
        self._drain_left = 0
        self.frame_socket = UvicornFrameSocket(self)
        # the fast path: the connection this protocol drives, once a front attached it
        self._attached = False
        self._direct: Attached | None = None
        self._on_end: Callable[[Any], None] | None = None
        self._pings: TokenBucket | None = None  # made at the first ping
        # what the client sent after its request, before the handshake's answer
        self._early: bytearray | None = None
        # the request checked from httptools' parse, until the app accepts it; None when
        # websockets parsed it (uvicorn's handle_connect: ``request`` and ``response``)
        self._accepted: handshake.Accepted | None = None
        self.request: Any = None
        self.response: Any = None

    def upgraded(
        self,
        transport: asyncio.Transport,
        server: tuple[str, int | None] | None,
        client: tuple[str, int] | None,
        scheme: Literal["ws", "wss"],
    ) -> None:
        """``connection_made`` for a connection upgraded from tickcast's HTTP protocol,
        with the addresses and scheme it read already."""
        self.connections.add(self)
        self.transport = transport
        self.server = server
        self.client = client
        self.scheme = scheme

    def upgrade(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """The request head httptools parsed, handed over by the HTTP protocol: the
        handshake starts from it when websockets would accept the request
        (``handshake.check``); any other request is rebuilt and parsed by websockets,
        which answers it, as uvicorn does it. ``headers`` becomes the scope's."""
        factories = self.conn.available_extensions
        accepted = handshake.check(method, target, headers, factories) if _RESTATED else None
        if accepted is None:
            self.data_received(handshake.request_head(method, target, headers))
            return
        # uvicorn's handle_connect from here, with the head as httptools gave it
        self._accepted = accepted
        self.conn.accept_called = True  # as in websockets' accept (a refusal's log line)
        self.handshake_initiated = True
        raw_path, _, query_string = target.partition(b"?")
        root_path = self.root_path
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": root_path,
            "path": root_path + unquote(raw_path.decode("ascii")),
            "raw_path": root_path.encode("ascii") + raw_path,
            "query_string": query_string,
            "headers": headers,
            "subprotocols": accepted.subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self._offer(self.scope)
        if self._connect_direct():
            return
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    def _connect_direct(self) -> bool:
        """The app's ``connect_direct`` (``transport/direct.py``), if it has one: True
        if it connected the client at once (no task, no ASGI call), or failed to (then
        answered as ``run_asgi`` answers an app's exception); False: nothing was done."""
        connect = getattr(self.app, "connect_direct", None)
        if connect is None:
            return False
        try:
            if not connect(self.scope, self):
                return False
        except Exception:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
            if self.close_timer is None and not self._attached:
                self.transport.close()
            return True
        self.scope = None  # type: ignore[assignment]
        return True

    def accept(self, subprotocol: str | None = None) -> None:
        """``Direct.accept``: the 101 now, as ``send`` answers ``websocket.accept``, from
        the app's ``connect_direct`` (the handshake is not answered yet, nothing has
        been written, so the transport is writable)."""
        message: dict[str, Any] = {"type": "websocket.accept"}
        if subprotocol is not None:
            message["subprotocol"] = subprotocol
        self._accept(message)
        if self._early is not None:
            if self.handshake_complete:
                self._flush_early()
            else:
                self._early = None

    def data_received(self, data: bytes) -> None:
        early = self._early
        if early is None:
            super().data_received(data)
            return
        early += data
        if len(early) > EARLY_BYTES_MAX and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _flush_early(self) -> None:
        """The handshake is answered: what the client sent before it, parsed now."""
        early, self._early = self._early, None
        if self.read_paused:  # by data_received above (no message is queued yet)
            self.read_paused = False
            self.transport.resume_reading()
        if early and not self.transport.is_closing():
            super().data_received(bytes(early))

    def send_receive_event_to_app(self) -> None:
        if self._attached:  # the fast path: to the connection (none once it ended)
            if self._direct is not None:
                self._receive_direct()
            else:
                self.frames = []
            return
        if self.curr_msg_data_type == "text" and not self.close_sent:
            try:
                b"".join(self.frames).decode()
            except UnicodeDecodeError:
                self.frames = []
                self.conn.send_close(1007, "invalid UTF-8")
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            self._offer(scope)

    def _offer(self, scope: Any) -> None:
        """The ASGI task was created but has not run yet: the scope can still be extended
        with the frame socket and the fast path's ``Direct``."""
        extensions = scope["extensions"]
        extensions[EXTENSION] = self.frame_socket
        extensions[DIRECT_EXTENSION] = self
        self._early = bytearray()  # held until the app answers the handshake

    async def send(self, message: Any) -> None:
        accept = message["type"] == "websocket.accept"
        if accept and not self.writable.is_set():
            await self.writable.wait()  # as uvicorn's send does, first
        if (
            accept
            and not self.handshake_complete
            and self.initial_response is None
            and not self.disconnected
        ):
            self._accept(message)
        else:
            await super().send(message)
        if self._early is not None:
            if message["type"] == "websocket.accept" and self.handshake_complete:
                self._flush_early()  # queued before the app's next step (or attach)
            else:  # refused: never parsed
                self._early = None
        if message["type"] == "websocket.accept":
            # The parsed handshake is not needed once answered: about 1.7 KiB a
            # connection. websockets' parser (a generator) keeps the request for the
            # connection's life, so its headers are emptied, not only let go of here.
            request = self.request
            if request is not None:
                request.headers.clear()
            self.request = self.response = None

    def _accept(self, message: Any) -> None:
        """uvicorn's answer to ``websocket.accept``, without formatting its access-log
        line's arguments when INFO is off (the client's address and the quoted path, per
        connection); the 101 built from the checked request (``handshake.response``)
        unless websockets parsed it."""
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(
                '%s - "WebSocket %s" [accepted]',
                get_client_addr(self.scope),
                get_path_with_query_string(self.scope),
            )
        accepted, self._accepted = self._accepted, None
        if accepted is not None:
            lines = _DEFAULT_LINES(self.default_headers)
            extra = message.get("headers")
            if extra:
                lines += handshake.header_lines(extra)
            response = handshake.response(accepted, lines, message.get("subprotocol"))
            if not self.transport.is_closing():
                self.handshake_complete = True
                self.conn.opened(accepted.extensions)
                self.frame_socket.opened()
                self.transport.write(response)
                self.start_keepalive()
            return
        headers = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in (self.default_headers + list(message.get("headers", [])))
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        fields = self.response.headers
        del fields["Date"]
        for name, value in headers:  # what Headers.update does, without its ABC checks
            fields[name] = value
        if not self.transport.is_closing():
            self.handshake_complete = True
            self.conn.send_response(self.response)
            self.frame_socket.opened()
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.start_keepalive()

    # -- the fast path (transport/direct.py)

    def attach(self, connection: Attached, on_end: Callable[[Any], None] | None = None) -> None:
        """Drive ``connection`` from ``data_received`` from now on (``Direct.attach``)."""
        if self._attached:
            raise RuntimeError("a connection is attached to this protocol already")
        pending = self.queue
        self._attached = True
        self._direct = connection
        self._on_end = on_end
        self.queue = _DISCARD  # type: ignore[assignment]
        self.writable = _Flag(self.writable.is_set())  # type: ignore[assignment]
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        # What arrived while the front admitted the client (a client that sent before
        # the handshake's answer), in order.
        while not pending.empty():
            message = pending.get_nowait()
            if message["type"] == "websocket.disconnect":
                self._end(message.get("code", 1005))
                return
            if message["type"] == "websocket.receive":
                text = message.get("text")
                if text is not None:
                    self._text(text)
                else:
                    self._bytes(message.get("bytes") or b"")
        if self.disconnected:
            self._end(1006)

    def _receive_direct(self) -> None:
        """A complete message arrived on an attached connection: to its session."""
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # closing: discarded, as uvicorn does
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.conn.send_close(1007, "invalid UTF-8")
                self.handle_parser_exception()
                return
            self._text(text)
        else:
            self._bytes(bytes(data))

    def _text(self, text: str) -> None:
        connection = self._direct
        if connection is not None and not connection.receive_text(text):
            self._end()

    def _bytes(self, data: bytes) -> None:
        connection = self._direct
        if connection is not None and not connection.receive_bytes(data):
            self._end()

    def _end(self, code: int | None = None) -> None:
        """The attached connection is over: ``finished`` (once), then ``on_end``."""
        connection, self._direct = self._direct, None
        if connection is None:
            return
        on_end, self._on_end = self._on_end, None
        try:
            connection.finished(code)
            if on_end is not None:
                on_end(connection)
        except Exception:  # never out of a loop callback
            self.logger.exception("releasing a WebSocket connection failed")

    async def run_asgi(self) -> None:
        """uvicorn's, except that an ASGI call that attached its connection returns with
        the socket open: the protocol drives it from then on (and drops the scope)."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if self._attached:
                self.scope = None  # type: ignore[assignment]
                return
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.close_timer is None and not self._attached:
            self.transport.close()

    def handle_close(self, event: Frame) -> None:
        ends = self._direct is not None and not self.close_sent and not self.transport.is_closing()
        code = self.conn.close_rcvd.code if ends and self.conn.close_rcvd is not None else 1005
        super().handle_close(event)
        if ends:
            self._end(code)

    def handle_parser_exception(self) -> None:
        super().handle_parser_exception()
        if self._direct is not None:
            sent = self.conn.close_sent
            self._end(sent.code if sent is not None else 1006)

    def connection_lost(self, exc: Exception | None) -> None:
        code = 1005 if self.handshake_complete and self.initial_response is None else 1006
        super().connection_lost(exc)
        if self._direct is not None:
            self._end(code)

    def handle_ping(self) -> None:
        """uvicorn's (write the pong websockets queued, unless held), within the cap."""
        pings = self._pings
        if pings is None:
            pings = self._pings = TokenBucket(PING_RATE_PER_S, PING_BURST)
        if not pings.allow(self.loop.time()):
            if not self.close_sent:
                self.close_now(_RATE_LIMITED.code, "too many pings")
            return
        super().handle_ping()

    def pause_writing(self) -> None:
        super().pause_writing()
        self.conn.hold_pongs = True

    def resume_writing(self) -> None:
        conn = self.conn
        conn.hold_pongs = False
        pong, conn.held_pong = conn.held_pong, None
        if pong is not None and conn.state is _OPEN and not self.disconnected:
            conn.send_pong(pong)  # the latest ping held while the buffer was full
            self.transport.write(b"".join(conn.data_to_send()))
        super().resume_writing()
        callback = self.frame_socket.on_writable
        if callback is not None:
            callback()

    def close_now(self, code: int, reason: str, on_abort: Callable[[], None] | None = None) -> None:
        if self._direct is not None:
            # Released on the next pass, as the ASGI path's receive loop would: this
            # close may come from inside the hub's fan-out (a slow client).
            self.loop.call_soon(self._end, code)
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        # transport.close() would wait for the buffer to drain, which a stalled peer
        # never lets happen; transport.abort() now would cut the frame in flight. Watch
        # the peer take the data instead (see _drain_check).
        self._on_abort = on_abort
        self._drain_started = self.loop.time()
        self._drain_left = self._unacked()
        self.close_timer = self.loop.call_later(self.close_timeout, self._drain_check)

    def _unacked(self) -> int:
        """Bytes written that the peer has not acknowledged: ours, and the kernel's."""
        kernel = _kernel_bytes(self.transport, _TIOCOUTQ)
        return int(self.transport.get_write_buffer_size()) + (kernel or 0)

    def _drain_check(self) -> None:
        """``close_timeout`` after the close frame (or the previous check), no answer yet."""
        self.close_timer = None
        if self.disconnected:
            return
        left = self._unacked()
        if left == 0:
            # The peer has everything, the close frame included, and does not answer:
            # end the TCP connection in order (an abort could make its kernel discard
            # what it has not read yet).
            self.transport.close()
            return
        if left < self._drain_left and self.loop.time() - self._drain_started < CLOSE_DRAIN_MAX_S:
            self._drain_left = left  # still reading: give it another close_timeout
            self.close_timer = self.loop.call_later(self.close_timeout, self._drain_check)
            return
        self.transport.abort()
        if self._on_abort is not None:
            self._on_abort()

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and not self.disconnected:
            self.stop_keepalive()
            self.close_now(CloseCode.GOING_AWAY, "server shutting down")
            return
        super().shutdown()
