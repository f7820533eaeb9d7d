"""SockJS's ``websocket`` transport (``/stomp/<server>/<session>/websocket``) on the
fast path (the server protocol drives the session: no task per session, heartbeats on a
loop timer) and on the ASGI path (``ws_fast_path`` off: the receive loop and the writer
task), through real sockets, the gateway in the test's loop: STOMP carried both ways,
broken framing, heartbeats to an idle session, the session and its connection released
on a client's close and on an abrupt disconnect (the node's connections, the front's
roster and the guard's per-address slot), 1001 at shutdown, a foreign origin refused.

Every wait is bounded (``asyncio.timeout``), none is timed."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from support.inloop import Gateway, running_gateway
from support.wsclient import closed_code
from tickcast.auth import policy
from tickcast.model.signal import Signal
from tickcast.model.signal import encode as seed_json
from tickcast.protocols.stomp.frames import Frame, FrameParser

WAIT_S = 10.0

PATHS = pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "asgi-path"])


def stomp(command: str, **headers: str) -> str:
    head = "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in headers.items())
    return f"{command}\n{head}\n\x00"


def signal(n: int, symbol: str = "AAPL") -> Signal:
    return Signal(
        "QUANTUM_CIPHER",
        "BUY",
        100.0 + n,
        symbol,
        "1m",
        f"2026-01-01T00:00:{n:02d}.000Z",
        f"sig-{symbol}-{n}",
        "external",
    )


class Reader:
    """STOMP frames off SockJS's ``a[...]`` frames; ``h`` frames counted."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.parser = FrameParser()
        self.frames: list[Frame] = []
        self.heartbeats = 0

    async def send(self, *frames: str) -> None:
        await self.ws.send(json.dumps(list(frames)))

    async def next(self) -> Frame:
        async with asyncio.timeout(WAIT_S):
            while not self.frames:
                data = await self.ws.recv()
                assert isinstance(data, str)
                if data == "h":
                    self.heartbeats += 1
                    continue
                assert data.startswith("a["), data
                for text in json.loads(data[1:]):
                    self.frames += self.parser.feed(text)
        return self.frames.pop(0)

    async def connected(self) -> None:
        await self.send(stomp("CONNECT", accept_version="1.2", heart_beat="0,0"))
        assert (await self.next()).command == "CONNECTED"


async def opened(gateway: Gateway, **kwargs: object) -> ClientConnection:
    ws = await connect(gateway.sockjs(uuid.uuid4().hex), **kwargs)  # type: ignore[arg-type]
    assert await asyncio.wait_for(ws.recv(), WAIT_S) == "o"
    return ws


def _asgi_tasks() -> int:
    """The server's ASGI tasks running (the clients, in this loop too, have their own)."""
    return sum("run_asgi" in getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks())


async def _until_closed(ws: ClientConnection) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            await ws.recv()


async def stomp_roster(gateway: Gateway) -> int:
    """The STOMP front's open connections, as ``/realtime/status/`` counts them (its
    roster: the guard's tickets)."""
    async with httpx.AsyncClient(timeout=WAIT_S) as http:
        status = (await http.get(f"{gateway.http}/realtime/status/")).json()
    return int(status["global_stats"]["fronts"]["stomp"]["connections"])


async def settled(gateway: Gateway, expected: int) -> None:
    """Until the node and the STOMP front's roster hold ``expected`` connections."""
    async with asyncio.timeout(WAIT_S):
        while len(gateway.node.connections) != expected:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)
    assert await stomp_roster(gateway) == expected


@PATHS
async def test_stomp_over_the_websocket_transport(tmp_path: Path, fast: bool) -> None:
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        before = _asgi_tasks()
        ws = await opened(gateway)
        try:
            client = Reader(ws)
            await client.connected()
            # a SockJS message of two STOMP frames; a receipt for each
            await client.send(
                stomp("SUBSCRIBE", id="sub-0", destination="/topic/signals", receipt="r0"),
                stomp("SUBSCRIBE", id="sub-1", destination="/topic/signals", receipt="r1"),
            )
            for receipt in ("r0", "r1"):
                got = await client.next()
                assert (got.command, got.headers.get("receipt-id")) == ("RECEIPT", receipt)
            # the ASGI task ended on the fast path; the ASGI path keeps it per session
            assert _asgi_tasks() - before == (0 if fast else 1)
            sent = [signal(1), signal(2, "MSFT"), signal(3)]
            gateway.publish(*sent)
            got = [await client.next() for _ in range(6)]
            assert [(f.command, f.headers["subscription"], f.body) for f in got] == [
                ("MESSAGE", id_, seed_json(s)) for s in sent for id_ in ("sub-0", "sub-1")
            ]
            # one JSON string is a message too; DISCONNECT's receipt, then the close frame
            await ws.send(json.dumps(stomp("DISCONNECT", receipt="bye")))
            got_frame = await client.next()
            assert (got_frame.command, got_frame.headers.get("receipt-id")) == ("RECEIPT", "bye")
            async with asyncio.timeout(WAIT_S):
                assert (await ws.recv()).startswith("c[")  # type: ignore[union-attr]
            assert await closed_code(ws) == 1000
        finally:
            await ws.close()
        await settled(gateway, 0)


