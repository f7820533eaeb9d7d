"""Review round 6: the WebSocket fast path keeps every guarantee on every front that uses
it (market feed, realtime envelope, STOMP, SockJS's websocket transport, leaderboard,
monitoring), through real sockets, with ``ws_fast_path`` on (and off where it compares),
on the connect without an ASGI call (anonymous) and on the ASGI one (credentialed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from integration.test_monitoring import seed_users
from support.inloop import Gateway, running_gateway
from tickcast.auth.policy import Reason
from tickcast.transport.uvicorn_websocket import TickcastWebSocketProtocol

KEY = "dGhlIHNhbXBsZSBub25jZQ=="

#: front -> (path, sub-protocols offered, needs an operator's key)
FRONTS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "market": ("/ws/market/feed", (), False),
    "realtime": ("/ws/realtime/", (), False),
    "stomp": ("/stomp/websocket", ("v12.stomp",), False),
    "sockjs": ("/stomp/000/s6review/websocket", (), False),
    "leaderboard": ("/ws/updates", (), False),
    "monitoring": ("/ws/metrics", (), True),
}


@contextlib.asynccontextmanager
async def gateway_with_keys(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Gateway, dict[str, str]]]:
    """The gateway with an operator (olga) and a user (uma), each with an API key."""
    keys = await seed_users(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    async with running_gateway(tmp_path, monitoring_interval_s=3600, **overrides) as gateway:
        yield gateway, keys


def _url(gateway: Gateway, front: str) -> str:
    return f"ws://127.0.0.1:{gateway.port}{FRONTS[front][0]}"


def _open(gateway: Gateway, front: str, keys: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """A websockets client on ``front`` (with olga's key when it needs an operator)."""
    _, subprotocols, operator = FRONTS[front]
    headers = dict(kwargs.pop("additional_headers", {}))
    if operator and keys is not None:
        headers["X-API-Key"] = keys["olga"]
    if subprotocols:
        kwargs["subprotocols"] = list(subprotocols)
    return connect(_url(gateway, front), additional_headers=headers, **kwargs)


async def _until_closed(ws: ClientConnection) -> int | None:
    """Read until the gateway closes ``ws``: its close code (None: no close frame)."""
    async with asyncio.timeout(10):
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
    return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd is not None else None


async def _released(gateway: Gateway) -> bool:
    """Whether the node's open connections drop to none (5 s at most)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while gateway.node.connections:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    return not gateway.node.connections


async def _metric(gateway: Gateway, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{gateway.http}/metrics")).text
    for line in text.splitlines():
        if line.startswith(f"tickcast_{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no tickcast_{name} in /metrics")


# -- the known gap: a failure after connect() registered the connection


def _attach_fails_once(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The protocol's ``attach`` (what ``_attach`` calls last, after ``connect`` and
    ``start``) raises once; returns the list its calls are counted in."""
    calls: list[int] = []
    attach = TickcastWebSocketProtocol.attach

    def failing(self: TickcastWebSocketProtocol, connection: Any, on_end: Any = None) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected: attach failed")
        attach(self, connection, on_end)

    monkeypatch.setattr(TickcastWebSocketProtocol, "attach", failing)
    return calls


async def test_a_failed_attach_on_the_direct_connect_does_not_leave_the_connection_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _attach_fails_once(monkeypatch)
    async with running_gateway(tmp_path) as gateway:
        with contextlib.suppress(ConnectionClosed, InvalidStatus, OSError):
            async with connect(gateway.feed) as ws:  # anonymous: the direct connect
                await _until_closed(ws)
        assert calls == [1]
        assert await _released(gateway), "the failed connection stays counted"
        assert await _metric(gateway, "active_connections") == 0


async def test_a_failed_attach_on_the_asgi_connect_does_not_leave_the_connection_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _attach_fails_once(monkeypatch)
    async with gateway_with_keys(tmp_path) as (gateway, keys):
        headers = {"X-API-Key": keys["uma"]}  # credentialed: the ASGI call attaches
        with contextlib.suppress(ConnectionClosed, InvalidStatus, OSError):
            async with connect(gateway.feed, additional_headers=headers) as ws:
                await _until_closed(ws)
        assert calls == [1]
        assert await _released(gateway), "the failed connection stays counted"
        assert await _metric(gateway, "active_connections") == 0


async def test_a_failed_attach_on_sockjs_websocket_gives_its_slot_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _attach_fails_once(monkeypatch)
    options = {"max_anonymous_connections_per_address": 1}
    async with running_gateway(tmp_path, **options) as gateway:
        with contextlib.suppress(ConnectionClosed, InvalidStatus, OSError):
            async with connect(gateway.sockjs("s6a")) as ws:
                await _until_closed(ws)
        assert calls == [1]
        # its slot is back: the next client from the same address is admitted
        async with connect(gateway.sockjs("s6b")) as ws:
            async with asyncio.timeout(10):
                assert await ws.recv() == "o"
        assert gateway.node.stats.refusals == {}


# -- the guarantees, front by front


@pytest.mark.parametrize("front", list(FRONTS))
@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_message_over_64_kib_closes_1009(tmp_path: Path, front: str, fast: bool) -> None:
    async with (
        gateway_with_keys(tmp_path, ws_fast_path=fast, leaderboard_public=True) as (
            gateway,
            keys,
        ),
        _open(gateway, front, keys, max_size=None) as ws,
    ):
        await ws.send("x" * (64 * 1024 + 1))
        assert await _until_closed(ws) == 1009


@pytest.mark.parametrize("front", list(FRONTS))
@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_compressed_bomb_closes_1009(tmp_path: Path, front: str, fast: bool) -> None:
    options = {"ws_fast_path": fast, "permessage_deflate": True, "leaderboard_public": True}
    async with gateway_with_keys(tmp_path, **options) as (gateway, keys):
        client = _open(gateway, front, keys, compression="deflate", max_size=None)
        async with client as ws:
            assert ws.protocol.extensions, "permessage-deflate not negotiated"
            await ws.send(" " * (8 * 1024 * 1024))  # ~8 KiB on the wire
            assert await _until_closed(ws) == 1009


@pytest.mark.parametrize("front", list(FRONTS))
@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_foreign_origin_is_refused_once_counted_and_logged(
    tmp_path: Path, front: str, fast: bool, caplog: pytest.LogCaptureFixture
) -> None:
    options = {"ws_fast_path": fast, "allowed_origins": ("https://good.example",)}
    async with gateway_with_keys(tmp_path, **options) as (gateway, keys):
        caplog.set_level(logging.INFO)
        async with _open(gateway, front, keys, origin="https://evil.example") as ws:
            assert await _until_closed(ws) == 1008
        assert gateway.node.stats.refusals == {Reason.ORIGIN.value: 1}
        lines = [r for r in caplog.records if r.getMessage() == "client refused"]
        assert len(lines) == 1, lines


@pytest.mark.parametrize("front", list(FRONTS))
@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_shutdown_closes_1001(tmp_path: Path, front: str, fast: bool) -> None:
    options = {"ws_fast_path": fast, "leaderboard_public": True}
    async with contextlib.AsyncExitStack() as stack:
        gateway, keys = await stack.enter_async_context(gateway_with_keys(tmp_path, **options))
        async with _open(gateway, front, keys) as ws:
            if front == "sockjs":
                async with asyncio.timeout(10):
                    assert await ws.recv() == "o"
            stopping = asyncio.ensure_future(stack.aclose())
            code = await _until_closed(ws)
        await stopping
    assert code == 1001


@pytest.mark.parametrize("front", [f for f in FRONTS if not FRONTS[f][2]])
@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_the_per_address_cap_refuses_once_counted_and_logged(
    tmp_path: Path, front: str, fast: bool, caplog: pytest.LogCaptureFixture
) -> None:
    options = {"ws_fast_path": fast, "max_anonymous_connections_per_address": 1}
    async with gateway_with_keys(tmp_path, leaderboard_public=True, **options) as (gateway, _):
        caplog.set_level(logging.INFO)
        async with _open(gateway, front) as first:
            if front == "sockjs":
                async with asyncio.timeout(10):
                    assert await first.recv() == "o"
            with pytest.raises(InvalidStatus) as refused:  # not a browser: plain HTTP
                async with _open(gateway, front):
                    pass
            assert refused.value.response.status_code == 429
        assert gateway.node.stats.refusals == {Reason.ADDRESS_LIMIT.value: 1}
        lines = [r for r in caplog.records if r.getMessage() == "client refused"]
        assert len(lines) == 1, lines


@pytest.mark.parametrize("front", list(FRONTS))
@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_the_per_user_cap_refuses_a_second_connection(
    tmp_path: Path, front: str, fast: bool
) -> None:
    options = {"ws_fast_path": fast, "max_connections_per_user": 1}
    async with gateway_with_keys(tmp_path, leaderboard_public=True, **options) as (gateway, keys):
        headers = {"X-API-Key": keys["olga"]}
        async with _open(gateway, front, additional_headers=headers) as first:
            if front == "sockjs":
                async with asyncio.timeout(10):
                    assert await first.recv() == "o"
            with pytest.raises(InvalidStatus) as refused:
                async with _open(gateway, front, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 429
        assert gateway.node.stats.refusals == {Reason.CONNECTION_LIMIT.value: 1}
        # the first one's slot is back once it is gone
        assert await _released(gateway)
        async with _open(gateway, front, additional_headers=headers):
            pass


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_an_unfinished_handshake_is_dropped(tmp_path: Path, fast: bool) -> None:
    async with running_gateway(tmp_path, ws_fast_path=fast, handshake_timeout_s=0.5) as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            writer.write(
                b"GET /ws/market/feed HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            )
            async with asyncio.timeout(10):
                assert await reader.read() == b""  # or a 408: closed, never upgraded
        finally:
            writer.close()


@pytest.mark.parametrize("front", list(FRONTS))
@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])
async def test_a_bad_query_token_is_refused_once_counted_and_logged(
    tmp_path: Path, front: str, fast: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async with gateway_with_keys(tmp_path, ws_fast_path=fast) as (gateway, _):
        caplog.set_level(logging.INFO)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{_url(gateway, front)}?token=not-a-token"):
                pass
        assert refused.value.response.status_code == 401
        assert gateway.node.stats.refusals == {Reason.INVALID_CREDENTIALS.value: 1}
        lines = [r for r in caplog.records if r.getMessage() == "client refused"]
        assert len(lines) == 1, lines
