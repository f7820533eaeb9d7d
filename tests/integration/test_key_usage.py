"""Identity records API-key use in the background: once per key per interval, at the
time of use, and a failed write fails no authentication. Real SQLite files; a clock
that the test moves."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tickcast.auth.credentials import InvalidCredentials, NewKey, Principal, new_api_key
from tickcast.fronts.identity import CACHE_S, RETRY_S, Identity, _Key
from tickcast.storage import migrate
from tickcast.storage.engine import make_engine
from tickcast.storage.records import ApiKey
from tickcast.storage.repositories import ApiKeys, Users

SECRET = "u" * 40
T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/k.db")
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


async def make_key(engine: AsyncEngine) -> tuple[NewKey, int]:
    key = new_api_key()
    async with engine.begin() as conn:
        user = await Users(conn).create("kim")
        stored = await ApiKeys(conn).insert(
            user.id, prefix=key.prefix, secret_hash=key.secret_hash, name="t"
        )
    return key, stored.id


async def stored(engine: AsyncEngine, key: NewKey) -> ApiKey:
    async with engine.connect() as conn:
        return await ApiKeys(conn).find_by_prefix(key.prefix)


async def test_a_use_is_written_once_per_interval_at_the_time_of_use(engine: AsyncEngine) -> None:
    key, _ = await make_key(engine)
    clock = Clock()
    identity = Identity(engine, SECRET, 60, clock=clock, touch_interval_s=60)
    try:
        assert (await stored(engine, key)).last_used_at is None
        principal = await identity.authenticate(key.token)
        assert principal.username == "kim"
        await identity.wait_written()
        assert (await stored(engine, key)).last_used_at == datetime.fromtimestamp(T0, UTC)

        clock.now = T0 + 59  # within the interval: nothing new is written
        await identity.authenticate(key.token)
        await identity.wait_written()
        assert (await stored(engine, key)).last_used_at == datetime.fromtimestamp(T0, UTC)

        clock.now = T0 + 61
        await identity.authenticate(key.token)
        await identity.wait_written()
        assert (await stored(engine, key)).last_used_at == datetime.fromtimestamp(T0 + 61, UTC)
    finally:
        await identity.aclose()


async def test_a_failed_write_fails_no_authentication(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")  # nothing listens
    identity = Identity(down, SECRET, 60)
    key = new_api_key()
    ada = Principal(7, "ada")
    # a key checked before: it keeps working from the cache while the database is down
    identity._keys[key.prefix] = _Key(identity.clock() + 30, 42, ada, key.secret_hash)
    try:
        with caplog.at_level(logging.WARNING, logger="tickcast.fronts.identity"):
            assert await identity.authenticate(key.token) == ada
            await identity.wait_written()
        assert "could not record the use of 1 API key(s)" in caplog.text
        assert await identity.authenticate(key.token) == ada  # and again
    finally:
        await identity.aclose()
        await down.dispose()


async def test_aclose_lets_a_usage_write_in_flight_finish(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Shutdown waits for the key-use write the writer is in the middle of, rather than
    cancelling it mid-query (which lost the write and, with aiosqlite 0.20/0.21, left the
    driver's thread answering a closed loop: "Event loop is closed")."""
    key, key_id = await make_key(engine)
    identity = Identity(engine, SECRET, 60, clock=Clock())
    kim = Principal(1, "kim")
    identity._keys[key.prefix] = _Key(T0 + 30, key_id, kim, key.secret_hash)
    in_query = asyncio.Event()

    def on_execute(*args: object) -> None:
        in_query.set()

    lock = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another writer holds the database
    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        assert await identity.authenticate(key.token) == kim
        await in_query.wait()  # the writer is inside its transaction, waiting for the lock
        closing = asyncio.create_task(identity.aclose())
        await asyncio.sleep(0)  # aclose runs up to its first wait
        lock.execute("ROLLBACK")  # the other writer is done: the write can go through
        await closing
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)
        lock.close()
        await identity.aclose()
    assert (await stored(engine, key)).last_used_at == datetime.fromtimestamp(T0, UTC)


def count_key_lookups(engine: AsyncEngine) -> list[str]:
    """Every statement that reads the api_keys table, as it is sent."""
    seen: list[str] = []

    def on_execute(_conn: object, _cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_keys" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    return seen


async def test_concurrent_handshakes_with_one_key_share_one_lookup(engine: AsyncEngine) -> None:
    key, _ = await make_key(engine)
    identity = Identity(engine, SECRET, 60, clock=Clock())
    lookups = count_key_lookups(engine)
    try:
        principals = await asyncio.gather(*(identity.authenticate(key.token) for _ in range(50)))
        assert {p.username for p in principals} == {"kim"}
        assert len(lookups) == 1  # not one per handshake
        unknown = new_api_key()
        results = await asyncio.gather(
            *(identity.authenticate(unknown.token) for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, InvalidCredentials) for r in results)
        assert len(lookups) == 2
    finally:
        await identity.aclose()


async def test_the_key_cache_forgets_the_least_recently_used_not_everything(
    engine: AsyncEngine,
) -> None:
    key, _ = await make_key(engine)
    clock = Clock()
    identity = Identity(engine, SECRET, 60, clock=clock, cache_size=3)
    down = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    try:
        await identity.authenticate(key.token)
        await identity.wait_written()
        for _ in range(10):  # a burst of unknown keys, while kim keeps connecting
            with pytest.raises(InvalidCredentials):
                await identity.authenticate(new_api_key().token)
            await identity.authenticate(key.token)
        assert len(identity._keys) == 3
        identity.engine = down  # the database goes away: kim is still known
        assert (await identity.authenticate(key.token)).username == "kim"
    finally:
        await identity.aclose()
        await down.dispose()


async def test_while_the_database_is_down_an_expired_key_is_served_without_a_lookup_storm(
    engine: AsyncEngine,
) -> None:
    key, key_id = await make_key(engine)
    clock = Clock()
    identity = Identity(engine, SECRET, 60, clock=clock, touch_interval_s=3600)
    down = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    attempts: list[object] = []
    event.listen(down.sync_engine, "do_connect", lambda *args: attempts.append(args))
    try:
        await identity.authenticate(key.token)
        await identity.wait_written()
        identity.engine = down
        clock.now = T0 + CACHE_S + 1  # the entry expired and the database is down
        principals = await asyncio.gather(*(identity.authenticate(key.token) for _ in range(30)))
        assert {p.username for p in principals} == {"kim"}  # stale, not refused
        assert len(attempts) == 1  # one refresh for all of them
        clock.now += RETRY_S - 1  # within the retry window: no new attempt
        assert (await identity.authenticate(key.token)).username == "kim"
        assert len(attempts) == 1
        clock.now += 2  # after it, one more try (still down: still served)
        assert (await identity.authenticate(key.token)).username == "kim"
        assert len(attempts) == 2
        identity.engine = engine  # back: the next refresh sees the database again
        clock.now += RETRY_S + 1
        async with engine.begin() as conn:
            await ApiKeys(conn).revoke(key_id)
        with pytest.raises(InvalidCredentials):
            await identity.authenticate(key.token)
    finally:
        await identity.aclose()
        await down.dispose()
