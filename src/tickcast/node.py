"""Node: the wiring of one gateway process: providers -> hub -> pump -> connections.

Rules: owns every background task (provider streams) in a TaskGroup, with start() and
aclose(). A provider that crashes is logged, counted and restarted with capped backoff;
it is never lost silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import time
from collections.abc import Sequence, Sized
from typing import Protocol

from tickcast.config.settings import Settings
from tickcast.hub.hub import Hub
from tickcast.hub.pump import Pump
from tickcast.model.market import Bar, BookUpdate, MarketEvent, Quote, Trade
from tickcast.observability.metrics import Gauges, Metrics
from tickcast.observability.stats import Stats
from tickcast.providers import registry
from tickcast.providers.base import Provider
from tickcast.retry import Backoff

log = logging.getLogger("tickcast.node")

_KIND = {Quote: "quote", Trade: "trade", Bar: "bar", BookUpdate: "book"}


class _Queued(Protocol):
    @property
    def outbox(self) -> Sized: ...


class Node:
    """One gateway process's shared state and background work."""

    def __init__(self, settings: Settings, providers: Sequence[Provider] | None = None) -> None:
        self.settings = settings
        self.stats = Stats()
        self.hub = Hub(history_size=settings.history_size)
        self.pump = Pump(settings.batch_ms / 1000)
        self.providers = list(providers or [registry.create("simulator", settings)])
        self.symbols = frozenset().union(*(p.symbols for p in self.providers))
        self.connections: set[_Queued] = set()
        self.metrics = Metrics(self.stats, self.gauges)
        self._ready = False
        self._tasks: asyncio.Task[None] | None = None
        self._backoff = Backoff(base_s=0.5, cap_s=30.0)

    @property
    def ready(self) -> bool:
        """True once the node is running and some provider has delivered data."""
        return self._ready

    def gauges(self) -> Gauges:
        return Gauges(
            connections=len(self.connections),
            subscriptions=self.hub.subscription_count,
            outbox_depth=sum(len(c.outbox) for c in self.connections),
        )

    def is_known(self, symbol: str) -> bool:
        return symbol in self.symbols

    def ingest(self, events: Sequence[MarketEvent]) -> None:
        """The providers' sink: stamp, publish and fan out one batch of events."""
        self.pump.now = self.pump.loop.time()
        by_kind = self.stats.events_by_kind
        for event in events:
            kind = _KIND[type(event)]
            by_kind[kind] = by_kind.get(kind, 0) + 1
        self.hub.publish(events, time.time())
        self._ready = True

    async def _run_provider(self, provider: Provider) -> None:
        rng = random.Random()
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                await provider.run(self.ingest)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.provider_restarts += 1
                if time.monotonic() - started > 60:
                    attempt = 0
                delay = self._backoff.delay(attempt, rng)
                attempt += 1
                log.exception(
                    "provider crashed; restarting",
                    extra={"provider": provider.name, "retry_in_s": round(delay, 3)},
                )
                await asyncio.sleep(delay)

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for provider in self.providers:
                group.create_task(self._run_provider(provider), name=f"provider:{provider.name}")

    async def start(self) -> None:
        # Everything built so far (modules, settings, the app) lives as long as the
        # process: keep it out of every later full collection, whose pause is latency.
        gc.collect()
        gc.freeze()
        self.metrics.gc_pauses.install()
        if self._tasks is None:
            self._tasks = asyncio.create_task(self._run(), name="node")

    async def aclose(self) -> None:
        self.metrics.gc_pauses.uninstall()
        self._ready = False
        task, self._tasks = self._tasks, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.pump.close()
