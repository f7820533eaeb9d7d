"""Degrade before disconnecting: what a connection does when its client falls behind.

Rules: pure. No asyncio, no clock, no socket: the connection (the driver) feeds the
machine its client's backlog (the outbox's pending items and bytes), ``now`` (monotonic
seconds) and whether the backlog is the client's fault (its socket has refused data
since an earlier pass and the kernel holds data the peer has not taken); the machine
answers with the one action to carry out, and says when time alone could change its
mind (``deadline``).

States, marks and actions::

    NORMAL ──backlog >= soft, client at fault──> CONFLATING            (CONFLATE)
    CONFLATING ──backlog <= low──> NORMAL                               (RESTORE)
    CONFLATING ──still >= soft after grace_s, at fault──> SUSPENDED     (SUSPEND)
    SUSPENDED ──backlog <= low, and hold_s in SUSPENDED──> RECOVERING   (RESUME)
    RECOVERING ──backlog <= low, streams still suspended──> RECOVERING  (RESUME)
    RECOVERING ──backlog <= low, none suspended──> NORMAL               (RESTORE)
    RECOVERING ──backlog >= soft, at fault──> SUSPENDED                 (SUSPEND)
    any state ──past the hard mark, at fault──> CLOSED                  (CLOSE)
    any state ──the driver's time rule (``close``)──> CLOSED

- CONFLATE: every conflatable stream of the client goes to latest-value conflation at
  the degraded rate, whatever rate or batching the client chose (a per-tick, batch-0
  client too); reliable streams go on.
- SUSPEND: the client's reliable streams (trades, bars, signals...) stop being queued;
  each is announced with a ``degraded`` message naming its topic and the last seq
  queued for it (the last the client was given: for a stream being replayed or
  snapshotted when the suspension came, the last of those queued, not the hub's
  latest), so the hole has two known edges. A reliable stream the client subscribes
  to while suspended is suspended too, at its start (after its snapshot, or at its
  resume point), and resumed with the others.
- RESUME: each suspended stream is replayed from the hub's history after that seq, then
  a ``resumed`` message; where history no longer reaches, the protocol's reset and a
  snapshot instead (``plan_resume``). A replay is queued only as far as it fits under
  the soft mark (it must not itself push the client past a mark): a stream whose
  replay did not fit stays suspended at the last seq replayed, and is resumed further
  in the next round, when the backlog is under the low mark again. Conflation stays on
  until every stream is resumed and the replay has drained.
- RESTORE: the client's own rates and batching again.
- CLOSE: the client is closed with 1013, as before this machine existed (the hard mark
  is the outbox budget).

Hysteresis: degrading starts at the soft mark and ends only below the low mark (well
under it), a suspension lasts at least ``hold_s``, and conflation is given ``grace_s``
to bring the backlog under the soft mark before anything is suspended. So a backlog
hovering around one mark never makes the state flap.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import NamedTuple

from tickcast.hub.history import Gap
from tickcast.model.envelope import Envelope, ResumePoint
from tickcast.model.topic import Topic


class State(enum.Enum):
    NORMAL = "normal"
    CONFLATING = "conflating"
    SUSPENDED = "suspended"
    RECOVERING = "recovering"
    CLOSED = "closed"


class Action(enum.Enum):
    CONFLATE = "conflate"
    SUSPEND = "suspend"
    RESUME = "resume"
    RESTORE = "restore"
    CLOSE = "close"


class Marks(NamedTuple):
    """The backlog marks, in items and in bytes (a bytes mark of 0: no byte mark).

    Attributes:
        soft_items, soft_bytes: at or above either, degrading starts (or goes on).
        low_items, low_bytes: at or below both, the client has caught up.
        hard_items, hard_bytes: above either, the client is closed (the outbox budget).
    """

    soft_items: int
    soft_bytes: int
    low_items: int
    low_bytes: int
    hard_items: int
    hard_bytes: int

    @classmethod
    def of_budget(cls, max_items: int, max_bytes: int, soft: float, low: float) -> Marks:
        """Marks as fractions of an outbox budget (``max_bytes`` 0: no byte limit).

        Raises:
            ValueError: not ``0 <= low < soft <= 1``.
        """
        if not 0 <= low < soft <= 1:
            raise ValueError(f"the marks must satisfy 0 <= low < soft <= 1, not {low}, {soft}")
        return cls(
            max(1, int(max_items * soft)),
            int(max_bytes * soft),
            int(max_items * low),
            int(max_bytes * low),
            max_items,
            max_bytes,
        )


class Degrade:
    """One client's degradation state.

    Args:
        marks: the backlog marks.
        grace_s: how long conflating alone may try to bring the backlog under the soft
            mark before the reliable streams are suspended.
        hold_s: the least time a suspension lasts before the client is resumed.

    Attributes:
        state: where the client is now.
        since: when it got there (monotonic seconds).
    """

    __slots__ = ("grace_s", "hold_s", "marks", "since", "state")

    def __init__(self, marks: Marks, *, grace_s: float = 1.0, hold_s: float = 1.0) -> None:
        if grace_s < 0 or hold_s < 0:
            raise ValueError("grace_s and hold_s must be >= 0")
        self.marks = marks
        self.grace_s = grace_s
        self.hold_s = hold_s
        self.state = State.NORMAL
        self.since = 0.0

    @property
    def degraded(self) -> bool:
        """Whether the client is served less than it asked for now."""
        return self.state is not State.NORMAL and self.state is not State.CLOSED

    def over_soft(self, items: int, nbytes: int) -> bool:
        m = self.marks
        return items >= m.soft_items or (m.soft_bytes > 0 and nbytes >= m.soft_bytes)

    def wants_step(self, items: int, nbytes: int, now: float) -> bool:
        """Whether a backlog of ``items`` and ``nbytes`` at ``now`` is worth an
        ``observe`` from the driver: over the soft mark, and not already suspended or
        within a conflation's grace (what ``observe`` would answer with nothing)."""
        state = self.state
        if state is State.SUSPENDED:
            return False
        if state is State.CONFLATING and now < self.since + self.grace_s:
            return False
        return self.over_soft(items, nbytes)

    def below_low(self, items: int, nbytes: int) -> bool:
        m = self.marks
        return items <= m.low_items and (m.hard_bytes == 0 or nbytes <= m.low_bytes)

    def over_hard(self, items: int, nbytes: int) -> bool:
        m = self.marks
        return items > m.hard_items or (m.hard_bytes > 0 and nbytes > m.hard_bytes)

    def observe(
        self, items: int, nbytes: int, now: float, *, at_fault: bool, suspended: bool = False
    ) -> Action | None:
        """The backlog is ``items`` (``nbytes``) at ``now``: the action to carry out now,
        if any (the state has moved). ``at_fault``: the backlog is the client's doing
        (it does not take what is written to it), not the gateway's own lag.
        ``suspended``: some of its streams are still suspended (a replay that did not
        fit in one round).

        Call again after carrying an action out: one call moves one step (CONFLATE can be
        followed at once by SUSPEND when ``grace_s`` is 0).
        """
        state = self.state
        if state is State.CLOSED:
            return None
        if at_fault and self.over_hard(items, nbytes):
            return self._to(State.CLOSED, now, Action.CLOSE)
        if state is State.NORMAL:
            if at_fault and self.over_soft(items, nbytes):
                return self._to(State.CONFLATING, now, Action.CONFLATE)
            return None
        if state is State.CONFLATING:
            if self.below_low(items, nbytes):
                return self._to(State.NORMAL, now, Action.RESTORE)
            if at_fault and now >= self.since + self.grace_s and self.over_soft(items, nbytes):
                return self._to(State.SUSPENDED, now, Action.SUSPEND)
            return None
        if state is State.SUSPENDED:
            if now >= self.since + self.hold_s and self.below_low(items, nbytes):
                return self._to(State.RECOVERING, now, Action.RESUME)
            return None
        # RECOVERING: the replay is queued; the next round of it, or normal, once it
        # drains; suspended again if the client cannot take it
        if at_fault and self.over_soft(items, nbytes):
            return self._to(State.SUSPENDED, now, Action.SUSPEND)
        if self.below_low(items, nbytes):
            if suspended:
                return self._to(State.RECOVERING, now, Action.RESUME)
            return self._to(State.NORMAL, now, Action.RESTORE)
        return None

    def close(self, now: float) -> bool:
        """The client is closed by a rule of the driver's own (a client that takes
        nothing at all for its time limit): CLOSED from any state; False if it was
        closed already."""
        if self.state is State.CLOSED:
            return False
        self._to(State.CLOSED, now, Action.CLOSE)
        return True

    def room(self, items: int, nbytes: int) -> tuple[int, int | None]:
        """What may be queued on a backlog of ``items`` (``nbytes``) before it reaches
        the soft mark, ``(items, bytes)``; bytes None when there is no byte mark. A
        replay's round is cut to it."""
        m = self.marks
        room_bytes = max(0, m.soft_bytes - nbytes) if m.soft_bytes else None
        return max(0, m.soft_items - items), room_bytes

    def deadline(self, now: float) -> float | None:
        """When time alone may move the state (the end of the grace or of the hold) if
        that is after ``now``, else None: the driver observes again then, even if nothing
        else happens (once it has passed, only the backlog moves the state)."""
        if self.state is State.CONFLATING:
            due = self.since + self.grace_s
        elif self.state is State.SUSPENDED:
            due = self.since + self.hold_s
        else:
            return None
        return due if due > now else None

    def _to(self, state: State, now: float, action: Action) -> Action:
        self.state = state
        self.since = now
        return action


