"""The wire, byte for byte: what existing clients see must not change by accident.

Each case scripts one client through a real ``Hub`` (inside a ``Node`` that is built but
not started), the real front (its spec, as the app builds it, and the contract's endpoint
and dispatcher), the real codecs and sessions, and a ``Connection`` over a fake socket,
with fixed time and connection ids: every event type, ping, subscribe and
unsubscribe, errors, a resume that hits and one that misses (``reset`` and a snapshot),
a heartbeat and the realtime ``connection`` message. Every write the connection makes is
compared with ``tests/fixtures/wire/<case>.golden``: each frame's header in hex and its
payload, so the bytes are pinned exactly and a difference reads as text.

A deliberate wire change regenerates the fixtures with ``TICKCAST_REGEN_GOLDEN=1`` and
shows up in review as a fixture diff.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from support.clock import ManualClock
from support.fakesocket import RecordingSocket
from support.publishing import stamp_and_fan_out
from support.silent import Silent
from tickcast.app import add_portfolios, front_context
from tickcast.auth.credentials import Principal
from tickcast.clock import Now
from tickcast.config.settings import Settings
from tickcast.fronts.base import WebSocketFront
from tickcast.fronts.guard import Ticket
from tickcast.fronts.market import MarketFeedSpec
from tickcast.fronts.realtime import RealtimeSpec
from tickcast.fronts.stomp import StompSpec
from tickcast.model.market import FEED, Bar, BookUpdate, Quote, Status, Trade
from tickcast.model.portfolio import (
    AssetUpdate,
    PositionPnl,
    PositionState,
    UserPnl,
    UserPositions,
)
from tickcast.model.signal import Signal, WorkerStatus
from tickcast.model.topic import Event
from tickcast.node import Node
from tickcast.portfolio.service import PortfolioService
from tickcast.transport.connection import Connection

FIXTURES = Path(__file__).parent.parent / "fixtures" / "wire"
REGENERATE = os.environ.get("TICKCAST_REGEN_GOLDEN") == "1"

#: Client time (control timestamps, heartbeats) and server time (envelopes), fixed: the
#: node's manual clock reads NOW on the wall (and MONO, monotonic) throughout.
NOW = 1_700_000_000.125
MONO = 5_000.0
SERVER_TS = 1_700_000_001.5
EVENT_TS = 1_700_000_000.75
#: The node's epoch (a process makes a new one each start), fixed.
EPOCH = "18bcfe5682a1b2c3"
#: How a NUL (STOMP's frame end) reads in a fixture, so that it stays text.
NUL = "\u2400"


def frames(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split one write into (header, payload) per WebSocket frame (server frames: unmasked)."""
    out: list[tuple[bytes, bytes]] = []
    i = 0
    while i < len(data):
        length, start = data[i + 1] & 0x7F, i + 2
        if length == 126:
            length, start = int.from_bytes(data[i + 2 : i + 4], "big"), i + 4
        elif length == 127:
            length, start = int.from_bytes(data[i + 2 : i + 10], "big"), i + 10
        out.append((data[i:start], data[start : start + length]))
        i = start + length
    assert i == len(data), "a write ends inside a frame"
    return out


