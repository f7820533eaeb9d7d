"""Admission over real sockets: the per-address cap on anonymous clients, trusted
proxies (and nobody else) naming the client, websocket-info behind a TLS proxy, status
across every front, one rule for malformed credentials on HTTP and WebSocket, and the
record of API-key use.

Two real servers: ``direct`` trusts no proxy, ``proxied`` trusts 127.0.0.1 (the tests'
own address) as a reverse proxy. Both cap anonymous connections at 2 per address.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from support.accounts import Account, seed
from support.handshake import close_refusal, http_refusal
from support.server import Server, start_server
from tickcast.cli.accounts import list_keys, run_keys
from tickcast.config.settings import Settings
from tickcast.storage.records import ApiKey

CAP = 2
ORIGIN = "http://page.example"


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Account]:
    tmp = tmp_path_factory.mktemp("admission-db")
    url = f"sqlite+aiosqlite:///{tmp}/a.db"
    return url, asyncio.run(seed(url, {"dora": {"Main": [("AAPL", "buy", "1", "100")]}}))["dora"]


@pytest.fixture(scope="module")
def direct(
    tmp_path_factory: pytest.TempPathFactory, accounts: tuple[str, Account]
) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("direct"),
        database_url=accounts[0],
        max_anonymous_connections_per_address=CAP,
        rate=200,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("proxied"),
        max_anonymous_connections_per_address=CAP,
        trusted_proxies="127.0.0.1",
        rate=200,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied_rfc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("proxied_rfc"),
        trusted_proxies="127.0.0.1",
        forwarded_headers="forwarded",
        rate=200,
    )
    yield server
    server.stop()


def feed(server: Server) -> str:
    return server.feed


def realtime(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/realtime/"


async def alive(ws: ClientConnection, front: Callable[[Server], str]) -> None:
    """The connection still answers a ping."""
    if front is feed:
        await ws.send(json.dumps({"action": "ping"}))
        while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "pong":
            pass
    else:
        await ws.send(json.dumps({"type": "ping", "data": {}}))
        while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "pong":
            pass


async def eventually(check: Callable[[], Any], wait_s: float = 10.0) -> Any:
    """Poll ``check`` until it returns a true value (a server-side close is processed
    asynchronously); the deadline only bounds a failure."""
    deadline = time.monotonic() + wait_s
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


# -- status counts every front (first: the servers are fresh)


async def test_status_counts_a_front_1_and_a_front_2_client(
    direct: Server, accounts: tuple[str, Account]
) -> None:
    _, dora = accounts
    key = {"X-API-Key": dora.api_key}
    async with (
        websockets.connect(feed(direct)) as one,
        websockets.connect(realtime(direct), additional_headers=key) as two,
        httpx.AsyncClient(timeout=5) as http,
    ):
        await one.send(json.dumps({"action": "subscribe", "symbols": ["AAPL", "MSFT"]}))
        assert json.loads(await one.recv())["type"] == "subscribed"
        assert json.loads(await two.recv())["data"]["authenticated"] is True
        await two.send(json.dumps({"type": "subscribe_asset", "data": {"symbol": "AAPL"}}))
        await two.send(
            json.dumps(
                {"type": "subscribe_portfolio", "data": {"portfolio_id": dora.portfolios["Main"]}}
            )
        )

        async def status() -> dict[str, Any] | None:
            body: dict[str, Any] = (
                await http.get(f"{direct.http}/realtime/status/", headers=key)
            ).json()
            stats = body["global_stats"]
            done = stats["total_connections"] == 2 and stats["portfolio_subscriptions"] == 1
            return body if done else None

        body = await eventually(status)
    assert body is not None, "status never showed both clients"
    stats = body["global_stats"]
    assert stats["total_connections"] == 2
    assert stats["authenticated_users"] == 1
    assert stats["asset_subscriptions"] == 3  # quotes.AAPL, quotes.MSFT, assets.AAPL
    assert stats["portfolio_subscriptions"] == 1
    assert stats["fronts"] == {
        "market_feed": {
            "path": "/ws/market/feed",
            "connections": 1,
            "authenticated_connections": 0,
            "subscriptions": 2,
        },
        "realtime": {
            "path": "/ws/realtime/",
            "connections": 1,
            "authenticated_connections": 1,
            "subscriptions": 2,  # the asset and the portfolio
        },
        "stomp": {
            "path": "/stomp/websocket",
            "connections": 0,
            "authenticated_connections": 0,
            "subscriptions": 0,
        },
        "socketio": {
            "path": "/socket.io/",
            "connections": 0,
            "authenticated_connections": 0,
            "subscriptions": 0,
        },
        "monitoring": {
            "path": "/ws/{alerts,metrics,pipeline,telemetry,dlq}",
            "connections": 0,
            "authenticated_connections": 0,
            "subscriptions": 0,
        },
    }
    assert body["user_stats"] == {
        "user_id": dora.user_id,
        "connection_count": 1,
        "subscriptions": {"portfolios": [dora.portfolios["Main"]], "assets": ["AAPL"]},
    }


# -- the per-address cap on anonymous connections


async def test_anonymous_connections_are_capped_per_address_on_every_front_together(
    direct: Server, accounts: tuple[str, Account]
) -> None:
    _, dora = accounts
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(websockets.connect(feed(direct)))
        second = await stack.enter_async_context(websockets.connect(realtime(direct)))
        await second.recv()  # connection
        for front in (feed, realtime):
            status, body, _ = await http_refusal(front(direct))
            assert (status, body["reason"], body["close_code"]) == (429, "address_limit", 3001)
            assert body["reconnect"] is True
            assert f"at most {CAP}" in body["error"]
            code, reason, messages = await close_refusal(front(direct), ORIGIN)
            assert (code, messages) == (3001, [])
            assert "anonymous connections" in reason
        # an authenticated client from the same address has a cap of its own
        key = {"X-API-Key": dora.api_key}
        async with websockets.connect(feed(direct), additional_headers=key) as mine:
            await alive(mine, feed)
        # the refusals disturbed nobody
        await alive(first, feed)
        await alive(second, realtime)
        await first.close()

        async def admitted() -> bool:
            try:
                async with websockets.connect(feed(direct)) as again:
                    await alive(again, feed)
                    return True
            except websockets.InvalidStatus:
                return False

        assert await eventually(admitted), "the slot of a closed connection never came back"


async def test_forwarding_headers_from_an_untrusted_peer_change_nothing(direct: Server) -> None:
    spoof = {"X-Forwarded-For": "203.0.113.1", "Forwarded": "for=203.0.113.2;proto=https"}
    async with AsyncExitStack() as stack:
        for _ in range(CAP):
            await stack.enter_async_context(websockets.connect(feed(direct)))
        status, _, _ = await http_refusal(feed(direct), additional_headers=spoof)
        assert status == 429  # still counted as 127.0.0.1
    async with httpx.AsyncClient(timeout=5) as http:
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
        info = (await http.get(f"{direct.http}/realtime/websocket-info/", headers=headers)).json()
    assert info["websocket_url"] == f"ws://127.0.0.1:{direct.port}/ws/realtime/"
    assert info["connection_info"]["protocol"] == "ws"
    assert "forwarding headers from 127.0.0.1 ignored" in direct.log()


async def test_a_trusted_proxy_names_the_client_for_the_cap_and_the_logs(proxied: Server) -> None:
    def behind(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": f"198.51.100.77, {address}"}

    async with AsyncExitStack() as stack:
        for _ in range(CAP):
            await stack.enter_async_context(
                websockets.connect(feed(proxied), additional_headers=behind("203.0.113.1"))
            )
        status, body, _ = await http_refusal(
            feed(proxied), additional_headers=behind("203.0.113.1")
        )
        assert (status, body["reason"]) == (429, "address_limit")
        # another client behind the same proxy, and the proxy's own address, are others
        other = {"X-Forwarded-For": "2001:db8::5", "Forwarded": "for=203.0.113.1"}
        for headers in (behind("203.0.113.2"), other, {}):
            async with websockets.connect(feed(proxied), additional_headers=headers) as ws:
                await alive(ws, feed)
    log = proxied.log()
    assert "client=203.0.113.1" in log
    assert "client=2001:db8::5" in log
    assert "198.51.100.77" not in log  # what the client claimed about itself


async def test_websocket_info_advertises_wss_behind_a_trusted_tls_proxy(proxied: Server) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        url = f"{proxied.http}/realtime/websocket-info/"
        tls = {
            "X-Forwarded-For": "203.0.113.5",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "markets.example.com",
        }
        info = (await http.get(url, headers=tls)).json()
        # the other family (Forwarded, passed through by this X-Forwarded proxy) is not read
        rfc = {"Forwarded": "for=203.0.113.5;proto=https;host=evil.example"}
        info_rfc = (await http.get(url, headers=rfc)).json()
        plain = (await http.get(url)).json()
    assert info["websocket_url"] == "wss://markets.example.com/ws/realtime/"
    assert info["connection_info"]["protocol"] == "wss"
    assert info["connection_info"]["host"] == "markets.example.com"
    assert plain["websocket_url"] == f"ws://127.0.0.1:{proxied.port}/ws/realtime/"
    assert info_rfc["websocket_url"] == plain["websocket_url"]


async def test_a_forwarded_proxy_is_read_from_forwarded_only(proxied_rfc: Server) -> None:
    url = f"{proxied_rfc.http}/realtime/websocket-info/"
    async with httpx.AsyncClient(timeout=5) as http:
        rfc = {"Forwarded": "for=203.0.113.5;proto=https;host=markets.example.com"}
        info = (await http.get(url, headers=rfc)).json()
        forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
        mixed = (await http.get(url, headers={"Forwarded": "for=203.0.113.5", **forged})).json()
    assert info["websocket_url"] == "wss://markets.example.com/ws/realtime/"
    assert mixed["websocket_url"] == f"ws://127.0.0.1:{proxied_rfc.port}/ws/realtime/"


# -- malformed and ambiguous credentials: one rule on HTTP and WebSocket


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"Authorization": "Basic ZG9yYTpwdw=="}, "Malformed Authorization header"),
        ({"Authorization": "{key}"}, "Malformed Authorization header"),
        ({"Authorization": "Bearer {key}"}, "Ambiguous credentials"),
    ],
    ids=["basic", "no-scheme", "two-credentials"],
)
async def test_malformed_or_ambiguous_credentials_are_401_on_http_and_websocket(
    direct: Server, accounts: tuple[str, Account], extra: dict[str, str], message: str
) -> None:
    _, dora = accounts
    headers = {"X-API-Key": dora.api_key}
    headers |= {name: value.format(key=dora.api_key) for name, value in extra.items()}
    async with httpx.AsyncClient(timeout=5) as http:
        for path in ("/api/portfolios", "/realtime/status/"):
            response = await http.get(f"{direct.http}{path}", headers=headers)
            assert response.status_code == 401, path
            assert message in response.text, path
        good = await http.get(f"{direct.http}/api/portfolios", headers={"X-API-Key": dora.api_key})
        assert good.status_code == 200
    for front in (feed, realtime):
        status, body, _ = await http_refusal(front(direct), additional_headers=headers)
        assert (status, body["close_code"]) == (401, 3500)
        assert body["error"].startswith(message)


# -- key use is recorded, off the hot path


async def test_keys_list_shows_when_the_gateway_last_used_a_key(
    direct: Server, accounts: tuple[str, Account]
) -> None:
    url, dora = accounts
    settings = Settings(database_url=url)
    async with websockets.connect(
        feed(direct), additional_headers={"X-API-Key": dora.api_key}
    ) as ws:
        await alive(ws, feed)

    async def used() -> ApiKey | None:
        (key,) = await list_keys(settings, "dora")
        return key if key.last_used_at is not None else None

    key = await eventually(used)
    assert key is not None, "the key's use was never recorded"
    assert key.last_used_at is not None
    assert key.created_at <= key.last_used_at <= datetime.now(UTC)
    out = io.StringIO()
    assert await asyncio.to_thread(run_keys, settings, "list", user="dora", out=out) == 0
    row = out.getvalue().splitlines()[1]
    assert "never" not in row
    assert key.last_used_at.strftime("%Y-%m-%dT%H:%M:%SZ") in row


@pytest.mark.parametrize("host", ["user@evil.example", "evil.example/x", "a b", "h" * 400])
async def test_websocket_info_never_reflects_a_host_that_is_not_a_plain_name(
    direct: Server, proxied: Server, host: str
) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        own = (
            await http.get(f"{direct.http}/realtime/websocket-info/", headers={"Host": host})
        ).json()
        forwarded = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Host": host}
        behind = (
            await http.get(f"{proxied.http}/realtime/websocket-info/", headers=forwarded)
        ).json()
    assert own["websocket_url"] == f"ws://127.0.0.1:{direct.port}/ws/realtime/"  # configured
    assert behind["websocket_url"] == f"ws://127.0.0.1:{proxied.port}/ws/realtime/"
