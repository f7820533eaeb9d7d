"""A small TCP proxy for fault tests: forwards to a target it may change, and can cut
the network without closing anything (a black hole), delay it, or sever it.

- ``target``: where new connections go (a restarted server on another port).
- ``blackhole()``: the open connections stop carrying bytes either way but stay open
  (a dead NAT entry, a pulled cable): only a heartbeat timeout notices. New connections
  are still forwarded unless ``refuse_new`` is set.
- ``delay_s``: every chunk waits that long before it is forwarded.
- ``sever()``: every open connection is reset.
- ``accepted``: how many connections it took (a retry storm shows here).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from support.server import free_port


@dataclass
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    dead: bool = False


@dataclass
class TcpProxy:
    target: int
    port: int = field(default_factory=free_port)
    delay_s: float = 0.0
    accepted: int = 0
    refuse_new: bool = False
    _pairs: list[_Pair] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # every socket it holds, from its accept on (one still connecting upstream is in no
    # pair yet): ``stop`` aborts them all, so none outlives the test's loop
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _stopped: bool = False

    @property
    def feed(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/market/feed"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self._stopped = True
        if self._server is not None:
            self._server.close()
        self.sever()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def blackhole(self) -> None:
        for pair in self._pairs:
            pair.dead = True

    def sever(self) -> None:
        for pair in self._pairs:
            for writer in (pair.client, pair.upstream):
                writer.transport.abort()
        self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.refuse_new or self._stopped:
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        if self._stopped:  # stopped while this one was connecting upstream
            writer.transport.abort()
            up_writer.transport.abort()
            return
        pair = _Pair(writer, up_writer)
        self._pairs.append(pair)
        for task in (
            asyncio.create_task(self._pump(reader, up_writer, pair)),
            asyncio.create_task(self._pump(up_reader, writer, pair)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: _Pair
    ) -> None:
        try:
            while data := await reader.read(65536):
                if pair.dead:
                    continue  # swallowed: the peer never hears of it
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not pair.dead:
                writer.transport.abort()


@contextlib.asynccontextmanager
async def proxy_to(target: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(target)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
