"""The frame socket over tickcast's uvicorn WebSocket protocol, and the websockets
sans-I/O server protocol under it (``transport/uvicorn_websocket.py`` drives both).

- ``_ServerProtocol``: websockets' ``ServerProtocol`` that takes a Close between the
  fragments of a message (RFC 6455 section 5.4; websockets answers 1002, Autobahn case
  7.1.5), holds pongs back while the transport is not writable (only the latest ping's
  payload is kept: RFC 6455 section 5.5.3), and opens from a handshake checked by
  ``transport/handshake.py`` instead of one it parsed itself; ``_deflate``: the
  extensions it offers, as uvicorn configures them.
- ``UvicornFrameSocket``: the ``FrameSocket`` (``transport/socket.py``) in the scope of
  every accepted connection: a batch of pre-built frames is one ``transport.write``,
  and nothing awaits per subscriber; ``peer_limited`` asks the kernel (``SIOCOUTQNSD``)
  whether the peer, not the gateway, holds data back.
- ``_Flag`` and ``_Discard``: the write state and the receive queue once nothing awaits
  them (the fast path's, in place of an ``asyncio.Event`` and an ``asyncio.Queue``).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from websockets.extensions import Extension
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

if TYPE_CHECKING:
    from tickcast.transport.uvicorn_websocket import TickcastWebSocketProtocol

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


class UvicornFrameSocket:
    """FrameSocket over one uvicorn WebSocket connection.

    ``raw`` is a plain attribute: the extensions are fixed once the handshake is
    answered, and the protocol calls ``opened`` then (a socket made over a protocol
    that is open already, as the tests' and the benchmark's, reads them at once).
    """

    __slots__ = ("_protocol", "on_writable", "raw")

    def __init__(self, protocol: TickcastWebSocketProtocol) -> None:
        self._protocol = protocol
        self.on_writable: Callable[[], None] | None = None
        self.raw = not protocol.conn.extensions

    def opened(self) -> None:
        """The handshake is answered: the extensions negotiated decide ``raw``."""
        self.raw = not self._protocol.conn.extensions

    def _open(self) -> bool:
        """Data may still be sent: neither side has started closing (a close sent or
        received, or a failure, leaves the sans-I/O protocol CLOSING) and the connection
        is not lost."""
        p = self._protocol
        return p.conn.state is _OPEN and not p.disconnected

    # ``writable`` and ``write_frames`` run once per write: they read websockets' state
    # behind its ``state`` property (``_state``) and the protocol's write flag behind
    # ``is_set`` (``_value``, an ``asyncio.Event``'s or a ``_Flag``'s; tests pin both
    # reads), and inline ``_open``.
    @property
    def writable(self) -> bool:
        p = self._protocol
        return (
            p.writable._value  # type: ignore[attr-defined]
            and p.conn._state is _OPEN
            and not p.disconnected
        )

    def write_frames(self, data: bytes) -> bool:
        p = self._protocol
        if p.conn._state is _OPEN and not p.disconnected:
            p.transport.write(data)
            # what ``writable`` says now: the write itself may have paused writing (the
            # transport calls ``pause_writing`` at once); it changes nothing else
            return p.writable._value  # type: ignore[attr-defined, no-any-return]
        return False

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
    of an ``asyncio.Event`` (``is_set``, ``set``, ``clear``), without its waiter deque.
    Its state is ``_value``, the attribute an ``asyncio.Event`` keeps it in, so the frame
    socket reads either without a call (a test pins the read against ``is_set``)."""

    __slots__ = ("_value",)

    def __init__(self, value: bool) -> None:
        self._value = value

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True

    def clear(self) -> None:
        self._value = False


class _Discard:
    """The receive queue of a connection the protocol drives itself: nobody reads it, so
    what uvicorn's code puts there (a disconnect) is dropped."""

    __slots__ = ()

    def put_nowait(self, item: Any) -> None:
        pass

    def empty(self) -> bool:
        return True


_DISCARD: Final = _Discard()
