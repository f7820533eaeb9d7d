"""Plain counters updated on the hot path and read by the Prometheus collector.

Rules: incrementing an int attribute costs nanoseconds; a prometheus_client Counter
takes a lock. Hot paths bump these; ``metrics.py`` exports them at scrape time.
"""

from __future__ import annotations


class Stats:
    """Gateway-wide counters (monotonic unless named as a current value)."""

    __slots__ = (
        "book_events",
        "client_messages_in",
        "conflated_closed",
        "connections_total",
        "degrade_transitions",
        "degraded_streams",
        "early_writes",
        "events_by_kind",
        "failbacks",
        "failovers",
        "feed_transitions",
        "frames_out",
        "items_out",
        "overload_closes",
        "provider_restarts",
        "refusals",
        "resumed_streams",
        "slow_aborts",
        "slow_closes",
        "standby_events",
        "suspended_updates",
        "write_throughs",
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
        # order-book checks of past provider connections, by (provider, outcome)
        self.book_events: dict[tuple[str, str], int] = {}
        self.refusals: dict[str, int] = {}  # connections and credentials refused, by reason
        self.slow_closes = 0  # connections closed (1013) for not taking what was written
        self.slow_aborts = 0  # of those, aborted: they stopped taking data after the close
        self.overload_closes = 0  # readers closed because the gateway could not write to them
        self.conflated_closed = 0  # updates replaced in outboxes of closed connections
        self.write_throughs = 0  # outboxes over budget written out early (the gateway's lag)
        # batch 0: writes made within a pass so that a quote is not replaced by its
        # successor of the same pass (Outbox.conflating)
        self.early_writes = 0
        # degrade before disconnecting (hub/degrade.py): transitions by the state entered
        self.degrade_transitions: dict[str, int] = {}
        self.degraded_streams = 0  # reliable streams suspended (a degraded message each)
        self.resumed_streams: dict[str, int] = {}  # streams resumed, by how: replay, reset
        self.suspended_updates = 0  # updates of suspended streams not queued (replayed or reset)
