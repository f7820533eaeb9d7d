"""FeedPolicy: which providers run, which one feeds the hub, and when that changes.

Rules: pure. The driver (``supervisor.py``) reports what happened (a provider's session
came up, delivered data, failed) with ``now``, calls ``on_timer`` at ``next_deadline()``,
then starts and stops provider tasks to match ``should_run()`` and publishes each
``Transition``. No vendor is named here.

The providers are tried in the configured order of preference. A cursor marks the one
relied on; the ones before it are recovering (they run, but their data is not used),
the ones after it are stopped::

    alpaca (recovering)   polygon (cursor, active)   simulator (stopped)

- **Failover**: when the provider at the cursor fails, goes stale (no data for
  ``stale_s`` while the market is open) or does not come up within ``stale_s``, the
  cursor moves to the next usable provider, which starts at once.
- **Failback**: a preferred provider that has delivered data for ``failback_s`` (and
  is not silent) takes the cursor back, and every provider after it is stopped. A
  provider whose session is up but sends nothing never takes over from a working one.
- **Back-off**: a failed provider is restarted after capped exponential back-off with
  full jitter; after a connection-limit refusal it waits at least ``limit_backoff_s``, so
  a limit never turns into a reconnect storm. Its attempt count resets once it has stayed
  up for ``stable_s``.
- **Terminal**: a provider whose credentials are refused is disabled for good (never
  hammered). When every provider is disabled, ``exhausted`` is True and the driver stops.
- "Up" means the upstream session is established (subscribed) or data arrived: a
  healthy feed may be quiet while its market is closed. Silence is measured from the
  later of the last data and the market's opening (while the market is closed,
  ``on_timer`` moves every provider's last data forward), so a quiet close is not a
  failure at the next open. Providers named in ``unwatched`` (a replay, whose gaps are
  recorded data) are never judged silent.
- Every deadline ``next_deadline`` gives is tested by ``on_timer`` with the same
  expression, so a deadline always leads to its action (no float mismatch, no spin).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from typing import Final, NamedTuple

from tickcast.providers.calendar import MarketCalendar
from tickcast.retry import Backoff

#: Seconds a provider must stay up before its back-off attempt count resets.
STABLE_S: Final = 30.0


class State(enum.StrEnum):
    STOPPED = "stopped"  # not needed: after the cursor
    STARTING = "starting"  # running, session not up yet
    UP = "up"  # session up or data flowing
    BACKOFF = "backoff"  # failed; restarts at retry_at
    DISABLED = "disabled"  # credentials refused: never restarted


class Failure(enum.Enum):
    TRANSIENT = "transient"
    LIMIT = "limit"
    AUTH = "auth"
    STALE = "stale"


class Transition(NamedTuple):
    """One provider's state change, and the provider feeding the hub after it."""

    provider: str
    state: State
    active: str
    reason: str
    ts: float


class _Provider:
    __slots__ = (
        "attempt",
        "data_since",
        "last_data",
        "name",
        "retry_at",
        "since",
        "state",
        "up_since",
        "watched",
    )

    def __init__(self, name: str, *, watched: bool) -> None:
        self.name = name
        self.watched = watched  # judged for silence (a replay is not: its gaps are data)
        self.state = State.STOPPED
        self.since = 0.0
        self.up_since = 0.0
        self.data_since = 0.0  # first data of this session; 0 = none yet
        self.last_data = 0.0
        self.retry_at = 0.0
        self.attempt = 0

    def stale_at(self, stale_s: float) -> float:
        return self.last_data + stale_s

    def failback_at(self, failback_s: float) -> float:
        """When it may take over: after delivering data for ``failback_s``."""
        return self.data_since + failback_s if self.data_since else float("inf")