class Transcript:
    """What clients sent and what each socket was written, in order, as text."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._seen: dict[int, int] = {}

    def note(self, line: str) -> None:
        self.lines.append(f"# {line}")

    def sent(self, client: str, text: str) -> None:
        self.lines.append(f"{client} > {text}".replace("\0", NUL))

    def collect(self, client: str, sock: RecordingSocket) -> None:
        start = self._seen.get(id(sock), 0)
        for data in sock.written[start:]:
            self.lines.append(f"{client} < write")
            for header, payload in frames(data):
                text = payload.decode().replace("\0", NUL)
                self.lines.append(f"{client} <   {header.hex()} {text}")
        self._seen[id(sock)] = len(sock.written)
        if sock.closed is not None:
            self.lines.append(f"{client} < close {sock.closed[0]} {sock.closed[1]}")

    def check(self, case: str) -> None:
        text = "\n".join(self.lines) + "\n"
        path = FIXTURES / f"{case}.golden"
        if REGENERATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.exists(), f"no fixture {path}: run with TICKCAST_REGEN_GOLDEN=1 once"
        assert text == path.read_text(), f"the wire changed for {case}"


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Node, PortfolioService]]:
    node = Node(
        Settings(batch_ms=0),
        providers=[Silent()],
        epoch=EPOCH,
        clock=ManualClock(MONO, NOW),
    )
    service = add_portfolios(node, node.settings)
    try:
        yield node, service
    finally:
        node.pumps.close()
        await node.engine.dispose()


@pytest.fixture
def node(gateway: tuple[Node, PortfolioService]) -> Node:
    return gateway[0]


@pytest.fixture
def portfolios(gateway: tuple[Node, PortfolioService]) -> PortfolioService:
    return gateway[1]


class Client:
    """One scripted connection: its session, its connection and its socket."""

    def __init__(self, name: str, transcript: Transcript, connection: Connection) -> None:
        self.name = name
        self.transcript = transcript
        self.connection = connection
        self.sock = connection.sock
        assert isinstance(self.sock, RecordingSocket)

    def connected(self) -> None:
        self.connection.poke()  # what Connection.run does first
        self.collect()

    def send(self, text: str, now: float = NOW) -> None:
        self.transcript.sent(self.name, text)
        self.connection.session.receive_text(text, at(now))
        self.connection.poke()  # what Connection.run does after each message
        self.collect()

    def timer(self, now: float) -> None:
        self.transcript.note(f"{self.name}: timer at {now}")
        self.connection.session.handle_timer(at(now))
        self.connection.poke()
        self.collect()

    def collect(self) -> None:
        assert isinstance(self.sock, RecordingSocket)
        self.transcript.collect(self.name, self.sock)


def at(wall: float) -> Now:
    """The time ``wall`` on both of the node's clocks (``wall - NOW`` after the start)."""
    return Now(MONO + wall - NOW, wall)


def market_front(node: Node) -> WebSocketFront:
    """The market feed as the app builds it (from its spec), unguarded, on fixed time."""
    ctx = front_context(node, None)
    return WebSocketFront(MarketFeedSpec(), ctx)


def market_client(name: str, front: WebSocketFront, query: str, t: Transcript) -> Client:
    """A client of ``front`` set up by the front itself (session, options, connection)."""
    scope = {"type": "websocket", "path": "/ws/market/feed", "query_string": query.encode()}
    connection = front.connect(scope, RecordingSocket(), None)  # type: ignore[arg-type]
    return Client(name, t, connection)


def publish(node: Node, t: Transcript, events: list[Event], *clients: Client) -> None:
    """One publish pass, then the pump's flush of every connection."""
    t.note(f"publish {', '.join(type(e).__name__ + ' ' + e.symbol for e in events)}")
    stamp_and_fan_out(node.hub, events, SERVER_TS, node.clock.monotonic())
    for client in clients:
        client.connection.flush_now()
        client.collect()


def quote(symbol: str, price: float) -> Quote:
    return Quote(symbol, price - 0.01, price + 0.01, 300.0, 200.0, price, 12_345.0, EVENT_TS, "sim")


def trade(price: float, trade_id: str) -> Trade:
    return Trade("AAPL", price, 25.0, EVENT_TS, "sim", trade_id)


BAR = Bar("AAPL", 190.0, 191.25, 189.5, 190.75, 4_200.0, EVENT_TS - 60, EVENT_TS, "sim")
BOOK = BookUpdate(
    "AAPL",
    ((190.0, 300.0), (189.99, 100.0)),
    ((190.02, 200.0),),
    True,
    EVENT_TS,
    "sim",
    7,
)
STATUS = Status(FEED, "simulator", "up", "simulator", "subscribed", EVENT_TS)


