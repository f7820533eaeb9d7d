"""Publisher: the one way producers put events on the hub; taps: how services listen.

Rules: pure, given its clock (``tickcast.clock``), which it reads once per batch: the
wall time stamps the batch, and the monotonic time is the pass's ``now`` the subscribers
queue it at (no ambient pass time). Every producer (the providers' batches through the
node, the portfolio service, a value a front computes for a new subscriber) calls
``Publisher.publish(events)`` and knows nothing of how the events are numbered or where
they go. ``LocalPublisher`` numbers them here (its ``Sequencer``: ``(epoch, seq)`` and
the server time), fans them out on the local hub, and then shows the stamped envelopes
to every tap, in the order the taps were added. A publisher that goes through a bus
(numbered by a leader, fanned out on every node) is another implementation of the same
protocol.

A tap is how a service listens to what is published (the portfolio service revalues on
prices): registered at composition, never named by the node. Taps run after the fan-out,
so that a tap's work never delays a delivery. A tap that raises is contained: reported to
``Faults`` as ``"tap"`` with its name, and the next tap and the next batch go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from tickcast.clock import Clock
from tickcast.hub.hub import Hub
from tickcast.hub.sequencer import Sequencer
from tickcast.model.envelope import Envelope
from tickcast.model.topic import Event
from tickcast.observability.faults import Faults

#: A service listening to what is published: called with each batch, stamped and fanned out.
Tap = Callable[[Sequence[Envelope]], None]

_F = TypeVar("_F", bound=Callable[..., None])


def listens_to(*payloads: type) -> Callable[[_F], _F]:
    """Mark a tap as looking only at these payload types: ``LocalPublisher`` then skips
    it for a batch that carries none of them (a market batch, for a tap that ranks
    portfolio values), instead of calling it to scan the batch for nothing. A tap given
    more than it looks at ignores the rest, so a publisher may also call it always."""

    def mark(fn: _F) -> _F:
        fn.payloads = frozenset(payloads)  # type: ignore[attr-defined]
        return fn

    return mark


class Publisher(Protocol):
    """What a producer needs: publish a batch of events (stamped, fanned out, tapped)."""

    def publish(self, events: Sequence[Event]) -> None: ...


class Discard:
    """A publisher that publishes nothing: for a service used with no hub (tools that
    only record, such as the demo's seeding)."""

    def publish(self, events: Sequence[Event]) -> None:
        pass


class LocalPublisher:
    """Stamps locally, fans out on the local hub, then calls the taps.

    Args:
        sequencer: numbers every batch; the hub's own (``hub.sequencer``), so that the
            hub's current epoch is the one its envelopes carry.
        hub: fans the stamped envelopes out.
        faults: where a raising tap is reported (``"tap"``).
        clock: read once per batch: its wall time is the batch's server time, its
            monotonic time the pass's ``now`` the hub hands every subscriber.
    """

    __slots__ = ("_taps", "_wants", "clock", "faults", "hub", "sequencer")

    def __init__(
        self,
        sequencer: Sequencer,
        hub: Hub,
        faults: Faults,
        *,
        clock: Clock,
    ) -> None:
        self.sequencer = sequencer
        self.hub = hub
        self.faults = faults
        self.clock = clock
        # replaced, never mutated: a tap added or removed while the taps run takes effect
        # from the next batch
        self._taps: tuple[tuple[str, Tap], ...] = ()
        # per tap, in the same order: the payload types it looks at (``listens_to``), or
        # None (every batch); replaced with ``_taps``
        self._wants: tuple[frozenset[type] | None, ...] = ()

    def publish(self, events: Sequence[Event]) -> None:
        """Stamp ``events`` (one batch, one server time), fan them out, then tap them."""
        if not events:
            return
        now = self.clock.now()
        envelopes = self.sequencer.stamp(events, now.wall)
        self.hub.fan_out(envelopes, now.mono)
        kinds: set[type] | None = None
        for (name, tap), wants in zip(self._taps, self._wants, strict=True):
            if wants is not None:
                if kinds is None:
                    kinds = set(map(type, events))  # the batch's payload types, in C
                if wants.isdisjoint(kinds):
                    continue
            try:
                tap(envelopes)
            except Exception as exc:  # a service's bug must not stop the feed or the batch
                self.faults.report("tap", exc, tap=name, envelopes=len(envelopes))

    def tap(self, fn: Tap, *, name: str) -> Callable[[], None]:
        """Call ``fn`` with every batch published from now on; returns what removes it
        (idempotent)."""
        entry = (name, fn)
        self._taps = (*self._taps, entry)
        self._wants = (*self._wants, getattr(fn, "payloads", None))

        def remove() -> None:
            kept = [(t, w) for t, w in zip(self._taps, self._wants, strict=True) if t is not entry]
            self._taps = tuple(t for t, _ in kept)
            self._wants = tuple(w for _, w in kept)

        return remove

    @property
    def taps(self) -> tuple[str, ...]:
        """The names of the taps, in the order they run."""
        return tuple(name for name, _ in self._taps)
