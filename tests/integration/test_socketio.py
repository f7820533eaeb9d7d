"""Front 5 (Socket.IO at ``/socket.io/``, docs/socketio.md) with python-socketio's
``AsyncClient``, against the real server (uvicorn with tickcast's protocol classes, in a
thread of this process, so that a test publishes signals through the node's publisher as
the signal service does).

Each transport (websocket only, polling only, polling then the upgrade) gets ``welcome``
first, then ``new_signal`` and ``status_update`` in the seed's shapes; credentials come
in the CONNECT ``auth`` payload or the handshake, and a refusal is a CONNECT_ERROR with
the guard's message; ``last_signal_id`` replays what was missed, in order; a client that
stops reading is closed without holding the others back.

Waits are on conditions with generous deadlines, never on durations."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
import websockets
from websockets.asyncio.client import connect

from support.accounts import Account, seed
from support.inprocess import InProcessServer
from tickcast.config.settings import Settings
from tickcast.fronts.socketio import SocketIOEndpoint
from tickcast.model.signal import Signal, WorkerStatus

WAIT_S = 20.0
ORIGIN = "http://good.example"
TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],
}
_ids = itertools.count(1)


def signal(symbol: str = "BTC/USDT", kind: str = "QUANTUM_CIPHER", **more: Any) -> Signal:
    fields: dict[str, Any] = {
        "type": kind,
        "signal": "BUY",
        "price": 162.5,
        "symbol": symbol,
        "timeframe": "1m",
        "timestamp": "2026-01-02T03:04:05.000Z",
        "id": f"sig-{next(_ids)}",
        "source": "test",
    }
    fields.update(more)
    return Signal(**fields)


def seed_shape(sig: Signal) -> dict[str, Any]:
    return {f: getattr(sig, f) for f in sig.__struct_fields__}


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Account]]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('socketio')}/tickcast.db"
    return url, asyncio.run(seed(url, {"ana": {}}))


#: The signal workers whose statuses a client may be sent (the service's, and the test's).
SERVICES = {"SignalMonitorWorker", "engine", "redis"}


def settings(database_url: str, **more: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "rate": 200,
        "batch_ms": 20,
        "allowed_origins": (ORIGIN,),
        "rate_limit_per_s": 50,
        "rate_limit_burst": 50,
        "log_level": "warning",
        # python-socketio's client, polling, leaves only when its pending poll returns:
        # at the next ping (a browser aborts the request at once)
        "socketio_ping_interval_s": 1.0,
        "socketio_ping_timeout_s": 2.0,
    }
    values.update(more)
    return Settings(**values)


@pytest.fixture(scope="module")
def gateway(accounts: tuple[str, dict[str, Account]]) -> Iterator[InProcessServer]:
    srv = InProcessServer(settings(accounts[0])).start()
    yield srv
    srv.stop()


def endpoint(srv: InProcessServer) -> SocketIOEndpoint:
    return next(m for _, _, m in srv.app.mounts if isinstance(m, SocketIOEndpoint))


class Listener:
    """A python-socketio client that records every event it gets, in order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()

        def record(event: str, *args: Any) -> None:
            self.events.append((event, args[0] if args else None))
            self.changed.set()

        self.client.on("*", record)
        #: The CONNECT_ERROR's data, when the server refused the client.
        self.refusal: Any = None

        def refused(data: Any) -> None:
            self.refusal = data

        self.client.on("connect_error", refused)

    async def connect(
        self, srv: InProcessServer, transports: list[str], **options: Any
    ) -> Listener:
        options.setdefault("headers", {"Origin": ORIGIN})
        await self.client.connect(srv.url, transports=transports, wait_timeout=WAIT_S, **options)
        return self

    def named(self, name: str) -> list[Any]:
        return [body for event, body in self.events if event == name]

    async def until(self, check: Callable[[], bool], what: str) -> None:
        async def wait() -> None:
            while not check():
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), WAIT_S)
        except TimeoutError:
            got = f"{len(self.events)} events, the last {self.events[-3:]}"
            raise AssertionError(f"not reached in {WAIT_S} s: {what}; {got}") from None

    async def close(self) -> None:
        await self.client.disconnect()


