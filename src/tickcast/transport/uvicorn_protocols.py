"""uvicorn protocol classes with the limits a gateway needs, and a frame socket.

Rules: the only module that knows uvicorn's internals. It adds to uvicorn's sans-I/O
WebSocket protocol (websockets ``ServerProtocol``):

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
  connection to ``finished``), the
  ASGI task ends without closing the socket, and the receive queue, the scope and the
  ``asyncio.Event`` of the write state are dropped for plain objects;
- a cheaper connect: uvicorn's ``__init__`` re-stated so that one websockets
  ``ServerProtocol`` (tickcast's) is built per connection, not uvicorn's and then a
  second; the addresses the HTTP protocol read handed on at the upgrade rather than read
  from the socket again; the accept answered as uvicorn answers it, without formatting
  the arguments of an access-log line that INFO being off drops
  (tests/integration/test_connect_path.py holds the re-stated ``__init__`` to uvicorn's);
- the handshake answered from the request head httptools parsed (``upgrade``;
  ``transport/handshake.py`` checks it as websockets would and builds the 101), not from
  the head rebuilt as bytes and parsed again by websockets, which then builds a
  ``Response`` with a ``Date`` that uvicorn replaces; a request that check does not
  take (any websockets refuses) goes to websockets as before, which answers it;
- a cap on pings: a client may send ``PING_BURST`` pings at once and then
  ``PING_RATE_PER_S`` a second (a keepalive pings every few seconds); past that each
  ping is a parse and a pong the gateway pays for nothing, and the client is closed
  with 3002 (too many messages), as a client over the message rate is;

and to uvicorn's HTTP protocol a handshake timeout: a connection that has not sent a
complete request head within ``handshake_timeout_s`` is closed (slowloris), the bytes
that followed the upgrade request in the same read handed to the WebSocket protocol
(uvicorn's hands it only the request head, rebuilt, and drops them: a message sent
with the upgrade was lost), a short
unsent queue in the kernel (``NOTSENT_LOWAT``), and streaming to HTTP/1.0 clients: a
response of unknown length (no ``Content-Length``) to an HTTP/1.0 request is its body up
to the connection's close, never chunked (uvicorn's httptools protocol would chunk it,
which HTTP/1.0 does not know; SockJS's streaming transports meet such clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal
from urllib.parse import unquote

import httptools
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_path_with_query_string,
)
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.extensions import Extension
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from tickcast.auth.limits import TokenBucket
from tickcast.closecodes import CLOSE_INFO, CloseCode
from tickcast.transport import handshake
from tickcast.transport.direct import DIRECT_EXTENSION, Attached
from tickcast.transport.socket import EXTENSION

try:  # Linux: what the kernel holds for a TCP peer
    import fcntl
    import termios

    #: bytes written that the peer has not acknowledged (sent or not)
    _TIOCOUTQ: int | None = termios.TIOCOUTQ
    #: bytes written that the kernel has not sent yet (SIOCOUTQNSD, linux/sockios.h)
    _SIOCOUTQNSD: int | None = 0x894B
except (ImportError, AttributeError):  # pragma: no cover - not Linux
    _TIOCOUTQ = _SIOCOUTQNSD = None

#: Unsent bytes in the kernel from which the peer, not the gateway, holds data back: a
#: peer that reads gets what the kernel has at once, so its unsent queue stays near 0;
#: one that does not read leaves it at about ``NOTSENT_LOWAT``.
PEER_LIMITED_BYTES: Final = 16 * 1024


def _kernel_bytes(transport: asyncio.BaseTransport, request: int | None) -> int | None:
    """An ioctl byte count of the transport's socket, or None if it cannot be read."""
    sock = transport.get_extra_info("socket")
    if sock is None or request is None:
        return None
    try:
        raw = fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0")
    except (OSError, ValueError):
        return None
    return int(struct.unpack("i", raw)[0])


_OPEN: Final = State.OPEN
_RATE_LIMITED: Final = CLOSE_INFO[CloseCode.RATE_LIMITED]

#: Unsent bytes the kernel may hold per connection (Linux, macOS: TCP_NOTSENT_LOWAT).
#: Data in flight still grows with the path; only the queue the peer has not been sent
#: yet is kept short, so a client that does not read blocks its socket after about this
#: much instead of after the kernel's auto-tuned buffer (megabytes), which would hide a
#: slow client for tens of seconds and then make its close frame wait behind all of it.
NOTSENT_LOWAT: Final = 64 * 1024

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


