"""The public leaderboard over real sockets (docs/leaderboard.md): ``/ws/updates``,
``/ws/top``, ``/ws/around`` and the polling routes, on a gateway in this test's event
loop (``build_app`` under uvicorn, the gateway's own protocol classes).

Prices are published in-process through the node's publisher, as a provider's batch
is; the portfolio service revalues and publishes the portfolio values every
``update_interval_s``, and the leaderboard ranks them and publishes every
``leaderboard_window_ms``. The clients switch on ``type`` as the seed's
``handleMessage`` does (``BoardClient``). Waits are on conditions with generous
timeouts, never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from support.accounts import Account, seed
from support.inloop import Gateway, running_gateway
from support.wsclient import closed_code, recv_json
from tickcast.demo import LEADERBOARD_PLAYERS, seed_demo
from tickcast.model.market import Quote
from tickcast.storage.engine import make_engine
from tickcast.storage.repositories import Portfolios

WAIT_S = 15.0
FAST = {"update_interval_s": 0.05, "leaderboard_window_ms": 50}


def quote(gateway: Gateway, symbol: str, price: float) -> None:
    """A provider's quote: the portfolio service revalues its holders."""
    gateway.node.publisher.publish(
        [Quote(symbol, price, price, 1.0, 1.0, price, 0.0, time.time(), "test")]
    )


class BoardClient:
    """A leaderboard client as the seed's ``handleMessage`` is: it switches on
    ``type`` and keeps the entries by portfolio id."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.entries: dict[int, dict[str, Any]] = {}
        self.types: list[str] = []
        self.error: str | None = None

    def handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        self.types.append(kind)
        data = message["data"]
        whole = kind in ("snapshot", "top-performers") or isinstance(data, list)
        if whole:  # (an around window's update is the whole window too)
            self.entries = {e["portfolio_id"]: e for e in data}
        elif kind == "update":
            for pid in data["left"]:
                self.entries.pop(pid, None)
            for group in ("moved", "entered", "updated"):
                for e in data[group]:
                    self.entries[e["portfolio_id"]] = e
        elif kind == "error":
            self.error = data["message"]
        else:
            raise AssertionError(f"unknown message type {kind!r}")

    @property
    def board(self) -> list[dict[str, Any]]:
        return sorted(self.entries.values(), key=lambda e: e["rank"])

    def ranks(self) -> dict[str, int]:
        return {e["portfolio_name"]: e["rank"] for e in self.entries.values()}

    async def next(self) -> dict[str, Any]:
        message: dict[str, Any] = await recv_json(self.ws, WAIT_S)
        self.handle(message)
        return message

    async def until(self, predicate: Callable[[BoardClient], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not predicate(self):
            assert time.monotonic() < deadline, f"not reached: {self.board}"
            await self.next()


async def make_public(database_url: str, *portfolio_ids: int) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            for pid in portfolio_ids:
                await Portfolios(conn).set_public(pid, True)
    finally:
        await engine.dispose()


def trades(symbol: str) -> dict[str, list[tuple[str, str, str, str]]]:
    return {symbol: [(symbol, "buy", "10", "100")]}


@contextlib.asynccontextmanager
async def board_gateway(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Gateway, dict[str, Account]]]:
    """alice, bob and carol have a public portfolio each (ACME, BETA, GAMA: 1,000
    invested, worth 1,000), dave a private one (ACME)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db"
    accounts = await seed(
        url,
        {
            "alice": trades("ACME"),
            "bob": trades("BETA"),
            "carol": trades("GAMA"),
            "dave": {"Dave's": [("ACME", "buy", "10", "100")]},
        },
    )
    await make_public(
        url,
        *(
            accounts[n].portfolios[s]
            for n, s in (("alice", "ACME"), ("bob", "BETA"), ("carol", "GAMA"))
        ),
    )
    async with running_gateway(tmp_path, **{**FAST, **overrides}) as gateway:
        yield gateway, accounts


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[tuple[Gateway, dict[str, Account]]]:
    async with board_gateway(tmp_path) as running:
        yield running


def ws_url(gateway: Gateway, path: str) -> str:
    return f"ws://127.0.0.1:{gateway.port}{path}"


