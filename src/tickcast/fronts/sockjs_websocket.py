"""SockJS's ``websocket`` transport: a session over one WebSocket.

Rules: thin I/O under ``fronts/sockjs.py`` (the endpoint routes, admits and keeps the
sessions). Under tickcast's uvicorn protocol with ``ws_fast_path`` on, the session runs
on the fast path (``transport/direct.py``): once accepted and opened, the session's
``DirectWebSocket`` is handed to the protocol, which gives it each message and the
WebSocket's end, and the ASGI call returns; its writes go out inside the connection's
flush, its heartbeat on a loop timer. Elsewhere it runs as the HTTP transports do
(``fronts/sockjs_stream.py``): the ASGI receive loop, and a writer task (a ``Stream``).
A message that is not JSON closes the WebSocket with ``BROKEN_FRAMING``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from tickcast.closecodes import CloseCode
from tickcast.fronts.guard import refuse
from tickcast.fronts.sockjs_stream import first
from tickcast.protocols.sockjs.framing import BROKEN_FRAMING, WEBSOCKET, PayloadError
from tickcast.protocols.sockjs.session import Receiver
from tickcast.protocols.wsframe import frame_header
from tickcast.transport.direct import DIRECT_EXTENSION, Direct
from tickcast.transport.socket import EXTENSION, FrameSocket

if TYPE_CHECKING:
    from tickcast.fronts.sockjs import Client, SockJSEndpoint

log = logging.getLogger("tickcast.fronts.sockjs")


class DirectWebSocket:
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
        client: Client,
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
        self._endpoint.finish(self._session, code if code is not None else 1006)


async def serve_websocket(
    endpoint: SockJSEndpoint, scope: Scope, receive: Receive, send: Send
) -> None:
    """A ``websocket`` transport request: admitted, accepted, its session opened and
    run (on the fast path when the server offers it) until the WebSocket ends."""
    if (await receive())["type"] != "websocket.connect":
        return
    ticket, refusal = await endpoint.admit(scope)
    if refusal is not None:
        await refuse(scope, send, refusal)
        return
    await send({"type": "websocket.accept"})
    client = endpoint.open_client(scope, None, ticket)
    session, sock = client.session, client.sock
    clock = endpoint.ctx.clock
    carrier: FrameSocket | None = scope.get("extensions", {}).get(EXTENSION)
    if carrier is not None:  # the server's socket: frames in one write, its buffer seen
        sock.carrier = carrier
        carrier.on_writable = sock.drained
    receiver = session.attach(WEBSOCKET, clock.now())
    direct = _direct(endpoint, scope)
    if direct is not None and carrier is not None:
        # the fast path: the server's protocol drives the session from here
        attached = DirectWebSocket(endpoint, client, receiver, carrier)
        try:
            attached.start()
            direct.attach(attached)
        except BaseException:  # the session ends here: its connection and slot go back
            session.abort(receiver, clock.now())
            endpoint.finish(session, 1011)
            raise
        return
    closed: list[tuple[int, str]] = []

    def write_now(frames: list[bytes], done: bool) -> None:
        assert carrier is not None
        if frames:
            carrier.send_texts(frames)  # a message per frame, one write
        if done:
            carrier.close(*(closed[0] if closed else (1000, "")))

    async def write(frames: list[bytes], done: bool) -> None:
        for data in frames:
            await send({"type": "websocket.send", "text": data.decode()})
        if done:
            code, reason = closed[0] if closed else (1000, "")
            await send({"type": "websocket.close", "code": code, "reason": reason})

    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if carrier is not None:
        stream = endpoint.stream(session, receiver, None, gone, write_now)
    else:
        stream = endpoint.stream(session, receiver, write, gone)
    writer = asyncio.ensure_future(stream)
    try:
        while not writer.done():
            message = await first(receive(), writer)
            if message is None or message["type"] == "websocket.disconnect":
                break
            if message["type"] != "websocket.receive":
                continue
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            try:
                session.receive_websocket(data, clock.now())
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
        session.abort(receiver, clock.now())
        endpoint.finish(session, 1006)


def _direct(endpoint: SockJSEndpoint, scope: Scope) -> Direct | None:
    """The server protocol that drives an accepted WebSocket itself (the fast path:
    tickcast's uvicorn protocol, ``ws_fast_path`` on), or None."""
    if not endpoint.ctx.server.ws_fast_path:
        return None
    direct: Direct | None = (scope.get("extensions") or {}).get(DIRECT_EXTENSION)
    return direct
