"""Review findings for Front 5 (Socket.IO at ``/socket.io/``, docs/socketio.md), each
reproduced against the real server (uvicorn with tickcast's protocol classes, in a thread
of this process) with a real client: python-socketio's ``AsyncClient``, or raw Engine.IO
over ``websockets`` / ``httpx`` where the case is the protocol itself.

Each test reproduced one defect found in review (it failed before the fix) and now guards
against its return. Waits are on
conditions with generous deadlines, never on durations."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pydantic
import pytest
import socketio
import websockets
from websockets.asyncio.client import ClientConnection, connect

from support.accounts import Account, seed
from support.inprocess import InProcessServer
from tickcast.config.settings import Settings
from tickcast.fronts.socketio import SocketIOEndpoint
from tickcast.model.signal import Signal

WAIT_S = 20.0
ORIGIN = "http://good.example"
_ids = itertools.count(1)


def signal(kind: str = "RSI", symbol: str = "BTC/USDT") -> Signal:
    return Signal(
        kind, "BUY", 162.5, symbol, "1m", "2026-01-02T03:04:05.000Z", f"rv-{next(_ids)}", "test"
    )


#: The accounts of the module's gateway (its fixture fills it).
ACCOUNTS: dict[str, Account] = {}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('review-socketio')}/tickcast.db"
    ACCOUNTS.update(asyncio.run(seed(url, {"ana": {}})))
    settings = Settings(
        database_url=url,
        rate=200,
        batch_ms=20,
        allowed_origins=(ORIGIN,),
        rate_limit_per_s=50,
        rate_limit_burst=50,
        log_level="warning",
    )
    srv = InProcessServer(settings).start()
    yield srv
    srv.stop()


def endpoint(srv: InProcessServer) -> SocketIOEndpoint:
    return next(m for _, _, m in srv.app.mounts if isinstance(m, SocketIOEndpoint))


def ws_url(srv: InProcessServer) -> str:
    return f"ws://127.0.0.1:{srv.port}/socket.io/?EIO=4&transport=websocket"


async def until(check: Callable[[], Any], what: str) -> None:
    """Until ``check()`` (or what it returns, when that is awaitable) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not ((await r) if inspect.isawaitable(r := check()) else r):
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {WAIT_S} s: {what}")
        await asyncio.sleep(0.02)


async def recv_until(ws: ClientConnection, wanted: Callable[[str], bool]) -> str:
    """The first text message ``wanted`` accepts (answering Engine.IO's pings)."""
    while True:
        message = await asyncio.wait_for(ws.recv(), WAIT_S)
        if isinstance(message, str):
            if message == "2":
                await ws.send("3")
            if wanted(message):
                return message


async def open_engineio(srv: InProcessServer) -> tuple[ClientConnection, str]:
    """A raw Engine.IO session over WebSocket: the socket and its Engine.IO sid."""
    ws = await connect(ws_url(srv), origin=ORIGIN, max_size=None)  # type: ignore[arg-type]
    opened = await recv_until(ws, lambda m: m.startswith("0{"))
    return ws, str(json.loads(opened[1:])["sid"])


async def joined(srv: InProcessServer) -> tuple[ClientConnection, str]:
    """A raw Socket.IO client of the default namespace (CONNECT answered)."""
    ws, eio_sid = await open_engineio(srv)
    await ws.send("40")
    await recv_until(ws, lambda m: m.startswith("40{"))
    return ws, eio_sid


# -- CONNECT_ERROR


async def test_an_unknown_namespace_is_refused_with_a_message_object(
    gateway: InProcessServer,
) -> None:
    ws, _ = await open_engineio(gateway)
    try:
        await ws.send("40/admin,")
        answer = await recv_until(ws, lambda m: m.startswith("44/admin,"))
        body = json.loads(answer[len("44/admin,") :])
        assert isinstance(body, dict), answer
        assert body.get("message"), answer
    finally:
        await ws.close()


# -- long-polling: a burst of events


