"""What one SockJS receiving request writes, and the HTTP answers of the endpoint.

Rules: thin I/O under ``fronts/sockjs.py`` (the endpoint routes, admits and keeps the
sessions; this module writes). A ``Stream`` writes what the request's ``Receiver``
holds until it is done, the client goes away (the session is then aborted) or the
session expires, with heartbeats on the session's deadline: a poll one frame, a
stream frames as they come (until the response limit), the ASGI ``websocket``
transport each frame as a message.

Writes go out at once, inside the connection's flush (``write_now``), rather than by
waking the request's task for each batch (an asyncio wake-up per batch per session was
a third of the SockJS websocket transport's cost over raw STOMP, W1): the server's own
WebSocket never makes its writer wait; an HTTP stream's ASGI ``send`` is stepped by hand
(``step``) and returns, as it does while the transport takes data, or leaves a task that
ends the write once the peer has taken enough (the socket is not writable until then,
and nothing else is written meanwhile).

A request's state is one object (``Stream``, slotted), its callbacks bound methods that
are taken back when it ends: nothing it leaves is a reference cycle, so what a request
allocated is freed when it ends rather than by the garbage collector (xhr-streaming
opens a request per response limit per session: at W1, a hundred a second, whose
closures, cells and futures, all in one cycle, made the collector's passes, full ones
included, a tenth of the transport's cost).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import CoroutineType
from typing import Any

from starlette.types import Message, Receive, Send

from tickcast.clock import Clock
from tickcast.protocols.sockjs import urls
from tickcast.protocols.sockjs.session import Receiver, SockJSSession
from tickcast.transport.sockjs_socket import SockJSSocket

#: A write of frames (``done``: the request ends after them), awaited.
Write = Callable[[list[bytes], bool], Awaitable[None]]
#: A write made at once: None once written, else a future that ends when it is.
WriteNow = Callable[[list[bytes], bool], "asyncio.Future[Any] | None"]


class Stream:
    """Writes what ``receiver`` holds (see the module's rules).

    Args:
        session: the receiver's session.
        receiver: what the request writes.
        sock: the session's socket (None for a request that does not attach: a second
            receiving request, which gets its close frame and ends); it wakes the
            stream when the session has frames (``on_data``), and is not writable while
            a write waits for its peer (``sending``).
        clock: the endpoint's clock.
        write: an awaited write (the ASGI websocket's ``send``, when the server offers
            no socket of its own), or None with ``write_now``.
        write_now: a write made at once, inside the connection's flush.
    """

    __slots__ = (
        "_clock",
        "_ended",
        "_failed",
        "_fired",
        "_in_flight",
        "_loop",
        "_receiver",
        "_session",
        "_sock",
        "_timer",
        "_waiter",
        "_woken",
        "_write",
        "_write_now",
    )

    def __init__(
        self,
        session: SockJSSession,
        receiver: Receiver,
        sock: SockJSSocket | None,
        clock: Clock,
        write: Write | None,
        write_now: WriteNow | None = None,
    ) -> None:
        assert write is not None or write_now is not None
        self._session = session
        self._receiver = receiver
        self._sock = sock
        self._clock = clock
        self._write = write
        self._write_now = write_now
        self._loop = asyncio.get_running_loop()
        #: the last frames are written or on their way (or the write failed)
        self._ended = False
        # The task sleeps on one future at a time (``_waiter``), which data, the client
        # going away or the heartbeat's timer resolves: one wake-up per batch, not the
        # task, the Event and the ``asyncio.wait`` per batch that woke it before (half
        # of the xhr-streaming transport's cost over the websocket one, W1). The timer
        # is armed for the earliest deadline and left alone while later ones come (a
        # write puts the heartbeat off): an early ``handle_timer`` does nothing.
        self._waiter: asyncio.Future[None] | None = None
        self._woken = False
        self._fired = False
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight: asyncio.Future[Any] | None = None
        self._failed: BaseException | None = None

    async def run(self, gone: asyncio.Future[Any]) -> bool:
        """Write until done, ``gone`` (the session is then aborted) or the session
        expires; the callbacks it set are taken back when it returns. True when the
        request's last frames were written (an HTTP response is then complete)."""
        session, receiver, sock, clock = self._session, self._receiver, self._sock, self._clock
        on_data = self.flush_now if self._write_now is not None else self._wake
        on_gone = self._on_gone
        gone.add_done_callback(on_gone)
        if sock is not None:
            sock.on_data = on_data
            sock.attached()
        timer_at = 0.0
        try:
            while True:
                self._woken = False
                if self._ended:
                    if self._in_flight is not None:
                        await self._in_flight
                    failed = self._failed
                    if failed is not None:
                        self._failed = None
                        raise failed
                    return True
                if self._in_flight is not None:  # written on by ``_written``, or ended
                    await self._sleep()
                    if gone.done():
                        session.abort(receiver, clock.now())
                        return False
                    continue
                data = receiver.take_frames()
                done = receiver.done
                if data or done:
                    if self._write_now is not None:
                        self._put(data, done)
                        if done:
                            self._ended = True
                        elif self._in_flight is None and sock is not None:
                            sock.drained()
                        continue
                    assert self._write is not None
                    if sock is not None:
                        sock.sending = True
                    try:
                        await self._write(data, done)
                    finally:
                        if sock is not None:
                            sock.sending = False
                    if done:
                        return True
                    if sock is not None:
                        sock.drained()
                    continue
                if gone.done() or session.expired:
                    session.abort(receiver, clock.now())
                    return False
                deadline = session.next_deadline() if receiver is session.receiver else None
                timer = self._timer
                if deadline is not None and (timer is None or deadline < timer_at):
                    if timer is not None:
                        timer.cancel()
                    timer_at = deadline
                    delay = max(0.0, deadline - clock.monotonic())
                    self._timer = self._loop.call_later(delay, self._on_timer)
                if not self._woken:
                    await self._sleep()
                if gone.done():
                    session.abort(receiver, clock.now())
                    return False
                if self._fired:
                    self._fired = False
                    session.handle_timer(clock.now())
        finally:
            gone.remove_done_callback(on_gone)
            in_flight = self._in_flight
            if in_flight is not None:
                self._in_flight = None
                in_flight.remove_done_callback(self._written)
                in_flight.cancel()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if sock is not None and sock.on_data is on_data:
                sock.on_data = None

    def _wake(self) -> None:
        self._woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep(self) -> None:
        """Until ``_wake``: data, the client going away, a write's end or the timer."""
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _on_timer(self) -> None:
        self._timer = None
        self._fired = True
        self._wake()

    def _on_gone(self, _: asyncio.Future[Any]) -> None:
        self._wake()

    def _written(self, task: asyncio.Future[Any]) -> None:
        # a write that waited for its peer is over: what came meanwhile goes now
        self._in_flight = None
        sock = self._sock
        if sock is not None:
            sock.sending = False
        if task.cancelled() or task.exception() is not None:
            self._failed = None if task.cancelled() else task.exception()
            self._ended = True
        if self._ended:
            self._wake()
            return
        if sock is not None:
            sock.drained()
        self.flush_now()
        # the loop waited while the write did: it re-arms the heartbeat's timer (one
        # that fired meanwhile was spent) and beats if it is due
        self._wake()

    def _put(self, data: list[bytes], done: bool) -> None:
        write_now = self._write_now
        assert write_now is not None
        pending = write_now(data, done)
        if pending is not None:
            self._in_flight = pending
            sock = self._sock
            if sock is not None:
                sock.sending = True
            pending.add_done_callback(self._written)

    def flush_now(self) -> None:
        """The session has frames: write them now (the socket's ``on_data``)."""
        if self._ended or self._in_flight is not None:
            return
        receiver = self._receiver
        data = receiver.take_frames()
        if receiver.done:
            self._ended = True
            self._put(data, True)
            self._wake()  # the loop returns
        elif data:
            self._put(data, False)


