"""The front contract's Dispatcher: subscribe and unsubscribe carried out once for every
front, and a command that raises contained to its connection.

A real ``Node`` (built, not started), a ``FrontContext`` from its parts, a spec built on
the contract, the native session, and ``Connection``s over sockets that record writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.types import Scope

from support.clock import ManualClock
from support.fakesocket import RecordingSocket
from support.silent import Silent
from tickcast.app import front_context
from tickcast.auth.credentials import Principal
from tickcast.config.settings import Settings
from tickcast.fronts.base import FrontContext, FrontSpec, Opened, WebSocketFront
from tickcast.hub.outbox import Outbox
from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote
from tickcast.model.topic import Topic
from tickcast.node import Node
from tickcast.protocols.native import codec
from tickcast.protocols.native.session import MarketFeedSession
from tickcast.transport.connection import Connection, payload_size

TS = 1_700_000_000.0


class Quotes(FrontSpec):
    """Native quotes; its snapshot of MSFT has a bug."""

    name = "quotes"
    paths = ("/ws/quotes",)
    codecs = codec.CODECS
    guarded = False

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        raise NotImplementedError  # the test builds the connection itself

    def snapshot(self, topic: Topic, cached: Envelope | None, ctx: FrontContext) -> Envelope | None:
        if topic.symbol == "MSFT":
            raise RuntimeError("a bug in this front's snapshot")
        return cached


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    node = Node(Settings(batch_ms=0), providers=[Silent()], clock=ManualClock(wall=TS))
    try:
        yield node
    finally:
        node.pumps.close()
        await node.engine.dispose()


def context(node: Node) -> FrontContext:
    return front_context(node, None)


def connect(node: Node, front: WebSocketFront) -> tuple[Connection, RecordingSocket]:
    sock = RecordingSocket()
    connection = Connection(
        sock=sock,
        session=MarketFeedSession(
            is_known=node.is_known, max_subscriptions=10, now=node.clock.now()
        ),
        wire=codec.WIRE,
        array=False,
        outbox=Outbox(0.0, 100, 1 << 20, size=payload_size),
        pump=node.pumps.get(0.0),
        stats=node.stats,
        on_commands=front.dispatcher.apply,
        on_close=front._closed,
    )
    node.connections.add(connection)
    return connection, sock


def send(connection: Connection, message: dict[str, Any]) -> None:
    connection.session.receive_text(json.dumps(message), connection.clock.now())
    connection.poke()


def written(sock: RecordingSocket) -> list[Any]:
    return [json.loads(line) for chunk in sock.written for line in _frames(chunk)]


def _frames(chunk: bytes) -> list[bytes]:
    """The payloads of the unmasked server text frames in ``chunk`` (small ones)."""
    payloads = []
    while chunk:
        size = chunk[1] & 0x7F
        start = 2 if size < 126 else 4
        size = size if size < 126 else int.from_bytes(chunk[2:4], "big")
        payloads.append(chunk[start : start + size])
        chunk = chunk[start + size :]
    return payloads


async def test_subscribe_gives_the_cached_value_and_unsubscribe_drops_the_topic(
    node: Node,
) -> None:
    front = WebSocketFront(Quotes(), context(node))
    node.publisher.publish([Quote("AAPL", 1.0, 2.0, 10, 20, 1.5, 100, TS, "sim")])
    connection, sock = connect(node, front)
    send(connection, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes"]})
    types = [m.get("type") for m in written(sock)]
    assert "subscribed" in types
    assert any(m.get("symbol") == "AAPL" and m.get("bid") == 1.0 for m in written(sock))
    send(connection, {"action": "unsubscribe", "symbols": ["AAPL"], "channels": ["quotes"]})
    assert node.hub.subscription_count == 0


async def test_a_command_that_raises_is_contained_to_its_connection(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    front = WebSocketFront(Quotes(), context(node))
    broken, broken_sock = connect(node, front)
    other, other_sock = connect(node, front)
    with caplog.at_level(logging.ERROR, logger="tickcast.faults"):
        send(broken, {"action": "subscribe", "symbols": ["MSFT"], "channels": ["quotes"]})
    assert node.faults.counts == {"command": 1}
    # reported by the dispatcher, with the front and the command
    (record,) = caplog.records
    assert (record.front, record.command) == ("quotes", "Subscribe")  # type: ignore[attr-defined]
    assert broken.close_code == 1011
    assert broken_sock.closed is not None
    # the other connection goes on
    send(other, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes"]})
    assert other.close_code is None
    node.publisher.publish([Quote("AAPL", 3.0, 4.0, 10, 20, 3.5, 100, TS, "sim")])
    other.flush_now()
    assert any(m.get("bid") == 3.0 for m in written(other_sock))
    assert node.faults.counts == {"command": 1}


class Windowed(FrontSpec):
    """Native quotes, batched over its own window."""

    codecs = codec.CODECS
    guarded = False

    def __init__(self, window_s: float) -> None:
        self.name = f"every_{window_s}"
        self.paths = (f"/ws/{self.name}",)
        self.window_s = window_s

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        session = MarketFeedSession(
            is_known=ctx.is_known, max_subscriptions=10, now=ctx.clock.now()
        )
        return Opened(session, wire=codec.WIRE, window_s=self.window_s)


async def test_fronts_with_two_windows_each_get_their_windows_pump(node: Node) -> None:
    """A front's batching window is its own: the pump of that window (one FIFO per
    window) flushes its connections, on the node's clock."""
    ctx = context(node)
    scope: Scope = {"type": "websocket", "query_string": b""}
    (now_sock, now_conn), (later_sock, later_conn) = [
        (sock, WebSocketFront(Windowed(window_s), ctx).connect(scope, sock, None))
        for window_s, sock in ((0.0, RecordingSocket()), (0.05, RecordingSocket()))
    ]
    assert now_conn.pump is node.pumps.get(0.0)
    assert later_conn.pump is node.pumps.get(0.05)
    for connection in (now_conn, later_conn):
        send(connection, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes"]})
    node.publisher.publish([Quote("AAPL", 5.0, 6.0, 10, 20, 5.5, 100, TS, "sim")])

    def got_it(sock: RecordingSocket) -> bool:
        return any(m.get("bid") == 5.0 for m in written(sock))

    for _ in range(500):  # window 0: at the end of this loop pass
        if got_it(now_sock):
            break
        await asyncio.sleep(0.01)
    assert got_it(now_sock)
    assert not got_it(later_sock)  # the node's (manual) clock has not moved: not due yet
    assert node.pumps.get(0.05).flushes == 0
    clock = node.clock
    assert isinstance(clock, ManualClock)
    clock.advance(0.05)
    for _ in range(500):  # the 50 ms pump's timer finds it due on the node's clock
        if got_it(later_sock):
            break
        await asyncio.sleep(0.01)
    assert got_it(later_sock)
    assert node.pumps.get(0.05).flushes == 1
