"""Several gateway nodes of one cluster in the test's own event loop, on one database,
joined by a bus: the machine's Redis (6379) or NATS (4222, JetStream), or ``MemoryBus``
buses on one ``MemoryBroker`` (nodes in one process and one loop: the cheapest).

Each node is ``build_app(settings, cluster_node(settings, providers=[Silent]))`` under
uvicorn with tickcast's protocol classes on a free port, as ``tickcast serve`` runs it,
so that clients reach it over real sockets. The feed is silent: the test publishes
market data through the leader's publisher (``Peer.publish``), so that what arrives, and
when, is the test's. Every node records, through a tap on its publisher, each envelope
its hub fanned out (``Peer.seen``): on the leader what it stamped, on a follower the
leader's batches it applied.

Every cluster works under a bus prefix of its own and removes the lease keys (Redis) or
bucket (NATS) it made: the shared servers are never flushed or stopped. Under
``CI=true`` an engine that cannot be reached fails the test instead of skipping it.
Every wait is for a condition, with a generous bound (a busy 2-core machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
import pytest
import uvicorn
from redis.asyncio import Redis

from support.server import free_port
from support.silent import Silent
from tickcast.app import WebSocketDispatch, build_app, cluster_node
from tickcast.bus.base import Bus
from tickcast.bus.memory import MemoryBroker, MemoryBus
from tickcast.bus.nats import lease_bucket
from tickcast.cluster.service import Cluster
from tickcast.config.settings import Settings
from tickcast.model.envelope import Envelope
from tickcast.model.market import MarketEvent, Quote, Trade
from tickcast.node import Node
from tickcast.transport.uvicorn_protocols import protocol_classes

SHARED_REDIS = "redis://127.0.0.1:6379/0"
SHARED_NATS = "nats://127.0.0.1:4222"
#: The longest any condition is waited for (a busy 2-core machine included).
WAIT_S = 60.0
#: The symbols every node serves.
SYMBOLS = ("AAPL", "MSFT")
SECRET = "a-cluster-test-secret-of-at-least-32-bytes"


def unavailable(reason: str) -> None:
    """Skip, or fail under ``CI=true`` (CI must provide every engine)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must provide it (.ci/run)")
    pytest.skip(reason)


async def wait_for(condition: Callable[[], Any], what: str, limit_s: float = WAIT_S) -> Any:
    """Poll ``condition`` until it is truthy; its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Engine:
    """A bus engine for one cluster: its kind, the prefix of its subjects and keys."""

    kind: str  # memory, redis or nats
    prefix: str = field(default_factory=lambda: f"tc-cluster-{secrets.token_hex(5)}")
    broker: MemoryBroker = field(default_factory=MemoryBroker)

    @property
    def url(self) -> str:
        return {"memory": "memory://", "redis": SHARED_REDIS, "nats": SHARED_NATS}[self.kind]

    def bus(self) -> Bus | None:
        """The bus a node is built with: one on the shared broker for memory, else None
        (``build_app`` makes one from ``bus_url``)."""
        return MemoryBus(self.broker) if self.kind == "memory" else None

    async def check(self) -> None:
        if self.kind == "redis":
            client = Redis.from_url(SHARED_REDIS, socket_connect_timeout=5)
            try:
                await client.ping()
            except Exception as exc:
                unavailable(f"Redis at {SHARED_REDIS} is unreachable: {exc!r}")
            finally:
                await client.aclose()
        elif self.kind == "nats":
            try:
                nc = await nats.connect(SHARED_NATS, connect_timeout=5, allow_reconnect=False)
            except Exception as exc:
                unavailable(f"NATS at {SHARED_NATS} is unreachable: {exc!r}")
            try:
                await nc.jetstream().account_info()
            except Exception as exc:
                unavailable(f"NATS at {SHARED_NATS} has no JetStream: {exc!r}")
            finally:
                await nc.close()

    async def cleanup(self) -> None:
        """Remove the lease the cluster made (its subjects leave nothing behind)."""
        lease = f"{self.prefix}.leader"
        if self.kind == "redis":
            client = Redis.from_url(SHARED_REDIS, socket_connect_timeout=5)
            try:
                await client.delete(lease, f"{lease}:token")
            finally:
                await client.aclose()
        elif self.kind == "nats":
            nc = await nats.connect(SHARED_NATS, connect_timeout=5, allow_reconnect=False)
            try:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await nc.jetstream().delete_key_value(lease_bucket(lease))
            finally:
                await nc.close()


@dataclass
class Peer:
    """One node of the cluster, served on ``port``."""

    name: str
    node: Node
    cluster: Cluster
    app: WebSocketDispatch
    port: int
    seen: list[Envelope]
    server: uvicorn.Server | None = None
    task: asyncio.Task[None] | None = None

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
    def leading(self) -> bool:
        return self.cluster.leading

    @property
    def forwarded(self) -> int:
        """Events this node handed the leader to stamp (a follower's own publications)."""
        return self.cluster.publisher.forwarded

    @property
    def epoch(self) -> str:
        return self.node.hub.epoch

    def on(self, topic: str) -> list[Envelope]:
        """The envelopes of ``topic`` (``"portfolio.7"``) this node fanned out, in order."""
        return [e for e in self.seen if str(e.topic) == topic]

    def numbering(self, topic: str) -> list[tuple[str, int]]:
        """``(epoch, seq)`` of each envelope of ``topic`` this node fanned out."""
        return [(e.epoch, e.seq) for e in self.on(topic)]

    def ingest(self, events: Sequence[MarketEvent]) -> None:
        """Market data into this node's feed, as its provider would deliver it (the
        leader's: a follower's feed does not run)."""
        self.node.ingest(list(events))

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.http, timeout=30) as client:
            return await client.get(path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.http, timeout=30) as client:
            return await client.post(path, **kwargs)

    async def metric(self, name: str) -> float:
        """The value of ``name`` (its first sample, labels or not) in ``/metrics``."""
        text = (await self.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith((name + " ", name + "{")):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)


