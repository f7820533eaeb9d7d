"""Load Settings: defaults < TOML file < TICKCAST_* environment < command-line flags."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tickcast.config.settings import Settings, settings_file
from tickcast.errors import ConfigError


def load_settings(
    config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build Settings once, at start.

    Args:
        config_file: a TOML file of settings (keys as in Settings); when None,
            the ``TICKCAST_CONFIG`` environment variable names one, if set.
        overrides: values from the command line; None values are ignored.

    Raises:
        ConfigError: the file cannot be read or a value is invalid.
    """
    known = {
        f"TICKCAST_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if field.validation_alias is None  # credentials: their own variable names only
    } | {"TICKCAST_CONFIG"}
    unknown = sorted(k for k in os.environ if k.startswith("TICKCAST_") and k not in known)
    if unknown:
        raise ConfigError(f"unknown setting(s) in the environment: {', '.join(unknown)}")
    path = config_file or os.environ.get("TICKCAST_CONFIG")
    if path:
        path = Path(path)
        try:
            tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from exc
    token = settings_file.set(Path(path) if path else None)
    try:
        return Settings(**{k: v for k, v in (overrides or {}).items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
    finally:
        settings_file.reset(token)