@pytest.mark.parametrize(
    ("case", "query"),
    [
        ("native_plain", ""),
        ("native_seq", "seq=1"),
        ("native_array", "frames=array"),
        ("native_seq_array_heartbeat", "seq=1&frames=array&heartbeat=5"),
        ("native_bad_options", "seq=maybe&heartbeat=-1&frames=tree"),
    ],
)
async def test_the_market_feed_wire_is_unchanged(node: Node, case: str, query: str) -> None:
    front = market_front(node)
    t = Transcript()
    t.note(f"/ws/market/feed?{query}")
    a = market_client("a", front, query, t)
    a.connected()
    a.send('{"action":"ping"}')
    a.send('{"action":"subscribe","symbols":["AAPL"],"channels":["quotes","trades","bars","book"]}')
    a.send('{"action":"subscribe","symbols":["FEED"],"channels":["status"]}')
    publish(node, t, [quote("AAPL", 190.01), trade(190.02, "t1"), BAR, BOOK, STATUS], a)
    publish(node, t, [quote("MSFT", 410.5), trade(190.03, "t2"), quote("AAPL", 190.04)], a)
    # two quotes of a symbol in one pass, at batch 0 to a client that takes its data:
    # both, in order (the first written before the second is queued); trades never conflate
    publish(node, t, [quote("AAPL", 190.05), trade(190.06, "t3"), quote("AAPL", 190.07)], a)
    a.timer(NOW + 5.0)  # a heartbeat when the client asked for one; nothing otherwise
    a.send("not json")
    a.send("[1, 2]")
    a.send('{"symbols":["AAPL"]}')
    a.send('{"action":"dance"}')
    a.send('{"action":"subscribe","symbols":["ZZZZ","AAPL"]}')
    a.send('{"action":"subscribe","symbols":["AAPL"],"channels":["weather"]}')
    a.send('{"action":"subscribe","symbols":[]}')
    a.send('{"action":"subscribe","symbols":["MSFT"],"resume":{"quotes.MSFT":"x"}}')
    a.send('{"action":"unsubscribe","symbols":["AAPL"],"channels":["quotes"]}')
    publish(node, t, [quote("AAPL", 190.08), trade(190.09, "t4")], a)

    t.note("a second client resumes: trades hit history, quotes miss (reset, snapshot)")
    b = market_client("b", front, query, t)
    b.connected()
    b.send(
        '{"action":"subscribe","symbols":["AAPL"],"channels":["trades","quotes","bars"],'
        '"resume":{"trades.AAPL":2,"quotes.AAPL":99}}'
    )
    b.send('{"action":"subscribe","symbols":["MSFT"],"resume":{"quotes.MSFT":1}}')
    b.send(
        '{"action":"subscribe","symbols":["MSFT"],"channels":["trades"],"resume":{"trades.MSFT":0}}'
    )
    b.send('{"action":"unsubscribe","symbols":["MSFT"]}')
    t.check(case)


def realtime_front(node: Node, portfolios: PortfolioService) -> WebSocketFront:
    """Front 2 as the app builds it (its spec over the portfolio service), unguarded, on
    fixed time, its n-th client's connection id ending in n."""
    settings = node.settings
    ids = iter(range(1, 10))
    spec = RealtimeSpec(
        portfolios,
        cache_timeout_s=settings.cache_timeout_s,
        allow_anonymous=settings.allow_anonymous,
        auth_timeout_s=settings.auth_timeout_s,
        new_id=lambda: f"00000000-0000-4000-8000-00000000000{next(ids)}",
    )
    return WebSocketFront(spec, front_context(node, None))


