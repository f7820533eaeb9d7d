"""Settings: every knob of the gateway, with its unit and what 0 means.

Loaded once (``load.py``) and passed down explicitly; nothing reads the environment at
import time.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tickcast.auth.forwarded import validate_trusted_proxies
from tickcast.config.defaults import DEFAULT_SYMBOLS
from tickcast.config.groups import (
    AuthSettings,
    ClusterSettings,
    FeedSettings,
    LeaderboardSettings,
    LimitsSettings,
    MonitoringSettings,
    OutboxSettings,
    RealtimeSettings,
    ServerSettings,
    SignalsSettings,
    StorageSettings,
)
from tickcast.errors import ConfigError

#: The settings file for the Settings being built (set by ``load_settings``).
settings_file: ContextVar[Path | None] = ContextVar("settings_file", default=None)


class Settings(BaseSettings):
    """Gateway settings. Environment variables are ``TICKCAST_<NAME>``.

    Attributes:
        host, port: where the HTTP/WebSocket server listens.
        symbols: the simulator's universe; also the symbols clients may subscribe to.
        rate: simulator quote ticks per second, across all symbols.
        seed: simulator random seed (same seed, same market).
        calendar: "always" (market always open) or an exchange code such as "XNYS",
            whose real sessions and holidays the simulator's equities then follow.
        batch_ms: batching window per client in milliseconds; 0 = no window (each
            event-loop pass writes what arrived, one write per connection).
        outbox_max_items, outbox_max_bytes: a client's outbox budget, in messages and in
            bytes of payload (0 bytes = no byte limit). Over budget while the client's
            socket takes data, the outbox is written out at once (the gateway fell
            behind, not the client); over budget while the socket has refused data since
            an earlier pass, the client is slow and closed with 1013.
        slow_client_timeout_s: how long a client's socket may refuse data (the client
            does not read) while non-conflatable data (trades, bars, book) waits for it,
            before it is closed with 1013; time the gateway's own event loop was stalled
            does not count.
        degrade_soft, degrade_low: a slow client's soft and low marks, as fractions of
            its outbox budget (items or bytes; the budget itself is the hard mark). From
            the soft mark its conflatable streams are conflated at ``degrade_rate``, and
            if that does not bring it under the soft mark within ``degrade_grace_s`` its
            reliable streams are suspended (a ``degraded`` message each); under the low
            mark (after ``degrade_hold_s`` suspended) they resume from history. 0 for
            ``degrade_soft`` = never degrade (closed at the budget). Fronts that can say
            so only (the market feed).
        degrade_grace_s: how long conflating may try before reliable streams are suspended.
        degrade_hold_s: the least time reliable streams stay suspended.
        degrade_rate: messages a second per conflatable topic while a client is degraded.
        simulator_max_backlog_s: the most simulated time one simulator wake-up catches
            up on; when the gateway falls further behind, older ticks are skipped and
            counted (tickcast_skipped_events_total); 0 = catch up on everything.
        simulator_bar_s: the simulator's bar length in seconds (``serve --demo`` makes
            it 5 unless it is set, so that the demo's signal rules warm up in minutes).
        simulator_interval_ms: milliseconds between the simulator's wake-ups, each
            delivering the ticks due since the one before; 0 = the default cadence (one
            wake-up per tick, at most one every 5 ms). Smaller delivers each tick closer
            to its timestamp, at the cost of more wake-ups.
        overload_lag_s: event-loop lag at which the gateway reports itself overloaded (a
            warning, tickcast_overloaded); 0 = never.
        history_size: updates kept per topic for resume; 0 disables resume.
        max_subscriptions: topics (symbol x channel) per connection.
        max_message_bytes: largest inbound WebSocket message; larger closes with 1009.
        handshake_timeout_s: time to send a complete request head; 0 disables.
        close_timeout_s: time a peer gets to answer our close before we abort.
        ws_ping_interval_s, ws_ping_timeout_s: protocol-level keepalive; 0 disables.
        idle_timeout_s: close a client that sends nothing for this long (3008); 0 disables.
        permessage_deflate: negotiate compression (off: it costs CPU per connection and
            per message, and inflation must be bounded).
        ws_fast_path: under tickcast's uvicorn protocol, a front's WebSocket runs from
            the protocol's ``data_received`` once open (no task, no queue per
            connection); off: through the ASGI receive loop, as under any server.
        sockjs_heartbeat_s: SockJS (``/stomp``): an ``h`` frame to a receiving request
            after this long without a frame (SockJS's 25 s).
        sockjs_disconnect_delay_s: a SockJS session with no receiving request (between
            two polls, say) ends after this long, and what it held is released.
        sockjs_response_limit: bytes of frames one streaming SockJS response
            (xhr_streaming, eventsource) carries before it ends and the client opens
            the next (1 MiB: each response is a whole HTTP request's work; SockJS's
            own 128 KiB made that about 8 % of xhr-streaming's CPU at W1).
        log_level, log_format: logging; "json" writes one JSON object per line.
        test_echo: serve /ws/echo (WebSocket conformance tests only).

    Upstream feed (providers):
        feed: providers in order of preference, e.g. ("alpaca", "polygon", "simulator");
            the first healthy one feeds the hub, the others are fail-overs.
        feed_stale_s: no data for this long while the market is open counts as a silent
            upstream (reconnect or fail over); 0 disables the check.
        feed_failback_s: a preferred provider that recovered must deliver data for this
            long before it takes over again from a fail-over.
        feed_backoff_base_s, feed_backoff_cap_s: reconnect back-off (full jitter).
        feed_limit_backoff_s: the least wait after a connection-limit refusal (Alpaca
            406, Polygon max_connections), so that a limit never causes a storm.
        dead_letters: unparseable upstream messages kept for /feed/dead-letters.
        alpaca_url: the Alpaca stream endpoint, feed path included (``.../v2/iex``,
            ``.../v2/sip``, ``.../v2/test``, ``.../v1beta3/crypto/us``).
        polygon_url: the Polygon stocks stream (``wss://delayed.polygon.io/stocks``
            for the 15-minute delayed cluster).
        replay_file: a JSON-lines recording made by ``tickcast record``.
        replay_speed: 1 = real time, N = N times faster, 0 = as fast as possible.
        replay_loop: start over at the end of the file (timestamps move forward).

    Accounts, auth and limits (every front):
        database_url: SQLAlchemy async URL; the default is a SQLite file created and
            migrated on first start; ``postgresql+asyncpg://user@host/db`` for production.
        jwt_secret: HS256 key for signed tokens; None = a random key per process (tokens
            then die with it; a warning says so).
        jwt_ttl_s: lifetime of the tokens the gateway issues, in seconds.
        allow_anonymous: whether clients without credentials may read public market data.
        allowed_origins: Origin header values allowed on WebSockets; empty = any (a
            browser-facing deployment should list its sites); others are closed with 1008.
        auth_timeout_s: time a client has to authenticate by its first message.
        max_connections_per_user: open WebSockets per authenticated user (the market
            fronts together; each monitoring stream path on its own).
        rate_limit_per_s, rate_limit_burst: inbound messages per connection (token bucket).
        max_anonymous_connections_per_address: open anonymous WebSockets per client
            address (an IPv6 client's /64); authenticated ones count against their user
            instead; 0 = no cap.
        ipv6_client_prefix: the IPv6 prefix length one client is counted by for that
            cap (64: a subscriber's usual block; 16-128). IPv6 addresses that embed an
            IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4, Teredo) count as it.
        trusted_proxies: addresses or CIDRs (``10.0.0.0/8``) of the reverse proxies whose
            ``Forwarded`` / ``X-Forwarded-For``/``-Proto``/``-Host`` headers say who the
            client is; empty = believe no forwarding header (the TCP peer is the client).
            Parsed strictly (``auth.forwarded.parse_network``): no empty entries, host
            names, host bits (``10.0.0.5/8``), zones or ``0.0.0.0/0``.
        forwarded_headers: the one header family read from a trusted proxy:
            ``x-forwarded`` (``X-Forwarded-For``/``-Proto``/``-Host``) or ``forwarded``
            (RFC 7239 ``Forwarded``); the other family is ignored, since a proxy passes
            through, unchecked, the family it does not write.

    Front 2 (the realtime envelope):
        update_interval_s: how often portfolio values and asset updates are pushed.
        batch_size: the most prices per batch written by ``tickcast feed``.
        cache_timeout_s: how old the last published asset or portfolio update may be
            and still be sent to a new subscriber as its first message; older, a fresh
            one is computed.

    Trading signals and Front 5 (Socket.IO):
        signals_engine: run the built-in signal rules over the live bars.
        signals_fast, signals_slow: the moving-average crossover's periods, in bars.
        signals_rsi_period: the RSI's period, in bars.
        signals_oversold, signals_overbought: RSI levels for BUY and SELL.
        signals_cooldown_s: seconds of bar time between two signals of one rule on one
            symbol and timeframe.
        signals_redis_url: a Redis URL (``redis://127.0.0.1:6379/0``) to ingest signals
            from by pub/sub; None (the default) = no Redis.
        signals_channel: the Redis pub/sub channel signals arrive on.
        signals_history_size: signals kept for catch-up (``GET /api/signals``, resume).
        signals_history_window_s: the oldest signal kept, in seconds of age.
        signals_max_symbols: distinct symbols outside the feed's universe that signals
            may name (each is a topic kept for the process's life); more are refused.
        socketio_ping_interval_s, socketio_ping_timeout_s: Engine.IO's heartbeat (the
            interval in whole seconds: python-engineio announces it truncated).

    The leaderboard (Front 4):
        leaderboard_public: anyone may read the leaderboard (streams and routes); False:
            a signed-in user only.
        leaderboard_snapshot_s: seconds between two full snapshots on ``/ws/updates``.
        leaderboard_window_ms: the batching window of rank changes: ``update`` and
            ``top-performers`` messages go at most once per window.
        leaderboard_snapshot_limit: entries in a snapshot (the best ones); 0 = the whole
            board.
        leaderboard_max_top: the largest ``n`` of ``/ws/top``.
        leaderboard_max_window: the largest ``window`` of ``/ws/around``.

    Monitoring (Front 4, operators only):
        monitoring_interval_s: seconds between two system metrics, pipeline and
            telemetry messages, and two evaluations of the alert rules.
        alert_cooldown_s: seconds after an alert resolves before the same alert may open
            again.
        alert_cpu_percent, alert_memory_percent, alert_disk_percent: usage thresholds,
            in percent.
        alert_latency_p99_ms: the end-to-end latency p99 threshold, in milliseconds.
        alert_stale_feed_s: seconds without a market message, while the market is open,
            before the feed counts as stale.
        alert_outbox_depth: items queued in the clients' outboxes, all together, before
            an alert opens.
        dlq_preview_bytes: the longest preview of a dead letter's payload, in bytes.

    Scale-out (several nodes over a bus):
        bus_url: what joins the nodes: ``memory://`` (the default: one node, nothing to
            start), ``redis://host:port/db`` or ``nats://host:port`` (a real engine, for
            two nodes or more). A secret: it may carry a password.
        bus_prefix: the prefix of every bus subject and key, so that two clusters can
            share one Redis or NATS server.
        node_id: this node's name in the cluster; None: ``<host name>:<port>``.
        lease_ttl_s: seconds the upstream lease lasts unless renewed (renewed every
            third of it): how long a dead leader holds the upstream, at most.
        heartbeat_s: seconds between two of a node's heartbeats on the bus; a node not
            heard from for three of them has left the cluster.

    Credentials come from the environment only, never from flags or TICKCAST_* names:
    ``ALPACA_API_KEY_ID``, ``ALPACA_API_SECRET_KEY``, ``POLYGON_API_KEY`` (or
    ``MASSIVE_API_KEY``, the vendor's name since its rebrand).

    Groups: this flat model is the loader's schema. The properties ``server``,
    ``limits``, ``outbox``, ``upstream``, ``auth``, ``storage``, ``realtime``,
    ``signals``, ``leaderboard``, ``monitoring`` and ``cluster`` return
    frozen slices of it (``config/groups.py``), so that a component can be given only its
    own; every field is in exactly one group.
    """

    model_config = SettingsConfigDict(
        env_prefix="TICKCAST_",
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        # a refusal names the setting and why, never the value: URLs carry passwords
        hide_input_in_errors=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    symbols: Annotated[tuple[str, ...], NoDecode] = DEFAULT_SYMBOLS
    rate: float = Field(50.0, gt=0, le=1_000_000)
    seed: int = 42
    calendar: str = "always"
    batch_ms: float = Field(100.0, ge=0, le=60_000)
    outbox_max_items: int = Field(65536, ge=16)
    outbox_max_bytes: int = Field(8 * 1024 * 1024, ge=0)
    slow_client_timeout_s: float = Field(2.0, gt=0)
    degrade_soft: float = Field(0.5, ge=0, le=1)
    degrade_low: float = Field(0.125, ge=0, lt=1)
    degrade_grace_s: float = Field(1.0, ge=0)
    degrade_hold_s: float = Field(1.0, ge=0)
    degrade_rate: float = Field(2.0, gt=0, le=1000)
    simulator_max_backlog_s: float = Field(0.1, ge=0)
    simulator_bar_s: int = Field(60, ge=1)
    simulator_interval_ms: float = Field(0.0, ge=0, le=1000)
    overload_lag_s: float = Field(0.25, ge=0)
    history_size: int = Field(256, ge=0)
    max_subscriptions: int = Field(50, ge=1)
    max_message_bytes: int = Field(64 * 1024, ge=256)
    handshake_timeout_s: float = Field(10.0, ge=0)
    close_timeout_s: float = Field(5.0, gt=0)
    ws_ping_interval_s: float = Field(20.0, ge=0)
    ws_ping_timeout_s: float = Field(20.0, ge=0)
    idle_timeout_s: float = Field(0.0, ge=0)
    permessage_deflate: bool = False
    ws_fast_path: bool = True
    sockjs_heartbeat_s: float = Field(25.0, gt=0)
    sockjs_disconnect_delay_s: float = Field(5.0, gt=0)
    sockjs_response_limit: int = Field(1024 * 1024, ge=4096)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "console"
    test_echo: bool = False

    feed: Annotated[tuple[str, ...], NoDecode] = ("simulator",)
    feed_stale_s: float = Field(15.0, ge=0)
    feed_failback_s: float = Field(10.0, ge=0)
    feed_backoff_base_s: float = Field(0.5, gt=0)
    feed_backoff_cap_s: float = Field(30.0, gt=0)
    feed_limit_backoff_s: float = Field(30.0, ge=0)
    dead_letters: int = Field(1000, ge=1)
    alpaca_url: str = "wss://stream.data.alpaca.markets/v2/iex"
    polygon_url: str = "wss://socket.polygon.io/stocks"
    replay_file: Path | None = None
    replay_speed: float = Field(1.0, ge=0, allow_inf_nan=False)
    replay_loop: bool = False

    database_url: str = "sqlite+aiosqlite:///tickcast.db"
    jwt_secret: SecretStr | None = None
    jwt_ttl_s: float = Field(3600.0, gt=0)
    allow_anonymous: bool = True
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    auth_timeout_s: float = Field(10.0, gt=0)
    max_connections_per_user: int = Field(5, ge=1)
    rate_limit_per_s: float = Field(20.0, gt=0)
    rate_limit_burst: int = Field(40, ge=1)
    max_anonymous_connections_per_address: int = Field(10, ge=0)
    ipv6_client_prefix: int = Field(64, ge=16, le=128)
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    forwarded_headers: Literal["x-forwarded", "forwarded"] = "x-forwarded"
    update_interval_s: float = Field(1.0, gt=0)
    batch_size: int = Field(100, ge=1)
    cache_timeout_s: float = Field(1.0, ge=0)
    signals_engine: bool = True
    signals_fast: int = Field(9, ge=1)
    signals_slow: int = Field(21, ge=2)
    signals_rsi_period: int = Field(14, ge=1)
    signals_oversold: float = Field(30.0, ge=0, le=100)
    signals_overbought: float = Field(70.0, ge=0, le=100)
    signals_cooldown_s: float = Field(300.0, ge=0)
    signals_redis_url: SecretStr | None = None
    signals_channel: str = Field("signals", min_length=1)
    signals_history_size: int = Field(1000, ge=0)
    signals_history_window_s: float = Field(3600.0, gt=0)
    signals_max_symbols: int = Field(10_000, ge=0)
    socketio_ping_interval_s: int = Field(25, ge=1)
    socketio_ping_timeout_s: float = Field(20.0, gt=0)
    leaderboard_public: bool = True
    leaderboard_snapshot_s: float = Field(30.0, gt=0)
    leaderboard_window_ms: float = Field(1000.0, ge=0)
    leaderboard_snapshot_limit: int = Field(1000, ge=0)
    leaderboard_max_top: int = Field(100, ge=1)
    leaderboard_max_window: int = Field(50, ge=0)
    monitoring_interval_s: float = Field(5.0, gt=0)
    alert_cooldown_s: float = Field(300.0, ge=0)
    alert_cpu_percent: float = Field(90.0, gt=0, le=100)
    alert_memory_percent: float = Field(90.0, gt=0, le=100)
    alert_disk_percent: float = Field(90.0, gt=0, le=100)
    alert_latency_p99_ms: float = Field(500.0, gt=0)
    alert_stale_feed_s: float = Field(30.0, gt=0)
    alert_outbox_depth: int = Field(100_000, ge=1)
    dlq_preview_bytes: int = Field(512, ge=16)
    bus_url: SecretStr = SecretStr("memory://")
    bus_prefix: str = Field("tickcast", min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    node_id: str | None = Field(None, min_length=1, max_length=200)
    lease_ttl_s: float = Field(5.0, ge=0.3)
    heartbeat_s: float = Field(1.0, gt=0)

    alpaca_key_id: SecretStr | None = Field(None, validation_alias="ALPACA_API_KEY_ID")
    alpaca_secret_key: SecretStr | None = Field(None, validation_alias="ALPACA_API_SECRET_KEY")
    polygon_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("POLYGON_API_KEY", "MASSIVE_API_KEY")
    )

    # -- groups: each component's own slice (config/groups.py); every field is in one

    @property
    def server(self) -> ServerSettings:
        """The HTTP/WebSocket server: listening, socket limits, logs."""
        return ServerSettings(
            host=self.host,
            port=self.port,
            max_message_bytes=self.max_message_bytes,
            handshake_timeout_s=self.handshake_timeout_s,
            close_timeout_s=self.close_timeout_s,
            ws_ping_interval_s=self.ws_ping_interval_s,
            ws_ping_timeout_s=self.ws_ping_timeout_s,
            idle_timeout_s=self.idle_timeout_s,
            permessage_deflate=self.permessage_deflate,
            ws_fast_path=self.ws_fast_path,
            test_echo=self.test_echo,
            sockjs_heartbeat_s=self.sockjs_heartbeat_s,
            sockjs_disconnect_delay_s=self.sockjs_disconnect_delay_s,
            sockjs_response_limit=self.sockjs_response_limit,
            log_level=self.log_level,
            log_format=self.log_format,
        )

    @property
    def limits(self) -> LimitsSettings:
        """Subscriptions, connection caps and the inbound rate."""
        return LimitsSettings(
            max_subscriptions=self.max_subscriptions,
            max_connections_per_user=self.max_connections_per_user,
            max_anonymous_connections_per_address=self.max_anonymous_connections_per_address,
            ipv6_client_prefix=self.ipv6_client_prefix,
            rate_limit_per_s=self.rate_limit_per_s,
            rate_limit_burst=self.rate_limit_burst,
        )

    @property
    def outbox(self) -> OutboxSettings:
        """Fan-out: batching window, outbox budget, history, overload."""
        return OutboxSettings(
            batch_ms=self.batch_ms,
            outbox_max_items=self.outbox_max_items,
            outbox_max_bytes=self.outbox_max_bytes,
            slow_client_timeout_s=self.slow_client_timeout_s,
            history_size=self.history_size,
            overload_lag_s=self.overload_lag_s,
            degrade_soft=self.degrade_soft,
            degrade_low=self.degrade_low,
            degrade_grace_s=self.degrade_grace_s,
            degrade_hold_s=self.degrade_hold_s,
            degrade_rate=self.degrade_rate,
        )

    @property
    def upstream(self) -> FeedSettings:
        """The upstream feed (``feed`` itself is the field naming the providers)."""
        return FeedSettings(
            feed=self.feed,
            symbols=self.symbols,
            rate=self.rate,
            seed=self.seed,
            calendar=self.calendar,
            simulator_max_backlog_s=self.simulator_max_backlog_s,
            simulator_bar_s=self.simulator_bar_s,
            simulator_interval_ms=self.simulator_interval_ms,
            feed_stale_s=self.feed_stale_s,
            feed_failback_s=self.feed_failback_s,
            feed_backoff_base_s=self.feed_backoff_base_s,
            feed_backoff_cap_s=self.feed_backoff_cap_s,
            feed_limit_backoff_s=self.feed_limit_backoff_s,
            dead_letters=self.dead_letters,
            alpaca_url=self.alpaca_url,
            polygon_url=self.polygon_url,
            replay_file=self.replay_file,
            replay_speed=self.replay_speed,
            replay_loop=self.replay_loop,
            alpaca_key_id=self.alpaca_key_id,
            alpaca_secret_key=self.alpaca_secret_key,
            polygon_api_key=self.polygon_api_key,
        )

    @property
    def auth(self) -> AuthSettings:
        """Tokens, anonymous access, origins and trusted proxies."""
        return AuthSettings(
            jwt_secret=self.jwt_secret,
            jwt_ttl_s=self.jwt_ttl_s,
            allow_anonymous=self.allow_anonymous,
            allowed_origins=self.allowed_origins,
            auth_timeout_s=self.auth_timeout_s,
            trusted_proxies=self.trusted_proxies,
            forwarded_headers=self.forwarded_headers,
        )

    @property
    def storage(self) -> StorageSettings:
        """The database."""
        return StorageSettings(database_url=self.database_url)

    @property
    def realtime(self) -> RealtimeSettings:
        """Front 2's pushed values and the price-feed service's batches."""
        return RealtimeSettings(
            update_interval_s=self.update_interval_s,
            cache_timeout_s=self.cache_timeout_s,
            batch_size=self.batch_size,
        )

    @property
    def signals(self) -> SignalsSettings:
        """Trading signals and the Socket.IO front."""
        return SignalsSettings(
            signals_engine=self.signals_engine,
            signals_fast=self.signals_fast,
            signals_slow=self.signals_slow,
            signals_rsi_period=self.signals_rsi_period,
            signals_oversold=self.signals_oversold,
            signals_overbought=self.signals_overbought,
            signals_cooldown_s=self.signals_cooldown_s,
            signals_redis_url=self.signals_redis_url,
            signals_channel=self.signals_channel,
            signals_history_size=self.signals_history_size,
            signals_history_window_s=self.signals_history_window_s,
            signals_max_symbols=self.signals_max_symbols,
            socketio_ping_interval_s=self.socketio_ping_interval_s,
            socketio_ping_timeout_s=self.socketio_ping_timeout_s,
        )

    @property
    def leaderboard(self) -> LeaderboardSettings:
        """The public leaderboard and its streams."""
        return LeaderboardSettings(
            leaderboard_public=self.leaderboard_public,
            leaderboard_snapshot_s=self.leaderboard_snapshot_s,
            leaderboard_window_ms=self.leaderboard_window_ms,
            leaderboard_snapshot_limit=self.leaderboard_snapshot_limit,
            leaderboard_max_top=self.leaderboard_max_top,
            leaderboard_max_window=self.leaderboard_max_window,
        )

    @property
    def monitoring(self) -> MonitoringSettings:
        """The monitoring streams and the alert rules' thresholds."""
        return MonitoringSettings(
            monitoring_interval_s=self.monitoring_interval_s,
            alert_cooldown_s=self.alert_cooldown_s,
            alert_cpu_percent=self.alert_cpu_percent,
            alert_memory_percent=self.alert_memory_percent,
            alert_disk_percent=self.alert_disk_percent,
            alert_latency_p99_ms=self.alert_latency_p99_ms,
            alert_stale_feed_s=self.alert_stale_feed_s,
            alert_outbox_depth=self.alert_outbox_depth,
            dlq_preview_bytes=self.dlq_preview_bytes,
        )

    @property
    def cluster(self) -> ClusterSettings:
        """The bus, this node's name and the upstream lease."""
        return ClusterSettings(
            bus_url=self.bus_url,
            bus_prefix=self.bus_prefix,
            node_id=self.node_id,
            lease_ttl_s=self.lease_ttl_s,
            heartbeat_s=self.heartbeat_s,
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Priority: init values (CLI flags) > environment > settings file > defaults."""
        path = settings_file.get()
        if path is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, path))

    @field_validator("feed", mode="before")
    @classmethod
    def _split_feed(cls, value: Any) -> Any:
        return _split_names(value, str.lower, "at least one provider is required")

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("jwt_secret must be at least 32 bytes (RFC 7518, section 3.2)")
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):  # empty entries are kept, and refused (a stray comma)
            return tuple(p.strip() for p in value.split(",")) if value.strip() else ()
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return validate_trusted_proxies(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        return _split_names(value, str.upper, "at least one symbol is required")

    @field_validator("signals_redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises for what is not a port (a password's / # ?)
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme not in ("redis", "rediss", "unix")
            or not (parts.hostname or parts.scheme == "unix")
        ):
            raise ValueError(
                "signals_redis_url must be redis://[user:password@]host[:port][/db] "
                "(rediss:// for TLS); a password holding / # ? @ or : is written "
                "percent-encoded (%2F %23 %3F %40 %3A)"
            )
        return value

    @model_validator(mode="after")
    def _degrade_marks(self) -> Settings:
        if self.degrade_soft and self.degrade_low >= self.degrade_soft:
            raise ValueError("degrade_low must be less than degrade_soft")
        return self

    @model_validator(mode="after")
    def _signal_rules(self) -> Settings:
        if self.signals_fast >= self.signals_slow:
            raise ValueError("signals_fast must be less than signals_slow")
        if self.signals_oversold >= self.signals_overbought:
            raise ValueError("signals_oversold must be less than signals_overbought")
        return self


def _split_names(value: Any, case: Callable[[str], str], empty: str) -> Any:
    """A comma-separated string or a list -> a tuple of distinct, trimmed names, in order."""
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list | tuple):
        names = tuple(dict.fromkeys(case(str(n).strip()) for n in value if str(n).strip()))
        if not names:
            raise ValueError(empty)
        return names
    return value
