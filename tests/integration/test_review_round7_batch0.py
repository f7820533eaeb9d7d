"""Review of batch 0's early writes (commits 4828987, d0b6653) through real sockets: the
gateway in the test's loop at ``batch_ms = 0`` with a silent feed, the test ingesting
one provider batch at a time, and a trade after it as the end marker (trades are never
rated or conflated, so once it is read everything before it was written). Unit tests for
the same rules are in tests/unit/transport/test_review_batch0.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from support.inloop import Gateway, running_gateway
from support.wsclient import recv_json, recv_until, send_json
from tickcast.model.market import Quote, Trade


def _quote(symbol: str, price: float) -> Quote:
    return Quote(symbol, price, price, 1, 1, price, 1000, time.time(), "test")


async def _subscribe(gateway: Gateway, ws: ClientConnection, **extra: Any) -> None:
    request = {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "channels": ["quotes", "trades"]}
    await send_json(ws, {**request, **extra})
    await recv_until(ws, lambda m: m.get("type") == "subscribed")


async def _quotes_until_the_marker(
    gateway: Gateway, ws: ClientConnection
) -> list[tuple[str, float]]:
    """Ingest the end marker (a trade) and read up to it: the quotes read before it."""
    gateway.node.ingest([Trade("AAPL", 1.0, 1, time.time(), "test", "marker")])
    quotes = []
    while True:
        message = await recv_json(ws)
        if message.get("trade_id") == "marker":
            return quotes
        if "bid" in message:
            quotes.append((message["symbol"], message["price"]))


async def test_a_rated_client_at_batch_0_gets_the_latest_quote_of_a_batch(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, batch_ms=0) as gateway, connect(gateway.feed) as ws:
        await _subscribe(gateway, ws, max_rate=0.001)  # one quote per 1000 s per symbol
        gateway.node.ingest([_quote("AAPL", 101.0), _quote("AAPL", 102.0)])  # one batch
        assert await _quotes_until_the_marker(gateway, ws) == [("AAPL", 102.0)]


async def test_one_early_write_per_batch_then_the_latest_value(tmp_path: Path) -> None:
    """As market-feed.md's batch_ms paragraph says: AAPL's second quote has the first
    written early; MSFT's second, after that early write in the same batch, replaces
    the first (as in a batch)."""
    async with running_gateway(tmp_path, batch_ms=0) as gateway, connect(gateway.feed) as ws:
        await _subscribe(gateway, ws)
        batch = [_quote(s, p) for s, p in (("AAPL", 1), ("AAPL", 2), ("MSFT", 3), ("MSFT", 4))]
        gateway.node.ingest(batch)
        got = await _quotes_until_the_marker(gateway, ws)
        assert got == [("AAPL", 1.0), ("AAPL", 2.0), ("MSFT", 4.0)]
