"""``serve --demo`` shortens the simulator's bars so that the signal rules warm up in
minutes, unless the user chose a bar length."""

from __future__ import annotations

import pytest

from tickcast.cli.main import DEMO_BAR_S, demo_settings
from tickcast.config.load import load_settings
from tickcast.providers import registry


def test_the_demo_uses_short_bars_when_none_were_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TICKCAST_SIMULATOR_BAR_S", raising=False)
    settings = load_settings()
    assert settings.simulator_bar_s == 60
    demo = demo_settings(settings)
    assert demo.simulator_bar_s == DEMO_BAR_S == 5
    provider = registry.create("simulator", demo.upstream)
    assert provider.simulator._config.bar_interval_s == DEMO_BAR_S  # type: ignore[attr-defined]


def test_a_chosen_bar_length_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKCAST_SIMULATOR_BAR_S", "60")
    assert demo_settings(load_settings()).simulator_bar_s == 60
