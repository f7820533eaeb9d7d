"""Review of batch 0's early writes (commits 4828987, d0b6653): a rated key and a degraded
client get the latest value, not an early write; an early write is counted only when
something was written; one early write per client per published batch.

The socket, session and helpers are ``test_connection``'s; the pump is the real one of
window 0, whose pass runs on the test's event loop (``a_pass``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from support.clock import ManualClock
from tickcast.hub.pump import Pumps
from tickcast.transport.connection import Connection
from unit.transport.test_connection import connect, put, quote, sock_of
from unit.transport.test_connection_immediate import payloads

A, B = "quotes.AAPL", "quotes.MSFT"


@pytest.fixture
async def pumps() -> AsyncIterator[Pumps]:
    pumps = Pumps(ManualClock())
    yield pumps
    pumps.close()


def immediate(pumps: Pumps) -> Connection:
    return connect(pumps.get(0.0), max_bytes=100_000)


async def a_pass() -> None:
    """The rest of the event-loop pass: the window-0 pump flushes."""
    await asyncio.sleep(0)


async def test_one_early_write_per_batch_then_a_repeated_symbol_conflates(
    pumps: Pumps,
) -> None:
    conn = immediate(pumps)
    put(conn, quote("AAPL", 1), A)
    put(conn, quote("AAPL", 2), A)  # the batch's early write: AAPL 1 goes out
    put(conn, quote("MSFT", 1), B)
    put(conn, quote("MSFT", 2), B)  # after it: replaces MSFT 1 (market-feed.md)
    await a_pass()
    assert payloads(sock_of(conn)) == [
        [quote("AAPL", 1).payload],
        [quote("AAPL", 2).payload, quote("MSFT", 2).payload],
    ]
    assert conn.stats.early_writes == 1
    assert conn.outbox.conflated == 1


async def test_a_rated_key_releases_the_latest_of_the_pass_not_the_one_before(
    pumps: Pumps,
) -> None:
    conn = immediate(pumps)
    conn.limit_rate(A, 1.0)  # one a second, the latest value
    put(conn, quote("AAPL", 1), A)
    put(conn, quote("AAPL", 2), A)
    await a_pass()
    # one release in this interval, and it is the latest value the gateway had
    assert payloads(sock_of(conn)) == [[quote("AAPL", 2).payload]]
    assert conn.outbox.held == 0


async def test_a_degraded_client_releases_the_latest_of_the_pass(pumps: Pumps) -> None:
    conn = immediate(pumps)
    conn.outbox.conflate_all(0.5)  # degraded: every quote key at most twice a second
    put(conn, quote("AAPL", 1), A)
    put(conn, quote("AAPL", 2), A)
    await a_pass()
    assert payloads(sock_of(conn)) == [[quote("AAPL", 2).payload]]
    assert conn.outbox.held == 0


async def test_early_writes_counts_only_writes_made(pumps: Pumps) -> None:
    conn = immediate(pumps)
    sock = sock_of(conn)
    clock = pumps.clock
    assert isinstance(clock, ManualClock)
    sock.capacity = 1  # the first write takes the transport over its high-water mark
    put(conn, quote("AAPL", 1), A)
    await a_pass()
    assert len(sock.written) == 1
    assert not sock.writable  # unnoticed: the write emptied the outbox
    clock.advance(0.001)  # the next fan-out pass
    put(conn, quote("AAPL", 2), A)
    put(conn, quote("AAPL", 3), A)  # SUPERSEDES: an early write is tried, nothing written
    assert len(sock.written) == 1
    assert conn.stats.early_writes == 0
