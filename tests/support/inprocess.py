"""A real gateway served by uvicorn with tickcast's protocol classes, in a thread of the
test process: the same server as ``tickcast serve``, whose node a test can reach (to
publish what no provider makes, a trading signal say) without a private route."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import uvicorn

from support.server import free_port
from tickcast.app import WebSocketDispatch, build_app
from tickcast.config.settings import Settings
from tickcast.model.topic import Event
from tickcast.transport.uvicorn_protocols import protocol_classes

T = TypeVar("T")


class InProcessServer:
    """``build_app(settings)`` under uvicorn on a free port, in its own thread and loop."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.settings = settings
        self.app: WebSocketDispatch = build_app(settings)
        http, ws = protocol_classes(
            handshake_timeout_s=settings.handshake_timeout_s,
            close_timeout_s=settings.close_timeout_s,
        )
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            http=http,
            ws=ws,
            ws_max_size=settings.max_message_bytes,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.close_timeout_s) + 1,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(serve())

    def start(self) -> InProcessServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process gateway did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the gateway's loop and return its result."""
        assert self.loop is not None
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return done.result(timeout=30)

    async def acall(self, fn: Callable[[], T]) -> T:
        """``call`` from a coroutine: the caller's loop runs on meanwhile (its clients
        keep reading)."""
        return await asyncio.to_thread(self.call, fn)

    def publish(self, events: Sequence[Event]) -> None:
        """Publish ``events`` through the node's publisher, as a service would."""
        node: Any = self.app.state.node
        self.call(lambda: node.publisher.publish(list(events)))

    async def apublish(self, events: Sequence[Event]) -> None:
        """``publish`` from a coroutine."""
        node: Any = self.app.state.node
        await self.acall(lambda: node.publisher.publish(list(events)))
