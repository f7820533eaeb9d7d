"""A cluster of gateway nodes over real sockets and the HTTP API: two or three nodes on one
database (a SQLite file, PostgreSQL for the write propagation too) joined by a bus, the
machine's Redis for most cases, NATS for two, the in-process ``MemoryBus`` where one
process suffices (``support/cluster.py`` runs them all in the test's loop).

What is checked is what a client and an operator see: connection caps, live values,
sequences and resume, statistics, signals and ``/cluster`` are the cluster's, not one
node's. What a node's hub fanned out is read from a tap on its publisher (``Peer.seen``)
to tell one sequence from two. Every wait is for a condition with a generous bound.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from support.accounts import Account, seed
from support.cluster import (
    SHARED_REDIS,
    WAIT_S,
    Engine,
    Nodes,
    Peer,
    quote,
    start_cluster,
    trade,
    wait_for,
)
from support.handshake import http_refusal
from support.inloop import running_gateway
from support.postgres import fresh_database
from tickcast.model.portfolio import PortfolioValue
from tickcast.model.signal import Signal, encode
from tickcast.signals.redis_source import RedisSource

SIGNAL: dict[str, Any] = {
    "type": "QUANTUM_CIPHER",
    "signal": "BUY",
    "price": 162.5,
    "symbol": "AAPL",
    "timeframe": "1m",
    "timestamp": "2026-01-02T03:04:05.000Z",
}


# -- helpers -----------------------------------------------------------------------------


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/cluster.db"


def key(account: Account) -> dict[str, str]:
    return {"X-API-Key": account.api_key}


async def recv(ws: ClientConnection, wait_s: float = WAIT_S) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), wait_s))


async def recv_until(
    ws: ClientConnection, predicate: Callable[[Any], bool], wait_s: float = WAIT_S
) -> Any:
    """Read until a message satisfies ``predicate``; that message."""
    deadline = time.monotonic() + wait_s
    while True:
        message = await recv(ws, max(0.01, deadline - time.monotonic()))
        if predicate(message):
            return message


async def realtime_client(peer: Peer, account: Account) -> ClientConnection:
    """A Front 2 client of ``account``'s, signed in by its API key at the handshake."""
    ws = await websockets.connect(peer.realtime, additional_headers=key(account))
    hello = await recv(ws)
    assert hello["type"] == "connection", hello
    assert hello["data"]["authenticated"] is True, hello
    return ws


async def connect_or_status(url: str, headers: dict[str, str]) -> ClientConnection | int:
    """A connection, or the HTTP status that refused it."""
    try:
        return await websockets.connect(url, additional_headers=headers)
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


async def send(ws: ClientConnection, type_: str, **data: Any) -> None:
    await ws.send(json.dumps({"type": type_, "data": data}))


def consecutive(numbering: list[tuple[str, int]], epoch: str) -> bool:
    """One epoch, ``epoch``, and seqs that grow by exactly one (no repeat, no hole)."""
    seqs = [seq for _, seq in numbering]
    return {e for e, _ in numbering} <= {epoch} and seqs == list(
        range(seqs[0], seqs[0] + len(seqs)) if seqs else []
    )


def same_sequence(nodes: Nodes, topic: str) -> bool:
    """Every node fanned out the same envelopes of ``topic``: the same (epoch, seq)."""
    first = nodes.peers[0].numbering(topic)
    return all(p.numbering(topic) == first for p in nodes.peers[1:])


