"""Trading signals end to end, on the real app built in-process: the Redis source on the
machine's Redis (a channel of its own per test: the shared server is never flushed or
stopped) and on a private ``redis-server`` that the fault test stops and restarts; the
HTTP API (``POST``/``GET /api/signals``) with real API keys; the engine on live
simulator bars.

What the hub carries is watched through a tap on the node's publisher (it sees every
envelope the hub fanned out, in order). Every wait is on a condition, with a generous
timeout: nothing here depends on how fast the machine is. Under ``CI=true`` a Redis
that cannot be reached (or a missing ``redis-server``) fails the test instead of
skipping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from support.accounts import seed
from support.redis import PrivateRedis
from support.server import free_port
from support.silent import Silent
from tickcast.app import build_app
from tickcast.cli.accounts import run_keys
from tickcast.config.settings import Settings
from tickcast.fronts.identity import Identity
from tickcast.model.envelope import Envelope
from tickcast.model.signal import Signal, WorkerStatus, encode
from tickcast.node import Node
from tickcast.providers.base import Provider
from tickcast.providers.simulator.market import SimulatorConfig
from tickcast.providers.simulator.stream import SimulatorProvider
from tickcast.retry import Backoff
from tickcast.signals.redis_source import RedisSource
from tickcast.signals.service import MONITOR, SignalService
from tickcast.storage.engine import make_engine

SHARED_REDIS = "redis://127.0.0.1:6379/0"
SECRET = "an-integration-test-secret-of-at-least-32-bytes"
#: The longest any condition is waited for (a busy 2-core machine included).
TIMEOUT_S = 60.0
SIGNAL = {
    "type": "QUANTUM_CIPHER",
    "signal": "BUY",
    "price": 162.5,
    "symbol": "BTC/USDT",
    "timeframe": "1m",
    "timestamp": "2026-01-02T03:04:05.000Z",
}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


async def wait_for(condition: Callable[[], bool], what: str, limit_s: float = TIMEOUT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def unique_channel() -> str:
    return f"tickcast-test-signals-{secrets.token_hex(6)}"


@pytest.fixture
async def shared_redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(SHARED_REDIS, socket_connect_timeout=5)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        _unavailable(f"Redis at {SHARED_REDIS} is unreachable: {exc!r}")
    yield client
    await client.aclose()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    server = PrivateRedis(free_port(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Gateway:
    client: httpx.AsyncClient
    node: Node
    signals: SignalService
    keys: dict[str, str]
    seen: list[Envelope] = field(default_factory=list)

    def key(self, user: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[user]}

    def published(self, kind: type) -> list[Any]:
        return [e.payload for e in self.seen if type(e.payload) is kind]

    def statuses(self, service: str) -> list[str]:
        return [s.status for s in self.published(WorkerStatus) if s.service == service]

    def redis_source(self) -> RedisSource:
        [source] = [s for s in self.signals.sources if isinstance(s, RedisSource)]
        return source


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[Any]:
    """Start an app (``Silent`` provider unless told); stop everything at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            providers: Sequence[Provider] | None = None,
            backoff: Backoff | None = None,
            **settings: Any,
        ) -> Gateway:
            url = f"sqlite+aiosqlite:///{tmp_path}/t.db"
            accounts = await seed(
                url, {"alice": {}, "producer": {}}, permissions={"producer": "publish:signals"}
            )
            config = Settings(database_url=url, jwt_secret=SECRET, **settings)
            node = Node(config, providers=list(providers or [Silent(("BTC/USDT",))]))
            app = build_app(config, node)
            signals: SignalService = app.state.signals
            gateway = Gateway(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t"),
                node,
                signals,
                {name: a.api_key for name, a in accounts.items()},
            )
            node.publisher.tap(gateway.seen.extend, name="test-recorder")
            if backoff is not None:
                for source in signals.sources:
                    assert isinstance(source, RedisSource)
                    source.backoff = backoff
            await stack.enter_async_context(app.app.router.lifespan_context(app.app))
            await stack.enter_async_context(gateway.client)
            return gateway

        yield start


# -- Redis


