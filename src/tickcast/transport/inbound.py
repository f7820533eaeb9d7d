"""The connection's inbound side: client messages to its session, and back.

``Connection`` (``transport/connection.py``) inherits ``SessionSteps``: client messages
(``run``'s receive loop, or ``receive_text``/``receive_bytes`` from a transport that is
not one WebSocket) go to the session with the clock's ``now``; what the session then
produced is applied (``_apply``): its replies queued, its commands handed to the front
(``on_commands``, which answers through ``answer``), everything queued written at once
(``flush_now``: replies are prompt), its close carried out, and its next deadline armed
as a loop timer (``call_later`` from the delay, on the pump's loop). A session, a
command handler or a timer that raises is reported (``"command"``, ``"timer"``) and
closes the connection with 1011 (``Connection._failed``); the exception never leaves a
loop callback. The mixin has no state of its own: its fields are ``Connection``'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from tickcast.clock import Clock
    from tickcast.closecodes import CloseCode
    from tickcast.hub.pump import Pump
    from tickcast.observability.stats import Stats
    from tickcast.protocols.base import Command, Reply, Session
    from tickcast.protocols.wire import Encoded
    from tickcast.transport.connection import Connection

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class SessionSteps:
    """``Connection``'s inbound steps (module docstring); a mixin with no state of its own."""

    if not TYPE_CHECKING:  # no fields of its own (mypy checks its writes to Connection's)
        __slots__ = ()
    else:  # what it uses of the Connection it is part of
        session: Session
        clock: Clock
        stats: Stats
        pump: Pump
        closing: bool
        close_code: int | None
        on_commands: Callable[[Connection, list[Command]], None]
        _timer: asyncio.TimerHandle | None

        def deliver(self, item: Encoded, key: str | None, now: float) -> None: ...
        def flush_now(self) -> None: ...
        def finished(self, close_code: int | None = None) -> None: ...
        def close(self, code: CloseCode, reason: str | None = None) -> None: ...
        def _failed(self, where: str, exc: Exception) -> None: ...

    async def run(self, receive: Receive) -> None:
        """Read client messages until the socket closes."""
        clock = self.clock
        self._process()
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    if self.close_code is None:
                        self.close_code = int(message.get("code", 1005))
                    break
                if kind != "websocket.receive":
                    continue
                self.stats.client_messages_in += 1
                now = clock.now()
                text = message.get("text")
                try:
                    if text is not None:
                        self.session.receive_text(text, now)
                    else:
                        self.session.receive_bytes(message.get("bytes") or b"", now)
                except Exception as exc:
                    self._failed("command", exc)
                    break
                self._process()
                if self.closing:
                    break
        finally:
            self.finished()

    # -- inbound without a receive loop (a transport that is not one WebSocket)

    def start(self) -> None:
        """Apply what the session produced on opening (``run`` does it first)."""
        self._process()

    def receive_text(self, text: str) -> bool:
        """One client text message, as ``run`` handles each: False once the connection
        is closing (the caller then calls ``finished``, as ``run`` does)."""
        if self.closing:
            return False
        self.stats.client_messages_in += 1
        try:
            self.session.receive_text(text, self.clock.now())
        except Exception as exc:
            self._failed("command", exc)
            return False
        self._process()
        return not self.closing

    def receive_bytes(self, data: bytes) -> bool:
        """One client binary message, as ``run`` handles each (``receive_text``'s
        contract: the fast path's ``direct.Attached``)."""
        if self.closing:
            return False
        self.stats.client_messages_in += 1
        try:
            self.session.receive_bytes(data, self.clock.now())
        except Exception as exc:
            self._failed("command", exc)
            return False
        self.poke()
        return not self.closing

    def answer(self, reply: Reply) -> None:
        """Give the session the front's answer to a command, and queue the session's
        words at once: ahead of what the front queues next (a reset before its snapshot).
        A close it decides is carried out by ``poke`` or the end of the command pass."""
        session = self.session
        now = self.clock.now()
        session.answer(reply, now)
        for frame in session.frames_to_send():
            self.deliver(frame, None, now.mono)

    def poke(self) -> None:
        """Apply what the session produced outside a client message (an async answer)."""
        if not self.closing:
            self._process()

    def _process(self, where: str = "command") -> None:
        """Apply what the session produced; a failure is reported under ``where``."""
        try:
            self._apply()
        except Exception as exc:
            self._failed(where, exc)

    def _apply(self) -> None:
        """Apply what the session produced: replies, commands, timers, close."""
        session = self.session
        frames = session.frames_to_send()
        if frames:
            now = self.clock.monotonic()
            for frame in frames:
                self.deliver(frame, None, now)
        commands = session.commands_received()
        if commands:
            self.on_commands(cast("Connection", self), commands)
        self.flush_now()
        if session.close_reason is not None:
            self.close(session.close_reason)
            return
        self._schedule_timer()

    def _schedule_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.session.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self.clock.monotonic())
            self._timer = self.pump.loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closing:
            return
        try:
            self.session.handle_timer(self.clock.now())
        except Exception as exc:  # never out of a loop callback: close this one, 1011
            self._failed("timer", exc)
            return
        self._process("timer")