def quote(symbol: str, price: float) -> Quote:
    return Quote(symbol, price, price, 100, 100, price, 1000, time.time(), "test")


def trade(symbol: str, price: float, trade_id: str) -> Trade:
    return Trade(symbol, price, 10, time.time(), "test", trade_id)


@dataclass
class Nodes:
    """The running nodes, the first the leader (``start_cluster``)."""

    engine: Engine
    peers: list[Peer]

    @property
    def leader(self) -> Peer:
        [leader] = [p for p in self.peers if p.leading]
        return leader

    @property
    def followers(self) -> list[Peer]:
        return [p for p in self.peers if not p.leading]

    def formed(self) -> bool:
        """One leader, named by every node; every node a member of every other's table,
        and every follower in the leader's epoch, with a batch of it applied."""
        leaders = [p for p in self.peers if p.leading]
        if len(leaders) != 1:
            return False
        leader = leaders[0]
        n = len(self.peers)
        return all(
            p.cluster.leader == leader.name
            and len(p.cluster.members) == n - 1
            and p.epoch == leader.epoch
            and p.cluster.ready()
            for p in self.peers
        )


async def _serve(peer: Peer, settings: Settings) -> None:
    http, ws = protocol_classes(
        handshake_timeout_s=settings.handshake_timeout_s,
        close_timeout_s=settings.close_timeout_s,
    )
    config = uvicorn.Config(
        peer.app,
        host="127.0.0.1",
        port=peer.port,
        http=http,
        ws=ws,
        ws_max_size=settings.max_message_bytes,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.close_timeout_s) + 1,
    )
    server = peer.server = uvicorn.Server(config)
    task = peer.task = asyncio.create_task(server.serve(), name=f"gateway-{peer.name}")
    await wait_for(lambda: server.started or task.done(), f"{peer.name} to start")
    if task.done():
        task.result()  # raises what stopped it
        raise AssertionError(f"{peer.name} stopped at once")


async def _stop(peer: Peer) -> None:
    if peer.server is None or peer.task is None:
        return
    peer.server.should_exit = True
    await asyncio.wait_for(peer.task, WAIT_S)


def _peer(name: str, settings: Settings, bus: Bus | None) -> Peer:
    node = cluster_node(settings, providers=[Silent(SYMBOLS)])
    app = build_app(settings, node, bus=bus)
    [cluster] = [s for s in node.services if isinstance(s, Cluster)]
    seen: list[Envelope] = []
    node.publisher.tap(seen.extend, name="test-recorder")
    return Peer(name, node, cluster, app, settings.port, seen)


@contextlib.asynccontextmanager
async def start_cluster(
    engine: Engine, database_url: str, nodes: int = 2, **overrides: Any
) -> AsyncIterator[Nodes]:
    """``nodes`` nodes on ``database_url`` joined by ``engine``, the first of them the
    leader (it is started first and waited for), until the block ends. Settings: no
    per-address cap, no rate limit to speak of, a short heartbeat, a short batching
    window, then ``overrides``. The cluster is formed when the block starts
    (``Nodes.formed``): the leader publishes a quote until every follower applied
    one of its batches."""
    await engine.check()
    peers: list[Peer] = []
    try:
        for i in range(nodes):
            name = f"node-{chr(ord('a') + i)}"
            port = free_port()
            options: dict[str, Any] = {
                "database_url": database_url,
                "port": port,
                "node_id": name,
                "bus_url": engine.url,
                "bus_prefix": engine.prefix,
                "heartbeat_s": 0.5,
                "lease_ttl_s": 15.0,
                "jwt_secret": SECRET,
                "batch_ms": 10,
                "update_interval_s": 0.2,
                "cache_timeout_s": 0.5,
                "max_anonymous_connections_per_address": 0,
                "rate_limit_per_s": 10_000,
                "rate_limit_burst": 10_000,
                **overrides,
            }
            settings = Settings(**options)
            peer = _peer(name, settings, engine.bus())
            peers.append(peer)
            await _serve(peer, settings)
            if i == 0:
                await wait_for(lambda: peers[0].leading, "the first node to lead")
        cluster = Nodes(engine, peers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while not cluster.formed():
            if loop.time() > deadline:
                raise AssertionError(f"the cluster did not form in {WAIT_S} s")
            # a batch for the followers to join the leader's numbering by
            peers[0].ingest([quote(SYMBOLS[1], 400.0)])
            await asyncio.sleep(0.1)
        yield cluster
    finally:
        for peer in reversed(peers):  # the followers first: no new election
            await _stop(peer)
        await engine.cleanup()
