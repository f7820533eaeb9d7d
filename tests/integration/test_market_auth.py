"""Front 1 (`/ws/market/feed`) under auth and limits: anonymous access off, origins,
credentials, the connection cap per user and the message rate; and Front 2 with
anonymous access off (authenticate by the first message, in time, or be closed).

Refusals at the handshake are seen twice: by a script (no Origin: an HTTP status before
the upgrade) and by a browser (an Origin: the upgrade, then the refusal's close code)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
import websockets

from support.accounts import Account, seed
from support.handshake import close_refusal, http_refusal
from support.server import Server, start_server
from tickcast.auth.credentials import issue_token

SECRET = "k" * 40
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Account]]:
    tmp = tmp_path_factory.mktemp("market-auth")
    url = f"sqlite+aiosqlite:///{tmp}/m.db"
    accounts = asyncio.run(seed(url, {"carol": {}}))
    server = start_server(
        tmp,
        database_url=url,
        jwt_secret=SECRET,
        allow_anonymous="false",
        allowed_origins=ORIGIN,
        max_connections_per_user=2,
        rate_limit_per_s=5,
        rate_limit_burst=10,
        auth_timeout_s=1,
        rate=200,
    )
    yield server, accounts["carol"]
    server.stop()


async def closed_code(ws: websockets.ClientConnection) -> int:
    try:
        async with asyncio.timeout(5):
            async for _ in ws:
                pass
    except websockets.ConnectionClosed:
        pass
    assert ws.close_code is not None
    return ws.close_code


async def test_anonymous_clients_are_refused_when_anonymous_access_is_off(
    world: tuple[Server, Account],
) -> None:
    server, _ = world
    status, body, headers = await http_refusal(server.feed)
    assert status == 401
    assert body["error"].startswith("Authentication required")
    assert (body["reason"], body["close_code"], body["reconnect"]) == (
        "unauthenticated",
        3503,
        False,
    )
    assert headers["www-authenticate"].startswith("Bearer")
    code, reason, messages = await close_refusal(server.feed, ORIGIN)
    assert (code, messages) == (3503, [])
    assert reason.startswith("Authentication required")
    assert server.metric('tickcast_refusals_total{reason="unauthenticated"}') >= 2


async def test_a_token_or_an_api_key_lets_a_client_in(world: tuple[Server, Account]) -> None:
    server, carol = world
    jwt = issue_token(carol.user_id, carol.username, SECRET, time.time(), 600)
    for headers in ({"Authorization": f"Bearer {jwt}"}, {"X-API-Key": carol.api_key}):
        async with websockets.connect(server.feed, additional_headers=headers) as ws:
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"


async def test_a_foreign_origin_is_refused_with_1008(world: tuple[Server, Account]) -> None:
    server, carol = world
    headers = {"X-API-Key": carol.api_key}
    async with websockets.connect(
        server.feed,
        additional_headers=headers,
        origin="https://evil.example",  # type: ignore[arg-type]
    ) as ws:
        assert await closed_code(ws) == 1008


async def test_the_connection_cap_per_user(world: tuple[Server, Account]) -> None:
    server, carol = world
    headers = {"X-API-Key": carol.api_key}
    first = await websockets.connect(server.feed, additional_headers=headers)
    second = await websockets.connect(server.feed, additional_headers=headers)
    try:
        status, body, _ = await http_refusal(server.feed, additional_headers=headers)
        assert (status, body["close_code"], body["reconnect"]) == (429, 3001, True)
        assert "at most 2 per user" in body["error"]
        code, reason, _ = await close_refusal(server.feed, ORIGIN, additional_headers=headers)
        assert code == 3001
        assert "connections" in reason
        # the two that were in are untouched
        for ws in (first, second):
            await ws.send(json.dumps({"action": "ping"}))
            assert json.loads(await ws.recv())["type"] == "pong"
    finally:
        await first.close()
        await second.close()


async def test_a_message_flood_gets_errors_then_a_close(world: tuple[Server, Account]) -> None:
    server, carol = world
    headers = {"X-API-Key": carol.api_key}
    async with websockets.connect(server.feed, additional_headers=headers) as ws:
        for _ in range(100):
            await ws.send(json.dumps({"action": "ping"}))
        replies = []
        try:
            async with asyncio.timeout(5):
                async for raw in ws:
                    replies.append(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
    assert ws.close_code == 3002  # rate limited: reconnecting later is fine
    assert sum(r["type"] == "pong" for r in replies) == 10  # the burst
    assert any(r.get("message", "").startswith("Too many messages") for r in replies)


async def test_realtime_without_credentials_must_authenticate_in_time(
    world: tuple[Server, Account],
) -> None:
    server, carol = world
    realtime = f"ws://127.0.0.1:{server.port}/ws/realtime/"
    async with websockets.connect(realtime) as late:
        hello = json.loads(await late.recv())
        assert hello["data"]["authenticated"] is False
        await late.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": "AAPL"}}))
        error = json.loads(await late.recv())
        assert error["data"]["message"] == "Authentication required"
        assert await closed_code(late) == 3502  # authentication timeout: terminal
    async with websockets.connect(realtime) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "auth", "data": {"token": carol.api_key}}))
        hello = json.loads(await ws.recv())
        assert hello["data"] == {
            "status": "connected",
            "connection_id": hello["data"]["connection_id"],
            "authenticated": True,
            "user_id": carol.user_id,
        }
        await ws.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": "AAPL"}}))
        assert json.loads(await ws.recv())["type"] == "asset_update"


async def test_an_expired_token_is_refused_at_the_handshake_on_every_try(
    world: tuple[Server, Account],
) -> None:
    server, carol = world
    old = issue_token(carol.user_id, carol.username, SECRET, time.time() - 3600, 60)
    headers = {"Authorization": f"Bearer {old}"}
    for _ in range(2):  # a client that comes back is refused the same way, before the upgrade
        status, body, _ = await http_refusal(server.feed, additional_headers=headers)
        assert (status, body["reason"], body["close_code"]) == (401, "expired", 3501)
        assert body["reconnect"] is False
        assert body["error"].startswith("Token expired")
    code, reason, messages = await close_refusal(f"{server.feed}?token={old}", ORIGIN)
    assert (code, messages) == (3501, [])
    assert reason.startswith("Token expired")


@pytest.mark.parametrize(
    "authorization", ["Basic Y2Fyb2w6cHc=", "{key}"], ids=["basic", "no-scheme"]
)
async def test_a_malformed_authorization_beside_a_good_key_is_refused(
    world: tuple[Server, Account], authorization: str
) -> None:
    server, carol = world
    headers = {"Authorization": authorization.format(key=carol.api_key), "X-API-Key": carol.api_key}
    status, body, _ = await http_refusal(server.feed, additional_headers=headers)
    assert (status, body["close_code"]) == (401, 3500)
    assert body["error"] == "Malformed Authorization header: expected 'Bearer <token or API key>'"
    code, reason, _ = await close_refusal(server.feed, ORIGIN, additional_headers=headers)
    assert code == 3500
    assert reason.startswith("Malformed Authorization header")
    # the same key alone is fine
    async with websockets.connect(
        server.feed, additional_headers={"X-API-Key": carol.api_key}
    ) as ws:
        await ws.send(json.dumps({"action": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"
