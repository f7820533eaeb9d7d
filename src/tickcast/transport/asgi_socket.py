"""A FrameSocket over plain ASGI ``send``, for servers without tickcast's protocol.

Rules: the fallback path. Under ``tickcast serve`` the uvicorn protocol offers a
FrameSocket that writes pre-built frames in one syscall; any other ASGI server (or
Starlette's TestClient) gets this one: a writer task per connection that awaits ``send``
for each queued message, in order. It is bounded: ``writable`` turns False while
``max_pending`` messages wait, so the pump leaves new data in the connection's Outbox,
where quotes conflate and a client that does not take its data is closed with 1013, as on
the fast path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.types import Scope, Send

from tickcast.transport.socket import EXTENSION, FrameSocket


class AsgiFrameSocket:
    """FrameSocket that sends through ASGI; see the module docstring.

    Args:
        send: the ASGI ``send`` callable of an accepted WebSocket.
        max_pending: messages queued before ``writable`` turns False.
    """

    raw = False

    def __init__(self, send: Send, *, max_pending: int = 64) -> None:
        self._send = send
        self.max_pending = max_pending
        self.on_writable: Callable[[], None] | None = None
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    @property
    def writable(self) -> bool:
        return not self._closed and len(self._pending) < self.max_pending

    def write_frames(self, data: bytes) -> None:
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
        # The ASGI server owns the socket and its close timeout: nothing to abort here.
        if not self._closed:
            self._closed = True
            self._pending.append({"type": "websocket.close", "code": code, "reason": reason})
            self._wake.set()

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
                    return
                if was_full and self.on_writable is not None:
                    self.on_writable()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="asgi-frame-socket")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def open_frame_socket(scope: Scope, send: Send) -> AsyncIterator[FrameSocket]:
    """The server's fast FrameSocket if it offers one, else an AsgiFrameSocket (owned here)."""
    sock = scope.get("extensions", {}).get(EXTENSION)
    if sock is not None:
        yield sock
        return
    fallback = AsgiFrameSocket(send)
    fallback.start()
    try:
        yield fallback
    finally:
        await fallback.aclose()
