"""The gateway in the test's own event loop, on a free port, with a silent feed: a test
publishes through its node (a trading signal, a worker's status) and talks to it over
real sockets (uvicorn with tickcast's protocol classes and the settings' WebSocket limits:
message size, compression, keepalive, as ``tickcast serve`` runs it)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from support.server import free_port
from support.silent import Silent
from tickcast.app import build_app
from tickcast.config.settings import Settings
from tickcast.model.signal import Signal, WorkerStatus
from tickcast.node import Node
from tickcast.providers.base import Provider
from tickcast.transport.uvicorn_protocols import protocol_classes


@dataclass
class Gateway:
    node: Node
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def feed(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/market/feed"

    @property
    def realtime(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/realtime/"

    @property
    def stomp(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stomp/websocket"

    def sockjs(self, session: str) -> str:
        return f"ws://127.0.0.1:{self.port}/stomp/000/{session}/websocket"

    def publish(self, *events: Signal | WorkerStatus) -> None:
        self.node.publisher.publish(list(events))


@contextlib.asynccontextmanager
async def running_gateway(
    tmp_path: Path, *, providers: Sequence[Provider] | None = None, **overrides: Any
) -> AsyncIterator[Gateway]:
    """The gateway (settings: a database under ``tmp_path``, no per-address cap, no
    rate limit to speak of, then ``overrides``; the feed: ``providers``, a ``Silent``
    one by default) until the block ends."""
    port = free_port()
    options: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/t.db",
        "port": port,
        "max_anonymous_connections_per_address": 0,
        "rate_limit_per_s": 10_000,
        "rate_limit_burst": 10_000,
        **overrides,
    }
    settings = Settings(**options)
    node = Node(settings, providers=list(providers) if providers is not None else [Silent()])
    app = build_app(settings, node)
    http, ws = protocol_classes(
        handshake_timeout_s=settings.handshake_timeout_s,
        close_timeout_s=settings.close_timeout_s,
    )
    config = uvicorn.Config(  # as cli/main.py's serve configures it
        app,
        host="127.0.0.1",
        port=port,
        http=http,
        ws=ws,
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=settings.permessage_deflate,
        ws_ping_interval=settings.ws_ping_interval_s or None,
        ws_ping_timeout=settings.ws_ping_timeout_s or None,
        timeout_graceful_shutdown=int(settings.close_timeout_s) + 1,
        proxy_headers=False,
        lifespan="on",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert not task.done(), "the gateway did not start"
        assert time.monotonic() < deadline, "the gateway did not start in 30 s"
        await asyncio.sleep(0.02)
    try:
        yield Gateway(node, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