async def test_a_burst_of_events_from_a_polling_client_is_answered(
    gateway: InProcessServer,
) -> None:
    client = socketio.AsyncClient(reconnection=False)
    acks: list[Any] = []
    try:
        await client.connect(
            gateway.url,
            transports=["polling"],
            headers={"Origin": ORIGIN},
            wait_timeout=WAIT_S,
        )
        # under the rate limit's burst (50): every one is owed an answer
        for _ in range(20):
            await client.emit("unsubscribe", callback=lambda *a: acks.append(a))
        await until(lambda: len(acks) == 20, f"20 acknowledgements ({len(acks)} so far)")
    finally:
        await client.disconnect()


async def test_a_post_of_more_than_256_packets_is_answered_400_as_documented(
    gateway: InProcessServer,
) -> None:
    base = f"{gateway.url}/socket.io/"
    async with httpx.AsyncClient(timeout=WAIT_S, headers={"Origin": ORIGIN}) as http:
        opened = await http.get(base, params={"EIO": "4", "transport": "polling"})
        sid = json.loads(opened.text[1:])["sid"]
        params = {"EIO": "4", "transport": "polling", "sid": sid}
        assert (await http.post(base, params=params, content="40")).status_code == 200
        burst = "\x1e".join(['42["unsubscribe"]'] * 257)
        answer = await http.post(base, params=params, content=burst)
        assert answer.status_code == 400
        assert answer.text == "Too many packets in one POST"


# -- binary attachments


async def test_a_stream_of_binary_attachments_is_rate_limited(gateway: InProcessServer) -> None:
    ep = endpoint(gateway)
    ws, eio_sid = await joined(gateway)
    sent = 300  # six times the burst (50)
    chunk = b"\x00" * 32_000
    try:
        await ws.send('45999999999-["subscribe",{"_placeholder":true,"num":0}]')
        for _ in range(sent):
            await ws.send(chunk)

        def held() -> int:
            pkt = ep.server._binary_packet.get(eio_sid)
            return len(pkt.attachments) if pkt is not None else 0

        def settled() -> Any:
            async def check() -> bool:
                closed = ws.state is websockets.protocol.State.CLOSED
                return closed or await gateway.acall(held) >= sent

            return check()

        await until(settled, "the server took every attachment, or closed the client")
        assert ws.state is websockets.protocol.State.CLOSED, (
            f"{await gateway.acall(held)} attachments "
            f"({await gateway.acall(held) * len(chunk)} bytes) held, the client still served"
        )
    finally:
        await ws.close()


# -- bare Engine.IO sessions


async def test_a_session_that_leaves_the_namespace_is_closed_like_one_that_never_joined(
    gateway: InProcessServer,
) -> None:
    ep = endpoint(gateway)
    server = ep.server
    server.connect_timeout_s = 1.0

    async def ended(ws: ClientConnection) -> None:
        """Engine.IO's CLOSE, or the socket's."""
        with contextlib.suppress(websockets.ConnectionClosed):
            await recv_until(ws, lambda m: m == "1")

    sockets: list[ClientConnection] = []
    try:
        leaver, leaver_sid = await joined(gateway)
        sockets.append(leaver)
        # a bare session opened after the leaver joined: when its connect timeout has
        # closed it, the leaver's own check (which came first) has run too
        sockets.append((await open_engineio(gateway))[0])
        await ended(sockets[-1])
        await leaver.send("41")  # leaves the namespace; the Engine.IO session goes on

        def released() -> bool:
            return all(c.eio_sid != leaver_sid for c in ep.clients.values())

        await until(lambda: gateway.acall(released), "the leaver released")
        # a second bare session, opened after the leaver left: once it is closed, a
        # connect timeout reckoned from the leaving has passed for the leaver too
        sockets.append((await open_engineio(gateway))[0])
        await ended(sockets[-1])

        def gone() -> bool:
            sock = server.eio.sockets.get(leaver_sid)
            return sock is None or sock.closed or sock.closing

        assert await gateway.acall(gone), "the session that left the namespace is still open"
    finally:
        for ws in sockets:
            await ws.close()
        server.connect_timeout_s = 45.0


# -- resume


def polled_events(body: str) -> list[tuple[str, Any]]:
    """The Socket.IO events of one long-polling answer, in order."""
    events = []
    for packet in body.split("\x1e"):
        if packet.startswith("42["):
            name, *args = json.loads(packet[2:])
            events.append((name, args[0] if args else None))
    return events


