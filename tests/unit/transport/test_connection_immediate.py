"""Batch 0 sends every update while the client takes its data: a quote whose predecessor
of the same event-loop pass is still pending has that predecessor written first (one
early write), the rest of the pass conflates, and a client whose socket refuses data gets
the latest values. Windows above 0 conflate within the window, as always.

The socket, session and helpers are ``test_connection``'s; the pump is the real one of
window 0, whose pass runs on the test's event loop (``asyncio.sleep(0)``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from support.clock import ManualClock
from tickcast.hub.pump import Pumps
from tickcast.protocols.wire import Encoded
from tickcast.transport.connection import Connection
from unit.transport.test_connection import (
    FakeSocket,
    block,
    connect,
    put,
    quote,
    sock_of,
    trade,
)

KEY = "quotes.AAPL"


@pytest.fixture
async def pumps() -> AsyncIterator[Pumps]:
    pumps = Pumps(ManualClock())
    yield pumps
    pumps.close()


def payloads(sock: FakeSocket) -> list[list[bytes]]:
    """Each write's message payloads, in order (the frames' headers cut)."""
    writes = []
    for data in sock.written:
        messages, at = [], 0
        while at < len(data):
            length = data[at + 1] & 0x7F
            start = at + 2
            if length == 126:
                length, start = int.from_bytes(data[at + 2 : at + 4], "big"), at + 4
            messages.append(data[start : start + length])
            at = start + length
        writes.append(messages)
    return writes


def q(i: int) -> Encoded:
    return quote("AAPL", i)


def immediate(pumps: Pumps) -> Connection:
    return connect(pumps.get(0.0), max_bytes=100_000)


async def a_pass() -> None:
    """The rest of the event-loop pass: the window-0 pump flushes."""
    await asyncio.sleep(0)


async def test_two_quotes_of_a_symbol_in_one_pass_both_go_out_in_order(pumps: Pumps) -> None:
    conn = immediate(pumps)
    put(conn, q(1), KEY)
    put(conn, trade(1))
    put(conn, q(2), KEY)
    await a_pass()
    assert payloads(sock_of(conn)) == [[q(1).payload, trade(1).payload], [q(2).payload]]
    assert conn.stats.early_writes == 1
    assert conn.outbox.conflated == 0


async def test_a_third_of_the_same_pass_conflates_with_the_second(pumps: Pumps) -> None:
    conn = immediate(pumps)
    for i in (1, 2, 3):
        put(conn, q(i), KEY)
    await a_pass()
    assert payloads(sock_of(conn)) == [[q(1).payload], [q(3).payload]]
    assert conn.stats.early_writes == 1
    assert conn.outbox.conflated == 1


async def test_each_pass_takes_every_update_again(pumps: Pumps) -> None:
    conn = immediate(pumps)
    clock = pumps.clock
    assert isinstance(clock, ManualClock)
    for first in (1, 3):
        put(conn, q(first), KEY)
        put(conn, q(first + 1), KEY)
        await a_pass()
        clock.advance(0.001)  # the next fan-out pass comes at its own time
    assert payloads(sock_of(conn)) == [[q(i).payload] for i in (1, 2, 3, 4)]
    assert conn.stats.early_writes == 2
    assert conn.outbox.conflated == 0


async def test_a_client_whose_socket_refuses_data_gets_the_latest_value(pumps: Pumps) -> None:
    conn = immediate(pumps)
    sock = sock_of(conn)
    block(conn)
    for i in (1, 2, 3):
        put(conn, q(i), KEY)
    await a_pass()
    assert sock.written == []
    assert conn.stats.early_writes == 0
    assert conn.outbox.conflated == 2
    sock.drained()
    assert payloads(sock) == [[q(3).payload]]
    clock = pumps.clock
    assert isinstance(clock, ManualClock)
    clock.advance(0.001)
    # drained: every update again
    put(conn, q(4), KEY)
    put(conn, q(5), KEY)
    await a_pass()
    assert payloads(sock)[1:] == [[q(4).payload], [q(5).payload]]


async def test_an_early_write_that_fills_the_socket_conflates_the_rest(pumps: Pumps) -> None:
    conn = immediate(pumps)
    sock = sock_of(conn)
    sock.capacity = 1  # the early write fills it: the socket refuses data from there
    put(conn, q(1), KEY)
    put(conn, q(2), KEY)
    put(conn, q(3), KEY)
    await a_pass()
    assert payloads(sock) == [[q(1).payload]]
    assert conn.outbox.flush(conn.clock.monotonic(), True) == [q(3)]


async def test_a_window_above_0_conflates_within_it(pumps: Pumps) -> None:
    conn = connect(pumps.get(0.05), max_bytes=100_000)
    put(conn, q(1), KEY)
    put(conn, q(2), KEY)
    assert sock_of(conn).written == []
    assert conn.outbox.flush(conn.clock.monotonic(), True) == [q(2)]
    assert conn.stats.early_writes == 0


async def test_a_gateway_behind_makes_no_early_write(pumps: Pumps) -> None:
    conn = immediate(pumps)
    conn.pump.behind = True  # its last pass ran out of time with writers left
    for i in (1, 2, 3):
        put(conn, q(i), KEY)
    assert sock_of(conn).written == []
    assert conn.stats.early_writes == 0
    assert conn.outbox.flush(conn.clock.monotonic(), True) == [q(3)]