class FeedPolicy:
    """Failover, failback, staleness and back-off for an ordered list of providers.

    Args:
        names: provider names, most preferred first.
        calendar: staleness is only judged while this market is open.
        stale_s: silence (or a start that never comes up) that counts as a failure;
            0 disables both checks.
        failback_s: how long a recovered preferred provider must deliver data to take over.
        backoff: the reconnect back-off; ``limit_backoff_s`` the least wait after a
            connection-limit refusal.
        rng: the jitter's random source.
        unwatched: providers never judged silent.
    """

    def __init__(
        self,
        names: Sequence[str],
        calendar: MarketCalendar,
        *,
        stale_s: float,
        failback_s: float,
        backoff: Backoff,
        limit_backoff_s: float,
        rng: random.Random,
        unwatched: frozenset[str] = frozenset(),
    ) -> None:
        if not names or len(set(names)) != len(names):
            raise ValueError(f"provider names must be distinct and non-empty: {names!r}")
        self._order = [_Provider(name, watched=name not in unwatched) for name in names]
        self._by_name = {p.name: p for p in self._order}
        self._calendar = calendar
        self._stale_s = stale_s
        self._failback_s = failback_s
        self._backoff = backoff
        self._limit_backoff_s = limit_backoff_s
        self._rng = rng
        self._cursor = 0
        self.active = ""
        self._announced = ""
        self.failovers = 0
        self.failbacks = 0
        self.transitions: list[Transition] = []

    # -- queries

    def state(self, name: str) -> State:
        return self._by_name[name].state

    def market_open(self, now: float) -> bool:
        """Whether the calendar's market is open at ``now`` (silence is judged then)."""
        return self._calendar.is_open(now)

    @property
    def preferred(self) -> str:
        """The most preferred provider that is not disabled ("" when none is left)."""
        return next((p.name for p in self._order if p.state is not State.DISABLED), "")

    def should_run(self) -> set[str]:
        return {p.name for p in self._order if p.state in (State.STARTING, State.UP)}

    @property
    def exhausted(self) -> bool:
        """Every provider's credentials were refused: nothing can ever feed the hub."""
        return all(p.state is State.DISABLED for p in self._order)

    def take_transitions(self) -> list[Transition]:
        transitions, self.transitions = self.transitions, []
        return transitions

    def next_deadline(self, now: float) -> float | None:
        """When ``on_timer`` has something to decide, at the latest (None: nothing planned).

        Silence is only judged while the market is open, so while it is closed no stale
        deadline is given: the driver should still call ``on_timer`` now and then (say
        every second) to notice the opening.
        """
        deadlines = []
        judge = bool(self._stale_s) and self._calendar.is_open(now)
        for i, p in enumerate(self._order):
            if p.state is State.BACKOFF and i <= self._cursor:
                deadlines.append(p.retry_at)
            elif judge and p.watched and p.state is State.UP:
                deadlines.append(p.stale_at(self._stale_s))
            elif judge and self._may_give_up_start(i, p):
                deadlines.append(p.since + self._stale_s)
            if p.state is State.UP and i < self._cursor:
                deadlines.append(p.failback_at(self._failback_s))
        finite = [d for d in deadlines if d != float("inf")]
        return min(finite) if finite else None

    # -- events

    def start(self, now: float) -> None:
        self._cursor = 0
        self._settle(now, "start")

    def on_up(self, name: str, now: float) -> None:
        """The provider's upstream session is established (authenticated and subscribed)."""
        p = self._by_name[name]
        p.last_data = now
        if p.state is State.STARTING:
            p.up_since = now
            p.data_since = 0.0
            self._set(p, State.UP, now, "session up")
            self._settle(now, "session up")

    def on_data(self, name: str, now: float) -> bool:
        """Data arrived from ``name``; True when it is the active provider's (publish it)."""
        p = self._by_name[name]
        p.last_data = now
        if p.state is State.STARTING:
            self.on_up(name, now)
        if not p.data_since:
            p.data_since = now
        return name == self.active

    def on_failure(self, name: str, failure: Failure, now: float, reason: str) -> None:
        """The provider's run ended (or was judged stale); it backs off or is disabled."""
        p = self._by_name[name]
        if p.state in (State.BACKOFF, State.DISABLED, State.STOPPED):
            return  # already handled (e.g. judged stale, then its task ended)
        if failure is Failure.AUTH:
            self._set(p, State.DISABLED, now, reason)
        else:
            if p.state is State.UP and now - p.up_since >= STABLE_S:
                p.attempt = 0
            delay = self._backoff.delay(p.attempt, self._rng)
            if failure is Failure.LIMIT:
                delay = max(delay, self._limit_backoff_s)
            p.attempt += 1
            p.retry_at = now + delay
            self._set(p, State.BACKOFF, now, f"{reason}; retry in {delay:.1f} s")
        if self._order.index(p) == self._cursor:
            self._advance()
        self._settle(now, reason)

    def on_timer(self, now: float) -> None:
        """Restart providers whose back-off is over; judge silence; fail back."""
        is_open = self._calendar.is_open(now)
        for i, p in enumerate(self._order):
            if not is_open:
                p.last_data = max(p.last_data, now)  # silence starts counting at the open
            if p.state is State.BACKOFF and i <= self._cursor and now >= p.retry_at:
                self._start(p, now, "retry")
            elif not (self._stale_s and is_open):
                continue
            elif p.watched and p.state is State.UP and now >= p.stale_at(self._stale_s):
                self.on_failure(p.name, Failure.STALE, now, f"no data for {self._stale_s} s")
            elif self._may_give_up_start(i, p) and now >= p.since + self._stale_s:
                self._advance()  # keep it trying, but rely on the next one meanwhile
        self._settle(now, "timer")

    # -- internals

    def _set(self, p: _Provider, state: State, now: float, reason: str) -> None:
        if p.state is state:
            return
        p.state = state
        p.since = now
        self._refresh_active()
        self._announced = self.active
        self.transitions.append(Transition(p.name, state, self.active, reason, now))

    def _start(self, p: _Provider, now: float, reason: str) -> None:
        self._set(p, State.STARTING, now, reason)

    def _refresh_active(self) -> None:
        current = self._order[self._cursor]
        self.active = current.name if current.state is State.UP else ""

    def _may_give_up_start(self, i: int, p: _Provider) -> bool:
        """The cursor's provider is still starting and a later one could serve."""
        return p.state is State.STARTING and i == self._cursor and self._next_usable() is not None

    def _next_usable(self) -> int | None:
        for i in range(self._cursor + 1, len(self._order)):
            if self._order[i].state is not State.DISABLED:
                return i
        return None

    def _advance(self) -> None:
        following = self._next_usable()
        if following is not None:
            self._cursor = following
            self.failovers += 1

    def _settle(self, now: float, reason: str) -> None:
        # failback: the most preferred provider that has delivered data long enough, or
        # any preferred one that is up while the cursor's provider is not (nothing to lose)
        cursor_up = self._order[self._cursor].state is State.UP
        for i in range(self._cursor):
            p = self._order[i]
            if p.state is State.UP and (not cursor_up or now >= p.failback_at(self._failback_s)):
                self._cursor = i
                self.failbacks += 1
                reason = "failback"
                break
        # a disabled cursor moves on (or, at the end, back to the last usable one)
        if self._order[self._cursor].state is State.DISABLED:
            self._advance()
        for i, p in enumerate(self._order):
            if i > self._cursor:
                if p.state is not State.DISABLED and p.state is not State.STOPPED:
                    p.attempt = 0
                    self._set(p, State.STOPPED, now, reason)
            elif p.state is State.STOPPED:
                self._start(p, now, reason)
        self._refresh_active()
        if self.active != self._announced:
            self._announced = self.active
            cursor = self._order[self._cursor]
            self.transitions.append(Transition(cursor.name, cursor.state, self.active, reason, now))
