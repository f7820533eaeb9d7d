"""A provider that delivers nothing by itself: the test publishes or ingests every event."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from tickcast.providers.base import Provider, Sink


class Silent(Provider):
    """Serves ``symbols`` (AAPL and MSFT unless told): once run, it says it is subscribed
    and never delivers; the supervisor does not call its silence stale (the test decides
    what arrives, and when)."""

    name = "silent"
    watch_silence = False

    def __init__(self, symbols: Iterable[str] = ("AAPL", "MSFT")) -> None:
        self._symbols = frozenset(symbols)

    @property
    def symbols(self) -> frozenset[str]:
        return self._symbols

    async def run(self, sink: Sink) -> None:
        sink.state("subscribed")
        await asyncio.Event().wait()
