"""Review of the monitoring sockets over a real gateway (docs/monitoring.md): defects a
user hits, each expected to fail until it is fixed. The gateway is the one
``test_monitoring`` runs (in this event loop, the service evaluated on demand); waits
are on conditions with generous timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect

from integration.test_monitoring import (
    WAIT_S,
    Backup,
    Env,
    Primary,
    alert_frame,
    frame,
    seed_users,
    until,
)
from support.inloop import running_gateway
from support.silent import Silent
from support.wsclient import closed_code
from tickcast.fronts import identity
from tickcast.model.market import Quote
from tickcast.monitoring.service import MonitoringService
from tickcast.providers.base import Sink
from tickcast.storage.engine import make_engine
from tickcast.storage.repositories import Users


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    """As ``test_monitoring``'s: an operator (olga) and a user (uma), a primary provider
    that fails when told and a silent backup, the service evaluated on demand."""
    keys = await seed_users(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    primary = Primary()
    async with running_gateway(
        tmp_path,
        providers=[primary, Backup()],
        monitoring_interval_s=3600,
        alert_cooldown_s=0,
        alert_cpu_percent=100,
        alert_memory_percent=100,
        alert_disk_percent=100,
        feed_failback_s=0,
    ) as gateway:
        await until(lambda: gateway.node.supervisor.active == "primary")
        yield Env(gateway, keys, primary)


async def next_alerts_or_close(ws: Any) -> Any:
    """The next /ws/alerts frame, or the close code when the server closes instead
    (after the one error message that precedes every close)."""
    try:
        got = await frame(ws)
        if isinstance(got, dict) and got.get("type") == "error":
            got = await frame(ws)
        assert isinstance(got, list), got
        return got
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def refused_code(env: Env, user: str) -> int | None:
    """The close code a new /ws/alerts connection of ``user`` gets (None: not closed)."""
    async with env.open("alerts", user=user) as ws:
        try:
            return await closed_code(ws, wait_s=2.0)
        except TimeoutError:
            return None


async def test_a_demoted_operators_open_socket_stops_streaming(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """olga listens with her API key; her role is taken away (``users set-role olga
    user``). Once the gateway has seen the change (a new connection with the same key is
    refused 3504), her open socket must not carry the next alert."""
    monkeypatch.setattr(identity, "CACHE_S", 0.2)  # the key lookup's cache: short here
    async with env.open("alerts") as ws:
        assert await alert_frame(ws) == []
        engine = make_engine(env.gateway.node.settings.database_url)
        try:
            async with engine.begin() as conn:
                users = Users(conn)
                olga = await users.by_name("olga")
                await users.set_role(olga.id, "user")
        finally:
            await engine.dispose()
        codes: list[int | None] = []

        async def demoted() -> bool:
            codes.append(await refused_code(env, "olga"))
            return codes[-1] == 3504

        deadline = WAIT_S * 2
        while not await demoted():
            deadline -= 2.0
            assert deadline > 0, codes
        # something goes wrong now: the feed fails over
        env.primary.fail.set()
        # a counter, not the active provider: the primary comes back and takes the feed
        # back at once (no failback delay), so "backup is active" may last too short a
        # moment for a poll on a busy machine to see
        await until(lambda: env.gateway.node.stats.failovers >= 1)
        env.service.tick()
        got = await next_alerts_or_close(ws)
        assert got == 3504, f"a user who is no operator read {got}"


class Recording(Silent):
    """A replay of a recording: one quote, then a quiet stretch of the recording (the
    supervisor never judges a replay's silence: ``watch_silence`` False)."""

    name = "replay"

    async def run(self, sink: Sink) -> None:
        sink.state("subscribed")
        sink([Quote("AAPL", 99.0, 101.0, 1.0, 1.0, 100.0, 10.0, time.time(), self.name)])
        await asyncio.Event().wait()


async def test_a_replays_quiet_stretch_is_not_a_stale_feed(tmp_path: Path) -> None:
    """``serve --replay`` of a recording with a gap longer than ``alert_stale_feed_s``
    (the calendar says the market is open): the gap is recorded data, not a dead
    upstream, as the feed's failover policy says; no CRITICAL alert for it."""
    async with running_gateway(
        tmp_path,
        providers=[Recording()],
        monitoring_interval_s=3600,
        alert_stale_feed_s=0.5,
        alert_cpu_percent=100,
        alert_memory_percent=100,
        alert_disk_percent=100,
    ) as gateway:
        supervisor = gateway.node.supervisor
        await until(lambda: supervisor.inflow().get("replay", (0, 0.0))[0] == 1)
        assert supervisor.market_open()
        await until(lambda: time.time() - supervisor.inflow()["replay"][1] > 1.0)
        service = next(s for s in gateway.node.services if isinstance(s, MonitoringService))
        opened = service.tick()
        assert supervisor.active == "replay"
        assert "stale_feed" not in {a.rule for a in opened}


async def test_an_operator_watching_every_stream_may_still_open_the_market_feed(
    env: Env,
) -> None:
    """An operator's dashboard listens to the five monitoring streams (one socket
    each, as documented) and shows the market feed too: with the default settings, that
    sixth socket is refused."""
    async with contextlib.AsyncExitStack() as stack:
        for stream in ("alerts", "metrics", "pipeline", "telemetry", "dlq"):
            ws = await stack.enter_async_context(env.open(stream))
            await ws.recv()
        headers = {"Authorization": f"Bearer {env.keys['olga']}"}
        url = f"ws://127.0.0.1:{env.gateway.port}/ws/market/feed"
        try:
            async with connect(url, additional_headers=headers):
                refused = None
        except websockets.InvalidStatus as exc:
            refused = exc.response.status_code
        assert refused is None, f"refused {refused}"
