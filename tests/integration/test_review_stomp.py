"""Review findings for Front 3's STOMP (``/stomp/websocket``) against a real ``tickcast
serve``, read with stomp.py. Waits are on conditions, never on durations."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from stomp.utils import Frame
from websockets.asyncio.client import connect as ws_connect
from websockets.typing import Subprotocol

from support.server import Server, start_server
from support.stompclient import Events, stomp_client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("review-stomp"),
        rate=2000,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
    )
    yield srv
    srv.stop()


def trades(events: Events, n: int, sub: str) -> list[Frame]:
    got: list[Frame] = []

    def enough(kind: str, frame: Frame | None) -> bool:
        if kind == "message" and frame is not None and frame.headers["subscription"] == sub:
            got.append(frame)
        return len(got) >= n

    events.until(enough)
    return got


def test_resume_within_the_epoch_replays_from_the_next_seq(server: Server) -> None:
    """docs/stomp.md "Resume": the missed updates come from history, in order, from
    ``resume-seq + 1``, before the live ones."""
    conn, events = stomp_client(server)
    conn.connect(wait=True)
    conn.subscribe("/topic/trades.AAPL", id="t")
    first = trades(events, 3, "t")
    conn.disconnect()
    epoch, seq = first[0].headers["epoch"], int(first[0].headers["seq"])
    conn, events = stomp_client(server)
    conn.connect(wait=True)
    try:
        conn.subscribe(
            "/topic/trades.AAPL",
            id="r",
            headers={"resume-epoch": epoch, "resume-seq": str(seq)},
        )
        again = trades(events, 5, "r")
        assert "reset" not in again[0].headers, again[0].headers
        seqs = [int(f.headers["seq"]) for f in again]
        assert seqs == list(range(seq + 1, seq + 6)), seqs
        assert [f.headers["epoch"] for f in again] == [epoch] * 5
    finally:
        conn.disconnect()


def test_resume_from_another_epoch_gets_a_reset(server: Server) -> None:
    conn, events = stomp_client(server)
    conn.connect(wait=True)
    try:
        conn.subscribe(
            "/topic/trades.AAPL",
            id="r",
            headers={"resume-epoch": "0000000000000001", "resume-seq": "3"},
        )
        got = trades(events, 1, "r")
        assert got[0].headers.get("reset") == "epoch_changed", got[0].headers
    finally:
        conn.disconnect()


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Quotes and trades flowing fast into a long batching window."""
    srv = start_server(
        tmp_path_factory.mktemp("review-window"),
        rate=5000,
        batch_ms=400,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
    )
    yield srv
    srv.stop()


@pytest.mark.parametrize("destination", ["/topic/quotes.AAPL", "/topic/trades.AAPL"])
async def test_no_message_for_an_id_follows_its_unsubscribe_receipt(
    windowed: Server, destination: str
) -> None:
    """docs/stomp.md: once UNSUBSCRIBE is read, no MESSAGE for that id is written, not
    even one queued in the batching window before it; so none follows its RECEIPT. Many
    rounds of subscribe, wait for a MESSAGE, unsubscribe (with a receipt) mid-window."""
    url = f"ws://127.0.0.1:{windowed.port}/stomp/websocket"
    async with ws_connect(url, subprotocols=[Subprotocol("v12.stomp")]) as ws:
        await ws.send("CONNECT\naccept-version:1.2\nhost:x\n\n\x00")
        assert str(await ws.recv()).startswith("CONNECTED")
        for i in range(15):
            sid = f"s{i}"
            await ws.send(f"SUBSCRIBE\nid:{sid}\ndestination:{destination}\n\n\x00")
            while f"subscription:{sid}\n" not in str(await asyncio.wait_for(ws.recv(), 20)):
                pass
            await ws.send(f"UNSUBSCRIBE\nid:{sid}\nreceipt:u{i}\n\n\x00")
            while f"receipt-id:u{i}\n" not in str(await asyncio.wait_for(ws.recv(), 20)):
                pass
            # a marker: a receipt for a later frame; what comes before it follows u{i}
            await ws.send(
                f"SUBSCRIBE\nid:m{i}\ndestination:/topic/status.FEED\nreceipt:m{i}\n\n\x00"
            )
            after: list[str] = []
            while f"receipt-id:m{i}\n" not in (after[-1] if after else ""):
                after.append(str(await asyncio.wait_for(ws.recv(), 20)))
            assert not [m for m in after if f"subscription:{sid}\n" in m], after
            await ws.send(f"UNSUBSCRIBE\nid:m{i}\n\n\x00")
