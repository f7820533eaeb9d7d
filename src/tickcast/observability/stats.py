"""Plain counters updated on the hot path and read by the Prometheus collector.

Rules: incrementing an int attribute costs nanoseconds; a prometheus_client Counter
takes a lock. Hot paths bump these; ``metrics.py`` exports them at scrape time.
"""

from __future__ import annotations


class Stats:
    """Gateway-wide counters (monotonic unless named as a current value)."""

    __slots__ = (
        "client_messages_in",
        "connections_total",
        "events_by_kind",
        "failbacks",
        "failovers",
        "feed_transitions",
        "frames_out",
        "items_out",
        "provider_restarts",
        "refusals",
        "slow_closes",
        "standby_events",
    )

    def __init__(self) -> None:
        self.events_by_kind: dict[str, int] = {}  # ingested from providers: quote, trade...
        self.client_messages_in = 0  # messages received from clients
        self.items_out = 0  # data and control messages written to clients
        self.frames_out = 0  # WebSocket frames written (array frames carry many items)
        self.connections_total = 0
        self.provider_restarts = 0  # provider runs that ended (failed, stale, refused)
        self.failovers = 0  # the feed moved to a less preferred provider
        self.failbacks = 0  # the feed moved back to a more preferred provider
        self.feed_transitions = 0  # provider state changes (each one a status message)
        self.standby_events = 0  # events from recovering providers, not published
        self.refusals: dict[str, int] = {}  # connections and credentials refused, by reason
        self.slow_closes = 0  # connections closed because their outbox overflowed
