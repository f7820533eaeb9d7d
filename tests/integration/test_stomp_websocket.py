"""Front 3's raw STOMP over WebSocket (``/stomp/websocket``, docs/stomp.md) against a real
``tickcast serve``: stomp.py's ``WSConnection`` unmodified, and the ``websockets`` client
for what stomp.py cannot show (sub-protocol negotiation, misbehaviour).

Waits are on conditions (a receipt, the n-th message), never sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from stomp.utils import Frame
from websockets.asyncio.client import connect

from support.accounts import Account, seed
from support.server import Server, start_server
from support.stompclient import PATH, WAIT_S, messages, stomp_client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Account]]:
    """Anonymous market data allowed (the default); one user with an API key."""
    tmp = tmp_path_factory.mktemp("stomp")
    url = f"sqlite+aiosqlite:///{tmp}/s.db"
    accounts = asyncio.run(seed(url, {"dana": {}}))
    server = start_server(
        tmp,
        database_url=url,
        rate=2000,
        max_subscriptions=20,
        rate_limit_per_s=10_000,
        rate_limit_burst=10_000,
    )
    yield server, accounts["dana"]
    server.stop()


@pytest.fixture(scope="module")
def server(world: tuple[Server, Account]) -> Server:
    return world[0]


def test_stomp_py_connects_subscribes_and_reads_messages(server: Server) -> None:
    conn, events = stomp_client(server, heartbeats=(1000, 1000))
    conn.connect(wait=True)
    try:
        (_, connected), *_ = events.until(lambda k, _: k == "connected")
        assert connected.headers["version"] == "1.2"
        # negotiated: each side every max(ours, theirs) ms, ours being 10000,10000
        assert connected.headers["heart-beat"] == "10000,10000"
        conn.subscribe("/topic/trades.AAPL", id="sub-0", headers={"receipt": "r1"})
        assert [k for k, _ in events.receipt("r1")] == ["receipt"]
        seen = events.until(lambda k, _: k == "message")
        message = messages(seen)[0]
        headers = message.headers
        assert headers["destination"] == "/topic/trades.AAPL"
        assert headers["subscription"] == "sub-0"
        assert headers["content-type"] == "application/json"
        epoch, seq = headers["epoch"], int(headers["seq"])
        assert headers["message-id"] == f"trades.AAPL-{epoch}-{seq}"
        assert '"type":"trade"' in message.body
        assert '"symbol":"AAPL"' in message.body
        following = messages(events.until(lambda k, _: k == "message"))[0]
        assert int(following.headers["seq"]) == seq + 1  # trades are reliable
    finally:
        conn.disconnect()


def test_two_subscription_ids_on_one_topic_each_get_their_own_message(server: Server) -> None:
    conn, events = stomp_client(server)
    conn.connect(wait=True)
    try:
        conn.subscribe("/topic/trades.MSFT", id="a")
        conn.subscribe("/topic/trades.MSFT", id="b", headers={"receipt": "both"})
        events.receipt("both")
        by_id: dict[str, set[str]] = {"a": set(), "b": set()}

        def both_saw_one(kind: str, frame: Frame | None) -> bool:
            if kind == "message" and frame is not None:
                by_id[frame.headers["subscription"]].add(frame.headers["message-id"])
            return bool(by_id["a"] & by_id["b"])

        events.until(both_saw_one)  # one update, once for each id
    finally:
        conn.disconnect()


def test_a_second_id_on_a_held_destination_gets_its_current_value_alone(server: Server) -> None:
    # review defect: the second id got nothing until the next update (status: rare)
    conn, events = stomp_client(server)
    conn.connect(wait=True)
    try:
        conn.subscribe("/topic/status.FEED", id="first", headers={"receipt": "r1"})
        seen = events.until(lambda k, _: k == "message")
        [current] = messages(seen)
        assert current.headers["subscription"] == "first"
        conn.subscribe("/topic/status.FEED", id="second", headers={"receipt": "r2"})
        events.receipt("r2")
        seen = events.until(lambda k, _: k == "message")
        [again] = messages(seen)
        assert again.headers["subscription"] == "second"
        assert again.headers["message-id"] == current.headers["message-id"]
        assert again.body == current.body
        conn.unsubscribe("first", headers={"receipt": "r3"})
        conn.unsubscribe("second", headers={"receipt": "r4"})
        seen = events.receipt("r4")
        assert messages(seen) == []  # the first id did not get it twice
    finally:
        conn.disconnect()


def test_a_subscription_id_with_escaped_characters_round_trips(server: Server) -> None:
    conn, events = stomp_client(server)
    conn.connect(wait=True)
    try:
        odd = "a:b\\c\nd"  # a colon, a backslash and an EOL: escaped both ways in 1.2
        conn.subscribe("/topic/quotes.AAPL", id=odd)
        seen = events.until(lambda k, _: k == "message")
        assert messages(seen)[0].headers["subscription"] == odd
    finally:
        conn.disconnect()


def test_unsubscribe_stops_messages(server: Server) -> None:
    conn, events = stomp_client(server)
    conn.connect(wait=True)
    try:
        conn.subscribe("/topic/quotes.AAPL", id="q-aapl")
        conn.subscribe("/topic/quotes.MSFT", id="q-msft")
        events.until(lambda k, f: k == "message" and f.headers["subscription"] == "q-aapl")
        conn.unsubscribe("q-aapl", headers={"receipt": "gone"})
        events.receipt("gone")
        count = 0

        def ten_msft(kind: str, frame: Frame | None) -> bool:
            nonlocal count
            if kind == "message" and frame is not None:
                assert frame.headers["subscription"] == "q-msft"
                count += 1
            return count >= 10

        events.until(ten_msft)
    finally:
        conn.disconnect()


def test_disconnect_with_a_receipt(server: Server) -> None:
    conn, events = stomp_client(server)
    conn.connect(wait=True)
    conn.disconnect(receipt="bye")
    events.receipt("bye")  # stomp.py closes the socket on it, then tells its listeners
    assert not conn.is_connected()


def test_a_passcode_authenticates_and_a_bad_one_is_refused(
    world: tuple[Server, Account],
) -> None:
    server, dana = world
    conn, events = stomp_client(server)
    conn.connect(username="dana", passcode=dana.api_key, wait=True)
    try:
        (_, connected), *_ = events.until(lambda k, _: k == "connected")
        assert connected.headers["version"] == "1.2"
    finally:
        conn.disconnect()


# -- the raw client: sub-protocols and misbehaviour


async def read_frames(ws: websockets.ClientConnection) -> list[str]:
    """Every message until the server closes (heart-beat EOLs left out)."""
    out: list[str] = []
    try:
        async with asyncio.timeout(WAIT_S):
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                if text.strip("\r\n"):
                    out.append(text)
    except websockets.ConnectionClosed:
        pass
    return out


CONNECT = "CONNECT\naccept-version:1.2\nhost:x\n\n\0"


async def recv_frame(ws: websockets.ClientConnection, command: str) -> str:
    """The next frame of ``command`` (MESSAGEs and heart-beats before it skipped)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            message = await ws.recv()
            text = message if isinstance(message, str) else message.decode()
            if text.startswith(command + "\n"):
                return text


