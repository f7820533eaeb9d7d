"""UvicornFrameSocket's write checks: ``writable`` and ``write_frames`` read websockets'
state behind its ``state`` property and the write flag behind ``is_set`` (once per write
on the hot path), so they must agree with the property and the method in every state,
and with the protocol's flow control and loss; ``write_frames`` answers what ``writable``
says after its write, and ``raw`` follows the extensions negotiated."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
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
    assert sock.write_frames(b"frame") is is_open  # what ``writable`` says after it
    assert written == ([b"frame"] if is_open else [])


def test_a_full_buffer_is_not_writable_but_an_open_socket_still_takes_frames() -> None:
    sock, protocol, written = _socket()
    protocol.conn.state = State.OPEN
    protocol.writable.clear()
    assert not sock.writable
    # the close frame's path: behind what the socket holds (and still not writable)
    assert sock.write_frames(b"frame") is False
    assert written == [b"frame"]
    protocol.writable.set()
    assert sock.writable


def test_a_lost_connection_is_neither_writable_nor_written_to() -> None:
    sock, protocol, written = _socket()
    protocol.conn.state = State.OPEN
    protocol.disconnected = True
    assert not sock.writable
    assert sock.write_frames(b"frame") is False
    assert written == []


def test_a_write_that_fills_the_buffer_answers_not_writable() -> None:
    """The transport pauses the protocol from inside ``write`` (over its high-water
    mark): ``write_frames`` answers False, as ``writable`` does after it."""
    sock, protocol, written = _socket()
    protocol.conn.state = State.OPEN

    def write(data: bytes) -> None:
        written.append(data)
        if len(written) == 2:
            protocol.writable.clear()  # what pause_writing does

    protocol.transport.write = write
    assert sock.write_frames(b"one") is True
    assert sock.write_frames(b"two") is False
    assert not sock.writable
    assert written == [b"one", b"two"]


@pytest.mark.parametrize("kind", ["flag", "event"])
def test_the_write_flag_read_agrees_with_is_set(kind: str) -> None:
    """The socket reads ``_value`` of the protocol's write flag, an ``asyncio.Event``
    before the fast path attaches and a ``_Flag`` after: it is what ``is_set`` says."""
    flag: Any = _Flag(True) if kind == "flag" else asyncio.Event()
    if kind == "event":
        flag.set()
    for change in (flag.clear, flag.set, flag.clear):
        change()
        assert flag._value is flag.is_set()
        sock, protocol, _ = _socket()
        protocol.conn.state = State.OPEN
        protocol.writable = flag
        assert sock.writable is flag.is_set()


def test_raw_follows_the_extensions_once_the_handshake_is_answered() -> None:
    """The socket is made with its protocol, before the handshake; the protocol calls
    ``opened`` when it answers it (the extensions are final then)."""
    sock, protocol, _ = _socket()
    assert sock.raw is True  # nothing negotiated yet (and none, if nothing is)
    protocol.conn.extensions = [PerMessageDeflate(False, False, 12, 12)]
    sock.opened()
    assert sock.raw is False
    protocol.conn.extensions = []
    sock.opened()
    assert sock.raw is True
