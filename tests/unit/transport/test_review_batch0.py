"""Review of batch 0's early writes (commits 4828987, d0b6653): defects found, each
marked xfail(strict) with its cause, so that each test fails once it is fixed.

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
from unit.transport.test_connection import connect, put, quote, sock_of, trade
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


@pytest.mark.xfail(
    strict=True,
    reason="connection.py:298: one early write per connection per fan-out pass "
    "(_early_at is per connection, not per key): a second symbol's second quote of the "
    "pass conflates, where docs/market-feed.md (batch_ms paragraph), decisions.md and "
    "the Slow clients section say a symbol's quotes conflate only from its third",
)
async def test_a_second_symbol_repeating_in_the_pass_keeps_its_second_quote(
    pumps: Pumps,
) -> None:
    conn = immediate(pumps)
    put(conn, quote("AAPL", 1), A)
    put(conn, quote("AAPL", 2), A)  # an early write: AAPL 1 goes out
    put(conn, quote("MSFT", 1), B)
    put(conn, quote("MSFT", 2), B)  # MSFT's second: the docs say it is not conflated
    await a_pass()
    sent = [m for write in payloads(sock_of(conn)) for m in write]
    assert quote("MSFT", 1).payload in sent, sent
    assert conn.outbox.conflated == 0


@pytest.mark.xfail(
    strict=True,
    reason="outbox.py:194 answers SUPERSEDES before the key's rate is looked at, and "
    "connection.py:301 writes the older quote: a rated key (max_rate) writes a value "
    "already superseded in the same pass and holds the latest for a whole interval, "
    "against 'at most N a second, always the latest value' (market-feed.md max_rate)",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="outbox.py:194 / connection.py:301, as for max_rate: a degraded client "
    "(conflate_all, 'the latest value at most twice a second') gets the superseded "
    "quote written early and the latest held back for the degraded interval",
)
async def test_a_degraded_client_releases_the_latest_of_the_pass(pumps: Pumps) -> None:
    conn = immediate(pumps)
    conn.outbox.conflate_all(0.5)  # degraded: every quote key at most twice a second
    put(conn, quote("AAPL", 1), A)
    put(conn, quote("AAPL", 2), A)
    await a_pass()
    assert payloads(sock_of(conn)) == [[quote("AAPL", 2).payload]]
    assert conn.outbox.held == 0


@pytest.mark.xfail(
    strict=True,
    reason="connection.py:300 counts an early write before flush finds whether the "
    "socket takes data: a socket that went over its high-water mark with a write that "
    "emptied the outbox (flush returns without _check_blocked) makes "
    "tickcast_outbox_early_writes_total count a write that never happened",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="connection.py:298 takes a pass to be one `now`, which each publish batch "
    "reads anew (hub/publisher.py:101, cluster/publisher.py:285): two batches in one "
    "event-loop pass (two providers, a leader's batch split in parts) give a client one "
    "early write each, three writes or more in that pass, where market-feed.md's "
    "batch_ms paragraph says at most two writes per client per (event-loop) pass",
)
async def test_two_publish_batches_in_one_loop_pass_make_at_most_two_writes(
    pumps: Pumps,
) -> None:
    conn = immediate(pumps)
    clock = pumps.clock
    assert isinstance(clock, ManualClock)
    for first in (1, 3):  # two publish batches before the loop pass ends
        put(conn, quote("AAPL", first), A)
        put(conn, quote("AAPL", first + 1), A)
        clock.advance(0.0001)  # each batch reads the clock for its own `now`
    await a_pass()
    assert len(sock_of(conn).written) <= 2


@pytest.mark.xfail(
    strict=True,
    reason="connection.py:298-304: from a symbol's third quote in one pass the latest "
    "takes the waiting quote's place (outbox.py:195), ahead of a trade that came before "
    "it, while the client takes its data: what decisions.md ('Conflation keeps the first "
    "position') gives as the reason the second is no longer conflated",
)
async def test_a_third_quote_of_the_pass_never_overtakes_a_trade(pumps: Pumps) -> None:
    conn = immediate(pumps)
    put(conn, quote("AAPL", 1), A)
    put(conn, trade(1))
    put(conn, quote("AAPL", 2), A)  # the early write: quote 1 and trade 1
    put(conn, trade(2))
    put(conn, quote("AAPL", 3), A)  # conflates into quote 2's place, before trade 2
    await a_pass()
    sent = [m for write in payloads(sock_of(conn)) for m in write]
    assert sent.index(trade(2).payload) < sent.index(quote("AAPL", 3).payload), sent
