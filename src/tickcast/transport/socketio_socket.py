"""A FrameSocket over one Engine.IO socket of python-engineio: what a ``Connection``
writes to for a Socket.IO client (``fronts/socketio.py`` drives it).

Rules: thin I/O, synchronous like every FrameSocket. The hub's items for this wire are
Engine.IO message texts already (``42["new_signal",{...}]``, ``protocols/socketio``), so
the socket only chooses where they go:

- **Engine.IO's queue** (long-polling, an upgrade in progress, or a server without
  tickcast's socket extension): each item becomes one Engine.IO MESSAGE packet whose
  encoding is the item's text (``Packet.encode_cache``: nothing is encoded again), put on
  the socket's queue, which the poll (or Engine.IO's websocket writer) takes. That queue
  is unbounded, so this socket bounds it: ``writable`` only while it holds fewer than
  ``queue_limit`` packets. Past that the connection's Outbox holds what comes
  (conflating quotes) and the slow-client rule applies, as on a WebSocket. The front
  calls ``drained`` when a poll or a websocket write has taken packets.
- **The server's own WebSocket** (``direct``): once the client is on the websocket
  transport (upgraded, or websocket from the start) and uvicorn runs tickcast's protocol
  (``scope["extensions"]["tickcast.socket"]``, the ``carrier``), an Engine.IO message is
  just a text frame of its text: the hub's pre-built frames go to that socket in one
  write per batch, as on Front 1, and its buffer decides ``writable`` and the
  slow-client verdict (``peer_limited``).

Ordering: the switch to direct writes waits until everything put on Engine.IO's queue
before it has been written: a marker packet (an Engine.IO NOOP, which clients ignore)
is queued, and only when Engine.IO's writer encodes it (everything before it is sent)
does the socket turn direct; meanwhile it is not writable, so nothing overtakes. What
Engine.IO still writes itself afterwards (pings, acknowledgements, the disconnect) is
not ordered against this client's events and need not be.

python-engineio internals relied on (4.x, checked against 4.15): ``AsyncSocket.queue``
(an ``asyncio.Queue`` of ``Packet``), ``.upgraded`` / ``.upgrading`` / ``.closed`` /
``.closing``, and ``Packet.encode_cache`` (the cached text ``encode`` returns). They are
what its own writer and poll use; ``tests/integration/test_socketio.py`` exercises each
transport against the installed version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Final

from engineio import packet as eio_packet

from tickcast.clock import Clock
from tickcast.hub.outbox import Outbox
from tickcast.protocols.socketio.codec import keeps
from tickcast.protocols.wire import Encoded
from tickcast.transport.socket import FrameSocket, ItemSink

#: Packets Engine.IO's queue may hold for one client before its Outbox takes over.
DEFAULT_QUEUE_LIMIT: Final = 64


class Replayed(Encoded):
    """A signal of a catch-up (``last_signal_id``): the client asked for every signal it
    missed, so a ``subscribe`` that narrows the types afterwards does not filter it."""

    __slots__ = ()

    @classmethod
    def of(cls, item: Encoded) -> Replayed:
        return cls(item.payload, ts=item.ts, topic=item.topic)


def _packet(message: bytes) -> eio_packet.Packet:
    """One Engine.IO MESSAGE whose encoding is ``message`` (``4...``) as it is."""
    text = message.decode()
    pkt = eio_packet.Packet(eio_packet.MESSAGE, text[1:])
    pkt.encode_cache = text
    return pkt


class _Marker(eio_packet.Packet):  # type: ignore[misc]
    """A NOOP that tells its socket when Engine.IO's writer reaches it."""

    def __init__(self, reached: Callable[[], None]) -> None:
        super().__init__(eio_packet.NOOP)
        self._reached: Callable[[], None] | None = reached

    def encode(self, b64: bool = False) -> Any:
        reached, self._reached = self._reached, None
        if reached is not None:
            reached()
        return super().encode(b64)


