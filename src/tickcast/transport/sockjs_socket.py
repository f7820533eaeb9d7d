"""A FrameSocket over a SockJS session: what a ``Connection`` writes to for a client
that reaches the gateway through SockJS (``fronts/sockjs.py`` drives the requests).

Rules: thin I/O, synchronous like every FrameSocket. A batch the connection writes
becomes the session's messages (``SockJSSession.send_encoded``), so one batch is one
``a[...]`` frame; the request attached at the time (a poll, a stream, a websocket) is
told (``on_data``) and writes it.

Backpressure: ``writable`` is True only while a receiving request is attached and its
last write is not backed up (``sending``). Between two polls, or while a stream's send
waits for the peer, the connection's Outbox holds what comes, conflating quotes, and the
slow-client rule applies as on a WebSocket (a client that neither polls nor reads for
``slow_client_timeout_s`` while reliable data waits is closed). ``on_writable`` fires
when a request attaches (``attached``) and when a backed-up write completes
(``drained``). Under the ``websocket`` transport the server's own socket (``carrier``)
says when its buffer is full, as for a raw WebSocket client.

Escaping: a published item (one with a topic: the hub's, or a STOMP front's headed
item shared by the connections whose subscriptions share a head) is escaped as a JSON
string through a memo shared by every session of the endpoint (``EscapeMemo``): once
per item, not once per session. Replies (no topic) are escaped as they come.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tickcast.clock import Clock
from tickcast.hub.outbox import Outbox
from tickcast.protocols.sockjs.framing import EscapeMemo, encode_message
from tickcast.protocols.sockjs.session import SockJSSession
from tickcast.protocols.wire import Encoded
from tickcast.transport.socket import FrameSocket, ItemSink


def _escaped(payload: bytes) -> bytes:
    return encode_message(payload.decode(errors="replace"))


class SockJSSocket(ItemSink):
    """FrameSocket over ``session`` (see the module docstring).

    Args:
        session: the SockJS session the connection's messages go to.
        clock: the connection's clock (``now`` for the session).
        memo: the endpoint's escape memo.
        on_close: called once, when the connection closes the socket (the endpoint then
            ends the connection; the session keeps answering with its ``c`` frame).
    """

    raw = False

    __slots__ = (
        "_on_close",
        "carrier",
        "clock",
        "closed",
        "memo",
        "on_data",
        "on_writable",
        "outbox",
        "sending",
        "session",
    )

    def __init__(
        self,
        session: SockJSSession,
        clock: Clock,
        memo: EscapeMemo,
        on_close: Callable[[], None],
    ) -> None:
        self.session = session
        self.clock = clock
        self.memo = memo
        self.on_writable: Callable[[], None] | None = None
        #: The attached request's wake-up: the session has bytes for it.
        self.on_data: Callable[[], None] | None = None
        #: The attached request's write is waiting for its peer.
        self.sending = False
        self.closed = False
        self._on_close = on_close
        #: The connection's outbox: what it still holds when it closes goes into the
        #: session ahead of the close frame (a poll takes it; see ``close``).
        self.outbox: Outbox[Encoded] | None = None
        #: The server's own socket under a ``websocket`` transport, when it offers one:
        #: not writable while its buffer is full (its ``on_writable`` calls ``drained``).
        self.carrier: FrameSocket | None = None

    @property
    def writable(self) -> bool:
        if self.closed or self.sending or self.session.receiver is None:
            return False
        carrier = self.carrier
        return carrier is None or carrier.writable

    def peer_limited(self) -> bool | None:
        # no request attached, or its write backed up: the client does not take data
        return None

    def write_frames(self, data: bytes) -> bool:
        raise TypeError("SockJSSocket is not raw: the connection sends it items")

    def send_items(self, items: Sequence[Encoded]) -> None:
        self._send(self.memo.encode_batch(items))

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        self._send([_escaped(p) for p in payloads])

    def send_bytes(self, payload: bytes) -> None:
        self._send([_escaped(payload)])  # SockJS carries text only

    def _send(self, encoded: list[bytes]) -> None:
        if self.closed:
            return
        self.session.send_encoded(encoded, self.clock.now())
        self.wake()

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        """The session's close frame goes behind what it holds; nothing is written after
        it. (No abort: a request that does not take its bytes ends with its client.)

        What the connection's outbox still holds (its last words, an ERROR say, queued
        between two polls) goes into the session first: a WebSocket would have taken it
        at once, a SockJS client takes it with its next request. A connection that
        drops its backlog (a slow client) has cleared the outbox already."""
        if self.closed:
            return
        if self.outbox is not None and (
            items := self.outbox.flush(self.clock.monotonic(), force=True)
        ):
            self.send_items(items)  # forced, a flush takes everything held
        self.closed = True
        self.session.close(self.clock.now(), code, reason)
        self.wake()
        self._on_close()

    # -- the endpoint's side

    def wake(self) -> None:
        """Tell the attached request that the session may have bytes for it."""
        if self.on_data is not None:
            self.on_data()

    def attached(self) -> None:
        """A receiving request attached: what the outbox holds may go now."""
        self.wake()
        if self.writable and self.on_writable is not None:
            self.on_writable()

    def drained(self) -> None:
        """The attached request's backed-up write completed."""
        if self.writable and self.on_writable is not None:
            self.on_writable()