async def test_a_publish_on_redis_reaches_the_hub_and_the_history(
    make_gateway: Any, shared_redis: Redis
) -> None:
    channel = unique_channel()
    gw: Gateway = await make_gateway(
        signals_redis_url=SHARED_REDIS, signals_channel=channel, signals_engine=False
    )
    await asyncio.wait_for(gw.redis_source().wait_subscribed(), TIMEOUT_S)
    assert await shared_redis.publish(channel, encode(Signal(**SIGNAL))) == 1

    await wait_for(lambda: bool(gw.published(Signal)), "the signal on the hub")
    [signal] = gw.published(Signal)
    assert signal.type == "QUANTUM_CIPHER"
    assert signal.price == 162.5
    assert signal.source == "external"
    assert signal.id.startswith("redis-")

    r = await gw.client.get("/api/signals", params={"symbol": "BTC/USDT"})
    assert r.status_code == 200
    [held] = r.json()
    assert {k: held[k] for k in SIGNAL} == SIGNAL
    assert held["id"] == signal.id
    assert held["published_at"].endswith("Z")
    # with Redis only and subscribed, every worker is active
    assert gw.statuses("redis")[-1] == "active"
    assert gw.statuses(MONITOR)[-1] == "active"


async def test_bad_redis_messages_are_dead_letters_and_the_listener_goes_on(
    make_gateway: Any, shared_redis: Redis
) -> None:
    channel = unique_channel()
    gw: Gateway = await make_gateway(
        signals_redis_url=SHARED_REDIS, signals_channel=channel, signals_engine=False
    )
    await asyncio.wait_for(gw.redis_source().wait_subscribed(), TIMEOUT_S)
    good = encode(Signal(**SIGNAL))
    bad = {
        "malformed": b'{"type": "X", ',
        "too_large": b" " * 5000 + good,
        "invalid": good[:-1] + b', "leverage": 10}',  # an unknown field
        "wrong_type": good.replace(b"162.5", b'"162.5"'),
        "duplicate": encode(Signal(**SIGNAL, id="twice")),
    }
    await shared_redis.publish(channel, bad["duplicate"])  # the first one is good
    for data in bad.values():
        await shared_redis.publish(channel, data)
    await shared_redis.publish(channel, good)

    await wait_for(lambda: len(gw.published(Signal)) == 2, "the two good signals")
    r = await gw.client.get("/signals/dead-letters")
    assert r.status_code == 200
    letters = r.json()
    assert [(x["source"], x["reason"]) for x in letters] == [
        ("redis", "malformed"),
        ("redis", "too_large"),
        ("redis", "invalid"),
        ("redis", "invalid"),
        ("redis", "duplicate"),
    ]
    assert "leverage" in letters[2]["error"]
    assert "price" in letters[3]["error"]
    metrics = (await gw.client.get("/metrics")).text
    assert 'tickcast_signal_dead_letters_total{reason="invalid",source="redis"} 2.0' in metrics
    assert gw.redis_source().subscribed


async def test_redis_going_away_and_coming_back_is_reported_and_repaired(
    make_gateway: Any, private_redis: PrivateRedis
) -> None:
    private_redis.start()
    await private_redis.ready()
    channel = unique_channel()
    gw: Gateway = await make_gateway(
        backoff=Backoff(base_s=0.05, cap_s=0.5),
        signals_redis_url=private_redis.url,
        signals_channel=channel,
        signals_engine=False,
    )
    source = gw.redis_source()
    await asyncio.wait_for(source.wait_subscribed(), TIMEOUT_S)
    await wait_for(lambda: gw.statuses(MONITOR)[-1:] == ["active"], "the monitor active")

    private_redis.stop()
    await wait_for(lambda: gw.statuses("redis")[-1:] == ["degraded"], "redis degraded")
    await wait_for(lambda: gw.statuses(MONITOR)[-1:] == ["offline"], "the monitor offline")
    await wait_for(lambda: gw.statuses("redis")[-1:] == ["offline"], "redis offline")
    assert gw.statuses("redis") == ["degraded", "active", "degraded", "offline"]
    status = (await gw.client.get("/signals/status")).json()
    assert {s["service"]: s["status"] for s in status["statuses"]} == {
        MONITOR: "offline",
        "redis": "offline",
    }
    assert "cannot reach Redis" in gw.signals.statuses()[1].message

    private_redis.start()
    await wait_for(lambda: source.subscribed, "the subscription again")
    await wait_for(lambda: gw.statuses(MONITOR)[-1:] == ["active"], "the monitor active again")
    assert gw.statuses("redis")[-1] == "active"
    client = Redis.from_url(private_redis.url)
    try:
        assert await client.publish(channel, encode(Signal(**SIGNAL))) == 1
    finally:
        await client.aclose()
    await wait_for(lambda: len(gw.published(Signal)) == 1, "a signal after the restart")
    events = source.events()
    assert events["connected"] == 2
    assert events["lost"] == 1
    assert events["failed"] >= 2


