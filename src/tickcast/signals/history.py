"""SignalHistory: the recent signals, so a client can catch up.

Rules: pure. It keeps the stamped envelopes of published signals, oldest first: at most
``size`` of them, none older than ``window_s`` seconds (by the envelope's ``server_ts``,
measured against the ``now`` a caller passes). A client catches up two ways:

- by the last signal id it saw (``after``): every signal published after it, in
  publication order; ``None`` when that id is no longer (or never was) held, so the
  caller can say the client missed more than the history holds;
- by a query (``query``): the signals of one symbol (or all), published at or after a
  time, the most recent ``limit`` of them, oldest first.

Signal ids are unique within the history: a signal published again under an id already
held (a producer's retry) is refused by ``add``, which returns False.
"""

from __future__ import annotations

from collections import deque

from tickcast.model.envelope import Envelope
from tickcast.model.signal import Signal


class SignalHistory:
    """The last ``size`` signals, none older than ``window_s`` (see the module docstring).

    Args:
        size: the most signals kept; 0 keeps none.
        window_s: the oldest signal kept, in seconds of age.
    """

    __slots__ = ("_by_id", "_entries", "size", "window_s")

    def __init__(self, size: int, window_s: float) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.size = size
        self.window_s = window_s
        self._entries: deque[Envelope] = deque()
        self._by_id: dict[str, Envelope] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, signal_id: object) -> bool:
        return signal_id in self._by_id

    def add(self, envelope: Envelope, now: float) -> bool:
        """Keep ``envelope`` (its payload a ``Signal`` with an id); False, and nothing
        kept, when its id is held already or nothing is kept at all."""
        signal = envelope.payload
        if not isinstance(signal, Signal) or not signal.id:
            raise ValueError("the history keeps signals with an id")
        self.expire(now)
        if self.size == 0 or signal.id in self._by_id:
            return False
        self._entries.append(envelope)
        self._by_id[signal.id] = envelope
        while len(self._entries) > self.size:
            self._drop_oldest()
        return True

    def expire(self, now: float) -> None:
        """Drop what is older than the window at ``now`` (wall seconds)."""
        oldest = now - self.window_s
        entries = self._entries
        while entries and entries[0].server_ts < oldest:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        envelope = self._entries.popleft()
        signal = envelope.payload
        assert isinstance(signal, Signal)
        self._by_id.pop(signal.id, None)

    def after(self, signal_id: str, now: float) -> list[Envelope] | None:
        """The signals published after ``signal_id``, oldest first; None when that id
        is not held (expired, evicted, or unknown)."""
        self.expire(now)
        if signal_id not in self._by_id:
            return None
        found: list[Envelope] = []
        for envelope in reversed(self._entries):
            signal = envelope.payload
            assert isinstance(signal, Signal)
            if signal.id == signal_id:
                break
            found.append(envelope)
        found.reverse()
        return found

    def query(
        self,
        now: float,
        *,
        symbol: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[Envelope]:
        """The held signals of ``symbol`` (any when None) stamped at or after ``since``
        (wall seconds; any when None): the most recent ``limit`` of them (all when
        None), oldest first."""
        self.expire(now)
        if limit is not None and limit <= 0:
            return []
        found: list[Envelope] = []
        for envelope in reversed(self._entries):
            # every entry is looked at (the history is bounded): stamps are wall time,
            # which may step back, so an older stamp does not mean older entries before it
            if since is not None and envelope.server_ts < since:
                continue
            signal = envelope.payload
            assert isinstance(signal, Signal)
            if symbol is None or signal.symbol == symbol:
                found.append(envelope)
                if limit is not None and len(found) >= limit:
                    break
        found.reverse()
        return found
