"""What a SockJS receiving request writes (``fronts/sockjs_stream.py``): frames as the
session has them, inside the flush that made them; the request ends at the response
limit; and it leaves nothing for the garbage collector (no reference cycle), so that
a request a second per session costs no collector passes."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from support.clock import ManualClock
from tickcast.clock import Now
from tickcast.fronts.sockjs_stream import Stream, step
from tickcast.protocols.sockjs.framing import XHR_STREAMING, EscapeMemo
from tickcast.protocols.sockjs.session import SockJSOptions, SockJSSession
from tickcast.protocols.wire import Encoded
from tickcast.transport.sockjs_socket import SockJSSocket


class Handler:
    def receive_text(self, data: str, now: Now) -> None: ...


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The collector off, and what it would free kept in ``gc.garbage``."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _of_a_stream(obj: object) -> bool:
    return isinstance(obj, Stream) or isinstance(getattr(obj, "__self__", None), Stream)


async def test_a_stream_writes_each_batch_in_the_flush_and_ends_at_the_limit(
    no_collector: None,
) -> None:
    clock = ManualClock()
    options = SockJSOptions(response_limit=4096)
    session = SockJSSession("s", Handler(), clock.now(), options)
    sock = SockJSSocket(session, clock, EscapeMemo(), lambda: None)
    receiver = session.attach(XHR_STREAMING, clock.now())
    written: list[tuple[bytes, bool]] = []

    def write_now(frames: list[bytes], done: bool) -> asyncio.Future[Any] | None:
        written.append((b"".join(frames), done))
        return None

    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(Stream(session, receiver, sock, clock, None, write_now).run(gone))
    await asyncio.sleep(0)
    assert written == [(XHR_STREAMING.prelude + b"o\n", False)]
    item = Encoded(b"x" * 1000, topic="quotes.X")
    for n in range(5):
        sock.send_items([item])
        # written at once, inside the call (no task woken per batch)
        assert written[-1] == (b'a["' + b"x" * 1000 + b'"]\n', n == 4)
    assert await task is True
    assert sock.on_data is None
    del task
    gc.collect()
    assert not [o for o in gc.garbage if _of_a_stream(o)]


async def test_a_stream_whose_client_went_away_aborts_its_session_and_leaves_no_cycle(
    no_collector: None,
) -> None:
    clock = ManualClock()
    session = SockJSSession("s", Handler(), clock.now())
    sock = SockJSSocket(session, clock, EscapeMemo(), lambda: None)
    receiver = session.attach(XHR_STREAMING, clock.now())
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stream = Stream(session, receiver, sock, clock, None, lambda frames, done: None)
    task = asyncio.ensure_future(stream.run(gone))
    await asyncio.sleep(0)
    gone.set_result(None)
    assert await task is False
    assert session.expired
    del stream, task
    gc.collect()
    assert not [o for o in gc.garbage if _of_a_stream(o)]


async def test_a_send_that_waits_for_its_peer_is_finished_by_a_task() -> None:
    drained = asyncio.Event()
    sent: list[str] = []

    async def send(n: int) -> None:
        sent.append(f"start {n}")
        if n:
            await drained.wait()
        sent.append(f"end {n}")

    assert step(send(0)) is None  # done without waiting
    pending = step(send(1))
    assert pending is not None
    assert not pending.done()
    drained.set()
    await pending
    assert sent == ["start 0", "end 0", "start 1", "end 1"]
