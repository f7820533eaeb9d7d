"""History: a ring buffer of recent envelopes per topic, for resume after reconnect.

Rules: pure. Sequence numbers per topic increase by exactly one within an epoch, and a
topic's buffer holds one epoch only (the hub clears it when the epoch changes), so the
buffer can answer "everything after seq N" by arithmetic, without a search.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from tickcast.model.envelope import Envelope


class Gap(NamedTuple):
    """Resume is impossible: the requested position is no longer (or not yet) held, or
    it belongs to another epoch.

    Attributes:
        requested: the seq the client last saw.
        oldest: the oldest seq still held (0 when nothing is held).
        latest: the newest seq published on the topic (0 when none).
        reason: ``"history_gap"`` (this epoch, not held) or ``"epoch_changed"`` (the
            client's seq counts in another numbering; nothing of it can be replayed).
        epoch: the topic's current epoch (set by the hub; "" from ``History`` alone).
    """

    requested: int
    oldest: int
    latest: int
    reason: str = "history_gap"
    epoch: str = ""


class History:
    """Per-topic ring buffers.

    Args:
        size: envelopes kept per topic; 0 disables history (every resume is a gap).
    """

    __slots__ = ("_buffers", "size")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.size = size
        self._buffers: dict[str, deque[Envelope]] = {}

    def append(self, key: str, envelope: Envelope) -> None:
        buffer = self.buffer(key)
        if buffer is not None:
            buffer.append(envelope)

    def buffer(self, key: str) -> deque[Envelope] | None:
        """``key``'s ring buffer, made if it has none (None when history is disabled).

        The same deque for as long as this History lives: ``clear`` and ``clear_all``
        empty it in place, so a caller (the hub's fan-out) may keep it and append to it.
        """
        if self.size == 0:
            return None
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = deque(maxlen=self.size)
        return buffer

    def clear(self, key: str) -> None:
        """Forget ``key``'s envelopes (its numbering restarted: a new epoch)."""
        buffer = self._buffers.get(key)
        if buffer is not None:
            buffer.clear()

    def clear_all(self) -> None:
        """Forget every topic's envelopes."""
        for buffer in self._buffers.values():
            buffer.clear()

    def oldest(self, key: str) -> int:
        """The oldest seq held for ``key`` (0 when nothing is held)."""
        buffer = self._buffers.get(key)
        return buffer[0].seq if buffer else 0

    def resume(self, key: str, after_seq: int, latest_seq: int) -> list[Envelope] | Gap:
        """Envelopes with seq > ``after_seq``, oldest first, or a Gap.

        Args:
            key: the topic's string form.
            after_seq: the last seq the client saw.
            latest_seq: the newest seq published on the topic (from the hub), so that a
                client already up to date gets [] even when history is disabled.
        """
        if after_seq == latest_seq:
            return []
        buffer = self._buffers.get(key)
        if after_seq > latest_seq or not buffer:
            return Gap(after_seq, buffer[0].seq if buffer else 0, latest_seq)
        oldest = buffer[0].seq
        if after_seq < oldest - 1:
            return Gap(after_seq, oldest, latest_seq)
        start = after_seq - oldest + 1
        return [buffer[i] for i in range(start, len(buffer))]
