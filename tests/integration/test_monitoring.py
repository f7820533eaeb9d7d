"""The monitoring sockets and their polling routes over real sockets (docs/monitoring.md).

The gateway runs in this test's event loop (``build_app`` under uvicorn with the
gateway's protocol classes), with a scripted primary provider and a silent backup, and
``monitoring_interval_s`` so long that the service never samples by itself: each test
makes it evaluate on demand (``MonitoringService.tick``), so what a client must see is
decided by the test, not by a timer. Alerts are driven by real state: a provider's run
that fails (the supervisor fails over), dead letters recorded through a provider's sink
and through the signal service's intake. Waits are on conditions with generous
timeouts, never sleeps as synchronization.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from support.inloop import Gateway, running_gateway
from support.silent import Silent
from support.wsclient import closed_code
from tickcast.auth.credentials import new_api_key
from tickcast.errors import UpstreamError
from tickcast.model.market import Quote
from tickcast.monitoring.service import MonitoringService
from tickcast.providers.base import Sink
from tickcast.storage import migrate
from tickcast.storage.engine import make_engine
from tickcast.storage.repositories import ApiKeys, Users

WAIT_S = 15.0
STREAMS = ("alerts", "metrics", "pipeline", "telemetry", "dlq")


class Primary(Silent):
    """The preferred provider: its first run fails when the test says so (``fail``); a
    later run reconnects when the test lets it (``back``: set unless a test clears it),
    delivers a quote (a provider takes the feed back once it delivers) and stays up."""

    name = "primary"

    def __init__(self) -> None:
        super().__init__()
        self.sink: Sink | None = None
        self.fail = asyncio.Event()
        self.back = asyncio.Event()
        self.back.set()
        self.runs = 0

    async def run(self, sink: Sink) -> None:
        self.runs += 1
        self.sink = sink
        if self.runs == 1:
            sink.state("subscribed")
            await self.fail.wait()
            raise UpstreamError("connection lost")
        await self.back.wait()
        sink.state("subscribed")
        sink([Quote("AAPL", 99.0, 101.0, 1.0, 1.0, 100.0, 10.0, time.time(), self.name)])
        await asyncio.Event().wait()


class Backup(Silent):
    name = "backup"


async def seed_users(database_url: str) -> dict[str, str]:
    """An operator and a plain user, each with an API key: name -> key."""
    engine = make_engine(database_url)
    keys: dict[str, str] = {}
    try:
        await migrate.upgrade(engine)
        for username, role in (("olga", "operator"), ("uma", "user")):
            key = new_api_key()
            async with engine.begin() as conn:
                user = await Users(conn).create(username, role=role)
                await ApiKeys(conn).insert(
                    user.id, prefix=key.prefix, secret_hash=key.secret_hash, name="test"
                )
            keys[username] = key.token
    finally:
        await engine.dispose()
    return keys


class Env:
    def __init__(self, gateway: Gateway, keys: dict[str, str], primary: Primary) -> None:
        self.gateway = gateway
        self.keys = keys
        self.primary = primary
        self.service = next(s for s in gateway.node.services if isinstance(s, MonitoringService))

    def url(self, stream: str) -> str:
        return f"ws://127.0.0.1:{self.gateway.port}/ws/{stream}"

    def open(self, stream: str, user: str | None = "olga", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[user]}"} if user else {}
        return connect(self.url(stream), additional_headers=headers, **kwargs)

    async def get(self, path: str, user: str | None = "olga", **headers: str) -> httpx.Response:
        if user:
            headers["Authorization"] = f"Bearer {self.keys[user]}"
        async with httpx.AsyncClient(base_url=self.gateway.http) as client:
            return await client.get(f"/api/monitoring/{path}", headers=headers)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    keys = await seed_users(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    primary = Primary()
    async with running_gateway(
        tmp_path,
        providers=[primary, Backup()],
        monitoring_interval_s=3600,
        alert_cooldown_s=0,
        # the host's own load is not what these tests are about
        alert_cpu_percent=100,
        alert_memory_percent=100,
        alert_disk_percent=100,
        feed_failback_s=0,
        # the primary retries at once after a failure: a test that needs the backup to
        # stay active holds the primary back (``Primary.back``), never a timer's width
        feed_backoff_base_s=0.001,
    ) as gateway:
        await until(lambda: gateway.node.supervisor.active == "primary")
        yield Env(gateway, keys, primary)


async def until(condition: Callable[[], bool], wait_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + wait_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def frame(ws: ClientConnection, wait_s: float = WAIT_S) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), wait_s))


async def alert_frame(ws: ClientConnection) -> list[dict[str, Any]]:
    """One /ws/alerts frame: always a JSON array of alerts."""
    got = await frame(ws)
    assert isinstance(got, list), got
    for alert in got:
        assert set(alert) == {"id", "severity", "message", "timestamp", "source", "resolved"}
        assert alert["severity"] in ("CRITICAL", "HIGH", "MEDIUM", "LOW")
        assert alert["timestamp"].endswith("Z")
    return got


def rules(alerts: list[dict[str, Any]]) -> set[str]:
    return {a["id"].rsplit("-", 1)[0] for a in alerts}


async def test_an_operator_gets_each_stream_at_once_in_its_shape(env: Env) -> None:
    for stream in STREAMS:
        async with env.open(stream) as ws:
            got = await frame(ws)
            if stream in ("alerts", "dlq"):
                assert isinstance(got, list), (stream, got)
            else:
                assert got["timestamp"].endswith("Z"), (stream, got)
    async with env.open("metrics") as ws:
        metrics = await frame(ws)
        assert set(metrics) == {"timestamp", "cpu", "memory", "disk", "network"}
        assert set(metrics["network"]) == {"bytesIn", "bytesOut"}
        assert metrics["cpu"]["cores"] >= 1
        assert metrics["memory"]["total"] > 0
    # the server lets go of a closed socket after the client's close has returned: wait
    # for it, so that the count below is of the telemetry socket alone
    await until(lambda: env.service.sources.connections().get("monitoring", 0) == 0)
    async with env.open("telemetry") as ws:
        telemetry = await frame(ws)
        env.service.tick()
        telemetry = await frame(ws)
        assert telemetry["connections"]["monitoring"] == 1
        assert telemetry["connections"]["total"] >= 1
        assert set(telemetry["latency_ms"]) == {"p50", "p95", "p99"}


async def test_a_failover_opens_alerts_and_the_failback_resolves_them(env: Env) -> None:
    async with env.open("alerts") as alerts, env.open("pipeline") as pipeline:
        assert rules(await alert_frame(alerts)) == set()  # nothing wrong yet
        await frame(pipeline)
        # the primary's reconnection waits for the test: left to itself it takes the feed
        # back as soon as its back-off ends, too short a moment for a poll to see the
        # backup active on a busy machine
        env.primary.back.clear()
        env.primary.fail.set()  # the upstream drops: the supervisor fails over
        await until(lambda: env.gateway.node.supervisor.active == "backup")
        env.service.tick()
        opened = await alert_frame(alerts)
        assert {"failover", "failed_over"} <= rules(opened)
        assert all(not a["resolved"] for a in opened)
        flows = {p["name"]: p for p in (await frame(pipeline))["providers"]}
        assert flows["backup"]["active"]
        assert flows["primary"]["failovers"] == 1
        # the primary comes back and takes over (failback after 0 s): resolved
        env.primary.back.set()
        await until(lambda: env.gateway.node.supervisor.active == "primary")
        env.service.tick()
        resolved = await alert_frame(alerts)
        ids = {a["id"] for a in opened if a["id"].startswith(("failover-", "failed_over-"))}
        assert ids <= {a["id"] for a in resolved if a["resolved"]}
        # polling says the same: nothing of these open, both recently resolved
        open_now = (await env.get("alerts?resolved=false")).json()
        assert not ids & {a["id"] for a in open_now}
        assert ids <= {a["id"] for a in (await env.get("alerts?resolved=true")).json()}


async def test_dead_letters_stream_raise_an_alert_and_poll_the_same(env: Env) -> None:
    sink = env.primary.sink
    assert sink is not None
    async with env.open("dlq") as dlq, env.open("alerts") as alerts:
        assert await frame(dlq) == []
        await alert_frame(alerts)
        sink.dead_letter('{"T":"q","S":' + "x" * 2000, "unterminated JSON", time.time())
        signals = env.gateway.node.services  # the signal service's intake: a real path
        service = next(s for s in signals if type(s).__name__ == "SignalService")
        service.ingest(b"not json", "redis")  # type: ignore[attr-defined]
        env.service.collect_dead_letters()
        got: list[dict[str, Any]] = []
        while len(got) < 2:
            got += await frame(dlq)
        assert [(d["id"], d["source"]) for d in got] == [
            ("primary-1", "primary"),
            ("signals:redis-1", "signals:redis"),
        ]
        assert len(got[0]["preview"].encode()) == 512  # dlq_preview_bytes
        assert got[1]["reason"].startswith("malformed")
        # an alert per source, driven by the counters rising; then a quiet interval
        env.service.tick()
        opened = await alert_frame(alerts)
        assert {a["message"].split(" (")[0] for a in opened} == {
            "1 dead letter(s) from primary",
            "1 dead letter(s) from signals:redis",
        }
        assert {a["severity"] for a in opened} == {"MEDIUM"}
        # polling equivalence: the same data as the sockets gave
        assert (await env.get("dlq")).json() == got
        open_alerts = (await env.get("alerts?resolved=false")).json()
        assert open_alerts == opened
        # a new subscriber gets the open alerts and the current letters at once
        async with env.open("alerts") as late, env.open("dlq") as late_dlq:
            assert await alert_frame(late) == opened
            assert await frame(late_dlq) == got
        env.service.tick()
        resolved = await alert_frame(alerts)
        assert {a["id"] for a in resolved} == {a["id"] for a in opened}
        assert all(a["resolved"] for a in resolved)
        assert (await env.get("alerts?resolved=false")).json() == []


async def test_polling_matches_the_sockets_and_answers_304(env: Env) -> None:
    env.service.tick()
    for stream in ("metrics", "pipeline", "telemetry"):
        async with env.open(stream) as ws:
            pushed = await frame(ws)
        polled = await env.get(stream)
        assert polled.status_code == 200
        assert polled.json() == pushed, stream
        assert polled.headers["cache-control"] == "no-cache"
        tag = polled.headers["etag"]
        again = await env.get(stream, **{"If-None-Match": tag})
        assert again.status_code == 304
        assert again.content == b""
        assert (await env.get(stream, **{"If-None-Match": '"other"'})).status_code == 200
    alerts = await env.get("alerts")
    assert alerts.status_code == 200
    assert isinstance(alerts.json(), list)


async def test_who_may_read_monitoring(env: Env) -> None:
    for stream in STREAMS:
        async with env.open(stream, user=None) as ws:  # anonymous
            error = await frame(ws)
            assert error["type"] == "error"
            assert "operator" in error["data"]["message"]
            assert await closed_code(ws) == 3503
        async with env.open(stream, user="uma") as ws:  # signed in, not an operator
            assert (await frame(ws))["type"] == "error"
            assert await closed_code(ws) == 3504
    with pytest.raises(websockets.InvalidStatus) as refused:  # a bad key: the guard's 401
        async with connect(env.url("alerts"), additional_headers={"X-API-Key": "tc_bad"}):
            pass
    assert refused.value.response.status_code == 401
    for path in ("alerts", "metrics", "pipeline", "telemetry", "dlq"):
        assert (await env.get(path, user=None)).status_code == 401
        assert (await env.get(path, user="uma")).status_code == 403
        assert (await env.get(path, user="olga")).status_code == 200
    bad = await env.get("metrics", user=None, Authorization="Bearer tc_nope")
    assert bad.status_code == 401


async def test_tokens_carry_the_operator_role(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.gateway.http) as client:
        tokens = {}
        for user in ("olga", "uma"):
            answer = await client.post(
                "/api/auth/token", headers={"Authorization": f"Bearer {env.keys[user]}"}
            )
            tokens[user] = answer.json()["access_token"]
    async with connect(
        env.url("alerts"), additional_headers={"Authorization": f"Bearer {tokens['olga']}"}
    ) as ws:
        assert isinstance(await frame(ws), list)
    async with connect(
        env.url("alerts"), additional_headers={"Authorization": f"Bearer {tokens['uma']}"}
    ) as ws:
        await frame(ws)
        assert await closed_code(ws) == 3504


async def test_abuse_leaves_the_server_and_other_clients_fine(env: Env) -> None:
    async with env.open("alerts") as watcher:
        await alert_frame(watcher)

        # a storm of refused listeners, anonymous and plain users
        async def refused(user: str | None) -> int | None:
            async with env.open("alerts", user=user) as ws:
                return await closed_code(ws)

        codes = await asyncio.gather(*(refused(None if i % 2 else "uma") for i in range(40)))
        assert set(codes) == {3503, 3504}
        # an operator flooding its listening socket: ignored, the stream goes on
        async with env.open("dlq") as flooder:
            await frame(flooder)
            for n in range(2000):
                await flooder.send(json.dumps({"flood": n}))
            env.primary.sink.dead_letter("garbage", "bad", time.time())  # type: ignore[union-attr]
            env.service.collect_dead_letters()
            assert [d["source"] for d in await frame(flooder)] == ["primary"]
        env.service.tick()
        changed = await alert_frame(watcher)  # the bystander still hears every change
        assert "dead_letters" in rules(changed)
    async with httpx.AsyncClient(base_url=env.gateway.http) as client:
        assert (await client.get("/health")).status_code == 200
