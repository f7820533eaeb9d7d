"""The portfolio HTTP API at /api, on the real app built in-process.

The app runs inside its own lifespan (the node starts, migrates and loads portfolios);
requests go through httpx's ASGI transport. Users, API keys and assets are written
straight into the database before the start. The symbols traded here (ACME, INIT, ZERO)
are stored assets the simulator does not quote, so every price is set by the test and
every value is exact.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.conftest import PG_HOST, PG_PORT, PG_USER, _admin_connection
from tickcast.app import build_app
from tickcast.auth.credentials import new_api_key
from tickcast.config.settings import Settings
from tickcast.model.market import Quote
from tickcast.node import Node
from tickcast.storage import migrate
from tickcast.storage.engine import make_engine
from tickcast.storage.records import Asset, AssetKind
from tickcast.storage.repositories import ApiKeys, Assets, Users

SECRET = "an-integration-test-secret-of-at-least-32-bytes"
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


@dataclass
class Api:
    """A running app, a client for it, and who is who."""

    client: httpx.AsyncClient
    node: Node
    alice_key: str
    bob_key: str
    revoked_key: str

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

    def quote(self, symbol: str, price: float) -> None:
        """A market price, as a provider would deliver it."""
        self.node.ingest([Quote(symbol, price, price, 1, 1, price, 1000, time.time(), "test")])


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
            config = Settings(
                database_url=url, jwt_secret=SECRET, symbols=("AAPL", "MSFT"), rate=20, **settings
            )
            app = build_app(config)
            await stack.enter_async_context(app.app.router.lifespan_context(app.app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
            )
            return Api(client, app.state.node, alice, bob, carol)

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
    "body", [{"name": ""}, {"name": "   "}, {"name": "x" * 101}, {}, {"name": "a", "x": 1}]
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
        "total_value": "1950",
        "cost_basis": "1575",
        "daily_change": "75",
        "daily_change_percent": "4",
        "unrealized_pnl": "375",
        "realized_pnl": "75",
        "unpriced_positions": 0,
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
    assert summary["total_value"] == "0"


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


# -- other users' portfolios


async def test_another_users_portfolio_is_404_like_a_missing_one(api: Api) -> None:
    pid = await api.portfolio()
    missing = pid + 1000
    for path in ("", "/positions", "/transactions"):
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
    assert {"AAPL", "MSFT", "ACME", "INIT"} <= assets.keys()
    assert assets["ACME"] == {
        "symbol": "ACME",
        "name": "Acme Corp.",
        "kind": "stock",
        "price": "125",
        "live": False,
        "previous_close": "125",
        "change": "0",
        "change_percent": "0",
    }
    assert assets["INIT"]["price"] == "41"
    assert assets["INIT"]["live"] is True
    assert assets["INIT"]["change"] == "1"
    assert assets["INIT"]["change_percent"] == "2.5"
    assert assets["MSFT"]["previous_close"] is None


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
    assert (summary["cost_basis"], summary["total_value"]) == ("1575", "1875")