async def test_the_highest_stomp_sub_protocol_offered_is_chosen(server: Server) -> None:
    url = f"ws://127.0.0.1:{server.port}{PATH}"
    offered: list[Any] = ["v11.stomp", "v12.stomp", "v10.stomp"]
    async with connect(url, subprotocols=offered) as ws:
        assert ws.subprotocol == "v12.stomp"
        await ws.send(CONNECT)
        assert "version:1.2\n" in await recv_frame(ws, "CONNECTED")
    async with connect(url, subprotocols=["v10.stomp", "v11.stomp"]) as ws:
        assert ws.subprotocol == "v11.stomp"
    async with connect(url) as ws:  # none offered, as stomp.py: accepted, none chosen
        assert ws.subprotocol is None
        await ws.send(CONNECT)
        await recv_frame(ws, "CONNECTED")


async def test_a_frame_before_connect_is_an_error_then_a_close(server: Server) -> None:
    async with connect(f"ws://127.0.0.1:{server.port}{PATH}") as ws:
        await ws.send("SUBSCRIBE\nid:0\ndestination:/topic/quotes.AAPL\n\n\0")
        frames = await read_frames(ws)
        assert len(frames) == 1
        assert frames[0].startswith("ERROR\nmessage:The first frame must be CONNECT or STOMP")
        assert ws.close_code == 1002


