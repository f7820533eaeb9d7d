"""Slow consumers, told apart from a busy gateway.

- A client that does not take what is written to it is closed with 1013 and a reason, and
  gets that close frame: every frame before it arrives whole, nothing is cut off.
- A client that reads is never closed for the gateway's own lag, even with the machine
  loaded and the gateway overloaded: the gateway sheds load (skips simulator ticks,
  conflates) and says so instead.
- Quotes are conflated for a stalled client, which is kept; nobody else notices either.

A client that stops reading altogether is closed by the time rule (``slow_client_timeout_s``)
long before its backlog reaches the soft mark of degrading (half its budget), so these
behave as before degrading existed; a reader that falls behind is degraded first
(tests/integration/test_degrade.py), and the one test here that reads slowly until it
is closed runs with degrading off.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from support.load import cpu_load
from support.server import Server, start_server
from support.wsclient import StalledClient, recv_json, send_json

ALL = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY", "BTC/USDT", "ETH/USDT"]


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A fast feed (about 1,500 trades a second) with the default client budgets."""
    srv = start_server(tmp_path_factory.mktemp("busy"), rate=5000, batch_ms=20)
    yield srv
    srv.stop()


def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_stalled_trades_client_is_closed_with_1013_and_gets_the_close_frame(
    busy: Server,
) -> None:
    before = busy.metric("tickcast_slow_client_closes_total")
    aborts = busy.metric("tickcast_slow_client_aborts_total")
    client = StalledClient(busy.feed)
    try:
        client.send_json({"action": "subscribe", "symbols": ALL, "channels": ["trades"]})
        # Stop reading: the kernel buffers fill, the socket blocks, and after
        # slow_client_timeout_s (2 s) with trades waiting the server gives up.
        assert wait_for(
            lambda: busy.metric("tickcast_slow_client_closes_total") > before, timeout=30
        ), "the stalled client was never closed"
        outcome = client.read_slowly(bytes_per_s=10e6, timeout=20)
        assert not outcome.eof_before_close, "the connection ended without a close frame"
        assert outcome.code == 1013
        assert outcome.reason.startswith("slow consumer: ")
        trades = [json.loads(m) for m in client.messages if m.startswith(b'{"type":"trade"')]
        assert trades, "trades flowed before the client stalled"
        assert busy.metric("tickcast_slow_client_aborts_total") == aborts
    finally:
        client.close()


