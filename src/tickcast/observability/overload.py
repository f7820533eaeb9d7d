"""OverloadDetector: tells when the gateway falls behind, from how late a timer fires.

Rules: pure. The driver (``observability/loop.py``) arms a periodic timer and reports
how late each firing was; a late timer means the event loop was busy (or the process was
not scheduled) for that long. Lateness under ``tolerance_s`` is scheduling noise.

The gateway is *overloaded* from the first lateness of ``threshold_s`` or more (or the
first firing after which it shed load to keep up) until ``recover_s`` pass without
either; each such episode is one ``Transition.OVERLOADED`` followed by one
``Transition.RECOVERED``. ``stalled_s`` adds up every lateness beyond the tolerance:
connections subtract it from how long a client seemed blocked, so that the gateway's
own lag never counts against a reader.
"""

from __future__ import annotations

import enum
from typing import Final

#: Lateness below this is normal scheduling noise, in seconds.
DEFAULT_TOLERANCE_S: Final = 0.005


class Transition(enum.Enum):
    """A change of the overload state."""

    OVERLOADED = "overloaded"
    RECOVERED = "recovered"


class OverloadDetector:
    """Overload episodes and cumulative stall time from timer lateness.

    Args:
        threshold_s: lateness (seconds) that starts an episode; 0 = never overloaded
            (``stalled_s`` is still kept).
        recover_s: seconds without such lateness that end an episode.
        tolerance_s: lateness below this is not counted in ``stalled_s``.

    Attributes:
        overloaded: whether an episode is in progress.
        episodes: episodes started, ever.
        stalled_s: lateness beyond ``tolerance_s``, summed, in seconds.
        worst_s: the largest lateness of the current (or last) episode.
        since: when the current (or last) episode started (the caller's clock).
    """

    __slots__ = (
        "_last_late",
        "episodes",
        "overloaded",
        "recover_s",
        "since",
        "stalled_s",
        "threshold_s",
        "tolerance_s",
        "worst_s",
    )

    def __init__(
        self,
        threshold_s: float,
        recover_s: float = 5.0,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
    ) -> None:
        if threshold_s < 0 or recover_s < 0 or tolerance_s < 0:
            raise ValueError("threshold_s, recover_s and tolerance_s must be >= 0")
        self.threshold_s = threshold_s
        self.recover_s = recover_s
        self.tolerance_s = tolerance_s
        self.overloaded = False
        self.episodes = 0
        self.stalled_s = 0.0
        self.worst_s = 0.0
        self.since = 0.0
        self._last_late = 0.0

    def observe(
        self, lateness_s: float, now: float, *, shedding: bool = False
    ) -> Transition | None:
        """One timer firing, ``lateness_s`` after it was due, at ``now``; ``shedding``
        when the gateway left data out since the previous firing to keep up (skipped
        simulator ticks), which is an overload however punctual the loop stayed."""
        if lateness_s > self.tolerance_s:
            self.stalled_s += lateness_s - self.tolerance_s
        if self.threshold_s and (lateness_s >= self.threshold_s or shedding):
            self._last_late = now
            if not self.overloaded:
                self.overloaded = True
                self.episodes += 1
                self.since = now
                self.worst_s = lateness_s
                return Transition.OVERLOADED
            self.worst_s = max(self.worst_s, lateness_s)
            return None
        if self.overloaded and now - self._last_late >= self.recover_s:
            self.overloaded = False
            return Transition.RECOVERED
        return None