def test_the_redis_password_is_never_shown() -> None:
    from tickcast.signals.redis_source import safe_url

    assert safe_url("redis://u:hunter2@host:6380/1") == "redis://u:***@host:6380/1"
    assert safe_url("redis://:hunter2@host/0") == "redis://:***@host/0"
    assert safe_url("redis://host:6379/0") == "redis://host:6379/0"
    source = RedisSource("redis://:hunter2@127.0.0.1:1/0", "c", lambda _: None)
    source._lost(OSError("connect to redis://:hunter2@127.0.0.1:1/0 refused"))
    assert "hunter2" not in source.status().message
    source._lost(ValueError("bad password hunter2"))
    assert "hunter2" not in source.status().message
    assert source.status().status == "degraded"  # two failures so far


# -- HTTP


async def test_post_then_get_signals(make_gateway: Any) -> None:
    gw: Gateway = await make_gateway(signals_engine=False)
    r = await gw.client.post("/api/signals", json=SIGNAL, headers=gw.key("producer"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert {k: body[k] for k in SIGNAL} == SIGNAL
    assert body["id"].startswith("http-")
    assert body["source"] == "external"
    mine = {**SIGNAL, "symbol": "ETH/USDT", "id": "mine-1", "source": "quant"}
    r = await gw.client.post("/api/signals", json=mine, headers=gw.key("producer"))
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "mine-1"
    assert [s.id for s in gw.published(Signal)] == [body["id"], "mine-1"]

    listed = (await gw.client.get("/api/signals")).json()  # anonymous: public data
    assert [s["id"] for s in listed] == [body["id"], "mine-1"]
    assert listed[0]["seq"] < listed[1]["seq"] or listed[0]["symbol"] != listed[1]["symbol"]
    eth = (await gw.client.get("/api/signals", params={"symbol": "ETH/USDT"})).json()
    assert [s["id"] for s in eth] == ["mine-1"]
    last = (await gw.client.get("/api/signals", params={"limit": 1})).json()
    assert [s["id"] for s in last] == ["mine-1"]
    future = (await gw.client.get("/api/signals", params={"since": 4e9})).json()
    assert future == []
    assert (await gw.client.get("/api/signals", params={"limit": 0})).status_code == 422


async def test_each_refusal_of_post_signals_has_its_status(make_gateway: Any) -> None:
    gw: Gateway = await make_gateway(signals_engine=False)
    url = "/api/signals"
    producer = gw.key("producer")

    r = await gw.client.post(url, json=SIGNAL)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await gw.client.post(url, json=SIGNAL, headers={"X-API-Key": "tc_" + "A" * 12 + "_x"})
    assert r.status_code == 401
    r = await gw.client.post(url, json=SIGNAL, headers=gw.key("alice"))
    assert r.status_code == 403
    assert "publish:signals" in r.json()["detail"]
    # a token exchanged for the producer's key carries no permission
    token = (await gw.client.post("/api/auth/token", headers=producer)).json()["access_token"]
    r = await gw.client.post(url, json=SIGNAL, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403

    r = await gw.client.post(url, content=b"not json", headers={**producer, **_json()})
    assert r.status_code == 400
    assert "JSON" in r.json()["detail"]
    r = await gw.client.post(url, content=b"\xff\xfe", headers={**producer, **_json()})
    assert r.status_code == 400
    r = await gw.client.post(
        url, content=b"{" + b" " * 5000 + b"}", headers={**producer, **_json()}
    )
    assert r.status_code == 413
    r = await gw.client.post(url, content=b"{}", headers={**producer, "Content-Type": "text/plain"})
    assert r.status_code == 415
    for body, word in (
        ({**SIGNAL, "leverage": 10}, "leverage"),
        ({**SIGNAL, "price": "162.5"}, "price"),
        ({**SIGNAL, "price": -1}, "price"),
        ({**SIGNAL, "signal": "HOLD"}, "signal"),
        ({**SIGNAL, "timestamp": "2026-01-02T03:04:05"}, "time zone"),
        ({k: v for k, v in SIGNAL.items() if k != "symbol"}, "symbol"),
    ):
        r = await gw.client.post(url, json=body, headers=producer)
        assert r.status_code == 422, (body, r.text)
        [detail] = r.json()["detail"]
        assert detail["type"] == "invalid_signal", detail
        assert word in detail["msg"], detail
    ok = {**SIGNAL, "id": "once"}
    assert (await gw.client.post(url, json=ok, headers=producer)).status_code == 201
    r = await gw.client.post(url, json=ok, headers=producer)
    assert r.status_code == 409
    assert "once" in r.json()["detail"]

    assert [s.id for s in gw.published(Signal)] == ["once"]
    refused = gw.signals.refused
    assert refused[("http", "malformed")] == 2
    assert refused[("http", "too_large")] == 1
    assert refused[("http", "invalid")] == 6
    assert refused[("http", "duplicate")] == 1
    assert gw.signals.recent_dead_letters() == []  # HTTP callers got their answer


async def test_anonymous_readers_are_refused_when_the_gateway_says_so(make_gateway: Any) -> None:
    gw: Gateway = await make_gateway(signals_engine=False, allow_anonymous=False)
    assert (await gw.client.get("/api/signals")).status_code == 401
    assert (await gw.client.get("/api/signals", headers=gw.key("alice"))).status_code == 200


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


# -- the engine on the live simulator


async def test_engine_signals_from_live_simulator_bars(make_gateway: Any) -> None:
    simulator = SimulatorProvider(
        SimulatorConfig(symbols=("BTC/USDT", "ETH/USDT", "SOL/USDT"), rate=200, bar_interval_s=1)
    )
    gw: Gateway = await make_gateway(
        providers=[simulator],
        signals_fast=2,
        signals_slow=3,
        signals_rsi_period=2,
        signals_cooldown_s=0,
    )
    await wait_for(lambda: gw.statuses("engine")[-1:] == ["active"], "the engine active")
    await wait_for(
        lambda: any(s.source == "engine" for s in gw.published(Signal)), "an engine signal"
    )
    signal = next(s for s in gw.published(Signal) if s.source == "engine")
    assert signal.type in ("MA_CROSS", "RSI")
    assert signal.timeframe == "1s"
    assert signal.id.startswith(f"{signal.type}-{signal.symbol}-1s-")
    listed = (await gw.client.get("/api/signals")).json()
    assert signal.id in [s["id"] for s in listed]
    assert gw.statuses(MONITOR)[-1] == "active"


# -- the permission on API keys


async def test_keys_create_with_a_permission(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/k.db"
    await seed(url, {"ada": {}})
    settings = Settings(database_url=url)
    assert (
        await asyncio.to_thread(
            run_keys, settings, "create", user="ada", permissions=["publish:signals"]
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    assert (
        await asyncio.to_thread(run_keys, settings, "create", user="ada", permissions=["root"]) == 2
    )
    assert await asyncio.to_thread(run_keys, settings, "list", user="ada") == 0
    assert "publish:signals" in capsys.readouterr().out
    engine = make_engine(url)
    try:
        identity = Identity(engine, SECRET, 60.0)
        principal = await identity.authenticate(token)
        assert principal.may("publish:signals")
        assert principal.permissions == frozenset({"publish:signals"})
        await identity.aclose()
    finally:
        await engine.dispose()


async def test_a_redis_that_cannot_be_reached_is_retried_and_its_password_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    changes: list[str] = []
    source = RedisSource(
        url, "c", lambda _: None, backoff=Backoff(base_s=0.01, cap_s=0.05), on_change=lambda: None
    )
    source.on_change = lambda: changes.append(source.status().status)
    with caplog.at_level("DEBUG"):
        await source.start()
        try:
            await wait_for(lambda: source.failures >= 4, "four failed attempts")
        finally:
            await source.aclose()
    assert changes[:1] == ["offline"]  # degraded while connecting, offline after 3
    assert source.status().status == "offline"
    assert "127.0.0.1" not in source.status().message  # the public status names no server
    assert "cannot subscribe" in caplog.text
    assert "hunter2" not in caplog.text
