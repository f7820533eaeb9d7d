"""FrameSocket: what the connection driver needs from a server WebSocket.

The contract is deliberately small and synchronous: writes never await. Backpressure is
explicit: ``writable`` turns False when the transport's buffer is above its high-water
mark, and ``on_writable`` is called when it drains; ``peer_limited`` asks the kernel
whether the peer is the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tickcast.protocols.wire import Encoded

#: ASGI scope extension under which uvicorn (with tickcast's protocol) exposes the socket.
EXTENSION = "tickcast.socket"


class FrameSocket(Protocol):
    on_writable: Callable[[], None] | None

    @property
    def raw(self) -> bool:
        """True when pre-built frames may be written as they are (no extension in use).
        Read on every write: a socket whose answer cannot change keeps it in a plain
        attribute."""

    @property
    def writable(self) -> bool:
        """False while the send buffer is full or the socket is closing."""

    def write_frames(self, data: bytes) -> bool:
        """Write complete, pre-built frames (only when ``raw``); return what ``writable``
        says after the write (False, and nothing written, once the socket is closing),
        so that a writer with more to write need not ask again."""

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        """Frame (and compress, if negotiated) text payloads, all in one write."""

    def send_bytes(self, payload: bytes) -> None:
        """Send one binary message."""

    def peer_limited(self) -> bool | None:
        """Whether the peer is what holds the data back: the kernel has data for it that
        it could not send yet (the peer's receive window is full). False when the kernel
        sends what it gets at once, so any backlog is the gateway's own; None when the
        socket cannot tell (not Linux, or not a socket this process owns)."""

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        """Start the closing handshake now, even if the send buffer is full.

        Nothing more is written after the close frame, which goes behind what the socket
        already holds: a peer that keeps reading gets every frame whole, then the close.
        The connection is aborted (and ``on_abort`` called) only if the peer takes no
        data for ``close_timeout_s``, or has not finished the closing handshake within
        ``CLOSE_DRAIN_MAX_S``.
        """


class ItemSink:
    """A FrameSocket (not ``raw``) that takes a batch as the items themselves, not their
    bytes: a transport that re-encodes what it carries (SockJS escapes each message as a
    JSON string) can then do it once per item shared by many connections. The
    connection hands such a socket every batch through ``send_items``."""

    def send_items(self, items: Sequence[Encoded]) -> None:
        """Write one batch of items (in one frame of the transport, when it can)."""
        raise NotImplementedError
