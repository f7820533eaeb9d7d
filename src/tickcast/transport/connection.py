"""Connection: the one driver that runs a sans-I/O session over a FrameSocket.

Rules: thin I/O. It feeds client messages to the session, hands the session's commands
to its front, queues outbound items in the connection's Outbox and lets the Pump decide
when to write. It never awaits per outbound message: a batch is one socket write (an
array frame, or many frames joined). The protocol decisions live in the session; the
queueing decisions in the Outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Protocol

from tickcast.closecodes import CloseCode, info
from tickcast.hub.hub import Encoded
from tickcast.hub.outbox import Outbox
from tickcast.hub.pump import Pump
from tickcast.observability.stats import Stats
from tickcast.protocols.wsframe import text_frame
from tickcast.transport.socket import FrameSocket

log = logging.getLogger("tickcast.connection")

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class Session(Protocol):
    """The sans-I/O surface every protocol session offers."""

    close_reason: CloseCode | None

    def receive_text(self, data: str, now: float) -> None: ...
    def receive_bytes(self, data: bytes, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def next_deadline(self) -> float | None: ...
    def frames_to_send(self) -> list[Encoded]: ...
    def commands_received(self) -> Sequence[object]: ...


class Connection:
    """One client connection: a hub subscriber and a pump writer.

    Args:
        sock: the socket to write to.
        session: the protocol state machine.
        wire: codec name for hub fan-out to this connection.
        array: write each batch of data items as one JSON array frame.
        outbox: this connection's bounded queue.
        pump: the shared flush scheduler.
        stats: gateway counters.
        on_commands: the front's handler for the session's commands.
    """

    __slots__ = (
        "_flushes",
        "_timer",
        "array",
        "close_code",
        "closing",
        "latency",
        "on_close",
        "on_commands",
        "outbox",
        "pump",
        "session",
        "sock",
        "stats",
        "wire",
    )

    def __init__(
        self,
        *,
        sock: FrameSocket,
        session: Session,
        wire: str,
        array: bool,
        outbox: Outbox[Encoded],
        pump: Pump,
        stats: Stats,
        on_commands: Callable[[Connection, Sequence[object]], None],
        on_close: Callable[[Connection], None],
        latency: Callable[[float], None] | None = None,
    ) -> None:
        self.sock = sock
        self.session = session
        self.wire = wire
        self.array = array
        self.outbox = outbox
        self.pump = pump
        self.stats = stats
        self.on_commands = on_commands
        self.on_close = on_close
        self.latency = latency
        self.closing = False
        self.close_code: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._flushes = 0
        sock.on_writable = self._on_writable

    # -- hub.Subscriber

    def deliver(self, item: Encoded, key: str | None) -> None:
        if self.closing:
            return
        outbox = self.outbox
        was_empty = not len(outbox)
        if outbox.put(item, self.pump.now, key) is not None:
            self.close_slow()
        elif was_empty:
            self.pump.mark(self, self.pump.now + outbox.window_s)

    # -- pump.Writer

    def due_at(self) -> float | None:
        return self.outbox.next_flush()

    def flush(self, now: float, *, force: bool) -> None:
        if self.closing or not self.sock.writable:
            return  # stays queued (and conflating) until the socket drains
        items = self.outbox.flush(now, force=force)
        if items:
            self._write(items)

    def _write(self, items: list[Encoded]) -> None:
        sock = self.sock
        stats = self.stats
        stats.items_out += len(items)
        if self.array:
            payloads = _array_payloads(items)
            stats.frames_out += len(payloads)
            if sock.raw:
                sock.write_frames(b"".join([text_frame(p) for p in payloads]))
            else:
                sock.send_texts(payloads)
        else:
            stats.frames_out += len(items)
            if sock.raw:
                sock.write_frames(b"".join([item.frame for item in items]))
            else:
                _send_framed_by_socket(sock, items)
        self._flushes += 1
        if self.latency is not None and self._flushes & 7 == 1:
            ts = items[-1].ts
            if ts:
                self.latency(time.time() - ts)

    def _on_writable(self) -> None:
        if self.outbox.next_flush() is not None:
            self.flush(self.pump.loop.time(), force=True)

    # -- queueing from the front

    def queue(self, item: Encoded, key: str | None = None) -> None:
        """Queue one item for this connection only (snapshots, replays, replies)."""
        self.deliver(item, key)

    def flush_now(self) -> None:
        """Write everything queued now (after a client command, so replies are prompt)."""
        self.flush(self.pump.loop.time(), force=True)

    def close_slow(self) -> None:
        """The outbox overflowed: close as a slow consumer, without touching the hub now.

        Called from inside the hub's fan-out loop, so unsubscribing is deferred.
        """
        if self.closing:
            return
        self.stats.slow_closes += 1
        log.warning("closing slow client", extra={"pending": len(self.outbox)})
        self.close(CloseCode.TRY_AGAIN_LATER)

    def close(self, code: CloseCode, reason: str | None = None) -> None:
        if self.closing:
            return
        self.closing = True
        self.close_code = int(code)
        self.sock.close(code, reason or info(code).reason)

    # -- inbound

    async def run(self, receive: Receive) -> None:
        """Read client messages until the socket closes."""
        loop = asyncio.get_running_loop()
        self._process()
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    if self.close_code is None:
                        self.close_code = int(message.get("code", 1005))
                    break
                if kind != "websocket.receive":
                    continue
                self.stats.client_messages_in += 1
                now = time.time()
                text = message.get("text")
                if text is not None:
                    self.session.receive_text(text, now)
                else:
                    self.session.receive_bytes(message.get("bytes") or b"", now)
                self._process()
                if self.closing:
                    break
                self.pump.now = loop.time()
        finally:
            self.closing = True
            if self._timer is not None:
                self._timer.cancel()
            self.on_close(self)

    def poke(self) -> None:
        """Apply what the session produced outside a client message (an async answer)."""
        if not self.closing:
            self._process()

    def _process(self) -> None:
        """Apply what the session produced: replies, commands, timers, close."""
        session = self.session
        self.pump.now = self.pump.loop.time()
        for frame in session.frames_to_send():
            self.queue(frame)
        commands = session.commands_received()
        if commands:
            self.on_commands(self, commands)
        self.flush_now()
        if session.close_reason is not None:
            self.close(session.close_reason)
            return
        self._schedule_timer()

    def _schedule_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.session.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - time.time())
            self._timer = self.pump.loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closing:
            return
        self.session.handle_timer(time.time())
        self._process()


def _send_framed_by_socket(sock: FrameSocket, items: list[Encoded]) -> None:
    """Without raw frames (compression, plain ASGI): runs of text go in one call."""
    texts: list[bytes] = []
    for item in items:
        if item.binary:
            if texts:
                sock.send_texts(texts)
                texts = []
            sock.send_bytes(item.payload)
        else:
            texts.append(item.payload)
    if texts:
        sock.send_texts(texts)


def _array_payloads(items: list[Encoded]) -> list[bytes]:
    """Group runs of data items into JSON arrays; control replies stay on their own."""
    payloads: list[bytes] = []
    run: list[bytes] = []
    for item in items:
        if item.control:
            if run:
                payloads.append(b"[" + b",".join(run) + b"]")
                run = []
            payloads.append(item.payload)
        else:
            run.append(item.payload)
    if run:
        payloads.append(b"[" + b",".join(run) + b"]")
    return payloads
