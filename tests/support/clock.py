"""ManualClock: a ``tickcast.clock.Clock`` the test moves by hand.

``advance(s)`` and ``advance_to(mono)`` move both clocks (time passes); ``jump_wall(s)``
moves only the wall clock (an NTP step, a VM resumed): deadlines, on the monotonic
clock, must not notice.
"""

from __future__ import annotations

from tickcast.clock import Now

#: Where a manual clock starts: a monotonic origin unlike any wall time, and a wall time.
MONO0 = 5_000.0
WALL0 = 1_700_000_000.0


class ManualClock:
    def __init__(self, mono: float = MONO0, wall: float = WALL0) -> None:
        self._mono = mono
        self._wall = wall

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> float:
        return self._wall

    def now(self) -> Now:
        return Now(self._mono, self._wall)

    def advance(self, seconds: float) -> Now:
        """Time passes: both clocks move by ``seconds``; returns the new reading."""
        if seconds < 0:
            raise ValueError("the monotonic clock never goes back")
        self._mono += seconds
        self._wall += seconds
        return self.now()

    def advance_to(self, mono: float) -> Now:
        """Time passes until the monotonic clock reads ``mono``."""
        return self.advance(mono - self._mono)

    def jump_wall(self, seconds: float) -> Now:
        """Step the wall clock only (back when negative); returns the new reading."""
        self._wall += seconds
        return self.now()
