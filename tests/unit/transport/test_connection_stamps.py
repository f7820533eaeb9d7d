"""A connection on a stamped wire (the market feed's ``stamps=1``) completes each data
message with the time of its own write; a connection beside it on the plain wire gets
the shared bytes, the same frame object as before.

The hub is the real one with the native codecs, the pump the real one with a window
that never fires during a test, on a manual clock; the sockets are fakes that keep what
is written.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from support.clock import ManualClock
from tickcast.clock import Now
from tickcast.hub.hub import Hub
from tickcast.hub.outbox import Outbox
from tickcast.hub.pump import Pump, Pumps
from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote, Trade
from tickcast.model.topic import Channel, Topic
from tickcast.observability.stats import Stats
from tickcast.protocols.native import codec, stamps
from tickcast.protocols.wire import Encoded
from tickcast.protocols.wsframe import frame_header
from tickcast.transport.connection import Connection, payload_size


class Sock:
    def __init__(self, *, raw: bool) -> None:
        self.raw = raw
        self.writable = True
        self.on_writable: Callable[[], None] | None = None
        self.frames: list[bytes] = []  # raw writes
        self.texts: list[bytes] = []  # messages a socket that frames was handed

    def write_frames(self, data: bytes) -> bool:
        self.frames.append(data)
        return self.writable

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        self.texts.extend(payloads)

    def send_bytes(self, payload: bytes) -> None:
        self.texts.append(payload)

    def peer_limited(self) -> bool | None:
        return False

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        pass


class Session:
    close_reason = None

    def receive_text(self, data: str, now: Now) -> None: ...
    def receive_bytes(self, data: bytes, now: Now) -> None: ...
    def handle_timer(self, now: Now) -> None: ...
    def next_deadline(self) -> float | None:
        return None

    def frames_to_send(self) -> list[Encoded]:
        return []

    def commands_received(self) -> Sequence[object]:
        return []


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def pump(clock: ManualClock) -> AsyncIterator[Pump]:
    pumps = Pumps(clock)
    yield pumps.get(10.0)
    pumps.close()


def connect(pump: Pump, wire: str, *, array: bool = False, raw: bool = True) -> Connection:
    return Connection(
        sock=Sock(raw=raw),
        session=Session(),
        wire=wire,
        array=array,
        outbox=Outbox(pump.window_s, 10_000, 1 << 20, size=payload_size),
        pump=pump,
        stats=Stats(),
        on_commands=lambda _c, _cmds: None,
        on_close=lambda _c: None,
    )


def sock_of(conn: Connection) -> Sock:
    assert isinstance(conn.sock, Sock)
    return conn.sock


def unframe(data: bytes) -> list[bytes]:
    """The payloads of unmasked server text frames joined in one write."""
    out: list[bytes] = []
    i = 0
    while i < len(data):
        size, i = data[i + 1] & 0x7F, i + 2
        if size == 126:
            size, i = int.from_bytes(data[i : i + 2]), i + 2
        elif size == 127:
            size, i = int.from_bytes(data[i : i + 8]), i + 8
        out.append(data[i : i + size])
        i += size
    return out


TRADES = Topic(Channel.TRADES, "AAPL")
QUOTES = Topic(Channel.QUOTES, "AAPL")


def publish(hub: Hub, clock: ManualClock, n: int) -> list[Envelope]:
    """``n`` trades and a quote, their event time 3 ms before the server's stamp (the
    clock's wall time): what ``LocalPublisher`` does. Returns the envelopes."""
    server_ts = clock.wall()
    events = [Trade("AAPL", 100.0 + i, 1.0, server_ts - 0.003, "test", f"t{i}") for i in range(n)]
    quote = Quote("AAPL", 99.0, 101.0, 1.0, 1.0, 100.0, 5.0, server_ts - 0.003, "test")
    envelopes = hub.sequencer.stamp([*events, quote], server_ts)
    hub.fan_out(envelopes, clock.monotonic())
    return envelopes


