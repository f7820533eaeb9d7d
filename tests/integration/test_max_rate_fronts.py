"""The per-subscription rate on the other fronts, over real sockets with real clients: a
real gateway (uvicorn, in a thread of this process, so the test can stop its feed and
read the hub) with a fast simulator; on each front a rated subscription and an unrated
one side by side, as tests/integration/test_max_rate.py does for Front 1:

- STOMP (stomp.py's ``WSConnection``): ``max-rate:2`` on one subscription id of
  ``/topic/quotes.AAPL``, another id on the same destination without it, a rated
  subscription to trades; a bad ``max-rate`` on another connection is an ERROR. The
  same over SockJS's xhr polling (httpx), where the session is writable only while a
  poll is attached.
- Socket.IO (python-socketio's ``AsyncClient``): ``max_rate`` in ``subscribe``.
- The realtime envelope (``websockets``): ``max_rate`` in ``subscribe_asset``.

Counting only: a rated stream's messages are counted over the window it was read (with
a tolerance of one per window edge, for the delivery jitter at either end), never
timed; the unrated one on the same server must exceed that bound. Once the feed is
stopped, the last value a rated subscriber got is the server's latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
import stomp
from stomp.utils import Frame
from websockets.asyncio.client import ClientConnection, connect

from support.inprocess import InProcessServer
from tickcast.config.settings import Settings
from tickcast.model.signal import Signal
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.envelope import codec as envelope_codec
from tickcast.protocols.socketio import codec as socketio_codec

SYMBOLS = ("AAPL", "MSFT")
MAX_RATE = 2
#: how long each rated stream is read (seconds): a count over it, not a speed
WINDOW_S = 3.0
WAIT_S = 20.0
REFUSED = "must be a number of messages per second from 0.001 to 1000"
AAPL_QUOTES = Topic(Channel.QUOTES, "AAPL")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[InProcessServer]:
    srv = InProcessServer(
        Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/tickcast.db",
            symbols=SYMBOLS,
            rate=2000,  # about 1,000 quotes a second per symbol, and 30 % as many trades
            batch_ms=100,
            update_interval_s=0.05,  # Front 2's asset updates: up to 20 a second
            log_level="warning",
            rate_limit_per_s=1000,
            rate_limit_burst=1000,
            signals_engine=False,
        )
    ).start()
    yield srv
    srv.stop()


def stop_feed(gateway: InProcessServer) -> None:
    """Stop the simulator (from any thread): the server's latest values are then fixed."""
    node: Any = gateway.app.state.node
    assert gateway.loop is not None
    asyncio.run_coroutine_threadsafe(node.stop_feed(), gateway.loop).result(WAIT_S)


def latest_seq(gateway: InProcessServer, topic: Topic) -> int:
    node: Any = gateway.app.state.node
    return gateway.call(lambda: node.hub.latest_seq(topic))


def current(gateway: InProcessServer, topic: Topic) -> Any:
    """The hub's last value of ``topic`` (its envelope)."""
    node: Any = gateway.app.state.node
    return gateway.call(lambda: node.hub.cache.get(str(topic)))


def assert_rated(times: list[float], started: float, ended: float, free: list[float]) -> None:
    """At most MAX_RATE a second over [started, ended], one more per window edge; it did
    stream; and the unrated stream of the same server over that window exceeds it."""
    span_s = ended - started
    bound = MAX_RATE * span_s + 2
    rated = [t for t in times if started <= t <= ended]
    assert 2 <= len(rated) <= bound, (len(rated), span_s)
    unrated = [t for t in free if started <= t <= ended]
    assert len(unrated) > bound, (len(unrated), span_s)


# -- STOMP


