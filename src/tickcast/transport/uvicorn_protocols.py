"""uvicorn protocol classes with the limits a gateway needs: the HTTP protocol here, the
WebSocket protocol it upgrades to in ``uvicorn_websocket.py`` (the limits, the fast path,
the handshake from httptools' parse) and its frame socket in ``uvicorn_socket.py``.

Rules: with those two, the only modules that know uvicorn's internals; the names the
rest of tickcast imports from the three are importable from here too.

This module adds to uvicorn's HTTP protocol a handshake timeout: a connection that has
not sent a complete request head within ``handshake_timeout_s`` is closed (slowloris),
the bytes that followed the upgrade request in the same read handed to the WebSocket
protocol (uvicorn's hands it only the request head, rebuilt, and drops them: a message
sent with the upgrade was lost), the request head as httptools parsed it handed to the
WebSocket protocol (not rebuilt for websockets to parse again), a short unsent queue in
the kernel (``NOTSENT_LOWAT``), a ``ShutdownNotice`` for streaming responses to end
themselves at shutdown, and streaming to HTTP/1.0 clients: a response of unknown length
(no ``Content-Length``) to an HTTP/1.0 request is its body up to the connection's
close, never chunked (uvicorn's httptools protocol would chunk it, which HTTP/1.0 does
not know; SockJS's streaming transports meet such clients). ``protocol_classes`` makes
both classes with the settings' timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any, Final

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from tickcast.transport import handshake
from tickcast.transport.uvicorn_socket import (
    PEER_LIMITED_BYTES,
    UvicornFrameSocket,
    _Flag,
    _ServerProtocol,
)
from tickcast.transport.uvicorn_websocket import (
    CLOSE_DRAIN_MAX_S,
    EARLY_BYTES_MAX,
    PING_BURST,
    PING_RATE_PER_S,
    TickcastWebSocketProtocol,
)

__all__ = [
    "CLOSE_DRAIN_MAX_S",
    "EARLY_BYTES_MAX",
    "NOTSENT_LOWAT",
    "PEER_LIMITED_BYTES",
    "PING_BURST",
    "PING_RATE_PER_S",
    "SHUTDOWN_EXTENSION",
    "SHUTDOWN_GRACE_S",
    "ShutdownNotice",
    "TickcastHttpProtocol",
    "TickcastWebSocketProtocol",
    "UvicornFrameSocket",
    "_Flag",
    "_ServerProtocol",
    "protocol_classes",
]

#: Unsent bytes the kernel may hold per connection (Linux, macOS: TCP_NOTSENT_LOWAT).
#: Data in flight still grows with the path; only the queue the peer has not been sent
#: yet is kept short, so a client that does not read blocks its socket after about this
#: much instead of after the kernel's auto-tuned buffer (megabytes), which would hide a
#: slow client for tens of seconds and then make its close frame wait behind all of it.
NOTSENT_LOWAT: Final = 64 * 1024


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
