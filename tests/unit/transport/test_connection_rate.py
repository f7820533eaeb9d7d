"""Connection with per-topic rates (``limit_rate``, the market feed's ``max_rate``): a
held value goes out when its own timer fires, never before; while the socket is blocked
it keeps conflating and goes out when the socket drains; lifting a rate queues what was
held; a connection without a rate arms no timer.

The clock is a manual one the test moves; the gate's loop timer is armed for real, and
the test plays its firing (``_on_gate``) after moving the clock, so that no test waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from support.clock import ManualClock
from tickcast.clock import Now
from tickcast.hub.outbox import Outbox
from tickcast.hub.pump import Pump, Pumps
from tickcast.observability.stats import Stats
from tickcast.protocols.wire import Encoded
from tickcast.transport.connection import Connection, payload_size

AAPL = "quotes.AAPL"


class Socket:
    raw = True

    def __init__(self) -> None:
        self.writable = True
        self.on_writable: Callable[[], None] | None = None
        self.written: list[bytes] = []

    def write_frames(self, data: bytes) -> bool:
        self.written.append(data)
        return self.writable

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        raise AssertionError("a raw socket gets frames")

    def send_bytes(self, payload: bytes) -> None:
        raise AssertionError("a raw socket gets frames")

    def peer_limited(self) -> bool | None:
        return False

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        pass

    def prices(self) -> list[int]:
        text = b"".join(self.written)
        return [int(part.split(b"}")[0]) for part in text.split(b'"price":')[1:]]


class Session:
    close_reason = None
    topics: Sequence[object] = ()

    def receive_text(self, data: str, now: Now) -> None: ...
    def receive_bytes(self, data: bytes, now: Now) -> None: ...
    def handle_timer(self, now: Now) -> None: ...
    def next_deadline(self) -> float | None:
        return None

    def frames_to_send(self) -> list[Encoded]:
        return []

    def commands_received(self) -> Sequence[object]:
        return []


def quote(i: int) -> Encoded:
    return Encoded(b'{"symbol":"AAPL","price":%d}' % i, topic=AAPL)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def pump(clock: ManualClock) -> AsyncIterator[Pump]:
    pumps = Pumps(clock)
    yield pumps.get(0.1)
    pumps.close()


def connect(pump: Pump) -> tuple[Connection, Socket]:
    sock = Socket()
    connection = Connection(
        sock=sock,
        session=Session(),
        wire="json",
        array=False,
        outbox=Outbox(pump.window_s, 1000, 0, size=payload_size),
        pump=pump,
        stats=Stats(),
        on_commands=lambda _c, _cmds: None,
        on_close=lambda _c: None,
    )
    return connection, sock


def deliver(connection: Connection, clock: ManualClock, i: int) -> None:
    connection.deliver(quote(i), AAPL, clock.monotonic())


async def test_a_held_value_goes_out_at_its_due_time_as_the_latest(
    pump: Pump, clock: ManualClock
) -> None:
    connection, sock = connect(pump)
    connection.limit_rate(AAPL, 2.0)
    deliver(connection, clock, 1)
    connection.flush_now()  # as after the subscribe command: the snapshot goes at once
    assert sock.prices() == [1]
    for i in range(2, 6):
        clock.advance(0.05)
        deliver(connection, clock, i)
    assert connection._gate_timer is not None  # one timer, for the earliest due value
    connection.flush_now()  # a forced flush (a client command) does not break the rate
    assert sock.prices() == [1]
    clock.advance(0.3)  # 0.5 s after the first went out
    connection._on_gate()
    assert sock.prices() == [1, 5]
    assert connection._gate_timer is None  # nothing held: nothing to wait for
    connection.finished()


async def test_while_blocked_a_held_value_conflates_and_goes_when_the_socket_drains(
    pump: Pump, clock: ManualClock
) -> None:
    connection, sock = connect(pump)
    connection.limit_rate(AAPL, 2.0)
    deliver(connection, clock, 1)
    connection.flush_now()
    clock.advance(0.1)
    deliver(connection, clock, 2)
    sock.writable = False
    clock.advance(0.5)
    connection._on_gate()  # due, but the socket takes nothing: held, no timer again
    assert connection._gate_timer is None
    deliver(connection, clock, 3)
    assert sock.prices() == [1]
    sock.writable = True
    assert sock.on_writable is not None
    sock.on_writable()
    assert sock.prices() == [1, 3]
    connection.finished()


async def test_lifting_a_rate_queues_the_held_value_for_the_next_batch(
    pump: Pump, clock: ManualClock
) -> None:
    connection, sock = connect(pump)
    connection.limit_rate(AAPL, 1.0)
    deliver(connection, clock, 1)
    connection.flush_now()
    clock.advance(0.1)
    deliver(connection, clock, 2)
    assert connection.outbox.held == 1
    connection.limit_rate(AAPL, None)
    assert connection.outbox.held == 0
    assert connection.due_at() == pytest.approx(clock.monotonic() + 0.1)
    connection.flush_now()
    assert sock.prices() == [1, 2]
    connection.finished()


async def test_without_a_rate_no_timer_is_armed_and_finished_cancels_one(
    pump: Pump, clock: ManualClock
) -> None:
    connection, _ = connect(pump)
    connection.limit_rate(AAPL, None)  # nothing to lift: nothing happens
    for i in range(3):
        deliver(connection, clock, i)
    assert connection._gate_timer is None
    assert connection.outbox.held == 0
    rated, _ = connect(pump)
    rated.limit_rate(AAPL, 1.0)
    deliver(rated, clock, 1)
    rated.flush_now()
    deliver(rated, clock, 2)
    timer = rated._gate_timer
    assert timer is not None
    rated.finished()
    assert timer.cancelled()
    assert rated._gate_timer is None
    connection.finished()
