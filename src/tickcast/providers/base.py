"""The provider contract.

Rules: a provider is an I/O driver. It turns an upstream (a socket, a file, the
simulator's clock) into normalized MarketEvents and hands them, in batches, to a Sink.
Parsing stays pure (``parse.py`` in each provider's folder: raw message + receive time ->
``Parsed``); this module names no vendor.

How ``run`` ends tells the supervisor what to do (see ``tickcast.errors``):
``UpstreamAuthError`` is terminal, ``UpstreamLimitError`` waits a long back-off, any
other exception is a transient failure that is retried with capped, jittered back-off.
``run`` is restarted from scratch after a failure, so every connection must send the
whole subscription again: a provider keeps no subscription state across ``run`` calls.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import msgspec

from tickcast.model.market import MarketEvent

#: Receives each batch of normalized events, in order, on the event loop's thread.
EventSink = Callable[[Sequence[MarketEvent]], None]


class Sink(Protocol):
    """Where a running provider delivers what it receives.

    ``sink(events)`` delivers a batch of normalized events; ``dead_letter`` records one
    upstream message that could not be parsed (the feed goes on); ``state`` reports a
    step of the upstream session ("connecting", "connected", "authenticated",
    "subscribed"), for logs and the status channel.
    """

    def __call__(self, events: Sequence[MarketEvent]) -> None: ...

    def dead_letter(self, raw: str | bytes, error: str, received_at: float) -> None: ...

    def state(self, state: str, detail: str = "") -> None: ...


class ParseError(msgspec.Struct, frozen=True):
    """One upstream message (or frame) that could not be normalized.

    Attributes:
        error: what was wrong, for a human ("missing field 'bp'").
        raw: the offending item or frame, as received (text, or bytes for msgpack).
    """

    error: str
    raw: str | bytes


class Parsed(NamedTuple):
    """What a pure ``parse(raw, received_at)`` makes of one upstream frame.

    Attributes:
        events: the normalized market events, in upstream order.
        controls: the vendor's control messages (typed in the vendor's ``messages.py``):
            connection, auth and subscription replies, errors, statuses.
        errors: items that could not be parsed; the rest of the frame still counts.
    """

    events: list[MarketEvent]
    controls: list[Any]
    errors: list[ParseError]


class Provider(abc.ABC):
    """A source of normalized market events.

    ``run`` streams until cancelled or until the upstream fails (it then raises); it
    must never let one bad upstream message end the stream (that is a dead letter).
    ``symbols`` is the universe the provider serves (used to validate client
    subscriptions); a vendor provider subscribes all of it upstream on every connection.
    """

    name: str
    #: Judge this provider silent after ``feed_stale_s`` without data while the market is
    #: open. False for a source whose gaps are data (a replay of a quiet recording).
    watch_silence: bool = True

    @property
    @abc.abstractmethod
    def symbols(self) -> frozenset[str]: ...

    @abc.abstractmethod
    async def run(self, sink: Sink) -> None:
        """Deliver events to ``sink`` until cancelled; raise when the upstream fails."""

    def snapshot(self) -> Sequence[MarketEvent]:
        """The current state (latest quote, book snapshot...) per symbol, if known."""
        return ()

    @property
    def skipped_events(self) -> int:
        """Events left out on purpose because the gateway fell behind, ever.

        Only a source that makes its data up can do that (the simulator skips ticks);
        a vendor's stream is never thinned, so the default is 0.
        """
        return 0

    async def resync(self, symbol: str) -> None:  # noqa: B027 - optional hook
        """Ask the upstream for a fresh book snapshot of ``symbol`` (after a sequence gap).

        The default does nothing: the supervisor first looks for a book in ``snapshot()``.
        """
