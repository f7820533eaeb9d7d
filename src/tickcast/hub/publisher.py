"""Publisher: the one way producers put events on the hub; taps: how services listen.

Rules: pure, given its clocks. Every producer (the providers' batches through the node,
the portfolio service, a value a front computes for a new subscriber) calls
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
from typing import Protocol

from tickcast.hub.hub import Hub
from tickcast.hub.sequencer import Sequencer
from tickcast.model.envelope import Envelope
from tickcast.model.topic import Event
from tickcast.observability.faults import Faults

#: A service listening to what is published: called with each batch, stamped and fanned out.
Tap = Callable[[Sequence[Envelope]], None]


class Publisher(Protocol):
    """What a producer needs: publish a batch of events (stamped, fanned out, tapped)."""

    def publish(self, events: Sequence[Event]) -> None: ...


class Discard:
    """A publisher that publishes nothing: for a service used with no hub (tools that
    only record, such as the demo's seeding)."""

    def publish(self, events: Sequence[Event]) -> None:
        pass


def _nothing() -> None:
    pass


class LocalPublisher:
    """Stamps locally, fans out on the local hub, then calls the taps.

    Args:
        sequencer: numbers every batch; the hub's own (``hub.sequencer``), so that the
            hub's current epoch is the one its envelopes carry.
        hub: fans the stamped envelopes out.
        faults: where a raising tap is reported (``"tap"``).
        wall: wall clock, epoch seconds UTC: each batch's server time.
        on_pass: called once per batch before the fan-out (the node sets the pump's pass
            time there, which connections read when they queue).
    """

    __slots__ = ("_on_pass", "_taps", "faults", "hub", "sequencer", "wall")

    def __init__(
        self,
        sequencer: Sequencer,
        hub: Hub,
        faults: Faults,
        *,
        wall: Callable[[], float],
        on_pass: Callable[[], None] = _nothing,
    ) -> None:
        self.sequencer = sequencer
        self.hub = hub
        self.faults = faults
        self.wall = wall
        self._on_pass = on_pass
        # replaced, never mutated: a tap added or removed while the taps run takes effect
        # from the next batch
        self._taps: tuple[tuple[str, Tap], ...] = ()

    def publish(self, events: Sequence[Event]) -> None:
        """Stamp ``events`` (one batch, one server time), fan them out, then tap them."""
        if not events:
            return
        self._on_pass()
        envelopes = self.sequencer.stamp(events, self.wall())
        self.hub.fan_out(envelopes)
        for name, tap in self._taps:
            try:
                tap(envelopes)
            except Exception as exc:  # a service's bug must not stop the feed or the batch
                self.faults.report("tap", exc, tap=name, envelopes=len(envelopes))

    def tap(self, fn: Tap, *, name: str) -> Callable[[], None]:
        """Call ``fn`` with every batch published from now on; returns what removes it
        (idempotent)."""
        entry = (name, fn)
        self._taps = (*self._taps, entry)

        def remove() -> None:
            self._taps = tuple(t for t in self._taps if t is not entry)

        return remove

    @property
    def taps(self) -> tuple[str, ...]:
        """The names of the taps, in the order they run."""
        return tuple(name for name, _ in self._taps)
