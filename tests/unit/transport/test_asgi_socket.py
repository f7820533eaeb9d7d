"""AsgiFrameSocket, the fallback for ASGI servers without tickcast's protocol: a close
queued behind a server whose ``send`` never returns (its peer does not read) is given up
after close_timeout_s: what is pending is dropped, the abort is reported, and
``receive`` answers a disconnect so that the connection's driver ends."""

from __future__ import annotations

import asyncio
from typing import Any

from tickcast.transport.asgi_socket import AsgiFrameSocket


class StuckServer:
    """An ASGI server side whose send blocks from the ``stuck_after``-th message on."""

    def __init__(self, stuck_after: int) -> None:
        self.sent: list[dict[str, Any]] = []
        self.stuck_after = stuck_after
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(self, message: Any) -> None:
        if len(self.sent) >= self.stuck_after:
            await asyncio.Event().wait()  # the peer never reads: for ever
        self.sent.append(message)

    async def receive(self) -> Any:
        return await self.incoming.get()


async def test_a_close_behind_a_stuck_send_is_given_up_and_the_driver_is_woken() -> None:
    server = StuckServer(stuck_after=1)
    sock = AsgiFrameSocket(server.send, close_timeout_s=0.05)
    sock.start()
    receive = sock.receive_until_given_up(server.receive)
    aborted: list[bool] = []
    sock.send_texts([b"one", b"two", b"three"])
    await asyncio.sleep(0)
    sock.close(1013, "slow consumer: 2.0 s behind", on_abort=lambda: aborted.append(True))
    message = await asyncio.wait_for(receive(), 10)  # not an incoming message: the give-up
    assert message == {"type": "websocket.disconnect", "code": 1006}
    assert aborted == [True]
    assert [m.get("text") for m in server.sent] == ["one"]
    assert not sock.writable
    sock.send_texts([b"four"])  # nothing more is queued after the close
    assert await receive() == {"type": "websocket.disconnect", "code": 1006}
    await sock.aclose()


async def test_a_close_the_server_takes_in_time_is_not_an_abort() -> None:
    server = StuckServer(stuck_after=1000)
    sock = AsgiFrameSocket(server.send, close_timeout_s=60)
    sock.start()
    aborted: list[bool] = []
    sock.send_texts([b"one"])
    sock.close(1000, "bye", on_abort=lambda: aborted.append(True))
    for _ in range(1000):
        if len(server.sent) == 2:
            break
        await asyncio.sleep(0.01)
    assert server.sent[-1] == {"type": "websocket.close", "code": 1000, "reason": "bye"}
    assert sock._give_up is None  # the give-up timer was cancelled when the close went out
    assert aborted == []
    assert not sock.gave_up.is_set()
    await sock.aclose()


async def test_receive_passes_messages_through_while_open() -> None:
    server = StuckServer(stuck_after=1000)
    sock = AsgiFrameSocket(server.send)
    sock.start()
    receive = sock.receive_until_given_up(server.receive)
    await server.incoming.put({"type": "websocket.receive", "text": "hi"})
    assert await receive() == {"type": "websocket.receive", "text": "hi"}
    await sock.aclose()
