"""The SockJS socket under a real ``Connection``: writable only while a receiving
request is attached (between polls the outbox holds and conflates), ``on_writable`` when
one attaches, a batch as one ``a`` frame, the last words ahead of the close frame, and a
shared item escaped once for every session (the escape memo counts its encodings)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import pytest

from support.clock import ManualClock
from tickcast.clock import Now
from tickcast.fronts.stomp import HeadCache
from tickcast.hub.outbox import Outbox
from tickcast.hub.pump import Pump, Pumps
from tickcast.observability.stats import Stats
from tickcast.protocols.sockjs.framing import XHR, XHR_STREAMING, EscapeMemo
from tickcast.protocols.sockjs.session import SockJSSession
from tickcast.protocols.wire import Encoded
from tickcast.transport.connection import Connection, HeadedConnection, payload_size
from tickcast.transport.sockjs_socket import SockJSSocket

#: A STOMP MESSAGE's shared body: its NUL and a U+2028 must be escaped for SockJS.
BODY = b'\n\n{"symbol":"AAPL","note":"a\xe2\x80\xa8b"}\x00'


class Session:
    """The protocol side of a connection that says nothing of its own."""

    close_reason = None
    topics: tuple[object, ...] = ()

    def receive_text(self, data: str, now: Now) -> None: ...
    def receive_bytes(self, data: bytes, now: Now) -> None: ...
    def handle_timer(self, now: Now) -> None: ...
    def next_deadline(self) -> float | None:
        return None

    def frames_to_send(self) -> list[Encoded]:
        return []

    def commands_received(self) -> Sequence[object]:
        return []


class Handler:
    def __init__(self) -> None:
        self.got: list[str] = []

    def receive_text(self, data: str, now: Now) -> None:
        self.got.append(data)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def pump(clock: ManualClock) -> AsyncIterator[Pump]:
    pumps = Pumps(clock)
    yield pumps.get(10.0)  # a window that never fires during a test
    pumps.close()


def make(
    clock: ManualClock, pump: Pump, memo: EscapeMemo, heads: HeadCache | None = None
) -> tuple[SockJSSession, SockJSSocket, Connection, list[bool]]:
    session = SockJSSession("s", Handler(), clock.now())
    closed: list[bool] = []
    sock = SockJSSocket(session, clock, memo, lambda: closed.append(True))
    kwargs = dict(
        sock=sock,
        session=Session(),
        wire="stomp",
        array=False,
        outbox=Outbox(10.0, 100, 0, size=payload_size),
        pump=pump,
        stats=Stats(),
        on_commands=lambda c, cmds: None,
        on_close=lambda c: None,
    )
    if heads is None:
        connection = Connection(**kwargs)  # type: ignore[arg-type]
    else:
        cache = heads
        connection = HeadedConnection(
            heads=lambda item: [(cache.headed(item, b"MESSAGE\nsubscription:sub-0"), "sub-0")],
            **kwargs,  # type: ignore[arg-type]
        )
    sock.outbox = connection.outbox
    return session, sock, connection, closed


def poll(session: SockJSSession, sock: SockJSSocket, clock: ManualClock) -> bytes:
    """One xhr poll: attach, let the connection flush, take what it wrote."""
    receiver = session.attach(XHR, clock.now())
    sock.attached()
    return receiver.take()


def a_frame(data: bytes) -> list[str]:
    assert data.startswith(b"a["), data
    return list(json.loads(data[1:].rstrip(b"\n")))


async def test_writable_only_while_a_request_is_attached(clock: ManualClock, pump: Pump) -> None:
    session, sock, connection, _ = make(clock, pump, EscapeMemo())
    assert not sock.writable  # no request yet
    assert poll(session, sock, clock) == b"o\n"  # the open frame ends the first poll
    assert not sock.writable
    receiver = session.attach(XHR, clock.now())  # a poll waits: nothing to say
    assert sock.writable
    assert receiver.take() == b""
    item = Encoded(b"one", topic="quotes.AAPL")
    connection.deliver(item, "quotes.AAPL", clock.monotonic())
    connection.flush(clock.monotonic(), force=True)
    assert a_frame(receiver.take()) == ["one"]
    assert receiver.done
    assert not sock.writable  # the poll ended with its frame


async def test_between_polls_the_outbox_holds_and_conflates(clock: ManualClock, pump: Pump) -> None:
    session, sock, connection, _ = make(clock, pump, EscapeMemo())
    assert poll(session, sock, clock) == b"o\n"
    now = clock.monotonic()
    for price in (b"1", b"2", b"3"):  # quotes of one key: the last one stands
        connection.deliver(Encoded(price, topic="quotes.AAPL"), "quotes.AAPL", now)
    connection.deliver(Encoded(b"trade", topic="trades.AAPL"), None, now)
    connection.flush(now, force=True)  # not writable: nothing written, nothing lost
    assert session.queued_bytes == 0
    woke: list[bool] = []
    sock.on_data = lambda: woke.append(True)
    assert sorted(a_frame(poll(session, sock, clock))) == ["3", "trade"]  # one frame
    assert woke


async def test_the_last_words_go_ahead_of_the_close_frame(clock: ManualClock, pump: Pump) -> None:
    session, sock, connection, closed = make(clock, pump, EscapeMemo())
    assert poll(session, sock, clock) == b"o\n"
    connection.deliver(Encoded(b"ERROR\n\nbye\x00"), None, clock.monotonic())
    connection.close(1002, "protocol error")  # between two polls
    assert closed == [True]
    body = poll(session, sock, clock)
    assert body == b'a["ERROR\\n\\nbye\\u0000"]\n'
    assert poll(session, sock, clock) == b'c[1002,"protocol error"]\n'
    assert poll(session, sock, clock) == b'c[1002,"protocol error"]\n'  # until it expires


async def test_a_shared_message_is_escaped_once_for_every_session(
    clock: ManualClock, pump: Pump
) -> None:
    memo = EscapeMemo()
    heads = HeadCache()  # the STOMP front's: one headed item per (update, head)
    clients = [make(clock, pump, memo, heads) for _ in range(5)]
    streams = []
    for session, sock, _, _ in clients:
        receiver = session.attach(XHR_STREAMING, clock.now())
        sock.attached()
        receiver.take()  # the prelude and o
        streams.append(receiver)
    for update in (b"1", b"2"):
        shared = Encoded(BODY.replace(b"AAPL", update), topic="quotes.AAPL")
        now = clock.monotonic()
        for _, _, connection, _ in clients:
            connection.deliver(shared, "quotes.AAPL", now)
            connection.flush(now, force=True)
    frames = [r.take() for r in streams]
    assert len(set(frames)) == 1  # every session wrote the same bytes
    first, second = frames[0].split(b"\n")[:2]
    assert b"\\u0000" in first
    assert b"\\u2028" in first
    assert a_frame(first) == ["MESSAGE\nsubscription:sub-0" + BODY.decode().replace("AAPL", "1")]
    assert a_frame(second)[0].endswith('"note":"a\u2028b"}\x00')
    assert memo.misses == 2  # once per update, not once per session (5)


async def test_replies_are_escaped_as_they_come(clock: ManualClock, pump: Pump) -> None:
    memo = EscapeMemo()
    session, sock, connection, _ = make(clock, pump, memo)
    receiver = session.attach(XHR_STREAMING, clock.now())
    sock.attached()
    receiver.take()
    connection.deliver(Encoded(b"RECEIPT\nreceipt-id:1\n\n\x00"), None, clock.monotonic())
    connection.flush(clock.monotonic(), force=True)
    assert receiver.take() == b'a["RECEIPT\\nreceipt-id:1\\n\\n\\u0000"]\n'
    assert memo.misses == 0
    assert len(memo) == 0
