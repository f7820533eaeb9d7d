"""Degrade before disconnecting: the connection's side of ``hub/degrade.py``.

Degrade before disconnecting (``degrade_with``; a front whose protocol can say so, the
market feed): the pure machine of ``hub/degrade.py`` is fed the outbox's backlog while the
client is at fault (its socket blocked since an earlier pass, the peer not taking what
the kernel holds). Past the soft mark every conflatable key goes to latest-value
conflation at the degraded rate (``Outbox.conflate_all``); still over it after the
grace, the reliable streams are suspended (``Degrading.suspend``: a ``degraded`` message
each, with the last seq queued; their updates are no longer queued, and counted); once
the backlog is under the low mark (and the hold has passed) they are resumed from the
hub's history (``Degrading.resume``: replay then ``resumed``, or reset, snapshot and
``resumed``), in a loop callback of its own, never inside a fan-out pass. A reliable
stream the client starts while suspended is suspended by its front too
(``suspend_also``). Only past the hard mark (the outbox budget, today's overflow rule)
is the client closed (1013). A client that takes nothing at all for ``slow_timeout_s``
while reliable data waits, or while its reliable streams are suspended, is closed as
before (a dead peer is evicted in bounded time; a degraded one's machine goes to
CLOSED). Every transition is counted (``Stats.degrade_transitions``). Only the
connection moves its machine (``observe``, ``close``; a front reads its ``state``), so it
keeps the machine's ``degraded`` beside its own fields for the write path to read.

``DegradeSteps`` holds that part of ``Connection`` (``transport/connection.py``), which
inherits it: the same object and fields (declared in ``Connection.__slots__``), kept
here so the driver reads as its write path. ``Degrading`` is what a front that can
degrade gives its connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from tickcast.hub.degrade import Action, Degrade, State

if TYPE_CHECKING:
    from tickcast.clock import Clock
    from tickcast.hub.outbox import Outbox
    from tickcast.hub.pump import Pump
    from tickcast.observability.stats import Stats
    from tickcast.protocols.wire import Encoded
    from tickcast.transport.connection import Connection

log = logging.getLogger("tickcast.connection")


class Degrading(Protocol):
    """What a front that can degrade gives its connections (``Connection.degrade_with``):
    it knows the topics, the hub's positions and history and the protocol's words."""

    def suspend(self, connection: Connection) -> tuple[dict[str, Any], list[Encoded]]:
        """Suspend ``connection``'s reliable streams: their keys (``Encoded.topic``) ->
        where each was suspended (opaque to the connection, given back to ``resume``),
        and a ``degraded`` message for each."""

    def resume(
        self,
        connection: Connection,
        suspended: dict[str, Any],
        room: tuple[int, int | None],
    ) -> dict[str, Any]:
        """Queue on ``connection`` what each suspended stream missed (replay, or reset and
        snapshot) and its ``resumed`` message, within ``room`` (items, bytes or None):
        returns the streams whose replay did not fit, each at its new position."""


class DegradeSteps:
    """``Connection``'s degrade steps (module docstring); a mixin with no state of its own."""

    if not TYPE_CHECKING:  # no fields of its own (mypy checks its writes to Connection's)
        __slots__ = ()
    else:  # what it uses of the Connection it is part of
        outbox: Outbox[Encoded]
        pump: Pump
        clock: Clock
        stats: Stats
        closing: bool
        degrade: Degrade | None
        suspended: dict[str, Any]
        conflate_interval_s: float
        _degraded: bool
        _degrading: Degrading | None
        _blocked_since: float | None
        _fault: bool
        _fault_at: float
        _stepping: bool
        _degrade_soon: bool
        _degrade_timer: asyncio.TimerHandle | None
        _degrade_at: float

        _peer_slow: Callable[[], bool]
        due_at: Callable[[], float | None]

        def _failed(self, where: str, exc: Exception) -> None: ...
        def _arm_gate(self, now: float) -> None: ...
        def close_slow(self, why: str) -> None: ...
        def flush(self, now: float, force: bool) -> None: ...

    def degrade_with(
        self, machine: Degrade, degrading: Degrading, *, conflate_interval_s: float
    ) -> None:
        """Degrade this client before closing it (module docstring): ``machine`` decides,
        ``degrading`` (its front) suspends and resumes its reliable streams, and while
        degraded each conflatable key goes out at most once per ``conflate_interval_s``."""
        self.degrade = machine
        self._degraded = machine.degraded
        self._degrading = degrading
        self.conflate_interval_s = conflate_interval_s

    def _at_fault(self, now: float) -> bool:
        """The backlog is the client's doing: its socket has refused data since an
        earlier pass and the peer does not take what the kernel holds."""
        blocked = self._blocked_since
        if blocked is None or blocked >= now:
            return False
        if self._fault_at != now:
            self._fault, self._fault_at = self._peer_slow(), now
        return self._fault

    def _degrade_step(self, now: float) -> None:
        """Feed the machine the backlog until it has nothing more to do; carry out each
        action (a contained failure closes this connection, 1011)."""
        machine = self.degrade
        if machine is None or self.closing or self._stepping:
            return
        self._stepping = True
        try:
            for _ in range(4):  # each action moves the state; a few steps at most
                outbox = self.outbox
                action = machine.observe(
                    len(outbox),
                    outbox.pending_bytes,
                    now,
                    at_fault=self._at_fault(now),
                    suspended=bool(self.suspended),
                )
                if action is None:
                    break
                self._count(machine.state)
                self._carry_out(action, now)
                if self.closing:
                    return
        except Exception as exc:
            self._stepping = False
            self._failed("subscriber", exc)
            return
        finally:
            self._stepping = False
            self._degraded = machine.degraded
        self._arm_degrade(now)

    def _count(self, state: State) -> None:
        transitions = self.stats.degrade_transitions
        transitions[state.value] = transitions.get(state.value, 0) + 1

    def _carry_out(self, action: Action, now: float) -> None:
        outbox = self.outbox
        degrading = self._degrading
        assert degrading is not None
        if action is Action.CONFLATE:
            outbox.conflate_all(self.conflate_interval_s)
            log.info("client degraded: conflating", extra={"pending": len(outbox)})
        elif action is Action.SUSPEND:
            positions, notices = degrading.suspend(cast("Connection", self))
            self._suspend(positions, notices, now)
            log.info(  # counted; a client may go through this often: no warning each time
                "client degraded: %d reliable stream(s) suspended",
                len(positions),
                extra={"pending": len(outbox)},
            )
        elif action is Action.RESUME:
            suspended, self.suspended = self.suspended, {}
            assert self.degrade is not None
            room = self.degrade.room(len(outbox), outbox.pending_bytes)
            left = degrading.resume(cast("Connection", self), suspended, room)
            self.suspended.update(left)
            log.info(
                "client recovering: %d stream(s) resumed, %d to go",
                len(suspended) - len(left),
                len(left),
            )
        elif action is Action.RESTORE:
            was_empty = not len(outbox)
            if outbox.restore(now) and was_empty:
                self.pump.mark(self, now + outbox.window_s)
            self._arm_gate(now)
        else:  # CLOSE
            self.close_slow(f"{len(outbox)} messages ({size_text(outbox.pending_bytes)}) not taken")

    def suspend_also(self, positions: dict[str, Any], notices: list[Encoded]) -> None:
        """Suspend more streams of a client whose streams are suspended (a reliable topic
        it subscribed to meanwhile): ``positions`` and ``notices`` as ``Degrading.suspend``
        gives them; they are resumed with the others."""
        if not self.closing:
            self._suspend(positions, notices, self.clock.monotonic())

    def _suspend(self, positions: dict[str, Any], notices: list[Encoded], now: float) -> None:
        outbox = self.outbox
        self.suspended.update(positions)
        self.stats.degraded_streams += len(positions)
        was_empty = not len(outbox)
        for notice in notices:
            outbox.put(notice, now, None, force=True)
        if was_empty and len(outbox):
            self.pump.mark(self, now + outbox.window_s)

    def _recover_soon(self) -> None:
        """The backlog shrank: look again in a loop callback of its own (never inside a
        fan-out pass, so that a replay cannot repeat what that pass is delivering)."""
        if self._degrade_soon or self.closing:
            return
        self._degrade_soon = True
        self.pump.loop.call_soon(self._on_degrade_soon)

    def _on_degrade_soon(self) -> None:
        self._degrade_soon = False
        if not self.closing:
            self._degrade_step(self.clock.monotonic())

    def _arm_degrade(self, now: float) -> None:
        """Have the machine look again when time alone may move it (grace, hold)."""
        machine = self.degrade
        due = None if machine is None or self.closing else machine.deadline(now)
        timer = self._degrade_timer
        if due is None:
            if timer is not None:
                timer.cancel()
                self._degrade_timer = None
            return
        if timer is not None:
            if self._degrade_at == due:
                return
            timer.cancel()
        self._degrade_at = due
        self._degrade_timer = self.pump.loop.call_later(max(0.0, due - now), self._on_degrade)

    def _on_degrade(self) -> None:
        self._degrade_timer = None
        if not self.closing:
            self._degrade_step(self.clock.monotonic())


def size_text(n: int) -> str:
    """``n`` bytes, short, for a close reason: 8.0 MiB, 512 KiB, 300 B."""
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n >> 10} KiB"
    return f"{n} B"