class _ServerProtocol(ServerProtocol):
    """websockets' sans-I/O server protocol, accepting a Close between fragments, and
    holding pongs back while ``hold_pongs`` (the transport is not writable): only the
    latest ping's payload is kept (``held_pong``), for the owner to answer later."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold_pongs = False
        self.held_pong: bytes | None = None

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.PING and self.hold_pongs:
            self.held_pong = bytes(frame.data)  # RFC 6455 5.5.3: the most recent only
            self.events.append(frame)
            return
        if frame.opcode is Opcode.CLOSE and self.current_size is not None:
            self.current_size = None  # the connection ends: drop the unfinished message
        super().recv_frame(frame)

    def opened(self, extensions: list[Extension]) -> None:
        """Accepted from a request head it did not parse (``transport/handshake.py``
        checked it): the state websockets' ``send_response`` of a 101 leaves, with the
        extensions negotiated, and the frame parser its ``parse`` moves on to after the
        request (the one started at ``__init__`` waits for a request that never comes)."""
        self.extensions = extensions
        self.state = _OPEN
        self.logger.info("connection open")
        self.parser = self.parse()
        next(self.parser)


class UvicornFrameSocket:
    """FrameSocket over one uvicorn WebSocket connection."""

    __slots__ = ("_protocol", "on_writable")

    def __init__(self, protocol: TickcastWebSocketProtocol) -> None:
        self._protocol = protocol
        self.on_writable: Callable[[], None] | None = None

    @property
    def raw(self) -> bool:
        return not self._protocol.conn.extensions

    def _open(self) -> bool:
        """Data may still be sent: neither side has started closing (a close sent or
        received, or a failure, leaves the sans-I/O protocol CLOSING) and the connection
        is not lost."""
        p = self._protocol
        return p.conn.state is _OPEN and not p.disconnected

    # ``writable`` and ``write_frames`` run once per write: they read websockets' state
    # behind its ``state`` property (``_state``, a test pins it) and inline ``_open``.
    @property
    def writable(self) -> bool:
        p = self._protocol
        return p.writable.is_set() and p.conn._state is _OPEN and not p.disconnected

    def write_frames(self, data: bytes) -> None:
        p = self._protocol
        if p.conn._state is _OPEN and not p.disconnected:
            p.transport.write(data)

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        # A peer's Close moves the protocol to CLOSING before the app hears of it;
        # sending then would raise InvalidState out of the pump.
        if not self._open():
            return
        p = self._protocol
        for payload in payloads:
            p.conn.send_text(payload)
        p.transport.write(b"".join(p.conn.data_to_send()))

    def send_bytes(self, payload: bytes) -> None:
        if not self._open():
            return
        p = self._protocol
        p.conn.send_binary(payload)
        p.transport.write(b"".join(p.conn.data_to_send()))

    def peer_limited(self) -> bool | None:
        unsent = _kernel_bytes(self._protocol.transport, _SIOCOUTQNSD)
        return None if unsent is None else unsent >= PEER_LIMITED_BYTES

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        self._protocol.close_now(code, reason, on_abort)


class _Flag:
    """The write state once nothing awaits it: what the protocol and the frame socket use
    of an ``asyncio.Event`` (``is_set``, ``set``, ``clear``), without its waiter deque."""

    __slots__ = ("_set",)

    def __init__(self, value: bool) -> None:
        self._set = value

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False


class _Discard:
    """The receive queue of a connection the protocol drives itself: nobody reads it, so
    what uvicorn's code puts there (a disconnect) is dropped."""

    __slots__ = ()

    def put_nowait(self, item: Any) -> None:
        pass

    def empty(self) -> bool:
        return True


_DISCARD: Final = _Discard()


class _HeaderLines:
    """The server's default headers (``server_state.default_headers``, a new list when
    its ``Date`` changes, once a second) as the 101's header lines, made once per list."""

    __slots__ = ("_headers", "_lines")

    def __init__(self) -> None:
        self._headers: list[tuple[bytes, bytes]] | None = None
        self._lines = b""

    def __call__(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        if headers is not self._headers:
            self._lines = handshake.header_lines(headers)
            self._headers = headers
        return self._lines


_DEFAULT_LINES: Final = _HeaderLines()


_UVICORN_LOG: Final = logging.getLogger("uvicorn.error")
#: The uvicorn whose WebSocket protocol ``__init__`` is re-stated below (any other runs its own).
_RESTATED: Final = uvicorn.__version__.startswith("0.55.")


def _deflate(on: bool) -> list[Any]:
    """The extensions offered: permessage-deflate as uvicorn configures it, when on (a
    factory per connection, as uvicorn builds it)."""
    if not on:
        return []
    return [
        ServerPerMessageDeflateFactory(
            server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
        )
    ]


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
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)
        self._offer(self.scope)

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


