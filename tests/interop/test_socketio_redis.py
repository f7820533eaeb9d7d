"""Signals from Redis to Socket.IO clients, end to end: a real `tickcast serve` with
``signals_redis_url`` set, the seed's producers ``PUBLISH``-ing JSON on Redis, and real
Socket.IO clients (python-socketio's ``AsyncClient``; socket.io-client 4 in Node) that
get ``new_signal`` for each message and a ``status_update`` whenever the Redis source's
health changes: Redis taken away (a private ``redis-server`` of the test's own, never
the machine's shared one) and brought back.

Every wait is for a condition with a deadline, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from redis.asyncio import Redis

from interop.test_socketio_js import spawn
from support.nodejs import require_node
from support.redis import PrivateRedis
from support.server import Server, free_port, start_server

SHARED_REDIS = "redis://127.0.0.1:6379/0"
WAIT_S = 60.0
#: The seed's producer's message, as its workers PUBLISH it.
SEED_SIGNAL = {
    "type": "QUANTUM_CIPHER",
    "signal": "BUY",
    "price": 162.5,
    "symbol": "BTC/USDT",
    "timeframe": "1m",
    "timestamp": "2026-12-05T10:00:00.000Z",
}


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class Listener:
    """A python-socketio ``AsyncClient`` recording every event, in order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=True)
        self.events: list[tuple[str, Any]] = []
        self.client.on("*", self._any)

    async def _any(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))

    def named(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]

    def status(self, service: str) -> str | None:
        """The latest state the client was told of ``service``."""
        told = [s["status"] for s in self.named("status_update") if s["service"] == service]
        return told[-1] if told else None

    async def until(self, check: Callable[[], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while not check():
            if loop.time() > deadline:
                raise AssertionError(f"not within {WAIT_S} s: {what}; events {self.events[-5:]}")
            await asyncio.sleep(0.02)


async def publish(url: str, channel: str, document: dict[str, Any] | bytes) -> None:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    client = Redis.from_url(url)
    try:
        await client.publish(channel, data)
    finally:
        await client.aclose()


def serve(tmp_path: Path, redis_url: str, channel: str) -> Server:
    return start_server(
        tmp_path,
        signals_redis_url=redis_url,
        signals_channel=channel,
        signals_engine=False,
        rate=50,
        socketio_ping_interval_s=2,
        socketio_ping_timeout_s=5,
    )


@pytest.fixture
async def shared_redis() -> str:
    client = Redis.from_url(SHARED_REDIS, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        unavailable(f"Redis at {SHARED_REDIS} is unreachable: {exc!r}")
    finally:
        await client.aclose()
    return SHARED_REDIS


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = PrivateRedis(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
async def test_a_publish_on_redis_is_a_new_signal_for_every_client(
    tmp_path: Path, shared_redis: str, transports: list[str]
) -> None:
    channel = f"signals-{secrets.token_hex(4)}"  # this test's own on the shared Redis
    server = serve(tmp_path, shared_redis, channel)
    first, second = Listener(), Listener()
    try:
        for listener in (first, second):
            await listener.client.connect(server.http, transports=transports)
            await listener.until(lambda lst=listener: bool(lst.named("welcome")), "welcome")
            # subscribed on Redis before the PUBLISH: pub/sub keeps nothing for later
            await listener.until(lambda lst=listener: lst.status("redis") == "active", "redis")
        await publish(shared_redis, channel, SEED_SIGNAL)
        await publish(shared_redis, channel, {**SEED_SIGNAL, "signal": "SELL", "id": "two"})
        for listener in (first, second):
            await listener.until(lambda lst=listener: len(lst.named("new_signal")) == 2, "both")
            one, two = listener.named("new_signal")
            assert {k: one[k] for k in SEED_SIGNAL} == SEED_SIGNAL  # the seed's shape
            assert one["id"]
            assert one["source"] == "external"
            assert (two["signal"], two["id"]) == ("SELL", "two")  # in order
            assert listener.events[0][0] == "welcome"
    finally:
        for listener in (first, second):
            await listener.client.disconnect()
        server.stop()


async def test_bad_messages_on_redis_reach_no_client_and_the_listener_goes_on(
    tmp_path: Path, shared_redis: str
) -> None:
    channel = f"signals-{secrets.token_hex(4)}"
    server = serve(tmp_path, shared_redis, channel)
    listener = Listener()
    try:
        await listener.client.connect(server.http, transports=["websocket"])
        await listener.until(lambda: listener.status("redis") == "active", "redis active")
        for garbage in (
            b"not json",
            b"\xff\xfe",
            json.dumps({**SEED_SIGNAL, "leverage": 10}).encode(),  # an unknown field
            json.dumps({**SEED_SIGNAL, "price": "162.5"}).encode(),  # a wrong type
            json.dumps({**SEED_SIGNAL, "symbol": "X" * 5000}).encode(),  # oversized
        ):
            await publish(shared_redis, channel, garbage)
        await publish(shared_redis, channel, {**SEED_SIGNAL, "id": "after-garbage"})
        await listener.until(lambda: bool(listener.named("new_signal")), "the good one")
        assert [s["id"] for s in listener.named("new_signal")] == ["after-garbage"]
        assert listener.client.connected
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            letters = (await http.get("/signals/dead-letters")).json()
        assert sorted(letter["reason"] for letter in letters) == [
            "invalid",
            "invalid",
            "malformed",
            "malformed",
            "too_large",
        ]
    finally:
        await listener.client.disconnect()
        server.stop()


async def test_status_update_when_redis_goes_away_and_comes_back(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    await private_redis.ready()
    channel = "signals"
    server = serve(tmp_path, private_redis.url, channel)
    listener = Listener()
    try:
        await listener.client.connect(server.http, transports=["websocket"])
        await listener.until(lambda: listener.status("redis") == "active", "redis active")
        assert listener.status("SignalMonitorWorker") == "active"

        private_redis.stop()  # Redis goes away
        await listener.until(lambda: listener.status("redis") == "offline", "redis offline")
        assert listener.status("SignalMonitorWorker") == "offline"  # its one source is down
        told = [s for s in listener.named("status_update") if s["service"] == "redis"]
        assert [s["status"] for s in told[-2:]] == ["degraded", "offline"]  # each change once
        assert "127.0.0.1" not in told[-1]["message"]  # a public status names no server

        private_redis.start()  # and comes back: resubscribed, active, signals flow again
        await private_redis.ready()
        await listener.until(lambda: listener.status("redis") == "active", "redis back")
        await listener.until(
            lambda: listener.status("SignalMonitorWorker") == "active", "monitor back"
        )
        await publish(private_redis.url, channel, {**SEED_SIGNAL, "id": "after-restart"})
        await listener.until(lambda: bool(listener.named("new_signal")), "a signal after")
        assert listener.named("new_signal")[-1]["id"] == "after-restart"
    finally:
        await listener.client.disconnect()
        server.stop()


def test_socket_io_client_in_node_gets_a_signal_published_on_redis(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    node = require_node("socket.io-client")
    asyncio.run(private_redis.ready())
    server = serve(tmp_path, private_redis.url, "signals")
    config = {"url": server.http, "transports": ["polling", "websocket"]}
    client = spawn(node, config, tmp_path / "node.stderr")
    try:

        def event(name: str, check: Callable[[Any], bool] = lambda _: True) -> Any:
            return client.until(
                lambda line: (
                    line["kind"] == "event" and line["name"] == name and check(line["body"])
                )
            )["body"]

        event("welcome")
        event("status_update", lambda s: s["service"] == "redis" and s["status"] == "active")
        asyncio.run(publish(private_redis.url, "signals", {**SEED_SIGNAL, "id": "from-redis"}))
        got = event("new_signal")
        assert got == {**SEED_SIGNAL, "id": "from-redis", "source": "external"}
    finally:
        client.close()
        server.stop()