@pytest.mark.parametrize(
    ("frame", "message", "code"),
    [
        (
            "SUBSCRIBE\nid:0\ndestination:/topic/unrealized-pnl\n\n\0",
            "Authentication required to read /topic/unrealized-pnl",
            1008,
        ),
        (
            "SUBSCRIBE\nid:0\ndestination:/topic/user_pnl.1\n\n\0",
            "Unknown destination /topic/user_pnl.1",
            1008,
        ),
        (
            "SUBSCRIBE\nid:0\ndestination:/topic/quotes.NOPE\n\n\0",
            "Unknown destination /topic/quotes.NOPE",
            1008,
        ),
        (
            "SUBSCRIBE\nid:0\ndestination:/topic/position-update\n\n\0",
            "Authentication required to read /topic/position-update",
            1008,
        ),
        ("SEND\ndestination:/topic/quotes.AAPL\n\nhi\0", "SEND is not accepted", 1008),
    ],
)
async def test_refusals_are_an_error_then_a_close(
    server: Server, frame: str, message: str, code: int
) -> None:
    async with connect(f"ws://127.0.0.1:{server.port}{PATH}") as ws:
        await ws.send(CONNECT)
        await recv_frame(ws, "CONNECTED")
        await ws.send(frame)
        frames = await read_frames(ws)
        assert len(frames) == 1
        assert frames[0].startswith("ERROR\n")
        assert message.replace(":", "\\c") in frames[0]
        assert ws.close_code == code


async def test_a_bad_passcode_is_refused_with_an_error(world: tuple[Server, Account]) -> None:
    server, _ = world
    async with connect(f"ws://127.0.0.1:{server.port}{PATH}") as ws:
        await ws.send("CONNECT\naccept-version:1.2\nlogin:x\npasscode:tk_not_a_key\n\n\0")
        frames = await read_frames(ws)
        assert len(frames) == 1
        assert frames[0].startswith("ERROR\nmessage:")
        assert ws.close_code is not None
        assert ws.close_code >= 3000


async def test_another_client_is_undisturbed_by_a_misbehaving_one(server: Server) -> None:
    url = f"ws://127.0.0.1:{server.port}{PATH}"
    async with connect(url) as good:
        await good.send(CONNECT)
        await recv_frame(good, "CONNECTED")
        await good.send("SUBSCRIBE\nid:t\ndestination:/topic/trades.AAPL\nreceipt:r\n\n\0")
        await recv_frame(good, "RECEIPT")
        await recv_frame(good, "MESSAGE")
        for bad_frame in ("\0\0garbage\n\n\0", "SEND\ndestination:/x\n\n\0", "BEGIN\n\n\0"):
            async with connect(url) as bad:
                await bad.send(CONNECT)
                await recv_frame(bad, "CONNECTED")
                await bad.send(bad_frame)
                frames = await read_frames(bad)
                assert frames[-1].startswith("ERROR\n")
        seqs = []
        for _ in range(3):  # the good client's stream goes on, in order
            frame = await recv_frame(good, "MESSAGE")
            seqs.append(int(frame.split("\nseq:", 1)[1].split("\n", 1)[0]))
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == 3


async def test_without_anonymous_access_connect_needs_credentials(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("stomp-closed")
    url = f"sqlite+aiosqlite:///{tmp}/c.db"
    erin = (await seed(url, {"erin": {}}))["erin"]
    server = await asyncio.to_thread(
        start_server, tmp, database_url=url, allow_anonymous="false", rate=200
    )
    try:
        ws_url = f"ws://127.0.0.1:{server.port}{PATH}"
        async with connect(ws_url) as ws:  # admitted: CONNECT may carry the credentials
            await ws.send(CONNECT)
            frames = await read_frames(ws)
            assert [f.split("\n", 2)[:2] for f in frames] == [
                ["ERROR", "message:Authentication required"]
            ]
            assert ws.close_code == 3503
        async with connect(ws_url) as ws:
            await ws.send(f"CONNECT\naccept-version:1.2\nAuthorization:Bearer {erin.api_key}\n\n\0")
            await recv_frame(ws, "CONNECTED")
            await ws.send("SUBSCRIBE\nid:0\ndestination:/topic/quotes.AAPL\n\n\0")
            assert "subscription:0\n" in await recv_frame(ws, "MESSAGE")
    finally:
        await asyncio.to_thread(server.stop)
