"""Connection: who is slow. A client is slow when it does not take what is written to it,
never because the gateway itself fell behind.

The socket is a fake FrameSocket: ``writable`` (True: the transport takes data; False: its
buffer is above the high-water mark), ``limited`` (what ``peer_limited`` answers: True
when the kernel holds data the peer has not let it send, False when the peer takes what
the kernel has, None when the socket cannot tell) and ``capacity`` (bytes written after
which it stops being writable) are the test's to set. The pump is the real one, with a
window long enough that it never fires during a test, on a manual clock the test moves
(``clock.advance``); each delivery comes at the clock's monotonic time, as the hub hands
a publish pass's ``now``, and the test sets the stall clock as the loop monitor would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from support.clock import ManualClock
from support.publishing import stamp_and_fan_out
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.hub.hub import Hub
from tickcast.hub.outbox import Outbox
from tickcast.hub.pump import Pump, Pumps
from tickcast.model.envelope import Envelope
from tickcast.model.market import Trade
from tickcast.model.topic import Channel, Topic
from tickcast.observability.stats import Stats
from tickcast.protocols.base import Authenticated
from tickcast.protocols.wire import Encoded
from tickcast.protocols.wsframe import frame_header
from tickcast.transport.connection import (
    OVERLOAD_FACTOR,
    WRITE_CHUNK_BYTES,
    Connection,
    payload_size,
)


class FakeSocket:
    raw = True

    def __init__(self) -> None:
        self.writable = True
        self.limited: bool | None = True
        self.capacity: int | None = None  # bytes it takes before blocking (None: any)
        self._taken = 0
        self.on_writable: Callable[[], None] | None = None
        self.written: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.on_abort: Callable[[], None] | None = None

    def write_frames(self, data: bytes) -> bool:
        self.written.append(data)
        self._taken += len(data)
        if self.capacity is not None and self._taken >= self.capacity:
            self.writable = False
        return self.writable

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        self.written.extend(payloads)

    def send_bytes(self, payload: bytes) -> None:
        self.written.append(payload)

    def peer_limited(self) -> bool | None:
        return self.limited

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        self.closed = (code, reason)
        self.on_abort = on_abort

    def drained(self) -> None:
        """The peer read: the transport went below its low-water mark."""
        self.writable = True
        self._taken = 0
        if self.on_writable is not None:
            self.on_writable()

    def trades_written(self) -> int:
        return b"".join(self.written).count(b'"type":"trade"')


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


def trade(i: int) -> Encoded:
    return Encoded(b'{"type":"trade","i":%d,"pad":"%s"}' % (i, b"x" * 60))


def quote(symbol: str, i: int) -> Encoded:
    return Encoded(b'{"symbol":"%s","price":%d}' % (symbol.encode(), i))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def pumps(clock: ManualClock) -> AsyncIterator[Pumps]:
    pumps = Pumps(clock)
    yield pumps
    pumps.close()


@pytest.fixture
def pump(pumps: Pumps) -> Pump:
    return pumps.get(10.0)


def connect(pump: Pump, *, max_bytes: int = 1000, timeout_s: float = 2.0) -> Connection:
    return Connection(
        sock=FakeSocket(),
        session=Session(),
        wire="json",
        array=False,
        outbox=Outbox(pump.window_s, 10_000, max_bytes, size=payload_size),
        pump=pump,
        stats=Stats(),
        on_commands=lambda _c, _cmds: None,
        on_close=lambda _c: None,
        slow_timeout_s=timeout_s,
    )


def put(conn: Connection, item: Encoded, key: str | None = None) -> None:
    """What the hub does in a publish pass: deliver at the pass's (the clock's) time."""
    conn.deliver(item, key, conn.clock.monotonic())


def sock_of(connection: Connection) -> FakeSocket:
    sock = connection.sock
    assert isinstance(sock, FakeSocket)
    return sock


def block(conn: Connection) -> None:
    """The pump finds the socket blocked (the kernel will take no more)."""
    sock_of(conn).writable = False
    conn.flush(conn.clock.monotonic(), force=True)


# -- the gateway's own backlog


async def test_over_budget_while_the_socket_takes_data_is_written_out_not_closed(
    pump: Pump,
) -> None:
    conn = connect(pump, max_bytes=1000)
    for i in range(100):  # ~9 KB in one pass: the gateway's burst, not the client's fault
        put(conn, trade(i), None)
    sock = sock_of(conn)
    assert sock.closed is None
    assert conn.stats.write_throughs >= 8
    assert conn.stats.slow_closes == 0
    assert sock.trades_written() + len(conn.outbox) == 100  # nothing lost


async def test_blocked_only_by_this_pass_own_writes_is_not_slow(pump: Pump) -> None:
    conn = connect(pump, max_bytes=1000)
    sock = sock_of(conn)
    sock.capacity = 2000  # the kernel takes 2 KB, then the socket blocks, in this pass
    for i in range(60):  # ~5.5 KB: past the budget once the socket has blocked
        put(conn, trade(i), None)
    assert sock.closed is None
    assert conn.outbox.pending_bytes > 1000  # kept past the budget: not the client's fault
    assert sock.trades_written() + len(conn.outbox) == 60


async def test_over_budget_while_the_peer_does_not_read_since_an_earlier_pass_is_slow(
    pump: Pump, clock: ManualClock
) -> None:
    conn = connect(pump, max_bytes=1000)
    sock = sock_of(conn)
    block(conn)
    clock.advance(0.1)  # the next publish pass
    for i in range(20):
        put(conn, trade(i), None)
        if sock.closed:
            break
    assert sock.closed is not None
    code, reason = sock.closed
    assert code == CloseCode.TRY_AGAIN_LATER
    assert reason.startswith("slow consumer: ")
    assert "not taken" in reason
    assert len(reason.encode()) <= 123
    assert conn.stats.slow_closes == 1
    assert len(conn.outbox) == 0  # nothing more is queued for it
    put(conn, trade(99), None)
    assert len(conn.outbox) == 0


async def test_a_socket_that_cannot_tell_is_taken_at_its_word(
    pump: Pump, clock: ManualClock
) -> None:
    conn = connect(pump, max_bytes=1000)
    sock = sock_of(conn)
    sock.limited = None  # plain ASGI, not Linux: no kernel to ask
    block(conn)
    clock.advance(0.1)
    for i in range(20):
        put(conn, trade(i), None)
    assert sock.closed is not None
    assert sock.closed[1].startswith("slow consumer: ")


async def test_over_budget_while_the_peer_reads_is_kept_up_to_the_overload_cap(
    pump: Pump, clock: ManualClock
) -> None:
    conn = connect(pump, max_bytes=1000)
    sock = sock_of(conn)
    sock.limited = False  # the kernel sends what it gets: the gateway is slow to write
    block(conn)
    clock.advance(0.1)
    i = 0
    while sock.closed is None and i < 1000:
        put(conn, trade(i), None)
        i += 1
    # Kept past its budget, up to OVERLOAD_FACTOR times it, then closed as the last
    # resort, with its own reason and counter: it was not a slow consumer.
    assert conn.outbox.pending_bytes == 0  # cleared at the close
    assert i > OVERLOAD_FACTOR * 1000 // len(trade(0).payload)
    assert sock.closed is not None
    assert sock.closed[0] == CloseCode.TRY_AGAIN_LATER
    assert sock.closed[1].startswith("gateway overloaded: ")
    assert (conn.stats.overload_closes, conn.stats.slow_closes) == (1, 0)


# -- the time rule


async def test_blocked_longer_than_the_timeout_with_reliable_data_waiting_is_slow(
    pump: Pump, clock: ManualClock
) -> None:
    conn = connect(pump, max_bytes=0, timeout_s=2.0)
    sock = sock_of(conn)
    block(conn)
    start = clock.monotonic()
    clock.advance_to(start + 1.9)
    put(conn, trade(1), None)
    assert sock.closed is None
    clock.advance_to(start + 2.1)
    put(conn, trade(2), None)
    assert sock.closed is not None
    assert sock.closed[1] == "slow consumer: 2.1 s behind"


async def test_a_blocked_socket_whose_peer_reads_restarts_the_clock(
    pump: Pump, clock: ManualClock
) -> None:
    conn = connect(pump, max_bytes=0, timeout_s=2.0)
    sock = sock_of(conn)
    sock.limited = False  # the transport is full, but the kernel has nothing unsent
    block(conn)
    start = clock.monotonic()
    clock.advance_to(start + 2.5)
    put(conn, trade(1), None)
    assert sock.closed is None  # the gateway's lag: counting starts again from here
    sock.limited = True  # now the peer stops reading
    clock.advance_to(start + 4.0)
    put(conn, trade(2), None)
    assert sock.closed is None  # 1.5 s since the restart
    clock.advance_to(start + 4.6)
    put(conn, trade(3), None)
    assert sock.closed is not None


async def test_time_the_gateway_itself_stalled_does_not_count_against_the_client(
    pump: Pump, clock: ManualClock, pumps: Pumps
) -> None:
    stalled = [0.0]
    pumps.stall_clock = lambda now: stalled[0]
    conn = connect(pump, max_bytes=0, timeout_s=2.0)
    sock = sock_of(conn)
    block(conn)
    start = clock.monotonic()
    stalled[0] = 1.5  # the loop stood still for 1.5 s of that time
    clock.advance_to(start + 3.0)
    put(conn, trade(1), None)
    assert sock.closed is None
    clock.advance_to(start + 3.6)
    put(conn, trade(2), None)
    assert sock.closed is not None


async def test_a_client_that_drains_in_time_is_never_slow(pump: Pump, clock: ManualClock) -> None:
    conn = connect(pump, max_bytes=0, timeout_s=2.0)
    sock = sock_of(conn)
    for second in range(10):
        block(conn)
        clock.advance(1.5)
        put(conn, trade(second), None)
        sock.drained()  # it reads before 2 s pass, every time
    assert sock.closed is None
    assert conn.stats.slow_closes == 0


async def test_a_blocked_quotes_only_client_is_kept_and_conflated(
    pump: Pump, clock: ManualClock
) -> None:
    conn = connect(pump, max_bytes=1000, timeout_s=2.0)
    sock = sock_of(conn)
    block(conn)
    for i in range(1000):
        clock.advance(0.01)
        for symbol in ("AAPL", "MSFT"):
            put(conn, quote(symbol, i), f"quotes.{symbol}")
    assert sock.closed is None  # 10 s blocked, yet its backlog is two quotes
    assert len(conn.outbox) == 2
    assert conn.outbox.conflated == 1998


# -- writing


async def test_a_flush_writes_chunks_while_the_socket_takes_them_then_waits(pump: Pump) -> None:
    conn = connect(pump, max_bytes=0)
    sock = sock_of(conn)
    sock.writable = False
    block(conn)
    for i in range(3000):  # ~270 KB queued behind a blocked socket
        put(conn, trade(i), None)
    sock.capacity = 2 * WRITE_CHUNK_BYTES  # it will take two chunks, then block again
    sock.drained()
    written = b"".join(sock.written)
    assert 2 * WRITE_CHUNK_BYTES <= len(written) < 3 * WRITE_CHUNK_BYTES
    assert len(sock.written) == 2  # one write per chunk
    assert sock.trades_written() + len(conn.outbox) == 3000
    sock.capacity = None
    sock.drained()  # now it takes everything
    assert sock.trades_written() == 3000
    assert len(conn.outbox) == 0


async def test_between_chunks_the_write_answers_whether_the_socket_takes_more(
    pump: Pump,
) -> None:
    """``write_frames`` says whether the socket is still writable after the write: the
    connection asks ``writable`` once a flush (before its first write), not again before
    each chunk, and stops where the write said the socket is full."""
    conn = connect(pump, max_bytes=0)
    sock = sock_of(conn)
    sock.writable = False
    block(conn)
    for i in range(3000):  # ~270 KB: five chunks
        put(conn, trade(i), None)
    sock.capacity = 3 * WRITE_CHUNK_BYTES
    asked: list[bool] = []  # what the connection read of ``writable``
    inside: list[bool] = []  # the fake's own reads, in its write_frames, not counted

    class Counting(FakeSocket):
        @property  # type: ignore[override]
        def writable(self) -> bool:
            if not inside:
                asked.append(self._writable)
            return bool(self._writable)

        @writable.setter
        def writable(self, value: bool) -> None:
            self._writable = value

        def write_frames(self, data: bytes) -> bool:
            inside.append(True)
            try:
                return super().write_frames(data)
            finally:
                inside.pop()

    sock.__class__ = Counting
    sock._writable = True
    sock.drained()
    assert len(sock.written) == 3  # three chunks, the third filled the socket
    assert asked == [True]  # once, before the first chunk
    assert conn.outbox.deadline is not None  # the rest waits for the socket to drain


async def test_the_slow_close_counts_an_abort_when_the_socket_reports_one(
    pump: Pump, clock: ManualClock
) -> None:
    conn = connect(pump, max_bytes=0, timeout_s=1.0)
    sock = sock_of(conn)
    block(conn)
    clock.advance(5)
    put(conn, trade(1), None)
    assert sock.on_abort is not None
    sock.on_abort()
    assert conn.stats.slow_aborts == 1


async def test_an_ordinary_close_reports_no_abort_callback(pump: Pump) -> None:
    conn = connect(pump)
    conn.close(CloseCode.GOING_AWAY)
    assert sock_of(conn).closed == (1001, "server shutting down")
    assert sock_of(conn).on_abort is None


# -- contained failures: closed 1011, counted, never out of a loop callback


class BrokenTimerSession(Session):
    def next_deadline(self) -> float | None:
        return 0.0  # due at once

    def handle_timer(self, now: Now) -> None:
        raise RuntimeError("a bug in a session timer")


async def test_a_faulted_connection_is_closed_1011_and_takes_nothing_more(pump: Pump) -> None:
    conn = connect(pump)
    put(conn, trade(1), None)
    conn.fault()
    put(conn, trade(2), None)
    assert sock_of(conn).closed == (1011, "internal error")
    assert len(conn.outbox) == 0
    assert sock_of(conn).written == []


async def test_a_raising_session_timer_closes_1011_and_is_counted(pump: Pump) -> None:
    conn = connect(pump)
    conn.session = BrokenTimerSession()
    conn.poke()  # schedules the timer the session asks for
    conn._on_timer()  # what the loop calls; it must not raise
    assert sock_of(conn).closed == (1011, "internal error")
    assert pump.faults.counts == {"timer": 1}


async def test_a_raising_command_handler_closes_1011_and_is_counted(pump: Pump) -> None:
    def broken(_conn: Connection, _commands: Sequence[object]) -> None:
        raise RuntimeError("a bug in a front's handler")

    class Subscribes(Session):
        def commands_received(self) -> Sequence[object]:
            return ["subscribe"]

    conn = connect(pump)
    conn.session = Subscribes()
    conn.on_commands = broken
    conn.poke()
    assert sock_of(conn).closed == (1011, "internal error")
    assert pump.faults.counts == {"command": 1}


# -- time: monotonic for deadlines, wall for stamps, both from the injected clock


class TimedSession(Session):
    """A session with a deadline 30 s after it was made; it notes when it was called."""

    def __init__(self, clock: ManualClock) -> None:
        self.deadline = clock.monotonic() + 30
        self.calls: list[tuple[str, Now]] = []

    def next_deadline(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: Now) -> None:
        self.calls.append(("timer", now))

    def answer(self, reply: object, now: Now) -> None:
        self.calls.append(("answer", now))


async def test_a_session_timer_is_set_from_the_delay_on_the_injected_clock(
    pump: Pump, clock: ManualClock
) -> None:
    """The manual clock's monotonic origin is unlike the loop's: a timer set against the
    loop's own clock (``call_at(deadline)``) would be decades off."""
    conn = connect(pump)
    session = conn.session = TimedSession(clock)
    clock.jump_wall(-3600)  # the wall clock plays no part in a deadline
    loop = pump.loop
    before = loop.time()
    conn.poke()
    after = loop.time()
    timer = conn._timer
    assert timer is not None
    assert before + 30 <= timer.when() <= after + 30
    clock.advance(30)
    conn._on_timer()  # what the loop calls
    assert session.calls == [("timer", clock.now())]


