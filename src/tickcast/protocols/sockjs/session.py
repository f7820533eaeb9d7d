"""A SockJS session: one client's conversation, over as many HTTP requests as it takes.

Rules: pure; ``now`` is passed in (a ``tickcast.clock.Now``; every deadline in its
monotonic ``mono``). A session:

- **opens** with ``o``: the first receiving request gets it (alone, when it polls);
- **queues** what the server sends (``send``, ``send_encoded``) while no receiving
  request is attached, and writes it as one ``a[...]`` frame when one is: a polling
  request (``xhr``) takes one frame and ends, and waits when there is nothing yet; a
  streaming one (``xhr_streaming``, ``eventsource``, ``websocket``) takes frames as they
  come, and an HTTP one ends once it has carried ``response_limit`` bytes of frames (the
  client then opens the next; the prelude does not count);
- **refuses a second receiving request** while one is attached: it gets
  ``c[2010,"Another connection still open"]`` and ends; the session is not touched;
- **beats**: an attached request gets ``h`` when ``heartbeat_s`` passed since the last
  frame written to it (a poll then ends);
- **times out**: ``disconnect_delay_s`` after it last had a receiving request (or since
  it was made, if none came) it is ``expired``: over, the registry forgets it, and the
  driver releases what its handler held;
- **closes** (``close``): what was queued still goes first, then the ``c`` frame, and
  every later request gets the same ``c`` frame until the session expires;
- **is aborted** (``abort``): the client went away mid-request (a network error, the
  websocket closed): the session is over at once, as sockjs-node does (a later request
  with the same id opens a new session).

What the client posts goes through ``receive`` (``xhr_send``) or ``receive_websocket``
to the inner ``MessageHandler``, one message at a time, while the session is open (a
message to a closed session is dropped, as SockJS does). A ``Receiver`` holds what one
request must write (``take``) and whether it must end after that (``done``); the driver
takes after every call it makes on the session.

The session id is in the path only to find the session; it is never given to the
handler. The server segment is ignored (the suite requires it: ``/000/s`` and ``/999/s``
are the same session), so ``SockJSSessions`` keys by session id alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol

from tickcast.clock import Now
from tickcast.protocols.sockjs.framing import (
    ANOTHER_CONNECTION,
    GO_AWAY,
    HEARTBEAT,
    OPEN,
    Transport,
    array_frame,
    close_frame,
    decode_payload,
    decode_websocket,
    encode_message,
)

__all__ = [
    "MessageHandler",
    "Receiver",
    "SockJSOptions",
    "SockJSSession",
    "SockJSSessions",
]


class MessageHandler(Protocol):
    """What a session hands each client message to (a STOMP session, say)."""

    def receive_text(self, data: str, now: Now) -> None:
        """One message the client sent."""
        ...


class SockJSOptions(NamedTuple):
    """A SockJS server's settings.

    Attributes:
        heartbeat_s: an ``h`` frame after this long without a frame to an attached
            request (SockJS's default: 25 s).
        disconnect_delay_s: a session with no receiving request expires after this
            long (5 s).
        response_limit: bytes of frames a streaming HTTP response carries before it ends
            (1 MiB, tickcast's setting's default; SockJS servers default to 128 KiB, the
            protocol's test server uses 4096).
    """

    heartbeat_s: float = 25.0
    disconnect_delay_s: float = 5.0
    response_limit: int = 1024 * 1024


class Receiver:
    """What one receiving request (an HTTP response, or a websocket) must write.

    ``take`` returns the bytes to write since the last call (the transport's prelude
    first, then each frame as the transport wraps it); ``done`` says the request must end
    once they are written. ``sent`` counts the frame bytes (not the prelude) for the
    response limit.
    """

    __slots__ = ("_out", "done", "sent", "transport")

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._out: list[bytes] = [transport.prelude] if transport.prelude else []
        self.sent = 0
        self.done = False

    @property
    def pending(self) -> bool:
        """Bytes are waiting for ``take``."""
        return bool(self._out)

    def take(self) -> bytes:
        """The bytes to write now (empty when none)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def take_frames(self) -> list[bytes]:
        """What ``take`` returns, one element per frame as the transport wraps it (the
        prelude first): a websocket sends each frame as a message of its own."""
        out = self._out
        self._out = []
        return out

    def _write(self, frame: bytes) -> None:
        data = self.transport.wrap(frame)
        self._out.append(data)
        self.sent += len(data)


class SockJSSession:
    """One SockJS session (see the module's rules).

    Args:
        session_id: its id (None for a websocket session, which no registry holds).
        handler: gets the client's messages.
        now: when it was made (the disconnect delay runs from here until a request
            attaches).
        options: heartbeat, disconnect delay and response limit.
    """

    __slots__ = (
        "_close",
        "_detached_at",
        "_heartbeat_at",
        "_opened",
        "_options",
        "_queue",
        "_queued_bytes",
        "_receiver",
        "expired",
        "handler",
        "session_id",
    )

    def __init__(
        self,
        session_id: str | None,
        handler: MessageHandler,
        now: Now,
        options: SockJSOptions | None = None,
    ) -> None:
        self.session_id = session_id
        self.handler = handler
        self._options = options if options is not None else SockJSOptions()
        self._queue: list[bytes] = []
        self._queued_bytes = 0
        self._opened = False
        self._close: bytes | None = None
        self._receiver: Receiver | None = None
        self._detached_at: float | None = now.mono
        self._heartbeat_at: float | None = None
        #: The session is over (timed out or aborted): it takes no request any more.
        self.expired = False

    # -- state

    @property
    def receiver(self) -> Receiver | None:
        """The receiving request attached now, if any."""
        return self._receiver

    @property
    def is_open(self) -> bool:
        """It takes messages both ways (not closed, not expired)."""
        return self._close is None and not self.expired

    @property
    def close_frame(self) -> bytes | None:
        """The ``c`` frame once closed (what every later request gets)."""
        return self._close

    @property
    def queued_bytes(self) -> int:
        """Bytes of encoded messages waiting for a receiving request (for the driver's
        slow-client rule)."""
        return self._queued_bytes

    # -- receiving requests

    def attach(self, transport: Transport, now: Now) -> Receiver:
        """A receiving request came: what it writes (take it now) and whether it ends.

        A second request while one is attached gets the 2010 close frame and ends.

        Raises:
            ValueError: the session expired (a registry never hands one out), or
                ``transport`` does not receive.
        """
        if self.expired:
            raise ValueError("the session expired")
        if not transport.receiving:
            raise ValueError(f"{transport.name} is not a receiving transport")
        receiver = Receiver(transport)
        if self._receiver is not None:
            receiver._write(ANOTHER_CONNECTION)
            receiver.done = True
            return receiver
        self._receiver = receiver
        self._detached_at = None
        self._heartbeat_at = now.mono + self._options.heartbeat_s
        self._flush(now)
        return receiver

    def abort(self, receiver: Receiver, now: Now) -> bool:
        """The client went away before ``receiver`` ended (network error, a websocket
        closed): the session is over if that was the attached request. True when it
        ended the session."""
        if receiver is not self._receiver:
            return False
        receiver.done = True
        self._receiver = None
        self._expire()
        return True

    # -- the server's side

    def send(self, message: str, now: Now) -> bool:
        """Queue one message (encoded here); False when the session is not open."""
        return self.send_encoded((encode_message(message),), now)

    def send_encoded(self, encoded: Sequence[bytes], now: Now) -> bool:
        """Queue messages already encoded by ``framing.encode_message`` (a body shared
        by many sessions, escaped once); they go out in one ``a`` frame when they can.
        False (nothing queued) when the session is not open."""
        if not self.is_open:
            return False
        if not encoded:
            return True
        self._queue.extend(encoded)
        self._queued_bytes += sum(map(len, encoded))
        receiver = self._receiver
        if receiver is not None and self._opened and self._close is None:
            # the usual case, written out: one ``a`` frame of what is queued
            queue = self._queue
            self._queue = []
            self._queued_bytes = 0
            self._write(receiver, array_frame(queue), now)
            return True
        self._flush(now)
        return True

    def close(self, now: Now, code: int = 3000, reason: str = "Go away!") -> bool:
        """Close: what is queued goes first, then ``c[code,"reason"]``, to this and every
        later request. False when already closed or expired."""
        if not self.is_open:
            return False
        self._close = GO_AWAY if (code, reason) == (3000, "Go away!") else close_frame(code, reason)
        self._flush(now)
        return True

    # -- the client's side

    def receive(self, payload: bytes | str, now: Now) -> int:
        """An ``xhr_send`` body: its messages go to the handler (none when the session
        is closed); how many there were.

        Raises:
            framing.PayloadError: the body is empty or not a JSON array of strings (the
                driver answers 500 with its ``message``).
        """
        return self._deliver(decode_payload(payload), now)

    def receive_websocket(self, data: bytes | str, now: Now) -> int:
        """One ``websocket`` transport message: its messages go to the handler.

        Raises:
            framing.PayloadError: not JSON; the driver closes the websocket with
                ``framing.BROKEN_FRAMING`` and aborts the session.
        """
        return self._deliver(decode_websocket(data), now)

    def _deliver(self, messages: list[str], now: Now) -> int:
        if self.is_open:
            handler = self.handler
            for message in messages:
                handler.receive_text(message, now)
        return len(messages)

    # -- time

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` is next due (monotonic seconds), or None."""
        if self.expired:
            return None
        if self._receiver is not None:
            return self._heartbeat_at
        if self._detached_at is not None:
            return self._detached_at + self._options.disconnect_delay_s
        return None

    def handle_timer(self, now: Now) -> None:
        """Beat to an attached request, or expire a session left without one, when
        ``now.mono`` has reached the deadline (early or late calls are fine)."""
        if self.expired:
            return
        receiver = self._receiver
        if receiver is not None:
            due = self._heartbeat_at
            if due is not None and now.mono >= due:
                self._write(receiver, HEARTBEAT, now)
        elif (
            self._detached_at is not None
            and now.mono >= self._detached_at + self._options.disconnect_delay_s
        ):
            self._expire()

    # -- inside

    def _frames(self) -> Iterator[bytes]:
        """The frames due, in order, each taken as it is yielded."""
        while True:
            if not self._opened:
                self._opened = True
                yield OPEN
            elif self._queue:
                queue = self._queue
                self._queue = []
                self._queued_bytes = 0
                yield array_frame(queue)
            elif self._close is not None:
                yield self._close
                return
            else:
                return

    def _flush(self, now: Now) -> None:
        receiver = self._receiver
        if receiver is None:
            return
        for frame in self._frames():
            self._write(receiver, frame, now)
            if frame is self._close:
                self._end(receiver, now)
            if receiver.done:
                return

    def _write(self, receiver: Receiver, frame: bytes, now: Now) -> None:
        receiver._write(frame)
        self._heartbeat_at = now.mono + self._options.heartbeat_s
        transport = receiver.transport
        if not transport.streaming or (
            transport.limited and receiver.sent >= self._options.response_limit
        ):
            self._end(receiver, now)

    def _end(self, receiver: Receiver, now: Now) -> None:
        receiver.done = True
        if receiver is self._receiver:
            self._receiver = None
            self._detached_at = now.mono
            self._heartbeat_at = None

    def _expire(self) -> None:
        self.expired = True
        self._queue = []
        self._queued_bytes = 0
        self._detached_at = None
        self._heartbeat_at = None


class SockJSSessions:
    """The sessions of one SockJS endpoint, by session id (the server segment is
    ignored). Pure: the driver opens, finds and sweeps with ``now``."""

    __slots__ = ("_options", "_sessions")

    def __init__(self, options: SockJSOptions | None = None) -> None:
        self._options = options if options is not None else SockJSOptions()
        self._sessions: dict[str, SockJSSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> SockJSSession | None:
        """The live session of that id (None when there is none, or it expired)."""
        session = self._sessions.get(session_id)
        if session is None or session.expired:
            return None
        return session

    def open(self, session_id: str, handler: MessageHandler, now: Now) -> SockJSSession:
        """A new session (a receiving request named an id with no live session).

        Raises:
            ValueError: a live session already has that id.
        """
        if self.get(session_id) is not None:
            raise ValueError(f"session {session_id!r} is live")
        session = SockJSSession(session_id, handler, now, self._options)
        self._sessions[session_id] = session
        return session

    def expire(self, now: Now) -> list[SockJSSession]:
        """Forget the sessions over by ``now``: aborted ones, and those left without a
        receiving request for the disconnect delay. Returns them (the driver releases
        what their handlers held). Sessions with a request attached are not touched
        (their request's driver runs their heartbeat)."""
        gone: list[SockJSSession] = []
        for session_id, session in list(self._sessions.items()):
            if session.receiver is None:
                session.handle_timer(now)
            if session.expired:
                del self._sessions[session_id]
                gone.append(session)
        return gone

    def next_deadline(self) -> float | None:
        """The earliest time a session without a request expires (None when none); a
        session already over (its client went away: ``abort``) is due at once, so that
        the next sweep forgets it even when no other session is waiting to expire."""
        deadlines: list[float] = []
        for s in self._sessions.values():
            if s.expired:
                return float("-inf")
            if s.receiver is None and (d := s.next_deadline()) is not None:
                deadlines.append(d)
        return min(deadlines, default=None)
