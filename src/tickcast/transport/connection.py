"""Connection: the one driver that runs a sans-I/O session over a FrameSocket.

Rules: thin I/O. It feeds client messages to the session, hands the session's commands
to its front, queues outbound items in the connection's Outbox and lets the Pump decide
when to write. It never awaits per outbound message: a batch is one socket write (an
array frame, or many frames joined). The protocol decisions live in the session; the
queueing decisions in the Outbox; the slow-client verdict here, because only the
connection sees both the outbox and the socket.

A slow client is one that does not take what is written to it, never one that the
gateway itself could not serve in time:

- The socket is *blocked* while it will take no more (the transport's buffer is above its
  high-water mark: the kernel's send buffer is full because the peer does not read).
- When reliable data arrives and the socket has been blocked for ``slow_timeout_s`` (not
  counting the time the event loop itself was stalled, ``Pump.stalled_s``), the client is
  slow.
- When the outbox is over its budget (items or bytes) and the socket is writable, the
  backlog is the gateway's own lag: the outbox is written out at once instead of at the
  end of its window. Over budget while the socket has been blocked since an earlier pass,
  the client is slow.
- On the verdict nothing more is queued or written for the client; the close frame goes
  behind what the socket already holds (never cutting a frame), and the socket aborts
  only if the peer stops taking data (``FrameSocket.close``).

Time is the pump's clock (``tickcast.clock``, injected into the node's ``Pumps``): its
monotonic seconds for every deadline (the outbox window, the slow-client rule, the
session's timers, set with ``call_later`` from the delay) and its wall seconds only for
stamps (the session's replies, a delivery's latency from the item's stamp). It reads no
clock of its own: what the hub delivers comes with its pass's ``now``; ``queue``,
``answer`` and ``flush_now`` read the clock once each.

A bug is contained to its connection: when the hub's delivery to it raised (``fault``), or
its session, its front's command handler or a timer raised, the failure is reported to the
pump's ``Faults`` (``"subscriber"``, ``"command"``, ``"timer"``) and the connection is
closed with 1011: its stream may have lost an item, and nothing is lost silently. The
exception never leaves a loop callback, and the other connections go on.

Batch 0 sends every update while the client takes its data: a connection of window 0
keeps its outbox from conflating (``Outbox.conflating`` False), so when an update finds
its key's previous value still pending (``SUPERSEDES``), the pending batch is written
first (``early_writes``) and the update queued after it. One early write per fan-out
pass (one published batch, its ``now``): after it, the pass conflates. A gateway behind
(its last window-0 pass ran out of its time slice, ``Pump.behind``) makes no early write
at all: it thins its quotes instead of multiplying its writes. A connection whose socket
refuses data conflates too, until it drains; a rated key and a degraded client always
do (the outbox never answers ``SUPERSEDES`` for them).

Per-topic rates (``limit_rate``, the market feed's ``max_rate``): the outbox's
``RateGate`` holds back the latest value of a rated key whose interval has not passed
(``hub/rategate.py`` argues the design). The pump's FIFO stays as it is (its deadlines
are all ``now + window``); a held value is due at its own time, so a connection that
holds one arms one loop timer for the earliest (``_gate_timer``), as it does for its
session's deadlines, and flushes what is due when it fires. While the socket is blocked
the held values keep conflating, and go out when it drains. A connection with no rate
arms nothing.

Three parts live in modules of their own, the same object: the inbound side (client
messages to the session, its commands and timers) is ``SessionSteps`` in
``transport/inbound.py``; degrade before disconnecting (``degrade_with``, the market
feed) is ``DegradeSteps`` in ``transport/degrading.py``; per-subscription heads (STOMP)
are ``HeadedConnection``, a subclass, in ``transport/headed.py``. ``Degrading``,
``Receive``, ``HeadedConnection`` and ``Heads`` are importable from here as before.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Callable
from typing import Any, Final

from tickcast.clock import Clock
from tickcast.closecodes import CloseCode, info
from tickcast.hub.degrade import Action, Degrade
from tickcast.hub.outbox import SUPERSEDES, Held, Outbox, Overflow, Supersedes
from tickcast.hub.pump import Pump
from tickcast.observability.stats import Stats
from tickcast.protocols.base import Command, Session
from tickcast.protocols.stamps import is_stamped, stamped_payloads
from tickcast.protocols.wire import Encoded
from tickcast.protocols.wsframe import text_frame
from tickcast.transport.degrading import DegradeSteps, Degrading, size_text
from tickcast.transport.inbound import Receive as Receive  # re-exported, as before
from tickcast.transport.inbound import SessionSteps
from tickcast.transport.socket import FrameSocket, ItemSink

#: What ``Outbox.put`` answers once it conflates (never ``SUPERSEDES``).
Verdict = Overflow | Held | None

log = logging.getLogger("tickcast.connection")

#: Default of ``Connection.slow_timeout_s`` (the ``slow_client_timeout_s`` setting).
DEFAULT_SLOW_TIMEOUT_S = 2.0
#: Bytes one write hands the socket; a flush writes more only while the socket takes it,
#: so what waits in the transport (and ahead of any close frame) stays about this much.
WRITE_CHUNK_BYTES: Final = 64 * 1024
#: A reader whose backlog is the gateway's own is kept past its outbox budget, up to this
#: many times the budget; beyond it, it is closed (1013, "gateway overloaded").
OVERLOAD_FACTOR: Final = 4


class Connection(SessionSteps, DegradeSteps):
    """One client connection: a hub subscriber and a pump writer.

    Args:
        sock: the socket to write to.
        session: the protocol state machine (``protocols.base.Session``).
        wire: codec name for hub fan-out to this connection.
        array: write each batch of data items as one JSON array frame.
        outbox: this connection's bounded queue.
        pump: the flush scheduler of the outbox's window (``Pumps.get(outbox.window_s)``);
            its clock is the connection's.
        stats: gateway counters.
        on_commands: the front's handler for the session's commands; it answers them
            through ``answer``.
        slow_timeout_s: how long the socket may stay blocked while reliable data waits
            before the client is closed as slow (1013); see the module docstring.
    """

    __slots__ = (
        "_blocked_since",
        "_blocked_stall",
        "_conflates",
        "_degrade_at",
        "_degrade_soon",
        "_degrade_timer",
        "_degraded",
        "_degrading",
        "_early_at",
        "_fault",
        "_fault_at",
        "_flushes",
        "_gate_at",
        "_gate_timer",
        "_plain",
        "_stamped",
        "_stepping",
        "_timer",
        "array",
        "clock",
        "close_code",
        "closing",
        "conflate_interval_s",
        "degrade",
        "latency",
        "on_close",
        "on_commands",
        "outbox",
        "pump",
        "session",
        "slow_timeout_s",
        "sock",
        "stats",
        "suspended",
        "wire",
    )

    def __init__(
        self,
        *,
        sock: FrameSocket,
        session: Session,
        wire: str,
        array: bool,
        outbox: Outbox[Encoded],
        pump: Pump,
        stats: Stats,
        on_commands: Callable[[Connection, list[Command]], None],
        on_close: Callable[[Connection], None],
        latency: Callable[[float], None] | None = None,
        slow_timeout_s: float = DEFAULT_SLOW_TIMEOUT_S,
    ) -> None:
        if pump.window_s != outbox.window_s:
            raise ValueError(
                f"the pump of a {pump.window_s} s window cannot flush an outbox of "
                f"{outbox.window_s} s (Pumps.get(outbox.window_s))"
            )
        self.sock = sock
        self.session = session
        self.wire = wire
        self._stamped = is_stamped(wire)  # a front's stamps=1 (protocols/stamps.py)
        self.array = array
        # neither stamped nor array: a raw socket gets the items' own frames (``flush``)
        self._plain = not self._stamped and not array
        self.outbox = outbox
        # window 0: every update while the client takes its data (module docstring)
        self._conflates = outbox.conflating = outbox.window_s > 0
        self._early_at = -1.0  # the fan-out pass (its now) of the last early write
        self.pump = pump
        self.clock: Clock = pump.clock
        self.stats = stats
        self.on_commands = on_commands
        self.on_close = on_close
        self.latency = latency
        self.slow_timeout_s = slow_timeout_s
        self.closing = False
        self.close_code: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        # the timer for the earliest value held back by a rate, and when it is due
        self._gate_timer: asyncio.TimerHandle | None = None
        self._gate_at = 0.0
        self._flushes = 0  # writes, modulo 8: the latency is sampled on one in eight
        # Since when (monotonic) the socket has refused more data, and the loop's
        # cumulative stall time then; None while it takes data.
        self._blocked_since: float | None = None
        self._blocked_stall = 0.0
        # degrade before disconnecting (``degrade_with``); None: closed at the budget
        self.degrade: Degrade | None = None
        self._degrading: Degrading | None = None
        self.conflate_interval_s = 0.5
        # suspended reliable streams: key -> where each is (what ``Degrading`` keeps:
        # the topic, the position its stream got to, how much of it was replayed)
        self.suspended: dict[str, Any] = {}
        self._degrade_timer: asyncio.TimerHandle | None = None
        self._degrade_at = 0.0
        self._degrade_soon = False
        self._stepping = False
        # the machine's ``degraded``, as of its last move: only this connection moves it
        # (observe, close), and the write path reads this instead of the machine
        self._degraded = False
        # the last at-fault verdict and the pass it was made in (the kernel is asked once
        # a pass at most, however many updates that pass delivers)
        self._fault = False
        self._fault_at = -1.0
        sock.on_writable = self._on_writable

    # -- hub.Subscriber

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        """Queue ``item`` at ``now`` (monotonic: the publish pass's, or the clock's)."""
        if self.closing:
            return
        suspended = self.suspended
        if suspended and key is None and item.topic in suspended:
            # a suspended stream: not queued (its degraded message said from where), but
            # a client that takes nothing at all is still evicted in bounded time
            self.stats.suspended_updates += 1
            if self._blocked_since is not None and self._stalled(now):
                self._close_stalled(f"{self.slow_timeout_s:.1f} s without taking data", now)
            return
        outbox = self.outbox
        was_empty = outbox.deadline is None  # nothing pending (cheaper than len)
        overflow = outbox.put(item, now, key)
        if overflow is not None:
            if overflow is SUPERSEDES:  # window 0, the client taking its data
                was_empty, overflow = self._write_first(item, key, now)
            if isinstance(overflow, Held):  # a rated key's value, held back: due at its own time
                self._arm_gate(now)
                return
            if isinstance(overflow, Overflow):
                if self._blocked_since is None:
                    # The socket takes data: write the backlog out now, not at the window's
                    # end (it was the gateway that fell behind, in one burst).
                    self.stats.write_throughs += 1
                    self.flush(now, force=True)
                elif self._blocked_since < now and self._peer_slow():
                    # past the hard mark (the budget) while the client does not take its data
                    degrade = self.degrade
                    if degrade is not None:
                        pending = (overflow.pending + 1, overflow.pending_bytes + item.size)
                        action = degrade.observe(*pending, now, at_fault=True)
                        self._degraded = degrade.degraded
                        if action is Action.CLOSE:
                            self._count(degrade.state)
                    held = size_text(overflow.pending_bytes)
                    taken = f"{overflow.pending} messages ({held}) not taken"
                    self.close_slow(taken)
                    return
                # Blocked by this pass's own writes, or the peer takes what the kernel holds:
                # the backlog is the gateway's, not the client's. Keep it, within a bound.
                if self._beyond_overload_cap():
                    self.close_overloaded()
                    return
                was_empty = outbox.deadline is None
                outbox.put(item, now, key, force=True)  # not HELD: the key was not held above
        elif key is None and self._blocked_since is not None and self._stalled(now):
            self._close_stalled(f"{self._blocked_for(now):.1f} s behind", now)
            return
        if was_empty:
            self.pump.mark(self, now + outbox.window_s)
        degrade = self.degrade
        if (
            degrade is not None
            and self._blocked_since is not None
            and not self._stepping
            and degrade.wants_step(len(outbox), outbox.pending_bytes, now)
        ):
            self._degrade_step(now)

    def _write_first(self, item: Encoded, key: str | None, now: float) -> tuple[bool, Verdict]:
        """``item``'s key has a value pending at window 0 while the client takes its data
        (``SUPERSEDES``): the first time in a fan-out pass (its ``now``), and unless the
        pump is behind, write what is pending, then queue ``item``; else conflate (module
        docstring).
        Returns whether the outbox was empty before ``item`` and ``put``'s verdict."""
        outbox = self.outbox
        if self._early_at != now and not self.pump.behind:
            self._early_at = now
            stats = self.stats
            written = stats.items_out
            self.flush(now, True)
            if stats.items_out != written:  # the socket may have refused it
                stats.early_writes += 1
        was_empty = outbox.deadline is None
        outbox.conflating = True
        verdict = outbox.put(item, now, key)
        outbox.conflating = self._blocked_since is not None  # a socket refusing data: latest
        assert not isinstance(verdict, Supersedes)  # it conflated
        return was_empty, verdict

    def _close_stalled(self, why: str, now: float) -> None:
        """The slow-client time rule closes the client (1013); a degraded one's machine
        goes to CLOSED and is counted as such."""
        degrade = self.degrade
        if degrade is not None and degrade.degraded:
            degrade.close(now)
            self._degraded = degrade.degraded
            self._count(degrade.state)
            why = f"{why}, degraded"
        self.close_slow(why)

    def _blocked_for(self, now: float) -> float:
        """How long the socket has refused data, the loop's own stalls not counted."""
        assert self._blocked_since is not None
        stall = self.pump.stalled(now)
        return now - self._blocked_since - (stall - self._blocked_stall)

    def _stalled(self, now: float) -> bool:
        """The slow-client time rule: the socket has refused data for ``slow_timeout_s``
        and the peer does not take what the kernel holds. When the peer does take it (the
        gateway is slow to write, not the peer to read), the count starts again."""
        if self._blocked_for(now) <= self.slow_timeout_s:
            return False
        if self._peer_slow():
            return True
        self._blocked_since, self._blocked_stall = now, self.pump.stalled(now)
        return False

    def fault(self) -> None:
        """The hub's ``deliver`` to this connection raised (reported by the hub): its stream
        lost an item, so it is closed with 1011 (the client may reconnect and resume)."""
        self._close_internal_error()

    def _failed(self, where: str, exc: Exception) -> None:
        """Something this connection drives raised: report it and close with 1011."""
        self.pump.faults.report(where, exc, wire=self.wire)
        self._close_internal_error()

    def _close_internal_error(self) -> None:
        if self.closing:
            return
        self.outbox.clear()
        self.close(CloseCode.INTERNAL_ERROR)

    def _peer_slow(self) -> bool:
        """The kernel holds data the peer has not let it send (or the socket cannot tell,
        and a blocked socket is taken at its word)."""
        limited = self.sock.peer_limited()
        return limited is None or limited

    def _beyond_overload_cap(self) -> bool:
        outbox = self.outbox
        if len(outbox) >= OVERLOAD_FACTOR * outbox.max_items:
            return True
        return bool(outbox.max_bytes) and outbox.pending_bytes >= OVERLOAD_FACTOR * outbox.max_bytes

    # -- pump.Writer

    def due_at(self) -> float | None:
        return self.outbox.deadline  # next_flush(), without its call

    def flush(self, now: float, force: bool) -> None:
        """Write what is due, a chunk at a time while the socket takes it; the rest stays
        queued (and conflating) until the socket drains (``_on_writable``). ``force`` is
        not keyword-only: the pump passes it by position (3.11's fast call path)."""
        if self.closing:
            return
        sock = self.sock
        if not sock.writable:
            self._check_blocked(now)
            return
        outbox = self.outbox
        while True:
            items = outbox.flush(now, force, WRITE_CHUNK_BYTES)  # (now, force, max_bytes)
            if not items:
                return
            if self._plain and sock.raw:
                # the usual write (``_write``'s last case, inlined: one call less a write):
                # the items' frames as they are; one item (most writes at batch 0), no join
                count = len(items)
                stats = self.stats
                stats.items_out += count
                stats.frames_out += count
                writable: bool | None = sock.write_frames(
                    items[0].frame if count == 1 else b"".join([item.frame for item in items])
                )
                flushes = self._flushes = (self._flushes + 1) & 7  # a small int: no alloc
                if flushes == 1:
                    self._sample(items)
            else:
                writable = self._write(items)
            if self._degraded:  # the machine's degraded (cached: one object less a write)
                self._recover_soon()
            if outbox.deadline is None:
                return  # all of it written (the usual case: one write per batch)
            if writable is None:  # more to write, and the socket framed the items: ask it
                writable = sock.writable
            if not writable:
                self._check_blocked(now)
                return
            force = True  # the rest of a due batch is due too

    def _check_blocked(self, now: float) -> None:
        """Note when the socket started refusing data (cleared by ``_on_writable``)."""
        self.outbox.conflating = True  # a client behind gets the latest values
        if self._blocked_since is None and not self.closing:
            self._blocked_since = now
            self._blocked_stall = self.pump.stalled(now)

    def _write(self, items: list[Encoded]) -> bool | None:
        """Write one chunk that is not plain frames on a raw socket (``flush`` writes
        those itself): stamped, array frames, or items a socket frames. Returns what
        ``write_frames`` said of the socket after the write, or None when the socket was
        given texts or items (``flush`` asks it then, if it has more to write)."""
        sock = self.sock
        stats = self.stats
        count = len(items)
        stats.items_out += count
        writable: bool | None = None
        if self._stamped:  # a stamped wire: this write's time in every data message
            payloads = stamped_payloads(items, self.clock.wall(), array=self.array)
            stats.frames_out += len(payloads)
            if sock.raw:
                writable = sock.write_frames(b"".join([text_frame(p) for p in payloads]))
            else:
                sock.send_texts(payloads)
        elif self.array:
            payloads = _array_payloads(items)
            stats.frames_out += len(payloads)
            if sock.raw:
                writable = sock.write_frames(b"".join([text_frame(p) for p in payloads]))
            else:
                sock.send_texts(payloads)
        else:  # plain items on a socket that frames them (``flush`` writes raw ones)
            stats.frames_out += count
            if isinstance(sock, ItemSink):
                sock.send_items(items)
            else:
                _send_framed_by_socket(sock, items)
        flushes = self._flushes = (self._flushes + 1) & 7
        if flushes == 1:
            self._sample(items)
        return writable

    def _sample(self, items: list[Encoded]) -> None:
        """One write in eight: the latency of its last item, from its event time."""
        latency = self.latency
        ts = items[-1].ts
        if latency is not None and ts:
            latency(self.clock.wall() - ts)

    def _on_writable(self) -> None:
        self._blocked_since = None
        outbox = self.outbox
        outbox.conflating = self._conflates
        if outbox.next_flush() is not None or outbox.next_release() is not None:
            now = self.clock.monotonic()
            self.flush(now, force=True)
            self._arm_gate(now)

    # -- per-topic rates

    def limit_rate(self, key: str, max_rate: float | None) -> None:
        """At most ``max_rate`` messages a second on conflation key ``key``, always the
        latest value (None: no limit again; the value held, if any, is queued at once).
        A new rate replaces the old one."""
        outbox = self.outbox
        if self.closing or (max_rate is None and not outbox.rated(key)):
            return
        now = self.clock.monotonic()
        was_empty = not len(outbox)
        if outbox.set_rate(key, max_rate, now) and was_empty:
            self.pump.mark(self, now + outbox.window_s)
        self._arm_gate(now)  # a higher rate may make the held value due sooner

    def _arm_gate(self, now: float) -> None:
        """Have ``_on_gate`` run when the earliest held value is due (one timer)."""
        due = self.outbox.next_release()
        if due is None or self.closing:
            return
        timer = self._gate_timer
        if timer is not None:
            if self._gate_at <= due:
                return
            timer.cancel()
        self._gate_at = due
        self._gate_timer = self.pump.loop.call_later(max(0.0, due - now), self._on_gate)

    def _on_gate(self) -> None:
        """A held value is due: write it (with whatever else is pending), then wait for
        the next. While the socket is blocked, ``_on_writable`` does this instead."""
        self._gate_timer = None
        if self.closing:
            return
        now = self.clock.monotonic()
        try:
            self.flush(now, force=False)
        except Exception as exc:  # never out of a loop callback: close this one, 1011
            self._failed("timer", exc)
            return
        if self.sock.writable:
            self._arm_gate(now)

    # -- queueing from the front

    def queue(self, item: Encoded, key: str | None = None) -> None:
        """Queue one item for this connection only (snapshots, replays, replies)."""
        self.deliver(item, key, self.clock.monotonic())

    def flush_now(self) -> None:
        """Write everything queued now (after a client command, so replies are prompt)."""
        self.flush(self.clock.monotonic(), force=True)

    def close_slow(self, why: str) -> None:
        """The client does not take what is written to it: close it with 1013.

        Nothing more is queued or written for it; what the socket already holds goes out
        before the close frame. Called from inside the hub's fan-out loop, so
        unsubscribing is deferred (to ``run``'s end).
        """
        if self.closing:
            return
        self.stats.slow_closes += 1
        dropped = self.outbox.clear()
        log.warning("closing slow client: %s", why, extra={"pending": dropped})
        self.close(CloseCode.TRY_AGAIN_LATER, f"slow consumer: {why}", on_abort=self._aborted)

    def _aborted(self) -> None:
        self.stats.slow_aborts += 1

    def close_overloaded(self) -> None:
        """The client reads, but the gateway has not managed to write to it for so long
        that ``OVERLOAD_FACTOR`` times its budget waits: close it (1013) rather than
        let memory grow without bound. A last resort, counted on its own."""
        if self.closing:
            return
        self.stats.overload_closes += 1
        outbox = self.outbox
        why = (
            f"gateway overloaded: {len(outbox)} messages ({size_text(outbox.pending_bytes)}) queued"
        )
        outbox.clear()
        log.warning("closing a reader the gateway cannot keep up with: %s", why)
        self.close(CloseCode.TRY_AGAIN_LATER, why)

    def close(
        self,
        code: CloseCode,
        reason: str | None = None,
        *,
        on_abort: Callable[[], None] | None = None,
    ) -> None:
        if self.closing:
            return
        self.closing = True
        self.close_code = int(code)
        self.sock.close(code, reason or info(code).reason, on_abort=on_abort)

    # -- the end

    def finished(self, close_code: int | None = None) -> None:
        """The client is gone (or closed): stop the timers, drop what is queued and let
        the front release what the connection held (once; ``run`` calls it at its end).
        ``close_code``: what the client's side ended with, when nothing closed it."""
        if self.close_code is None and close_code is not None:
            self.close_code = close_code
        if self.closing and self.on_close is _done:
            return
        self.closing = True
        for timer in (self._timer, self._gate_timer, self._degrade_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._gate_timer = self._degrade_timer = None
        self.suspended = {}
        self.stats.conflated_closed += self.outbox.conflated
        self.outbox.clear()
        on_close, self.on_close = self.on_close, _done
        on_close(self)


def _done(connection: Connection) -> None:
    """``on_close`` once it has been called (``finished`` runs it once)."""


#: What an item costs in an outbox: its message's length in bytes (head and payload),
#: ``Encoded.size`` read in C (the outbox asks once per put: no Python frame).
payload_size: Final[Callable[[Encoded], int]] = operator.attrgetter("size")


def _send_framed_by_socket(sock: FrameSocket, items: list[Encoded]) -> None:
    """Without raw frames (compression, plain ASGI): runs of text go in one call."""
    texts: list[bytes] = []
    for item in items:
        if item.binary:
            if texts:
                sock.send_texts(texts)
                texts = []
            sock.send_bytes(item.message)
        else:
            texts.append(item.message)
    if texts:
        sock.send_texts(texts)


def _array_payloads(items: list[Encoded]) -> list[bytes]:
    """Group runs of data items into JSON arrays; control replies stay on their own."""
    payloads: list[bytes] = []
    run: list[bytes] = []
    for item in items:
        if item.control:
            if run:
                payloads.append(b"[" + b",".join(run) + b"]")
                run = []
            payloads.append(item.message)
        else:
            run.append(item.message)
    if run:
        payloads.append(b"[" + b",".join(run) + b"]")
    return payloads


def __getattr__(name: str) -> Any:
    """``HeadedConnection`` and ``Heads``, importable from here as before they moved to
    ``transport/headed.py`` (which imports this module: read on first use, no cycle)."""
    if name in ("HeadedConnection", "Heads"):
        from tickcast.transport import headed

        return getattr(headed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
