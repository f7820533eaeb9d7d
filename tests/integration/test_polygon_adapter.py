"""What only Polygon does: the Polygon adapter against the Polygon emulator, in-process
over real sockets, and against scripted upstreams. What every provider does (streaming,
the snapshot, credentials, the connection limit, dead letters, drops, silence, slow
consumers, handshake timeouts, cancellation) is in tests/contract/test_providers.py.

Each test starts the emulator on a free port (``build_server(port=0)``) and runs
``PolygonProvider.run`` in a task with a recording sink. Nothing sleeps blindly: tests
wait for a condition with a deadline (``RecordingSink.until``).

The emulator's own wire (trimmed params, unsubscribe, wildcards, the delayed cluster,
auth timeout, the 404 on other paths) is checked with a plain ``websockets`` client,
and its pure ``Tape`` (how simulator events become T, Q, A and AM) without sockets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from support.sink import RecordingSink, running
from support.wsclient import StalledClient
from tickcast.emulators import polygon as polygon_emulator
from tickcast.emulators.base import EmulatorServer
from tickcast.emulators.polygon import DELAY_S, Tape, build_server
from tickcast.errors import UpstreamAuthError, UpstreamError, UpstreamLimitError
from tickcast.model.market import Bar, Quote, Trade
from tickcast.providers.calendar import AlwaysOpen
from tickcast.providers.polygon.messages import MinuteAgg, QuoteEvent, SecondAgg, TradeEvent
from tickcast.providers.polygon.stream import PolygonProvider
from tickcast.providers.simulator.market import MarketSimulator, SimulatorConfig

KEY = "emulator-key"
SYMBOLS = ("AAPL", "MSFT")
WAIT_S = 5.0


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with build_server(rate=400) as server:
        yield server


def provider(server: EmulatorServer, key: str = KEY, **options: Any) -> PolygonProvider:
    return PolygonProvider(f"{server.url}/stocks", key, SYMBOLS, **options)


# -- the adapter


async def test_second_bars_when_channel_a_is_subscribed(emulator: EmulatorServer) -> None:
    sink = RecordingSink()
    async with running(provider(emulator, channels=("T", "A")), sink):
        await sink.until(lambda: len(sink.of(Bar, "AAPL")) >= 2)
    trades = sink.of(Trade, "AAPL")
    for bar in sink.of(Bar, "AAPL"):
        assert bar.interval_s == 1
        assert bar.ts == bar.start + 1
        inside = [t for t in trades if bar.start <= t.ts < bar.ts]
        if inside and inside[0] is not trades[0]:  # a second seen whole
            assert bar.volume == sum(t.size for t in inside)
            assert bar.open == inside[0].price
            assert bar.close == inside[-1].price
            assert bar.high == max(t.price for t in inside)
            assert bar.low == min(t.price for t in inside)


async def test_a_client_that_stops_reading_is_killed_as_a_slow_consumer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(polygon_emulator, "SEND_TIMEOUT_S", 0.5)
    async with build_server(rate=20_000) as server:
        url = f"{server.url}/stocks"
        client = await asyncio.to_thread(StalledClient, url, 4096)
        try:
            client.send_json({"action": "auth", "params": KEY})
            client.send_json({"action": "subscribe", "params": "T.*,Q.*"})
            async with httpx.AsyncClient(base_url=f"http://{server.host}:{server.port}") as http:

                async def connections() -> int:
                    state = (await http.get("/emulator/state")).json()
                    return int(state["connections"])

                # The emulator's connections are only observable through its control
                # endpoint, so this polls it, with a deadline.
                async with asyncio.timeout(WAIT_S):
                    while await connections() == 0:  # noqa: ASYNC110 - the handshake is done...
                        await asyncio.sleep(0.05)
                    while await connections() == 1:  # noqa: ASYNC110 - ...the writes back up
                        await asyncio.sleep(0.1)
        finally:
            client.close()
    assert server.connections_total == 1
    assert "polygon emulator: slow consumer" in caplog.text


async def test_a_wrong_path_is_an_upstream_error_with_the_http_status(
    emulator: EmulatorServer,
) -> None:
    prov = PolygonProvider(f"{emulator.url}/crypto", KEY, SYMBOLS)
    with pytest.raises(UpstreamError, match="HTTP 404"):
        await asyncio.wait_for(prov.run(RecordingSink()), WAIT_S)


# -- status meanings, against a scripted upstream

CONNECTED = '[{"ev":"status","status":"connected","message":"Connected Successfully"}]'
AUTHED = '[{"ev":"status","status":"auth_success","message":"authenticated"}]'
TRADE = '[{"ev":"T","sym":"AAPL","i":"1","x":4,"p":190.5,"s":100,"t":1767225600000,"q":2,"z":3}]'


def status(name: str, message: str) -> str:
    return json.dumps([{"ev": "status", "status": name, "message": message}])


def acks(params: list[str]) -> list[str]:
    return [status("success", f"subscribed to: {p}") for p in params]


async def run_scripted(
    after_auth: list[str], after_subscribe: Callable[[list[str]], list[str]] | None = None
) -> tuple[RecordingSink, UpstreamError]:
    """Run the adapter against a server that plays a script; the sink and the error."""

    async def play(ws: ServerConnection) -> None:
        await ws.send(CONNECTED)
        await ws.recv()
        for frame in after_auth:
            await ws.send(frame)
        if after_subscribe is not None:
            params = json.loads(await ws.recv())["params"].split(",")
            for frame in after_subscribe(params):
                await ws.send(frame)
        await ws.wait_closed()

    async with serve(play, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        url = f"ws://127.0.0.1:{port}/stocks"
        prov = PolygonProvider(url, KEY, ("AAPL",), handshake_timeout_s=0.5)
        sink = RecordingSink()
        with pytest.raises(UpstreamError) as caught:
            await asyncio.wait_for(prov.run(sink), WAIT_S)
    return sink, caught.value


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (status("auth_failed", "authentication failed"), UpstreamAuthError, "refused"),
        (status("error", "not authorized"), UpstreamAuthError, "not authorized"),
        (status("max_connections", "Maximum"), UpstreamLimitError, "limit"),
        (status("auth_timeout", "No authentication"), UpstreamError, "auth timed out"),
        (status("error", "bad request"), UpstreamError, "awaiting reply to auth"),
    ],
    ids=["auth_failed", "not-authorized", "max_connections", "auth_timeout", "error"],
)
async def test_replies_to_auth_end_run_by_meaning(
    reply: str, error: type[UpstreamError], text: str
) -> None:
    sink, caught = await run_scripted([reply])
    assert type(caught) is error
    assert text in str(caught)
    assert "authenticated" not in sink.states


async def test_events_between_subscription_acks_are_delivered_and_all_acks_awaited() -> None:
    def script(params: list[str]) -> list[str]:
        assert params == ["T.AAPL", "Q.AAPL", "AM.AAPL"]
        first, *rest = acks(params)
        return [first, TRADE, *rest, TRADE, status("max_connections", "kicked")]

    sink, caught = await run_scripted([AUTHED], script)
    assert type(caught) is UpstreamLimitError  # kicked by a newer connection mid-stream
    assert sink.states == ["connecting", "connected", "authenticated", "subscribed"]
    assert [e.ts for e in sink.events] == [1767225600.0, 1767225600.0]


async def test_a_missing_subscription_ack_times_out() -> None:
    sink, caught = await run_scripted([AUTHED], lambda params: acks(params)[:-1])
    assert type(caught) is UpstreamError
    assert "no subscription acks within 0.5 s" in str(caught)
    assert "subscribed" not in sink.states


async def test_an_error_status_after_subscribing_is_logged_and_the_stream_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def script(params: list[str]) -> list[str]:
        return [
            *acks(params),
            status("error", "something odd"),
            TRADE,
            status("slow_consumer", "x"),
        ]

    sink, caught = await run_scripted([AUTHED], script)
    assert "slow_consumer" in str(caught)
    assert len(sink.events) == 1
    assert "polygon error status" in caplog.text


# -- the emulator's wire, with a plain client


async def recv_json(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))


async def login(server: EmulatorServer) -> ClientConnection:
    ws = await connect(f"{server.url}/stocks")
    assert await recv_json(ws) == [
        {"ev": "status", "status": "connected", "message": "Connected Successfully"}
    ]
    await ws.send(json.dumps({"action": "auth", "params": KEY}))
    assert await recv_json(ws) == [
        {"ev": "status", "status": "auth_success", "message": "authenticated"}
    ]
    return ws


async def data_until(ws: ClientConnection, done: Callable[[list[dict[str, Any]]], bool]) -> Any:
    """Data items received until ``done(items)``; statuses are returned too, in order."""
    items: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT_S):
        while not done(items):
            items.extend(await recv_json(ws))
    return items


async def test_emulator_trims_spaces_in_subscribe_params(emulator: EmulatorServer) -> None:
    async with await login(emulator) as ws:
        await ws.send(json.dumps({"action": "subscribe", "params": "T.AAPL, Q.AAPL"}))
        items = await data_until(ws, lambda i: {"T", "Q"} <= {m["ev"] for m in i})
    statuses = [m for m in items if m["ev"] == "status"]
    assert statuses[:2] == [
        {"ev": "status", "status": "success", "message": "subscribed to: T.AAPL"},
        {"ev": "status", "status": "success", "message": "subscribed to: Q.AAPL"},
    ]
    assert {m["sym"] for m in items if m["ev"] != "status"} == {"AAPL"}


async def test_emulator_wildcards_unsubscribe_and_wire_types(emulator: EmulatorServer) -> None:
    async with await login(emulator) as ws:
        await ws.send(json.dumps({"action": "subscribe", "params": "T.*,Q.MSFT"}))

        def three_traded_and_a_quote(items: list[dict[str, Any]]) -> bool:
            traded = {m["sym"] for m in items if m["ev"] == "T"}
            return len(traded) >= 3 and any(m["ev"] == "Q" for m in items)

        items = await data_until(ws, three_traded_and_a_quote)
        trade = next(m for m in items if m["ev"] == "T")
        quote = next(m for m in items if m["ev"] == "Q")
        assert isinstance(trade["i"], str)
        assert isinstance(trade["t"], int)
        assert isinstance(trade["s"], int)
        assert trade["z"] in (2, 3)
        assert isinstance(quote["c"], int)
        assert isinstance(quote["i"], list)
        assert isinstance(quote["bs"], int)
        assert quote["sym"] == "MSFT"
        seqs: dict[str, list[int]] = {}
        for m in items:
            if m["ev"] in ("T", "Q"):
                seqs.setdefault(m["sym"], []).append(m["q"])
        assert all(s == sorted(set(s)) for s in seqs.values())  # increasing per symbol
        await ws.send(json.dumps({"action": "unsubscribe", "params": "T.*"}))
        items = await data_until(
            ws, lambda i: any(m.get("message") == "unsubscribed to: T.*" for m in i)
        )
        items = await data_until(ws, lambda i: sum(m["ev"] == "Q" for m in i) >= 5)
        assert {m["ev"] for m in items} == {"Q"}


async def test_delayed_cluster_is_15_minutes_old_and_has_no_quotes() -> None:
    async with build_server(rate=400, delayed=True) as server, await login(server) as ws:
        await ws.send(json.dumps({"action": "subscribe", "params": "T.*,Q.*"}))
        items = await data_until(ws, lambda i: sum(m["ev"] == "T" for m in i) >= 20)
    assert {m["ev"] for m in items} == {"status", "T"}
    lag_s = time.time() - max(m["t"] for m in items if m["ev"] == "T") / 1000
    assert DELAY_S - 5 < lag_s < DELAY_S + 5


async def test_emulator_times_out_a_connection_that_does_not_authenticate() -> None:
    async with build_server(auth_timeout_s=0.2) as server:
        ws = await connect(f"{server.url}/stocks")
        assert (await recv_json(ws))[0]["status"] == "connected"
        assert (await recv_json(ws))[0]["status"] == "auth_timeout"
        with pytest.raises(ConnectionClosed):
            await recv_json(ws)
        assert ws.close_code == 1008


async def test_emulator_answers_protocol_mistakes_with_error_statuses() -> None:
    async def reply(ws: ClientConnection, message: str) -> list[Any]:
        await ws.send(message)
        return [(m["status"], m["message"]) for m in await recv_json(ws)]

    async with build_server() as server, connect(f"{server.url}/stocks") as ws:
        await recv_json(ws)  # connected
        assert await reply(ws, "{") == [("error", "invalid message")]
        subscribe = json.dumps({"action": "subscribe", "params": "T.AAPL"})
        assert await reply(ws, subscribe) == [("error", "not authenticated")]
        auth = json.dumps({"action": "auth", "params": KEY})
        assert await reply(ws, auth) == [("auth_success", "authenticated")]
        await ws.send(json.dumps({"action": "subscribe", "params": " ,bogus,T.,Q.MSFT"}))
        replies = await data_until(ws, lambda i: sum(m["ev"] == "status" for m in i) >= 3)
        assert [(m["status"], m["message"]) for m in replies if m["ev"] == "status"] == [
            ("error", "invalid subscription: bogus"),
            ("error", "invalid subscription: T."),
            ("success", "subscribed to: Q.MSFT"),
        ]
        await ws.send(json.dumps({"action": "unsubscribe", "params": "Q.MSFT"}))
        await data_until(ws, lambda i: any(m["ev"] == "status" for m in i))

        for message, expected in [
            (auth, "already authenticated"),
            ('{"action":"dance"}', "unknown action: dance"),
            ("[]", "invalid message"),
        ]:
            await ws.send(message)
            items = await data_until(ws, lambda i: any(m["ev"] == "status" for m in i))
            assert [m["message"] for m in items if m["ev"] == "status"] == [expected]


@pytest.mark.parametrize(
    "options",
    [{"symbols": ("AAPL", "BTC/USDT")}, {"auth_timeout_s": 0}],
    ids=["crypto", "auth-timeout"],
)
def test_build_server_refuses_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"stocks only|auth_timeout_s"):
        build_server(**options)


def test_a_second_aggregate_holds_the_trades_whose_sent_timestamps_fall_in_it() -> None:
    """Polygon sends whole milliseconds: a trade at S + 0.9996 s goes out as S + 1.000 and
    belongs to the next second, for the emulator's A as for any client that adds up T."""
    start = 1_767_225_600.0
    tape = Tape()
    trades = [
        Trade("AAPL", 100.0, 100, start + 0.2, "polygon", "1"),
        Trade("AAPL", 101.0, 900, start + 0.9996, "polygon", "2"),  # sent as start + 1.000
        Trade("AAPL", 102.0, 50, start + 1.5, "polygon", "3"),
        Trade("AAPL", 103.0, 10, start + 2.5, "polygon", "4"),
    ]
    messages = tape.convert(trades, lambda ev, sym: True)
    sent = {m.i: m.t for m in messages if type(m) is TradeEvent}
    assert sent["2"] == round((start + 1) * 1000)
    seconds = {m.s: m for m in messages if type(m) is SecondAgg}
    first, second = seconds[round(start * 1000)], seconds[round((start + 1) * 1000)]
    assert (first.v, first.o, first.c) == (100, 100.0, 100.0)
    assert (second.v, second.o, second.c) == (950, 101.0, 102.0)


