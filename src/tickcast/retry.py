"""Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential
Backoff and Jitter", 2015): delay = uniform(0, min(cap, base * 2 ** attempt)).

Rules: pure; the random source is passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Attributes: base_s, the first ceiling in seconds; cap_s, the largest ceiling."""

    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt, 62))
        return rng.uniform(0, ceiling)
