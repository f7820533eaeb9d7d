"""``tickcast feed`` and ``tickcast record``: the ingest side without the WebSocket server.

Rules: each command builds its providers from the registry, runs one Supervisor (the
same failover, back-off and staleness rules as ``serve``) and writes what it delivers:
``feed`` the latest prices per symbol every ``--interval``, ``record`` every event.
SIGINT/SIGTERM end both cleanly (exit 0) after a final flush; refused credentials end
them with exit 1 and the vendor's reason, instead of retrying for ever. Both take the
feed's settings group (``FeedSettings``, ``settings.upstream``): nothing else is theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import msgspec

from tickcast.config.groups import FeedSettings
from tickcast.errors import UpstreamAuthError
from tickcast.model.market import MarketEvent, Quote
from tickcast.protocols.native.timefmt import iso_ms
from tickcast.providers import registry
from tickcast.providers.replay.record import Recorder
from tickcast.providers.supervisor import Supervisor

log = logging.getLogger("tickcast.feed")


async def _until_stopped(work: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``work(stop)`` until it ends or a signal sets ``stop``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await work(stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def supervise_until(supervisor: Supervisor, stop: asyncio.Event) -> None:
    """Run the supervisor until ``stop`` is set or it ends (raising what it raises)."""
    task = asyncio.create_task(supervisor.run(), name="supervisor")
    stopper = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.done() and not task.cancelled():
        task.result()


class PriceBatcher:
    """The latest quote per symbol, written in batches every interval (Front 2's feed).

    Each flush writes the symbols that changed since the previous one, at most
    ``batch_size`` per line: ``{"type": "prices", "timestamp": ..., "prices": [...]}``.
    """

    def __init__(self, out: BinaryIO, batch_size: int, *, verbose: bool) -> None:
        self._out = out
        self._batch_size = batch_size
        self._verbose = verbose
        self._latest: dict[str, Quote] = {}
        self.flushed = 0

    def __call__(self, events: Sequence[MarketEvent]) -> None:
        latest = self._latest
        for event in events:
            if type(event) is Quote:
                latest[event.symbol] = event

    def flush(self, now: float) -> None:
        if not self._latest:
            return
        quotes, self._latest = list(self._latest.values()), {}
        size = self._batch_size
        for start in range(0, len(quotes), size):
            chunk = quotes[start : start + size]
            line = {
                "type": "prices",
                "timestamp": iso_ms(now),
                "prices": [
                    {
                        "symbol": q.symbol,
                        "price": q.price,
                        "bid": q.bid,
                        "ask": q.ask,
                        "volume": int(q.volume) if q.volume.is_integer() else q.volume,
                        "timestamp": iso_ms(q.ts),
                        "source": q.source,
                    }
                    for q in chunk
                ],
            }
            self._out.write(msgspec.json.encode(line) + b"\n")
            self.flushed += len(chunk)
            if self._verbose:
                symbols = ", ".join(q.symbol for q in chunk)
                log.info("prices: %d symbols (%s)", len(chunk), symbols)
        self._out.flush()


def run_feed(
    settings: FeedSettings, *, interval: float, batch_size: int, out: str, verbose: bool
) -> int:
    """``tickcast feed``: the feed's latest prices per symbol every ``interval`` seconds,
    in batches of ``batch_size``, appended to ``out`` (``-``: stdout)."""
    providers = [registry.create(name, settings) for name in settings.feed]
    output_error: list[OSError] = []
    with _open_out(out) as file:
        batcher = PriceBatcher(file, batch_size, verbose=verbose)
        supervisor = Supervisor.from_settings(settings, providers, batcher)

        def flush() -> bool:
            """Write what is due; False (and stop) once the output is gone."""
            try:
                batcher.flush(time.time())
            except OSError as exc:  # a closed pipe (`| head`), a full disk
                output_error.append(exc)
                return False
            return True

        async def work(stop: asyncio.Event) -> None:
            async def flusher() -> None:
                while True:
                    await asyncio.sleep(interval)
                    if not flush():
                        stop.set()
                        return

            flushing = asyncio.create_task(flusher(), name="flush")
            try:
                await supervise_until(supervisor, stop)
            finally:
                flushing.cancel()
                if not output_error:
                    flush()

        code = _run(work, "feed")
    if output_error:
        if isinstance(output_error[0], BrokenPipeError):
            # the reader went away (`tickcast feed | head`): a normal end, as for any
            # Unix filter; stdout is pointed at /dev/null so exit does not complain
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return code
        print(f"tickcast feed: cannot write prices: {output_error[0]}", file=sys.stderr)
        return 1
    return code


def run_record(settings: FeedSettings, *, out: Path, duration: float, count: int) -> int:
    """``tickcast record``: every event the feed delivers, to the recording ``out``, for
    ``duration`` seconds or ``count`` events (0: until stopped)."""
    providers = [registry.create(name, settings) for name in settings.feed]
    symbols = frozenset().union(*(p.symbols for p in providers))
    with out.open("wb") as file:
        recorder = Recorder(file, ",".join(settings.feed), symbols)
        stop_at_count = asyncio.Event()

        def sink(events: Sequence[MarketEvent]) -> None:
            recorder(events)
            if count and recorder.count >= count:
                stop_at_count.set()

        supervisor = Supervisor.from_settings(settings, providers, sink)

        async def work(stop: asyncio.Event) -> None:
            loop = asyncio.get_running_loop()
            if duration:
                loop.call_later(duration, stop.set)
            relay = asyncio.create_task(stop_at_count.wait())
            relay.add_done_callback(lambda _: stop.set())
            try:
                await supervise_until(supervisor, stop)
            finally:
                relay.cancel()
                recorder.close()
                log.info("recorded %d events to %s", recorder.count, out)

        return _run(work, "record")


def _run(work: Callable[[asyncio.Event], Awaitable[None]], command: str) -> int:
    try:
        asyncio.run(_until_stopped(work))
    except UpstreamAuthError as exc:
        print(f"tickcast {command}: credentials refused: {exc}", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _open_out(out: str) -> Iterator[BinaryIO]:
    if out == "-":
        yield sys.stdout.buffer
    else:
        with Path(out).open("ab") as file:
            yield file
