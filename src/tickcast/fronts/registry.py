"""The fronts built on the contract (``fronts/base.py``), by name.

``register(name, factory)`` adds one; ``specs(settings)`` gives the enabled ones (a
factory returns None for a front the settings turn off). ``app.build_app`` serves every
path of every spec. Adding a front is its module plus one ``register`` call: here for
the gateway's own, or in the module that defines it (a plugin, a test). Fronts given a
service (the realtime envelope and STOMP: the portfolio service) are built by
``app.build_app`` instead.
"""

from __future__ import annotations

from collections.abc import Callable

from tickcast.config.settings import Settings
from tickcast.fronts import echo, market
from tickcast.fronts.base import FrontSpec

Factory = Callable[[Settings], FrontSpec | None]

_factories: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Add the front ``name``; registering the same factory again changes nothing."""
    known = _factories.get(name)
    if known is not None and known is not factory:
        raise ValueError(f"a front named {name!r} is already registered")
    _factories[name] = factory


def unregister(name: str) -> None:
    """Remove the front ``name`` (if registered)."""
    _factories.pop(name, None)


def names() -> list[str]:
    """The registered fronts, in registration order."""
    return list(_factories)


def specs(settings: Settings) -> list[FrontSpec]:
    """Every registered front these settings enable, in registration order."""
    enabled: list[FrontSpec] = []
    for name, factory in _factories.items():
        spec = factory(settings)
        if spec is not None:
            if spec.name != name:
                raise ValueError(f"the front registered as {name!r} calls itself {spec.name!r}")
            enabled.append(spec)
    return enabled


register(market.NAME, market.spec)
register(echo.NAME, echo.spec)
