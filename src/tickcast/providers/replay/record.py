"""Recorder: writes what the feed delivers to a recording (``tickcast record``).

Rules: the recorder is a sink; it writes one line per event as it arrives (buffered by
the file object) and never blocks the loop on anything but the local file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import BinaryIO

from tickcast.model.market import MarketEvent
from tickcast.providers.replay.format import encode_event, encode_header


class Recorder:
    """Writes a header, then each event with its receive time.

    Args:
        file: a binary file open for writing.
        provider: the provider names (comma-joined in the header).
        symbols: the universe recorded (replay validates subscriptions against it).
        clock: wall clock; its reading at delivery is the receive time.
    """

    def __init__(
        self,
        file: BinaryIO,
        provider: str,
        symbols: Iterable[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._file = file
        self._clock = clock
        self.count = 0
        file.write(encode_header(provider, tuple(symbols), clock()))

    def __call__(self, events: Sequence[MarketEvent]) -> None:
        received_at = self._clock()
        write = self._file.write
        for event in events:
            line = encode_event(event, received_at)
            if line is not None:
                write(line)
                self.count += 1

    def close(self) -> None:
        self._file.flush()
