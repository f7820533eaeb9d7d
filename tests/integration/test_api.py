"""The portfolio HTTP API at /api, on the real app built in-process.

The app runs inside its own lifespan (the node starts, migrates and loads portfolios);
requests go through httpx's ASGI transport. Users, API keys and assets are written
straight into the database before the start.

Nothing here depends on when it runs or on how the machine schedules it: the node's
provider serves AAPL and MSFT but delivers nothing by itself (every price is one the
test ingests, as a provider would deliver it), and the portfolio service's clock is the
test's (``Api.clock``), which also stamps those prices. So every value is exact, and a
day turns only when a test says so. (With the real simulator, whether MSFT had a price
when ``GET /assets`` ran depended on whether the node's start took longer than one
simulator interval: see issue 8.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.conftest import PG_HOST, PG_PORT, PG_USER, _admin_connection
from support.silent import Silent
from tickcast.app import build_app
from tickcast.auth.credentials import new_api_key
from tickcast.config.settings import Settings
from tickcast.model.market import Quote
from tickcast.node import Node
from tickcast.portfolio.service import PortfolioService
from tickcast.storage import migrate
from tickcast.storage.engine import make_engine
from tickcast.storage.records import Asset, AssetKind
from tickcast.storage.repositories import ApiKeys, Assets, Users

SECRET = "an-integration-test-secret-of-at-least-32-bytes"
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
DAY_S = 86_400.0


@dataclass
class Clock:
    """The portfolio service's wall clock (epoch seconds), moved only by the test."""

    now: float = field(default_factory=lambda: T0.timestamp())

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    """A running app, a client for it, and who is who."""

    client: httpx.AsyncClient
    node: Node
    portfolios: PortfolioService
    alice_key: str
    bob_key: str
    revoked_key: str
    clock: Clock

    def alice(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.alice_key}"}

    def bob(self) -> dict[str, str]:
        return {"X-API-Key": self.bob_key}

    async def portfolio(self, name: str = "main", headers: dict[str, str] | None = None) -> int:
        r = await self.client.post(
            "/api/portfolios", json={"name": name}, headers=headers or self.alice()
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def trade(
        self, pid: int, side: str, quantity: str, price: str, symbol: str = "ACME"
    ) -> httpx.Response:
        body = {"symbol": symbol, "side": side, "quantity": quantity, "price": price}
        return await self.client.post(
            f"/api/portfolios/{pid}/transactions", json=body, headers=self.alice()
        )

    async def cash(self, pid: int, kind: str, amount: Any) -> httpx.Response:
        return await self.client.post(
            f"/api/portfolios/{pid}/{kind}", json={"amount": amount}, headers=self.alice()
        )

    async def summary(self, pid: int) -> dict[str, Any]:
        r = await self.client.get(f"/api/portfolios/{pid}", headers=self.alice())
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def quote(self, symbol: str, price: float) -> None:
        """A market price at the test's clock, as a provider would deliver it."""
        now = self.clock.now
        self.node.ingest([Quote(symbol, price, price, 1, 1, price, 1000, now, "test")])


async def _seed(url: str) -> tuple[str, str, str]:
    """Two users with a key each, a revoked key, and the assets the tests trade."""
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            keys = []
            for username, revoked in (("alice", False), ("bob", False), ("carol", True)):
                user = await Users(conn).create(username, at=T0)
                key = new_api_key()
                stored = await ApiKeys(conn).insert(
                    user.id, prefix=key.prefix, secret_hash=key.secret_hash, name="test", at=T0
                )
                if revoked:
                    await ApiKeys(conn).revoke(stored.id)
                keys.append(key.token)
            await Assets(conn).upsert_many(
                [
                    Asset(
                        symbol="ACME",
                        name="Acme Corp.",
                        kind=AssetKind.STOCK,
                        last_price=Decimal("125"),
                        previous_close=Decimal("125"),
                        updated_at=T0,
                    ),
                    Asset(
                        symbol="INIT",
                        name="Initech",
                        kind=AssetKind.STOCK,
                        last_price=Decimal("40.25"),
                        previous_close=Decimal("40"),
                        updated_at=T0,
                    ),
                ]
            )
    finally:
        await engine.dispose()
    return keys[0], keys[1], keys[2]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[Any]:
    """Start the app on a database URL; stops everything it started at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(url: str | None = None, **settings: Any) -> Api:
            url = url or f"sqlite+aiosqlite:///{tmp_path}/t.db"
            alice, bob, carol = await _seed(url)
            config = Settings(database_url=url, jwt_secret=SECRET, **settings)
            node = Node(config, providers=[Silent()])
            app = build_app(config, node)
            clock = Clock()
            portfolios = app.state.portfolios
            portfolios.clock = clock
            await stack.enter_async_context(app.app.router.lifespan_context(app.app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
            )
            return Api(client, node, portfolios, alice, bob, carol, clock)

        yield start


@pytest.fixture
async def api(make_api: Any) -> Api:
    return await make_api()


# -- authentication


async def test_me_with_an_api_key_in_each_header(api: Api) -> None:
    r = await api.client.get("/api/me", headers=api.alice())
    assert r.status_code == 200
    assert r.json()["username"] == "alice"
    r = await api.client.get("/api/me", headers=api.bob())
    assert r.json()["username"] == "bob"
    assert isinstance(r.json()["user_id"], int)


async def test_me_without_credentials_is_401_with_a_bearer_challenge(api: Api) -> None:
    r = await api.client.get("/api/me")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="tickcast"'
    assert "Authentication required" in r.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer tc_AAAAAAAAAAAA_" + "x" * 43},
        {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.bad"},
        {"X-API-Key": "not a key"},
        {"Cookie": "tickcast_token=garbage"},
    ],
    ids=["unknown-key", "bad-jwt", "malformed-header", "bad-cookie"],
)
async def test_bad_credentials_are_401_invalid_token(api: Api, headers: dict[str, str]) -> None:
    r = await api.client.get("/api/me", headers=headers)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert r.json()["detail"]


async def test_a_revoked_key_is_401(api: Api) -> None:
    r = await api.client.get("/api/me", headers={"X-API-Key": api.revoked_key})
    assert r.status_code == 401
    assert r.json()["detail"] == "Invalid API key"


async def test_token_exchange_gives_a_jwt_that_authenticates(api: Api) -> None:
    r = await api.client.post("/api/auth/token", headers=api.bob())
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    jwt = body["access_token"]
    assert jwt.startswith("eyJ")
    me = await api.client.get("/api/me", headers={"Authorization": f"Bearer {jwt}"})
    assert me.json()["username"] == "bob"
    # the cookie carries it too
    me = await api.client.get("/api/me", headers={"Cookie": f"tickcast_token={jwt}"})
    assert me.json()["username"] == "bob"
    # a JWT cannot be exchanged for another one
    again = await api.client.post("/api/auth/token", headers={"Authorization": f"Bearer {jwt}"})
    assert again.status_code == 403


async def test_token_exchange_without_credentials_is_401(api: Api) -> None:
    r = await api.client.post("/api/auth/token")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


# -- portfolios


async def test_create_and_list_portfolios(api: Api) -> None:
    r = await api.client.post("/api/portfolios", json={"name": "  growth "}, headers=api.alice())
    assert r.status_code == 201
    created = r.json()
    assert created["name"] == "growth"
    assert r.headers["location"] == f"/api/portfolios/{created['id']}"
    assert created["total_value"] == "0"
    assert (created["cash"], created["net_deposits"]) == ("0", "0")
    assert created["daily_change_percent"] == "0"
    assert created["created_at"].endswith("Z")
    second = await api.portfolio("income")
    listed = (await api.client.get("/api/portfolios", headers=api.alice())).json()
    assert [p["id"] for p in listed] == [created["id"], second]
    assert [p["name"] for p in listed] == ["growth", "income"]
    # bob sees none of them
    assert (await api.client.get("/api/portfolios", headers=api.bob())).json() == []


async def test_duplicate_portfolio_name_is_409_for_the_same_owner_only(api: Api) -> None:
    await api.portfolio("main")
    r = await api.client.post("/api/portfolios", json={"name": "main"}, headers=api.alice())
    assert r.status_code == 409
    assert "main" in r.json()["detail"]
    r = await api.client.post("/api/portfolios", json={"name": "main"}, headers=api.bob())
    assert r.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "\u200b"},
        {"name": "a\u202eb"},
        {"name": "x" * 101},
        {},
        {"name": "a", "x": 1},
    ],
)
async def test_invalid_portfolio_body_is_422(api: Api, body: dict[str, Any]) -> None:
    r = await api.client.post("/api/portfolios", json=body, headers=api.alice())
    assert r.status_code == 422


async def test_a_body_that_is_not_declared_json_is_415(api: Api) -> None:
    headers = {**api.alice(), "Content-Type": "text/plain"}
    r = await api.client.post("/api/portfolios", content=b'{"name": "x"}', headers=headers)
    assert r.status_code == 415
    r = await api.client.post("/api/portfolios", content=b'{"name": "x"}', headers=api.alice())
    assert r.status_code == 415  # no Content-Type at all


async def test_worked_example_buy_buy_sell_exact_values(api: Api) -> None:
    pid = await api.portfolio()
    r = await api.trade(pid, "buy", "10", "100")
    assert r.status_code == 201, r.text
    assert r.json()["position"]["quantity"] == "10"
    assert r.json()["position"]["cost_basis"] == "1000"
    await api.trade(pid, "buy", "10", "110")
    r = await api.trade(pid, "sell", "5", "120")
    assert r.status_code == 201
    recorded = r.json()
    assert recorded["transaction"]["side"] == "sell"
    assert recorded["transaction"]["quantity"] == "5"
    assert recorded["transaction"]["price"] == "120"
    assert recorded["transaction"]["symbol"] == "ACME"
    assert recorded["automatic_deposit"] is None  # a sell brings cash in
    assert recorded["cash"] == "600"  # 5 x 120
    assert recorded["position"] == {
        "symbol": "ACME",
        "quantity": "15",
        "average_cost": "105",
        "cost_basis": "1575",
        "price": "125",  # the stored last price: no quote yet
        "market_value": "1875",
        "unrealized_pnl": "300",
        "realized_pnl": "75",  # (120 - 105) x 5, average cost
        "daily_change": "0",  # price = previous close
    }

    api.quote("ACME", 130.0)
    detail = (await api.client.get(f"/api/portfolios/{pid}", headers=api.alice())).json()
    assert {
        k: detail[k] for k in detail if k not in ("id", "created_at", "as_of", "positions")
    } == {
        "name": "main",
        "total_value": "2550",  # 1950 + 600
        "market_value": "1950",
        "cash": "600",  # the sell's proceeds (the buys' cost was deposited automatically)
        "net_deposits": "2100",  # 2550 = 2100 + 375 + 75
        "cost_basis": "1575",
        "daily_change": "75",
        "daily_change_percent": "3.030303",  # 100 x 75 / (2550 - 75)
        "unrealized_pnl": "375",
        "realized_pnl": "75",
        "unpriced_positions": 0,
        "public": False,
    }
    assert detail["positions"] == [
        {
            "symbol": "ACME",
            "quantity": "15",
            "average_cost": "105",
            "cost_basis": "1575",
            "price": "130",
            "market_value": "1950",
            "unrealized_pnl": "375",
            "realized_pnl": "75",
            "daily_change": "75",
        }
    ]
    positions = (
        await api.client.get(f"/api/portfolios/{pid}/positions", headers=api.alice())
    ).json()
    assert positions == detail["positions"]


async def test_recorded_transaction_changes_the_value_returned(api: Api) -> None:
    pid = await api.portfolio()
    await api.trade(pid, "buy", "2", "40", symbol="INIT")
    before = (await api.client.get("/api/portfolios", headers=api.alice())).json()[0]
    assert before["total_value"] == "80.5"  # 2 x 40.25, the stored price
    assert before["daily_change"] == "0.5"
    assert before["daily_change_percent"] == "0.625"
    await api.trade(pid, "buy", "1.5", "10.01")
    after = (await api.client.get("/api/portfolios", headers=api.alice())).json()[0]
    assert after["total_value"] == "268"  # + 1.5 x 125
    assert after["cost_basis"] == "95.015"
    assert after["unrealized_pnl"] == "172.985"


async def test_selling_everything_keeps_the_realized_pnl_on_a_closed_position(api: Api) -> None:
    pid = await api.portfolio()
    await api.trade(pid, "buy", "1", "10")
    await api.trade(pid, "buy", "2", "10.01")
    await api.trade(pid, "sell", "1", "11")
    r = await api.trade(pid, "sell", "2", "11")
    position = r.json()["position"]
    assert position["quantity"] == "0"
    assert position["cost_basis"] == "0"
    assert position["average_cost"] == "0"
    assert position["realized_pnl"] == "2.98"  # 33 - 30.02 exactly
    summary = (await api.client.get(f"/api/portfolios/{pid}", headers=api.alice())).json()
    assert summary["realized_pnl"] == "2.98"
    assert summary["market_value"] == "0"
    # 30.02 went in (automatically, with each buy), 33 came back: all of it is cash
    assert (summary["cash"], summary["net_deposits"]) == ("33", "30.02")
    assert summary["total_value"] == "33"


async def test_transactions_newest_first_with_limit(api: Api) -> None:
    pid = await api.portfolio()
    for i, day in enumerate((3, 1, 2)):
        body = {
            "symbol": "acme",
            "side": "BUY",
            "quantity": str(i + 1),
            "price": 100.5,
            "executed_at": f"2026-03-0{day}T10:00:00+01:00",
        }
        r = await api.client.post(
            f"/api/portfolios/{pid}/transactions", json=body, headers=api.alice()
        )
        assert r.status_code == 201, r.text
    listed = (
        await api.client.get(f"/api/portfolios/{pid}/transactions", headers=api.alice())
    ).json()
    assert [t["executed_at"] for t in listed] == [
        "2026-03-03T09:00:00Z",
        "2026-03-02T09:00:00Z",
        "2026-03-01T09:00:00Z",
    ]
    assert [t["quantity"] for t in listed] == ["1", "3", "2"]
    assert {t["price"] for t in listed} == {"100.5"}
    assert {t["symbol"] for t in listed} == {"ACME"}
    limited = await api.client.get(
        f"/api/portfolios/{pid}/transactions?limit=1", headers=api.alice()
    )
    assert [t["quantity"] for t in limited.json()] == ["1"]
    bad = await api.client.get(f"/api/portfolios/{pid}/transactions?limit=0", headers=api.alice())
    assert bad.status_code == 422


async def test_a_simulator_symbol_can_be_traded(api: Api) -> None:
    pid = await api.portfolio()
    r = await api.trade(pid, "buy", "1", "150", symbol="AAPL")
    assert r.status_code == 201, r.text
    assert r.json()["position"]["symbol"] == "AAPL"


# -- cash


async def test_selling_at_a_profit_keeps_the_proceeds_in_the_total_value(api: Api) -> None:
    """Issue 8: the value dropped by the whole sale when a position was sold."""
    pid = await api.portfolio()
    bought = (await api.trade(pid, "buy", "10", "100")).json()
    # nothing was deposited first: the buy deposited what it needed, visibly
    deposit = bought["automatic_deposit"]
    assert (deposit["kind"], deposit["amount"]) == ("deposit", "1000")
    assert deposit["transaction_id"] == bought["transaction"]["id"]
    assert bought["cash"] == "0"
    api.quote("ACME", 130.0)
    before = await api.summary(pid)
    assert (before["total_value"], before["market_value"], before["cash"]) == ("1300", "1300", "0")
    sold = (await api.trade(pid, "sell", "10", "130")).json()
    assert (sold["automatic_deposit"], sold["cash"]) == (None, "1300")
    after = await api.summary(pid)
    assert (after["total_value"], after["market_value"], after["cash"]) == ("1300", "0", "1300")
    # what was put in, plus what the trade made
    assert (after["net_deposits"], after["realized_pnl"]) == ("1000", "300")


async def test_deposits_withdrawals_and_buys_that_need_no_deposit(api: Api) -> None:
    pid = await api.portfolio()
    r = await api.cash(pid, "deposits", "5000.25")
    assert r.status_code == 201, r.text
    body = r.json()
    assert {k: body["cash_transaction"][k] for k in ("kind", "amount", "transaction_id")} == {
        "kind": "deposit",
        "amount": "5000.25",
        "transaction_id": None,
    }
    assert body["cash_transaction"]["executed_at"] == "2026-03-02T14:30:00Z"  # the clock's
    assert (body["portfolio"]["cash"], body["portfolio"]["total_value"]) == ("5000.25", "5000.25")
    bought = (await api.trade(pid, "buy", "10", "100")).json()
    assert (bought["automatic_deposit"], bought["cash"]) == (None, "4000.25")
    r = await api.cash(pid, "withdrawals", 1000)  # a JSON number is accepted too
    assert r.status_code == 201, r.text
    portfolio = r.json()["portfolio"]
    assert (portfolio["cash"], portfolio["net_deposits"]) == ("3000.25", "4000.25")
    assert portfolio["total_value"] == "4250.25"  # 10 ACME at the stored 125 + cash
    listed = (
        await api.client.get(f"/api/portfolios/{pid}/cash-transactions", headers=api.alice())
    ).json()
    assert [(c["kind"], c["amount"]) for c in listed] == [
        ("withdrawal", "1000"),
        ("deposit", "5000.25"),
    ]
    limited = await api.client.get(
        f"/api/portfolios/{pid}/cash-transactions?limit=1", headers=api.alice()
    )
    assert [c["kind"] for c in limited.json()] == ["withdrawal"]


async def test_a_buy_short_of_cash_deposits_only_the_shortfall(api: Api) -> None:
    pid = await api.portfolio()
    await api.cash(pid, "deposits", "150")
    bought = (await api.trade(pid, "buy", "2", "100")).json()
    assert bought["automatic_deposit"]["amount"] == "50"
    assert bought["cash"] == "0"
    summary = await api.summary(pid)
    assert (summary["net_deposits"], summary["total_value"]) == ("200", "250")  # 2 x 125
    listed = (
        await api.client.get(f"/api/portfolios/{pid}/cash-transactions", headers=api.alice())
    ).json()
    assert [(c["amount"], c["transaction_id"]) for c in listed] == [
        ("50", bought["transaction"]["id"]),
        ("150", None),
    ]


async def test_a_withdrawal_beyond_the_cash_is_422_and_changes_nothing(api: Api) -> None:
    pid = await api.portfolio()
    await api.trade(pid, "buy", "5", "120")
    await api.trade(pid, "sell", "5", "120")  # 600 in cash
    r = await api.cash(pid, "withdrawals", "600.01")
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "amount"], "insufficient_cash")
    assert error["msg"] == "cannot withdraw 600.01: only 600 in cash"
    summary = await api.summary(pid)
    assert (summary["cash"], summary["net_deposits"]) == ("600", "600")
    ledger = f"/api/portfolios/{pid}/cash-transactions"
    assert len((await api.client.get(ledger, headers=api.alice())).json()) == 1  # the buy's
    assert (await api.cash(pid, "withdrawals", "600")).status_code == 201  # all of it
    assert (await api.summary(pid))["cash"] == "0"


@pytest.mark.parametrize("kind", ["deposits", "withdrawals"])
@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("0", "greater_than"),
        ("-5", "greater_than"),
        ("NaN", "finite_number"),
        ("1.00000000001", "decimal_max_places"),
        ("1000000000000000000", "decimal_whole_digits"),
        ("ten", "decimal_parsing"),
    ],
)
async def test_invalid_cash_amounts_are_422(api: Api, kind: str, amount: str, error: str) -> None:
    pid = await api.portfolio()
    r = await api.cash(pid, kind, amount)
    assert r.status_code == 422, r.text
    [detail] = r.json()["detail"]
    assert (detail["loc"], detail["type"]) == (["body", "amount"], error)
    assert (await api.summary(pid))["cash"] == "0"


async def test_a_balance_beyond_what_is_stored_is_422(api: Api) -> None:
    pid = await api.portfolio()
    assert (await api.cash(pid, "deposits", "999999999999999999")).status_code == 201
    r = await api.cash(pid, "deposits", "1")
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert detail["type"] == "value_error"
    assert "must stay below 1000000000000000000" in detail["msg"]
    assert (await api.summary(pid))["cash"] == "999999999999999999"


async def test_cash_endpoints_refuse_others_strangers_and_bodies_that_are_not_json(
    api: Api,
) -> None:
    pid = await api.portfolio()
    for kind in ("deposits", "withdrawals"):
        path = f"/api/portfolios/{pid}/{kind}"
        theirs = await api.client.post(path, json={"amount": "1"}, headers=api.bob())
        assert theirs.status_code == 404
        assert theirs.json()["detail"] == f"Portfolio {pid} not found"
        assert (await api.client.post(path, json={"amount": "1"})).status_code == 401
        text = {**api.alice(), "Content-Type": "text/plain"}
        assert (
            await api.client.post(path, content=b'{"amount": "1"}', headers=text)
        ).status_code == 415
        extra = await api.client.post(path, json={"amount": "1", "x": 1}, headers=api.alice())
        assert extra.status_code == 422
    ledger = f"/api/portfolios/{pid}/cash-transactions"
    assert (await api.client.get(ledger, headers=api.bob())).status_code == 404
    assert (await api.client.get(ledger)).status_code == 401
    assert (await api.client.get(ledger, headers=api.alice())).json() == []
    assert (await api.summary(pid))["cash"] == "0"


async def test_concurrent_withdrawals_never_overdraw(api: Api) -> None:
    await _withdraw_concurrently(api)


async def _withdraw_concurrently(api: Api) -> None:
    """Ten withdrawals of 100 at once from 500: the row lock lets exactly five through."""
    pid = await api.portfolio()
    await api.cash(pid, "deposits", "500")
    answers = await asyncio.gather(*(api.cash(pid, "withdrawals", "100") for _ in range(10)))
    assert sorted(r.status_code for r in answers) == [201] * 5 + [422] * 5
    summary = await api.summary(pid)
    assert (summary["cash"], summary["net_deposits"]) == ("0", "0")
    ledger = f"/api/portfolios/{pid}/cash-transactions"
    assert len((await api.client.get(ledger, headers=api.alice())).json()) == 6


# -- other users' portfolios


@pytest.mark.parametrize(
    "raw", ["+1", "%201", "1%20", "01", "1.0", "1_0", "%D9%A1", "%EF%BC%91", "0x1", "1e0"]
)
async def test_a_portfolio_id_not_written_canonically_is_422(api: Api, raw: str) -> None:
    """Ids such as "+1", " 1", "01" or "1.0" named portfolio 1, and "1_0" portfolio 10:
    one portfolio had many URLs. Only digits, no sign, spaces or leading zero."""
    pid = await api.portfolio()
    await api.portfolio("other")
    assert pid == 1
    for path in (f"/api/portfolios/{raw}", f"/api/portfolios/{raw}/transactions"):
        r = await api.client.get(path, headers=api.alice())
        assert r.status_code == 422, (path, r.text)
        assert r.json()["detail"][0]["loc"] == ["path", "portfolio_id"]
    r = await api.client.get(f"/api/portfolios/1/transactions?limit={raw}", headers=api.alice())
    assert r.status_code == 422, r.text


async def test_portfolio_ids_beyond_what_is_stored_are_refused_and_huge_ones_too(api: Api) -> None:
    await api.portfolio()
    biggest = 2**63 - 1  # BIGINT
    r = await api.client.get(f"/api/portfolios/{biggest}", headers=api.alice())
    assert r.status_code == 404
    for raw in (str(biggest + 1), "9" * 30, "9" * 5000):
        r = await api.client.get(f"/api/portfolios/{raw}/positions", headers=api.alice())
        assert r.status_code == 422, r.text[:200]


async def test_another_users_portfolio_is_404_like_a_missing_one(api: Api) -> None:
    pid = await api.portfolio()
    missing = pid + 1000
    for path in ("", "/positions", "/transactions", "/cash-transactions"):
        theirs = await api.client.get(f"/api/portfolios/{pid}{path}", headers=api.bob())
        nowhere = await api.client.get(f"/api/portfolios/{missing}{path}", headers=api.bob())
        assert theirs.status_code == nowhere.status_code == 404
        assert theirs.json()["detail"] == f"Portfolio {pid} not found"
    body = {"symbol": "ACME", "side": "buy", "quantity": "1", "price": "1"}
    r = await api.client.post(f"/api/portfolios/{pid}/transactions", json=body, headers=api.bob())
    assert r.status_code == 404
    # and nothing was recorded
    listed = await api.client.get(f"/api/portfolios/{pid}/transactions", headers=api.alice())
    assert listed.json() == []


async def test_portfolio_endpoints_need_credentials(api: Api) -> None:
    pid = await api.portfolio()
    for method, path in (
        ("GET", "/api/portfolios"),
        ("POST", "/api/portfolios"),
        ("GET", f"/api/portfolios/{pid}"),
        ("GET", f"/api/portfolios/{pid}/positions"),
        ("GET", f"/api/portfolios/{pid}/transactions"),
        ("POST", f"/api/portfolios/{pid}/transactions"),
        ("POST", f"/api/portfolios/{pid}/deposits"),
        ("POST", f"/api/portfolios/{pid}/withdrawals"),
        ("GET", f"/api/portfolios/{pid}/cash-transactions"),
    ):
        r = await api.client.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")


# -- 422


@pytest.mark.parametrize(
    ("change", "loc", "kind"),
    [
        ({"symbol": "NOPE"}, "symbol", "unknown_symbol"),
        ({"quantity": "0"}, "quantity", "greater_than"),
        ({"quantity": "-1"}, "quantity", "greater_than"),
        ({"price": "-0.01"}, "price", "greater_than_equal"),
        ({"quantity": "NaN"}, "quantity", "finite_number"),
        ({"quantity": "1.00000000001"}, "quantity", "decimal_max_places"),
        ({"side": "short"}, "side", "enum"),
        ({"executed_at": "2026-03-02T10:00:00"}, "executed_at", "timezone_aware"),
        ({"quantity": "1000000000", "price": "1000000000"}, "quantity", "amount_too_large"),
    ],
)
async def test_invalid_transactions_are_422(
    api: Api, change: dict[str, str], loc: str, kind: str
) -> None:
    pid = await api.portfolio()
    body = {"symbol": "ACME", "side": "buy", "quantity": "1", "price": "1", **change}
    r = await api.client.post(f"/api/portfolios/{pid}/transactions", json=body, headers=api.alice())
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", loc]
    assert error["type"] == kind


async def test_selling_more_than_held_is_422_and_changes_nothing(api: Api) -> None:
    pid = await api.portfolio()
    await api.trade(pid, "buy", "10", "100")
    r = await api.trade(pid, "sell", "10.5", "120")
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["type"] == "insufficient_quantity"
    assert error["msg"] == "cannot sell 10.5 ACME: only 10 held"
    positions = (
        await api.client.get(f"/api/portfolios/{pid}/positions", headers=api.alice())
    ).json()
    assert positions[0]["quantity"] == "10"
    listed = (
        await api.client.get(f"/api/portfolios/{pid}/transactions", headers=api.alice())
    ).json()
    assert len(listed) == 1
    never = await api.trade(pid, "sell", "1", "1", symbol="INIT")
    assert never.status_code == 422


# -- assets


async def test_assets_list_stored_and_live_prices(api: Api) -> None:
    api.quote("INIT", 41.0)
    r = await api.client.get("/api/assets")  # anonymous: allowed by default
    assert r.status_code == 200
    assets = {a["symbol"]: a for a in r.json()}
    assert list(assets) == sorted(assets)
    assert assets.keys() == {"AAPL", "MSFT", "ACME", "INIT"}
    assert assets["ACME"] == {
        "symbol": "ACME",
        "name": "Acme Corp.",
        "kind": "stock",
        "price": "125",
        "live": False,
        "previous_close": "125",
        "change_reference": "125",
        "change_reference_kind": "previous_close",
        "change": "0",
        "change_percent": "0",
    }
    assert assets["INIT"]["price"] == "41"
    assert assets["INIT"]["live"] is True
    assert assets["INIT"]["change"] == "1"
    assert assets["INIT"]["change_percent"] == "2.5"
    # no price, no close: nothing is made up
    assert assets["MSFT"] == {
        "symbol": "MSFT",
        "name": "MSFT",
        "kind": "stock",
        "price": None,
        "live": False,
        "previous_close": None,
        "change_reference": None,
        "change_reference_kind": None,
        "change": None,
        "change_percent": None,
    }


async def test_the_first_price_of_the_day_is_the_change_reference_never_the_previous_close(
    api: Api,
) -> None:
    """Issue 8: ``previous_close`` was the first price the gateway saw today."""

    async def msft() -> dict[str, Any]:
        r = await api.client.get("/api/assets")
        return next(a for a in r.json() if a["symbol"] == "MSFT")

    api.quote("MSFT", 420.0)
    api.quote("MSFT", 425.0)
    today = await msft()
    assert today["previous_close"] is None  # no close is known
    assert (today["change_reference"], today["change_reference_kind"]) == (
        "420",
        "first_price_today",
    )
    assert (today["price"], today["change"], today["change_percent"]) == ("425", "5", "1.190476")

    # the next UTC day, before its first price: yesterday's last price closed it
    api.clock.now = (T0 + timedelta(days=1)).replace(hour=0, minute=0, second=1).timestamp()
    tomorrow = await msft()
    assert (tomorrow["previous_close"], tomorrow["change_reference_kind"]) == (
        "425",
        "previous_close",
    )
    assert (tomorrow["price"], tomorrow["change"]) == ("425", "0")
    api.quote("MSFT", 430.0)
    moved = await msft()
    assert (moved["previous_close"], moved["change"], moved["change_percent"]) == (
        "425",
        "5",
        "1.176471",
    )


async def test_assets_with_bad_credentials_is_401(api: Api) -> None:
    r = await api.client.get("/api/assets", headers={"X-API-Key": "nope"})
    assert r.status_code == 401


async def test_assets_need_credentials_when_anonymous_is_denied(make_api: Any) -> None:
    api = await make_api(allow_anonymous=False)
    assert (await api.client.get("/api/assets")).status_code == 401
    assert (await api.client.get("/api/assets", headers=api.bob())).status_code == 200


# -- docs


async def test_openapi_and_docs_are_served(api: Api) -> None:
    spec = (await api.client.get("/api/openapi.json")).json()
    assert {"/auth/token", "/me", "/portfolios", "/assets"} <= spec["paths"].keys()
    position = spec["components"]["schemas"]["PositionOut"]["properties"]
    assert position["market_value"]["type"] == "string"
    assert {
        "/portfolios/{portfolio_id}/deposits",
        "/portfolios/{portfolio_id}/withdrawals",
        "/portfolios/{portfolio_id}/cash-transactions",
    } <= spec["paths"].keys()
    # what each figure is, in the schema itself
    portfolio = spec["components"]["schemas"]["PortfolioOut"]["properties"]
    assert portfolio["total_value"]["description"] == "market_value + cash."
    asset = spec["components"]["schemas"]["AssetOut"]["properties"]
    assert "never a price of today" in asset["previous_close"]["description"]
    assert "first price this gateway saw today" in asset["change_reference"]["description"]
    schemes = spec["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader", "APIKeyCookie"} <= schemes.keys()
    docs = await api.client.get("/api/docs")
    assert docs.status_code == 200
    assert 'href="openapi.json"' in docs.text  # relative: /api/openapi.json


# -- PostgreSQL


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (skipped when the server is unreachable, as in
    tests/storage)."""
    name = f"tickcast_api_{int(time.time() * 1e6):x}"
    admin = await _admin_connection()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.postgresql
async def test_worked_example_on_postgresql(make_api: Any, postgres_url: str) -> None:
    api = await make_api(postgres_url)
    pid = await api.portfolio()
    await api.trade(pid, "buy", "10", "100")
    await api.trade(pid, "buy", "10", "110")
    r = await api.trade(pid, "sell", "5", "120")
    assert r.json()["position"]["realized_pnl"] == "75"
    assert (await api.trade(pid, "sell", "16", "1")).status_code == 422
    assert (
        await api.client.post("/api/portfolios", json={"name": "main"}, headers=api.alice())
    ).status_code == 409
    listed = (
        await api.client.get(f"/api/portfolios/{pid}/transactions", headers=api.alice())
    ).json()
    assert [t["side"] for t in listed] == ["sell", "buy", "buy"]
    summary = (await api.client.get(f"/api/portfolios/{pid}", headers=api.alice())).json()
    assert (summary["cost_basis"], summary["market_value"]) == ("1575", "1875")
    assert (summary["cash"], summary["total_value"]) == ("600", "2475")


@pytest.mark.postgresql
async def test_concurrent_withdrawals_never_overdraw_on_postgresql(
    make_api: Any, postgres_url: str
) -> None:
    await _withdraw_concurrently(await make_api(postgres_url))


# -- one source of truth for previous closes


async def _asset_and_position(api: Api, pid: int, symbol: str) -> tuple[dict[str, Any], Any]:
    """``symbol`` as GET /api/assets answers it, and its position as the live positions
    stream (``positions_update``) carries it."""
    r = await api.client.get("/api/assets")
    asset = next(a for a in r.json() if a["symbol"] == symbol)
    live = api.portfolios.positions(pid)
    return asset, next(p for p in live.positions if p.symbol == symbol)


def _agree(asset: dict[str, Any], position: Any) -> None:
    """The position's daily change is its quantity times the asset's change."""
    assert asset["change"] is not None
    assert position.daily_change == position.quantity * Decimal(asset["change"])


async def test_asset_change_and_position_daily_change_agree_when_the_table_changes(
    api: Api,
) -> None:
    """A close written to the asset table while the gateway runs (``tickcast
    update-prices --historical``) reached GET /api/assets at once and the positions
    never; now both take it at the next refresh of the closes."""
    pid = await api.portfolio()
    assert (await api.trade(pid, "buy", "10", "100")).status_code == 201
    api.quote("ACME", 130.0)
    asset, position = await _asset_and_position(api, pid, "ACME")
    assert asset["change"] == "5"
    _agree(asset, position)

    async with api.node.engine.begin() as conn:
        await Assets(conn).update_prices({"ACME": (Decimal("125"), Decimal("120"))})
    asset, position = await _asset_and_position(api, pid, "ACME")
    _agree(asset, position)  # before the refresh: both still measure against 125
    await api.portfolios.refresh_closes()
    asset, position = await _asset_and_position(api, pid, "ACME")
    assert (asset["previous_close"], asset["change"]) == ("120", "10")
    _agree(asset, position)
    assert position.daily_change == Decimal(100)


async def test_asset_change_and_position_daily_change_agree_across_a_new_day(api: Api) -> None:
    """The day turned for GET /api/assets at once and for the positions only at the
    service's next publication."""
    pid = await api.portfolio()
    assert (await api.trade(pid, "buy", "10", "100")).status_code == 201
    api.quote("ACME", 130.0)
    api.clock.now = (T0 + timedelta(days=1)).replace(hour=0, minute=0, second=1).timestamp()
    asset, position = await _asset_and_position(api, pid, "ACME")
    assert (asset["previous_close"], asset["change"]) == ("130", "0")
    _agree(asset, position)
    api.quote("ACME", 131.5)
    asset, position = await _asset_and_position(api, pid, "ACME")
    assert asset["change"] == "1.5"
    _agree(asset, position)


async def test_a_close_the_gateway_observes_is_stored(api: Api) -> None:
    """The close a new day makes was kept in memory only: a restart lost it."""
    api.quote("ACME", 130.0)
    api.clock.now = (T0 + timedelta(days=1)).replace(hour=0, minute=0, second=1).timestamp()
    api.portfolios.flush()
    await api.portfolios.refresh_closes()
    async with api.node.engine.connect() as conn:
        stored = await Assets(conn).get("ACME")
    assert stored.previous_close == Decimal(130)
