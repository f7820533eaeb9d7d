"""Cluster faults, with real ``tickcast serve`` nodes on a private bus engine.

Two nodes join over a ``redis-server`` or ``nats-server`` of the test's own (so that
stopping it never touches the machine's shared services), with a short lease
(``TTL_S``) and heartbeat (``HEARTBEAT_S``) to be quick:

1. The leader is killed (SIGKILL): the follower takes over within the lease's bound,
   with a larger fencing token and a new epoch; its client, closed with 1012, resumes
   and gets a ``reset``, never a silent hole.
2. The bus engine restarts: the nodes reconnect, a leader exists again (re-elected when
   the restart lost the lease), both are ready, none died, and the clients' streams are
   continuous or resumed through a reset.
3. One node is cut off from the bus (a TCP proxy between it and Redis, stopped): it
   stops leading, the other takes over, the cut-off node is not ready and says its data
   is stale; back on the bus it follows again and is ready.
4. Never two upstream connections: both nodes on one Alpaca emulator (in the test's
   loop, its connection claims watched as they happen) while the leader is cut off as
   the upstream drops, and while the new leader is killed: never two connections of
   the key at once, never a 406.

The bounds are computed from the settings with generous slack for a busy 2-core
machine (``SLACK_S``); every measured takeover is printed (``-s`` shows them). Under
``CI=true`` a missing ``redis-server`` or ``nats-server`` is a failure, not a skip.
Waits poll conditions with deadlines, never sleep as synchronization.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from support.cluster_faults import (
    ClaimSpy,
    FeedClient,
    cluster_view,
    formed,
    ready_status,
    require,
    start_node,
    stop_node,
    until,
)
from support.natsserver import PrivateNats
from support.redis import PrivateRedis
from support.server import Server, free_port
from support.tcpproxy import TcpProxy
from tickcast.emulators.alpaca import build_server
from tickcast.emulators.base import Fault

TTL_S = 2.0
HEARTBEAT_S = 0.3
#: Slack on every bound for a busy machine (two Python nodes and the test on 2 cores).
SLACK_S = 6.0
#: A leader that cannot renew steps down after this share of the TTL (bus/leader.py).
STEP_DOWN = 0.6
#: The lease expires, then a follower's next try (every TTL/3) takes it; the members'
#: silence (3 heartbeats) only makes it try at once.
TAKEOVER_BOUND_S = TTL_S + TTL_S / 3 + 3 * HEARTBEAT_S + SLACK_S
#: A node cut off from the bus stops leading within this.
STEP_DOWN_BOUND_S = STEP_DOWN * TTL_S + SLACK_S
#: Back on the bus after a restart: the Redis bus's reconnection back-off is capped at
#: 5 s (NATS retries every 0.5 s), then a takeover at worst.
REJOIN_BOUND_S = 5.0 + TAKEOVER_BOUND_S

STOCKS = ("AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY")
CREDENTIALS = {"ALPACA_API_KEY_ID": "emulator-key", "ALPACA_API_SECRET_KEY": "emulator-secret"}


def _settings(bus_url: str, tmp_path: Path, **more: object) -> dict[str, object]:
    return {
        "bus_url": bus_url,
        "bus_prefix": f"faults-{uuid.uuid4().hex[:12]}",
        "lease_ttl_s": TTL_S,
        "heartbeat_s": HEARTBEAT_S,
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/shared.db",
        "rate": 100,
        "history_size": 4096,
        **more,
    }


@contextlib.asynccontextmanager
async def private_bus(engine: str, tmp_path: Path) -> AsyncIterator[PrivateRedis | PrivateNats]:
    require("redis-server" if engine == "redis" else "nats-server")
    workdir = tmp_path / engine
    workdir.mkdir()
    server: PrivateRedis | PrivateNats
    if engine == "redis":
        server = PrivateRedis(free_port(), workdir)
    else:
        server = PrivateNats(free_port(), workdir)
    server.start()
    try:
        await server.ready()
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def running(nodes: dict[str, Server]) -> AsyncIterator[dict[str, Server]]:
    try:
        yield nodes
    finally:
        await asyncio.gather(*(stop_node(server) for server in nodes.values()))


async def _start_pair(tmp_path: Path, settings: dict[str, object]) -> dict[str, Server]:
    """node-a and node-b at once (either may lead), each on a database of its own (two
    processes migrating one SQLite file at once would race; these tests need no data)."""
    names = ("node-a", "node-b")
    started = await asyncio.gather(
        *(
            start_node(
                tmp_path,
                n,
                **{**settings, "database_url": f"sqlite+aiosqlite:///{tmp_path}/{n}.db"},
            )
            for n in names
        ),
        return_exceptions=True,
    )
    nodes = {n: s for n, s in zip(names, started, strict=True) if isinstance(s, Server)}
    failed = [s for s in started if isinstance(s, BaseException)]
    if failed:
        await asyncio.gather(*(stop_node(server) for server in nodes.values()))
        raise failed[0]
    return nodes


async def _leads(server: Server, node_id: str) -> dict[str, Any] | None:
    view = await cluster_view(server)
    if view is not None and view["role"] == "leader" and view["leader"] == node_id:
        return view
    return None


async def _follows(server: Server, leader: str) -> dict[str, Any] | None:
    view = await cluster_view(server)
    if view is None or view["role"] != "follower" or view["leader"] != leader:
        return None
    return view if view["ready"] and await ready_status(server) == 200 else None


def _report(what: str, seconds: float, bound: float) -> None:
    print(f"\n[cluster-faults] {what}: {seconds:.2f} s (bound {bound:.1f} s)")


def _assert_resumed_out_loud(client: FeedClient, *, closed: bool) -> None:
    """No silent hole; every close a 1012; every reconnection of a topic that moved to
    another epoch answered with a reset."""
    if client.violations:
        print("\n".join(client.journal))
    assert not client.violations, client.violations
    assert set(client.closes) <= {1012}, client.closes
    if closed:
        assert 1012 in client.closes, client.closes
        assert client.resets, "the client was closed but no reset followed its resume"


# -- 1. the leader is killed


@pytest.mark.parametrize("engine", ["redis", "nats"])
async def test_a_follower_takes_over_when_the_leader_is_killed(engine: str, tmp_path: Path) -> None:
    async with private_bus(engine, tmp_path) as bus:
        settings = _settings(bus.url, tmp_path)
        nodes = await _start_pair(tmp_path, settings)
        async with running(nodes):
            leader = await until(lambda: formed(nodes), "a cluster of two with one leader")
            (survivor,) = set(nodes) - {leader}
            before = await cluster_view(nodes[survivor])
            assert before is not None
            client = FeedClient(nodes[survivor].feed)
            client.start()
            try:
                await until(lambda: client.count() >= 3, "trades on the survivor")
                killed = time.monotonic()
                nodes[leader].proc.kill()
                after = await until(lambda: _leads(nodes[survivor], survivor), "a takeover")
                took = time.monotonic() - killed
                _report(f"{engine}: takeover after SIGKILL", took, TAKEOVER_BOUND_S)
                assert took <= TAKEOVER_BOUND_S
                assert after["token"] > before["token"]
                assert after["epoch"] != before["epoch"]
                await until(lambda: client.count(after["epoch"]) >= 3, "trades in the new epoch")
                await until(lambda: ready_status(nodes[survivor]), "an answer from /ready")
                assert await ready_status(nodes[survivor]) == 200
            finally:
                await client.stop()
            _assert_resumed_out_loud(client, closed=True)
            assert client.epochs() == {after["epoch"]}
            assert nodes[survivor].proc.poll() is None


async def test_a_follower_that_joined_mid_epoch_announces_the_leaders_positions(
    tmp_path: Path,
) -> None:
    """A node that joins a numbering under way announces a topic's position only once
    it knows it (an update came), never 0 where the leader is further on; the client's
    first trade on a topic left out says where it is."""
    async with private_bus("redis", tmp_path) as bus:
        settings = _settings(bus.url, tmp_path, rate=10)  # rare trades: most topics quiet
        nodes: dict[str, Server] = {}
        async with running(nodes):
            nodes["node-a"] = await start_node(tmp_path, "node-a", **settings)
            on_leader = FeedClient(nodes["node-a"].feed, symbols=STOCKS, status=False)
            on_leader.start()
            # the client knocks from before node-b starts, so that it subscribes as soon
            # as node-b serves: just after it joined the leader's epoch
            port = free_port()
            strict = FeedClient(
                f"ws://127.0.0.1:{port}/ws/market/feed", symbols=STOCKS, unsure_zero=False
            )
            try:
                await until(lambda: len(on_leader.trades) >= 5, "trades on five topics")
                published = {t: seen[-1] for t, seen in on_leader.trades.items()}
                strict.start()
                nodes["node-b"] = await start_node(tmp_path, "node-b", port=port, **settings)
                await until(
                    lambda: len(strict.announced) + len(strict.unknown) == len(STOCKS),
                    "node-b's positions (or that it cannot know them)",
                )
            finally:
                await on_leader.stop()
                await strict.stop()
            # what the leader had published before node-b even started is behind the
            # position node-b announces (in the same epoch), never after it
            behind = {
                topic: (strict.announced[topic], last)
                for topic, last in published.items()
                if topic in strict.announced
                and strict.announced[topic][0] == last[0]
                and strict.announced[topic][1] < last[1]
            }
            assert not behind, f"node-b announced (epoch, seq) behind the leader's: {behind}"
            assert not strict.violations, strict.violations


# -- 2. the bus engine restarts


@pytest.mark.parametrize("engine", ["redis", "nats"])
async def test_the_cluster_recovers_when_the_bus_restarts(engine: str, tmp_path: Path) -> None:
    async with private_bus(engine, tmp_path) as bus:
        await _restart_the_bus(engine, bus, tmp_path)


async def test_the_cluster_recovers_when_redis_restarts_after_earlier_terms(
    tmp_path: Path,
) -> None:
    async with private_bus("redis", tmp_path) as bus:
        await _restart_the_bus("redis", bus, tmp_path, earlier_terms=6)


async def _restart_the_bus(
    engine: str, bus: Any, tmp_path: Path, *, earlier_terms: int = 0
) -> None:
    settings = _settings(bus.url, tmp_path)
    if earlier_terms:  # as if the lease had been granted that many times already
        engine_client = Redis.from_url(bus.url)
        try:
            await engine_client.set(f"{settings['bus_prefix']}.leader:token", earlier_terms)
        finally:
            await engine_client.aclose()
    nodes = await _start_pair(tmp_path, settings)
    async with running(nodes):
        leader = await until(lambda: formed(nodes), "a cluster of two with one leader")
        views = {n: await cluster_view(s) for n, s in nodes.items()}
        epochs = {n: v["epoch"] for n, v in views.items() if v is not None}
        clients = {n: FeedClient(s.feed) for n, s in nodes.items()}
        for client in clients.values():
            client.start()
        try:
            await until(lambda: all(c.count() >= 3 for c in clients.values()), "trades on both")
            counts = {n: c.count() for n, c in clients.items()}
            bus.stop()
            bus.start()
            await bus.ready()
            restarted = time.monotonic()

            async def recovered() -> str | None:
                again = await formed(nodes)
                if again is None or engine != "redis":
                    return again
                # Redis lost the lease: a new term, hence a new epoch on every node
                now = [await cluster_view(s) for s in nodes.values()]
                new = all(v is not None and v["epoch"] not in epochs.values() for v in now)
                return again if new else None

            again = await until(recovered, "a leader again, both nodes ready", REJOIN_BOUND_S)
            took = time.monotonic() - restarted
            _report(f"{engine}: leader and both nodes ready after a restart", took, REJOIN_BOUND_S)
            assert took <= REJOIN_BOUND_S
            try:
                await until(
                    lambda: all(c.count() >= counts[n] + 3 for n, c in clients.items()),
                    "trades again on both nodes",
                )
            except AssertionError:
                for n, s in nodes.items():
                    print(n, await cluster_view(s), s.log()[-4000:])
                for n, c in clients.items():
                    print(n, c.count(), counts[n], c.closes, c.connections, c.journal[-10:])
                raise
        finally:
            for client in clients.values():
                await client.stop()
        now = {n: await cluster_view(s) for n, s in nodes.items()}
        tokens = (
            [v and v["token"] for v in views.values()],
            [v and v["token"] for v in now.values()],
        )
        print(f"[cluster-faults] {engine}: leader {leader} -> {again}; tokens {tokens}")
        for name, server in nodes.items():
            assert server.proc.poll() is None, f"{name} died:\n{server.log()[-3000:]}"
        for client in clients.values():
            _assert_resumed_out_loud(client, closed=False)


# -- 3. one node cut off from the bus


async def test_a_node_cut_off_from_the_bus_stops_leading_says_so_and_rejoins(
    tmp_path: Path,
) -> None:
    async with private_bus("redis", tmp_path) as redis:
        proxy = TcpProxy(redis.port)
        await proxy.start()
        try:
            await _cut_off(tmp_path, redis, proxy)
        finally:
            await proxy.stop()


async def _cut_off(tmp_path: Path, redis: Any, proxy: TcpProxy) -> None:
    prefix = _settings("", tmp_path)["bus_prefix"]
    via_proxy = f"redis://127.0.0.1:{proxy.port}/0"
    nodes: dict[str, Server] = {}
    async with running(nodes):
        # node-a starts first, alone, so it leads; node-b joins directly
        nodes["node-a"] = await start_node(
            tmp_path, "node-a", **_settings(via_proxy, tmp_path, bus_prefix=prefix)
        )
        nodes["node-b"] = await start_node(
            tmp_path, "node-b", **_settings(redis.url, tmp_path, bus_prefix=prefix)
        )
        leader = await until(lambda: formed(nodes), "a cluster of two with one leader")
        a, b = nodes["node-a"], nodes["node-b"]
        client = FeedClient(a.feed)
        client.start()
        try:
            await until(lambda: client.count() >= 3, "trades on node-a")
            cut = time.monotonic()
            await proxy.stop()  # every socket aborted; new ones refused
            if leader == "node-a":
                await until(
                    lambda: _role_is_not(a, "leader"),
                    "node-a stepping down",
                    STEP_DOWN_BOUND_S + 30,
                )
                took = time.monotonic() - cut
                _report("cut-off leader stepped down", took, STEP_DOWN_BOUND_S)
                assert took <= STEP_DOWN_BOUND_S
            await until(lambda: _leads(b, "node-b"), "node-b leading")
            took = time.monotonic() - cut
            _report("takeover from a cut-off leader", took, TAKEOVER_BOUND_S)
            assert took <= TAKEOVER_BOUND_S
            await until(lambda: _is(ready_status(a), 503), "node-a not ready while cut off")
            stale = await until(
                lambda: [
                    s
                    for s in client.statuses
                    if s.get("provider") == "cluster" and s.get("state") == "stale"
                ],
                "a stale status on node-a's client",
            )
            assert stale
            view = await cluster_view(a)
            assert view is not None
            assert view["role"] != "leader"
            assert view["bus"]["connected"] is False

            rejoin = TcpProxy(redis.port, port=proxy.port)
            await rejoin.start()
            try:
                back = time.monotonic()
                await until(lambda: _follows(a, "node-b"), "node-a following node-b, ready")
                _report(
                    "cut-off node back as a ready follower", time.monotonic() - back, REJOIN_BOUND_S
                )
                assert time.monotonic() - back <= REJOIN_BOUND_S
                epoch = (await cluster_view(b) or {})["epoch"]
                await until(lambda: client.count(epoch) >= 3, "node-a's client in node-b's epoch")
            finally:
                await client.stop()
                await rejoin.stop()
        finally:
            await client.stop()
        _assert_resumed_out_loud(client, closed=True)
        for name, server in nodes.items():
            assert server.proc.poll() is None, f"{name} died"


async def _role_is_not(server: Server, role: str) -> bool:
    view = await cluster_view(server)
    return view is not None and view["role"] != role


async def _is(status: Any, expected: int) -> bool:
    return bool(await status == expected)


# -- 4. never two upstream connections


async def test_never_two_upstream_connections_through_leader_changes(tmp_path: Path) -> None:
    async with (
        private_bus("redis", tmp_path) as redis,
        build_server(rate=50) as emulator,
    ):
        spy = ClaimSpy.on(emulator)
        proxy = TcpProxy(redis.port)
        await proxy.start()
        try:
            await _upstream_through_changes(tmp_path, redis, proxy, emulator, spy)
        finally:
            await proxy.stop()
        print(
            f"[cluster-faults] alpaca claims: granted {spy.granted}, peak {spy.peak}, "
            f"refused {len(spy.refused)}"
        )
        assert spy.peak <= 1
        assert not spy.refused, "the emulator answered 406: two connections of one key"


async def _upstream_through_changes(
    tmp_path: Path, redis: Any, proxy: TcpProxy, emulator: Any, spy: ClaimSpy
) -> None:
    prefix = _settings("", tmp_path)["bus_prefix"]
    feed = {
        "feed": "alpaca",
        "alpaca_url": f"{emulator.url}/v2/iex",
        "feed_backoff_base_s": 0.1,
        "feed_backoff_cap_s": 0.5,
        "bus_prefix": prefix,
        "extra_env": CREDENTIALS,
    }
    via_proxy = f"redis://127.0.0.1:{proxy.port}/0"
    nodes: dict[str, Server] = {}
    async with running(nodes):
        nodes["node-a"] = await start_node(
            tmp_path, "node-a", **_settings(via_proxy, tmp_path, **feed)
        )
        nodes["node-b"] = await start_node(
            tmp_path, "node-b", **_settings(redis.url, tmp_path, **feed)
        )
        a, b = nodes["node-a"], nodes["node-b"]
        assert await until(lambda: formed(nodes), "a cluster of two") == "node-a"
        assert spy.held.get("emulator-key") == 1

        # the leader is cut off from the bus while its upstream drops: it reconnects
        # upstream while it still leads, and must be gone before node-b connects
        cut = time.monotonic()
        await proxy.stop()
        emulator.inject(Fault.DROP)
        await until(lambda: _leads(b, "node-b"), "node-b leading")
        _report("alpaca: takeover from a cut-off leader", time.monotonic() - cut, TAKEOVER_BOUND_S)
        assert time.monotonic() - cut <= TAKEOVER_BOUND_S
        await until(lambda: _is(ready_status(b), 200), "node-b's upstream up")
        rejoin = TcpProxy(redis.port, port=proxy.port)
        await rejoin.start()
        try:
            await until(lambda: _follows(a, "node-b"), "node-a following again")
            assert spy.held.get("emulator-key") == 1

            # the leader is killed while the upstream drops: node-a takes over
            killed = time.monotonic()
            b.proc.kill()
            emulator.inject(Fault.DROP)
            await until(lambda: _leads(a, "node-a"), "node-a leading again")
            took = time.monotonic() - killed
            _report("alpaca: takeover after SIGKILL", took, TAKEOVER_BOUND_S)
            assert took <= TAKEOVER_BOUND_S
            await until(lambda: _is(ready_status(a), 200), "node-a's upstream up")
            assert spy.held.get("emulator-key") == 1
        finally:
            await rejoin.stop()
