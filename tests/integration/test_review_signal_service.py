"""Review findings for the signal service: the Redis source and the HTTP API.

Each test reproduced one defect found in review (it failed before the fix) and now guards
against its return. Real services
only: a private ``redis-server`` per test where Redis is stopped, cut or reconfigured
(the shared one is never touched), the real app in-process for the HTTP API. Every wait
is on a condition, with a generous timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from integration.test_signals import SIGNAL, TIMEOUT_S, _unavailable, wait_for
from support.accounts import seed
from support.redis import PrivateRedis
from support.server import free_port
from support.silent import Silent
from tickcast.app import build_app
from tickcast.config.settings import Settings
from tickcast.node import Node
from tickcast.retry import Backoff
from tickcast.signals import redis_source
from tickcast.signals.redis_source import RedisSource

SECRET = "a-review-test-secret-of-at-least-32-bytes!"


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[str]:
    """A ``redis-server`` of this test's own; yields its URL (no password)."""
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    server = PrivateRedis(free_port(), tmp_path)
    server.start()
    try:
        await server.ready()
        yield server.url
    finally:
        server.stop()


class BlackHole:
    """A TCP proxy to Redis that can be cut silently: once ``cut``, it forwards nothing
    either way but keeps every socket open (no FIN, no RST), as a network partition or
    a peer that froze does."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cut = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        listening: int = self.server.sockets[0].getsockname()[1]
        return listening

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [writer, upstream_writer]
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if not self.cut:
                    writer.write(data)
                    await writer.drain()

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


# -- the Redis source


async def test_a_subscription_that_redis_refuses_is_never_reported_active(
    private_redis: str,
) -> None:
    admin = Redis.from_url(private_redis, socket_connect_timeout=5, socket_timeout=10)
    try:
        # a user that may run every command but use no channel (Redis 7's default for
        # new users, explicit here): an everyday operator's mistake
        await admin.execute_command(
            "ACL", "SETUSER", "feeder", "on", ">feeder-pw", "~*", "resetchannels", "+@all"
        )
    except Exception as exc:
        _unavailable(f"this redis-server has no channel ACLs: {exc!r}")
    finally:
        await admin.aclose()
    url = private_redis.replace("redis://", "redis://feeder:feeder-pw@")
    states: list[str] = []
    source = RedisSource(
        url, "signals-acl", lambda _: None, backoff=Backoff(base_s=0.01, cap_s=0.05)
    )
    source.on_change = lambda: states.append(source.status().status)
    await source.start()
    try:
        await wait_for(lambda: sum(source.events().values()) >= 8, "several subscription attempts")
        status = source.status()
    finally:
        await source.aclose()
    assert "active" not in states, states[:10]
    assert status.status == "offline", status


async def test_a_silent_network_cut_is_seen_and_repaired(
    private_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_source, "HEALTH_CHECK_S", 1.0)  # the check, sooner
    port = int(private_redis.rsplit(":", 1)[1].split("/")[0])
    proxy = BlackHole(port)
    listening = await proxy.start()
    states: list[str] = []
    source = RedisSource(
        f"redis://127.0.0.1:{listening}/0",
        "signals-cut",
        lambda _: None,
        backoff=Backoff(base_s=0.01, cap_s=0.05),
    )
    source.on_change = lambda: states.append(source.status().status)
    await source.start()
    try:
        await asyncio.wait_for(source.wait_subscribed(), TIMEOUT_S)
        proxy.cut = True
        # a PING after 1 s of silence: sixty times that
        await wait_for(lambda: not source.subscribed, "the cut to be seen")
        assert states[-1] != "active"
    finally:
        await source.aclose()
        await proxy.aclose()


# -- the HTTP API


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """The app in-process (no engine, a silent feed) and the producer's key header."""
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db"
    accounts = await seed(url, {"producer": {}}, permissions={"producer": "publish:signals"})
    config = Settings(database_url=url, jwt_secret=SECRET, signals_engine=False)
    node = Node(config, providers=[Silent(("BTC/USDT",))])
    app = build_app(config, node)
    async with (
        app.app.router.lifespan_context(app.app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client, {"X-API-Key": accounts["producer"].api_key}


async def test_get_signals_finds_a_symbol_whatever_its_case(
    gateway: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, producer = gateway
    r = await client.post("/api/signals", json={**SIGNAL, "symbol": "btc/usdt"}, headers=producer)
    assert r.status_code == 201, r.text
    assert r.json()["symbol"] == "BTC/USDT"
    upper = (await client.get("/api/signals", params={"symbol": "BTC/USDT"})).json()
    assert len(upper) == 1
    lower = (await client.get("/api/signals", params={"symbol": "btc/usdt"})).json()
    assert lower == upper
