"""A publisher that records: a service tested without a hub publishes into a list."""

from __future__ import annotations

from collections.abc import Sequence

from tickcast.model.topic import Event


class Recording:
    """Keeps every event it is asked to publish, in order, in ``events``."""

    def __init__(self, events: list[Event] | None = None) -> None:
        self.events: list[Event] = [] if events is None else events

    def publish(self, events: Sequence[Event]) -> None:
        self.events.extend(events)