class _Http10Cycle(RequestResponseCycle):
    """An HTTP/1.0 request's cycle: a response without ``Content-Length`` (or
    ``Transfer-Encoding``) is written as it comes and ends with the connection (HTTP/1.0
    has no keep-alive here: uvicorn closes after every 1.0 response)."""

    _until_close = False

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.response_started:
            names = {bytes(name).lower() for name, _ in message.get("headers", ())}
            status = message["status"]
            if (
                b"content-length" not in names
                and b"transfer-encoding" not in names
                and self.scope["method"] != "HEAD"
                and status not in (204, 304)
            ):
                self._until_close = True
                self.chunked_encoding = False  # uvicorn adds no chunked encoding now
        elif kind == "http.response.body" and self._until_close:
            body = message.get("body", b"")
            # what uvicorn checks a body against: this chunk, and 0 left at the end
            self.expected_content_length = len(body)
            if message.get("more_body", False):
                self.expected_content_length += 1
        await super().send(message)
        if kind == "http.response.body" and self._until_close:
            self.expected_content_length = 0


#: ASGI scope extension of an HTTP request: a ``ShutdownNotice``.
SHUTDOWN_EXTENSION: Final = "tickcast.http.shutdown"
#: How long a streaming response may take to end itself at shutdown before it is cut.
SHUTDOWN_GRACE_S: Final = 1.0


class ShutdownNotice:
    """What a streaming response's app sets (``callback``) to end the response itself
    when the server shuts down: it writes its last words and completes the response,
    which uvicorn then closes."""

    __slots__ = ("callback",)

    def __init__(self) -> None:
        self.callback: Callable[[], None] | None = None


class TickcastHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a timeout on the first request head."""

    handshake_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and hasattr(socket, "TCP_NOTSENT_LOWAT"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)
        self._head_timer: asyncio.TimerHandle | None = None
        if self.handshake_timeout_s > 0:
            self._head_timer = self.loop.call_later(self.handshake_timeout_s, self._head_timeout)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, except that on a WebSocket upgrade the bytes after the request (a
        message sent with it) go to the WebSocket protocol too."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as upgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
                rest = data[upgrade.args[0] :]
                protocol = self.transport.get_protocol()
                if rest and protocol is not self and not self.transport.is_closing():
                    protocol.data_received(rest)  # type: ignore[attr-defined]
            else:
                self._unsupported_upgrade_warning()

    def handle_websocket_upgrade(self) -> None:
        """uvicorn's, except that tickcast's WebSocket protocol is handed the addresses
        this protocol read when the connection was made, not asked to read them again,
        and the request head as httptools parsed it, not rebuilt for websockets to parse
        again (``TickcastWebSocketProtocol.upgrade``)."""
        self.connections.discard(self)
        method = self.scope["method"].encode()
        headers = self.headers  # the scope's: one pair per line, names lower-cased
        protocol = self.ws_protocol_class(  # type: ignore[call-arg, misc]
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        if not isinstance(protocol, TickcastWebSocketProtocol):  # pragma: no cover - another
            protocol.connection_made(self.transport)
            self.transport.set_protocol(protocol)
            protocol.data_received(handshake.request_head(method, self.url, headers))
            return
        secure = self.scheme == "https"
        protocol.upgraded(self.transport, self.server, self.client, "wss" if secure else "ws")
        self.transport.set_protocol(protocol)
        protocol.upgrade(method, self.url, headers)

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle.scope is not self.scope:
            return  # an upgrade: no response cycle for this request
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[SHUTDOWN_EXTENSION] = ShutdownNotice()
        if self.scope.get("http_version") == "1.0" and type(cycle) is RequestResponseCycle:
            cycle.__class__ = _Http10Cycle

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """Server shutdown: a response still streaming (a SockJS stream or long poll)
        ends now, as WebSockets are closed (1001); its client reconnects elsewhere. If
        its app said how to end it (``ShutdownNotice``: SockJS writes its close frame;
        an Engine.IO poll not yet answered gets its CLOSE), it is asked to, and the
        connection closes once the response is complete, or after ``SHUTDOWN_GRACE_S``
        at the latest; otherwise a started response is cut at once. Anything else ends
        as uvicorn ends it."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            notice = self.scope.get("extensions", {}).get(SHUTDOWN_EXTENSION)
            callback = notice.callback if isinstance(notice, ShutdownNotice) else None
            if callback is not None:
                cycle.keep_alive = False  # uvicorn closes once the response is complete
                self.loop.call_later(SHUTDOWN_GRACE_S, self._cut)
                callback()
                return
            if cycle.response_started:
                self.transport.close()
                return
        super().shutdown()

    def _cut(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol_classes(
    *, handshake_timeout_s: float, close_timeout_s: float
) -> tuple[type[TickcastHttpProtocol], type[TickcastWebSocketProtocol]]:
    """HTTP and WebSocket protocol classes configured with these timeouts (seconds)."""
    http = type(
        "TickcastHttp", (TickcastHttpProtocol,), {"handshake_timeout_s": handshake_timeout_s}
    )
    ws = type(
        "TickcastWebSocket", (TickcastWebSocketProtocol,), {"close_timeout_s": close_timeout_s}
    )
    return http, ws