async def test_answer_and_latency_read_the_injected_clock(pump: Pump, clock: ManualClock) -> None:
    seen: list[float] = []
    conn = Connection(
        sock=FakeSocket(),
        session=TimedSession(clock),
        wire="json",
        array=False,
        outbox=Outbox(pump.window_s, 10, 0, size=payload_size),
        pump=pump,
        stats=Stats(),
        on_commands=lambda _c, _cmds: None,
        on_close=lambda _c: None,
        latency=seen.append,
    )
    conn.answer(Authenticated(7))
    assert conn.session.calls == [("answer", clock.now())]  # type: ignore[attr-defined]
    put(conn, Encoded(b"{}", ts=clock.wall() - 0.25))
    conn.flush_now()
    assert seen == [0.25]  # the wall clock, against the item's wall stamp


async def test_a_connection_needs_the_pump_of_its_outboxs_window(pumps: Pumps) -> None:
    def connection(outbox_window_s: float, pump: Pump) -> Connection:
        return Connection(
            sock=FakeSocket(),
            session=Session(),
            wire="json",
            array=False,
            outbox=Outbox(outbox_window_s, 10, 0, size=payload_size),
            pump=pump,
            stats=Stats(),
            on_commands=lambda _c, _cmds: None,
            on_close=lambda _c: None,
        )

    with pytest.raises(ValueError, match="window"):
        connection(0.05, pumps.get(0.0))  # its deadlines would sit in another window's FIFO
    assert connection(0.05, pumps.get(0.05)).pump is pumps.get(0.05)


