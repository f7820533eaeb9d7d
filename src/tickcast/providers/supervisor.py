"""Supervisor: runs the providers FeedPolicy asks for and feeds the hub from the active one.

Rules: the only I/O here is tasks, the clock and logging; every decision is
``failover.FeedPolicy``'s (pure) and every book check is ``book.BookBuilder``'s (pure).
It names no vendor. What a provider's ``run`` raising means:

    UpstreamAuthError   terminal for that provider (disabled, never hammered)
    UpstreamLimitError  connection limit: back off at least ``feed_limit_backoff_s``
    anything else       transient: capped exponential back-off with full jitter
    returning           the upstream ended (a replay without loop): retired

Clients never see a provider change except as a status message: their subscriptions
are to hub topics, which outlive every provider. Each transition is logged, counted and
published as a ``Status`` on ``status.FEED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence

from tickcast.config.groups import FeedSettings
from tickcast.errors import (
    ConfigError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamLimitError,
    UpstreamStale,
)
from tickcast.model.market import FEED, BookUpdate, MarketEvent, Status
from tickcast.observability.stats import Stats
from tickcast.providers.base import EventSink, Provider
from tickcast.providers.book import BookBuilder
from tickcast.providers.calendar import MarketCalendar, calendar_for
from tickcast.providers.deadletter import DeadLetters
from tickcast.providers.failover import Failure, FeedPolicy, State, Transition
from tickcast.retry import Backoff

log = logging.getLogger("tickcast.feed")

#: The longest the supervisor sleeps between checks (to notice a market opening).
MAX_TIMER_S = 1.0


class _ProviderSink:
    """One provider's Sink: checks its books, gates its data on being active.

    Books are checked for every provider that runs, active or not, so that a provider
    taking over has its books ready (``takeover``); each run starts a fresh BookBuilder,
    since a new connection starts over with snapshots.
    """

    __slots__ = ("_books", "_clock", "_name", "_provider", "_supervisor", "events", "last_at")

    def __init__(self, supervisor: Supervisor, provider: Provider) -> None:
        self._supervisor = supervisor
        self._provider = provider
        self._name = provider.name
        self._clock = supervisor.clock
        self._books = BookBuilder()
        self.events = 0  # events received from this provider, ever (active or standby)
        self.last_at = 0.0  # when the last batch arrived (the supervisor's clock); 0: never

    def restart(self) -> None:
        """A new run: forget the books of the previous connection (keep their counts)."""
        folded = self._supervisor.stats.book_events
        for outcome, count in self.book_counts().items():
            key = (self._name, outcome)
            folded[key] = folded.get(key, 0) + count
        self._books = BookBuilder()

    def book_counts(self) -> dict[str, int]:
        """What the current connection's book builder counted, by outcome."""
        books = self._books
        return {
            "gap": books.gaps,
            "duplicate": books.duplicates,
            "resync": books.resyncs,
            "overflow": books.overflowed,
        }

    def takeover(self) -> list[MarketEvent]:
        """This provider just became active: its books, whole, to replace the hub's."""
        return list(self._books.snapshots())

    def __call__(self, events: Sequence[MarketEvent]) -> None:
        supervisor = self._supervisor
        policy = supervisor.policy
        now = self.last_at = self._clock()
        self.events += len(events)
        active = policy.on_data(self._name, now)
        if policy.transitions:
            supervisor.reconcile()
            active = policy.active == self._name
        if any(type(e) is BookUpdate for e in events):
            events = self._check_books(events)
        if not active:
            supervisor.stats.standby_events += len(events)
            return
        if events:
            supervisor.publish(events)

    def _check_books(self, events: Sequence[MarketEvent]) -> list[MarketEvent]:
        return self._books.fold(events, self._resync)

    def _resync(self, symbol: str) -> list[MarketEvent]:
        """A fresh snapshot of one book: from the provider's state, or asked upstream."""
        log.info("book gap; resyncing", extra={"provider": self._name, "symbol": symbol})
        for event in self._provider.snapshot():
            if type(event) is BookUpdate and event.symbol == symbol and event.snapshot:
                return list(self._books.apply(event).publish)
        self._supervisor.spawn(self._provider.resync(symbol), f"resync:{self._name}:{symbol}")
        return []

    def dead_letter(self, raw: str | bytes, error: str, received_at: float) -> None:
        supervisor = self._supervisor
        supervisor.dead_letters.add(self._name, raw, error, received_at)
        count = supervisor.dead_letters.totals[self._name]
        if count <= 10 or count & (count - 1) == 0:  # the first ten, then powers of two
            log.warning(
                "unparseable upstream message (dead letter)",
                extra={"provider": self._name, "error": error, "dead_letters": count},
            )

    def state(self, state: str, detail: str = "") -> None:
        log.info("upstream %s", state, extra={"provider": self._name, "detail": detail})
        if state == "subscribed":
            supervisor = self._supervisor
            supervisor.policy.on_up(self._name, self._clock())
            supervisor.reconcile()