class Replay(NamedTuple):
    """Resume a suspended topic: these envelopes (after its last seq), then ``resumed``
    at ``seq`` (the last one replayed, or the seq it was suspended at)."""

    topic: Topic
    envelopes: list[Envelope]
    seq: int


class Reset(NamedTuple):
    """History no longer reaches a suspended topic's last seq: the protocol's reset
    (``gap``), the topic's current value when it has one, then ``resumed``."""

    topic: Topic
    gap: Gap


def plan_resume(
    suspended: Mapping[Topic, ResumePoint],
    resume: Callable[[Topic, ResumePoint], list[Envelope] | Gap],
    held: Callable[[Topic], bool],
) -> list[Replay | Reset]:
    """What resuming each suspended topic takes, in the order they were suspended.

    Args:
        suspended: topic -> the position last queued for it before the suspension.
        resume: the hub's ``resume`` (history after a position, or a ``Gap``).
        held: whether the client still holds a topic (one it dropped meanwhile is not
            resumed).
    """
    plan: list[Replay | Reset] = []
    for topic, point in suspended.items():
        if not held(topic):
            continue
        missed = resume(topic, point)
        if isinstance(missed, Gap):
            plan.append(Reset(topic, missed))
        else:
            plan.append(Replay(topic, missed, missed[-1].seq if missed else point.seq))
    return plan
