"""Node: the wiring of one gateway process: providers -> publisher -> hub -> pump ->
connections.

Rules: owns every background task (the feed supervisor, which owns the provider
streams, and the services the composition root added) with start() and aclose(). It
names no service: a service (the portfolio service) is built by the composition root
(``app.py``), listens through a tap on ``publisher`` and is handed over with
``add_service`` so that it starts and stops with the node. A provider that fails is
logged, counted and restarted with capped back-off or failed over
(``providers/supervisor.py``); it is never lost silently. If the feed can never deliver
(every provider's credentials refused), ``fatal`` says why and ``on_fatal`` is called, so
that the process can stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tickcast.clock import SYSTEM, Clock
from tickcast.config.settings import Settings
from tickcast.hub.hub import Hub
from tickcast.hub.outbox import Outbox
from tickcast.hub.publisher import LocalPublisher
from tickcast.hub.pump import Pumps
from tickcast.hub.sequencer import Sequencer, new_epoch
from tickcast.model.market import Bar, BookUpdate, MarketEvent, Quote, Status, Trade
from tickcast.observability.faults import Faults
from tickcast.observability.loop import LoopMonitor
from tickcast.observability.metrics import Gauges, Metrics
from tickcast.observability.overload import OverloadDetector, Transition
from tickcast.observability.stats import Stats
from tickcast.providers import registry
from tickcast.providers.base import Provider
from tickcast.providers.supervisor import Supervisor
from tickcast.storage.engine import make_engine

log = logging.getLogger("tickcast.node")

_KIND: dict[type, str] = {
    Quote: "quote",
    Trade: "trade",
    Bar: "bar",
    BookUpdate: "book",
    Status: "status",
}


class _Queued(Protocol):
    @property
    def outbox(self) -> Outbox[Any]: ...


#: Builds the node's publisher (a cluster node's is a ``ClusterPublisher``).
PublisherFactory = Callable[..., LocalPublisher]


class Service(Protocol):
    """A background service the node starts (after the feed's set-up, before the feed
    runs) and stops (after the feed has stopped, before the database engine)."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class Node:
    """One gateway process's shared state and background work.

    Args:
        settings: the whole settings (the node composes its parts, and hands each its
            group): the hub and the overload detector get ``settings.outbox``, the
            providers and their supervisor ``settings.upstream``, the database engine
            ``settings.storage``.
        epoch: the name of this process's sequence numbering; by default a new one (the
            wall time and a random token), so that a restart never reuses one.
        clock: where every time of this node comes from (``tickcast.clock``): the
            publisher's stamps and pass time, the pumps', connections' and sessions'
            deadlines, the loop monitor; tests inject a manual one.

    Attributes:
        clock: the injected clock.
        pumps: the flush schedulers, one per batching window (``Pumps.get``).
        publisher: how every producer publishes (stamp, fan out, taps); services listen
            through its taps.
    """

    def __init__(
        self,
        settings: Settings,
        providers: Sequence[Provider] | None = None,
        *,
        epoch: str | None = None,
        clock: Clock = SYSTEM,
        publisher: PublisherFactory | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.stats = Stats()
        self.faults = Faults()  # every contained failure: tickcast_internal_errors_total
        if epoch is None:
            epoch = new_epoch(clock.wall(), secrets.token_hex(3))
        sequencer = Sequencer(epoch)
        self.hub = Hub(
            history_size=settings.outbox.history_size, faults=self.faults, sequencer=sequencer
        )
        self.pumps = Pumps(clock, faults=self.faults)
        make = LocalPublisher if publisher is None else publisher
        self.publisher = make(sequencer, self.hub, self.faults, clock=clock)
        self.services: list[Service] = []
        if providers is None:
            providers = [registry.create(name, settings.upstream) for name in settings.feed]
        self.providers = list(providers)
        self.symbols = frozenset().union(*(p.symbols for p in self.providers))
        self.connections: set[_Queued] = set()
        self.supervisor = Supervisor.from_settings(
            settings.upstream, self.providers, self.ingest, stats=self.stats
        )
        self.dead_letters = self.supervisor.dead_letters
        self.engine = make_engine(settings.storage.database_url)
        self.metrics = Metrics(self.stats, self.gauges)
        self.overload = OverloadDetector(settings.outbox.overload_lag_s)
        self.loop_monitor = LoopMonitor(
            self.overload,
            self.pumps,
            observe=self.metrics.loop_lag.observe,
            on_transition=self._overload_changed,
            shed=lambda: sum(p.skipped_events for p in self.providers),
        )
        # in a cluster, only the node holding the upstream lease runs the feed: the
        # cluster (cluster/service.py) sets this and calls start_feed / stop_feed
        self.feed_gated = False
        # whether the node serves live data, when something else decides (a cluster
        # follower: a leader's batches arrive); None: the feed's own readiness
        self.readiness: Callable[[], bool] | None = None
        self.fatal: BaseException | None = None
        self.on_fatal: Callable[[BaseException], None] | None = None
        self._ready = False
        self._tasks: asyncio.Task[None] | None = None
        self._closing = False  # aclose has begun: the feed is never started again
        self._gc_threshold: tuple[int, int, int] | None = None  # before start changed it

    @property
    def ready(self) -> bool:
        """True once market data has arrived, while a provider feeds the hub (or, in a
        cluster, while the node serves the cluster's live data)."""
        if self.readiness is not None:
            return self.readiness()
        return self.feed_ready

    @property
    def feed_ready(self) -> bool:
        """True once this node's feed delivered market data, while a provider feeds."""
        return self._ready and bool(self.supervisor.active)

    def gauges(self) -> Gauges:
        outboxes = [c.outbox for c in self.connections]
        return Gauges(
            connections=len(self.connections),
            subscriptions=self.hub.subscription_count,
            outbox_depth=sum(len(o) for o in outboxes),
            outbox_bytes=sum(o.pending_bytes for o in outboxes),
            conflated=self.stats.conflated_closed + sum(o.conflated for o in outboxes),
            providers={name: state.value for name, state in self.supervisor.states().items()},
            active_provider=self.supervisor.active,
            dead_letters=dict(self.dead_letters.totals),
            skipped_events={p.name: p.skipped_events for p in self.providers},
            book_events=self.supervisor.book_events(),
            overloaded=self.overload.overloaded,
            overload_episodes=self.overload.episodes,
            loop_stalled_s=self.overload.stalled_s,
            internal_errors=dict(self.faults.counts),
        )

    def _overload_changed(self, transition: Transition, detector: OverloadDetector) -> None:
        """Say so when the gateway falls behind its feed, and when it has caught up."""
        skipped = sum(p.skipped_events for p in self.providers)
        if transition is Transition.OVERLOADED:
            log.warning(
                "gateway overloaded: the event loop runs up to %.0f ms late and %d "
                "simulator ticks were skipped so far; quotes conflate more, the simulator "
                "skips ticks to keep up, and no reader is closed for the gateway's own lag",
                detector.worst_s * 1000,
                skipped,
                extra={"lag_s": round(detector.worst_s, 3), "skipped_events": skipped},
            )
        else:
            log.warning(
                "gateway caught up after %.1f s overloaded (worst lag %.0f ms)",
                self.clock.monotonic() - detector.since,
                detector.worst_s * 1000,
                extra={"lag_s": round(detector.worst_s, 3), "skipped_events": skipped},
            )

    def is_known(self, symbol: str) -> bool:
        return symbol in self.symbols

    def add_service(self, service: Service) -> None:
        """Start ``service`` with the node (in the order added) and stop it with the node
        (in the reverse order), after the feed has stopped."""
        self.services.append(service)

    def ingest(self, events: Sequence[MarketEvent]) -> None:
        """The providers' sink: count one batch of events, then publish it (stamped,
        fanned out, then shown to the taps; a tap's failure is contained there)."""
        by_kind = self.stats.events_by_kind
        for cls, count in Counter(map(type, events)).items():  # counted in C
            kind = _KIND[cls]
            by_kind[kind] = by_kind.get(kind, 0) + count
        self.publisher.publish(events)
        if type(events[0]) is not Status:  # a feed status alone is not market data
            self._ready = True

    async def _run(self) -> None:
        try:
            await self.supervisor.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.fatal = exc
            log.critical("the feed cannot deliver: %s", exc)
            if self.on_fatal is not None:
                self.on_fatal(exc)
            return
        log.warning("every provider has ended; no more market data")

    async def start(self) -> None:
        # Everything built so far (modules, settings, the app) lives as long as the
        # process: keep it out of every later full collection, whose pause is latency.
        for service in self.services:  # e.g. migrate, load portfolios: long-lived state too
            await service.start()
        gc.collect()
        gc.freeze()
        # full collections at most every 100 generation-1 ones, not 10: a connect storm
        # otherwise walks every open connection again every ~1,500 connects
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(700, 10, 100)
        self.metrics.gc_pauses.install()
        self.loop_monitor.start()
        if not self.feed_gated:
            self.start_feed()

    def start_feed(self) -> None:
        """Run the feed (the supervisor and its providers); nothing if it runs, or once
        the node is closing (a cluster node that wins the lease while it stops must not
        open an upstream connection it would leave behind)."""
        if self._tasks is None and not self._closing:
            self._tasks = asyncio.create_task(self._run(), name="node")

    async def stop_feed(self) -> None:
        """Stop the feed and wait until every provider connection is closed."""
        task, self._tasks = self._tasks, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ready = False  # after the feed has stopped: it can no longer set it again

    def closing(self) -> None:
        """Shutdown has begun (the fronts close before the node does): from now on the
        feed is never started again."""
        self._closing = True

    async def aclose(self) -> None:
        self._closing = True
        self.metrics.gc_pauses.uninstall()
        if self._gc_threshold is not None:  # the collector as start found it: the process
            gc.set_threshold(*self._gc_threshold)  # may go on (tests start many nodes)
            self._gc_threshold = None
            gc.unfreeze()
        self.loop_monitor.close()
        await self.stop_feed()
        for service in reversed(self.services):
            await service.aclose()
        await self.engine.dispose()
        self.pumps.close()