async def test_the_realtime_wire_is_unchanged(node: Node, portfolios: PortfolioService) -> None:
    front = realtime_front(node, portfolios)
    t = Transcript()
    t.note("/ws/realtime/")

    def client(name: str, user_id: int | None) -> Client:
        """A client set up by the front, acting as ``user_id`` (from its handshake)."""
        scope = {"type": "websocket", "path": "/ws/realtime/", "query_string": b""}
        principal = Principal(user_id, f"user{user_id}") if user_id is not None else Principal()
        ticket = Ticket(principal, "127.0.0.1", "127.0.0.1")
        connection = front.connect(scope, RecordingSocket(), ticket)  # type: ignore[arg-type]
        return Client(name, t, connection)

    a = client("a", None)
    a.connected()
    a.send('{"type":"ping","data":{}}')
    a.send('{"type":"ping"}')
    a.send('{"type":"subscribe_asset","data":{"symbol":"AAPL"}}')
    update = AssetUpdate("AAPL", 190.02, 1.52, 0.81, 1_200.0, 190.4, 188.1, EVENT_TS, "tickcast")
    publish(
        node, t, [update, AssetUpdate("MSFT", 410.0, 0.0, 0.0, 0.0, 410.0, 410.0, EVENT_TS, "x")], a
    )
    a.send("not json")
    a.send("[]")
    a.send('{"data":{}}')
    a.send('{"type":"dance"}')
    a.send('{"type":"subscribe_asset","data":{"symbol":"a b"}}')
    a.send('{"type":"subscribe_asset","data":{"symbol":"ZZZZ"}}')
    a.send('{"type":"subscribe_portfolio","data":{"portfolio_id":1}}')
    a.send('{"type":"unsubscribe_asset","data":{"symbol":"AAPL"}}')
    publish(node, t, [update], a)
    b = client("bb", 7)
    b.connected()
    b.send('{"type":"subscribe_portfolio","data":{"portfolio_id":-1}}')
    b.send('{"type":"subscribe_portfolio","data":{"portfolio_id":99}}')
    b.send('{"type":"auth","data":{"token":"x"}}')
    t.check("realtime")


def stomp_front(node: Node) -> WebSocketFront:
    """Front 3 over WebSocket as the registry builds it, unguarded, on fixed time, its
    n-th session's id ``s<n>``."""
    ids = iter(range(1, 10))
    spec = StompSpec(
        allow_anonymous=node.settings.allow_anonymous,
        login_timeout_s=node.settings.auth_timeout_s,
        new_id=lambda: f"s{next(ids)}",
    )
    return WebSocketFront(spec, front_context(node, None))


def stomp(command: str, **headers: str) -> str:
    return command + "\n" + "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in headers.items())


