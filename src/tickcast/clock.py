"""Clock: the one way the gateway reads time; two clocks, each for one purpose.

Rules: every reading of the time goes through a ``Clock`` handed in (the node owns one,
``SYSTEM`` in production; tests inject a manual one), never through an ambient call:

- **monotonic** seconds (``Clock.monotonic``, ``Now.mono``) for every deadline, duration
  and timer: idle, heartbeat and authentication timeouts, batching windows, the
  slow-client rule, the loop's lag. It never jumps: a wall clock stepped back or forward
  (NTP, a VM resumed) neither fires nor delays any of them.
- **wall** seconds (``Clock.wall``, ``Now.wall``: epoch seconds UTC) only for stamps a
  client or another node reads: the ``ts`` of a control message, the server time of an
  envelope, a credential's expiry (a wall stamp), a delivery's latency from a stamp.

A pure module that needs the time takes ``now`` (a ``Now``, or the one float it needs)
as an argument; only drivers hold a ``Clock``. This module imports no tickcast module
and no I/O module but ``time``, so every layer may import it.
"""

from __future__ import annotations

import time
from typing import Final, NamedTuple, Protocol

__all__ = ["SYSTEM", "Clock", "Now", "SystemClock"]


class Now(NamedTuple):
    """One reading of both clocks, taken together.

    Attributes:
        mono: monotonic seconds (arbitrary origin): deadlines and durations.
        wall: epoch seconds UTC: stamps only.
    """

    mono: float
    wall: float


class Clock(Protocol):
    """Where time comes from: monotonic for deadlines, wall for stamps."""

    def monotonic(self) -> float:
        """Monotonic seconds (the event loop's own clock on the system clock)."""
        ...

    def wall(self) -> float:
        """Epoch seconds UTC."""
        ...

    def now(self) -> Now:
        """Both, read together."""
        ...


class SystemClock:
    """The process's clocks: ``time.monotonic`` (asyncio's loop clock too) and
    ``time.time``."""

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)

    def now(self) -> Now:
        return Now(time.monotonic(), time.time())


#: The system clock; the default wherever a clock is not injected.
SYSTEM: Final[Clock] = SystemClock()