class TimedEvents(stomp.ConnectionListener):
    """Every frame stomp.py hands its listener, with its arrival time."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[float, str, Frame | None]] = queue.Queue()
        self.got: list[tuple[float, str, Frame | None]] = []

    def on_connected(self, frame: Frame) -> None:
        self.queue.put((time.monotonic(), "connected", frame))

    def on_message(self, frame: Frame) -> None:
        self.queue.put((time.monotonic(), "message", frame))

    def on_receipt(self, frame: Frame) -> None:
        self.queue.put((time.monotonic(), "receipt", frame))

    def on_error(self, frame: Frame) -> None:
        self.queue.put((time.monotonic(), "error", frame))

    def on_disconnected(self) -> None:
        self.queue.put((time.monotonic(), "disconnected", None))

    def until(self, done: Callable[[str, Frame | None], bool], what: str) -> None:
        """Take events (into ``got``) until one satisfies ``done``."""
        deadline = time.monotonic() + WAIT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"never: {what}")
            try:
                event = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.got.append(event)
            if done(event[1], event[2]):
                return

    def drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.got.append(self.queue.get_nowait())

    def of(self, subscription: str) -> list[tuple[float, int]]:
        """(arrival, seq) of the MESSAGEs of ``subscription``."""
        return [
            (t, int(f.headers["seq"]))
            for t, kind, f in self.got
            if kind == "message" and f is not None and f.headers["subscription"] == subscription
        ]


def stomp_connection(gateway: InProcessServer) -> tuple[stomp.WSConnection, TimedEvents]:
    conn = stomp.WSConnection([("127.0.0.1", gateway.port)], ws_path="/stomp/websocket")
    events = TimedEvents()
    conn.set_listener("events", events)
    conn.connect(wait=True)
    return conn, events


def test_stomp_a_rated_subscription_id_beside_an_unrated_one(gateway: InProcessServer) -> None:
    conn, events = stomp_connection(gateway)
    try:
        conn.subscribe("/topic/quotes.AAPL", id="slow", headers={"max-rate": str(MAX_RATE)})
        conn.subscribe("/topic/quotes.AAPL", id="free")
        # reliable: the header is accepted and holds nothing back
        conn.subscribe("/topic/trades.AAPL", id="trades", headers={"max-rate": "1", "receipt": "r"})
        events.until(lambda k, f: k == "receipt", "the receipt")
        time.sleep(WINDOW_S)  # the reading window counted over, not a wait
        ended = time.monotonic()

        # a bad value on another connection: ERROR in STOMP's words, and that
        # connection closed (STOMP's rule); this one's subscriptions go on
        other, refused = stomp_connection(gateway)
        other.subscribe("/topic/quotes.MSFT", id="bad", headers={"max-rate": "0", "receipt": "bad"})
        refused.until(lambda k, f: k == "error", "the refusal")
        error = next(f for _, k, f in refused.got if k == "error")
        assert error.headers["message"] == f"max-rate {REFUSED}"
        assert error.headers["receipt-id"] == "bad"
        refused.until(lambda k, f: k == "disconnected", "the close")
        assert not [k for _, k, _ in refused.got if k == "message"]
        events.drain()
        before = len(events.of("free"))
        events.until(lambda k, f: k == "message" and f.headers["subscription"] == "free", "more")
        assert len(events.of("free")) > before

        stop_feed(gateway)
        latest = latest_seq(gateway, AAPL_QUOTES)
        events.until(
            lambda k, f: (
                k == "message"
                and f.headers["subscription"] == "slow"
                and int(f.headers["seq"]) >= latest
            ),
            "the latest quote on the rated id",
        )
    finally:
        conn.disconnect()

    slow = events.of("slow")
    # always the latest value: once the stream stopped, the server's last quote came
    assert slow[-1][1] == latest
    assert [s for _, s in slow] == sorted({s for _, s in slow})
    started = slow[0][0]  # the current value at once, then at most 2 a second
    assert_rated([t for t, _ in slow], started, ended, [t for t, _ in events.of("free")])
    trades = [s for _, s in events.of("trades")]
    assert len(trades) > MAX_RATE * WINDOW_S + 2  # not held to its rate
    assert trades == list(range(trades[0], trades[0] + len(trades))), "a trade was lost"


def test_stomp_over_sockjs_polling_a_rated_id_beside_an_unrated_one(
    gateway: InProcessServer,
) -> None:
    got: list[tuple[float, dict[str, str]]] = []  # (arrival, headers) of each MESSAGE

    def poll(http: httpx.Client, url: str) -> list[str]:
        body = http.post(f"{url}/xhr").content.decode()
        if not body.startswith("a"):  # a heartbeat (h), or the open frame
            return []
        arrived = time.monotonic()
        frames: list[str] = json.loads(body[1:])
        for text in frames:
            if text.startswith("MESSAGE\n"):
                head = text.split("\n\n", 1)[0].split("\n")[1:]
                got.append((arrived, dict(line.split(":", 1) for line in head)))
        return frames

    def of(subscription: str) -> list[tuple[float, int]]:
        return [(t, int(h["seq"])) for t, h in got if h["subscription"] == subscription]

    def send(http: httpx.Client, url: str, *frames: str) -> None:
        assert http.post(f"{url}/xhr_send", content=json.dumps(list(frames))).status_code == 204

    url = "/000/ratedsession"
    with httpx.Client(base_url=f"{gateway.url}/stomp", timeout=WAIT_S) as http:
        assert http.post(f"{url}/xhr").content == b"o\n"
        send(http, url, "CONNECT\naccept-version:1.2\nhost:tickcast\n\n\x00")
        assert poll(http, url)[0].startswith("CONNECTED\n")
        send(
            http,
            url,
            f"SUBSCRIBE\nid:slow\ndestination:/topic/quotes.AAPL\nmax-rate:{MAX_RATE}\n\n\x00",
            "SUBSCRIBE\nid:free\ndestination:/topic/quotes.AAPL\n\n\x00",
        )
        deadline = time.monotonic() + WINDOW_S
        while time.monotonic() < deadline:  # the reading window counted over
            poll(http, url)
        ended = time.monotonic()
        stop_feed(gateway)
        latest = latest_seq(gateway, AAPL_QUOTES)
        give_up = time.monotonic() + WAIT_S
        while not (of("slow") and of("slow")[-1][1] >= latest):
            assert time.monotonic() < give_up, "never: the latest quote on the rated id"
            poll(http, url)

    slow = of("slow")
    assert slow[-1][1] == latest  # always the latest value
    assert [s for _, s in slow] == sorted({s for _, s in slow})
    assert_rated([t for t, _ in slow], slow[0][0], ended, [t for t, _ in of("free")])


# -- Socket.IO


class SocketIOClient:
    """A python-socketio client recording (arrival, event, body)."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.got: list[tuple[float, str, Any]] = []
        self.changed = asyncio.Event()

        def record(event: str, *args: Any) -> None:
            self.got.append((time.monotonic(), event, args[0] if args else None))
            self.changed.set()

        self.client.on("*", record)

    async def connect(self, gateway: InProcessServer, transport: str) -> SocketIOClient:
        await self.client.connect(gateway.url, transports=[transport], wait_timeout=WAIT_S)
        return self

    def named(self, name: str) -> list[tuple[float, Any]]:
        return [(t, body) for t, event, body in self.got if event == name]

    async def until(self, done: Callable[[], bool], what: str) -> None:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), WAIT_S)
        except TimeoutError:
            raise AssertionError(f"never: {what}") from None


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_socketio_a_rated_subscribe_beside_an_unrated_one(
    gateway: InProcessServer, transport: str
) -> None:
    rated = await SocketIOClient().connect(gateway, transport)
    free = await SocketIOClient().connect(gateway, transport)
    try:
        selection = {"symbols": ["AAPL"], "channels": ["signals", "quotes"]}
        ack = await rated.client.call("subscribe", {**selection, "max_rate": MAX_RATE})
        assert ack == {**selection, "types": None, "max_rate": MAX_RATE}  # echoed
        assert await free.client.call("subscribe", selection) == {**selection, "types": None}
        started = time.monotonic()
        signals = [
            Signal("RSI", "BUY", 1.0 + i, "AAPL", "1m", "2026-01-02T03:04:05.000Z", f"s-{i}", "t")
            for i in range(20)
        ]
        for sig in signals:  # signals are reliable: every one arrives, rated or not
            await gateway.apublish([sig])
        await asyncio.sleep(WINDOW_S)  # the reading window counted over, not a wait
        ended = time.monotonic()

        # a bad value is refused in the protocol's words; the subscription goes on
        answer = await rated.client.call("subscribe", {**selection, "max_rate": 0})
        assert answer == {"error": f"'max_rate' {REFUSED}"}
        before = len(rated.named("quote"))
        await rated.until(lambda: len(rated.named("quote")) > before, "a quote after it")

        await asyncio.to_thread(stop_feed, gateway)
        envelope = current(gateway, AAPL_QUOTES)
        expected = json.loads(socketio_codec.encode(envelope)[2:])[1]
        await rated.until(
            lambda: rated.named("quote")[-1][1] == expected, "the latest quote, rated"
        )
    finally:
        await rated.client.disconnect()
        await free.client.disconnect()

    quotes = rated.named("quote")
    assert quotes[-1][1] == expected  # always the latest value
    assert_rated([t for t, _ in quotes], started, ended, [t for t, _ in free.named("quote")])
    got = [s["id"] for _, s in rated.named("new_signal")]
    assert got == [s.id for s in signals]


