"""Latency stamps on the realtime envelope (``/ws/realtime/?stamps=1``, docs/realtime.md):
the shared mechanism of ``protocols/stamps.py`` (event and receive stamps encoded once
per update on the stamped wire, ``send_us`` spliced per connection as it writes), the
option, and the front that picks the wire: a stamped connection beside a plain one, on a
real node's hub, the plain one written the one shared frame as before."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from support.clock import ManualClock
from support.fakesocket import RecordingSocket
from support.publishing import stamp_and_fan_out
from support.silent import Silent
from tickcast.app import front_context
from tickcast.auth.credentials import Principal
from tickcast.config.settings import Settings
from tickcast.fronts.base import WebSocketFront
from tickcast.fronts.guard import Ticket
from tickcast.fronts.realtime import RealtimeSpec
from tickcast.model.envelope import Envelope
from tickcast.model.portfolio import (
    AssetUpdate,
    LivePosition,
    PortfolioValue,
    PositionsUpdate,
    PositionUpdate,
)
from tickcast.model.signal import Signal, WorkerStatus
from tickcast.model.topic import Channel, Topic
from tickcast.node import Node
from tickcast.protocols import stamps
from tickcast.protocols.envelope import codec
from tickcast.protocols.envelope.session import Options, parse_options
from tickcast.protocols.native import stamps as native_stamps
from tickcast.protocols.wire import Encoded
from tickcast.transport.connection import Connection

TS = 1_682_944_496.789_123  # the event's own time
RECV = TS + 0.000_412  # the envelope's server time
SEND = TS + 0.002_108  # the write's
D = Decimal


def envelope(payload: Any, channel: Channel = Channel.ASSETS, key: str = "AAPL") -> Envelope:
    return Envelope(Topic(channel, key), 3, RECV, payload, "e1")


def asset(ts: float) -> AssetUpdate:
    return AssetUpdate("AAPL", 190.02, 1.52, 0.81, 1200.0, 190.4, 188.1, ts, "simulator")


def events() -> list[tuple[Any, float | None]]:
    """Every realtime event, with the time ``event_us`` should show (None: none)."""
    money = {"market_value": D("1900.2"), "unrealized_pnl": D("400.2")}
    held = {"quantity": D("10"), "cost_basis": D("1500"), "realized_pnl": D("0")}
    live = LivePosition(
        "AAPL", **held, price=D("190.02"), **money, daily_change=D("15.2"),
        created_at=TS - 86400, updated_at=TS,
    )  # fmt: skip
    value = PortfolioValue(
        123, "Growth", 7, total_value=D("10523.50"), cost_basis=D("10000"),
        daily_change=D("120.25"), daily_change_percent=D("1.16"), unrealized_pnl=D("523.5"),
        realized_pnl=D("0"), market_value=D("10000"), cash=D("523.5"),
        net_deposits=D("10000"), ts=TS,
    )  # fmt: skip
    position = PositionUpdate(
        123, 7, "AAPL", **held, created_at=TS - 86400, updated_at=TS, price=D("190.02"),
        **money, ts=TS,
    )  # fmt: skip
    signal = Signal("MA_CROSS", "BUY", 162.5, "AAPL", "1m", "2023-05-01T12:34:56.789Z", "s1", "e")
    status = WorkerStatus("SignalMonitorWorker", "active", 'a "quoted" }} message}')
    return [
        (asset(TS), TS),
        (value, TS),
        (position, TS),
        (PositionsUpdate(123, 7, (live,), TS), TS),
        (signal, 1_682_944_496.789),
        (status, None),
    ]


def test_the_realtime_codecs_are_the_plain_wire_and_its_stamped_one() -> None:
    assert set(codec.CODECS) == {"realtime", "realtime+stamps"}
    assert codec.CODECS["realtime"] is codec.encode
    assert codec.WIRE_STAMPS == stamps.stamped_wire(codec.WIRE) == "realtime+stamps"
    assert stamps.is_stamped(codec.WIRE_STAMPS)
    assert not stamps.is_stamped(codec.WIRE)
    # the market feed's stamped wires are named by the same rule
    for wire in ("market", "market+seq"):
        assert stamps.is_stamped(wire + "+stamps")
        assert wire + "+stamps" in native_stamps.STAMPED_WIRES
        assert not stamps.is_stamped(wire)


@pytest.mark.parametrize(("event", "event_ts"), events(), ids=lambda v: type(v).__name__)
def test_a_stamped_message_is_the_plain_one_with_its_stamps_last(
    event: Any, event_ts: float | None
) -> None:
    e = envelope(event)
    plain = codec.encode(e)
    shared = codec.CODECS[codec.WIRE_STAMPS](e)
    (sent,) = stamps.stamped_payloads([Encoded(shared)], SEND, array=False)
    message = json.loads(sent)
    assert list(message)[-1] == "stamps"
    got = message.pop("stamps")
    # not a byte of the plain message changed: cut the stamps, and it is the plain one
    assert sent[: sent.rindex(b',"stamps":{')] + b"}" == plain
    assert message == json.loads(plain)
    want = {"recv_us": round(RECV * 1e6), "send_us": round(SEND * 1e6)}
    if event_ts is not None:
        want = {"event_us": round(event_ts * 1e6), **want}
    assert got == want
    assert list(got) == list(want)  # event, receive, send: in that order
    # money stays exact beside the stamps
    if isinstance(event, PortfolioValue):
        assert b'"total_value":10523.5,' in sent


def test_a_reply_on_the_stamped_wire_is_written_as_it_is() -> None:
    reply = codec.message("pong", {}, TS)
    error = codec.error("Invalid request: 'symbol' is required", TS)
    update = codec.CODECS[codec.WIRE_STAMPS](envelope(events()[0][0]))
    items = [Encoded(reply, control=True), Encoded(update), Encoded(error, control=True)]
    out = stamps.stamped_payloads(items, SEND, array=False)
    assert out[0] == reply
    assert out[2] == error
    assert json.loads(out[1])["stamps"]["send_us"] == round(SEND * 1e6)


@pytest.mark.parametrize(
    ("query", "wire"),
    [
        ("stamps=1", "realtime+stamps"),
        ("stamps=true&token=abc", "realtime+stamps"),
        ("stamps=0", "realtime"),
        ("stamps=false", "realtime"),
        ("token=abc", "realtime"),
        ("", "realtime"),
    ],
)
def test_the_option_picks_the_wire(query: str, wire: str) -> None:
    options, errors = parse_options(query)
    assert errors == []
    assert options.wire == wire


@pytest.mark.parametrize("value", ["", "2", "yes", "on"])
def test_a_bad_value_is_refused_and_the_default_used(value: str) -> None:
    options, errors = parse_options(f"stamps={value}")
    assert errors == ["option stamps must be 0 or 1"]
    assert options == Options()


# -- the front: a stamped connection beside a plain one

NOW = 1_700_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(0.0, NOW)


@pytest.fixture
async def node(clock: ManualClock) -> AsyncIterator[Node]:
    settings = Settings(batch_ms=0, cache_timeout_s=60)
    node = Node(settings, providers=[Silent(["AAPL"])], epoch="e1", clock=clock)
    try:
        yield node
    finally:
        node.pumps.close()
        await node.engine.dispose()


class Assets:
    """The portfolio service as far as asset subscriptions go: AAPL, nothing to compute."""

    known_assets = frozenset({"AAPL"})

    def owner_of(self, portfolio_id: int) -> int | None:
        return None

    def asset_update(self, symbol: str) -> AssetUpdate | None:
        return None

    def value(self, portfolio_id: int) -> PortfolioValue:
        raise AssertionError("no portfolio here")

    def positions(self, portfolio_id: int) -> PositionsUpdate:
        raise AssertionError("no portfolio here")


def subscriber(front: WebSocketFront, query: bytes) -> Connection:
    scope = {"type": "websocket", "path": "/ws/realtime/", "query_string": query}
    connection = front.connect(
        scope,  # type: ignore[arg-type]
        RecordingSocket(),  # type: ignore[arg-type]
        Ticket(Principal(), "127.0.0.1", "127.0.0.1"),
    )
    connection.poke()
    connection.session.receive_text(
        '{"type":"subscribe_asset","data":{"symbol":"AAPL"}}', connection.clock.now()
    )
    connection.poke()
    return connection


def written(connection: Connection) -> list[bytes]:
    connection.flush_now()
    sock = connection.sock
    assert isinstance(sock, RecordingSocket)
    return sock.payloads()


async def test_the_front_gives_a_stamped_client_its_stamps_and_the_others_the_shared_frame(
    node: Node, clock: ManualClock
) -> None:
    spec = RealtimeSpec(Assets(), cache_timeout_s=60.0, allow_anonymous=True, auth_timeout_s=10.0)
    front = WebSocketFront(spec, front_context(node, None))
    plains = [subscriber(front, b"token=x"), subscriber(front, b"")]
    stamped = subscriber(front, b"stamps=1")
    bad = subscriber(front, b"stamps=yes")
    assert [c.wire for c in (*plains, stamped, bad)] == [
        "realtime",
        "realtime",
        "realtime+stamps",
        "realtime",
    ]
    for c in (*plains, stamped, bad):
        written(c)  # the connection message (and the bad option's error), out of the way
    assert b'"option stamps must be 0 or 1"' in bad.sock.payloads()[-1]  # type: ignore[attr-defined]

    update = asset(NOW - 0.003)
    stamp_and_fan_out(node.hub, [update], NOW - 0.001)
    clock.advance(0.004)
    for c in (*plains, stamped):
        c.flush_now()
    first, second = (c.sock.written[-1] for c in plains)  # type: ignore[attr-defined]
    assert first is second  # encoded once, framed once, written as it is
    (plain,) = plains[0].sock.payloads()[-1:]  # type: ignore[attr-defined]
    assert b"stamps" not in plain
    sent = stamped.sock.payloads()[-1]  # type: ignore[attr-defined]
    assert sent[: sent.rindex(b',"stamps":{')] + b"}" == plain
    assert json.loads(sent)["stamps"] == {
        "event_us": round((NOW - 0.003) * 1e6),
        "recv_us": round((NOW - 0.001) * 1e6),
        "send_us": round((NOW + 0.004) * 1e6),
    }
