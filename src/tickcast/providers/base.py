"""The provider contract.

Rules: a provider is an I/O driver. It turns an upstream (a socket, a file, the
simulator's clock) into normalized MarketEvents and hands them, in batches, to a sink.
Parsing stays pure (``parse.py`` in each provider's folder); this module names no vendor.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

from tickcast.model.market import MarketEvent

#: Receives each batch of normalized events, in order, on the event loop's thread.
EventSink = Callable[[Sequence[MarketEvent]], None]


class Provider(abc.ABC):
    """A source of normalized market events.

    ``run`` streams until cancelled; it must never let one bad upstream message end the
    stream. ``symbols`` is the universe the provider can serve (used to validate client
    subscriptions).
    """

    name: str

    @property
    @abc.abstractmethod
    def symbols(self) -> frozenset[str]: ...

    @abc.abstractmethod
    async def run(self, sink: EventSink) -> None:
        """Deliver events to ``sink`` until cancelled."""

    def snapshot(self) -> Sequence[MarketEvent]:
        """The current state (latest quote, book snapshot...) per symbol, if known."""
        return ()