async def test_a_subscribe_right_after_a_resume_keeps_the_whole_replay(
    gateway: InProcessServer,
) -> None:
    ep = endpoint(gateway)
    first, *missed = [signal("MA_CROSS") for _ in range(600)]  # past a 64 KiB write
    await gateway.apublish([first, *missed])
    base = f"{gateway.url}/socket.io/"
    async with httpx.AsyncClient(timeout=WAIT_S, headers={"Origin": ORIGIN}) as http:
        opened = await http.get(base, params={"EIO": "4", "transport": "polling"})
        sid = json.loads(opened.text[1:])["sid"]
        params = {"EIO": "4", "transport": "polling", "sid": sid}
        # a client's usual start: resume, then narrow what comes next
        connect = "40" + json.dumps({"last_signal_id": first.id})
        assert (await http.post(base, params=params, content=connect)).status_code == 200
        narrow = "42" + json.dumps(["subscribe", {"types": ["RSI"]}])
        assert (await http.post(base, params=params, content=narrow)).status_code == 200

        def pending() -> int:
            sock = ep.by_eio.get(sid)
            if sock is None:
                return 0
            return len(sock.outbox or ()) + int(sock.eio.queue.qsize())

        events: list[tuple[str, Any]] = []
        while await gateway.acall(pending):
            answer = await http.get(base, params=params)
            events.extend(polled_events(answer.text))
        await http.post(base, params=params, content="1")
    replayed = [body["id"] for name, body in events if name == "new_signal"]
    assert replayed == [s.id for s in missed], f"{len(replayed)} of {len(missed)} replayed"


# -- a client that ignores Engine.IO's CLOSE


@pytest.mark.parametrize("how", ["flood", "no_connect"])
async def test_a_closed_websocket_client_that_ignores_the_close_is_cut(
    gateway: InProcessServer, how: str
) -> None:
    server = endpoint(gateway).server
    if how == "no_connect":
        server.connect_timeout_s = 0.5
        ws, _ = await open_engineio(gateway)
        packet = "6"  # a NOOP: the client just keeps its socket busy
    else:
        ws, _ = await joined(gateway)
        packet = '42["unsubscribe"]'
    got: list[str] = []
    engineio_close = asyncio.Event()
    cut = asyncio.Event()

    async def read() -> None:
        try:
            async for message in ws:
                got.append(str(message))
                if message == "1":
                    engineio_close.set()
        except websockets.ConnectionClosed:
            pass
        cut.set()

    reader = asyncio.create_task(read())
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + WAIT_S
        while not engineio_close.is_set() and loop.time() < deadline:
            await ws.send(packet)
            await asyncio.sleep(0.001)
        assert engineio_close.is_set(), f"no Engine.IO CLOSE; the last {got[-3:]}"
        # the server has closed this client; the client ignores it and keeps sending
        deadline = loop.time() + WAIT_S
        sent = 0
        while not cut.is_set() and loop.time() < deadline:
            try:
                await ws.send(packet)
            except websockets.ConnectionClosed:
                break
            sent += 1
            await asyncio.sleep(0.01)
        with contextlib.suppress(TimeoutError):  # the reader sees the end a moment later
            await asyncio.wait_for(cut.wait(), WAIT_S)
        assert cut.is_set(), f"{sent} more packets taken after the CLOSE, the socket still open"
    finally:
        server.connect_timeout_s = 45.0
        await ws.close()
        await reader


# -- the heartbeat advertised


async def test_the_open_packet_announces_the_configured_ping_interval(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # a fractional interval is refused at start: python-engineio would announce
    # int(interval) * 1000 (1.5 s as 1000 ms)
    with pytest.raises(pydantic.ValidationError, match="socketio_ping_interval_s"):
        Settings(socketio_ping_interval_s=1.5)
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('review-socketio-ping')}/tickcast.db"
    await seed(url, {})
    srv = InProcessServer(
        Settings(
            database_url=url,
            log_level="warning",
            socketio_ping_interval_s=2,
            socketio_ping_timeout_s=0.4,
        )
    ).start()
    try:
        async with httpx.AsyncClient(timeout=WAIT_S) as http:
            opened = await http.get(
                f"{srv.url}/socket.io/", params={"EIO": "4", "transport": "polling"}
            )
        handshake = json.loads(opened.text[1:])
        assert handshake["pingInterval"] == 2000, handshake
        assert handshake["pingTimeout"] == 400, handshake
    finally:
        await asyncio.to_thread(srv.stop)


