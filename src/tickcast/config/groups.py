"""Settings groups: each component's own slice of the settings.

``Settings`` (``settings.py``) stays the loader's schema: one flat model, so the
``TICKCAST_*`` variables, the TOML keys and the flags keep their names. Each group here
is a frozen copy of some of its fields, under the same names, with the same types and
meaning (see ``Settings`` for units and what 0 means); ``Settings.server``,
``.limits``, ``.outbox``, ``.upstream``, ``.auth``, ``.storage`` and ``.realtime``
return them. Every field of ``Settings`` is in exactly one group, so a component that
takes its group takes only what it uses, and a new setting has to say whose it is.

``SettingsGroups`` is the groups by name, without the flat fields: what a part takes
when it picks its own group at composition (a front's factory), so that it reaches no
setting except through a group. ``Settings`` is one.

Pure data: nothing here reads the environment or validates; the values were validated
when ``Settings`` was built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import SecretStr


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The HTTP/WebSocket server: where it listens, its socket limits and its logs."""

    host: str
    port: int
    max_message_bytes: int
    handshake_timeout_s: float
    close_timeout_s: float
    ws_ping_interval_s: float
    ws_ping_timeout_s: float
    idle_timeout_s: float
    permessage_deflate: bool
    ws_fast_path: bool
    test_echo: bool
    sockjs_heartbeat_s: float
    sockjs_disconnect_delay_s: float
    sockjs_response_limit: int
    log_level: Literal["debug", "info", "warning", "error"]
    log_format: Literal["json", "console"]


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    """Per-connection and per-client limits: subscriptions, connection caps, inbound rate."""

    max_subscriptions: int
    max_connections_per_user: int
    max_anonymous_connections_per_address: int
    ipv6_client_prefix: int
    rate_limit_per_s: float
    rate_limit_burst: int


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """Fan-out: the batching window, a client's outbox budget and how a slow client is
    degraded before it is closed, history and overload."""

    batch_ms: float
    outbox_max_items: int
    outbox_max_bytes: int
    slow_client_timeout_s: float
    history_size: int
    overload_lag_s: float
    degrade_soft: float
    degrade_low: float
    degrade_grace_s: float
    degrade_hold_s: float
    degrade_rate: float


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """The upstream feed: the providers in order, the simulator, failover, vendors."""

    feed: tuple[str, ...]
    symbols: tuple[str, ...]
    rate: float
    seed: int
    calendar: str
    simulator_max_backlog_s: float
    simulator_bar_s: int
    simulator_interval_ms: float
    feed_stale_s: float
    feed_failback_s: float
    feed_backoff_base_s: float
    feed_backoff_cap_s: float
    feed_limit_backoff_s: float
    dead_letters: int
    alpaca_url: str
    polygon_url: str
    replay_file: Path | None
    replay_speed: float
    replay_loop: bool
    alpaca_key_id: SecretStr | None
    alpaca_secret_key: SecretStr | None
    polygon_api_key: SecretStr | None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Who a client is and what it may do: tokens, anonymity, origins, trusted proxies."""

    jwt_secret: SecretStr | None
    jwt_ttl_s: float
    allow_anonymous: bool
    allowed_origins: tuple[str, ...]
    auth_timeout_s: float
    trusted_proxies: tuple[str, ...]
    forwarded_headers: Literal["x-forwarded", "forwarded"]


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """The database."""

    database_url: str


@dataclass(frozen=True, slots=True)
class RealtimeSettings:
    """Front 2's pushed values and the price-feed service's batches."""

    update_interval_s: float
    cache_timeout_s: float
    batch_size: int


@dataclass(frozen=True, slots=True)
class SignalsSettings:
    """Trading signals: the built-in engine, ingestion from Redis, the history, and the
    Socket.IO front (Front 5) that broadcasts them."""

    signals_engine: bool
    signals_fast: int
    signals_slow: int
    signals_rsi_period: int
    signals_oversold: float
    signals_overbought: float
    signals_cooldown_s: float
    signals_redis_url: SecretStr | None
    signals_channel: str
    signals_history_size: int
    signals_history_window_s: float
    signals_max_symbols: int
    socketio_ping_interval_s: int
    socketio_ping_timeout_s: float


@dataclass(frozen=True, slots=True)
class LeaderboardSettings:
    """The public leaderboard (Front 4): who may read it, its snapshots and windows."""

    leaderboard_public: bool
    leaderboard_snapshot_s: float
    leaderboard_window_ms: float
    leaderboard_snapshot_limit: int
    leaderboard_max_top: int
    leaderboard_max_window: int


@dataclass(frozen=True, slots=True)
class MonitoringSettings:
    """The monitoring streams (Front 4, operators only) and the alert rules."""

    monitoring_interval_s: float
    alert_cooldown_s: float
    alert_cpu_percent: float
    alert_memory_percent: float
    alert_disk_percent: float
    alert_latency_p99_ms: float
    alert_stale_feed_s: float
    alert_outbox_depth: int
    dlq_preview_bytes: int


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """Scale-out: the bus that joins the nodes, this node's name, the upstream lease."""

    bus_url: SecretStr
    bus_prefix: str
    node_id: str | None
    lease_ttl_s: float
    heartbeat_s: float


class SettingsGroups(Protocol):
    """Every group, by name (``Settings`` is one): for a part that picks its own group
    at composition, such as a front's factory (``fronts/registry.py``)."""

    @property
    def server(self) -> ServerSettings: ...

    @property
    def limits(self) -> LimitsSettings: ...

    @property
    def outbox(self) -> OutboxSettings: ...

    @property
    def upstream(self) -> FeedSettings: ...

    @property
    def auth(self) -> AuthSettings: ...

    @property
    def storage(self) -> StorageSettings: ...

    @property
    def realtime(self) -> RealtimeSettings: ...

    @property
    def signals(self) -> SignalsSettings: ...

    @property
    def leaderboard(self) -> LeaderboardSettings: ...

    @property
    def monitoring(self) -> MonitoringSettings: ...

    @property
    def cluster(self) -> ClusterSettings: ...
