"""Degrade before disconnecting, with real clients over real sockets.

- A market-feed client that falls behind (it stops reading, so its backlog passes the
  soft mark) is degraded, not closed: its quotes are conflated, its trades suspended
  with a ``degraded`` message per topic naming the last seq it was sent; once it reads
  again and catches up, each trade topic is replayed from history and ``resumed`` (or
  reset and snapshot), so that every trade seq it got is contiguous, or the hole is
  announced: never silent. A client reading beside it gets every trade, in order, and
  is told nothing of the other's trouble.
- A client whose backlog passes the hard mark (the outbox budget) before conflation
  and suspension could help is still closed with 1013.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.frames import Opcode

from support.server import Server, start_server
from support.wsclient import StalledClient, recv_json, send_json

ALL = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY", "BTC/USDT", "ETH/USDT"]
SUSPENDED = 'tickcast_degrade_transitions_total{to="suspended"}'


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def read_until(client: StalledClient, done: Callable[[list[Any]], bool], timeout: float) -> None:
    """Read as fast as possible (parsed, in ``client.messages``) until ``done`` says so
    of the messages read, or the server closes, or ``timeout``."""
    client.sock.settimeout(5)
    deadline = time.monotonic() + timeout
    parsed: list[Any] = []
    while time.monotonic() < deadline and client.protocol.close_rcvd is None:
        try:
            data = client.sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not data:
            break
        client.protocol.receive_data(data)
        for event in client.protocol.events_received():
            if event.opcode == Opcode.TEXT:
                client.messages.append(bytes(event.data))
                parsed.append(json.loads(bytes(event.data)))
        if done(parsed):
            return


def check_trades(messages: list[Any]) -> dict[str, list[str]]:
    """Walk a client's messages in order; fail on any silent hole in a trade topic.

    Returns each trade topic's story: "degraded", "replay" (replayed updates came),
    "reset", "resumed", in order.
    """
    last: dict[str, int] = {}
    reset_at: dict[str, int] = {}
    story: dict[str, list[str]] = {}
    suspended: set[str] = set()
    for m in messages:
        kind = m.get("type")
        topic = m.get("topic", "")
        if kind == "trade":
            seq = m["seq"]
            if topic in reset_at:  # after a reset: the snapshot (its seq), or what follows
                assert seq in (reset_at[topic], reset_at[topic] + 1), (m, reset_at[topic])
                del reset_at[topic]
            elif topic in last:
                assert seq == last[topic] + 1, f"silent hole in {topic}: {last[topic]} -> {seq}"
            if topic in suspended and story[topic][-1] == "degraded":
                story[topic].append("replay")
            last[topic] = seq
        elif kind == "degraded":
            assert topic.startswith("trades."), m
            # the hole's left edge is exactly the last seq the client got
            assert m["seq"] == last.get(topic, 0), (m, last.get(topic))
            assert m["reason"] == "slow_consumer"
            suspended.add(topic)
            story.setdefault(topic, []).append("degraded")
        elif kind == "reset":
            assert topic in suspended, m
            story[topic].append("reset")
            reset_at[topic] = m["seq"]
        elif kind == "resumed":
            assert topic in suspended, m
            suspended.discard(topic)
            # live updates follow from seq + 1
            reset_at.pop(topic, None)
            last[topic] = m["seq"]
            story[topic].append("resumed")
    return story


@pytest.fixture(scope="module", params=["replay", "reset"])
def degrading(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """A feed of about 600 trades a second, a small outbox budget (1,000 messages: the
    soft mark at 500), a short grace and hold, and a time rule long enough that a client
    that stops reading for a few seconds is degraded rather than evicted; with a history
    deep enough to replay what a client misses while it is suspended ("replay"), or so
    shallow that it never can ("reset": 4 updates a topic)."""
    srv = start_server(
        tmp_path_factory.mktemp("degrading"),
        rate=2000,
        batch_ms=20,
        outbox_max_items=1000,
        degrade_grace_s=0.2,
        degrade_hold_s=0.5,
        slow_client_timeout_s=60,
        history_size=20_000 if request.param == "replay" else 4,
    )
    yield srv, request.param
    srv.stop()


async def read_beside(url: str, stop: asyncio.Event) -> tuple[int, int, int]:
    """A client that reads everything until ``stop``: (trades, seq gaps, degrade notices)."""
    async with connect(url + "?seq=1", max_size=None, max_queue=None) as ws:
        await send_json(ws, {"action": "subscribe", "symbols": ALL, "channels": ["trades"]})
        await recv_json(ws)
        trades = gaps = notices = 0
        last: dict[str, int] = {}
        while not stop.is_set():
            message = await recv_json(ws, 10)
            kind = message.get("type")
            if kind in ("degraded", "resumed", "reset"):
                notices += 1
                continue
            topic = message["topic"]
            if topic in last:
                gaps += message["seq"] != last[topic] + 1
            last[topic] = message["seq"]
            trades += 1
        return trades, gaps, notices


async def test_a_client_that_falls_behind_is_degraded_told_and_resumed_without_a_hole(
    degrading: tuple[Server, str],
) -> None:
    srv, how = degrading
    before = {
        state: srv.metric(f'tickcast_degrade_transitions_total{{to="{state}"}}')
        for state in ("conflating", "suspended", "recovering", "normal", "closed")
    }
    slow_closes = srv.metric("tickcast_slow_client_closes_total")
    streams = srv.metric("tickcast_degraded_streams_total")
    stop = asyncio.Event()
    beside = asyncio.create_task(read_beside(srv.feed, stop))
    client = StalledClient(srv.feed + "?seq=1")
    try:
        client.send_json({"action": "subscribe", "symbols": ALL, "channels": ["quotes", "trades"]})
        # It stops reading: its socket blocks, its backlog passes the soft mark, it is
        # conflated, then (still over after the grace) its trades are suspended.
        suspended = await asyncio.to_thread(
            wait_for, lambda: srv.metric(SUSPENDED) > before["suspended"], 60
        )
        assert suspended, "the stalled client was never degraded"

        # It reads again, as fast as it can: the backlog drains, and each suspended
        # topic is replayed (or reset) and resumed. Read until every topic it was told
        # of is resumed, and some live trades after.
        def resumed_and_live(parsed: list[Any]) -> bool:
            open_: dict[str, int] = {}
            last_resumed = -1
            for i, m in enumerate(parsed):
                if m.get("type") == "degraded":
                    open_[m["topic"]] = open_.get(m["topic"], 0) + 1
                elif m.get("type") == "resumed":
                    open_[m["topic"]] -= 1
                    last_resumed = i
            caught_up = bool(open_) and not any(open_.values())
            return caught_up and len(parsed) > last_resumed + 200

        await asyncio.to_thread(read_until, client, resumed_and_live, 60)
        assert client.protocol.close_rcvd is None, client.protocol.close_rcvd
        messages = [json.loads(m) for m in client.messages]
        story = check_trades(messages)
        assert story, "no degraded message reached the client"
        for topic, steps in story.items():
            assert steps[0] == "degraded", (topic, steps)
            assert steps[-1] == "resumed", (topic, steps)
            assert steps.count("degraded") == steps.count("resumed"), (topic, steps)
            # the history decides how the hole is filled: replayed, or reset (told)
            assert how in steps, (topic, steps)
        # its quotes went on, conflated, all along
        assert any(m.get("symbol") and "type" not in m for m in messages)
        # counted
        assert srv.metric("tickcast_degraded_streams_total") >= streams + len(story)
        for state in ("conflating", "suspended", "recovering", "normal"):
            counted = srv.metric(f'tickcast_degrade_transitions_total{{to="{state}"}}')
            assert counted > before[state], state
        resumed = srv.metric('tickcast_resumed_streams_total{how="replay"}') + srv.metric(
            'tickcast_resumed_streams_total{how="reset"}'
        )
        assert resumed >= len(story)
        assert srv.metric("tickcast_slow_client_closes_total") == slow_closes
        assert srv.metric('tickcast_degrade_transitions_total{to="closed"}') == before["closed"]
    finally:
        client.close()
        stop.set()
    trades, gaps, notices = await asyncio.wait_for(beside, 30)
    # the client beside it: every trade, in order, and nothing about the other
    assert trades > 100
    assert gaps == 0
    assert notices == 0


def test_a_reader_slower_than_its_stream_is_degraded_not_closed_and_never_misses_silently(
    degrading: tuple[Server, str],
) -> None:
    """Reading 20 KB/s of a stream of about 100 KB/s for 15 s: its trades are suspended
    and resumed as it falls behind and catches up (its quotes conflated meanwhile), it
    is never closed, every frame arrives whole, and every trade seq it got follows the
    one before, or the hole between them was announced (degraded, then replayed or
    reset)."""
    srv, _ = degrading
    closes = srv.metric("tickcast_slow_client_closes_total")
    suspended = srv.metric(SUSPENDED)
    client = StalledClient(srv.feed + "?seq=1")
    try:
        client.send_json({"action": "subscribe", "symbols": ALL, "channels": ["quotes", "trades"]})
        outcome = client.read_slowly(bytes_per_s=20_000, timeout=15)
        assert outcome.code is None, outcome  # not closed
        assert not outcome.eof_before_close, outcome
        messages = [json.loads(m) for m in client.messages]  # each one whole JSON
        story = check_trades(messages)
        assert story, "the slow reader was never degraded"
        assert srv.metric(SUSPENDED) > suspended
        assert srv.metric("tickcast_slow_client_closes_total") == closes
    finally:
        client.close()


def test_a_client_past_the_hard_mark_is_still_closed_with_1013(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A budget of 200 messages, soft mark at 100, and 30 s of grace: trades fill the
    backlog from the soft mark to the budget long before conflation could be judged,
    so the hard mark closes it, as before."""
    srv = start_server(
        tmp_path_factory.mktemp("hard"),
        rate=5000,
        batch_ms=20,
        outbox_max_items=200,
        degrade_grace_s=30,
        slow_client_timeout_s=60,
    )
    try:
        client = StalledClient(srv.feed)
        try:
            client.send_json({"action": "subscribe", "symbols": ALL, "channels": ["trades"]})
            assert wait_for(lambda: srv.metric("tickcast_slow_client_closes_total") > 0, 30)
            code = client.read_until_closed(timeout=20)
            assert code == 1013
            reason = client.protocol.close_rcvd.reason if client.protocol.close_rcvd else ""
            assert reason.startswith("slow consumer: "), reason
            assert "not taken" in reason, reason
            assert srv.metric('tickcast_degrade_transitions_total{to="conflating"}') >= 1
            assert srv.metric('tickcast_degrade_transitions_total{to="closed"}') >= 1
            assert srv.metric('tickcast_degrade_transitions_total{to="suspended"}') == 0
        finally:
            client.close()
    finally:
        srv.stop()
