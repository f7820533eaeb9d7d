"""Settings and load_settings: defaults < TOML file < TICKCAST_* environment < overrides."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path

import pytest

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
from tickcast.config.load import load_settings
from tickcast.config.settings import Settings, settings_file
from tickcast.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's or CI's own TICKCAST_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("TICKCAST_"):
            monkeypatch.delenv(name)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tickcast.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.symbols == DEFAULT_SYMBOLS
    assert "BTC/USDT" in settings.symbols
    assert settings.rate == 50.0
    assert settings.seed == 42
    assert settings.calendar == "always"
    assert settings.batch_ms == 100.0
    assert settings.outbox_max_items == 65536
    assert settings.outbox_max_bytes == 8 * 1024 * 1024
    assert settings.slow_client_timeout_s == 2.0
    assert settings.simulator_max_backlog_s == 0.1
    assert settings.overload_lag_s == 0.25
    assert settings.history_size == 256
    assert settings.max_subscriptions == 50
    assert settings.max_message_bytes == 64 * 1024
    assert settings.idle_timeout_s == 0.0
    assert settings.permessage_deflate is False
    assert settings.log_level == "info"
    assert settings.log_format == "console"
    assert settings.test_echo is False


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def test_file_values_override_defaults(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 9001\nrate = 7.5\nsymbols = ["aapl", " msft "]\n')
    settings = load_settings(path)
    assert (settings.port, settings.rate, settings.symbols) == (9001, 7.5, ("AAPL", "MSFT"))
    assert settings.host == "127.0.0.1"  # untouched keys keep their defaults


def test_file_named_by_tickcast_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, "port = 9002\n")
    monkeypatch.setenv("TICKCAST_CONFIG", str(path))
    assert load_settings().port == 9002


def test_explicit_file_wins_over_tickcast_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.toml"
    other.write_text("port = 1111\n")
    monkeypatch.setenv("TICKCAST_CONFIG", str(other))
    assert load_settings(write_toml(tmp_path, "port = 2222\n")).port == 2222


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, "port = 9001\nrate = 7.5\n")
    monkeypatch.setenv("TICKCAST_PORT", "9100")
    settings = load_settings(path)
    assert settings.port == 9100
    assert settings.rate == 7.5


def test_overrides_win_over_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path, "port = 9001\nseed = 1\nrate = 7.5\n")
    monkeypatch.setenv("TICKCAST_PORT", "9100")
    monkeypatch.setenv("TICKCAST_SEED", "2")
    settings = load_settings(path, {"port": 9200, "seed": None})
    assert settings.port == 9200  # override
    assert settings.seed == 2  # a None override is ignored: environment
    assert settings.rate == 7.5  # file


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKCAST_PERMESSAGE_DEFLATE", "true")
    monkeypatch.setenv("TICKCAST_BATCH_MS", "0")
    monkeypatch.setenv("TICKCAST_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.permessage_deflate is True
    assert settings.batch_ms == 0.0
    assert settings.log_level == "debug"


def test_symbols_from_environment_are_split_trimmed_and_upper_cased(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKCAST_SYMBOLS", "aapl, btc/usdt")
    assert load_settings().symbols == ("AAPL", "BTC/USDT")


def test_symbols_are_deduplicated_keeping_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKCAST_SYMBOLS", "msft,aapl,,MSFT , aapl")
    assert load_settings().symbols == ("MSFT", "AAPL")


def test_symbols_override_as_list() -> None:
    assert load_settings(overrides={"symbols": ["tsla", "eth/usdt"]}).symbols == (
        "TSLA",
        "ETH/USDT",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TICKCAST_PORT", "abc"),
        ("TICKCAST_PORT", "70000"),
        ("TICKCAST_RATE", "0"),
        ("TICKCAST_BATCH_MS", "-1"),
        ("TICKCAST_OUTBOX_MAX_ITEMS", "15"),
        ("TICKCAST_HISTORY_SIZE", "-1"),
        ("TICKCAST_MAX_SUBSCRIPTIONS", "0"),
        ("TICKCAST_MAX_MESSAGE_BYTES", "255"),
        ("TICKCAST_CLOSE_TIMEOUT_S", "0"),
        ("TICKCAST_LOG_LEVEL", "verbose"),
        ("TICKCAST_LOG_FORMAT", "xml"),
        ("TICKCAST_PERMESSAGE_DEFLATE", "maybe"),
        ("TICKCAST_SYMBOLS", " , "),
    ],
)
def test_invalid_environment_value_raises_config_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    field = name.removeprefix("TICKCAST_").lower()
    with pytest.raises(ConfigError, match=f"(?s)invalid settings.*\n{field}\n"):
        load_settings()


@pytest.mark.parametrize(
    "overrides",
    [{"port": -1}, {"rate": 2_000_000}, {"symbols": []}, {"idle_timeout_s": -0.5}],
)
def test_invalid_override_raises_config_error(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="invalid settings"):
        load_settings(overrides=overrides)


def test_invalid_file_value_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="port"):
        load_settings(write_toml(tmp_path, 'port = "http"\n'))


def test_unknown_key_in_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batchms"):
        load_settings(write_toml(tmp_path, "batchms = 50\n"))


def test_unknown_override_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="no_such_setting"):
        load_settings(overrides={"no_such_setting": 1})


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_settings(missing)


def test_malformed_toml_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_settings(write_toml(tmp_path, "port = \n"))


def test_settings_file_is_forgotten_after_loading(tmp_path: Path) -> None:
    load_settings(write_toml(tmp_path, "port = 9001\n"))
    assert settings_file.get() is None
    with pytest.raises(ConfigError):
        load_settings(write_toml(tmp_path, "port = -3\n"))
    assert settings_file.get() is None
    assert Settings().port == 8000  # a later Settings() does not read the old file


def test_unknown_environment_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKCAST_BATCHMS", "10")
    with pytest.raises(ConfigError, match="TICKCAST_BATCHMS"):
        load_settings()


def test_feed_is_an_ordered_list_of_provider_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().feed == ("simulator",)
    monkeypatch.setenv("TICKCAST_FEED", " Alpaca, polygon,alpaca,simulator ")
    assert load_settings().feed == ("alpaca", "polygon", "simulator")
    assert load_settings(overrides={"feed": "replay"}).feed == ("replay",)
    with pytest.raises(ConfigError, match="at least one provider"):
        load_settings(overrides={"feed": " , "})


def test_vendor_credentials_come_from_their_own_variables_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALPACA_API_KEY_ID", "key")
    monkeypatch.setenv("ALPACA_API_SECRET_KEY", "s3cr3t-value")
    monkeypatch.setenv("MASSIVE_API_KEY", "poly")
    settings = load_settings()
    assert settings.alpaca_key_id is not None
    assert settings.alpaca_key_id.get_secret_value() == "key"
    assert settings.alpaca_secret_key is not None
    assert settings.alpaca_secret_key.get_secret_value() == "s3cr3t-value"
    assert settings.polygon_api_key is not None
    assert settings.polygon_api_key.get_secret_value() == "poly"
    assert "s3cr3t-value" not in repr(settings)  # never printed
    monkeypatch.setenv("TICKCAST_ALPACA_SECRET_KEY", "leak")
    with pytest.raises(ConfigError, match="TICKCAST_ALPACA_SECRET_KEY"):
        load_settings()


def test_replay_speed_must_be_finite() -> None:
    with pytest.raises(ConfigError, match="replay_speed"):
        load_settings(overrides={"replay_speed": float("inf")})


def test_trusted_proxies_and_the_address_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = load_settings()
    assert defaults.trusted_proxies == ()  # believe no forwarding header
    assert defaults.forwarded_headers == "x-forwarded"
    assert defaults.max_anonymous_connections_per_address == 10
    monkeypatch.setenv("TICKCAST_TRUSTED_PROXIES", " 10.0.0.0/8, ::1 ")
    monkeypatch.setenv("TICKCAST_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS", "0")
    settings = load_settings()
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1/128")
    assert settings.max_anonymous_connections_per_address == 0  # no cap
    monkeypatch.delenv("TICKCAST_TRUSTED_PROXIES")
    path = write_toml(tmp_path, 'trusted_proxies = ["192.0.2.1"]\n')
    assert load_settings(path).trusted_proxies == ("192.0.2.1/32",)


@pytest.mark.parametrize(
    "overrides",
    [
        {"trusted_proxies": "proxy.example"},
        {"trusted_proxies": "10.0.0.0/33"},
        {"trusted_proxies": "10.0.0.5/8"},  # host bits set
        {"trusted_proxies": "10.0.0.1,,10.0.0.2"},  # an empty entry
        {"trusted_proxies": "10.0.0.1,"},
        {"trusted_proxies": ["10.0.0.1", ""]},
        {"trusted_proxies": "0.0.0.0/0"},  # everyone
        {"trusted_proxies": "::/0"},
        {"forwarded_headers": "both"},
        {"max_anonymous_connections_per_address": -1},
    ],
)
def test_bad_proxies_or_cap_are_config_errors(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_settings(overrides=overrides)


def test_an_empty_trusted_proxies_variable_trusts_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKCAST_TRUSTED_PROXIES", " ")
    assert load_settings().trusted_proxies == ()


# -- groups

#: Each group: the Settings property that returns it, and its class.
GROUPS: dict[str, type] = {
    "server": ServerSettings,
    "limits": LimitsSettings,
    "outbox": OutboxSettings,
    "upstream": FeedSettings,
    "auth": AuthSettings,
    "storage": StorageSettings,
    "realtime": RealtimeSettings,
    "signals": SignalsSettings,
    "leaderboard": LeaderboardSettings,
    "monitoring": MonitoringSettings,
    "cluster": ClusterSettings,
}

#: A valid value other than the default, for every field of Settings.
OTHER_VALUES: dict[str, object] = {
    "signals_engine": False,
    "signals_fast": 5,
    "signals_slow": 20,
    "signals_rsi_period": 7,
    "signals_oversold": 25.0,
    "signals_overbought": 75.0,
    "signals_cooldown_s": 60.0,
    "signals_redis_url": "redis://127.0.0.1:6379/3",
    "signals_channel": "trading-signals",
    "signals_history_size": 500,
    "signals_history_window_s": 600.0,
    "signals_max_symbols": 50,
    "socketio_ping_interval_s": 10,
    "socketio_ping_timeout_s": 5.0,
    "leaderboard_public": False,
    "leaderboard_snapshot_s": 10.0,
    "leaderboard_window_ms": 250.0,
    "leaderboard_snapshot_limit": 50,
    "leaderboard_max_top": 20,
    "leaderboard_max_window": 10,
    "monitoring_interval_s": 2.0,
    "alert_cooldown_s": 60.0,
    "alert_cpu_percent": 80.0,
    "alert_memory_percent": 85.0,
    "alert_disk_percent": 95.0,
    "alert_latency_p99_ms": 250.0,
    "alert_stale_feed_s": 10.0,
    "alert_outbox_depth": 5000,
    "dlq_preview_bytes": 256,
    "bus_url": "redis://127.0.0.1:6379/2",
    "bus_prefix": "tc-test",
    "node_id": "node-a",
    "lease_ttl_s": 3.0,
    "heartbeat_s": 0.5,
    "host": "192.0.2.10",
    "port": 8101,
    "symbols": ("IBM", "AAPL"),
    "rate": 51.5,
    "seed": 43,
    "calendar": "XNYS",
    "batch_ms": 101.0,
    "outbox_max_items": 65537,
    "outbox_max_bytes": 8388609,
    "slow_client_timeout_s": 2.5,
    "degrade_soft": 0.6,
    "degrade_low": 0.2,
    "degrade_grace_s": 0.5,
    "degrade_hold_s": 2.0,
    "degrade_rate": 4.0,
    "simulator_max_backlog_s": 0.15,
    "simulator_bar_s": 30,
    "simulator_interval_ms": 1.0,
    "overload_lag_s": 0.35,
    "history_size": 257,
    "max_subscriptions": 51,
    "max_message_bytes": 65538,
    "handshake_timeout_s": 10.5,
    "close_timeout_s": 5.5,
    "ws_ping_interval_s": 21.0,
    "ws_ping_timeout_s": 22.0,
    "idle_timeout_s": 30.0,
    "permessage_deflate": True,
    "ws_fast_path": False,
    "sockjs_heartbeat_s": 10.0,
    "sockjs_disconnect_delay_s": 30.0,
    "sockjs_response_limit": 4096,
    "log_level": "debug",
    "log_format": "json",
    "test_echo": True,
    "feed": ("replay", "simulator"),
    "feed_stale_s": 16.0,
    "feed_failback_s": 11.0,
    "feed_backoff_base_s": 0.75,
    "feed_backoff_cap_s": 31.0,
    "feed_limit_backoff_s": 32.0,
    "dead_letters": 1001,
    "alpaca_url": "wss://alpaca.example/v2/test",
    "polygon_url": "wss://polygon.example/stocks",
    "replay_file": Path("recording.jsonl"),
    "replay_speed": 2.0,
    "replay_loop": True,
    "database_url": "sqlite+aiosqlite:///other.db",
    "jwt_secret": "j" * 32,
    "jwt_ttl_s": 3601.0,
    "allow_anonymous": False,
    "allowed_origins": ("https://app.example",),
    "auth_timeout_s": 9.0,
    "max_connections_per_user": 6,
    "rate_limit_per_s": 21.0,
    "rate_limit_burst": 41,
    "max_anonymous_connections_per_address": 12,
    "ipv6_client_prefix": 56,
    "trusted_proxies": ("10.0.0.0/8",),
    "forwarded_headers": "forwarded",
    "update_interval_s": 1.5,
    "batch_size": 101,
    "cache_timeout_s": 1.25,
    "alpaca_key_id": "key-id",
    "alpaca_secret_key": "secret-key",
    "polygon_api_key": "polygon-key",
}


def group_fields() -> Counter[str]:
    return Counter(f.name for cls in GROUPS.values() for f in dataclasses.fields(cls))


def test_every_field_belongs_to_exactly_one_group() -> None:
    counts = group_fields()
    assert sorted(name for name, n in counts.items() if n > 1) == []  # in two groups
    assert sorted(set(Settings.model_fields) - set(counts)) == []  # in none
    assert sorted(set(counts) - set(Settings.model_fields)) == []  # not a setting


def test_every_setting_has_another_value_for_the_group_test() -> None:
    assert sorted(OTHER_VALUES) == sorted(Settings.model_fields)
    defaults = Settings()
    changed = Settings(**OTHER_VALUES)
    assert [n for n in OTHER_VALUES if getattr(changed, n) == getattr(defaults, n)] == []


@pytest.mark.parametrize("changed", [None, *OTHER_VALUES])
def test_groups_read_the_same_values_as_the_flat_fields(changed: str | None) -> None:
    """With the defaults, and with each field in turn set apart from them: a group field
    wired to the wrong setting differs in at least one of these."""
    overrides = {} if changed is None else {changed: OTHER_VALUES[changed]}
    settings = Settings(**overrides)
    for prop, cls in GROUPS.items():
        group = getattr(settings, prop)
        assert type(group) is cls
        for field in dataclasses.fields(cls):
            assert getattr(group, field.name) == getattr(settings, field.name), (prop, field.name)


def test_groups_are_frozen() -> None:
    server = Settings().server
    with pytest.raises(dataclasses.FrozenInstanceError):
        server.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "url",
    [
        "redis://feeder:first-half/second-half@redis.internal:6379/0",  # unescaped /
        "http://127.0.0.1:6379/0",
        "redis://:6379/0",
    ],
)
def test_a_redis_url_that_cannot_be_used_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(ConfigError, match="signals_redis_url must be") as refused:
        load_settings(overrides={"signals_redis_url": url})
    assert "half" not in str(refused.value)
    assert url not in str(refused.value)


def test_the_redis_url_is_a_secret() -> None:
    url = "redis://feeder:s3cr3t-pass@127.0.0.1:6379/0"
    settings = load_settings(overrides={"signals_redis_url": url})
    assert "s3cr3t" not in repr(settings)
    assert settings.signals.signals_redis_url is not None
    assert settings.signals.signals_redis_url.get_secret_value() == url
