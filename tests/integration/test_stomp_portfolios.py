"""Front 3's per-user destinations against a real ``tickcast serve`` (docs/stomp.md):
``/topic/position-update`` and ``/topic/unrealized-pnl`` read with stomp.py's
``WSConnection`` by three users: each sees their own positions only, a transaction
through the HTTP API reaches its owner as a position object, prices moving reach them as
arrays of unrealized P&L, a portfolio created after the subscription is covered, and a
user without portfolios gets an empty array. Waits are on conditions, never sleeps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from stomp.utils import Frame

from support.accounts import Account, seed
from support.server import Server, start_server
from support.stompclient import Events, messages, stomp_client

POSITION_KEYS = ["id", "holdings", "totalInvested", "realizedPnl", "createdAt", "updatedAt"]
PNL_KEYS = ["symbol", "overallUnrealised_Pnl", "portfolio_id"]

World = tuple[Server, dict[str, Account]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("stomp-portfolios")
    url = f"sqlite+aiosqlite:///{tmp}/p.db"
    accounts = asyncio.run(
        seed(
            url,
            {
                "alice": {"Growth": [("AAPL", "buy", "10", "100"), ("MSFT", "buy", "2", "400")]},
                "bob": {"Other": [("AAPL", "buy", "1", "100")]},
                "carol": {},
                "erin": {},
                "frank": {"Main": [("AAPL", "buy", "10", "100")]},
            },
        )
    )
    server = start_server(
        tmp,
        database_url=url,
        rate=500,
        update_interval_s=0.2,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
    )
    yield server, accounts
    server.stop()


def body(frame: Frame) -> Any:
    return json.loads(frame.body)


def connect_as(server: Server, account: Account) -> tuple[Any, Events]:
    conn, events = stomp_client(server)
    conn.connect(username=account.username, passcode=account.api_key, wait=True)
    return conn, events


def first_message(events: Events, subscription: str) -> Frame:
    seen = events.until(lambda k, f: k == "message" and f.headers["subscription"] == subscription)
    return messages(seen)[-1]


def api(server: Server, account: Account, method: str, path: str, **json_: Any) -> Any:
    response = httpx.request(
        method,
        f"{server.http}/api{path}",
        headers={"X-API-Key": account.api_key},
        json=json_,
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_a_subscription_gets_the_users_current_positions(world: World) -> None:
    server, accounts = world
    alice, bob, carol = accounts["alice"], accounts["bob"], accounts["carol"]
    growth, other = alice.portfolios["Growth"], bob.portfolios["Other"]
    found: dict[str, Any] = {}
    for account in (alice, bob, carol):
        conn, events = connect_as(server, account)
        try:
            conn.subscribe("/topic/position-update", id="pos")
            message = first_message(events, "pos")
            assert message.headers["destination"] == "/topic/position-update"
            assert message.headers["content-type"] == "application/json"
            found[account.username] = body(message)
        finally:
            conn.disconnect()
    # several positions: an array, by portfolio then symbol, in the seed's shape
    aapl, msft = found["alice"]
    assert list(aapl) == POSITION_KEYS
    assert aapl["id"] == {"portfolioId": growth, "symbol": "AAPL"}
    assert (aapl["holdings"], aapl["totalInvested"], aapl["realizedPnl"]) == (10, 1000, 0)
    assert aapl["createdAt"].endswith("Z")
    assert aapl["updatedAt"].endswith("Z")
    assert msft["id"] == {"portfolioId": growth, "symbol": "MSFT"}
    assert (msft["holdings"], msft["totalInvested"]) == (2, 800)
    # one position: the object itself; none: an empty array
    assert found["bob"]["id"] == {"portfolioId": other, "symbol": "AAPL"}
    assert found["carol"] == []


def test_a_transaction_through_the_api_reaches_its_owner_only(world: World) -> None:
    server, accounts = world
    frank, bob = accounts["frank"], accounts["bob"]
    main = frank.portfolios["Main"]
    a_conn, a_events = connect_as(server, frank)
    b_conn, b_events = connect_as(server, bob)
    try:
        a_conn.subscribe("/topic/position-update", id="mine")
        b_conn.subscribe("/topic/position-update", id="mine")
        first_message(a_events, "mine")  # the snapshots
        first_message(b_events, "mine")
        api(
            server,
            frank,
            "POST",
            f"/portfolios/{main}/transactions",
            symbol="AAPL",
            side="sell",
            quantity="4",
            price="150",
        )
        update = body(first_message(a_events, "mine"))
        assert list(update) == POSITION_KEYS  # one position changed: one object
        assert update["id"] == {"portfolioId": main, "symbol": "AAPL"}
        assert (update["holdings"], update["totalInvested"], update["realizedPnl"]) == (
            6,
            600,
            200,
        )
        # bob: nothing of frank's, ever (a receipt queued after frank's update reached
        # frank comes after anything queued for bob meanwhile)
        b_conn.subscribe("/topic/status.FEED", id="feed", headers={"receipt": "done"})
        seen = messages(b_events.receipt("done"))
        assert [f for f in seen if f.headers["subscription"] == "mine"] == []
    finally:
        a_conn.disconnect()
        b_conn.disconnect()


def test_a_portfolio_created_after_subscribing_is_covered(world: World) -> None:
    server, accounts = world
    erin = accounts["erin"]
    conn, events = connect_as(server, erin)
    try:
        conn.subscribe("/topic/position-update", id="p")
        first_message(events, "p")
        created = api(server, erin, "POST", "/portfolios", name="Later")
        later = created["id"]
        api(
            server,
            erin,
            "POST",
            f"/portfolios/{later}/transactions",
            symbol="MSFT",
            side="buy",
            quantity="1",
            price="300",
        )
        update = body(first_message(events, "p"))
        assert update["id"] == {"portfolioId": later, "symbol": "MSFT"}
        assert update["holdings"] == 1
    finally:
        conn.disconnect()


def test_prices_moving_produce_arrays_of_unrealized_pnl_for_the_owner(world: World) -> None:
    server, accounts = world
    alice, bob = accounts["alice"], accounts["bob"]
    mine = set(alice.portfolios.values())
    conn, events = connect_as(server, alice)
    b_conn, b_events = connect_as(server, bob)
    try:
        conn.subscribe("/topic/unrealized-pnl", id="pnl")
        b_conn.subscribe("/topic/unrealized-pnl", id="pnl")
        snapshot = body(first_message(events, "pnl"))
        assert isinstance(snapshot, list)
        assert {(i["portfolio_id"], i["symbol"]) for i in snapshot} >= {
            (alice.portfolios["Growth"], "AAPL"),
            (alice.portfolios["Growth"], "MSFT"),
        }
        # then, as prices move: arrays of the positions that changed
        updates: list[list[dict[str, Any]]] = []

        def moved(kind: str, frame: Frame | None) -> bool:
            if kind == "message" and frame is not None:
                updates.append(body(frame))
            return len(updates) >= 3

        events.until(moved)
        for batch in updates:
            assert isinstance(batch, list)
            assert batch
            for item in batch:
                assert list(item) == PNL_KEYS
                assert item["portfolio_id"] in mine
                assert isinstance(item["overallUnrealised_Pnl"], int | float)
            pairs = [(i["portfolio_id"], i["symbol"]) for i in batch]
            assert len(pairs) == len(set(pairs))  # conflated: once per position
        seen = messages(b_events.until(lambda k, _: k == "message"))
        for frame in seen:
            assert all(i["portfolio_id"] not in mine for i in body(frame))
    finally:
        conn.disconnect()
        b_conn.disconnect()


def test_anonymous_subscribers_get_an_error_then_a_close(world: World) -> None:
    server, _ = world
    conn, events = stomp_client(server)
    conn.connect(wait=True)
    conn.subscribe("/topic/position-update", id="p")
    seen = events.until(lambda k, _: k == "error")
    error = seen[-1][1]
    assert error.headers["message"] == "Authentication required to read /topic/position-update"
    events.until(lambda k, _: k == "disconnected")