async def until(check: Callable[[], Any], what: str) -> None:
    """Until ``check()`` (or what it returns, when that is awaitable) is true."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not ((await r) if inspect.isawaitable(r := check()) else r):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in {WAIT_S} s: {what}")
        await asyncio.sleep(0.02)


# -- the seed's events, over every transport


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_welcome_then_signals_and_statuses_in_the_seed_shapes(
    gateway: InProcessServer, transport: str
) -> None:
    listener = await Listener().connect(gateway, TRANSPORTS[transport])
    try:
        await listener.until(lambda: bool(listener.events), "welcome")
        assert listener.events[0][0] == "welcome"
        assert isinstance(listener.events[0][1]["message"], str)
        if transport == "upgrade":
            await until(lambda: listener.client.transport() == "websocket", "the upgrade")
        sig = signal()
        await gateway.apublish([sig])
        # a message of this test's own: a client is sent each worker's current status
        # on connect, which an earlier test of the module may have set
        status = WorkerStatus("SignalMonitorWorker", "degraded", f"Redis unreachable ({transport})")
        await gateway.apublish([status])
        published = {
            "service": "SignalMonitorWorker",
            "status": "degraded",
            "message": f"Redis unreachable ({transport})",
        }
        # the signal service's own statuses come too: each worker's current state on
        # connect, then each change; the one published here is among them, after the signal
        await listener.until(lambda: published in listener.named("status_update"), "ours")
        assert listener.named("new_signal") == [seed_shape(sig)]
        assert all(s["service"] in SERVICES for s in listener.named("status_update"))
        assert listener.client.transport() == TRANSPORTS[transport][-1]
    finally:
        await listener.close()


async def test_an_upgraded_client_is_written_to_directly(gateway: InProcessServer) -> None:
    """Once on the websocket transport, the hub's frames go to the server's socket
    itself (tickcast's extension), not through Engine.IO's queue."""
    listener = await Listener().connect(gateway, TRANSPORTS["upgrade"])
    try:
        await until(lambda: listener.client.transport() == "websocket", "the upgrade")
        sid = listener.client.get_sid()
        ep = endpoint(gateway)
        await gateway.apublish([signal()])
        await listener.until(lambda: bool(listener.named("new_signal")), "a signal")

        def direct() -> bool:
            client = ep.clients.get(sid)
            return client is not None and client.sock.raw

        await until(lambda: gateway.acall(direct), "direct writes")
        sig = signal()
        await gateway.apublish([sig])
        await listener.until(lambda: seed_shape(sig) in listener.named("new_signal"), "it")
    finally:
        await listener.close()


async def test_events_keep_their_order_across_the_upgrade(gateway: InProcessServer) -> None:
    listener = await Listener().connect(gateway, TRANSPORTS["upgrade"])
    try:
        sent = []
        while listener.client.transport() != "websocket" or len(sent) < 40:
            sig = signal()
            sent.append(sig.id)
            await gateway.apublish([sig])
            await asyncio.sleep(0.005)
        await listener.until(lambda: len(listener.named("new_signal")) == len(sent), "all")
        assert [s["id"] for s in listener.named("new_signal")] == sent
        assert listener.events[0][0] == "welcome"
    finally:
        await listener.close()


# -- credentials and refusals


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_token_in_the_auth_payload_is_checked(
    gateway: InProcessServer, accounts: tuple[str, dict[str, Account]], transport: str
) -> None:
    good = await Listener().connect(
        gateway, TRANSPORTS[transport], auth={"token": accounts[1]["ana"].api_key}
    )
    await good.until(lambda: bool(good.events), "welcome")
    await good.close()
    refused = Listener()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(gateway, TRANSPORTS[transport], auth={"token": "tc_bad.bad"})
    assert refused.refusal["message"].startswith("Invalid API key")


async def test_a_key_in_the_handshake_header_is_checked(
    gateway: InProcessServer, accounts: tuple[str, dict[str, Account]]
) -> None:
    key = accounts[1]["ana"].api_key
    good = await Listener().connect(
        gateway, TRANSPORTS["polling"], headers={"Origin": ORIGIN, "X-API-Key": key}
    )
    await good.until(lambda: bool(good.events), "welcome")
    await good.close()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await Listener().connect(
            gateway, TRANSPORTS["polling"], headers={"Origin": ORIGIN, "X-API-Key": "nope"}
        )


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_foreign_origin_gets_connect_error(
    gateway: InProcessServer, transport: str
) -> None:
    refused = Listener()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(
            gateway, TRANSPORTS[transport], headers={"Origin": "http://evil.example"}
        )
    assert "origin" in refused.refusal["message"].lower()


async def test_anonymous_clients_are_refused_when_anonymous_access_is_off(
    accounts: tuple[str, dict[str, Account]],
) -> None:
    srv = InProcessServer(settings(accounts[0], allow_anonymous=False)).start()
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await Listener().connect(srv, TRANSPORTS["websocket"])
        ok = await Listener().connect(
            srv, TRANSPORTS["websocket"], auth={"token": accounts[1]["ana"].api_key}
        )
        await ok.until(lambda: bool(ok.events), "welcome")
        await ok.close()
    finally:
        srv.stop()


# -- catch-up


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_resume_by_last_signal_id_replays_what_was_missed_in_order(
    gateway: InProcessServer, transport: str
) -> None:
    first, *missed = [signal(symbol=s) for s in ("AAPL", "MSFT", "BTC/USDT", "AAPL")]
    await gateway.apublish([first])
    await gateway.apublish(missed[:2])
    await gateway.apublish(missed[2:])
    listener = await Listener().connect(
        gateway, TRANSPORTS[transport], auth={"last_signal_id": first.id}
    )
    try:
        await listener.until(lambda: len(listener.named("new_signal")) >= 3, "the replay")
        assert listener.events[0][0] == "welcome"
        assert listener.named("new_signal") == [seed_shape(s) for s in missed]
        live = signal()
        await gateway.apublish([live])
        await listener.until(lambda: len(listener.named("new_signal")) == 4, "a live one")
        assert listener.named("new_signal")[-1] == seed_shape(live)
    finally:
        await listener.close()


async def test_resume_from_an_unknown_id_is_a_reset(gateway: InProcessServer) -> None:
    listener = await Listener().connect(
        gateway, TRANSPORTS["websocket"], auth={"last_signal_id": "never-seen"}
    )
    try:
        await listener.until(lambda: bool(listener.named("reset")), "reset")
        assert listener.events[0][0] == "welcome"
        assert listener.named("reset") == [
            {"last_signal_id": "never-seen", "reason": "unknown_signal_id"}
        ]
        assert listener.named("new_signal") == []
    finally:
        await listener.close()


# -- subscriptions


async def test_subscribe_narrows_by_symbol_and_type_and_adds_quotes(
    gateway: InProcessServer,
) -> None:
    listener = await Listener().connect(gateway, TRANSPORTS["websocket"])
    try:
        ack = await listener.client.call(
            "subscribe",
            {"symbols": ["AAPL"], "channels": ["signals", "quotes"], "types": ["RSI"]},
            timeout=WAIT_S,
        )
        assert ack == {"channels": ["signals", "quotes"], "symbols": ["AAPL"], "types": ["RSI"]}
        await listener.until(lambda: bool(listener.named("quote")), "a quote of AAPL")
        assert {q["symbol"] for q in listener.named("quote")} == {"AAPL"}
        wanted = signal(symbol="AAPL", kind="RSI")
        await gateway.apublish([signal(symbol="MSFT", kind="RSI"), signal(symbol="AAPL"), wanted])
        await gateway.apublish([signal(symbol="AAPL", kind="RSI", id="")])  # no id: still news
        await listener.until(lambda: len(listener.named("new_signal")) == 2, "two signals")
        assert listener.named("new_signal")[0] == seed_shape(wanted)
        assert listener.named("subscribed") == [ack]
        # back to every signal
        await listener.client.call("unsubscribe", timeout=WAIT_S)
        other = signal(symbol="MSFT")
        await gateway.apublish([other])
        await listener.until(lambda: seed_shape(other) in listener.named("new_signal"), "MSFT")
    finally:
        await listener.close()


async def test_bad_events_get_errors_and_the_client_stays(gateway: InProcessServer) -> None:
    listener = await Listener().connect(gateway, TRANSPORTS["websocket"])
    try:
        await listener.client.emit("dance", {"x": 1})
        answer = await listener.client.call("subscribe", {"symbols": "AAPL"}, timeout=WAIT_S)
        assert answer == {"error": "'symbols' must be a non-empty list of strings"}
        await listener.client.emit("subscribe", {"channels": ["secrets"]})
        await listener.until(lambda: len(listener.named("error")) == 3, "three errors")
        assert listener.named("error")[0] == {"message": "unknown event 'dance'"}
        sig = signal()
        await gateway.apublish([sig])
        await listener.until(lambda: seed_shape(sig) in listener.named("new_signal"), "signal")
        assert listener.client.connected
    finally:
        await listener.close()


async def test_a_flood_of_events_hits_the_rate_limit_and_others_go_on(
    gateway: InProcessServer,
) -> None:
    bystander = await Listener().connect(gateway, TRANSPORTS["websocket"])
    flooder = await Listener().connect(gateway, TRANSPORTS["websocket"])
    disconnected = asyncio.Event()
    flooder.client.on("disconnect", lambda *a: disconnected.set())
    try:
        for _ in range(400):
            if not flooder.client.connected:
                break
            await flooder.client.emit("unsubscribe")
        await asyncio.wait_for(disconnected.wait(), WAIT_S)
        assert any(e["message"].startswith("Too many messages") for e in flooder.named("error"))
        sig = signal()
        await gateway.apublish([sig])
        await bystander.until(lambda: seed_shape(sig) in bystander.named("new_signal"), "it")
    finally:
        await bystander.close()
        await flooder.close()


# -- Engine.IO garbage, straight on the socket


async def answers(ws: Any, quiet_s: float = 0.5) -> tuple[list[str], int | None]:
    """What the server sends until it is quiet for ``quiet_s`` or closes: the messages,
    and the close code (None: still open)."""
    got: list[str] = []
    try:
        while True:
            got.append(str(await asyncio.wait_for(ws.recv(), quiet_s)))
    except TimeoutError:
        return got, None
    except websockets.ConnectionClosed as exc:
        return got, exc.rcvd.code if exc.rcvd is not None else 1006


@pytest.mark.parametrize(
    ("garbage", "closes"),
    [
        ("4", False),  # an empty message: dropped
        ("42[", False),  # a broken Socket.IO packet: dropped
        ('42["subscribe",', False),
        ("4X", False),  # an unknown Socket.IO packet type: dropped
        ("44", False),  # CONNECT_ERROR from a client: dropped
        ("9", True),  # not an Engine.IO packet: the connection ends
        ("\x00\xff", True),
        ("", True),
    ],
)
async def test_engineio_garbage_gets_its_documented_answer(
    gateway: InProcessServer, garbage: str, closes: bool
) -> None:
    url = f"ws://127.0.0.1:{gateway.port}/socket.io/?EIO=4&transport=websocket"
    bystander = await Listener().connect(gateway, TRANSPORTS["websocket"])
    try:
        async with connect(url, origin=ORIGIN) as ws:  # type: ignore[arg-type]
            assert str(await asyncio.wait_for(ws.recv(), WAIT_S)).startswith("0{")
            await ws.send("40")
            await ws.send(garbage)
            got, code = await answers(ws)
            assert got[0].startswith("40{")
            assert code == (1000 if closes else None)
            if not closes:  # still served
                sig = signal()
                await gateway.apublish([sig])
                got, _ = await answers(ws)
                assert any(sig.id in message for message in got)
        sig = signal()
        await gateway.apublish([sig])
        await bystander.until(lambda: seed_shape(sig) in bystander.named("new_signal"), "it")
    finally:
        await bystander.close()


async def test_an_oversized_websocket_message_closes_with_1009(gateway: InProcessServer) -> None:
    url = f"ws://127.0.0.1:{gateway.port}/socket.io/?EIO=4&transport=websocket"
    async with connect(url, origin=ORIGIN, max_size=None) as ws:  # type: ignore[arg-type]
        await asyncio.wait_for(ws.recv(), WAIT_S)
        await ws.send("42" + json.dumps(["subscribe", {"symbols": ["A" * 200_000]}]))
        _, code = await answers(ws, WAIT_S)
    assert code == 1009


async def test_polling_garbage_gets_http_errors(gateway: InProcessServer) -> None:
    import httpx

    base = f"{gateway.url}/socket.io/"
    async with httpx.AsyncClient(timeout=WAIT_S, headers={"Origin": ORIGIN}) as http:
        assert (
            await http.get(base, params={"EIO": "3", "transport": "polling"})
        ).status_code == 400
        assert (
            await http.get(base, params={"EIO": "4", "transport": "carrier-pigeon"})
        ).status_code == 400
        opened = await http.get(base, params={"EIO": "4", "transport": "polling"})
        assert opened.status_code == 200
        sid = json.loads(opened.text[1:])["sid"]
        params = {"EIO": "4", "transport": "polling", "sid": sid}
        # packets a client never sends (NOOPs, a server's OPEN): refused, the session goes on
        for garbage in ("\x1e".join(["6"] * 40), '0{"sid":"x"}', "", "bXX=="):
            refused = await http.post(base, params=params, content=garbage)
            assert (refused.status_code, refused.text) == (
                400,
                "Not an Engine.IO packet a client sends",
            ), garbage
        # more than 256 packets in one POST: refused whole, the session goes on
        flood = "\x1e".join(["3"] * 257)
        assert (await http.post(base, params=params, content=flood)).status_code == 400
        assert (await http.post(base, params=params, content="40")).status_code == 200
        answer = await http.get(base, params=params)
        assert answer.text.startswith("40{"), answer.text
        unknown = {"EIO": "4", "transport": "polling", "sid": "nope"}
        assert (await http.get(base, params=unknown)).status_code == 400


async def test_an_engineio_session_that_never_connects_is_closed(gateway: InProcessServer) -> None:
    """Socket.IO's connectTimeout: an Engine.IO session that sends no CONNECT is ended."""
    import httpx

    server = endpoint(gateway).server
    server.connect_timeout_s = 0.5
    base = f"{gateway.url}/socket.io/"
    try:
        async with httpx.AsyncClient(timeout=WAIT_S, headers={"Origin": ORIGIN}) as http:
            opened = await http.get(base, params={"EIO": "4", "transport": "polling"})
            sid = json.loads(opened.text[1:])["sid"]
            params = {"EIO": "4", "transport": "polling", "sid": sid}
            polled: list[str] = []

            async def closed() -> bool:
                answer = await http.get(base, params=params)
                polled.append(answer.text)
                return answer.status_code == 400 or "1" in answer.text.split("\x1e")

            await until(closed, "the session's end")
            assert sid not in server.eio.sockets
    finally:
        server.connect_timeout_s = 45.0


async def test_a_client_gone_during_its_connect_leaves_nothing_behind(
    gateway: InProcessServer, accounts: tuple[str, dict[str, Account]]
) -> None:
    """CONNECT and Engine.IO's CLOSE in one payload: the session ends while the guard
    checks the key. Its slot, connection and subscriptions are released all the same."""
    import httpx

    ep = endpoint(gateway)
    before = len(ep.front.tickets)
    base = f"{gateway.url}/socket.io/"
    auth = json.dumps({"token": accounts[1]["ana"].api_key})
    sids: set[str] = set()
    async with httpx.AsyncClient(timeout=WAIT_S, headers={"Origin": ORIGIN}) as http:
        for _ in range(5):
            opened = await http.get(base, params={"EIO": "4", "transport": "polling"})
            sid = json.loads(opened.text[1:])["sid"]
            sids.add(sid)
            params = {"EIO": "4", "transport": "polling", "sid": sid}
            await http.post(base, params=params, content=f"40{auth}\x1e1")

    def released() -> bool:
        held = {c.eio_sid for c in [*ep.clients.values(), *ep.pending.values()]}
        return not (held & sids) and len(ep.front.tickets) <= before

    await until(released, "every slot given back")


async def test_an_oversized_polling_payload_closes_that_client_only(
    gateway: InProcessServer,
) -> None:
    bystander = await Listener().connect(gateway, TRANSPORTS["polling"])
    big = await Listener().connect(gateway, TRANSPORTS["polling"])
    gone = asyncio.Event()
    big.client.on("disconnect", lambda *a: gone.set())
    try:
        huge = {"symbols": ["A" * (gateway.settings.max_message_bytes + 10)]}
        await big.client.emit("subscribe", huge)
        await asyncio.wait_for(gone.wait(), WAIT_S)
        sig = signal()
        await gateway.apublish([sig])
        await bystander.until(lambda: seed_shape(sig) in bystander.named("new_signal"), "it")
    finally:
        await bystander.close()
        await big.close()


# -- a slow client


def caught_up(listener: Listener, count: int) -> Callable[[], bool]:
    return lambda: len(listener.named("new_signal")) >= count


async def test_a_client_that_stops_reading_is_closed_and_others_get_everything(
    accounts: tuple[str, dict[str, Account]], tmp_path: Path
) -> None:
    srv = InProcessServer(
        settings(
            accounts[0], outbox_max_items=4096, slow_client_timeout_s=0.5, signals_history_size=0
        )
    ).start()
    url = f"ws://127.0.0.1:{srv.port}/socket.io/?EIO=4&transport=websocket"
    ep = endpoint(srv)
    reader = await Listener().connect(srv, TRANSPORTS["websocket"])
    try:
        async with connect(url, origin=ORIGIN, max_queue=1) as stalled:  # type: ignore[arg-type]
            await stalled.recv()  # Engine.IO's open
            await stalled.send("40")
            await until(lambda: len(ep.clients) == 2, "two clients")
            # from here the stalled client reads nothing: its kernel buffers fill
            stalled.transport.pause_reading()
            total = 0
            payload = "x" * 400
            while len(ep.clients) == 2 and total < 200_000:
                batch = [signal(timeframe=payload) for _ in range(50)]
                await srv.apublish(batch)
                total += len(batch)
                # at the reader's pace: it is never the slow one
                await reader.until(caught_up(reader, total - len(batch)), "a pace")
            assert len(ep.clients) == 1, "the stalled client is closed"
            await reader.until(lambda: len(reader.named("new_signal")) == total, "every signal")
    finally:
        await reader.close()
        srv.stop()


# -- shutdown


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_shutdown_ends_every_client_and_waits_for_no_poll(
    accounts: tuple[str, dict[str, Account]], caplog: pytest.LogCaptureFixture, transport: str
) -> None:
    """A shutdown answers the polls still waiting (with Engine.IO's CLOSE: the client
    may reconnect, elsewhere) rather than holding on until the heartbeat's deadline and
    then cancelling them."""
    srv = InProcessServer(
        settings(accounts[0], socketio_ping_interval_s=25.0, socketio_ping_timeout_s=20.0)
    ).start()
    listener = await Listener().connect(srv, TRANSPORTS[transport])
    reasons: list[Any] = []
    listener.client.on("disconnect", lambda *a: reasons.append(a))
    try:
        await listener.until(lambda: bool(listener.named("welcome")), "welcome")
        await asyncio.to_thread(srv.stop)
        await until(lambda: bool(reasons), "the client's disconnect")
        assert "timeout graceful shutdown exceeded" not in caplog.text
        assert reasons[0][0] != "io server disconnect"  # not a final DISCONNECT
    finally:
        await listener.close()


async def test_last_every_client_of_this_module_was_released(gateway: InProcessServer) -> None:
    """Runs last (file order): every client above, refused, flooded, garbled or gone
    mid-CONNECT, has given back its slot, its connection and its Engine.IO socket."""
    ep = endpoint(gateway)
    await until(
        lambda: not ep.clients and not ep.pending and not ep.front.tickets and not ep.by_eio,
        f"nothing held: {list(ep.clients.values())} {ep.pending} {len(ep.front.tickets)}",
    )
