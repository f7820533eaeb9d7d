"""A recording Sink for provider tests, and helpers to run a provider into it.

``RecordingSink`` keeps every batch (and when it came), every dead letter and every
session state, and wakes waiters on each of them: ``until`` waits on an event, never by
polling, with a deadline. ``running`` runs ``provider.run(sink)`` in a task for the
length of a block; ``subscribed`` waits for the session to reach "subscribed".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from tickcast.errors import UpstreamError
from tickcast.model.market import MarketEvent
from tickcast.providers.base import Provider

WAIT_S = 5.0


class Enough(Exception):
    """Raised by a test's sink or clock to end a run that would go on for ever."""


class RecordingSink:
    """A Sink that keeps everything (batches with their monotonic arrival time, dead
    letters, states with their details) and lets a test wait for a condition on it.

    With ``stop_after``, the batch that brings the count of events to it raises
    ``Enough`` (after it is recorded).
    """

    def __init__(self, stop_after: int | None = None) -> None:
        self.events: list[MarketEvent] = []
        self.batches: list[list[MarketEvent]] = []
        self.arrivals: list[float] = []
        self.dead_letters: list[tuple[str | bytes, str, float]] = []
        self.states: list[str] = []
        self.details: list[str] = []
        self.stop_after = stop_after
        self._changed = asyncio.Event()

    def __call__(self, events: Sequence[MarketEvent]) -> None:
        batch = list(events)
        self.batches.append(batch)
        self.arrivals.append(time.monotonic())
        self.events.extend(batch)
        self._changed.set()
        if self.stop_after is not None and len(self.events) >= self.stop_after:
            raise Enough

    def dead_letter(self, raw: str | bytes, error: str, received_at: float) -> None:
        self.dead_letters.append((raw, error, received_at))
        self._changed.set()

    def state(self, state: str, detail: str = "") -> None:
        self.states.append(state)
        self.details.append(detail)
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], wait_s: float = WAIT_S) -> None:
        """Return once ``predicate()`` holds; TimeoutError after ``wait_s``."""
        async with asyncio.timeout(wait_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def more_events(self, count: int = 1, wait_s: float = WAIT_S) -> None:
        """Wait for ``count`` more events than there are now."""
        target = len(self.events) + count
        await self.until(lambda: len(self.events) >= target, wait_s)

    def of(self, kind: type[Any], symbol: str | None = None) -> list[Any]:
        """The events of exactly type ``kind`` (and of ``symbol``, if given)."""
        return [e for e in self.events if type(e) is kind and symbol in (None, e.symbol)]


@contextlib.asynccontextmanager
async def running(provider: Provider, sink: RecordingSink) -> AsyncIterator[asyncio.Task[None]]:
    """``provider.run(sink)`` in a task, cancelled at the end (an upstream error is let go)."""
    task = asyncio.create_task(provider.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, UpstreamError):
            await task


async def subscribed(sink: RecordingSink, times: int = 1) -> None:
    """Wait until the session has reported "subscribed" ``times`` times in all."""
    await sink.until(lambda: sink.states.count("subscribed") >= times)
