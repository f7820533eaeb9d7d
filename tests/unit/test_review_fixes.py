"""Regression tests for the issue-4 review: cookie origins, an unavailable accounts
database, the book after a commit, exact money on the realtime wire."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from tickcast.auth.credentials import Principal, issue_token, new_api_key
from tickcast.auth.policy import Reason
from tickcast.config.settings import Settings
from tickcast.fronts.guard import Guard
from tickcast.fronts.identity import CACHE_S, CredentialsUnavailable, Identity, _Key
from tickcast.hub.publisher import Discard
from tickcast.observability.stats import Stats
from tickcast.portfolio.service import PortfolioService
from tickcast.portfolio.valuation import Holding, Side
from tickcast.protocols.envelope.codec import _money
from tickcast.storage.engine import make_engine

SECRET = "x" * 40


def scope(*headers: tuple[bytes, bytes], query: bytes = b"") -> dict[str, object]:
    return {"headers": list(headers), "query_string": query}


async def test_a_cookie_counts_only_from_the_gateways_own_origin() -> None:
    settings = Settings()
    identity = Identity(None, SECRET, 60)  # type: ignore[arg-type]
    guard = Guard(settings.limits, settings.auth, identity, Stats())
    jwt = issue_token(7, "ada", SECRET, time.time(), 600).encode()
    cookie = (b"cookie", b"tickcast_token=" + jwt)
    host = (b"host", b"gw.example:8000")
    own = scope(cookie, host, (b"origin", b"http://gw.example:8000"))
    evil = scope(cookie, host, (b"origin", b"https://evil.example"))
    ticket, refusal = await guard.admit(own)
    assert refusal is None
    assert ticket.principal.user_id == 7
    guard.release(ticket)
    _, refusal = await guard.admit(evil)
    assert refusal is not None
    assert refusal.reason is Reason.ORIGIN
    ticket, refusal = await guard.admit(scope(cookie, host))  # not a browser
    assert refusal is None
    guard.release(ticket)
    # a credential the page chose to send is not a cookie the browser attached
    chosen = scope(cookie, host, (b"origin", b"https://evil.example"), query=b"token=" + jwt)
    ticket, refusal = await guard.admit(chosen)
    assert refusal is None
    assert ticket.principal.user_id == 7


async def test_an_unknown_key_is_try_again_later_when_the_database_is_down() -> None:
    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    identity = Identity(engine, SECRET, 60)
    key = new_api_key()
    try:
        with pytest.raises(CredentialsUnavailable):
            await identity.authenticate(key.token)
        # a key checked before keeps working from the cache while the database is down
        known = Principal(7, "ada")
        identity._keys[key.prefix] = _Key(identity.clock() - CACHE_S, None, known, key.secret_hash)
        assert await identity.authenticate(key.token) == known
    finally:
        await engine.dispose()


async def test_the_book_takes_the_committed_position_and_never_fails_after_a_commit(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/b.db")
    service = PortfolioService(engine, Discard())
    try:
        await service.start()
        portfolio = await service.create_portfolio(await _user(engine), "Growth")
        await service.record_transaction(portfolio.id, "AAPL", Side.BUY, Decimal(10), Decimal(100))
        # another node sold meanwhile: this node's book is stale (it thinks 60 are held)
        service.book.load(portfolio.id, [Holding("AAPL", Decimal(60), Decimal(6000))])
        position = (
            await service.record_transaction(
                portfolio.id, "AAPL", Side.SELL, Decimal(10), Decimal(120)
            )
        ).position
        assert position.quantity == 0
        held = service.book.holding(portfolio.id, "AAPL")
        assert held is not None
        assert held.quantity == 0
        assert held.realized_pnl == Decimal(200)
    finally:
        await service.aclose()
        await engine.dispose()


async def _user(engine: object) -> int:
    from tickcast.storage.repositories import Users

    async with engine.begin() as conn:  # type: ignore[attr-defined]
        return (await Users(conn).create("ada")).id  # type: ignore[no-any-return]


def test_realtime_money_is_exact_and_without_trailing_zeros() -> None:
    assert str(_money(Decimal("2345925757.01802449696965432109"))) == (
        "2345925757.01802449696965432109"
    )
    assert str(_money(Decimal("22248.9500000000"))) == "22248.95"
    assert str(_money(Decimal("1E+3"))) == "1000"
    assert str(_money(Decimal("0E-10"))) == "0"


async def test_the_address_cap_counts_ipv6_clients_by_ipv6_client_prefix() -> None:
    settings = Settings(max_anonymous_connections_per_address=1, ipv6_client_prefix=48)
    identity = Identity(None, SECRET, 60)  # type: ignore[arg-type]
    guard = Guard(settings.limits, settings.auth, identity, Stats())

    def client(address: str) -> dict[str, object]:
        return {**scope(), "client": (address, 1234)}

    ticket, refusal = await guard.admit(client("2001:db8:1:2::1"))
    assert refusal is None
    _, refusal = await guard.admit(client("2001:db8:1:ff::9"))  # the same /48
    assert refusal is not None
    assert refusal.reason is Reason.ADDRESS_LIMIT
    other, refusal = await guard.admit(client("2001:db8:2::1"))
    assert refusal is None
    guard.release(ticket)
    guard.release(other)
