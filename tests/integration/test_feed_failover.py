"""The feed supervisor end to end: a real gateway fed by real emulator processes.

`tickcast serve --feed alpaca,polygon,simulator` against `tickcast emulate alpaca` and
`tickcast emulate polygon`, with faults injected through the emulators' control
endpoint, and a Front 1 client subscribed throughout. Times are short here (stale after
1.5 s, failback after 2 s) so that each scenario takes seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from support.emulator import Emulator, start_emulator
from support.server import Server, start_server

STALE_S = 1.5
FAILBACK_S = 2.0
CREDENTIALS = {
    "ALPACA_API_KEY_ID": "emulator-key",
    "ALPACA_API_SECRET_KEY": "emulator-secret",
    "POLYGON_API_KEY": "emulator-key",
}


@pytest.fixture
def alpaca(tmp_path: Path) -> Iterator[Emulator]:
    emulator = start_emulator("alpaca", tmp_path, "--rate", "200")
    yield emulator
    emulator.stop()


@pytest.fixture
def polygon(tmp_path: Path) -> Iterator[Emulator]:
    emulator = start_emulator("polygon", tmp_path, "--rate", "200")
    yield emulator
    emulator.stop()


def gateway(tmp_path: Path, alpaca: Emulator, polygon: Emulator, **settings: object) -> Server:
    options: dict[str, object] = {
        "feed": "alpaca,polygon,simulator",
        "alpaca_url": f"{alpaca.url}/v2/iex",
        "polygon_url": f"{polygon.url}/stocks",
        "feed_stale_s": STALE_S,
        "feed_failback_s": FAILBACK_S,
        "feed_backoff_base_s": 0.2,
        "feed_backoff_cap_s": 1.0,
        "feed_limit_backoff_s": 5.0,
        "batch_ms": 20,
        "rate": 200,
    }
    options.update(settings)
    return start_server(tmp_path, extra_env=CREDENTIALS, **options)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def feed_state(http: httpx.AsyncClient, server: Server) -> dict[str, Any]:
    response = await http.get(f"{server.http}/feed")
    state: dict[str, Any] = response.json()
    return state


async def wait_for(
    http: httpx.AsyncClient,
    server: Server,
    predicate: Callable[[dict[str, Any]], bool],
    wait_s: float = 15.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    state = await feed_state(http, server)
    while not predicate(state):
        if time.monotonic() > deadline:
            raise AssertionError(f"feed state never matched: {state}\n{server.log()[-3000:]}")
        await asyncio.sleep(0.05)
        state = await feed_state(http, server)
    return state


class Watcher:
    """A Front 1 client on AAPL quotes and the feed status, recording what arrives."""

    def __init__(self, url: str) -> None:
        self.url = url + "?seq=1"
        self.quotes: list[tuple[float, dict[str, Any]]] = []
        self.statuses: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []
        self.closed: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready))
        await asyncio.wait_for(ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self, ready: asyncio.Event) -> None:
        async with websockets.connect(self.url) as ws:
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"]}))
            await ws.send(
                json.dumps({"action": "subscribe", "symbols": ["FEED"], "channels": ["status"]})
            )
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    if message.get("topic") == "quotes.AAPL":
                        self.quotes.append((time.monotonic(), message))
                        ready.set()
                    elif message.get("type") == "status":
                        self.statuses.append(message)
                    elif message.get("type") != "subscribed":
                        self.other.append(message)
            except websockets.ConnectionClosed as exc:
                self.closed = exc.rcvd.code if exc.rcvd else 1006

    def sources_since(self, index: int) -> set[str]:
        return {q["source"] for _, q in self.quotes[index:]}

    def longest_gap_s(self) -> float:
        times = [t for t, _ in self.quotes]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def check_stream(self) -> None:
        """No error, no close, no reset, and quote seqs strictly increasing."""
        assert self.other == [], self.other
        assert self.closed is None
        seqs = [q["seq"] for _, q in self.quotes]
        assert seqs == sorted(set(seqs)), "quote seqs must increase"


async def test_starts_on_the_preferred_provider(
    tmp_path: Path, alpaca: Emulator, polygon: Emulator, http: httpx.AsyncClient
) -> None:
    server = gateway(tmp_path, alpaca, polygon)
    try:
        state = await wait_for(http, server, lambda s: s["active"] == "alpaca")
        states = {p["name"]: p["state"] for p in state["providers"]}
        assert states == {"alpaca": "up", "polygon": "stopped", "simulator": "stopped"}
        async with Watcher(server.feed) as watcher:
            await asyncio.sleep(0.5)
        assert watcher.sources_since(0) == {"alpaca"}
        assert polygon.state()["connections_total"] == 0  # a fail-over is not connected early
    finally:
        server.stop()


async def test_drop_fails_over_reconnects_with_resubscribe_and_fails_back(
    tmp_path: Path, alpaca: Emulator, polygon: Emulator, http: httpx.AsyncClient
) -> None:
    server = gateway(tmp_path, alpaca, polygon)
    try:
        await wait_for(http, server, lambda s: s["active"] == "alpaca")
        async with Watcher(server.feed) as watcher:
            before = len(watcher.quotes)
            alpaca.inject("drop")
            state = await wait_for(http, server, lambda s: s["failovers"] >= 1)
            await wait_for(http, server, lambda s: s["failbacks"] >= 1, wait_s=FAILBACK_S + 10)
            await wait_for(http, server, lambda s: s["active"] == "alpaca")
            back = len(watcher.quotes)
            await asyncio.sleep(0.5)
        # the drop was noticed, polygon served meanwhile, and alpaca came back resubscribed
        assert alpaca.state()["connections_total"] == 2
        # /feed said alpaca is back; polygon quotes published just before may still be on
        # their way (batched). From alpaca's first quote on, every quote is alpaca's:
        # one topic's quotes arrive in publish order.
        tail = [q["source"] for _, q in watcher.quotes[back:]]
        assert "alpaca" in tail
        assert set(tail[tail.index("alpaca") :]) == {"alpaca"}
        assert "polygon" in watcher.sources_since(before)
        assert state["failovers"] >= 1
        watcher.check_stream()
        # the failover took well under a second here; quotes never paused longer than that
        assert watcher.longest_gap_s() < 2.0, watcher.longest_gap_s()
        seen = [(s["provider"], s["state"]) for s in watcher.statuses]
        assert ("alpaca", "backoff") in seen
        assert ("polygon", "up") in seen
        assert ("polygon", "stopped") in seen
    finally:
        server.stop()


async def test_a_silent_upstream_is_detected_and_failed_over(
    tmp_path: Path, alpaca: Emulator, polygon: Emulator, http: httpx.AsyncClient
) -> None:
    server = gateway(tmp_path, alpaca, polygon)
    try:
        await wait_for(http, server, lambda s: s["active"] == "alpaca")
        async with Watcher(server.feed) as watcher:
            alpaca.inject("silent", 60)
            silenced = time.monotonic()
            await wait_for(http, server, lambda s: s["active"] == "polygon")
            detected_after = time.monotonic() - silenced
            await asyncio.sleep(0.5)
        assert detected_after < STALE_S + 3.0
        assert alpaca.state()["connections"] <= 1  # the silent socket was closed, then retried
        stale = [
            s for s in watcher.statuses if s["provider"] == "alpaca" and s["state"] == "backoff"
        ]
        assert stale
        assert stale[0]["reason"].startswith("no data for")
        watcher.check_stream()
        assert watcher.longest_gap_s() < STALE_S + 2.0
    finally:
        server.stop()


async def test_a_malformed_upstream_message_is_a_dead_letter_and_the_feed_goes_on(
    tmp_path: Path, alpaca: Emulator, polygon: Emulator, http: httpx.AsyncClient
) -> None:
    server = gateway(tmp_path, alpaca, polygon)
    try:
        await wait_for(http, server, lambda s: s["active"] == "alpaca")
        async with Watcher(server.feed) as watcher:
            alpaca.inject("malformed")
            await wait_for(http, server, lambda s: s["dead_letters"] >= 1)
            count = len(watcher.quotes)
            await asyncio.sleep(0.5)
            assert len(watcher.quotes) > count  # still flowing
        letters = (await http.get(f"{server.http}/feed/dead-letters")).json()
        assert letters[0]["provider"] == "alpaca"
        assert letters[0]["error"]
        assert letters[0]["raw"]
        state = await feed_state(http, server)
        assert state["active"] == "alpaca"
        assert state["failovers"] == 0
        assert server.metric('tickcast_dead_letters_total{provider="alpaca"}') >= 1
        watcher.check_stream()
    finally:
        server.stop()


async def test_a_connection_limit_backs_off_without_a_storm(
    tmp_path: Path, alpaca: Emulator, polygon: Emulator, http: httpx.AsyncClient
) -> None:
    # Another app holds the key's only connection: the gateway gets 406.
    async with websockets.connect(f"{alpaca.url}/v2/iex") as other:
        await other.recv()
        await other.send(
            json.dumps({"action": "auth", "key": "emulator-key", "secret": "emulator-secret"})
        )
        assert "authenticated" in str(await other.recv())
        server = gateway(tmp_path, alpaca, polygon, feed_limit_backoff_s=30)
        try:
            await wait_for(http, server, lambda s: s["active"] == "polygon")
            attempts = alpaca.state()["connections_total"]
            await asyncio.sleep(3.0)
            # one refused attempt, then a 30 s wait: no reconnect storm
            assert alpaca.state()["connections_total"] == attempts
            assert attempts <= 3  # the other app's connection, and one or two of ours
            state = await feed_state(http, server)
            assert {p["name"]: p["state"] for p in state["providers"]}["alpaca"] == "backoff"
            assert "406" in server.log()
        finally:
            server.stop()


async def test_refused_credentials_disable_the_provider_and_the_feed_goes_on(
    tmp_path: Path, alpaca: Emulator, polygon: Emulator, http: httpx.AsyncClient
) -> None:
    env = {**CREDENTIALS, "ALPACA_API_SECRET_KEY": "wrong"}
    server = start_server(
        tmp_path,
        extra_env=env,
        feed="alpaca,polygon",
        alpaca_url=f"{alpaca.url}/v2/iex",
        polygon_url=f"{polygon.url}/stocks",
        feed_backoff_base_s=0.1,
    )
    try:
        state = await wait_for(http, server, lambda s: s["active"] == "polygon")
        await asyncio.sleep(1.0)
        assert alpaca.state()["connections_total"] == 1  # never hammered
        states = {p["name"]: p["state"] for p in state["providers"]}
        assert states["alpaca"] == "disabled"
    finally:
        server.stop()