# -- what goes on the wire


async def test_the_same_frame_object_is_written_to_every_subscriber(pump: Pump) -> None:
    def codec(envelope: Envelope) -> bytes:
        return b'{"seq":%d}' % envelope.seq

    hub = Hub({"json": codec})
    conns = [connect(pump) for _ in range(3)]
    for conn in conns:
        hub.subscribe(conn, Topic(Channel.TRADES, "AAPL"))
    stamp_and_fan_out(
        hub, [Trade("AAPL", 1.0, 1.0, 1.7e9, "test", "t1")], 1.7e9, pump.clock.monotonic()
    )
    for conn in conns:
        conn.flush_now()
    written = [sock_of(conn).written for conn in conns]
    assert written[0] == [frame_header(9) + b'{"seq":1}']
    # encoded once, framed once: one write per connection, of the one frame object
    assert written[0][0] is written[1][0] is written[2][0]


async def test_a_headed_item_goes_out_head_then_body_on_every_path(pump: Pump) -> None:
    body = trade(1)
    item = body.headed(b"HEAD\n")
    message = b"HEAD\n" + body.payload
    assert payload_size(item) == len(message)  # what the outbox budget counts

    raw = connect(pump)
    put(raw, item, None)
    raw.flush_now()
    assert sock_of(raw).written == [frame_header(len(message)) + message]

    framed_by_socket = connect(pump)  # compression or plain ASGI: the socket frames
    sock_of(framed_by_socket).raw = False
    put(framed_by_socket, item, None)
    framed_by_socket.flush_now()
    assert sock_of(framed_by_socket).written == [message]

    array = connect(pump)
    array.array = True
    sock_of(array).raw = False
    put(array, item, None)
    put(array, Encoded(b"ctl", control=True, head=b"H:"), None)
    array.flush_now()
    assert sock_of(array).written == [b"[" + message + b"]", b"H:ctl"]