def http_writer(send: Send) -> WriteNow:
    """``write_now`` for an HTTP response: the frames as one body chunk, ``send``
    stepped by hand (``step``)."""

    def write_now(frames: list[bytes], done: bool) -> asyncio.Future[Any] | None:
        body = frames[0] if len(frames) == 1 else b"".join(frames)
        return step(send({"type": "http.response.body", "body": body, "more_body": not done}))

    return write_now


class _Resumed:
    """The rest of a coroutine stepped by hand (``step``) that yielded ``first`` (the
    future it waits on): awaiting this runs it to its end as a task would have."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.coro
        yielded = self.first
        while True:
            try:
                value = yield yielded
            except BaseException as exc:  # a cancel (or anything thrown in) goes to it
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value


async def _resume(rest: _Resumed) -> None:
    await rest


def step(write: Awaitable[None]) -> asyncio.Future[Any] | None:
    """Run ``write`` (an ASGI ``send``) as far as it goes without waiting: None once it
    is done (what a ``send`` of a body does while the transport takes data: it writes
    and returns), else a task that finishes it (it waits for the transport to drain)."""
    if type(write) is not CoroutineType and not isinstance(write, Coroutine):
        return asyncio.ensure_future(write)
    try:
        first = write.send(None)
    except StopIteration:
        return None
    except BaseException:
        write.close()
        raise
    return asyncio.ensure_future(_resume(_Resumed(write, first)))


async def first(message: Awaitable[Message], writer: asyncio.Future[Any]) -> Message | None:
    """The next message, or None once ``writer`` ended first (the session closed)."""
    task = asyncio.ensure_future(message)
    await asyncio.wait((task, writer), return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def until_disconnect(receive: Receive) -> None:
    """Reads the request (a body is ignored) until the client goes away, or the response
    is complete (an ASGI server says ``http.disconnect`` then too)."""
    while (await receive())["type"] != "http.disconnect":
        pass


# -- whole answers


def encode_headers(headers: urls.Headers) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers]


async def respond(send: Send, status: int, headers: urls.Headers, body: bytes = b"") -> None:
    """A whole response (its length known: no chunks, HTTP/1.0 or 1.1)."""
    encoded = encode_headers(headers)
    if status != 204:
        encoded.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})


async def text(send: Send, status: int, words: str, headers: urls.Headers | None = None) -> None:
    await respond(
        send,
        status,
        [("Content-Type", "text/plain; charset=UTF-8"), urls.NO_CACHE, *(headers or ())],
        words.encode(),
    )


async def respond_start(send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    """A streaming response's start (``headers`` encoded)."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})