def valued(peer: Peer, topic: str, market_value: Decimal) -> Callable[[], bool]:
    """Whether ``peer`` fanned out a value of ``topic`` (a portfolio) at ``market_value``."""
    return lambda: any(
        isinstance(e.payload, PortfolioValue) and e.payload.market_value == market_value
        for e in peer.on(topic)
    )


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` in a Prometheus text whose labels include
    ``labels``."""
    total = 0.0
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, rest = head.partition("{")
        if sample == name and all(w in rest for w in wanted):
            total += float(value)
    return total


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (skipped when unreachable, failed under CI=true)."""
    async with fresh_database("tickcast_cluster") as url:
        yield url


# -- 1. per-user connection caps ---------------------------------------------------------


async def test_a_users_connection_cap_is_the_clusters(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    accounts = await seed(url, {"alice": {}})
    alice = accounts["alice"]
    user = str(alice.user_id)
    async with start_cluster(Engine("redis"), url, max_connections_per_user=3) as nodes:
        a, b = nodes.peers
        headers = key(alice)
        on_a = [await websockets.connect(a.feed, additional_headers=headers) for _ in range(2)]
        await wait_for(lambda: b.cluster.members.connections_of(user) == 2, "B to know A's two")
        on_b = await websockets.connect(b.feed, additional_headers=headers)
        await wait_for(lambda: a.cluster.members.connections_of(user) == 1, "A to know B's one")

        for peer in (a, b):  # the fourth, on either node: refused as docs/realtime.md says
            status, body, _ = await http_refusal(peer.feed, additional_headers=headers)
            assert status == 429, (peer.name, body)

        await on_a.pop().close()
        # the slot freed on A is usable on B once B hears of it (a refusal costs nothing)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while True:
            third = await connect_or_status(b.feed, headers)
            if not isinstance(third, int):
                break
            assert third == 429
            assert loop.time() < deadline, "the slot freed on A never reached B"
            await asyncio.sleep(0.05)
        await wait_for(lambda: a.cluster.members.connections_of(user) == 2, "A to know B's two")
        status, _, _ = await http_refusal(a.feed, additional_headers=headers)
        assert status == 429
        for ws in (*on_a, on_b, third):
            await ws.close()


# -- 2. a write on one node reaches every node -------------------------------------------


async def _a_write_reaches_every_node(url: str) -> None:
    accounts = await seed(url, {"alice": {"Growth": [("AAPL", "buy", "10", "100")]}})
    alice = accounts["alice"]
    pid = alice.portfolios["Growth"]
    topic = f"portfolio.{pid}"
    async with start_cluster(Engine("redis"), url, nodes=3) as nodes:
        a = nodes.leader
        b, c = nodes.followers
        watchers = {p.name: await realtime_client(p, alice) for p in (a, c)}
        for ws in watchers.values():
            await send(ws, "subscribe_portfolio", portfolio_id=pid)
            first = await recv_until(ws, lambda m: m["type"] == "portfolio_update")
            assert Decimal(str(first["data"]["net_deposits"])) == Decimal("1000")

        # the write, through a follower's HTTP API
        body = {"symbol": "MSFT", "side": "buy", "quantity": "2", "price": "400"}
        r = await b.post(f"/api/portfolios/{pid}/transactions", json=body, headers=key(alice))
        assert r.status_code == 201, r.text
        written = (await b.get(f"/api/portfolios/{pid}", headers=key(alice))).json()
        assert Decimal(written["net_deposits"]) == Decimal("1800")  # 800 deposited for it

        for peer in (a, c):  # every other node's GET shows it, once the bus told it
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT_S
            while True:
                detail = (await peer.get(f"/api/portfolios/{pid}", headers=key(alice))).json()
                held = {p["symbol"]: Decimal(p["quantity"]) for p in detail["positions"]}
                if held == {"AAPL": Decimal(10), "MSFT": Decimal(2)}:
                    break
                assert loop.time() < deadline, (peer.name, detail)
                await asyncio.sleep(0.05)
            assert detail["net_deposits"] == written["net_deposits"], peer.name
        for name, ws in watchers.items():  # and every node's live value and position
            position = value = None
            while position is None or value is None:
                message = await recv(ws)
                data = message.get("data", {})
                if message["type"] == "position_update" and data["symbol"] == "MSFT":
                    position = data
                elif message["type"] == "portfolio_update" and Decimal(
                    str(data["net_deposits"])
                ) == Decimal("1800"):
                    value = data
            assert Decimal(str(position["quantity"])) == 2, name
            assert Decimal(str(value["total_value"])) == Decimal(written["total_value"]), name

        # one sequence for the topic: the leader's, the same envelopes on every node
        await wait_for(
            lambda: all(
                any(
                    isinstance(e.payload, PortfolioValue)
                    and e.payload.net_deposits == Decimal("1800")
                    for e in p.on(topic)
                )
                for p in nodes.peers
            ),
            "the new value fanned out on every node",
        )
        await wait_for(lambda: same_sequence(nodes, topic), f"{topic} alike on every node")
        for peer in nodes.peers:
            assert consecutive(peer.numbering(topic), a.epoch), (peer.name, peer.numbering(topic))
            # the transaction's position update: stamped once, by the leader
            assert len(peer.numbering(f"positions.{pid}")) == 1, peer.name
        for ws in watchers.values():
            await ws.close()


async def test_a_portfolio_write_on_one_node_reaches_every_node(tmp_path: Path) -> None:
    await _a_write_reaches_every_node(sqlite_url(tmp_path))


@pytest.mark.postgresql
async def test_a_portfolio_write_on_one_node_reaches_every_node_on_postgresql(
    postgres_url: str,
) -> None:
    await _a_write_reaches_every_node(postgres_url)


async def test_a_write_on_a_follower_is_never_followed_by_an_older_value(
    tmp_path: Path,
) -> None:
    """The leader holds its own value of a portfolio another node wrote back until it
    has read the write (a slow read forced here), so no older value follows the new."""
    url = sqlite_url(tmp_path)
    accounts = await seed(url, {"alice": {"Growth": [("AAPL", "buy", "10", "100")]}})
    alice = accounts["alice"]
    pid = alice.portfolios["Growth"]
    topic = f"portfolio.{pid}"
    async with start_cluster(Engine("memory"), url) as nodes:
        leader = nodes.leader
        [follower] = nodes.followers
        # the leader's database answers the reload late: until its portfolio service has
        # flushed twice after the prices moved (a slow PostgreSQL under load, made sure)
        portfolios = leader.app.state.portfolios
        reload, flush = portfolios.reload, portfolios.flush
        flushes = 0
        released = asyncio.Event()

        def counted_flush() -> None:
            nonlocal flushes
            flushes += 1
            flush()

        reloaded = asyncio.Event()

        async def late_reload(ids: list[int]) -> None:
            await released.wait()
            await reload(ids)
            reloaded.set()

        portfolios.flush, portfolios.reload = counted_flush, late_reload

        body = {"symbol": "MSFT", "side": "buy", "quantity": "1", "price": "400"}
        r = await follower.post(
            f"/api/portfolios/{pid}/transactions", json=body, headers=key(alice)
        )
        assert r.status_code == 201, r.text
        written = Decimal("1400")  # 1000 + the 400 deposited for the buy

        def values() -> list[PortfolioValue]:
            return [e.payload for e in leader.on(topic) if isinstance(e.payload, PortfolioValue)]

        await wait_for(
            lambda: any(v.net_deposits == written for v in values()), "the write's value"
        )
        leader.ingest([quote("AAPL", 101.0)])  # prices move: the leader revalues
        start = flushes
        await wait_for(lambda: flushes >= start + 2, "two flushes of the leader")
        released.set()
        await wait_for(reloaded.is_set, "the leader to read the write back")
        leader.ingest([quote("AAPL", 102.0)])
        # the value at the newest price with the write in it, on every node
        fresh = Decimal("1020") + Decimal("400")
        await wait_for(
            lambda: all(
                any(
                    isinstance(e.payload, PortfolioValue) and e.payload.market_value == fresh
                    for e in p.on(topic)
                )
                for p in nodes.peers
            ),
            "the value at the newest price",
        )
        for peer in nodes.peers:  # what every node's clients were sent
            after = [e.payload for e in peer.on(topic) if isinstance(e.payload, PortfolioValue)]
            first = next(i for i, v in enumerate(after) if v.net_deposits == written)
            since = [(v.market_value, v.net_deposits) for v in after[first:]]
            assert all(nd == written for _, nd in since), (peer.name, since)


# -- 3. one node values each portfolio ---------------------------------------------------


async def test_one_node_values_each_portfolio(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    accounts = await seed(url, {"alice": {"Growth": [("AAPL", "buy", "10", "100")]}})
    pid = accounts["alice"].portfolios["Growth"]
    topic = f"portfolio.{pid}"
    async with start_cluster(Engine("memory"), url) as nodes:
        leader = nodes.leader
        [follower] = nodes.followers
        forwarded = follower.forwarded
        for i in range(1, 6):  # five prices, each valued before the next
            price = 100.0 + i
            leader.ingest([quote("AAPL", price)])
            await wait_for(
                valued(leader, topic, Decimal(str(price)) * 10),
                f"the portfolio valued at AAPL {price}",
            )
        await wait_for(lambda: same_sequence(nodes, topic), f"{topic} alike on both nodes")
        numbering = follower.numbering(topic)
        assert len(numbering) >= 5
        assert consecutive(numbering, leader.epoch), numbering
        assert [e.payload for e in follower.on(topic)] == [e.payload for e in leader.on(topic)]
        # the follower valued nothing itself (it would have handed it to the leader)
        assert follower.forwarded == forwarded


# -- 4. the realtime statistics are the cluster's ----------------------------------------


async def test_realtime_status_counts_every_nodes_connections(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    accounts = await seed(url, {"alice": {}, "bob": {}})
    alice, bob = accounts["alice"], accounts["bob"]
    async with start_cluster(Engine("nats"), url) as nodes:
        a, b = nodes.peers
        clients = [
            await websockets.connect(a.feed, additional_headers=key(alice)),
            await websockets.connect(a.feed),
            await websockets.connect(b.feed, additional_headers=key(bob)),
            await websockets.connect(b.feed, additional_headers=key(alice)),
            await websockets.connect(b.feed),
        ]
        views: dict[str, Any] = {}

        async def settled() -> bool:
            for peer in (a, b):
                views[peer.name] = (await peer.get("/realtime/status/")).json()
            return all(
                v["global_stats"]["total_connections"] == 5
                and v["global_stats"]["authenticated_users"] == 2
                for v in views.values()
            )

        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while not await settled():
            assert loop.time() < deadline, views
            await asyncio.sleep(0.1)
        for name, view in views.items():
            assert view["cluster"] == {"nodes": 2}, name
        # ``fronts`` stays this node's own
        assert views["node-a"]["global_stats"]["fronts"]["market_feed"]["connections"] == 2
        assert views["node-b"]["global_stats"]["fronts"]["market_feed"]["connections"] == 3
        for ws in clients:
            await ws.close()


# -- 5. signals from Redis are ingested once ---------------------------------------------


async def test_a_signal_from_redis_is_ingested_once_not_once_per_node(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    accounts = await seed(url, {"producer": {}}, permissions={"producer": "publish:signals"})
    channel = f"tickcast-test-signals-{secrets.token_hex(6)}"
    settings: dict[str, Any] = {
        "signals_redis_url": SHARED_REDIS,
        "signals_channel": channel,
        "signals_engine": False,
    }
    async with start_cluster(Engine("redis"), url, **settings) as nodes:
        sources: list[RedisSource] = []
        for peer in nodes.peers:
            [source] = [s for s in peer.app.state.signals.sources if isinstance(s, RedisSource)]
            await asyncio.wait_for(source.wait_subscribed(), WAIT_S)
            sources.append(source)
        clients = {}
        for peer in nodes.peers:
            ws = await websockets.connect(peer.feed + "?seq=1")
            await ws.send(
                json.dumps({"action": "subscribe", "symbols": ["AAPL"], "channels": ["signals"]})
            )
            await recv_until(ws, lambda m: m.get("type") == "subscribed")
            clients[peer.name] = ws

        redis = Redis.from_url(SHARED_REDIS, socket_connect_timeout=5)
        try:
            assert await redis.publish(channel, encode(Signal(**SIGNAL))) == len(nodes.peers)
        finally:
            await redis.aclose()
        await wait_for(
            lambda: all(s.counts["messages"] == 1 for s in sources), "every node to hear it"
        )
        # a marker through the follower's HTTP API: it travels to the leader behind
        # anything the follower would have handed it for the first one
        [follower] = nodes.followers
        marker = {**SIGNAL, "price": 1.5, "id": "marker"}
        r = await follower.post("/api/signals", json=marker, headers=key(accounts["producer"]))
        assert r.status_code == 201, r.text

        for name, ws in clients.items():
            got: list[dict[str, Any]] = []
            while not any(m["data"]["id"] == "marker" for m in got):
                message = await recv(ws)
                if message.get("type") == "signal":
                    got.append(message)
            prices = [m["data"]["price"] for m in got]
            assert prices == [162.5, 1.5], (name, got)
            assert [m["seq"] for m in got] == [got[0]["seq"], got[0]["seq"] + 1], name
            assert {m["epoch"] for m in got} == {nodes.leader.epoch}, name
        ingested = published = 0.0
        for peer in nodes.peers:
            text = (await peer.get("/metrics")).text
            ingested += metric_sum(text, "tickcast_signals_published_total", source="redis")
            published += metric_sum(text, "tickcast_signals_published_total")
            # every node's history holds each signal once
            history = (await peer.get("/api/signals", params={"symbol": "AAPL"})).json()
            assert sorted(s["price"] for s in history) == [1.5, 162.5], (peer.name, history)
        assert ingested == 1
        assert published == 2  # the marker, counted once too
        for ws in clients.values():
            await ws.close()


# -- 6. resume across nodes --------------------------------------------------------------


async def _read_trades(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    trades: list[dict[str, Any]] = []
    while len(trades) < n:
        message = await recv(ws)
        assert message.get("type") != "reset", message
        if message.get("type") == "trade":
            trades.append(message)
    return trades


async def _subscribe_trades(peer: Peer, resume: dict[str, Any] | None = None) -> ClientConnection:
    ws = await websockets.connect(peer.feed + "?seq=1")
    request: dict[str, Any] = {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"]}
    if resume is not None:
        request["resume"] = {"trades.AAPL": resume}
    await ws.send(json.dumps(request))
    await recv_until(ws, lambda m: m.get("type") == "subscribed")
    return ws


async def test_a_client_resumes_on_another_node_without_a_reset(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await seed(url, {})
    async with start_cluster(Engine("nats"), url, history_size=64) as nodes:
        leader = nodes.leader
        [follower] = nodes.followers
        epoch = leader.epoch
        ids = iter(f"t{i}" for i in range(1, 100))

        def publish(n: int) -> list[str]:
            sent = [next(ids) for _ in range(n)]
            leader.ingest([trade("AAPL", 100.0 + i, t) for i, t in enumerate(sent)])
            return sent

        ws = await _subscribe_trades(follower)
        sent = publish(3)
        seen = await _read_trades(ws, 3)
        assert [m["trade_id"] for m in seen] == sent
        last = {"epoch": seen[-1]["epoch"], "seq": seen[-1]["seq"]}
        await ws.close()

        # follower -> leader: missed while away, replayed from the leader's history
        missed = publish(4)
        ws = await _subscribe_trades(leader, last)
        replayed = await _read_trades(ws, 4)
        assert [m["trade_id"] for m in replayed] == missed
        assert [m["seq"] for m in replayed] == [last["seq"] + i for i in range(1, 5)]
        assert {m["epoch"] for m in replayed} == {epoch}
        last = {"epoch": epoch, "seq": replayed[-1]["seq"]}
        await ws.close()

        # leader -> follower: replayed from the history the follower built from batches
        missed = publish(2)
        await wait_for(
            lambda: follower.numbering("trades.AAPL")[-1] == (epoch, last["seq"] + 2),
            "the follower to apply the trades",
        )
        ws = await _subscribe_trades(follower, last)
        replayed = await _read_trades(ws, 2)
        assert [m["trade_id"] for m in replayed] == missed
        assert [(m["epoch"], m["seq"]) for m in replayed] == [
            (epoch, last["seq"] + 1),
            (epoch, last["seq"] + 2),
        ]
        live = publish(1)
        assert [m["trade_id"] for m in await _read_trades(ws, 1)] == live
        await ws.close()
        assert leader.cluster.leadership.elections == 1  # no leader change happened


# -- 7. interest: the leader computes what a follower's clients watch --------------------


async def test_live_positions_watched_on_a_follower_are_computed_by_the_leader(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path)
    accounts = await seed(url, {"alice": {"Growth": [("AAPL", "buy", "10", "100")]}})
    alice = accounts["alice"]
    pid = alice.portfolios["Growth"]
    topic = f"live_positions.{pid}"
    async with start_cluster(Engine("memory"), url) as nodes:
        leader = nodes.leader
        [follower] = nodes.followers

        def leader_watches() -> bool:
            watched = leader.node.hub.watched(frozenset({"live_positions"}))
            return topic in {str(t) for t in watched}

        assert not leader_watches()
        ws = await realtime_client(follower, alice)
        await send(ws, "subscribe_positions", portfolio_id=pid)
        await recv_until(ws, lambda m: m["type"] == "positions_update")
        await wait_for(leader_watches, "the leader to hold the follower's interest")

        forwarded = follower.forwarded
        for price in (111.0, 112.0, 113.0):
            leader.ingest([quote("AAPL", price)])

            def priced(m: Any, p: float = price) -> bool:
                if m["type"] != "positions_update":
                    return False
                [position] = m["data"]["positions"]
                return Decimal(str(position["price"])) == Decimal(str(p))

            await recv_until(ws, priced)
        # computed and stamped by the leader; the follower only fanned them out
        assert follower.forwarded == forwarded
        assert consecutive(follower.numbering(topic), leader.epoch)
        await wait_for(lambda: same_sequence(nodes, topic), f"{topic} alike on both nodes")

        await ws.close()
        await wait_for(lambda: not leader_watches(), "the leader to let go of the interest")


def stomp_frame(command: str, **headers: str) -> str:
    return command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers.items()) + "\n\x00"


async def stomp_read(ws: ClientConnection) -> tuple[str, dict[str, str], Any]:
    """The next frame (heart-beats skipped): its command, headers and JSON body."""
    while True:
        data = str(await asyncio.wait_for(ws.recv(), WAIT_S))
        if data.strip("\n"):
            break
    head, _, body = data.partition("\n\n")
    command, *lines = head.split("\n")
    headers = dict(line.split(":", 1) for line in lines if ":" in line)
    body = body.rstrip("\x00")
    return command, headers, json.loads(body) if body else None


async def test_a_users_stream_on_a_follower_is_the_leaders_one_sequence(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    accounts = await seed(url, {"alice": {"Growth": [("AAPL", "buy", "10", "100")]}})
    alice = accounts["alice"]
    async with start_cluster(Engine("redis"), url) as nodes:
        leader = nodes.leader
        [follower] = nodes.followers
        ws = await websockets.connect(
            f"ws://127.0.0.1:{follower.port}/stomp/websocket",
            subprotocols=[Subprotocol("v12.stomp")],
        )
        await ws.send(
            stomp_frame(
                "CONNECT",
                host="x",
                login="alice",
                passcode=alice.api_key,
                **{"accept-version": "1.2"},
            )
        )
        assert (await stomp_read(ws))[0] == "CONNECTED"
        await ws.send(stomp_frame("SUBSCRIBE", id="pnl", destination="/topic/unrealized-pnl"))
        _, first, _ = await stomp_read(ws)
        assert first["epoch"] == leader.epoch
        user_pnl = f"user_pnl.{alice.user_id}"
        await wait_for(
            lambda: user_pnl in {str(t) for t in leader.node.hub.watched(frozenset({"user_pnl"}))},
            "the leader to hold the follower's interest",
        )
        seqs = [int(first["seq"])]
        for price in (101.0, 102.0, 103.0):  # each move reaches the follower's client
            leader.ingest([quote("AAPL", price)])
            while True:
                command, headers, body = await stomp_read(ws)
                assert command == "MESSAGE", (command, headers, body)
                assert headers["epoch"] == leader.epoch
                seqs.append(int(headers["seq"]))
                [entry] = body
                if Decimal(str(entry["overallUnrealised_Pnl"])) == Decimal(str(price * 10 - 1000)):
                    break
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        await wait_for(lambda: same_sequence(nodes, user_pnl), f"{user_pnl} alike on both nodes")
        await ws.close()
        await wait_for(
            lambda: not leader.node.hub.watched(frozenset({"user_pnl"})),
            "the leader to let go of the interest",
        )


# -- 8. /cluster and the cluster's metrics -----------------------------------------------


async def test_every_node_describes_the_same_cluster(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    await seed(url, {})
    async with start_cluster(Engine("redis"), url) as nodes:
        views = {p.name: (await p.get("/cluster")).json() for p in nodes.peers}
        leader = nodes.leader.name
        for name, view in views.items():
            assert view["node"] == name
            assert view["leader"] == leader
            assert view["epoch"] == nodes.leader.epoch
            listed = {entry["node"] for entry in view["nodes"]}
            assert listed == {"node-a", "node-b"}, view["nodes"]
            assert view["bus"]["backend"] == "redis"
            assert view["bus"]["connected"] is True
            assert view["role"] == ("leader" if name == leader else "follower")
            assert view["ready"] is True
        leading = []
        for peer in nodes.peers:
            text = (await peer.get("/metrics")).text
            assert metric_sum(text, "tickcast_cluster_nodes") == 2, peer.name
            assert metric_sum(text, "tickcast_bus_connected") == 1, peer.name
            leading.append(metric_sum(text, "tickcast_cluster_leader"))
        assert sorted(leading) == [0, 1]


# -- 9. a node alone ---------------------------------------------------------------------


async def test_a_node_alone_leads_itself(tmp_path: Path) -> None:
    async with (
        running_gateway(tmp_path, node_id="solo") as gateway,
        httpx.AsyncClient(base_url=gateway.http, timeout=30) as client,
    ):
        view = (await client.get("/cluster")).json()
    assert view["node"] == view["leader"] == "solo"
    assert view["role"] == "leader"
    assert [entry["node"] for entry in view["nodes"]] == ["solo"]
    assert view["bus"] == {"backend": "memory", "connected": True}
