"""What only Alpaca does: AlpacaProvider against the Alpaca emulator (free port, in-process,
real sockets) and against scripted upstreams, then the emulator's wire seen by a raw client
(Alpaca's documented session and error codes). What every provider does (streaming,
credentials, the connection limit, dead letters, drops, silence, slow consumers, handshake
timeouts, cancellation) is in tests/contract/test_providers.py. Every wait is for a
condition, with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from support.emulator import released
from support.sink import RecordingSink, running
from support.wsclient import closed_code
from tickcast.config.settings import Settings
from tickcast.emulators.alpaca import build_server
from tickcast.emulators.base import EmulatorServer
from tickcast.errors import ConfigError, UpstreamAuthError, UpstreamError, UpstreamLimitError
from tickcast.model.market import BookUpdate, Quote, Trade
from tickcast.providers.alpaca.stream import AlpacaProvider

KEY, SECRET = "emulator-key", "emulator-secret"
STOCKS = ["AAPL", "MSFT", "BTC/USD"]  # the stock feed serves the first two


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with build_server(rate=1000, auth_timeout_s=0.5) as server:
        yield server


def provider(server: EmulatorServer, path: str = "/v2/iex", **kwargs: Any) -> AlpacaProvider:
    args = {"key_id": KEY, "secret": SECRET, "symbols": STOCKS} | kwargs
    return AlpacaProvider(f"{server.url}{path}", **args)


# -- the adapter


async def test_crypto_books_start_with_a_snapshot_and_resync_asks_for_another(
    emulator: EmulatorServer,
) -> None:
    alpaca = provider(emulator, "/v1beta3/crypto/us", symbols=["AAPL", "BTC/USD", "ETH/USD"])
    assert alpaca.symbols == {"BTC/USD", "ETH/USD"}
    sink = RecordingSink()
    async with running(alpaca, sink):
        await sink.until(lambda: all(len(sink.of(BookUpdate, s)) > 3 for s in alpaca.symbols))
        for symbol in alpaca.symbols:
            first, *rest = sink.of(BookUpdate, symbol)
            assert first.snapshot
            assert len(first.bids) > 1
            assert not any(b.snapshot for b in rest)
            assert [p for p, _ in first.bids] == sorted((p for p, _ in first.bids), reverse=True)
        await alpaca.resync("BTC/USD")
        await sink.until(lambda: sum(b.snapshot for b in sink.of(BookUpdate, "BTC/USD")) == 2)
        await alpaca.resync("AAPL")  # not on this feed: nothing happens
    assert {type(e) for e in sink.events} >= {Quote, Trade, BookUpdate}


async def test_test_stream_serves_fakepaca_only(emulator: EmulatorServer) -> None:
    alpaca, sink = provider(emulator, "/v2/test"), RecordingSink()
    assert alpaca.symbols == {"FAKEPACA"}
    async with running(alpaca, sink):
        await sink.until(lambda: bool(sink.of(Quote)) and bool(sink.of(Trade)))
    assert {e.symbol for e in sink.events} == {"FAKEPACA"}
    await alpaca.resync("FAKEPACA")  # not streaming: a no-op


async def test_unknown_stream_path_is_refused_with_http_404(emulator: EmulatorServer) -> None:
    with pytest.raises(UpstreamError, match="HTTP 404") as raised:
        await provider(emulator, "/v2/boats").run(RecordingSink())
    assert type(raised.value) is UpstreamError


@contextlib.asynccontextmanager
async def scripted(
    *replies: str, then: Sequence[str] = (), status: int = 101
) -> AsyncIterator[str]:
    """A fake upstream at the yielded URL. It sends ``replies[0]`` after the upgrade and
    the next reply after each client message, then the ``then`` frames, then closes
    normally. A ``status`` other than 101 refuses the upgrade with that HTTP status."""

    async def script(ws: ServerConnection) -> None:
        await ws.send(replies[0])
        for reply in replies[1:]:
            await ws.recv()
            await ws.send(reply)
        for frame in then:
            await ws.send(frame)

    def refuse(ws: ServerConnection, request: Any) -> Any:
        return None if status == 101 else ws.respond(status, "no\n")

    async with serve(script, "127.0.0.1", 0, process_request=refuse) as server:
        yield f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/v2/iex"


CONNECTED = '[{"T":"success","msg":"connected"}]'
AUTHENTICATED = '[{"T":"success","msg":"authenticated"}]'
SUBSCRIBED = '[{"T":"subscription","trades":["AAPL"],"quotes":["*"],"bars":["AAPL"]}]'


async def test_normal_close_while_streaming_is_an_upstream_error() -> None:
    then = (
        '[{"T":"s","S":"AAPL","sc":"H","t":"2021-02-22T19:15:00Z"}]',
        '[{"T":"error","code":403,"msg":"already authenticated"}]',
        '[{"T":"t","S":"AAPL","i":1,"p":1.5,"s":2,"t":"2021-02-22T19:15:00Z"}]',
    )
    sink = RecordingSink()
    async with scripted(CONNECTED, AUTHENTICATED, SUBSCRIBED, then=then) as url:
        with pytest.raises(UpstreamError, match=r"closed the connection \(code 1000"):
            await AlpacaProvider(url, KEY, SECRET, STOCKS).run(sink)
    assert sink.states[-1] == "subscribed"
    assert "not subscribed" in sink.details[-1]
    assert "MSFT" in sink.details[-1]
    assert [type(e) for e in sink.events] == [Trade]


@pytest.mark.parametrize(
    ("replies", "match"),
    [
        ((AUTHENTICATED,), "expected 'connected'"),
        ((CONNECTED, CONNECTED), "expected 'authenticated'"),
        ((CONNECTED, AUTHENTICATED, '[{"T":"error","code":405,"msg":"limit"}]'), "405"),
        ((CONNECTED, '[{"T":"error","code":409,"msg":"insufficient subscription"}]'), "plan"),
    ],
)
async def test_unexpected_handshake_replies_fail_run(replies: tuple[str, ...], match: str) -> None:
    async with scripted(*replies) as url:
        with pytest.raises(UpstreamError, match=match):
            await AlpacaProvider(url, KEY, SECRET, STOCKS).run(RecordingSink())


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (402, UpstreamAuthError),
        (404, UpstreamError),
        (406, UpstreamLimitError),
        (407, UpstreamError),
    ],
)
async def test_error_codes_are_classified_by_meaning(code: int, kind: type) -> None:
    # 404 (auth timeout) means our auth was late, not wrong: retried, unlike 402
    async with scripted(CONNECTED, f'[{{"T":"error","code":{code},"msg":"x"}}]') as url:
        with pytest.raises(UpstreamError, match=str(code)) as raised:
            await AlpacaProvider(url, KEY, SECRET, STOCKS).run(RecordingSink())
    assert type(raised.value) is kind


KINDS = (UpstreamAuthError, UpstreamAuthError, UpstreamLimitError, UpstreamError)


@pytest.mark.parametrize(("status", "kind"), list(zip((401, 403, 429, 500), KINDS, strict=True)))
async def test_refused_upgrade_is_classified_by_status(status: int, kind: type) -> None:
    async with scripted(CONNECTED, status=status) as url:
        with pytest.raises(UpstreamError, match=f"HTTP {status}") as raised:
            await AlpacaProvider(url, KEY, SECRET, STOCKS).run(RecordingSink())
    assert type(raised.value) is kind


def test_from_settings_needs_both_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALPACA_API_SECRET_KEY", raising=False)
    monkeypatch.setenv("ALPACA_API_KEY_ID", "key")
    with pytest.raises(ConfigError, match="ALPACA_API_SECRET_KEY"):
        AlpacaProvider.from_settings(Settings().upstream)
    monkeypatch.setenv("ALPACA_API_SECRET_KEY", "secret")
    settings = Settings(alpaca_url="wss://x/v1beta3/crypto/us", symbols=("AAPL", "BTC/USD"))
    assert AlpacaProvider.from_settings(settings.upstream).symbols == {"BTC/USD"}
    with pytest.raises(ConfigError, match="serves none"):
        AlpacaProvider.from_settings(
            Settings(alpaca_url="wss://x/v2/iex", symbols=("BTC/USD",)).upstream
        )
    with pytest.raises(ConfigError, match="ws:// or wss://"):
        AlpacaProvider.from_settings(Settings(alpaca_url="https://x/v2/iex").upstream)


# -- the emulator's wire, with a raw client


async def recv(ws: ClientConnection, wait_s: float = 5.0) -> Any:
    message = await asyncio.wait_for(ws.recv(), wait_s)
    return msgpack.unpackb(message) if isinstance(message, bytes) else json.loads(message)


async def recv_control(ws: ClientConnection) -> dict[str, Any]:
    """The next control message, skipping data; checks that it came alone."""
    while True:
        frame = await recv(ws)
        if frame[0]["T"] in ("success", "error", "subscription"):
            assert len(frame) == 1, frame
            return dict(frame[0])


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


@contextlib.asynccontextmanager
async def session(
    server: EmulatorServer, path: str = "/v2/iex", *, auth: bool = True, **headers: str
) -> AsyncIterator[ClientConnection]:
    async with connect(f"{server.url}{path}", additional_headers=headers) as ws:
        assert await recv(ws) == [{"T": "success", "msg": "connected"}]
        if auth:
            await send(ws, {"action": "auth", "key": KEY, "secret": SECRET})
            assert await recv(ws) == [{"T": "success", "msg": "authenticated"}]
        yield ws


def error(code: int, msg: str) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": msg}


async def test_emulator_session_flow_and_errors(emulator: EmulatorServer) -> None:
    async with session(emulator, auth=False) as ws:
        await send(ws, {"action": "subscribe", "trades": ["AAPL"]})
        assert await recv_control(ws) == error(401, "not authenticated")
        await ws.send("not json")
        assert await recv_control(ws) == error(400, "invalid syntax")
        await send(ws, {"action": "auth", "key": KEY, "secret": SECRET})
        assert await recv_control(ws) == {"T": "success", "msg": "authenticated"}
        await send(ws, {"action": "auth", "key": KEY, "secret": SECRET})
        assert await recv_control(ws) == error(403, "already authenticated")
        await send(ws, {"action": "subscribe", "trades": ["AAPL"], "quotes": ["MSFT"]})
        await send(ws, {"action": "subscribe", "bars": ["*"], "dailyBars": None, "news": []})
        await recv_control(ws)
        assert await recv_control(ws) == {
            "T": "subscription",
            **{"trades": ["AAPL"], "quotes": ["MSFT"], "bars": ["*"], "updatedBars": []},
            **{"dailyBars": [], "statuses": [], "lulds": [], "imbalances": []},
            **{"corrections": ["AAPL"], "cancelErrors": ["AAPL"]},
        }
        seen: set[tuple[str, str]] = set()
        while len(seen) < 2:
            frame = await recv(ws)
            seen |= {(m["T"], m["S"]) for m in frame if m["T"] in ("t", "q")}
        assert seen == {("t", "AAPL"), ("q", "MSFT")}
        await send(ws, {"action": "unsubscribe", "bars": ["*"], "trades": ["AAPL"]})
        reply = await recv_control(ws)
        assert (reply["bars"], reply["trades"], reply["cancelErrors"]) == ([], [], [])
        await send(ws, {"action": "subscribe", "orderbooks": ["AAPL"]})
        assert await recv_control(ws) == error(410, "invalid subscribe action for this feed")
        await send(ws, {"action": "subscribe", "trades": "AAPL"})
        assert await recv_control(ws) == error(400, "invalid syntax")


async def test_emulator_symbol_limit_leaves_the_subscription_unchanged() -> None:
    async with build_server(symbol_limit=2) as server, session(server) as ws:
        await send(ws, {"action": "subscribe", "quotes": ["AAPL", "MSFT"]})
        assert (await recv_control(ws))["quotes"] == ["AAPL", "MSFT"]
        await send(ws, {"action": "subscribe", "trades": ["TSLA"]})
        assert await recv_control(ws) == error(405, "symbol limit exceeded")
        await send(ws, {"action": "subscribe", "trades": ["AAPL"]})
        reply = await recv_control(ws)
        assert (reply["trades"], reply["quotes"]) == (["AAPL"], ["AAPL", "MSFT"])


async def test_emulator_msgpack_frames_put_t_first_and_stamp_with_timestamps(
    emulator: EmulatorServer,
) -> None:
    headers = {"Content-Type": "application/msgpack"}
    async with connect(f"{emulator.url}/v2/iex", additional_headers=headers) as ws:
        assert msgpack.unpackb(await ws.recv()) == [{"T": "success", "msg": "connected"}]
        await ws.send(msgpack.packb({"action": "auth", "key": KEY, "secret": SECRET}))
        assert msgpack.unpackb(await ws.recv()) == [{"T": "success", "msg": "authenticated"}]
        subscribe = msgpack.packb({"trades": ["AAPL"], "quotes": ["*"], "action": "subscribe"})
        await ws.send([subscribe[:7], subscribe[7:20], subscribe[20:]])  # fragmented
        seen: set[str] = set()
        while seen != {"subscription", "t", "q"}:
            frame = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(frame, bytes)
            for pairs in msgpack.unpackb(frame, object_pairs_hook=list):
                assert pairs[0][0] == "T"
                message = dict(pairs)
                seen.add(message["T"])
                if message["T"] in ("t", "q"):
                    assert isinstance(message["t"], msgpack.Timestamp)


async def test_emulator_authenticates_by_headers(emulator: EmulatorServer) -> None:
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    async with session(emulator, auth=False, **headers) as ws:
        assert await recv_control(ws) == {"T": "success", "msg": "authenticated"}
    async with session(emulator, auth=False, **(headers | {"APCA-API-SECRET-KEY": "x"})) as ws:
        assert await recv_control(ws) == error(402, "auth failed")
        with pytest.raises(ConnectionClosed):
            await recv(ws)


async def test_emulator_closes_without_auth_in_time(emulator: EmulatorServer) -> None:
    async with session(emulator, auth=False) as ws:
        assert await recv(ws, wait_s=2) == [error(404, "auth timeout")]
        with pytest.raises(ConnectionClosed):
            await recv(ws)


async def test_emulator_test_stream_replies_with_its_three_channels(
    emulator: EmulatorServer,
) -> None:
    async with session(emulator, "/v2/test") as ws:
        await send(ws, {"action": "subscribe", "quotes": ["FAKEPACA"], "bars": ["FAKEPACA"]})
        reply = await recv_control(ws)
        assert list(reply) == ["T", "trades", "quotes", "bars"]
        assert (reply["trades"], reply["quotes"], reply["bars"]) == ([], ["FAKEPACA"], ["FAKEPACA"])
        await send(ws, {"action": "subscribe", "statuses": ["*"]})
        assert (await recv_control(ws))["code"] == 410


@pytest.mark.parametrize(
    "message",
    [
        [1, 2],
        {"action": 5},
        {"action": "dance"},
        {"action": "auth", "key": 1, "secret": SECRET},
        {"action": "subscribe", "trades": ["not a symbol"]},
        {"action": "subscribe", "quotes": [None]},
    ],
)
async def test_emulator_answers_unreadable_requests_with_400(
    emulator: EmulatorServer, message: Any
) -> None:
    async with session(emulator) as ws:
        await send(ws, message)
        assert await recv_control(ws) == error(400, "invalid syntax")
        await send(ws, {"action": "subscribe", "corrections": ["AAPL"], "quotes": ["MSFT"]})
        reply = await recv_control(ws)
        assert (reply["quotes"], reply["corrections"]) == (["MSFT"], [])


async def test_emulator_sends_minute_bars_and_the_day_bar_so_far() -> None:
    async with build_server(rate=1000, bar_interval_s=1) as server, session(server) as ws:
        await send(ws, {"action": "subscribe", "bars": ["AAPL"], "dailyBars": ["AAPL"]})
        await recv_control(ws)
        bars: list[dict[str, Any]] = []
        while sum(m["T"] == "b" for m in bars) < 2:  # the first may have started unseen
            bars += [m for m in await recv(ws) if m["T"] in ("b", "d")]
    minute, day = bars[-2:]
    assert list(minute) == ["T", "S", "o", "h", "l", "c", "v", "t", "n", "vw"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", minute["t"])  # bar start: whole s
    assert isinstance(minute["v"], int)
    assert minute["l"] <= minute["vw"] <= minute["h"]
    assert day["t"].endswith("T00:00:00Z")
    assert day["v"] >= minute["v"]
    assert day["n"] >= minute["n"] > 0


async def test_emulator_crypto_book_starts_with_the_whole_book(emulator: EmulatorServer) -> None:
    async with session(emulator) as ws:  # wait until the market has ticked a while
        await send(ws, {"action": "subscribe", "quotes": ["*"]})
        for _ in range(3):
            await recv(ws)
    async with session(emulator, "/v1beta3/crypto/us") as ws:
        await send(ws, {"action": "subscribe", "orderbooks": ["BTC/USD"], "quotes": ["ETH/USD"]})
        reply = await recv_control(ws)
        assert list(reply)[1:] == [
            "trades",
            "quotes",
            "orderbooks",
            "bars",
            "updatedBars",
            "dailyBars",
        ]
        books = [m for m in await recv(ws) if m["T"] == "o"]
        while len(books) < 2:
            books += [m for m in await recv(ws) if m["T"] == "o"]
        first, delta = books[:2]
        assert first["r"] is True
        assert len(first["b"]) > 1
        assert "r" not in delta
        await send(ws, {"action": "unsubscribe", "orderbooks": ["BTC/USD"]})
        await recv_control(ws)
        await send(ws, {"action": "subscribe", "orderbooks": ["*"]})
        await recv_control(ws)
        resets: set[str] = set()
        while resets != {"BTC/USD", "ETH/USD"}:
            resets |= {m["S"] for m in await recv(ws) if m["T"] == "o" and m.get("r")}


async def test_emulator_drops_a_client_that_stops_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tickcast.emulators.alpaca.SEND_TIMEOUT_S", 0.2)
    monkeypatch.setattr("tickcast.emulators.alpaca.CLOSE_TIMEOUT_S", 0.2)
    async with build_server(rate=20_000) as server:
        with socket.socket() as sock:  # a tiny receive window, no compression: fills fast
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
            url = f"{server.url}/v2/iex"
            async with connect(url, sock=sock, compression=None, max_queue=1) as ws:
                await recv(ws)
                await send(ws, {"action": "auth", "key": KEY, "secret": SECRET})
                await recv(ws)
                await send(ws, {"action": "subscribe", "trades": ["*"], "quotes": ["*"]})
                await released(server)  # the test reads nothing until the emulator gives up
                assert await closed_code(ws) in (None, 1008)  # 407 may not make it (3.4)
