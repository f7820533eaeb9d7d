"""The abuse battery for Front 3 (STOMP), against a real ``tickcast serve``: every attack
gets its documented answer (docs/stomp.md, "Errors and limits"), and a well-behaved
client subscribed beside it goes on receiving its stream, in order, undisturbed.

Each case runs over raw STOMP on WebSocket (``/stomp/websocket``) and over SockJS's
``websocket`` transport (``/stomp/<server>/<session>/websocket``: the same STOMP inside
``a[...]`` frames). Waits are on conditions, never sleeps."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from support.accounts import Account, seed
from support.server import Server, start_server

WAIT_S = 10.0
MAX_SUBSCRIPTIONS = 5
GOOD_ORIGIN = "http://good.example"
CONNECT = "CONNECT\naccept-version:1.2\nhost:x\n\n\0"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Account]]:
    tmp = tmp_path_factory.mktemp("stomp-abuse")
    url = f"sqlite+aiosqlite:///{tmp}/a.db"
    accounts = asyncio.run(seed(url, {"olga": {}}))
    server = start_server(
        tmp,
        database_url=url,
        rate=2000,
        max_subscriptions=MAX_SUBSCRIPTIONS,
        rate_limit_per_s=20,
        rate_limit_burst=40,
        allowed_origins=GOOD_ORIGIN,
    )
    yield server, accounts["olga"]
    server.stop()


@pytest.fixture(scope="module")
def server(world: tuple[Server, Account]) -> Server:
    return world[0]


class Stomp:
    """One STOMP client over a WebSocket: raw, or inside SockJS's websocket framing."""

    def __init__(self, ws: ClientConnection, sockjs: bool) -> None:
        self.ws = ws
        self.sockjs = sockjs
        self.pending: list[str] = []

    async def send(self, *frames: str) -> None:
        """Frames in one WebSocket message."""
        await self.ws.send(json.dumps(list(frames)) if self.sockjs else "".join(frames))

    async def recv(self) -> str:
        """The next STOMP frame (heart-beats left out); ConnectionClosed at the end."""
        while not self.pending:
            message = await self.ws.recv()
            text = message if isinstance(message, str) else message.decode()
            if not self.sockjs:
                if text.strip("\r\n"):
                    self.pending.append(text)
            elif text.startswith("a"):
                self.pending.extend(t for t in json.loads(text[1:]) if t.strip("\r\n"))
            elif text.startswith("c"):
                await self.ws.close()
        return self.pending.pop(0)

    async def expect(self, command: str) -> str:
        """The next frame of ``command`` (MESSAGEs before it skipped)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                frame = await self.recv()
                if frame.startswith(command + "\n"):
                    return frame

    async def until_closed(self) -> list[str]:
        """Every frame until the server closes."""
        out: list[str] = []
        try:
            async with asyncio.timeout(WAIT_S):
                while True:
                    out.append(await self.recv())
        except websockets.ConnectionClosed:
            pass
        return out

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code


TRANSPORTS = ["websocket", "sockjs"]


def url_of(server: Server, transport: str) -> str:
    if transport == "websocket":
        return f"ws://127.0.0.1:{server.port}/stomp/websocket"
    return f"ws://127.0.0.1:{server.port}/stomp/{secrets.randbelow(1000):03d}/{secrets.token_hex(8)}/websocket"


async def opened(ws: ClientConnection, transport: str) -> Stomp:
    if transport == "sockjs":
        async with asyncio.timeout(WAIT_S):
            assert await ws.recv() == "o"
    return Stomp(ws, transport == "sockjs")


async def connected(server: Server, transport: str, connect_frame: str = CONNECT) -> Stomp:
    ws = await connect(url_of(server, transport))
    client = await opened(ws, transport)
    await client.send(connect_frame)
    await client.expect("CONNECTED")
    return client


def seq_of(frame: str) -> int:
    return int(frame.split("\nseq:", 1)[1].split("\n", 1)[0])


@pytest.fixture
async def bystander(server: Server) -> AsyncIterator[Stomp]:
    """A good client on trades.AAPL (reliable: every seq, in order), over raw STOMP."""
    client = await connected(server, "websocket")
    await client.send("SUBSCRIBE\nid:t\ndestination:/topic/trades.AAPL\nreceipt:r\n\n\0")
    await client.expect("RECEIPT")
    await client.expect("MESSAGE")
    yield client
    await client.ws.close()


async def assert_undisturbed(client: Stomp) -> None:
    """It is open and its stream goes on with consecutive sequence numbers."""
    seqs = [seq_of(await client.expect("MESSAGE")) for _ in range(3)]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    assert client.close_code is None


async def error_then_close(client: Stomp) -> tuple[str, int | None]:
    frames = await client.until_closed()
    errors = [f for f in frames if f.startswith("ERROR\n")]
    assert len(errors) == 1, frames
    assert frames[-1] == errors[0], "nothing after the ERROR"
    return errors[0], client.close_code


def message_of(error: str) -> str:
    for line in error.split("\n\n", 1)[0].split("\n")[1:]:
        name, _, value = line.partition(":")
        if name == "message":
            return value.replace("\\c", ":")
    raise AssertionError(f"no message header in {error!r}")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("frame", "message", "code"),
    [
        pytest.param(
            "SUBSCRIBE\nid:0\ndestination:/topic/quotes.AAPL\n" + "x-h:1\n" * 5_000 + "\n\0",
            "more than 64 headers",
            1009,
            id="header-flood",
        ),
        pytest.param(
            "SUBSCRIBE\nid:0\ndestination:/topic/quotes.AAPL\nx:" + "a" * 5000 + "\n\n\0",
            "header line over 4096 octets",
            1009,
            id="long-header-line",
        ),
        pytest.param(  # in two WebSocket messages, each under the message limit
            (
                "SUBSCRIBE\nid:0\ndestination:/topic/quotes.AAPL\ncontent-length:70000\n\n"
                + "b" * 40_000,
                "b" * 30_000 + "\0",
            ),
            "frame over 65536 octets",
            1009,
            id="oversized-frame",
        ),
        pytest.param(
            "SUBSCRIBE\nid:a\\tb\ndestination:/topic/quotes.AAPL\n\n\0",
            "undefined escape",
            1002,
            id="undefined-escape",
        ),
        pytest.param("BEGIN\ntransaction:t\n\n\0", "not supported", 1002, id="transaction"),
        pytest.param("FROB\n\n\0", "Unknown command", 1002, id="unknown-command"),
        pytest.param(
            "SEND\ndestination:/topic/trades.AAPL\n\n{}\0", "SEND is not accepted", 1008, id="send"
        ),
    ],
)
async def test_malformed_and_oversized_frames(
    server: Server,
    bystander: Stomp,
    transport: str,
    frame: str | tuple[str, ...],
    message: str,
    code: int,
) -> None:
    client = await connected(server, transport)
    for part in (frame,) if isinstance(frame, str) else frame:
        await client.send(part)
    error, close_code = await error_then_close(client)
    assert message.lower() in message_of(error).lower()
    if transport == "websocket":  # SockJS closes its websocket with c[...] then 1000
        assert close_code == code
    await assert_undisturbed(bystander)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "destination",
    [
        "/topic/../secret",
        "/topic/quotes.../AAPL",
        "/topic/*",
        "/topic/quotes.*",
        "/topic/quotes.AAPL\u00e9",
        "/topic/quotes.aapl",
        "/queue/quotes.AAPL",
        "/topic/quotes." + "A" * 3000,
        "/topic/status.AAPL",
        "/topic/nosuch.AAPL",
    ],
)
async def test_fuzzed_destinations_are_unknown(
    server: Server, bystander: Stomp, transport: str, destination: str
) -> None:
    client = await connected(server, transport)
    await client.send(f"SUBSCRIBE\nid:0\ndestination:{destination}\n\n\0")
    error, close_code = await error_then_close(client)
    assert message_of(error).startswith("Unknown destination")
    if transport == "websocket":
        assert close_code == 1008
    await assert_undisturbed(bystander)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_websocket_message_over_the_limit_is_closed_1009(
    server: Server, bystander: Stomp, transport: str
) -> None:
    """One WebSocket message over ``max_message_bytes`` (64 KiB) is refused by the
    WebSocket layer before STOMP reads it: close 1009, no ERROR frame."""
    client = await connected(server, transport)
    await client.send("SUBSCRIBE\nid:0\ndestination:/x\n\n" + "b" * 70_000 + "\0")
    assert not [f for f in await client.until_closed() if f.startswith("ERROR")]
    assert client.close_code == 1009
    await assert_undisturbed(bystander)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_frames_before_connect(server: Server, bystander: Stomp, transport: str) -> None:
    client = await opened(await connect(url_of(server, transport)), transport)
    await client.send("SUBSCRIBE\nid:0\ndestination:/topic/quotes.AAPL\n\n\0")
    error, close_code = await error_then_close(client)
    assert "CONNECT" in message_of(error)
    if transport == "websocket":
        assert close_code == 1002
    await assert_undisturbed(bystander)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_subscription_flood_is_refused_past_the_cap(
    server: Server, bystander: Stomp, transport: str
) -> None:
    client = await connected(server, transport)
    destinations = [f"{c}.{s}" for s in ("AAPL", "MSFT") for c in ("quotes", "trades", "bars")]
    frames = [
        f"SUBSCRIBE\nid:s{i}\ndestination:/topic/{destination}\n\n\0"
        for i, destination in enumerate(destinations[: MAX_SUBSCRIPTIONS + 1])
    ]
    await client.send(*frames)
    error, close_code = await error_then_close(client)
    assert str(MAX_SUBSCRIPTIONS) in message_of(error)
    if transport == "websocket":
        assert close_code == 1008
    await assert_undisturbed(bystander)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_message_flood_is_refused(server: Server, bystander: Stomp, transport: str) -> None:
    client = await connected(server, transport)
    refused = False
    try:
        for i in range(200):  # 10x the burst, one valid frame in each message
            if i % 2 == 0:
                await client.send(f"SUBSCRIBE\nid:f{i}\ndestination:/topic/bars.AAPL\n\n\0")
            else:
                await client.send(f"UNSUBSCRIBE\nid:f{i - 1}\n\n\0")
    except websockets.ConnectionClosed:
        refused = True
    frames = await client.until_closed()
    errors = [f for f in frames if f.startswith("ERROR\n")]
    assert refused or errors
    assert len(errors) == 1
    assert "too many messages" in message_of(errors[0]).lower()
    if transport == "websocket":
        assert client.close_code == 1008
    await assert_undisturbed(bystander)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "credentials",
    [
        "passcode:tk_not_a_key",
        "Authorization:Bearer not.a.jwt",
        # a JWT with alg none: never accepted
        "Authorization:Bearer "
        + base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
        + "."
        + base64.urlsafe_b64encode(b'{"sub":"1","exp":9999999999}').decode().rstrip("=")
        + ".",
    ],
)
async def test_bad_credentials_get_an_error_then_a_close(
    server: Server, bystander: Stomp, transport: str, credentials: str
) -> None:
    client = await opened(await connect(url_of(server, transport)), transport)
    await client.send(f"CONNECT\naccept-version:1.2\n{credentials}\n\n\0")
    error, close_code = await error_then_close(client)
    assert message_of(error)
    if transport == "websocket":
        assert close_code is not None
        assert close_code >= 3000
    await assert_undisturbed(bystander)


async def test_a_foreign_origin_is_refused_before_any_frame(
    server: Server, bystander: Stomp
) -> None:
    """As on every front (fronts/guard.py): a browser (it sends Origin) whose page is
    foreign gets the upgrade and at once close 1008, so that it can read why; nothing
    else reaches it. An allow-listed origin connects."""
    for transport in TRANSPORTS:
        foreign = await connect(url_of(server, transport), origin="http://evil.example")  # type: ignore[arg-type]
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(WAIT_S):
                await foreign.recv()
        assert foreign.close_code == 1008
        ws = await connect(url_of(server, transport), origin=GOOD_ORIGIN)  # type: ignore[arg-type]
        client = await opened(ws, transport)
        await client.send(CONNECT)
        await client.expect("CONNECTED")
        await ws.close()
    await assert_undisturbed(bystander)


async def test_sockjs_http_transports_refuse_a_foreign_origin(
    server: Server, bystander: Stomp
) -> None:
    base = f"{server.http}/stomp/000/{secrets.token_hex(8)}"
    async with httpx.AsyncClient(timeout=WAIT_S) as http:
        evil = {"Origin": "http://evil.example"}
        for path in ("/xhr", "/xhr_streaming", "/xhr_send"):
            answer = await http.post(base + path, headers=evil, content=b'["x"]')
            assert answer.status_code == 403
            assert "access-control-allow-origin" not in answer.headers
        answer = await http.options(base + "/xhr", headers=evil)
        assert "access-control-allow-origin" not in answer.headers
        good = await http.post(base + "/xhr", headers={"Origin": GOOD_ORIGIN})
        assert good.status_code == 200
        assert good.text == "o\n"
        assert good.headers["access-control-allow-origin"] == GOOD_ORIGIN
    await assert_undisturbed(bystander)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"", 500, "Payload expected."),
        (b"[", 500, "Broken JSON encoding."),
        (b'{"a": 1}', 500, "Payload expected."),
        (b"[1, 2]", 500, "Payload expected."),
    ],
)
async def test_malformed_sockjs_payloads(
    server: Server, bystander: Stomp, body: bytes, status: int, words: str
) -> None:
    base = f"{server.http}/stomp/000/{secrets.token_hex(8)}"
    async with httpx.AsyncClient(timeout=WAIT_S) as http:
        assert (await http.post(base + "/xhr")).text == "o\n"
        answer = await http.post(base + "/xhr_send", content=body)
        assert answer.status_code == status
        assert words in answer.text
        # the session is untouched: a good frame still goes through
        sent = await http.post(base + "/xhr_send", content=json.dumps([CONNECT]).encode())
        assert sent.status_code == 204
        poll = await http.post(base + "/xhr")
        assert poll.text.startswith('a["CONNECTED')
    await assert_undisturbed(bystander)


async def test_broken_json_on_the_sockjs_websocket_closes_it(
    server: Server, bystander: Stomp
) -> None:
    ws = await connect(url_of(server, "sockjs"))
    client = await opened(ws, "sockjs")
    await ws.send("[broken")
    assert await client.until_closed() == []
    assert client.close_code is not None
    await assert_undisturbed(bystander)