# -- the rate limit and the namespace


async def test_rejoining_the_namespace_does_not_reset_the_rate_limit(
    gateway: InProcessServer,
) -> None:
    ws, _ = await open_engineio(gateway)
    per_join = 45  # under the burst (50)
    joins = 20
    answers: list[Any] = []
    ended = False
    try:
        for _ in range(joins):
            await ws.send("40")
            try:  # a session whose client left the namespace is ended: no re-join
                joined = await recv_until(ws, lambda m: m.startswith(("40{", "44", "1")))
            except websockets.ConnectionClosed:
                ended = True
                break
            if not joined.startswith("40{"):
                ended = True
                break
            for n in range(per_join):
                await ws.send(f'42{n}["unsubscribe"]')
            got = 0
            while got < per_join:
                message = await recv_until(
                    ws, lambda m: m.startswith(("43", "41", "1")) and not m.startswith("40")
                )
                if not message.startswith("43"):
                    ended = True  # closed for flooding
                    break
                answers.append(json.loads(message[message.index("[") :])[0])
                got += 1
            if ended:
                break
            await ws.send("41")
        refused = [a for a in answers if "error" in a]
        assert ended or refused, (
            f"{len(answers)} events in {joins} joins of one session, none refused"
        )
    finally:
        await ws.close()


# -- the origin allow-list and JSONP polling


async def test_a_jsonp_session_opened_cross_site_is_refused(gateway: InProcessServer) -> None:
    """JSONP polling is not served at all (a <script> tag sends no Origin header and its
    cookie would count as the credential): the handshake and any request naming ``j``
    are refused with 400, before Engine.IO sees them."""
    key = ACCOUNTS["ana"].api_key
    base = f"{gateway.url}/socket.io/"
    cookies = {"tickcast_token": key}
    async with httpx.AsyncClient(timeout=WAIT_S, cookies=cookies) as http:
        # <script src=".../socket.io/?EIO=4&transport=polling&j=0"> on evil.example
        opened = await http.get(base, params={"EIO": "4", "transport": "polling", "j": "0"})
        assert opened.status_code == 400, opened.text
        assert "JSONP" in opened.text
        # a session opened the ordinary way cannot be switched to JSONP either
        plain = await http.get(base, params={"EIO": "4", "transport": "polling"})
        sid = json.loads(plain.text[1:])["sid"]
        params = {"EIO": "4", "transport": "polling", "sid": sid, "j": "0"}
        posted = await http.post(
            base,
            params=params,
            content="d=40",
            headers={
                "Origin": "http://evil.example",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert posted.status_code == 400, posted.text
    ep = endpoint(gateway)
    assert not await gateway.acall(lambda: ep.by_eio.get(sid))  # nobody admitted


# -- shutdown


async def test_a_poll_whose_client_is_gone_does_not_hold_the_shutdown(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('review-socketio-stop')}/tickcast.db"
    await seed(url, {})
    srv = InProcessServer(
        Settings(database_url=url, log_level="warning", allowed_origins=(ORIGIN,))
    ).start()
    ep = endpoint(srv)
    base = f"{srv.url}/socket.io/"
    try:
        # a client refused at its CONNECT (a foreign page), which then goes away
        http = httpx.AsyncClient(timeout=WAIT_S, headers={"Origin": "http://evil.example"})
        opened = await http.get(base, params={"EIO": "4", "transport": "polling"})
        sid = json.loads(opened.text[1:])["sid"]
        params = {"EIO": "4", "transport": "polling", "sid": sid}
        assert (await http.post(base, params=params, content="40")).status_code == 200
        assert "44{" in (await http.get(base, params=params)).text
        pending = asyncio.create_task(http.get(base, params=params))

        def polling() -> bool:
            sock = ep.server.eio.sockets.get(sid)
            return sock is not None and bool(sock.queue._getters)

        await until(lambda: srv.acall(polling), "the client's next poll waiting")
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        await http.aclose()  # the client's connection closes
        state = srv.server.server_state
        await until(lambda: srv.acall(lambda: not state.connections), "its connection gone")
    finally:
        await asyncio.to_thread(srv.stop)
    assert "timeout graceful shutdown exceeded" not in caplog.text