async def test_the_stomp_websocket_wire(node: Node) -> None:
    front = stomp_front(node)
    t = Transcript()
    t.note("/stomp/websocket")

    def client(name: str) -> Client:
        scope = {"type": "websocket", "path": "/stomp/websocket", "query_string": b""}
        connection = front.connect(scope, RecordingSocket(), None)  # type: ignore[arg-type]
        return Client(name, t, connection)

    a = client("a")
    a.connected()
    a.send(stomp("CONNECT", accept_version="1.1,1.2", heart_beat="0,5000") + "\n\0")
    a.send(
        stomp("SUBSCRIBE", id="sub-0", destination="/topic/trades.AAPL", receipt="r1")
        + "\n\0"
        + stomp("SUBSCRIBE", id="sub-1", destination="/topic/quotes.AAPL")
        + "\n\0"
        + stomp("SUBSCRIBE", id="sub-2", destination="/topic/quotes.AAPL", ack="client")
        + "\n\0"
        + stomp("SUBSCRIBE", id="st", destination="/topic/status.FEED")
        + "\n\0"
    )
    b = client("b")
    b.connected()
    b.send(stomp("STOMP", accept_version="1.2", host="x") + "\n\0")
    b.send(stomp("SUBSCRIBE", id="sub-0", destination="/topic/trades.AAPL") + "\n\0")
    t.note("one MESSAGE per subscription; each quote, in order, at batch 0; b shares a's")
    publish(node, t, [quote("AAPL", 190.01), trade(190.02, "t1"), quote("AAPL", 190.03)], a, b)
    publish(node, t, [BAR, BOOK, STATUS, trade(190.04, "t2")], a, b)
    a.timer(NOW + 10.0)  # a heart-beat EOL: every max(10000, 5000) ms
    a.send(stomp("UNSUBSCRIBE", id="sub-1", receipt="r2") + "\n\0")
    publish(node, t, [quote("AAPL", 190.05)], a)
    t.note("a resume that hits history, one that misses (reset, then the snapshot)")
    c = client("c")
    c.connected()
    c.send(stomp("CONNECT", accept_version="1.2") + "\n\0")
    c.send(
        stomp(
            "SUBSCRIBE",
            id="t",
            destination="/topic/trades.AAPL",
            resume_epoch=EPOCH,
            resume_seq="1",
        )
        + "\n\0"
        + stomp("SUBSCRIBE", id="q", destination="/topic/quotes.AAPL", resume_seq="99")
        + "\n\0"
    )
    c.send(stomp("SUBSCRIBE", id="x", destination="/topic/weather.AAPL", receipt="r3") + "\n\0")
    b.send(stomp("SEND", destination="/topic/trades.AAPL") + "\nhello\0")
    a.send(stomp("DISCONNECT", receipt="bye") + "\n\0")
    t.check("stomp_websocket")


def position(portfolio_id: int, symbol: str, quantity: str, cost: str) -> PositionState:
    return PositionState(
        portfolio_id, symbol, Decimal(quantity), Decimal(cost), Decimal("0"), EVENT_TS, EVENT_TS
    )


async def test_the_stomp_portfolio_destinations_wire(
    node: Node, portfolios: PortfolioService
) -> None:
    ids = iter(range(1, 10))
    spec = StompSpec(
        portfolios,
        allow_anonymous=node.settings.allow_anonymous,
        login_timeout_s=node.settings.auth_timeout_s,
        new_id=lambda: f"s{next(ids)}",
    )
    front = WebSocketFront(spec, front_context(node, None))
    t = Transcript()
    t.note("/stomp/websocket: /topic/position-update and /topic/unrealized-pnl")

    def client(name: str, user_id: int | None) -> Client:
        scope = {"type": "websocket", "path": "/stomp/websocket", "query_string": b""}
        principal = Principal(user_id, f"user{user_id}") if user_id is not None else Principal()
        ticket = Ticket(principal, "127.0.0.1", "127.0.0.1")
        connection = front.connect(scope, RecordingSocket(), ticket)  # type: ignore[arg-type]
        return Client(name, t, connection)

    def publish_user(events: list[Event], *clients: Client) -> None:
        t.note(f"publish {', '.join(f'{type(e).__name__} {e.key}' for e in events)}")
        stamp_and_fan_out(node.hub, events, SERVER_TS, node.clock.monotonic())
        for c in clients:
            c.connection.flush_now()
            c.collect()

    t.note("user 7 (no portfolios yet): empty snapshots")
    a = client("a", 7)
    a.connected()
    a.send(stomp("CONNECT", accept_version="1.2") + "\n\0")
    a.send(
        stomp("SUBSCRIBE", id="pos", destination="/topic/position-update", receipt="r1") + "\n\0"
    )
    a.send(stomp("SUBSCRIBE", id="pnl", destination="/topic/unrealized-pnl") + "\n\0")
    b = client("b", 8)
    b.connected()
    b.send(stomp("CONNECT", accept_version="1.2") + "\n\0")
    b.send(stomp("SUBSCRIBE", id="pos", destination="/topic/position-update") + "\n\0")
    t.note("one position: the object; several: an array; user 8 sees none of user 7's")
    publish_user([UserPositions(7, (position(1, "AAPL", "10", "1500.5"),), EVENT_TS)], a, b)
    two = (position(1, "AAPL", "6", "900.3"), position(2, "MSFT", "0", "0"))
    publish_user([UserPositions(7, two, EVENT_TS)], a, b)
    pnl = (PositionPnl(1, "AAPL", Decimal("400.2")), PositionPnl(2, "MSFT", Decimal("-12.5")))
    publish_user([UserPnl(7, pnl, EVENT_TS)], a, b)
    t.note("anonymous: an error, then the close")
    c = client("c", None)
    c.connected()
    c.send(stomp("CONNECT", accept_version="1.2") + "\n\0")
    c.send(stomp("SUBSCRIBE", id="pos", destination="/topic/position-update") + "\n\0")
    t.check("stomp_portfolios")