@pytest.mark.parametrize("array", [False, True], ids=["single", "array"])
@pytest.mark.parametrize("raw", [True, False], ids=["raw", "framed-by-socket"])
async def test_stamped_and_plain_connections_side_by_side(
    pump: Pump, clock: ManualClock, array: bool, raw: bool
) -> None:
    hub = Hub(stamps.CODECS)
    plain = connect(pump, codec.WIRE_SEQ, array=array, raw=raw)
    stamped = connect(pump, stamps.WIRE_SEQ_STAMPS, array=array, raw=raw)
    for conn in (plain, stamped):
        hub.subscribe(conn, TRADES)
        hub.subscribe(conn, QUOTES)
        conn.queue(Encoded(codec.control("subscribed", 0, symbols=["AAPL"]), control=True))
    envelopes = publish(hub, clock, 3)
    server_ts = envelopes[0].server_ts
    clock.advance(0.005)  # the batch waits 5 ms in the outbox
    for conn in (plain, stamped):
        conn.flush_now()

    def messages(conn: Connection) -> list[bytes]:
        sock = sock_of(conn)
        return [m for w in sock.frames for m in unframe(w)] if raw else sock.texts

    plain_out, stamped_out = messages(plain), messages(stamped)
    # the plain connection: exactly the plain codec's bytes, control reply first
    expected = [codec.encode_with_seq(e) for e in envelopes]
    data = [json.loads(m) for m in plain_out[1:]]
    if array:
        assert plain_out[1] == b"[" + b",".join(expected) + b"]"
    else:
        assert plain_out[1:] == expected
    assert all("stamps" not in m for d in data for m in (d if isinstance(d, list) else [d]))
    # the stamped one: the same messages, each with its three stamps, in order
    assert stamped_out[0] == plain_out[0] == b'{"type":"subscribed","symbols":["AAPL"]}'
    got = [json.loads(m) for m in stamped_out[1:]]
    got = [m for g in got for m in (g if isinstance(g, list) else [g])]
    assert len(got) == 4
    for message, want in zip(got, expected, strict=True):
        lat = message.pop("stamps")
        assert message == json.loads(want)
        assert lat == {
            "event_us": round((server_ts - 0.003) * 1e6),
            "recv_us": round(server_ts * 1e6),
            "send_us": round(clock.wall() * 1e6),
        }
        assert lat["event_us"] <= lat["recv_us"] <= lat["send_us"]


async def test_the_plain_connection_still_writes_the_one_shared_frame(
    pump: Pump, clock: ManualClock
) -> None:
    hub = Hub(stamps.CODECS)
    plains = [connect(pump, codec.WIRE) for _ in range(2)]
    stamped = connect(pump, stamps.WIRE_STAMPS)
    for conn in (*plains, stamped):
        hub.subscribe(conn, TRADES)
    (trade, _) = publish(hub, clock, 1)
    for conn in (*plains, stamped):
        conn.flush_now()
    first, second = (sock_of(c).frames for c in plains)
    assert first[0] is second[0]  # encoded once, framed once, written as it is
    payload = codec.encode(trade)
    assert first == [frame_header(len(payload)) + payload]
    assert b'"send_us":' in sock_of(stamped).frames[0]


async def test_each_write_of_a_stamped_connection_reads_the_clock_anew(
    pump: Pump, clock: ManualClock
) -> None:
    hub = Hub(stamps.CODECS)
    conn = connect(pump, stamps.WIRE_STAMPS)
    hub.subscribe(conn, TRADES)
    sends = []
    for _ in range(3):
        publish(hub, clock, 1)
        clock.advance(0.25)
        conn.flush_now()
        (message,) = unframe(sock_of(conn).frames[-1])
        sends.append(json.loads(message)["stamps"]["send_us"])
    assert [b - a for a, b in itertools.pairwise(sends)] == [250_000, 250_000]
