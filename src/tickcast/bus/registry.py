"""Which bus a URL names: ``memory://``, ``redis://`` (``rediss://``), ``nats://``
(``tls://``). A backend's module is imported only when its scheme is used."""

from __future__ import annotations

from urllib.parse import urlsplit

from tickcast.bus.base import Bus
from tickcast.clock import SYSTEM, Clock
from tickcast.errors import ConfigError

#: The schemes each backend serves.
SCHEMES = {
    "memory": "memory",
    "redis": "redis",
    "rediss": "redis",
    "nats": "nats",
    "tls": "nats",
}


def backend_of(url: str) -> str:
    """The backend ``url`` names; ``ConfigError`` (without the URL: it may carry a
    password) when it names none."""
    scheme = urlsplit(url).scheme.lower()
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise ConfigError(
            f"bus_url: unknown scheme {scheme!r}; use memory://, redis://host:port/db "
            "or nats://host:port"
        ) from None


def create(url: str, *, clock: Clock = SYSTEM) -> Bus:
    """A bus for ``url``, not started."""
    backend = backend_of(url)
    if backend == "memory":
        from tickcast.bus.memory import MemoryBus

        return MemoryBus(clock=clock)
    if backend == "redis":
        from tickcast.bus.redis import RedisBus

        return RedisBus(url)
    from tickcast.bus.nats import NatsBus

    return NatsBus(url)
