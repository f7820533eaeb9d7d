"""A FrameSocket over plain ASGI ``send``, for servers without tickcast's protocol.

Rules: the fallback path. Under ``tickcast serve`` the uvicorn protocol offers a
FrameSocket that writes pre-built frames in one syscall; any other ASGI server (or
Starlette's TestClient) gets this one: a writer task per connection that awaits ``send``
for each queued message, in order. It is bounded: ``writable`` turns False while
``max_pending`` messages wait, so the pump leaves new data in the connection's Outbox,
where quotes conflate and a client that does not take its data is closed with 1013.

What plain ASGI cannot do: see the kernel (``peer_limited`` is None, so a blocked socket
is taken at its word), or abort a connection. A close is queued behind what is pending;
if the server has not taken it within ``close_timeout_s`` (its ``send`` waits for a peer
that does not read), the writer gives up: what is pending is dropped, the abort is
reported, and ``receive`` answers a disconnect so that the connection's driver ends and
lets go of its subscriptions. The server keeps the socket until its own timeouts end it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from tickcast.transport.socket import EXTENSION, FrameSocket

#: What ``receive`` answers once the writer has given up on a closing connection.
_GAVE_UP: Message = {"type": "websocket.disconnect", "code": 1006}


class AsgiFrameSocket:
    """FrameSocket that sends through ASGI; see the module docstring.

    Args:
        send: the ASGI ``send`` callable of an accepted WebSocket.
        max_pending: messages queued before ``writable`` turns False.
        close_timeout_s: how long a queued close may wait before the writer gives up.
    """

    raw = False

    def __init__(self, send: Send, *, max_pending: int = 64, close_timeout_s: float = 5.0) -> None:
        self._send = send
        self.max_pending = max_pending
        self.close_timeout_s = close_timeout_s
        self.on_writable: Callable[[], None] | None = None
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._give_up: asyncio.TimerHandle | None = None
        self._on_abort: Callable[[], None] | None = None
        self.gave_up = asyncio.Event()

    @property
    def writable(self) -> bool:
        return not self._closed and len(self._pending) < self.max_pending

    def peer_limited(self) -> bool | None:
        return None

    def write_frames(self, data: bytes) -> bool:
        raise TypeError("AsgiFrameSocket is not raw: use send_texts")

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        if not self._closed:
            for payload in payloads:
                self._pending.append({"type": "websocket.send", "text": payload.decode()})
            self._wake.set()

    def send_bytes(self, payload: bytes) -> None:
        if not self._closed:
            self._pending.append({"type": "websocket.send", "bytes": payload})
            self._wake.set()

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending.append({"type": "websocket.close", "code": code, "reason": reason})
        self._wake.set()
        self._on_abort = on_abort
        self._give_up = asyncio.get_running_loop().call_later(self.close_timeout_s, self._abandon)

    def _abandon(self) -> None:
        """The close has waited ``close_timeout_s`` behind a peer that does not read."""
        self._give_up = None
        if self._task is not None:
            self._task.cancel()
        self._pending.clear()
        self.gave_up.set()
        if self._on_abort is not None:
            self._on_abort()

    async def _run(self) -> None:
        pending = self._pending
        while True:
            await self._wake.wait()
            self._wake.clear()
            while pending:
                was_full = len(pending) >= self.max_pending
                message = pending.popleft()
                try:
                    await self._send(message)
                except Exception:  # the peer is gone (servers raise OSError or their own)
                    self._closed = True
                    pending.clear()
                    return
                if message["type"] == "websocket.close":
                    if self._give_up is not None:
                        self._give_up.cancel()
                        self._give_up = None
                    return
                if was_full and self.on_writable is not None:
                    self.on_writable()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="asgi-frame-socket")

    async def aclose(self) -> None:
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def receive_until_given_up(self, receive: Receive) -> Receive:
        """``receive``, which answers a disconnect once the writer has given up."""

        async def receive_or_give_up() -> Message:
            if self.gave_up.is_set():
                return _GAVE_UP
            message = asyncio.ensure_future(receive())
            gave_up = asyncio.ensure_future(self.gave_up.wait())
            try:
                await asyncio.wait({message, gave_up}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gave_up.cancel()
            if message.done():
                return message.result()
            message.cancel()
            return _GAVE_UP

        return receive_or_give_up


@contextlib.asynccontextmanager
async def open_frame_socket(
    scope: Scope, receive: Receive, send: Send, *, close_timeout_s: float = 5.0
) -> AsyncIterator[tuple[FrameSocket, Receive]]:
    """The server's fast FrameSocket if it offers one, else an AsgiFrameSocket (owned
    here), with the ``receive`` to read the connection with."""
    sock = scope.get("extensions", {}).get(EXTENSION)
    if sock is not None:
        yield sock, receive
        return
    fallback = AsgiFrameSocket(send, close_timeout_s=close_timeout_s)
    fallback.start()
    try:
        yield fallback, fallback.receive_until_given_up(receive)
    finally:
        await fallback.aclose()
