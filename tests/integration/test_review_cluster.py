"""Review of the cluster's bus backends against real engines: defects found, each proven
by a test marked ``xfail(strict=True)`` (it passes once fixed; then the mark must go).

Each test runs a private ``redis-server`` or ``nats-server`` of its own on a free port
(the shared ones are never stopped or flushed), and waits for conditions with generous
bounds; no sleep synchronizes anything.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from support.natsserver import PrivateNats
from support.redis import PrivateRedis
from support.server import free_port
from tickcast.bus.base import BusError, Lease
from tickcast.bus.nats import NatsBus
from tickcast.bus.redis import RedisBus
from tickcast.hub.publisher import Discard
from tickcast.portfolio import service as portfolio_service
from tickcast.portfolio.service import PortfolioService
from tickcast.storage.engine import make_engine
from tickcast.storage.repositories import Users

#: The longest any condition is waited for (a busy 2-core machine included).
WAIT_S = 30.0


async def wait_for(condition: Callable[[], bool], what: str, limit_s: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(0.02)


async def keep_trying(
    attempt: Callable[[], Awaitable[Lease | None]], what: str, limit_s: float = WAIT_S
) -> Lease | None:
    """``attempt`` until it answers (a ``BusError`` is retried until ``limit_s``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        try:
            return await attempt()
        except BusError as exc:
            if loop.time() > deadline:
                raise AssertionError(f"{what}: still failing after {limit_s} s: {exc}") from exc
        await asyncio.sleep(0.1)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(free_port(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    if shutil.which("nats-server") is None:
        pytest.skip("nats-server is not installed")
    server = PrivateNats(free_port(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (127.0.0.1:5432, through ``test``), dropped after."""
    try:
        admin = await asyncpg.connect(
            host="127.0.0.1", port=5432, user="postgres", database="test", timeout=5
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is unreachable: {exc!r}")
    name = f"tickcast_review_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_redis_a_lease_after_a_restart_has_a_greater_token(
    private_redis: PrivateRedis,
) -> None:
    private_redis.start()
    await private_redis.ready()
    bus = RedisBus(private_redis.url)
    await bus.start()
    name = f"review-{secrets.token_hex(4)}.leader"
    try:
        first = await bus.acquire(name, "a", 30.0)
        assert first is not None
        await bus.release(first)
        second = await bus.acquire(name, "a", 30.0)
        assert second is not None
        assert second.token > first.token
        private_redis.stop()  # the documented fault: the bus restarts
        await wait_for(lambda: not bus.connected, "the bus to see Redis gone")
        private_redis.start()
        await private_redis.ready()
        await wait_for(lambda: bus.connected, "the bus to reconnect")
        third = await keep_trying(lambda: bus.acquire(name, "b", 30.0), "acquire")
        assert third is not None  # the lease was forgotten: free
        assert third.token > second.token
    finally:
        await bus.aclose()


async def test_nats_a_lease_is_taken_again_after_jetstream_lost_its_data(
    private_nats: PrivateNats, tmp_path: Path
) -> None:
    private_nats.start()
    await private_nats.ready()
    bus = NatsBus(private_nats.url)
    await bus.start()
    name = f"review-{secrets.token_hex(4)}.leader"
    try:
        first = await bus.acquire(name, "a", 30.0)
        assert first is not None
        await bus.release(first)
        private_nats.stop()
        shutil.rmtree(tmp_path / "jetstream", ignore_errors=True)  # its store is gone
        await wait_for(lambda: not bus.connected, "the bus to see NATS gone")
        private_nats.start()
        await private_nats.ready()
        await wait_for(lambda: bus.connected, "the bus to reconnect")
        lease = await keep_trying(lambda: bus.acquire(name, "b", 30.0), "acquire", 15.0)
        assert lease is not None
    finally:
        await bus.aclose()


# -- committed writes -----------------------------------------------------------------


async def test_a_reload_that_read_an_older_public_flag_does_not_win(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(pg_url)
    a = PortfolioService(engine, Discard())  # the node that writes
    b = PortfolioService(engine, Discard())  # another node, told by Changed
    try:
        await a.start()
        async with engine.begin() as conn:
            owner = (await Users(conn).create("ada")).id
        portfolio = await a.create_portfolio(owner, "Growth")
        await b.start()
        await a.set_public(portfolio.id, True)
        # b's first reload is slow (its positions query waits), the second is not
        original = portfolio_service.Positions.list_for_portfolio
        entered, gate = asyncio.Event(), asyncio.Event()
        calls = 0

        async def slow(self: object, portfolio_id: int) -> object:
            nonlocal calls
            calls += 1
            if calls == 1:
                entered.set()
                await gate.wait()
            return await original(self, portfolio_id)

        monkeypatch.setattr(portfolio_service.Positions, "list_for_portfolio", slow)
        first = asyncio.create_task(b.reload([portfolio.id]))  # told of "public"
        await asyncio.wait_for(entered.wait(), WAIT_S)
        await a.set_public(portfolio.id, False)
        await b.reload([portfolio.id])  # told of "private"
        gate.set()
        await first
        assert [p.id for p in a.public_portfolios()] == []
        assert [p.id for p in b.public_portfolios()] == []
    finally:
        await a.aclose()
        await b.aclose()
        await engine.dispose()
