"""``/ws/echo``: a test-only route that echoes every message, for WebSocket conformance.

It runs through the same driver (Connection, Outbox, Pump, FrameSocket) as the fronts,
so Autobahn's cases exercise the real transport. Enabled by ``test_echo``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from starlette.types import Receive, Scope, Send

from tickcast.closecodes import CloseCode
from tickcast.hub.outbox import Outbox
from tickcast.model.topic import Topic
from tickcast.node import Node
from tickcast.protocols.base import Command, Reply
from tickcast.protocols.wire import Encoded
from tickcast.transport.asgi_socket import open_frame_socket
from tickcast.transport.connection import Connection
from tickcast.transport.socket import FrameSocket

PATH = "/ws/echo"


class EchoSession:
    """Sans-I/O echo: each message comes back unchanged, text as text, bytes as bytes.

    A ``protocols.base.Session`` with no commands: it holds no topics, and a reply
    changes nothing (an error, which only a wrapper such as the rate limit makes, comes
    back as its text).
    """

    def __init__(self) -> None:
        self.close_reason: CloseCode | None = None
        self._frames: list[Encoded] = []

    @property
    def topics(self) -> Collection[Topic]:
        return ()

    def receive_text(self, data: str, now: float) -> None:
        self._frames.append(Encoded(data.encode(), control=True))

    def receive_bytes(self, data: bytes, now: float) -> None:
        self._frames.append(Encoded(data, control=True, binary=True))

    def handle_timer(self, now: float) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def frames_to_send(self) -> list[Encoded]:
        frames, self._frames = self._frames, []
        return frames

    def commands_received(self) -> list[Command]:
        return []

    def answer(self, reply: Reply, now: float) -> None:
        pass

    def send_error(self, message: str, now: float) -> None:
        self._frames.append(Encoded(message.encode(), control=True))

    def release(self, topics: Iterable[Topic]) -> None:
        pass


class EchoFront:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        async with open_frame_socket(scope, receive, send) as (sock, receive):
            await self._serve(receive, sock)

    async def _serve(self, receive: Receive, sock: FrameSocket) -> None:
        connection = Connection(
            sock=sock,
            session=EchoSession(),
            wire="echo",
            array=False,
            outbox=Outbox(0.0, 1 << 20),
            pump=self.node.pump,
            stats=self.node.stats,
            on_commands=lambda _connection, _commands: None,
            on_close=lambda _connection: None,
        )
        await connection.run(receive)