# -- the emulator's tape, without sockets


def test_tape_makes_second_and_minute_aggregates_from_the_simulator() -> None:
    start = 1_767_225_600.0  # on a minute boundary
    config = SimulatorConfig(symbols=("AAPL",), rate=50.0, source="polygon")
    simulator = MarketSimulator(config, AlwaysOpen(), start)
    tape = Tape()
    events = simulator.advance(start + 61.5)
    messages = tape.convert(events, lambda ev, sym: True)
    trades = [e for e in events if type(e) is Trade]
    bar = next(e for e in events if type(e) is Bar)
    wire_trades = [m for m in messages if type(m) is TradeEvent]
    assert [m.i for m in wire_trades] == [t.trade_id for t in trades]
    assert len([m for m in messages if type(m) is QuoteEvent]) == len(
        [e for e in events if type(e) is Quote]
    )
    seconds = [m for m in messages if type(m) is SecondAgg]
    assert sum(m.v for m in seconds) == sum(t.size for t in trades if t.ts < start + 61)
    assert all(m.e - m.s == 1000 for m in seconds)
    (minute,) = [m for m in messages if type(m) is MinuteAgg]
    assert (minute.s, minute.e) == (round(start * 1000), round((start + 60) * 1000))
    assert (minute.o, minute.h, minute.l, minute.c) == (bar.open, bar.high, bar.low, bar.close)
    assert minute.v == bar.volume
    in_minute = [t for t in trades if t.ts < start + 60]
    vwap = sum(t.price * t.size for t in in_minute) / sum(t.size for t in in_minute)
    assert minute.vw == pytest.approx(vwap, abs=1e-4)
    assert sum(m.v for m in seconds if m.s < minute.e) == minute.v
    # Every A precedes the AM of its minute, and each stream's ``q`` increases.
    assert messages.index(minute) > max(messages.index(m) for m in seconds if m.e <= minute.e)