@PATHS
async def test_broken_framing_closes_3000_and_releases(tmp_path: Path, fast: bool) -> None:
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        ws = await opened(gateway)
        await settled(gateway, 1)
        await ws.send('["a')
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _until_closed(ws)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (3000, "Broken framing.")
        await settled(gateway, 0)


@PATHS
async def test_an_idle_session_gets_heartbeats(tmp_path: Path, fast: bool) -> None:
    async with running_gateway(tmp_path, ws_fast_path=fast, sockjs_heartbeat_s=0.1) as gateway:
        ws = await opened(gateway)
        try:
            async with asyncio.timeout(WAIT_S):
                for _ in range(3):
                    assert await ws.recv() == "h"
            # and the session still carries STOMP after them
            client = Reader(ws)
            await client.connected()
            async with asyncio.timeout(WAIT_S):
                assert await ws.recv() == "h"  # still beating to an idle session
        finally:
            await ws.close()
        await settled(gateway, 0)


@PATHS
@pytest.mark.parametrize("how", ["close", "abort"])
async def test_a_client_that_goes_releases_its_session_and_slot(
    tmp_path: Path, fast: bool, how: str
) -> None:
    # one anonymous connection per address: a slot not given back refuses the next one
    async with running_gateway(
        tmp_path, ws_fast_path=fast, max_anonymous_connections_per_address=1
    ) as gateway:
        for _ in range(3):
            ws = await opened(gateway)
            client = Reader(ws)
            await client.connected()
            await client.send(stomp("SUBSCRIBE", id="s", destination="/topic/signals", receipt="r"))
            assert (await client.next()).command == "RECEIPT"
            await settled(gateway, 1)
            if how == "close":
                await ws.close()
            else:
                ws.transport.abort()
            await settled(gateway, 0)
        # nothing left: a signal goes to nobody, and a new session is admitted
        gateway.publish(signal(1))
        ws = await opened(gateway)
        await settled(gateway, 1)
        await ws.close()
        await settled(gateway, 0)


@PATHS
async def test_the_slot_is_taken_while_a_session_is_open(tmp_path: Path, fast: bool) -> None:
    async with running_gateway(
        tmp_path, ws_fast_path=fast, max_anonymous_connections_per_address=1
    ) as gateway:
        ws = await opened(gateway)
        try:
            # no Origin: refused in plain HTTP (429)
            with pytest.raises(websockets.InvalidStatus):
                await opened(gateway)
        finally:
            await ws.close()
        await settled(gateway, 0)
        second = await opened(gateway)
        await second.close()
        await settled(gateway, 0)


@PATHS
async def test_server_shutdown_closes_1001(tmp_path: Path, fast: bool) -> None:
    async with running_gateway(tmp_path, ws_fast_path=fast) as gateway:
        ws = await opened(gateway)
        await Reader(ws).connected()
        code = asyncio.ensure_future(closed_code(ws, WAIT_S))
        await asyncio.sleep(0)
    assert await asyncio.wait_for(code, WAIT_S) == 1001
    assert len(gateway.node.connections) == 0


@PATHS
async def test_a_foreign_origin_is_refused(tmp_path: Path, fast: bool) -> None:
    async with running_gateway(
        tmp_path, ws_fast_path=fast, allowed_origins=("http://good.example",)
    ) as gateway:
        # a browser's refusal: the upgrade, then at once the refusal's close code
        evil = await connect(gateway.sockjs(uuid.uuid4().hex), origin="http://evil.example")  # type: ignore[arg-type]
        assert await closed_code(evil, WAIT_S) == policy.origin_refused("x").close_code
        await settled(gateway, 0)
        ws = await opened(gateway, origin="http://good.example")
        await ws.close()
        await settled(gateway, 0)


@PATHS
async def test_a_compressed_session_carries_stomp(tmp_path: Path, fast: bool) -> None:
    """With permessage-deflate negotiated the frames go through websockets (compressed);
    without it (the other tests) the fast path builds them itself."""
    async with running_gateway(tmp_path, ws_fast_path=fast, permessage_deflate=True) as gateway:
        ws = await opened(gateway)
        try:
            assert ws.protocol.extensions  # negotiated
            client = Reader(ws)
            await client.connected()
            await client.send(stomp("SUBSCRIBE", id="s", destination="/topic/signals", receipt="r"))
            assert (await client.next()).command == "RECEIPT"
            gateway.publish(signal(1), signal(2))
            got = [await client.next() for _ in range(2)]
            assert [f.body for f in got] == [seed_json(signal(1)), seed_json(signal(2))]
        finally:
            await ws.close()
        await settled(gateway, 0)
