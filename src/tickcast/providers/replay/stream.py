"""ReplayProvider: plays a recording back at real speed, N times faster, or flat out.

Rules: this is the replay's only I/O (the file and the clock); the format is
``format.py``. Events keep their recorded spacing divided by ``speed``, and their
timestamps are moved so that the replay looks live: an event recorded ``d`` seconds
after the first one carries ``start + d / speed`` (``start`` being when this pass began).
``speed`` 0 replays as fast as possible, yielding to the event loop between batches, with
the time of emission as timestamps. With ``loop`` the file starts over at its end
(yielding to the event loop in between, however short the file); without it, or when a
pass found no event to play, ``run`` returns there (the upstream ended).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final

from tickcast.errors import ConfigError, UpstreamError
from tickcast.model.market import MarketEvent
from tickcast.providers.base import ParseError, Provider, Sink
from tickcast.providers.replay.format import Header, decode_event, decode_header, retime

#: Events recorded within this many seconds of each other are delivered as one batch.
BATCH_WINDOW_S: Final = 0.005
#: Events per batch when replaying as fast as possible.
FAST_BATCH: Final = 500


class ReplayProvider(Provider):
    """A recording as a provider.

    Args:
        path: a file written by ``tickcast record``.
        speed: 1 = real time, N = N times faster, 0 = as fast as possible.
        loop: start over at the end of the file.

    Raises:
        ConfigError: the file cannot be read or is not a recording.
    """

    name = "replay"
    watch_silence = False  # a quiet stretch of the recording is not a dead upstream

    def __init__(
        self,
        path: Path,
        *,
        speed: float = 1.0,
        loop: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if speed < 0:
            raise ConfigError(f"replay speed must be >= 0: {speed}")
        try:
            with path.open("rb") as file:
                self.header: Header = decode_header(file.readline())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot replay {path}: {exc}") from exc
        self._path = path
        self._speed = speed
        self._loop = loop
        self._clock = clock

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self.header.symbols)

    async def run(self, sink: Sink) -> None:
        sink.state("connecting", str(self._path))
        sink.state("subscribed", f"{len(self.header.symbols)} symbols")
        while True:
            try:
                with self._path.open("rb") as file:
                    file.readline()  # the header
                    played = await self._play(file, sink)
            except OSError as exc:
                raise UpstreamError(f"cannot read {self._path}: {exc}") from exc
            if not self._loop or not played:
                return  # the end, or nothing to loop over
            await asyncio.sleep(0)  # a pass may never have waited: let the loop run

    async def _play(self, file: BinaryIO, sink: Sink) -> int:
        """Play one pass; the number of events delivered."""
        loop = asyncio.get_running_loop()
        speed = self._speed
        start_wall = self._clock()
        start_loop = loop.time()
        first: float | None = None
        batch: list[MarketEvent] = []
        batch_due = 0.0
        played = 0
        for line in file:
            if not line.strip():
                continue
            decoded = decode_event(line)
            if isinstance(decoded, ParseError):
                sink.dead_letter(decoded.raw, decoded.error, self._clock())
                continue
            recv, event = decoded
            played += 1
            if first is None:
                first = recv
            offset = recv - first
            if speed:
                due = offset / speed
                if batch and due - batch_due > BATCH_WINDOW_S:
                    await self._emit(sink, batch, start_loop + batch_due)
                    batch = []
                if not batch:
                    batch_due = due
                batch.append(retime(event, start_wall + due - recv))
            else:
                batch.append(retime(event, self._clock() - recv))
                if len(batch) >= FAST_BATCH:
                    sink(batch)
                    batch = []
                    await asyncio.sleep(0)
        if batch:
            await self._emit(sink, batch, start_loop + batch_due if speed else 0.0)
        return played

    @staticmethod
    async def _emit(sink: Sink, batch: list[MarketEvent], due: float) -> None:
        delay = due - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        sink(batch)
