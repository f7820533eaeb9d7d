"""Supervisor, the driver around FeedPolicy and BookBuilder, with in-process providers.

The providers here are small scripted Provider subclasses (the real vendors' adapters
are tested against their emulators in tests/integration); the timings are tens of ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tickcast.errors import UpstreamAuthError, UpstreamError
from tickcast.model.market import BookUpdate, MarketEvent, Quote, Status
from tickcast.observability.stats import Stats
from tickcast.providers.base import Provider, Sink
from tickcast.providers.calendar import AlwaysOpen
from tickcast.providers.deadletter import DeadLetters
from tickcast.providers.failover import State
from tickcast.providers.supervisor import Supervisor
from tickcast.retry import Backoff


def quote(source: str, ts: float = 1.0) -> Quote:
    return Quote("AAPL", 1.0, 1.1, 1.0, 1.0, 1.05, 0.0, ts, source)


def book(seq: int, symbol: str = "BTC/USD", *, snapshot: bool = False) -> BookUpdate:
    return BookUpdate(symbol, ((1.0, float(seq)),), (), snapshot, float(seq), "scripted", seq)


class Scripted(Provider):
    """Delivers ``batches`` (then idles), or raises ``error`` after them."""

    def __init__(
        self,
        name: str,
        batches: Sequence[Sequence[MarketEvent]] = (),
        *,
        error: BaseException | None = None,
        forever: bool = True,
        books: Sequence[MarketEvent] = (),
    ) -> None:
        self.name = name
        self.batches = list(batches)
        self.error = error
        self.forever = forever
        self.runs = 0
        self.resyncs: list[str] = []
        self._books = list(books)

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset({"AAPL", "BTC/USD"})

    async def run(self, sink: Sink) -> None:
        self.runs += 1
        sink.state("subscribed")
        for batch in self.batches:
            sink(batch)
            await asyncio.sleep(0.005)
        if self.error is not None:
            raise self.error
        if self.forever:
            while True:
                sink([quote(self.name)])
                await asyncio.sleep(0.01)

    def snapshot(self) -> Sequence[MarketEvent]:
        return self._books

    async def resync(self, symbol: str) -> None:
        self.resyncs.append(symbol)


def supervisor(providers: Sequence[Provider], published: list[MarketEvent]) -> Supervisor:
    return Supervisor(
        providers,
        published.extend,
        AlwaysOpen(),
        stats=Stats(),
        dead_letters=DeadLetters(),
        stale_s=0.0,
        failback_s=0.1,
        backoff=Backoff(base_s=0.01, cap_s=0.05),
        limit_backoff_s=0.0,
    )


async def run_until(sup: Supervisor, condition: object, wait_s: float = 5.0) -> None:
    task = asyncio.create_task(sup.run())
    try:
        async with asyncio.timeout(wait_s):
            while not condition():  # type: ignore[operator]  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def market(published: list[MarketEvent]) -> list[MarketEvent]:
    return [e for e in published if type(e) is not Status]


async def test_a_book_gap_is_resynced_from_the_providers_snapshot() -> None:
    published: list[MarketEvent] = []
    fresh = book(9, snapshot=True)
    provider = Scripted(
        "p",
        [[book(1, snapshot=True)], [book(2)], [book(5)], [book(6)], [book(10)]],
        books=[fresh],
        forever=True,
    )
    sup = supervisor([provider], published)
    await run_until(sup, lambda: any(type(e) is BookUpdate and e.sequence == 10 for e in published))
    books = [e for e in market(published) if type(e) is BookUpdate]
    assert [(b.sequence, b.snapshot) for b in books] == [
        (1, True),
        (2, False),
        (9, True),
        (10, False),
    ]


async def test_a_book_gap_without_a_snapshot_asks_the_upstream() -> None:
    published: list[MarketEvent] = []
    provider = Scripted("p", [[book(1, snapshot=True)], [book(3)]])
    sup = supervisor([provider], published)
    await run_until(sup, lambda: provider.resyncs == ["BTC/USD"])
    assert [e.sequence for e in market(published) if type(e) is BookUpdate] == [1]


async def test_only_the_active_providers_data_is_published() -> None:
    published: list[MarketEvent] = []
    flaky = Scripted("flaky", [[quote("flaky")]], error=UpstreamError("closed"), forever=False)
    backup = Scripted("backup")
    sup = supervisor([flaky, backup], published)
    await run_until(sup, lambda: flaky.runs >= 3 and sup.active == "backup")
    sources = [e.source for e in market(published)]
    assert "backup" in sources
    # flaky's first quote was published (it was active then); the ones it sent while
    # recovering, with backup active, were not
    assert sources.count("flaky") == 1
    assert sup.stats.standby_events >= 1
    assert sup.stats.provider_restarts >= 2
    statuses = [e for e in published if type(e) is Status]
    assert any(s.provider == "flaky" and s.state == "backoff" for s in statuses)


async def test_every_provider_refused_ends_the_run_with_the_reasons() -> None:
    published: list[MarketEvent] = []
    a = Scripted("a", error=UpstreamAuthError("402 auth failed"), forever=False)
    b = Scripted("b", error=UpstreamAuthError("auth_failed"), forever=False)
    sup = supervisor([a, b], published)
    with pytest.raises(UpstreamAuthError, match=r"a: 402 auth failed; b: auth_failed"):
        await asyncio.wait_for(sup.run(), 5)
    assert (a.runs, b.runs) == (1, 1)
    assert sup.states() == {"a": State.DISABLED, "b": State.DISABLED}


async def test_an_upstream_that_ends_is_retired_and_the_run_returns() -> None:
    published: list[MarketEvent] = []
    replay = Scripted("replay", [[quote("replay")], [quote("replay", 2.0)]], forever=False)
    sup = supervisor([replay], published)
    await asyncio.wait_for(sup.run(), 5)
    assert [e.ts for e in market(published)] == [1.0, 2.0]
    assert replay.runs == 1


async def test_a_crash_is_counted_and_retried() -> None:
    published: list[MarketEvent] = []
    crashy = Scripted("crashy", error=RuntimeError("bug"), forever=False)
    sup = supervisor([crashy], published)
    await run_until(sup, lambda: crashy.runs >= 3)
    assert sup.stats.provider_restarts >= 2


class Books(Provider):
    """Each run: a book snapshot then deltas; optionally fails after ``fail_after`` deltas."""

    def __init__(self, name: str, base: float, *, fail_after: int | None = None) -> None:
        self.name = name
        self.base = base
        self.fail_after = fail_after
        self.runs = 0
        self.concurrent = 0
        self.most_concurrent = 0
        self.cleanup_s = 0.0
        self.refuse_next = False

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset({"BTC/USD"})

    async def run(self, sink: Sink) -> None:
        self.runs += 1
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            sink.state("subscribed")
            level = ((self.base, 1.0),)
            sink([BookUpdate("BTC/USD", level, (), True, 1.0, self.name, 1)])
            seq = 1
            while True:
                await asyncio.sleep(0.005)
                seq += 1
                price = self.base + seq
                sink([BookUpdate("BTC/USD", ((price, 1.0),), (), False, 1.0, self.name, seq)])
                if self.fail_after is not None and seq > self.fail_after:
                    self.fail_after = None  # fail once
                    raise UpstreamError("dropped")
                if self.refuse_next:
                    raise UpstreamAuthError("revoked")
        finally:
            if self.cleanup_s:
                await asyncio.sleep(self.cleanup_s)  # closing a socket takes a while
            self.concurrent -= 1


def book_of(published: list[MarketEvent]) -> dict[float, float]:
    """The book a client builds from what was published."""
    levels: dict[float, float] = {}
    for event in published:
        if type(event) is BookUpdate:
            if event.snapshot:
                levels.clear()
            for price, size in event.bids:
                levels[price] = size
    return levels


async def test_after_failback_clients_get_the_preferred_providers_whole_book() -> None:
    published: list[MarketEvent] = []
    preferred = Books("preferred", 100.0, fail_after=3)
    backup = Books("backup", 500.0)
    sup = supervisor([preferred, backup], published)
    await run_until(sup, lambda: sup.stats.failbacks >= 1 and len(published) > 60)
    # the last snapshot published came from the preferred provider's fresh connection,
    # and what a client holds is exactly that provider's book, not a mix of both
    last_snapshot = [e for e in published if type(e) is BookUpdate and e.snapshot][-1]
    assert last_snapshot.source == "preferred"
    held = book_of(published)
    assert all(price < 500 for price in held)
    assert 100.0 in held


async def test_a_provider_is_not_restarted_before_its_previous_run_has_ended() -> None:
    published: list[MarketEvent] = []
    preferred = Books("preferred", 100.0, fail_after=3)
    backup = Books("backup", 500.0)
    backup.cleanup_s = 0.2
    sup = supervisor([preferred, backup], published)

    def flap() -> bool:
        if sup.stats.failbacks >= 1:
            # the backup was just stopped and is still closing: losing the preferred one
            # now wants the backup again before its old run has ended
            preferred.refuse_next = True
        return backup.runs >= 2 and sup.active == "backup"

    await run_until(sup, flap)
    assert backup.most_concurrent == 1