# -- the realtime envelope (Front 2)


class Reader:
    """Reads one client's messages into ``got`` as ``(arrival, message)``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.got: list[tuple[float, dict[str, Any]]] = []
        self._arrived = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            self.got.append((time.monotonic(), json.loads(raw)))
            self._arrived.set()

    async def until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done():
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"never: {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def typed(self, type_: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.got if m.get("type") == type_]

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_realtime_a_rated_asset_subscription_beside_an_unrated_one(
    gateway: InProcessServer,
) -> None:
    url = f"ws://127.0.0.1:{gateway.port}/ws/realtime/"
    async with connect(url) as rated_ws, connect(url) as free_ws:
        rated, free = Reader(rated_ws), Reader(free_ws)
        subscribe = {"type": "subscribe_asset", "data": {"symbol": "AAPL"}}
        await free_ws.send(json.dumps(subscribe))
        rate = {"type": "subscribe_asset", "data": {"symbol": "AAPL", "max_rate": MAX_RATE}}
        await rated_ws.send(json.dumps(rate))
        await rated.until(lambda: bool(rated.typed("asset_update")), "the first update")
        await asyncio.sleep(WINDOW_S)  # the reading window counted over, not a wait
        ended = time.monotonic()

        # a bad value is an error in the protocol's words; the subscription goes on
        bad = {"type": "subscribe_asset", "data": {"symbol": "AAPL", "max_rate": -1}}
        await rated_ws.send(json.dumps(bad))
        await rated.until(lambda: bool(rated.typed("error")), "the refusal")
        [(_, error)] = rated.typed("error")
        assert error["data"]["message"] == f"Invalid request: 'max_rate' {REFUSED}"
        before = len(rated.typed("asset_update"))
        await rated.until(lambda: len(rated.typed("asset_update")) > before, "an update after it")

        await asyncio.to_thread(stop_feed, gateway)
        # the portfolio service publishes the last change at its next tick: the latest
        # is the cached value once the rated client has it and it has not moved since
        topic = Topic(Channel.ASSETS, "AAPL")
        while True:
            expected = json.loads(envelope_codec.encode(current(gateway, topic)))
            await rated.until(
                lambda expected=expected: rated.typed("asset_update")[-1][1] == expected,
                "the latest asset update, rated",
            )
            if json.loads(envelope_codec.encode(current(gateway, topic))) == expected:
                break
        await rated.stop()
        await free.stop()

    updates = rated.typed("asset_update")
    assert updates[-1][1] == expected  # always the latest value
    started = updates[0][0]
    assert_rated(
        [t for t, _ in updates], started, ended, [t for t, _ in free.typed("asset_update")]
    )
