"""Settings and load_settings: defaults < TOML file < TICKCAST_* environment < overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tickcast.config.defaults import DEFAULT_SYMBOLS
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