# -- a driver without a receive loop (SockJS): start, receive_text, finished


async def test_messages_fed_one_at_a_time_then_finished_once(pump: Pump) -> None:
    class Echo(Session):
        def __init__(self) -> None:
            self.got: list[str] = []
            self.out: list[Encoded] = []

        def receive_text(self, data: str, now: Now) -> None:
            self.got.append(data)
            self.out.append(Encoded(data.upper().encode(), control=True))
            if data == "bye":
                self.close_reason = CloseCode.NORMAL  # type: ignore[assignment]

        def frames_to_send(self) -> list[Encoded]:
            out, self.out = self.out, []
            return out

    conn = connect(pump)
    session = Echo()
    conn.session = session
    closed: list[Connection] = []
    conn.on_close = closed.append
    conn.start()
    assert conn.receive_text("hi") is True
    assert b"".join(sock_of(conn).written).endswith(b"HI")  # its answer, flushed at once
    assert conn.stats.client_messages_in == 1
    put(conn, quote("AAPL", 1), "quotes.AAPL")  # queued: it waits for its window
    assert conn.receive_text("bye") is False  # the session closed the connection
    closing = sock_of(conn).closed
    assert closing is not None
    assert closing[0] == 1000
    assert conn.receive_text("more") is False  # nothing more reaches the session
    assert session.got == ["hi", "bye"]
    conn.finished(1006)
    conn.finished(1006)
    assert closed == [conn]  # the front releases once
    assert conn.close_code == 1000  # what closed it, not the later 1006
    assert len(conn.outbox) == 0


def test_the_split_modules_names_are_importable_from_connection() -> None:
    """``HeadedConnection``, ``Heads``, ``Degrading`` and ``Receive`` moved to modules of
    their own (headed, degrading, inbound) and are still importable from here."""
    from tickcast.transport import connection, degrading, headed, inbound

    assert connection.HeadedConnection is headed.HeadedConnection
    assert connection.Heads is headed.Heads
    assert connection.Degrading is degrading.Degrading
    assert connection.Receive is inbound.Receive
    assert issubclass(connection.Connection, (inbound.SessionSteps, degrading.DegradeSteps))
    with pytest.raises(AttributeError, match="no attribute"):
        _ = connection.NoSuchName  # type: ignore[attr-defined]
