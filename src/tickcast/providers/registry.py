"""Provider registry: name -> factory. The core looks providers up here, never by if/elif.

A factory takes the feed's settings group (``FeedSettings``, ``settings.upstream``), not
the whole ``Settings``: a provider reads only what is its own.
"""

from __future__ import annotations

from collections.abc import Callable

from tickcast.config.groups import FeedSettings
from tickcast.errors import ConfigError
from tickcast.providers.base import Provider

ProviderFactory = Callable[[FeedSettings], Provider]

_FACTORIES: dict[str, ProviderFactory] = {}


def register(name: str, factory: ProviderFactory) -> None:
    _FACTORIES[name] = factory


def create(name: str, settings: FeedSettings) -> Provider:
    """The provider ``name``, set up from the feed's settings (``settings.upstream``).

    Raises:
        ConfigError: no provider is registered as ``name``, or its settings cannot work.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown provider {name!r}; known: {', '.join(sorted(_FACTORIES))}")
    return factory(settings)


def _simulator(settings: FeedSettings) -> Provider:
    from tickcast.providers.calendar import calendar_for
    from tickcast.providers.simulator.market import SimulatorConfig
    from tickcast.providers.simulator.stream import SimulatorProvider

    try:
        calendar = calendar_for(settings.calendar)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    config = SimulatorConfig(
        symbols=settings.symbols,
        seed=settings.seed,
        rate=settings.rate,
        max_backlog_s=settings.simulator_max_backlog_s or None,
        bar_interval_s=settings.simulator_bar_s,
    )
    interval_ms = settings.simulator_interval_ms
    return SimulatorProvider(
        config, calendar, tick_interval_s=interval_ms / 1000 if interval_ms else None
    )


def _alpaca(settings: FeedSettings) -> Provider:
    from tickcast.providers.alpaca.stream import AlpacaProvider

    return AlpacaProvider.from_settings(settings)


def _polygon(settings: FeedSettings) -> Provider:
    from tickcast.providers.polygon.stream import PolygonProvider

    return PolygonProvider.from_settings(settings)


def _replay(settings: FeedSettings) -> Provider:
    from tickcast.providers.replay.stream import ReplayProvider

    if settings.replay_file is None:
        raise ConfigError("the replay provider needs a recording: set replay_file")
    return ReplayProvider(
        settings.replay_file, speed=settings.replay_speed, loop=settings.replay_loop
    )


register("simulator", _simulator)
register("alpaca", _alpaca)
register("polygon", _polygon)
register("replay", _replay)


def names() -> list[str]:
    """Every registered provider name."""
    return sorted(_FACTORIES)