@pytest.fixture(scope="module")
def undegraded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The busy feed with degrading turned off (``degrade_soft=0``): a slow client is
    closed at its budget, as on a front whose protocol cannot say it was degraded."""
    srv = start_server(
        tmp_path_factory.mktemp("undegraded"), rate=5000, batch_ms=20, degrade_soft=0
    )
    yield srv
    srv.stop()


def test_a_reader_slower_than_its_stream_gets_every_frame_whole_then_1013(
    undegraded: Server,
) -> None:
    """Reading 40 KB/s of a ~200 KB/s stream, never degraded: closed as slow, and the
    close frame arrives behind whatever the server had already written, never a frame
    cut in the middle. (With degrading on, the default, such a reader is degraded
    instead: tests/integration/test_degrade.py.)"""
    busy = undegraded
    aborts = busy.metric("tickcast_slow_client_aborts_total")
    client = StalledClient(busy.feed + "?seq=1")
    try:
        client.send_json({"action": "subscribe", "symbols": ALL, "channels": ["trades"]})
        outcome = client.read_slowly(bytes_per_s=40_000, timeout=120)
        assert not outcome.eof_before_close, (
            f"no close frame after {outcome.seconds:.0f} s and {outcome.bytes} bytes"
        )
        assert outcome.code == 1013, outcome
        assert outcome.reason.startswith("slow consumer: ")
        # Every message it got is whole JSON, in order per topic.
        trades = [json.loads(m) for m in client.messages if b'"type":"trade"' in m]
        assert trades
        seqs: dict[str, list[int]] = {}
        for message in trades:
            seqs.setdefault(message["topic"], []).append(message["seq"])
        assert all(b == a + 1 for s in seqs.values() for a, b in itertools.pairwise(s))
        assert busy.metric("tickcast_slow_client_aborts_total") == aborts
    finally:
        client.close()


def test_a_client_that_takes_nothing_more_after_the_verdict_is_aborted_and_counted(
    busy: Server,
) -> None:
    closes = busy.metric("tickcast_slow_client_closes_total")
    aborts = busy.metric("tickcast_slow_client_aborts_total")
    client = StalledClient(busy.feed)
    try:
        client.send_json({"action": "subscribe", "symbols": ALL, "channels": ["trades"]})
        assert wait_for(
            lambda: busy.metric("tickcast_slow_client_closes_total") > closes, timeout=30
        )
        # It never reads again: after close_timeout_s (5 s) without progress the server
        # gives up on the closing handshake, aborts, and counts it apart.
        assert wait_for(
            lambda: busy.metric("tickcast_slow_client_aborts_total") > aborts, timeout=30
        ), "the stalled connection was never aborted"
    finally:
        client.close()


def test_stalled_quotes_client_is_conflated_and_kept(busy: Server) -> None:
    before = busy.metric("tickcast_slow_client_closes_total")
    conflated = busy.metric("tickcast_conflated_total")
    client = StalledClient(busy.feed + "?seq=1")
    try:
        client.send_json({"action": "subscribe", "symbols": ALL})
        time.sleep(3)  # stalled while 15,000 quotes are published
        assert busy.metric("tickcast_slow_client_closes_total") == before
        assert busy.metric("tickcast_conflated_total") > conflated  # and it is counted
        # Read again: the connection is alive and answers a ping behind the backlog.
        client.send_json({"action": "ping"})
        client.sock.settimeout(5)
        deadline = time.monotonic() + 10
        pong = False
        while not pong and time.monotonic() < deadline:
            client.protocol.receive_data(client.sock.recv(1 << 20))
            for event in client.protocol.events_received():
                message = json.loads(bytes(event.data))
                pong = pong or message.get("type") == "pong"
                client.messages.append(bytes(event.data))
        assert pong
        quotes = [json.loads(m) for m in client.messages if b'"topic":"quotes.' in m]
        seqs: dict[str, list[int]] = {}
        for quote in quotes:
            seqs.setdefault(quote["topic"], []).append(quote["seq"])
        # Conflation: the stalled period shows as jumps in seq, never as reordering.
        assert any(b - a > 1 for s in seqs.values() for a, b in itertools.pairwise(s))
        assert all(s == sorted(s) for s in seqs.values())
    finally:
        client.close()


async def read_stream(
    url: str, symbols: list[str], seconds: float, channels: tuple[str, ...] = ("trades",)
) -> tuple[int, int]:
    """Read as fast as possible for ``seconds``: (messages, seq gaps on reliable topics).

    Quotes may jump (conflation); trades, bars and book deltas must not. A close ends it
    with ConnectionClosed. ``max_queue=None``: websockets stops reading the socket when
    16 messages wait unread, so with a busy feed its closing handshake would wait behind
    them until its own close_timeout (10 s) instead of reading on to the close frame.
    """
    async with connect(url + "?seq=1", max_size=None, max_queue=None) as ws:
        await send_json(ws, {"action": "subscribe", "symbols": symbols, "channels": channels})
        await recv_json(ws)
        received = gaps = 0
        last: dict[str, int] = {}
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            message = await recv_json(ws, 10)
            received += 1
            topic = message["topic"]
            previous = last.get(topic)
            if previous is not None and not topic.startswith("quotes."):
                gaps += message["seq"] != previous + 1
            last[topic] = message["seq"]
        return received, gaps


async def test_fast_client_keeps_up_beside_stalled_ones_on_a_loaded_machine(
    busy: Server,
) -> None:
    process = psutil.Process(busy.proc.pid)
    rss_before = process.memory_info().rss
    slow_before = busy.metric("tickcast_slow_client_closes_total")
    stalled = [StalledClient(busy.feed) for _ in range(5)]
    try:
        for client in stalled:
            client.send_json(
                {"action": "subscribe", "symbols": ALL, "channels": ["quotes", "trades"]}
            )
        with cpu_load():  # every core busy with something else as well
            received, gaps = await read_stream(busy.feed, ALL, seconds=6)
        # A reader that reads is never closed (ConnectionClosed would have ended
        # read_trades) and loses nothing: every trade, in order, whatever the
        # stalled ones do and however busy the machine is.
        assert gaps == 0
        assert received > 500
        # The stalled ones were closed as slow meanwhile, and memory stayed bounded.
        assert busy.metric("tickcast_slow_client_closes_total") >= slow_before + 5
        rss_after = process.memory_info().rss
        assert rss_after - rss_before < 64 * 1024 * 1024, "server memory must stay bounded"
    finally:
        for client in stalled:
            client.close()


async def test_an_overloaded_gateway_sheds_load_and_never_closes_its_reader(
    tmp_path: Path,
) -> None:
    """200,000 ticks/s is more than one core can simulate and publish: the gateway falls
    behind its feed. It skips simulator ticks (counted) to keep time for writing,
    reports itself overloaded, and the client that reads everything it is sent (every
    channel of a symbol: quotes, trades, bars and book deltas) keeps its connection and
    gets every trade, bar and book delta, in order."""
    srv = start_server(tmp_path, rate=200_000)
    try:
        received, gaps = await read_stream(
            srv.feed, ["AAPL"], seconds=8, channels=("quotes", "trades", "bars", "book")
        )
        assert gaps == 0
        assert received > 100
        assert srv.metric("tickcast_slow_client_closes_total") == 0
        assert srv.metric("tickcast_overload_closes_total") == 0
        assert srv.metric('tickcast_skipped_events_total{provider="simulator"}') > 0
        assert srv.metric("tickcast_overload_episodes_total") >= 1
        assert "gateway overloaded" in srv.log()
    except ConnectionClosed as closed:  # pragma: no cover - the failure this test catches
        pytest.fail(f"the reader was closed: {closed}")
    finally:
        srv.stop()


async def test_stalled_clients_do_not_delay_the_low_latency_path(tmp_path: Path) -> None:
    srv = start_server(tmp_path, rate=2000, batch_ms=0)
    try:
        stalled = StalledClient(srv.feed)
        stalled.send_json({"action": "subscribe", "symbols": ALL, "channels": ["trades"]})
        async with connect(srv.feed) as ws:
            await send_json(ws, {"action": "subscribe", "symbols": ["AAPL"]})
            await recv_json(ws)
            count = 0
            started = time.monotonic()
            while time.monotonic() - started < 2:
                await asyncio.wait_for(ws.recv(), 2)
                count += 1
            assert count > 50  # about 2,000/9 AAPL quotes a second, none batched
        stalled.close()
    finally:
        srv.stop()
