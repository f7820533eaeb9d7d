"""Front 1 over real sockets, written from the original protocol's examples
(docs/market-feed.md)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from support.server import Server, start_server
from support.wsclient import recv_json, recv_until, send_json

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MARKET_KEYS = ["symbol", "price", "bid", "ask", "volume", "timestamp", "source"]


def is_data(message: Any) -> bool:
    return isinstance(message, dict) and "type" not in message


async def test_subscribe_confirms_and_streams_market_data(server: Server) -> None:
    async with connect(server.feed) as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
        assert await recv_json(ws) == {"type": "subscribed", "symbols": ["AAPL", "MSFT"]}
        seen: set[str] = set()
        while seen != {"AAPL", "MSFT"}:
            message = await recv_json(ws)
            assert list(message) == MARKET_KEYS
            assert message["symbol"] in {"AAPL", "MSFT"}
            assert message["source"] == "simulator"
            assert ISO_MS.match(message["timestamp"])
            assert 0 < message["bid"] < message["ask"]
            assert isinstance(message["volume"], int)
            seen.add(message["symbol"])


async def test_unsubscribe_stops_updates(server: Server) -> None:
    async with connect(server.feed) as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
        await recv_until(ws, lambda m: m.get("type") == "subscribed")
        await recv_until(ws, lambda m: m.get("symbol") == "AAPL")
        await send_json(ws, {"action": "unsubscribe", "symbols": ["AAPL"]})
        await recv_until(ws, lambda m: m.get("type") == "unsubscribed")
        symbols = set()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            symbols.add((await recv_json(ws)).get("symbol"))
        assert "MSFT" in symbols
        assert "AAPL" not in symbols


async def test_ping_gets_pong_with_timestamp(server: Server) -> None:
    async with connect(server.feed) as ws:
        await send_json(ws, {"action": "ping"})
        pong = await recv_json(ws)
        assert pong["type"] == "pong"
        assert ISO_MS.match(pong["timestamp"])


MALFORMED = [
    pytest.param("not json", "invalid JSON", id="bad-json"),
    pytest.param("[1, 2]", "expected a JSON object", id="not-an-object"),
    pytest.param(json.dumps({"symbols": ["AAPL"]}), "missing 'action'", id="no-action"),
    pytest.param(json.dumps({"action": "dance"}), "unknown action", id="unknown-action"),
    pytest.param(json.dumps({"action": "subscribe", "symbols": "AAPL"}), "symbols", id="str"),
    pytest.param(json.dumps({"action": "subscribe", "symbols": [1]}), "symbols", id="int"),
    pytest.param(json.dumps({"action": "subscribe", "symbols": []}), "symbols", id="empty"),
    pytest.param(json.dumps({"action": "subscribe"}), "symbols", id="missing-symbols"),
    pytest.param(
        json.dumps({"action": "subscribe", "symbols": ["NOPE"]}), "unknown symbol", id="unknown"
    ),
    pytest.param(
        json.dumps({"action": "subscribe", "symbols": ["../x"]}), "invalid symbol", id="grammar"
    ),
    pytest.param(
        json.dumps({"action": "subscribe", "symbols": ["AAPL"], "channels": ["gossip"]}),
        "unknown channel",
        id="unknown-channel",
    ),
    pytest.param(
        json.dumps({"action": "subscribe", "symbols": ["AAPL"], "resume": {"quotes.AAPL": -1}}),
        "resume",
        id="bad-resume",
    ),
]


@pytest.mark.parametrize(("raw", "fragment"), MALFORMED)
async def test_malformed_input_gets_error_and_connection_keeps_working(
    server: Server, raw: str, fragment: str
) -> None:
    async with connect(server.feed) as ws:
        await ws.send(raw)
        error = await recv_json(ws)
        assert error["type"] == "error"
        # the original server's exact text first, so clients that match it keep working
        assert error["message"].startswith("Invalid subscription request: ")
        assert fragment in error["message"]
        await send_json(ws, {"action": "subscribe", "symbols": ["MSFT"]})
        assert await recv_json(ws) == {"type": "subscribed", "symbols": ["MSFT"]}
        await recv_until(ws, lambda m: m.get("symbol") == "MSFT")


async def test_binary_frame_gets_error_and_connection_keeps_working(server: Server) -> None:
    async with connect(server.feed) as ws:
        await ws.send(b"\x00\x01")
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["message"].startswith("Invalid subscription request: ")
        await send_json(ws, {"action": "ping"})
        assert (await recv_json(ws))["type"] == "pong"


async def test_unknown_symbol_subscribes_nothing(server: Server) -> None:
    async with connect(server.feed) as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ["AAPL", "NOPE"]})
        reply = await recv_json(ws)
        assert reply["message"] == "Invalid subscription request: unknown symbol: NOPE"
        with pytest.raises(TimeoutError):
            await recv_json(ws, wait_s=0.5)


async def test_too_many_symbols_is_refused(server: Server) -> None:
    # The shared server allows 20 subscriptions; 9 symbols x 3 channels = 27.
    symbols = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY", "BTC/USDT", "ETH/USDT"]
    async with connect(server.feed) as ws:
        request = {"action": "subscribe", "symbols": symbols, "channels": ["quotes", "trades"]}
        await send_json(ws, {**request, "channels": ["quotes", "trades", "bars"]})
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert "Too many symbols" in error["message"]
        await send_json(ws, {"action": "subscribe", "symbols": symbols})
        assert (await recv_json(ws))["type"] == "subscribed"


async def test_trades_and_book_channels(server: Server) -> None:
    async with connect(server.feed) as ws:
        request = {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades", "book"]}
        await send_json(ws, request)
        assert (await recv_json(ws))["type"] == "subscribed"
        book = await recv_until(ws, lambda m: m.get("type") == "book")
        assert book["snapshot"] is True, "the first book message is a full snapshot"
        assert book["bids"]
        assert book["asks"]
        assert book["bids"][0][0] < book["asks"][0][0]
        trade = await recv_until(ws, lambda m: m.get("type") == "trade")
        assert trade["symbol"] == "AAPL"
        assert trade["size"] > 0
        assert ISO_MS.match(trade["timestamp"])
        quotes = [m async for m in _take(ws, 20) if is_data(m)]
        assert not quotes, "quotes were not asked for"


async def _take(ws: Any, n: int) -> Any:
    for _ in range(n):
        yield await recv_json(ws)


async def test_seq_option_numbers_each_stream_without_gaps(server: Server) -> None:
    async with connect(server.feed + "?seq=1") as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"]})
        await recv_until(ws, lambda m: m.get("type") == "subscribed")
        seqs = [m["seq"] async for m in _take(ws, 30)]
        assert all(b == a + 1 for a, b in itertools.pairwise(seqs)), seqs


async def test_resume_with_history_hit_replays_missed_messages(server: Server) -> None:
    topic = "trades.MSFT"
    async with connect(server.feed + "?seq=1") as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ["MSFT"], "channels": ["trades"]})
        await recv_until(ws, lambda m: m.get("type") == "subscribed")
        last = (await recv_until(ws, lambda m: m.get("topic") == topic))["seq"]
    await asyncio.sleep(0.3)  # trades keep coming while we are away
    async with connect(server.feed + "?seq=1") as ws:
        request = {
            "action": "subscribe",
            "symbols": ["MSFT"],
            "channels": ["trades"],
            "resume": {topic: last},
        }
        await send_json(ws, request)
        await recv_until(ws, lambda m: m.get("type") == "subscribed")
        replay = [m async for m in _take(ws, 10)]
        assert all(m["topic"] == topic for m in replay)
        assert [m["seq"] for m in replay] == list(range(last + 1, last + 11))


async def test_resume_with_history_miss_sends_reset_then_snapshot(server: Server) -> None:
    async with connect(server.feed + "?seq=1") as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ["AAPL"]})
        await recv_until(ws, lambda m: m.get("type") == "subscribed")
        await recv_until(ws, lambda m: m.get("topic") == "quotes.AAPL")
    # History holds 64 updates per topic; seq 1 is long gone at 2,000 ticks/s.
    async with connect(server.feed + "?seq=1") as ws:
        request = {"action": "subscribe", "symbols": ["AAPL"], "resume": {"quotes.AAPL": 1}}
        await send_json(ws, request)
        await recv_until(ws, lambda m: m.get("type") == "subscribed")
        reset = await recv_json(ws)
        assert reset["type"] == "reset"
        assert reset["topic"] == "quotes.AAPL"
        assert reset["requested"] == 1
        assert reset["seq"] > 64
        snapshot = await recv_json(ws)
        assert snapshot["topic"] == "quotes.AAPL"
        assert snapshot["seq"] >= reset["seq"]


async def _read_until(ws: Any, done: Any) -> dict[str, dict[str, Any]]:
    """Read data messages until ``done(last)``; ``last`` maps each topic to its newest."""
    last: dict[str, dict[str, Any]] = {}
    while not done(last):
        message = await recv_json(ws)
        if is_data(message) or message.get("type") == "trade":
            last[message["topic"]] = message
    return last


async def test_resume_across_a_restart_gets_reset_and_snapshot_not_another_epochs_data(
    tmp_path: Path,
) -> None:
    """A client saw trades.AAPL up to seq >= 41 and then the server restarted: the new
    process numbers from 1 again, in a new epoch. Resuming with the old epoch must answer
    reset (epoch_changed) and the snapshot, never the new process's seqs 42.. as if they
    followed what the client saw."""
    channels = ["quotes", "trades"]
    settings: dict[str, object] = {"rate": 2000, "history_size": 256}
    first = start_server(tmp_path, **settings)
    try:
        async with connect(first.feed + "?seq=1") as ws:
            await send_json(ws, {"action": "subscribe", "symbols": ["AAPL"], "channels": channels})
            await recv_until(ws, lambda m: m.get("type") == "subscribed")
            before = await _read_until(
                ws,
                lambda last: (
                    "quotes.AAPL" in last and last.get("trades.AAPL", {}).get("seq", 0) >= 41
                ),
            )
    finally:
        first.stop()
    old_epoch = before["trades.AAPL"]["epoch"]
    assert before["quotes.AAPL"]["epoch"] == old_epoch

    second = start_server(tmp_path, port=first.port, **settings)
    try:
        # The new process's trades.AAPL passes the seq the client saw: old code would
        # replay 42.. of an unrelated stream.
        async with connect(second.feed + "?seq=1") as probe:
            await send_json(
                probe, {"action": "subscribe", "symbols": ["AAPL"], "channels": channels}
            )
            await recv_until(probe, lambda m: m.get("type") == "subscribed")
            now = await _read_until(
                probe, lambda last: last.get("trades.AAPL", {}).get("seq", 0) >= 60
            )
        new_epoch = now["trades.AAPL"]["epoch"]
        assert new_epoch != old_epoch

        async with connect(second.feed + "?seq=1") as ws:
            resume = {
                topic: {"epoch": message["epoch"], "seq": message["seq"]}
                for topic, message in before.items()
            }
            request = {"action": "subscribe", "symbols": ["AAPL"], "channels": channels}
            await send_json(ws, {**request, "resume": resume})
            await recv_until(ws, lambda m: m.get("type") == "subscribed")
            after: dict[str, list[dict[str, Any]]] = {"quotes.AAPL": [], "trades.AAPL": []}
            while min(len(messages) for messages in after.values()) < 3:
                message = await recv_json(ws)
                after[message["topic"]].append(message)
    finally:
        second.stop()

    for topic, (reset, *rest) in after.items():
        assert reset == {
            "type": "reset",
            "topic": topic,
            "seq": reset["seq"],
            "requested": before[topic]["seq"],
            "reason": "epoch_changed",
            "epoch": new_epoch,
        }
        assert all(m["epoch"] == new_epoch for m in rest), "another epoch's data"
        assert all(m["seq"] >= reset["seq"] for m in rest), "replayed from history"
    # the quote snapshot follows its reset: the current value, of the new epoch
    assert after["quotes.AAPL"][1]["seq"] == after["quotes.AAPL"][0]["seq"]
    # trades have no snapshot: live trades only, after the current one
    assert after["trades.AAPL"][1]["seq"] > after["trades.AAPL"][0]["seq"]


async def test_array_frames_carry_whole_batches(server: Server) -> None:
    async with connect(server.feed + "?frames=array") as ws:
        symbols = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY"]
        await send_json(ws, {"action": "subscribe", "symbols": symbols})
        assert (await recv_json(ws)) == {"type": "subscribed", "symbols": symbols}
        batch = await recv_until(ws, lambda m: isinstance(m, list) and len(m) > 1)
        assert all(list(item) == MARKET_KEYS for item in batch)
        assert len({item["symbol"] for item in batch}) == len(batch), "one value per symbol"
        await send_json(ws, {"action": "ping"})
        assert (await recv_until(ws, lambda m: isinstance(m, dict)))["type"] == "pong"


async def test_application_heartbeat_is_opt_in(server: Server) -> None:
    async with connect(server.feed + "?heartbeat=1") as ws:
        heartbeat = await recv_json(ws, wait_s=3)
        assert heartbeat["type"] == "heartbeat"
        assert ISO_MS.match(heartbeat["timestamp"])


async def test_invalid_option_is_reported_and_defaults_apply(server: Server) -> None:
    async with connect(server.feed + "?heartbeat=soon") as ws:
        error = await recv_json(ws)
        assert error == {
            "type": "error",
            "message": "option heartbeat must be 0 or 1 to 3600 seconds",
        }
        await send_json(ws, {"action": "ping"})
        assert (await recv_json(ws))["type"] == "pong"


async def test_oversized_message_closes_with_1009_and_server_survives(server: Server) -> None:
    async with connect(server.feed, max_size=None) as ws:
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
    async with connect(server.feed) as ws:
        await send_json(ws, {"action": "ping"})
        assert (await recv_json(ws))["type"] == "pong"


async def test_new_subscriber_gets_current_quote_at_once(server: Server) -> None:
    async with connect(server.feed + "?seq=1") as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ["SPY"]})
        await recv_json(ws)  # subscribed
        first = await recv_json(ws)
        # The last-value cache's quote, not the next tick: the snapshot carries the
        # topic's current seq, published before this client subscribed, and the next
        # live quote follows it with the next seq.
        assert first["symbol"] == "SPY"
        following = await recv_json(ws)
        assert following["seq"] >= first["seq"] + 1


def test_health_ready_and_metrics(server: Server) -> None:
    assert httpx.get(f"{server.http}/health").json()["status"] == "ok"
    ready = httpx.get(f"{server.http}/ready")
    assert ready.status_code == 200
    assert ready.json()["providers"] == ["simulator"]
    text = httpx.get(f"{server.http}/metrics").text
    for name in (
        "tickcast_active_connections",
        "tickcast_subscriptions",
        "tickcast_messages_in_total",
        "tickcast_messages_out_total",
        "tickcast_outbox_depth",
        "tickcast_slow_client_closes_total",
        "tickcast_latency_seconds_bucket",
        "tickcast_events_in_total",
    ):
        assert name in text
    assert server.metric('tickcast_events_in_total{kind="quote"}') > 0
    assert server.metric('tickcast_events_in_total{kind="trade"}') > 0


async def test_bad_input_from_one_client_leaves_other_clients_untouched(server: Server) -> None:
    async with connect(server.feed + "?seq=1") as good:
        await send_json(good, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["trades"]})
        await recv_until(good, lambda m: m.get("type") == "subscribed")
        first = (await recv_json(good))["seq"]

        async with connect(server.feed, max_size=None) as bad:
            for raw in ["{", "[]", '{"action": 1}', "\x00" * 100, '{"action":"subscribe"}'] * 20:
                await bad.send(raw)
            errors = [await recv_json(bad) for _ in range(100)]
            assert all(e["type"] == "error" for e in errors)
            await bad.send("x" * (64 * 1024 + 1))  # then too big: this one is closed
            with pytest.raises(ConnectionClosed):
                await recv_json(bad)

        seqs = [first] + [m["seq"] async for m in _take(good, 30)]
        assert seqs == list(range(first, first + 31)), "no gap, no duplicate, still flowing"


async def test_connection_and_subscription_gauges_follow_clients(server: Server) -> None:
    def gauges() -> tuple[float, float]:
        return (
            server.metric("tickcast_active_connections"),
            server.metric("tickcast_subscriptions"),
        )

    async def settle(expected: tuple[float, float]) -> tuple[float, float]:
        for _ in range(50):  # other tests' connections may still be closing
            if (current := gauges()) == expected:
                break
            await asyncio.sleep(0.1)
        return current

    assert await settle((0, 0)) == (0, 0)
    async with connect(server.feed) as ws:
        request = {
            "action": "subscribe",
            "symbols": ["AAPL", "MSFT"],
            "channels": ["quotes", "trades"],
        }
        await send_json(ws, request)
        await recv_until(ws, lambda m: m.get("type") == "subscribed")
        assert await settle((1, 4)) == (1, 4)
    assert await settle((0, 0)) == (0, 0)
