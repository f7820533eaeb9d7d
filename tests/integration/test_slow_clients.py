"""Slow consumers: trades are never dropped (the slow client is closed with 1013), quotes
are conflated (the slow client is kept), and nobody else notices either."""

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

from support.server import Server, start_server
from support.wsclient import StalledClient, recv_json, send_json

ALL = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY", "BTC/USDT", "ETH/USDT"]


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A fast feed and small outboxes, so that a stalled client overflows in seconds."""
    srv = start_server(
        tmp_path_factory.mktemp("busy"),
        rate=5000,
        outbox_max_items=64,
        batch_ms=20,
        close_timeout_s=10,
    )
    yield srv
    srv.stop()


def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_stalled_trades_client_is_closed_with_1013(busy: Server) -> None:
    before = busy.metric("tickcast_slow_client_closes_total")
    client = StalledClient(busy.feed)
    try:
        client.send_json({"action": "subscribe", "symbols": ALL, "channels": ["trades"]})
        # Stop reading: the kernel buffers fill, then the outbox, then the server gives up.
        assert wait_for(
            lambda: busy.metric("tickcast_slow_client_closes_total") > before, timeout=30
        ), "the stalled client was never closed"
        code = client.read_until_closed()
        assert code == 1013
        trades = [json.loads(m) for m in client.messages if m.startswith(b'{"type":"trade"')]
        assert trades, "trades flowed before the client stalled"
    finally:
        client.close()


def test_stalled_quotes_client_is_conflated_and_kept(busy: Server) -> None:
    before = busy.metric("tickcast_slow_client_closes_total")
    client = StalledClient(busy.feed + "?seq=1")
    try:
        client.send_json({"action": "subscribe", "symbols": ALL})
        time.sleep(3)  # stalled while 15,000 quotes are published
        assert busy.metric("tickcast_slow_client_closes_total") == before
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


async def test_fast_client_keeps_up_beside_stalled_ones_and_memory_stays_bounded(
    busy: Server,
) -> None:
    process = psutil.Process(busy.proc.pid)
    rss_before = process.memory_info().rss
    stalled = [StalledClient(busy.feed) for _ in range(5)]
    try:
        for client in stalled:
            client.send_json(
                {"action": "subscribe", "symbols": ALL, "channels": ["quotes", "trades"]}
            )
        async with connect(busy.feed + "?seq=1") as ws:
            await send_json(ws, {"action": "subscribe", "symbols": ALL, "channels": ["trades"]})
            await recv_json(ws)
            received = 0
            last: dict[str, int] = {}
            gaps = 0
            started = time.monotonic()
            while time.monotonic() - started < 5:
                message = await recv_json(ws)
                received += 1
                previous = last.get(message["topic"])
                if previous is not None and message["seq"] != previous + 1:
                    gaps += 1
                last[message["topic"]] = message["seq"]
        # 5,000 ticks/s with 30% trades: about 7,500 trades in 5 s. The fast client must
        # get (nearly) all of them, in order, with no gap, whatever the stalled ones do.
        assert gaps == 0
        assert received > 3000
        rss_after = process.memory_info().rss
        assert rss_after - rss_before < 64 * 1024 * 1024, "server memory must stay bounded"
    finally:
        for client in stalled:
            client.close()


async def test_stalled_clients_do_not_delay_the_low_latency_path(tmp_path: Path) -> None:
    srv = start_server(tmp_path, rate=2000, batch_ms=0, outbox_max_items=64)
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
