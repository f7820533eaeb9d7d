"""KeyUsage: when to record that an API key was used, off the hot path.

Rules: pure. ``used(key_id, now)`` is called on every successful API-key
authentication and costs a dict look-up; it decides whether this use must be written
(the key's ``last_used_at``), at most once per key per ``interval_s``. The writes due
are taken in batches by the driver (``fronts/identity.py``), which writes them in the
background: no connection waits for the database, and a failed write fails no
connection (the key is simply written again at its next use after the interval).

``now`` is wall-clock POSIX seconds (it becomes ``last_used_at``), from one clock.
"""

from __future__ import annotations

import math
from typing import Final

#: Default seconds between two recorded uses of one key: ``keys list`` shows the last
#: use to within this (a reconnect storm writes each key once, not once per connect).
DEFAULT_INTERVAL_S: Final = 60.0
#: Keys remembered at most; past it the oldest entries are forgotten (they are only
#: written again a little sooner than ``interval_s``).
MAX_KEYS: Final = 100_000


class KeyUsage:
    """Which key uses are due to be written; see the module rules.

    Attributes:
        interval_s: the least time between two recorded uses of one key (> 0).
    """

    __slots__ = ("_due", "_written", "interval_s")

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be a positive number, not {interval_s!r}")
        self.interval_s = interval_s
        self._written: dict[int, float] = {}  # key id -> when its last use was recorded
        self._due: dict[int, float] = {}  # key id -> the use to write

    def used(self, key_id: int, now: float) -> bool:
        """Note a use of ``key_id`` at ``now``; whether a write became due."""
        last = self._written.get(key_id)
        if last is not None and now - last < self.interval_s:
            return False
        if len(self._written) >= MAX_KEYS:
            self._forget(now)
        self._written[key_id] = now
        self._due[key_id] = now
        return True

    def take(self) -> dict[int, float]:
        """The writes due (key id -> time of use), removed from the queue."""
        due, self._due = self._due, {}
        return due

    @property
    def pending(self) -> int:
        """Writes due and not taken yet."""
        return len(self._due)

    def _forget(self, now: float) -> None:
        stale = [k for k, at in self._written.items() if now - at >= self.interval_s]
        for key_id in stale:
            del self._written[key_id]
        if len(self._written) >= MAX_KEYS:  # all recent: drop the oldest half
            for key_id in sorted(self._written, key=self._written.__getitem__)[: MAX_KEYS // 2]:
                del self._written[key_id]