def sig(n: int, symbol: str = "AAPL") -> Signal:
    return Signal(
        "QUANTUM_CIPHER",
        "BUY" if n % 2 else "SELL",
        190.0 + n,
        symbol,
        "1m",
        f"2023-11-14T22:13:2{n}.000Z",
        f"sig-{n}",
        "external",
    )


async def test_the_signal_wires(node: Node, portfolios: PortfolioService) -> None:
    """Signals on Fronts 1, 2 and 3: one pass of several signals (every one arrives, in
    order) and a worker's status; each front's answers to bad requests."""
    t = Transcript()
    market = market_front(node)
    realtime = realtime_front(node, portfolios)
    stomps = stomp_front(node)

    def client(front: WebSocketFront, name: str, path: str, query: str = "") -> Client:
        scope = {"type": "websocket", "path": path, "query_string": query.encode()}
        connection = front.connect(scope, RecordingSocket(), None)  # type: ignore[arg-type]
        return Client(name, t, connection)

    t.note("/ws/market/feed?seq=1, /ws/realtime/, /stomp/websocket")
    f = client(market, "f", "/ws/market/feed", "seq=1")
    f.connected()
    f.send('{"action":"subscribe","symbols":["AAPL","BTC/USDT"],"channels":["signals"]}')
    f.send('{"action":"subscribe","symbols":["AAPL"],"channels":["signal_status"]}')
    r = client(realtime, "r", "/ws/realtime/")
    r.connected()
    r.send('{"type":"subscribe_signals","data":{}}')
    r.send('{"type":"subscribe_signal_status","data":{}}')
    r.send('{"type":"subscribe_signals","data":{"symbols":["AAPL"]}}')
    s = client(stomps, "s", "/stomp/websocket")
    s.connected()
    s.send(stomp("CONNECT", accept_version="1.2") + "\n\0")
    s.send(
        stomp("SUBSCRIBE", id="sub-0", destination="/topic/signals", receipt="r1")
        + "\n\0"
        + stomp("SUBSCRIBE", id="sub-1", destination="/topic/signals")
        + "\n\0"
    )
    t.note("three signals of AAPL and one of MSFT in one pass, then a worker's status")
    signals: list[Event] = [sig(1), sig(2), sig(3, "MSFT"), sig(4)]
    t.note("publish " + ", ".join(f"Signal {e.symbol}" for e in signals) + ", WorkerStatus")
    status = WorkerStatus("SignalMonitorWorker", "degraded", "redis unreachable")
    stamp_and_fan_out(node.hub, [*signals, status], SERVER_TS, node.clock.monotonic())
    for c in (f, r, s):
        c.connection.flush_now()
        c.collect()
    r.send('{"type":"unsubscribe_signals","data":{"symbols":["AAPL"]}}')
    r.send('{"type":"unsubscribe_signals","data":{}}')
    r.send('{"type":"subscribe_signals","data":{"symbols":"AAPL"}}')
    t.note("a channel read whole and by key on one STOMP connection: ERROR, close")
    s.send(stomp("SUBSCRIBE", id="sub-2", destination="/topic/signals.AAPL") + "\n\0")
    t.check("signals")