class Supervisor:
    """Failover across ``providers`` (in order of preference) into ``publish``.

    Args:
        providers: the providers, most preferred first.
        publish: the hub's sink (stamps, publishes, fans out).
        calendar: the market whose opening hours make silence suspicious.
        stats: counters for metrics; dead_letters: the store for unparseable messages.
        stale_s, failback_s, backoff, limit_backoff_s: see ``FeedPolicy``.
        clock: wall clock, epoch seconds.
    """

    def __init__(
        self,
        providers: Sequence[Provider],
        publish: EventSink,
        calendar: MarketCalendar,
        *,
        stats: Stats,
        dead_letters: DeadLetters,
        stale_s: float,
        failback_s: float,
        backoff: Backoff,
        limit_backoff_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.providers = {p.name: p for p in providers}
        self.publish = publish
        self.stats = stats
        self.dead_letters = dead_letters
        self.clock = clock
        self.policy = FeedPolicy(
            [p.name for p in providers],
            calendar,
            stale_s=stale_s,
            failback_s=failback_s,
            backoff=backoff,
            limit_backoff_s=limit_backoff_s,
            rng=random.Random(),
            unwatched=frozenset(p.name for p in providers if not p.watch_silence),
        )
        self._sinks = {p.name: _ProviderSink(self, p) for p in providers}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Cancelled runs not finished yet: a provider is restarted only after its
        #: previous run has let go of its connection (vendors allow one per key).
        self._stopping: dict[str, asyncio.Task[None]] = {}
        self._active = ""
        #: provider -> failovers away from it: times the feed left it (while it was
        #: active) for a less preferred provider or for none
        self.left: dict[str, int] = {}
        self._helpers: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._refused: list[str] = []

    @classmethod
    def from_settings(
        cls,
        settings: FeedSettings,
        providers: Sequence[Provider],
        publish: EventSink,
        *,
        stats: Stats | None = None,
    ) -> Supervisor:
        """The supervisor the feed's settings group describes (``settings.upstream``:
        ``calendar``, ``dead_letters``, ``feed_*``); ``serve``, ``feed``, ``record`` and
        ``update-prices`` all use this one.

        Raises:
            ConfigError: the calendar is unknown.
        """
        try:
            calendar = calendar_for(settings.calendar)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        return cls(
            providers,
            publish,
            calendar,
            stats=stats if stats is not None else Stats(),
            dead_letters=DeadLetters(settings.dead_letters),
            stale_s=settings.feed_stale_s,
            failback_s=settings.feed_failback_s,
            backoff=Backoff(base_s=settings.feed_backoff_base_s, cap_s=settings.feed_backoff_cap_s),
            limit_backoff_s=settings.feed_limit_backoff_s,
        )

    @property
    def active(self) -> str:
        return self.policy.active

    @property
    def preferred(self) -> str:
        """The most preferred provider not disabled ("" when none is left)."""
        return self.policy.preferred

    def states(self) -> dict[str, State]:
        return {name: self.policy.state(name) for name in self.providers}

    def inflow(self) -> dict[str, tuple[int, float]]:
        """Per provider: events received, ever, and when the last batch arrived (the
        supervisor's clock, wall seconds; 0 when none has): active and standby alike."""
        return {name: (sink.events, sink.last_at) for name, sink in self._sinks.items()}

    def market_open(self) -> bool:
        """Whether the feed's market is open now (its calendar)."""
        return self.policy.market_open(self.clock())

    def watches_silence(self, name: str) -> bool:
        """Whether the feed judges ``name``'s silence (``Provider.watch_silence``: a
        replay's quiet stretch is recorded data, never a dead upstream)."""
        provider = self.providers.get(name)
        return provider is not None and provider.watch_silence

    def book_events(self) -> dict[tuple[str, str], int]:
        """Order-book checks, ever, by (provider, outcome): gap, duplicate (dropped),
        resync (snapshot asked), overflow (buffered delta dropped while resyncing)."""
        totals = dict(self.stats.book_events)
        for name, sink in self._sinks.items():
            for outcome, count in sink.book_counts().items():
                totals[(name, outcome)] = totals.get((name, outcome), 0) + count
        return totals

    def spawn(self, coroutine: Coroutine[object, object, None], name: str) -> None:
        """Run a short helper (a book resync request); its failure is logged, not lost."""
        task = asyncio.create_task(coroutine, name=name)
        self._helpers.add(task)
        task.add_done_callback(self._helper_done)

    def _helper_done(self, task: asyncio.Task[None]) -> None:
        self._helpers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s failed: %r", task.get_name(), task.exception())

    # -- the loop

    async def run(self) -> None:
        """Supervise until cancelled. Returns when every provider has ended; raises
        UpstreamAuthError when every provider's credentials were refused."""
        self.policy.start(self.clock())
        self.reconcile()
        try:
            while not self.policy.exhausted:
                now = self.clock()
                deadline = self.policy.next_deadline(now)
                timeout = MAX_TIMER_S if deadline is None else min(MAX_TIMER_S, deadline - now)
                self._wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                # that lands in the same loop step as the event being set
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, timeout)):
                        await self._wake.wait()
                self.policy.on_timer(self.clock())
                self.reconcile()
        finally:
            await self._stop_all()
        if self._refused:
            raise UpstreamAuthError("; ".join(self._refused))

    def reconcile(self) -> None:
        """Publish the policy's transitions and start/stop tasks to match it."""
        for transition in self.policy.take_transitions():
            self._announce(transition)
        if self.policy.active != self._active:
            if self._active and self._worse(self.policy.active, self._active):
                self.left[self._active] = self.left.get(self._active, 0) + 1
            self._active = self.policy.active
            if self._active:
                books = self._sinks[self._active].takeover()
                if books:
                    self.publish(books)
        wanted = self.policy.should_run()
        for name in self._tasks.keys() - wanted:
            task = self._tasks.pop(name)
            task.cancel()
            self._stopping[name] = task
            task.add_done_callback(functools.partial(self._stopped, name))
        for name in wanted - self._tasks.keys() - self._stopping.keys():
            self._sinks[name].restart()
            self._tasks[name] = asyncio.create_task(self._run_one(name), name=f"provider:{name}")
        self._wake.set()

    def _worse(self, new: str, old: str) -> bool:
        """Whether ``new`` ("" for none) is less preferred than ``old``."""
        order = list(self.providers)
        return not new or order.index(new) > order.index(old)

    def _stopped(self, name: str, task: asyncio.Task[None]) -> None:
        if self._stopping.get(name) is task:
            del self._stopping[name]
            self.reconcile()  # start it again if the policy wants it meanwhile

    async def _run_one(self, name: str) -> None:
        provider = self.providers[name]
        failure, reason = Failure.TRANSIENT, "upstream ended"
        try:
            await provider.run(self._sinks[name])
            failure = Failure.AUTH  # retired: an ended upstream is not restarted
            log.info("upstream ended", extra={"provider": name})
        except asyncio.CancelledError:
            raise
        except UpstreamAuthError as exc:
            failure, reason = Failure.AUTH, str(exc) or "credentials refused"
            self._refused.append(f"{name}: {reason}")
        except UpstreamLimitError as exc:
            failure, reason = Failure.LIMIT, str(exc) or "connection limit"
        except UpstreamStale as exc:
            failure, reason = Failure.STALE, str(exc) or "stale"
        except UpstreamError as exc:
            reason = str(exc) or type(exc).__name__
        except Exception as exc:
            reason = f"crashed: {exc!r}"
            log.exception("provider crashed", extra={"provider": name})
        if self._tasks.get(name) is asyncio.current_task():
            del self._tasks[name]
        self.policy.on_failure(name, failure, self.clock(), reason)
        self.reconcile()

    async def _stop_all(self) -> None:
        tasks = [*self._tasks.values(), *self._stopping.values(), *self._helpers]
        self._tasks.clear()
        self._stopping.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _announce(self, t: Transition) -> None:
        stats = self.stats
        stats.feed_transitions += 1
        if t.state is State.BACKOFF:  # failed, stale or refused for now: it will restart
            stats.provider_restarts += 1
        level = logging.WARNING if t.state in (State.BACKOFF, State.DISABLED) else logging.INFO
        log.log(
            level,
            "provider %s is %s",
            t.provider,
            t.state.value,
            extra={
                "provider": t.provider,
                "state": t.state.value,
                "active": t.active or "-",
                "reason": t.reason,
            },
        )
        stats.failovers = self.policy.failovers
        stats.failbacks = self.policy.failbacks
        self.publish([Status(FEED, t.provider, t.state.value, t.active, t.reason, t.ts)])
