"""Dead letters: upstream messages that could not be normalized, kept for inspection.

Rules: pure and bounded. The newest ``capacity`` letters are kept; the totals per
provider count every letter ever recorded, so that a metric sees them all.
"""

from __future__ import annotations

from collections import deque

import msgspec

#: Longest raw payload kept per letter, in characters (bytes are shown as hex).
MAX_RAW_CHARS = 4096


class DeadLetter(msgspec.Struct, frozen=True):
    """Attributes: provider name, raw payload (text, truncated), error, ts (receive time)."""

    provider: str
    raw: str
    error: str
    ts: float


class DeadLetters:
    """The newest ``capacity`` dead letters, and a count per provider of all of them."""

    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1: {capacity}")
        self._letters: deque[DeadLetter] = deque(maxlen=capacity)
        self.totals: dict[str, int] = {}

    def add(self, provider: str, raw: str | bytes, error: str, ts: float) -> DeadLetter:
        text = raw.hex() if isinstance(raw, bytes) else raw
        letter = DeadLetter(provider, text[:MAX_RAW_CHARS], error, ts)
        self._letters.append(letter)
        self.totals[provider] = self.totals.get(provider, 0) + 1
        return letter

    def recent(self, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` letters, newest last."""
        if limit <= 0:
            return []
        letters = list(self._letters)
        return letters[-limit:]

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def __len__(self) -> int:
        return len(self._letters)
