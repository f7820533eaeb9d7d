"""FrameSocket: what the connection driver needs from a server WebSocket.

The contract is deliberately small and synchronous: writes never await. Backpressure is
explicit: ``writable`` turns False when the transport's buffer is above its high-water
mark, and ``on_writable`` is called when it drains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

#: ASGI scope extension under which uvicorn (with tickcast's protocol) exposes the socket.
EXTENSION = "tickcast.socket"


class FrameSocket(Protocol):
    on_writable: Callable[[], None] | None

    @property
    def raw(self) -> bool:
        """True when pre-built frames may be written as they are (no extension in use)."""

    @property
    def writable(self) -> bool:
        """False while the send buffer is full or the socket is closing."""

    def write_frames(self, data: bytes) -> None:
        """Write complete, pre-built frames (only when ``raw``)."""

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        """Frame (and compress, if negotiated) text payloads, all in one write."""

    def send_bytes(self, payload: bytes) -> None:
        """Send one binary message."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake now, even if the send buffer is full.

        The peer gets ``close_timeout_s`` to answer before the connection is aborted.
        """
