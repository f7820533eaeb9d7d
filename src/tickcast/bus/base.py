"""The bus contract: what the nodes of a cluster share, over an existing engine.

Rules: a backend (``memory.py``, ``redis.py``, ``nats.py``) is a thin driver over an
engine that already does the hard part (Redis, NATS); it adds no broker logic of its
own. It offers two things:

- **Messages**: ``publish(subject, data)`` and ``subscribe(subject, handler)``. What one
  bus publishes on a subject reaches every bus subscribed to it (the publisher's own
  included) in the order it was published, at most once; a message up to
  ``MAX_MESSAGE_BYTES`` long. Nothing is kept for a subscriber that is away: a
  connection lost and restored (``on_connection``: False, then True once every
  subscription is restored) may have missed messages, which the layer above detects by
  its own numbering (``cluster/``) and recovers or signals. A handler runs on the event
  loop, one message at a time, and must not block; one that raises is contained by the
  backend (logged), and the next message goes on.
- **Leases**: ``acquire(name, holder, ttl_s)`` gives a ``Lease`` to one holder at a time,
  for ``ttl_s`` seconds unless renewed; its ``token`` (a fencing token) is greater than
  the token of every earlier lease on that name, so that whatever a lease guards can
  refuse an older holder. ``renew`` says False once the lease was lost (expired, or
  taken by another), and the holder must then stop at once what the lease guarded.

Subjects and lease names are given whole by the caller (already prefixed): letters,
digits, ``.``, ``_`` and ``-`` only. Every method but ``start`` may be called only
between ``start`` and ``aclose``; one that needs the engine raises ``BusError`` while it
cannot be reached (``connected`` is False), and never blocks longer than
``OPERATION_TIMEOUT_S``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from tickcast.errors import BusError

__all__ = [
    "MAX_MESSAGE_BYTES",
    "OPERATION_TIMEOUT_S",
    "Bus",
    "BusError",
    "Handler",
    "Lease",
    "scrub",
    "where",
]

#: The longest message a backend must carry (NATS' default max_payload is 1 MiB).
MAX_MESSAGE_BYTES = 512 * 1024

#: The longest any bus operation waits for the engine before raising ``BusError``.
OPERATION_TIMEOUT_S = 2.0

#: A subscriber: called with each message's bytes, in order, on the event loop.
Handler = Callable[[bytes], None]


class Lease(NamedTuple):
    """A lease on ``name`` held by ``holder``; ``token`` increases with every grant."""

    name: str
    holder: str
    token: int


class Bus(Protocol):
    """One node's connection to the bus engine.

    Attributes:
        name: the backend's name (``memory``, ``redis``, ``nats``).
        connected: the engine is reachable and every subscription is in place.
    """

    name: str

    @property
    def connected(self) -> bool: ...

    async def start(self) -> None:
        """Connect; raises ``BusError`` when the engine cannot be reached at all. Once
        started, a lost connection is retried in the background, for ever, until
        ``aclose``."""

    async def aclose(self) -> None:
        """Disconnect; idempotent. Leases held are left to expire (``release`` first to
        hand one over at once)."""

    async def publish(self, subject: str, data: bytes) -> None:
        """Publish ``data`` (at most ``MAX_MESSAGE_BYTES``) on ``subject``."""

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish each ``(subject, data)`` in order, as ``publish`` would, in as few
        round trips to the engine as it allows (one Redis pipeline; NATS buffers)."""

    async def subscribe(self, subject: str, handler: Handler) -> None:
        """Call ``handler`` with every message published on ``subject`` from now on
        (restored after each reconnection). One handler per subject: a second
        subscription to a subject replaces the first."""

    async def unsubscribe(self, subject: str) -> None:
        """Stop calling ``subject``'s handler (nothing if there is none)."""

    def on_connection(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(False)`` when the connection to the engine is lost and
        ``listener(True)`` when it is back and every subscription restored."""

    async def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        """The lease on ``name`` for ``holder`` if nobody holds it, else None."""

    async def renew(self, lease: Lease, ttl_s: float) -> bool:
        """Extend ``lease`` by ``ttl_s`` from now; False when it is no longer held."""

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up at once, if it is still held (nothing otherwise)."""

    async def holder(self, name: str) -> Lease | None:
        """The lease on ``name`` now, whoever holds it; None when nobody does."""


def where(url: str) -> str:
    """``host:port`` of ``url`` for logs: what follows the last ``@`` (so nothing of a
    password, whatever it holds) up to the path."""
    rest = url.partition("://")[2] or url
    return rest[rest.rfind("@") + 1 :].split("/", 1)[0].split("?", 1)[0] or "?"


def scrub(text: str, url: str) -> str:
    """``text`` (an error's message) with the user part of ``url`` taken out."""
    rest = url.partition("://")[2]
    at = rest.rfind("@")
    if at > 0:
        userinfo = rest[:at]
        text = text.replace(userinfo, "***")
        password = userinfo.partition(":")[2]
        if password:
            text = text.replace(password, "***")
    return text
