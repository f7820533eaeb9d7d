"""Front 2 (`/ws/realtime/`) over real sockets: every message, and the abuse battery.

A real `tickcast serve` on a SQLite file seeded with two users (alice owns a
portfolio, bob another), each with an API key; tokens are signed with a known secret.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from support.accounts import Account, seed
from support.handshake import close_refusal, http_refusal
from support.server import Server, start_server
from tickcast.auth.credentials import issue_token

SECRET = "s" * 40
#: 60 symbols, so that the 51st subscription can be tried.
SYMBOLS = ["AAPL", "MSFT"] + [f"T{i:02d}" for i in range(58)]
ORIGIN = "http://dashboard.example"


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, Account]]]:
    tmp = tmp_path_factory.mktemp("realtime")
    url = f"sqlite+aiosqlite:///{tmp}/rt.db"
    accounts = asyncio.run(
        seed(
            url,
            {
                "alice": {"Growth": [("AAPL", "buy", "10", "100"), ("MSFT", "buy", "2", "400")]},
                "bob": {"Other": [("AAPL", "buy", "1", "100")]},
            },
        )
    )
    server = start_server(
        tmp,
        database_url=url,
        jwt_secret=SECRET,
        allowed_origins=ORIGIN,
        rate=500,
        symbols=",".join(SYMBOLS),
        batch_ms=20,
        update_interval_s=0.1,
        max_connections_per_user=5,
        max_subscriptions=50,
        rate_limit_per_s=20,
        rate_limit_burst=60,
    )
    yield server, accounts
    server.stop()


def url(server: Server, **query: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{server.port}/ws/realtime/" + (f"?{q}" if q else "")


async def recv(ws: ClientConnection, wait_s: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait_s))
    return message


async def recv_type(ws: ClientConnection, type_: str, wait_s: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while True:
        message = await recv(ws, max(0.01, deadline - time.monotonic()))
        if message["type"] == type_:
            return message


async def send(ws: ClientConnection, type_: str, **data: Any) -> None:
    await ws.send(json.dumps({"type": type_, "data": data}))


async def closed_with(ws: ClientConnection, wait_s: float = 5.0) -> tuple[int, str]:
    try:
        async with asyncio.timeout(wait_s):
            async for _ in ws:
                pass
    except websockets.ConnectionClosed:
        pass
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


def token(account: Account, ttl_s: float = 600, now: float | None = None) -> str:
    return issue_token(account.user_id, account.username, SECRET, now or time.time(), ttl_s)


async def test_connection_ping_asset_updates_and_unsubscribe(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, _ = world
    async with websockets.connect(url(server)) as ws:
        hello = await recv(ws)
        assert hello["type"] == "connection"
        assert hello["data"]["status"] == "connected"
        assert hello["data"]["authenticated"] is False
        assert hello["data"]["user_id"] is None
        assert len(hello["data"]["connection_id"]) == 36
        assert hello["timestamp"].endswith("Z")
        await send(ws, "ping")
        assert (await recv_type(ws, "pong"))["data"] == {}
        await send(ws, "subscribe_asset", symbol="AAPL")
        update = await recv_type(ws, "asset_update")
        assert set(update["data"]) == {
            "symbol",
            "price",
            "change",
            "change_percent",
            "volume",
            "high",
            "low",
        }
        assert update["data"]["symbol"] == "AAPL"
        await recv_type(ws, "asset_update")  # they keep coming
        await send(ws, "unsubscribe_asset", symbol="AAPL")
        await send(ws, "ping")
        await recv_type(ws, "pong")
        with pytest.raises(TimeoutError):
            await recv_type(ws, "asset_update", wait_s=0.6)


async def test_an_owner_gets_portfolio_updates_by_token_and_by_api_key(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, accounts = world
    alice = accounts["alice"]
    growth = alice.portfolios["Growth"]
    for credential in (token(alice), alice.api_key):
        async with websockets.connect(url(server, token=credential)) as ws:
            hello = await recv(ws)
            assert hello["data"]["authenticated"] is True
            assert hello["data"]["user_id"] == alice.user_id
            await send(ws, "subscribe_portfolio", portfolio_id=growth)
            update = await recv_type(ws, "portfolio_update")
            data = update["data"]
            assert data["portfolio_id"] == growth
            assert data["name"] == "Growth"
            assert {"total_value", "daily_change", "daily_change_percent"} <= set(data)
            assert isinstance(data["total_value"], int | float)
            assert data["total_value"] > 0


async def test_first_message_authentication(world: tuple[Server, dict[str, Account]]) -> None:
    server, accounts = world
    alice = accounts["alice"]
    async with websockets.connect(url(server)) as ws:
        assert (await recv(ws))["data"]["authenticated"] is False
        await send(ws, "auth", token=alice.api_key)
        hello = await recv_type(ws, "connection")
        assert hello["data"]["authenticated"] is True
        assert hello["data"]["user_id"] == alice.user_id
        await send(ws, "subscribe_portfolio", portfolio_id=alice.portfolios["Growth"])
        await recv_type(ws, "portfolio_update")


async def test_another_users_portfolio_is_refused_and_the_connection_lives_on(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, accounts = world
    bobs = accounts["bob"].portfolios["Other"]
    async with websockets.connect(url(server, token=token(accounts["alice"]))) as ws:
        await recv(ws)
        await send(ws, "subscribe_portfolio", portfolio_id=bobs)
        error = await recv_type(ws, "error")
        assert error["data"]["message"] == f"Portfolio {bobs} not found"
        with pytest.raises(TimeoutError):
            await recv_type(ws, "portfolio_update", wait_s=0.5)
        await send(ws, "ping")
        await recv_type(ws, "pong")


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("{not json", "Invalid JSON"),
        (json.dumps({"type": "dance", "data": {}}), "Unknown message type: 'dance'"),
        (json.dumps({"data": {}}), "Invalid message: missing 'type'"),
        (
            json.dumps({"type": "subscribe_asset", "data": {"symbol": "NOPE"}}),
            "Unknown symbol: NOPE",
        ),
        (
            json.dumps({"type": "subscribe_portfolio", "data": {"portfolio_id": "x"}}),
            "Invalid request: 'portfolio_id' must be a positive integer",
        ),
        (
            json.dumps({"type": "subscribe_portfolio", "data": {"portfolio_id": 1}}),
            "Authentication required for portfolio data",
        ),
    ],
)
async def test_malformed_and_refused_messages_get_an_error(
    world: tuple[Server, dict[str, Account]], message: str, reply: str
) -> None:
    server, _ = world
    async with websockets.connect(url(server)) as ws:
        await recv(ws)
        await ws.send(message)
        assert (await recv_type(ws, "error"))["data"]["message"] == reply
        await send(ws, "ping")
        await recv_type(ws, "pong")


@pytest.mark.parametrize(
    ("kind", "expect", "code"),
    [
        ("forged", "Invalid", 3500),
        ("expired", "Token expired", 3501),
        ("bad_key", "Invalid API key", 3500),
    ],
)
async def test_bad_credentials_are_refused_at_the_handshake(
    world: tuple[Server, dict[str, Account]], kind: str, expect: str, code: int
) -> None:
    server, accounts = world
    alice = accounts["alice"]
    credential = {
        "forged": issue_token(alice.user_id, "alice", "f" * 40, time.time(), 600),
        "expired": token(alice, ttl_s=60, now=time.time() - 3600),
        "bad_key": alice.api_key[:-4] + "AAAA",
    }[kind]
    async with websockets.connect(url(server)) as bystander:  # another client, untouched
        await recv(bystander)
        status, body, _ = await http_refusal(url(server, token=credential))
        assert (status, body["close_code"], body["reconnect"]) == (401, code, False)
        assert expect in body["error"]
        closed, reason, messages = await close_refusal(url(server, token=credential), ORIGIN)
        assert (closed, messages) == (code, [])  # no `connection` message: never admitted
        assert expect in reason
        await send(bystander, "ping")
        await recv_type(bystander, "pong")


async def test_a_foreign_origin_is_closed_with_1008(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, _ = world
    async with websockets.connect(url(server), origin="http://evil.example") as ws:  # type: ignore[arg-type]
        code, _ = await closed_with(ws)
    assert code == 1008
    async with websockets.connect(url(server), origin=ORIGIN) as ws:  # type: ignore[arg-type]
        assert (await recv(ws))["type"] == "connection"


async def test_the_sixth_connection_of_a_user_is_refused(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, accounts = world
    bob = accounts["bob"]
    sockets = [await websockets.connect(url(server, token=token(bob))) for _ in range(5)]
    try:
        for ws in sockets:
            assert (await recv(ws))["data"]["authenticated"] is True
        status, body, _ = await http_refusal(url(server, token=token(bob)))
        assert (status, body["reason"], body["close_code"]) == (429, "connection_limit", 3001)
        code, reason, _ = await close_refusal(url(server, token=token(bob)), ORIGIN)
        assert code == 3001  # too many connections: retry later
        assert "connections" in reason
        await sockets[0].close()
        # The server frees the slot once it has seen the close: retry while it answers
        # 429 (no fixed sleep, which a busy machine can outlast).
        again = None
        for _ in range(100):
            try:
                again = await websockets.connect(url(server, token=token(bob)))
                break
            except InvalidStatus as refused:
                if refused.response.status_code != 429:
                    raise
                await asyncio.sleep(0.1)
        assert again is not None, "a slot was never freed"
        async with again:
            assert (await recv(again))["type"] == "connection"
    finally:
        for ws in sockets:
            await ws.close()


async def test_the_51st_subscription_is_refused(world: tuple[Server, dict[str, Account]]) -> None:
    server, _ = world
    async with websockets.connect(url(server)) as ws:
        await recv(ws)
        for symbol in SYMBOLS[:50]:
            await send(ws, "subscribe_asset", symbol=symbol)
        await send(ws, "subscribe_asset", symbol=SYMBOLS[50])
        error = await recv_type(ws, "error")
        assert error["data"]["message"] == "Too many subscriptions: at most 50 per connection"
        await send(ws, "unsubscribe_asset", symbol=SYMBOLS[0])
        await send(ws, "subscribe_asset", symbol=SYMBOLS[50])  # room again
        await send(ws, "ping")
        replies = []
        while (message := await recv(ws))["type"] != "pong":
            replies.append(message)
        assert not [r for r in replies if r["type"] == "error"]


async def test_a_flood_is_refused_then_closed(world: tuple[Server, dict[str, Account]]) -> None:
    server, _ = world
    async with websockets.connect(url(server)) as ws:
        await recv(ws)
        for _ in range(200):
            await ws.send(json.dumps({"type": "ping", "data": {}}))
        code, _ = await closed_with(ws, wait_s=10)
    assert code == 3002
    async with websockets.connect(url(server)) as other:  # nothing else is disturbed
        await recv(other)
        await send(other, "ping")
        await recv_type(other, "pong")


async def test_an_oversized_frame_is_closed_with_1009(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, _ = world
    async with websockets.connect(url(server), max_size=None) as ws:
        await recv(ws)
        await ws.send("x" * (70 * 1024))
        code, _ = await closed_with(ws)
    assert code == 1009


async def test_a_transaction_reaches_the_owner_as_position_and_portfolio_updates(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, accounts = world
    alice = accounts["alice"]
    growth = alice.portfolios["Growth"]
    async with websockets.connect(url(server, token=alice.api_key)) as ws:
        await recv(ws)
        await send(ws, "subscribe_portfolio", portfolio_id=growth)
        before = (await recv_type(ws, "portfolio_update"))["data"]
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.post(
                f"{server.http}/api/portfolios/{growth}/transactions",
                headers={"X-API-Key": alice.api_key},
                json={"symbol": "MSFT", "side": "buy", "quantity": "3", "price": "400"},
            )
        assert response.status_code == 201, response.text
        position = (await recv_type(ws, "position_update"))["data"]
        # the original fields, exactly; then the live ones, at the current MSFT price
        assert {k: position[k] for k in list(position)[:5]} == {
            "portfolio_id": growth,
            "symbol": "MSFT",
            "quantity": 5,
            "cost_basis": 2000,
            "realized_pnl": 0,
        }
        assert list(position)[5:] == ["price", "market_value", "unrealized_pnl"]
        assert position["price"] > 0
        assert position["market_value"] == pytest.approx(5 * position["price"])
        assert position["unrealized_pnl"] == pytest.approx(position["market_value"] - 2000)
        after = await recv_type(ws, "portfolio_update")
        while after["data"]["total_value"] - before["total_value"] < 1000:  # 3 more MSFT
            after = await recv_type(ws, "portfolio_update")


async def positions_of(
    ws: ClientConnection, portfolio_id: int, wait_s: float = 5.0
) -> dict[str, dict[str, Any]]:
    """The next positions_update on ``ws``, checked, as symbol -> position (money read
    as exact Decimals, as the gateway wrote them)."""
    async with asyncio.timeout(wait_s):
        while True:
            message = json.loads(await ws.recv(), parse_float=Decimal)
            if message["type"] == "positions_update":
                break
    assert message["data"]["portfolio_id"] == portfolio_id
    positions = {p["symbol"]: p for p in message["data"]["positions"]}
    assert list(positions) == sorted(positions)
    for p in positions.values():
        assert set(p) == {
            "symbol",
            "quantity",
            "cost_basis",
            "price",
            "market_value",
            "unrealized_pnl",
            "realized_pnl",
            "daily_change",
            "created_at",
            "updated_at",
        }
        assert p["quantity"] > 0
        assert p["market_value"] == p["quantity"] * p["price"]
        assert p["unrealized_pnl"] == p["market_value"] - p["cost_basis"]
        assert p["created_at"] <= p["updated_at"]
    return positions


async def test_the_owner_gets_live_positions_whose_pnl_moves_with_prices(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, accounts = world
    alice, bob = accounts["alice"], accounts["bob"]
    growth, others = alice.portfolios["Growth"], bob.portfolios["Other"]
    async with (
        websockets.connect(url(server, token=alice.api_key)) as mine,
        websockets.connect(url(server, token=bob.api_key)) as theirs,
    ):
        await recv(mine)
        await recv(theirs)
        await send(mine, "subscribe_positions", portfolio_id=growth)
        first = await positions_of(mine, growth)  # at once
        assert set(first) == {"AAPL", "MSFT"}
        assert first["AAPL"]["quantity"] == 10
        assert first["AAPL"]["cost_basis"] == 1000
        # bob may not watch alice's portfolio, and watches his own
        await send(theirs, "subscribe_positions", portfolio_id=growth)
        refused = await recv_type(theirs, "error")
        assert refused["data"]["message"] == f"Portfolio {growth} not found"
        await send(theirs, "subscribe_positions", portfolio_id=others)
        assert set(await positions_of(theirs, others)) == {"AAPL"}
        # prices move: alice's unrealized P&L follows, in updates conflated per portfolio
        seen = {first["AAPL"]["unrealized_pnl"]}
        async with asyncio.timeout(15):
            while len(seen) < 3:
                seen.add((await positions_of(mine, growth))["AAPL"]["unrealized_pnl"])
        # all that while bob got his own positions only
        # a deadline per read, not a timeout around reads that time out themselves:
        # Python 3.11's wait_for can swallow the outer cancel when a message arrives
        # with it, and then this loop reads for as long as bob's updates come
        received = []
        deadline = time.monotonic() + 1.0
        while (left := deadline - time.monotonic()) > 0:
            try:
                received.append(await recv(theirs, left))
            except TimeoutError:
                break
        assert {(m["type"], m["data"]["portfolio_id"]) for m in received} <= {
            ("positions_update", others)
        }
        await send(mine, "unsubscribe_positions", portfolio_id=growth)
        await send(mine, "ping")
        await recv_type(mine, "pong")
        with pytest.raises(TimeoutError):
            await recv_type(mine, "positions_update", wait_s=0.5)


async def test_websocket_info_and_status(world: tuple[Server, dict[str, Account]]) -> None:
    server, accounts = world
    alice = accounts["alice"]
    async with httpx.AsyncClient(timeout=5) as http:
        info = (await http.get(f"{server.http}/realtime/websocket-info/")).json()
        assert info["websocket_url"] == f"ws://127.0.0.1:{server.port}/ws/realtime/"
        assert info["connection_info"]["path"] == "/ws/realtime/"
        assert "subscribe_portfolio" in info["message_types"]["client"]
        assert "portfolio_update" in info["message_types"]["server"]
        async with websockets.connect(url(server, token=alice.api_key)) as ws:
            await recv(ws)
            await send(ws, "subscribe_asset", symbol="AAPL")
            await send(ws, "subscribe_portfolio", portfolio_id=alice.portfolios["Growth"])
            await recv_type(ws, "portfolio_update")
            status = (
                await http.get(
                    f"{server.http}/realtime/status/", headers={"X-API-Key": alice.api_key}
                )
            ).json()
            anonymous = (await http.get(f"{server.http}/realtime/status/")).json()
    assert status["service_status"] == "running"
    stats = status["global_stats"]
    assert stats["total_connections"] >= 1
    assert stats["authenticated_users"] >= 1
    assert stats["portfolio_subscriptions"] >= 1
    assert stats["asset_subscriptions"] >= 1
    assert status["user_stats"] == {
        "user_id": alice.user_id,
        "connection_count": 1,
        "subscriptions": {"portfolios": [alice.portfolios["Growth"]], "assets": ["AAPL"]},
    }
    assert "user_stats" not in anonymous


async def test_force_price_update_pushes_prices_now(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, accounts = world
    endpoint = f"{server.http}/api/realtime/force_price_update/"
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.post(endpoint, json={"symbols": ["AAPL"]})).status_code == 401
        headers = {"X-API-Key": accounts["bob"].api_key}
        bad = await http.post(endpoint, json={"symbols": "AAPL"}, headers=headers)
        assert bad.status_code == 400
        async with websockets.connect(url(server)) as ws:
            await recv(ws)
            await send(ws, "subscribe_asset", symbol="AAPL")
            await recv_type(ws, "asset_update")
            response = await http.post(
                endpoint, json={"symbols": ["aapl", "NOPE"]}, headers=headers
            )
            assert response.status_code == 200
            body = response.json()
            assert body["updated"] == ["AAPL"]
            assert body["unknown"] == ["NOPE"]
            pushed = await recv_type(ws, "asset_update", wait_s=1.0)
            assert pushed["data"]["symbol"] == "AAPL"


async def test_an_expired_token_closes_an_open_connection(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, accounts = world
    short = token(accounts["alice"], ttl_s=1.5)
    async with websockets.connect(url(server, token=short)) as ws:
        assert (await recv(ws))["data"]["authenticated"] is True
        # accepted until exp + the 5 s leeway the handshake allows, then closed
        code, reason = await closed_with(ws, wait_s=20)
    assert code == 3501
    assert reason.startswith("Token expired")
    feed = f"ws://127.0.0.1:{server.port}/ws/market/feed?token={token(accounts['bob'], 1.5)}"
    async with websockets.connect(feed) as ws:
        code, reason = await closed_with(ws, wait_s=20)
    assert code == 3501
    assert reason.startswith("Token expired")


async def test_force_price_update_wants_a_json_body(
    world: tuple[Server, dict[str, Account]],
) -> None:
    server, accounts = world
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(
            f"{server.http}/api/realtime/force_price_update/",
            content=b'{"symbols": ["AAPL"]}',
            headers={"X-API-Key": accounts["bob"].api_key, "Content-Type": "text/plain"},
        )
    assert response.status_code == 415
