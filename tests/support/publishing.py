"""Publishing in tests: a publisher that records (a service tested without a hub
publishes into a list), and a hub's own sequencer stamping a batch straight onto it."""

from __future__ import annotations

from collections.abc import Sequence

from tickcast.hub.hub import Hub
from tickcast.model.topic import Event


class Recording:
    """Keeps every event it is asked to publish, in order, in ``events``."""

    def __init__(self, events: list[Event] | None = None) -> None:
        self.events: list[Event] = [] if events is None else events

    def publish(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


def stamp_and_fan_out(
    hub: Hub, events: Sequence[Event], server_ts: float, now: float = 0.0
) -> None:
    """Stamp ``events`` with ``hub``'s sequencer at ``server_ts`` (wall) and fan them out
    at ``now`` (monotonic): what ``LocalPublisher`` does, without its clock or taps."""
    hub.fan_out(hub.sequencer.stamp(events, server_ts), now)
