"""SocketIOSocket over a stand-in for python-engineio's socket (its queue and flags, as
the writer and the poll use them): the bounded queue, the switch to direct writes after
the marker, ordering, the types filter, and the last words at a close."""

from __future__ import annotations

import asyncio
from typing import Any

from engineio import packet

from support.clock import ManualClock
from support.fakesocket import RecordingSocket
from tickcast.hub.outbox import Outbox
from tickcast.protocols.socketio import codec
from tickcast.protocols.wire import Encoded
from tickcast.transport.socketio_socket import SocketIOSocket


class EngineSocket:
    """What SocketIOSocket reads of an Engine.IO socket."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.upgraded = False
        self.upgrading = False
        self.closed = False
        self.closing = False

    def take(self) -> list[str]:
        """What Engine.IO's writer would send now, encoded, in order."""
        sent: list[str] = []
        while not self.queue.empty():
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            sent.append(pkt.encode())
        return sent


def item(n: int, kind: str = "RSI") -> Encoded:
    body = b'{"type":"%s","n":%d}' % (kind.encode(), n)
    return Encoded(codec.event(codec.NEW_SIGNAL, body), topic="signals.X")


def make(limit: int = 4) -> tuple[SocketIOSocket, EngineSocket, RecordingSocket, list[Any]]:
    eio = EngineSocket()
    carrier = RecordingSocket()
    closes: list[Any] = []
    sock = SocketIOSocket(
        eio, lambda: carrier, lambda c, r: closes.append((c, r)), ManualClock(), limit
    )
    return sock, eio, carrier, closes


async def test_polling_items_become_engineio_messages_of_the_same_text() -> None:
    sock, eio, _, _ = make()
    assert sock.writable
    assert not sock.raw
    sock.send_items([item(1), item(2)])
    assert eio.take() == [item(1).payload.decode(), item(2).payload.decode()]


async def test_the_engineio_queue_is_bounded() -> None:
    sock, eio, _, _ = make(limit=2)
    sock.send_items([item(1), item(2)])
    assert not sock.writable
    assert sock.peer_limited() is None  # a full queue: the client takes nothing
    eio.take()
    assert sock.writable


async def test_once_upgraded_writes_go_direct_after_what_engineio_held() -> None:
    sock, eio, carrier, _ = make()
    sock.send_items([item(1)])
    eio.upgraded = True
    woken: list[bool] = []
    sock.on_writable = lambda: woken.append(True)
    assert not sock.writable  # the marker is queued: nothing may overtake item 1
    assert eio.take() == [item(1).payload.decode(), "6"]  # the writer reaches the marker
    await asyncio.sleep(0)
    assert woken == [True]
    assert sock.writable
    assert sock.raw
    sock.write_frames(item(2).frame)
    assert carrier.payloads() == [item(2).payload]
    assert eio.queue.empty()


async def test_no_extension_no_direct_writes() -> None:
    eio = EngineSocket()
    sock = SocketIOSocket(eio, lambda: None, lambda c, r: None, ManualClock())
    eio.upgraded = True
    assert sock.writable
    assert not sock.raw
    sock.send_items([item(1)])
    assert eio.take() == [item(1).payload.decode()]


async def test_types_narrow_signals_on_either_path() -> None:
    sock, eio, _, _ = make()
    sock.types = frozenset({"RSI"})
    welcome = codec.control(codec.WELCOME, message="hi")
    sock.send_items([welcome, item(1, "MA_CROSS"), item(2, "RSI")])
    assert eio.take() == [welcome.payload.decode(), item(2).payload.decode()]


async def test_a_close_sends_what_the_outbox_holds_first() -> None:
    sock, eio, _, closes = make(limit=1)
    outbox: Outbox[Encoded] = Outbox(0.1, 100, 0, size=lambda e: e.size)
    sock.outbox = outbox
    outbox.put(item(1), 0.0, None)
    error = codec.control(codec.ERROR, message="Too many messages")
    outbox.put(error, 0.0, None)
    sock.close(3002, "rate limited")
    assert eio.take() == [item(1).payload.decode(), error.payload.decode()]
    assert closes == [(3002, "rate limited")]
    sock.send_items([item(2)])  # nothing after the close
    assert eio.queue.empty()


async def test_a_client_that_left_gets_its_pending_poll_answered() -> None:
    sock, eio, _, _ = make()
    sock.gone()
    (noop,) = [eio.queue.get_nowait()]
    assert noop.packet_type == packet.NOOP
    assert not sock.writable