class SocketIOSocket(ItemSink):
    """FrameSocket over one Engine.IO socket (see the module docstring).

    Args:
        eio: python-engineio's ``AsyncSocket`` of the client.
        carrier: the server's WebSocket of this client, when it has one now (called on
            each write; None while polling or without the extension).
        on_close: called once when the connection closes the socket, with the code and
            reason (the front disconnects the Socket.IO client).
        clock: the connection's clock (the outbox's ``now`` at the close).
        queue_limit: packets Engine.IO's queue may hold before ``writable`` is False.
    """

    __slots__ = (
        "_carrier_of",
        "_direct",
        "_marking",
        "_on_close",
        "carrier",
        "clock",
        "closed",
        "eio",
        "on_writable",
        "outbox",
        "queue_limit",
        "types",
    )

    def __init__(
        self,
        eio: Any,
        carrier: Callable[[], FrameSocket | None],
        on_close: Callable[[int, str], None],
        clock: Clock,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
    ) -> None:
        self.eio = eio
        self.clock = clock
        #: The connection's outbox: what it still holds at the close goes out first.
        self.outbox: Outbox[Encoded] | None = None
        self._carrier_of = carrier
        self._on_close = on_close
        self.queue_limit = queue_limit
        self.on_writable: Callable[[], None] | None = None
        self.carrier: FrameSocket | None = None
        self.closed = False
        self._direct = False
        self._marking = False
        #: The signal types the client narrowed to (None: all); set by the front.
        self.types: frozenset[str] | None = None

    # -- FrameSocket

    @property
    def raw(self) -> bool:
        carrier = self.carrier
        return self._direct and self.types is None and carrier is not None and carrier.raw

    @property
    def writable(self) -> bool:
        if self.closed:
            return False
        if self._direct:
            carrier = self.carrier
            return carrier is not None and carrier.writable
        if self._marking:
            return False
        eio = self.eio
        if eio.closed or eio.closing:
            return False
        if self._may_go_direct():
            return False  # the marker goes first; writable again when it is reached
        return bool(eio.queue.qsize() < self.queue_limit)

    def peer_limited(self) -> bool | None:
        carrier = self.carrier
        if self._direct and carrier is not None:
            return carrier.peer_limited()
        return None  # Engine.IO's queue is full: the client does not take its packets

    def write_frames(self, data: bytes) -> bool:
        carrier = self.carrier
        if carrier is not None and not self.closed:
            return carrier.write_frames(data)  # raw only when direct: its ``writable``
        return False

    def send_items(self, items: Sequence[Encoded]) -> None:
        types = self.types
        if types is not None:
            items = [i for i in items if type(i) is Replayed or keeps(i.payload, types)]
        self.send_texts([item.message for item in items])

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        if self.closed or not payloads:
            return
        carrier = self.carrier
        if self._direct and carrier is not None:
            carrier.send_texts(payloads)
            return
        put = self.eio.queue.put_nowait
        for payload in payloads:
            put(_packet(payload))

    def send_bytes(self, payload: bytes) -> None:
        raise TypeError("Front 5 sends text events only")

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        """What the outbox holds goes first; nothing is written after. A slow client on
        the direct path gets the WebSocket close behind what its socket holds (aborted if
        it stops reading); in every case the front disconnects the Socket.IO client
        (``on_close``)."""
        if self.closed:
            return
        # its last words (the rate limit's error, say), whether or not the socket takes
        # data now; a slow client's outbox was cleared before the close
        if self.outbox is not None and (
            items := self.outbox.flush(self.clock.monotonic(), force=True)
        ):
            self.send_items(items)  # forced, a flush takes everything held
        self.closed = True
        carrier = self.carrier
        if self._direct and carrier is not None and code == 1013:
            carrier.close(code, reason, on_abort=on_abort)
        self._on_close(code, reason)

    # -- the front's side

    def _may_go_direct(self) -> bool:
        """The client is on the websocket transport and its socket is the server's:
        queue the marker (once) and report True."""
        if self._marking or self._direct:
            return self._marking
        eio = self.eio
        if not eio.upgraded or eio.upgrading:
            return False
        carrier = self._carrier_of()
        if carrier is None:
            return False
        self.carrier = carrier
        self._marking = True
        eio.queue.put_nowait(_Marker(self._reached))
        return True

    def _reached(self) -> None:
        """Engine.IO's writer reached the marker: everything queued before is written."""
        self._marking = False
        carrier = self.carrier
        if self.closed or carrier is None:
            return
        self._direct = True
        carrier.on_writable = self.drained
        # not from inside Engine.IO's writer (an exception there would end its task)
        asyncio.get_running_loop().call_soon(self.drained)

    def drained(self) -> None:
        """Engine.IO took packets (a poll answered, a websocket write done), or the
        carrier's buffer drained: what the outbox holds may go."""
        if self.on_writable is not None and self.writable:
            self.on_writable()

    def gone(self) -> None:
        """The client disconnected: nothing more is written. A poll still pending is
        answered now with a NOOP, as Engine.IO answers one during an upgrade
        (python-engineio, after a disconnect the client asked for, would leave it waiting
        until the heartbeat's deadline)."""
        self.closed = True
        eio = self.eio
        if not eio.upgraded:
            eio.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))
        carrier = self.carrier
        if carrier is not None and carrier.on_writable == self.drained:
            carrier.on_writable = None
