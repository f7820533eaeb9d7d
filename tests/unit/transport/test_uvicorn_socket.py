"""UvicornFrameSocket's write checks: ``writable`` and ``write_frames`` read websockets'
state behind its ``state`` property (once per write on the hot path), so they must agree
with the property in every state, and with the protocol's flow control and loss."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from websockets.protocol import State
from websockets.server import ServerProtocol

from tickcast.transport.uvicorn_protocols import UvicornFrameSocket, _Flag


def _socket() -> tuple[UvicornFrameSocket, Any, list[bytes]]:
    written: list[bytes] = []
    protocol = SimpleNamespace(
        conn=ServerProtocol(),
        writable=_Flag(True),
        disconnected=False,
        transport=SimpleNamespace(write=written.append),
    )
    return UvicornFrameSocket(protocol), protocol, written  # type: ignore[arg-type]


@pytest.mark.parametrize("state", list(State))
def test_writable_and_write_frames_follow_websockets_state(state: State) -> None:
    sock, protocol, written = _socket()
    protocol.conn.state = state
    assert protocol.conn._state is protocol.conn.state  # what the socket reads
    is_open = state is State.OPEN
    assert sock.writable is is_open
    assert sock._open() is is_open
    sock.write_frames(b"frame")
    assert written == ([b"frame"] if is_open else [])


def test_a_full_buffer_is_not_writable_but_an_open_socket_still_takes_frames() -> None:
    sock, protocol, written = _socket()
    protocol.conn.state = State.OPEN
    protocol.writable.clear()
    assert not sock.writable
    sock.write_frames(b"frame")  # the close frame's path: behind what the socket holds
    assert written == [b"frame"]
    protocol.writable.set()
    assert sock.writable


def test_a_lost_connection_is_neither_writable_nor_written_to() -> None:
    sock, protocol, written = _socket()
    protocol.conn.state = State.OPEN
    protocol.disconnected = True
    assert not sock.writable
    sock.write_frames(b"frame")
    assert written == []
