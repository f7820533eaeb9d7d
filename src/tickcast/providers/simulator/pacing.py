"""Pacer: how much simulating one wake-up may do, so that the simulator leaves the event
loop time to write to clients when the gateway falls behind.

Rules: pure. The driver reports each wake-up's work (ticks simulated and the seconds that
took, publishing and fan-out included) and, while the event loop is saturated (its
wake-ups come late), asks how many ticks it may simulate given the time elapsed since
the previous wake-up: the newest ticks are simulated and the older ones skipped (and
counted by the simulator), so that simulating takes at most ``duty`` of the loop's time
and the rest goes to the pump, reads, handshakes and HTTP. While the loop keeps up the
driver does not ask, and nothing is skipped. Without it, an overloaded gateway spent
every pass ingesting and never got round to writing what it had queued for its readers.
"""

from __future__ import annotations

from typing import Final

#: Weight of the newest measurement in the smoothed cost per tick.
_SMOOTHING: Final = 0.2


class Pacer:
    """A cap on ticks per wake-up from the measured cost of a tick.

    Args:
        duty: the largest share of the loop's time simulating may take when it falls
            behind, in (0, 1].

    Attributes:
        cost_s: smoothed seconds per tick (publishing included); 0 until measured.
    """

    __slots__ = ("cost_s", "duty")

    def __init__(self, duty: float) -> None:
        if not 0 < duty <= 1:
            raise ValueError(f"duty must be in (0, 1], not {duty!r}")
        self.duty = duty
        self.cost_s = 0.0

    def max_ticks(self, elapsed_s: float) -> int | None:
        """Ticks a wake-up may simulate ``elapsed_s`` after the previous one (>= 1), or
        None before any cost is known."""
        if self.cost_s <= 0:
            return None
        return max(1, int(self.duty * elapsed_s / self.cost_s))

    def record(self, ticks: int, work_s: float) -> None:
        """A wake-up simulated ``ticks`` ticks in ``work_s`` seconds."""
        if ticks <= 0 or work_s < 0:
            return
        cost = work_s / ticks
        self.cost_s = cost if self.cost_s <= 0 else self.cost_s + _SMOOTHING * (cost - self.cost_s)