async def poll(gateway: Gateway, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{gateway.http}/api{path}", **kwargs)


# -- the streams


async def test_updates_snapshot_at_once_then_rank_changes_and_the_same_over_http(
    board: tuple[Gateway, dict[str, Account]],
) -> None:
    gateway, accounts = board
    async with connect(ws_url(gateway, "/ws/updates")) as ws:
        client = BoardClient(ws)
        first = await client.next()
        assert first["type"] == "snapshot"
        assert client.ranks() == {"ACME": 1, "BETA": 2, "GAMA": 3}  # ties: by id
        entry = client.board[0]
        assert entry == {
            "rank": 1,
            "portfolio_id": accounts["alice"].portfolios["ACME"],
            "portfolio_name": "ACME",
            "owner_name": "alice",
            "return_percent": 0.0,
            "total_value": 1000.0,
            "daily_change": 0.0,
            "daily_change_percent": 0.0,
            "previous_rank": 1,  # ranked when the gateway started: unmoved, not new
        }
        assert "Dave's" not in {e["portfolio_name"] for e in client.board}  # private
        quote(gateway, "GAMA", 130.0)  # carol +30 %: from 3rd to 1st
        quote(gateway, "BETA", 90.0)  # bob -10 %
        await client.until(lambda c: c.ranks() == {"GAMA": 1, "ACME": 2, "BETA": 3})
        assert "update" in client.types
        gama = next(e for e in client.board if e["portfolio_name"] == "GAMA")
        assert (gama["return_percent"], gama["total_value"]) == (30.0, 1300.0)
        assert gama["previous_rank"] == 3
        polled = await poll(gateway, "/leaderboard")
        assert polled.status_code == 200
        assert polled.json() == {"type": "snapshot", "data": client.board}


async def test_top_n_on_connect_and_only_when_the_top_changes(
    board: tuple[Gateway, dict[str, Account]],
) -> None:
    gateway, _ = board
    async with connect(ws_url(gateway, "/ws/top?n=2")) as ws:
        client = BoardClient(ws)
        assert (await client.next())["type"] == "top-performers"
        assert client.ranks() == {"ACME": 1, "BETA": 2}
        quote(gateway, "GAMA", 95.0)  # 3rd stays 3rd: the top 2 is as it was, no message
        quote(gateway, "BETA", 120.0)  # bob to the top: the next message is this one
        message = await client.next()
        assert message["type"] == "top-performers"
        assert client.ranks() == {"BETA": 1, "ACME": 2}
        polled = await poll(gateway, "/leaderboard/top", params={"n": 2})
        assert polled.json() == message


async def test_around_a_portfolio_snapshot_then_updates_and_the_same_over_http(
    board: tuple[Gateway, dict[str, Account]],
) -> None:
    gateway, accounts = board
    bob = accounts["bob"].portfolios["BETA"]
    async with connect(ws_url(gateway, f"/ws/around?portfolio_id={bob}&window=1")) as ws:
        client = BoardClient(ws)
        first = await client.next()
        assert first["type"] == "snapshot"
        assert client.ranks() == {"ACME": 1, "BETA": 2, "GAMA": 3}
        polled = await poll(gateway, f"/leaderboard/around/{bob}", params={"window": 1})
        assert polled.json() == first
        quote(gateway, "BETA", 150.0)
        await client.until(lambda c: c.ranks().get("BETA") == 1)
        assert client.types[-1] == "update"
        assert client.ranks() == {"BETA": 1, "ACME": 2}  # the window at the top: cut


async def test_opt_in_and_out_take_effect_at_once(
    board: tuple[Gateway, dict[str, Account]],
) -> None:
    gateway, accounts = board
    dave = accounts["dave"]
    pid = dave.portfolios["Dave's"]
    key = {"X-API-Key": dave.api_key, "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=f"{gateway.http}/api", timeout=10) as http:
        before = await http.get(f"/leaderboard/around/{pid}")
        assert before.status_code == 404  # private: as unknown
        async with connect(ws_url(gateway, "/ws/updates")) as ws:
            client = BoardClient(ws)
            await client.next()
            answer = await http.patch(f"/portfolios/{pid}", json={"public": True}, headers=key)
            assert answer.status_code == 200
            assert answer.json()["public"] is True
            await client.until(lambda c: pid in c.entries)
            assert client.entries[pid]["owner_name"] == "dave"
            assert client.entries[pid]["previous_rank"] is None
            async with connect(ws_url(gateway, f"/ws/around?portfolio_id={pid}&window=0")) as a:
                around = BoardClient(a)
                await around.next()
                assert list(around.entries) == [pid]
                answer = await http.patch(f"/portfolios/{pid}", json={"public": False}, headers=key)
                assert answer.json()["public"] is False
                await client.until(lambda c: pid not in c.entries)
                await around.until(lambda c: not c.entries)  # it left: an empty window
        # someone else's portfolio: 404, and a body that is not a flag: 422
        alice_key = {"X-API-Key": accounts["alice"].api_key}
        other = await http.patch(f"/portfolios/{pid}", json={"public": True}, headers=alice_key)
        assert other.status_code == 404
        bad = await http.patch(f"/portfolios/{pid}", json={"public": "yes"}, headers=key)
        assert bad.status_code == 422
        created = await http.post(
            "/portfolios", json={"name": "Shown", "public": True}, headers=key
        )
        assert created.status_code == 201
        shown = await http.get("/leaderboard")
        assert "Shown" in {e["portfolio_name"] for e in shown.json()["data"]}


# -- refusals and abuse


async def refused(url: str) -> tuple[dict[str, Any], int | None]:
    async with connect(url) as ws:
        message = await recv_json(ws, WAIT_S)
        return message, await closed_code(ws, WAIT_S)


async def test_unknown_private_and_bad_requests_get_an_error_and_the_close(
    board: tuple[Gateway, dict[str, Account]],
) -> None:
    gateway, accounts = board
    dave = accounts["dave"].portfolios["Dave's"]
    async with connect(ws_url(gateway, "/ws/top?n=3")) as bystander:
        watcher = BoardClient(bystander)
        await watcher.next()
        for path in (f"/ws/around?portfolio_id={dave}", "/ws/around?portfolio_id=999999"):
            message, code = await refused(ws_url(gateway, path))
            assert message["type"] == "error"
            assert "not on the leaderboard" in message["data"]["message"]
            assert code == 3505
        for path in (
            "/ws/top?n=0",
            "/ws/top?n=101",
            "/ws/top?n=ten",
            "/ws/top?n=1&n=2",
            "/ws/around",
            "/ws/around?portfolio_id=1&window=51",
        ):
            message, code = await refused(ws_url(gateway, path))
            assert message["type"] == "error", path
            assert code == 3506, path
        for path, params in (
            ("/leaderboard/top", {"n": "0"}),
            ("/leaderboard/top", {"n": "ten"}),
            ("/leaderboard/around/1", {"window": "-1"}),
        ):
            assert (await poll(gateway, path, params=params)).status_code == 422
        assert (await poll(gateway, f"/leaderboard/around/{dave}")).status_code == 404
        quote(gateway, "GAMA", 200.0)  # the bystander is fine
        await watcher.until(lambda c: c.ranks().get("GAMA") == 1)


async def test_a_bad_parameter_is_refused_with_the_same_message_by_poll_and_socket(
    board: tuple[Gateway, dict[str, Account]],
) -> None:
    gateway, _ = board
    for socket, route in (
        ("/ws/top?n=01", "/leaderboard/top?n=01"),
        ("/ws/top?n=1&n=2", "/leaderboard/top?n=1&n=2"),
        ("/ws/around?portfolio_id=1&window=51", "/leaderboard/around/1?window=51"),
        ("/ws/around?portfolio_id=%2B1", "/leaderboard/around/%2B1"),
    ):
        message, code = await refused(ws_url(gateway, socket))
        answer = await poll(gateway, route)
        assert (code, answer.status_code) == (3506, 422), socket
        [error] = answer.json()["detail"]
        assert error["msg"] == message["data"]["message"], socket


async def test_a_client_flooding_messages_is_closed_and_others_are_fine(tmp_path: Path) -> None:
    async with (
        board_gateway(tmp_path, rate_limit_per_s=5, rate_limit_burst=5) as (gateway, _),
        connect(ws_url(gateway, "/ws/updates")) as bystander,
        connect(ws_url(gateway, "/ws/top?n=3")) as flooder,
    ):
        watcher = BoardClient(bystander)
        await watcher.next()
        await recv_json(flooder, WAIT_S)
        with contextlib.suppress(ConnectionClosed):
            for n in range(200):
                await flooder.send(f"spam {n}")
        assert await closed_code(flooder, WAIT_S) == 3002
        quote(gateway, "BETA", 300.0)
        await watcher.until(lambda c: c.ranks().get("BETA") == 1)


async def test_connections_over_the_cap_are_refused_and_the_others_go_on(tmp_path: Path) -> None:
    async with (
        board_gateway(tmp_path, max_anonymous_connections_per_address=2) as (gateway, _),
        connect(ws_url(gateway, "/ws/updates")) as one,
        connect(ws_url(gateway, "/ws/top")) as two,
    ):
        watcher = BoardClient(one)
        await watcher.next()
        await recv_json(two, WAIT_S)
        for _ in range(5):
            with pytest.raises(InvalidStatus) as refusal:
                async with connect(ws_url(gateway, "/ws/top")):
                    pass
            assert refusal.value.response.status_code == 429
        quote(gateway, "GAMA", 250.0)
        await watcher.until(lambda c: c.ranks().get("GAMA") == 1)


async def test_sign_in_needed_when_the_leaderboard_is_not_public(tmp_path: Path) -> None:
    async with board_gateway(tmp_path, leaderboard_public=False) as (gateway, accounts):
        message, code = await refused(ws_url(gateway, "/ws/updates"))
        assert message["type"] == "error"
        assert code == 3503
        assert (await poll(gateway, "/leaderboard")).status_code == 401
        key = accounts["bob"].api_key
        async with connect(ws_url(gateway, f"/ws/top?n=1&token={key}")) as ws:
            assert (await recv_json(ws, WAIT_S))["type"] == "top-performers"
        polled = await poll(gateway, "/leaderboard", headers={"X-API-Key": key})
        assert polled.status_code == 200


async def test_polling_answers_304_for_the_tag_it_gave(
    board: tuple[Gateway, dict[str, Account]],
) -> None:
    gateway, _ = board
    first = await poll(gateway, "/leaderboard/top", params={"n": 3})
    tag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = await poll(gateway, "/leaderboard/top", params={"n": 3}, headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    quote(gateway, "ACME", 180.0)  # ACME's holders: alice (public) and dave (private)
    deadline = time.monotonic() + WAIT_S
    while True:
        changed = await poll(
            gateway, "/leaderboard/top", params={"n": 3}, headers={"If-None-Match": tag}
        )
        if changed.status_code == 200:
            break
        assert time.monotonic() < deadline, "the board never changed"
        await asyncio.sleep(0.05)
    assert changed.headers["etag"] != tag
    assert changed.json()["data"][0]["return_percent"] == 80.0
    schema = (await poll(gateway, "/openapi.json")).json()
    for path in ("/leaderboard", "/leaderboard/top", "/leaderboard/around/{portfolio_id}"):
        assert path in schema["paths"]


async def test_the_demo_seeds_a_live_board_of_distinct_players(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db"
    engine = make_engine(url)
    try:
        first = await seed_demo(engine)
        again = await seed_demo(engine)  # idempotent: nobody seeded twice
    finally:
        await engine.dispose()
    assert first.players == LEADERBOARD_PLAYERS
    assert again.players == 0
    async with running_gateway(tmp_path, **FAST) as gateway:
        board = (await poll(gateway, "/leaderboard")).json()["data"]
        assert len(board) == LEADERBOARD_PLAYERS
        assert len({e["owner_name"] for e in board}) == LEADERBOARD_PLAYERS
        assert "demo" not in {e["owner_name"] for e in board}  # its own stay private
        assert [e["rank"] for e in board] == list(range(1, LEADERBOARD_PLAYERS + 1))
        returns = [e["return_percent"] for e in board]
        assert returns == sorted(returns, reverse=True)
        assert len(set(returns)) > LEADERBOARD_PLAYERS // 2  # spread out, not a tie
