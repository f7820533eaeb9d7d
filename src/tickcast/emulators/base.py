"""What every vendor emulator shares: a simulated market, connection limits per key,
scripted faults and an HTTP control endpoint.

Rules: vendor-neutral. A vendor module supplies one coroutine per connection
(``Handler``); it reads ``server.faults`` and ``server.market`` and answers in its own
wire format. Faults are injected on the command line (``--fault silent@30:10``), or by
``GET /emulator/fault/<kind>?duration=S`` on the emulator's own port, or by calling
``EmulatorServer.inject`` from a test.

Faults (what each looks like on the wire is the vendor module's business):
    drop       every open connection is cut (TCP abort, no close frame)
    silent     data stops for ``duration`` seconds (0 = until resumed); pings still answered
    malformed  each connection gets one malformed data message, then data as usual
    slow       each connection is killed as a slow client (Alpaca: error 407, then close)
    resume     ends a ``silent`` fault early
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Final
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from tickcast.model.market import MarketEvent
from tickcast.providers.calendar import AlwaysOpen
from tickcast.providers.simulator.market import MarketSimulator, SimulatorConfig

log = logging.getLogger("tickcast.emulator")

#: Batches a connection may have queued before it counts as a slow client.
MAX_QUEUED_BATCHES: Final = 1000
#: Seconds between simulator wake-ups.
TICK_INTERVAL_S: Final = 0.01


class Fault(enum.StrEnum):
    DROP = "drop"
    SILENT = "silent"
    MALFORMED = "malformed"
    SLOW = "slow"
    RESUME = "resume"


class Faults:
    """The scripted faults in force. Pure: every method takes ``now``.

    One-shot faults (malformed, slow) are generations: a connection starts from
    ``dict(faults.generation)`` (what was injected before it opened is not its business)
    and acts once for each later injection (``pending``), so every open connection gets
    exactly one, and a client reconnecting after a ``slow`` kill is not killed again.
    """

    def __init__(self) -> None:
        self.silent_until = 0.0
        self.generation: dict[Fault, int] = {Fault.MALFORMED: 0, Fault.SLOW: 0}
        self.injected: list[tuple[float, Fault, float]] = []

    def inject(self, fault: Fault, now: float, duration_s: float = 0.0) -> None:
        self.injected.append((now, fault, duration_s))
        if fault is Fault.SILENT:
            self.silent_until = now + duration_s if duration_s > 0 else float("inf")
        elif fault is Fault.RESUME:
            self.silent_until = 0.0
        elif fault in self.generation:
            self.generation[fault] += 1

    def silent(self, now: float) -> bool:
        return now < self.silent_until

    def pending(self, fault: Fault, seen: dict[Fault, int]) -> bool:
        """True once per injection of ``fault`` not yet acted on by this connection."""
        current = self.generation[fault]
        if seen.get(fault, 0) < current:
            seen[fault] = current
            return True
        return False


def parse_fault_schedule(text: str) -> list[tuple[float, Fault, float]]:
    """``"drop@30,silent@60:10"`` -> [(30.0, DROP, 0.0), (60.0, SILENT, 10.0)].

    Each item is ``<kind>@<seconds after start>[:<duration s>]``. Raises ValueError.
    """
    schedule = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, at, rest = item.partition("@")
        if not at:
            raise ValueError(f"fault {item!r}: expected <kind>@<seconds>[:<duration>]")
        when, _, duration = rest.partition(":")
        try:
            schedule.append((float(when), Fault(kind), float(duration or 0)))
        except ValueError:
            kinds = ", ".join(f.value for f in Fault)
            raise ValueError(f"fault {item!r}: kinds are {kinds}; times in seconds") from None
    return sorted(schedule, key=lambda entry: entry[0])


class MarketFeed:
    """One connection's view of the market: a bounded queue of event batches."""

    def __init__(self, market: EmulatedMarket, max_batches: int = MAX_QUEUED_BATCHES) -> None:
        self._market = market
        self._queue: asyncio.Queue[Sequence[MarketEvent]] = asyncio.Queue(max_batches)
        self.overflowed = False

    def _put(self, events: Sequence[MarketEvent]) -> None:
        try:
            self._queue.put_nowait(events)
        except asyncio.QueueFull:
            self.overflowed = True

    async def get(self) -> Sequence[MarketEvent]:
        return await self._queue.get()

    def __enter__(self) -> MarketFeed:
        self._market._feeds.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._market._feeds.discard(self)


class EmulatedMarket:
    """The simulator on the event loop, fanned out to every connection's MarketFeed."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self.simulator = MarketSimulator(config, AlwaysOpen(), clock())
        self._feeds: set[MarketFeed] = set()

    def feed(self) -> MarketFeed:
        """A new connection's feed; use it as a context manager (``with market.feed()``)."""
        return MarketFeed(self)

    def snapshot(self) -> list[MarketEvent]:
        return self.simulator.snapshot()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            events = self.simulator.advance(self._clock())
            if events:
                for feed in tuple(self._feeds):
                    feed._put(events)
            deadline += TICK_INTERVAL_S
            await asyncio.sleep(max(0.0, deadline - loop.time()))


Handler = Callable[["EmulatorServer", ServerConnection], Awaitable[None]]


class EmulatorServer:
    """A vendor emulator's WebSocket server, its market, its limits and its faults.

    Args:
        vendor: "alpaca" or "polygon", for logs and the control endpoint.
        handler: the vendor's per-connection coroutine.
        config: the simulated market (the vendor module picks its source name).
        host, port: where to listen; port 0 picks a free port (see ``port``).
        connection_limit: open connections allowed per API key (both vendors: 1).
        schedule: faults to inject at given seconds after start.
        paths: the stream paths served; any other gets HTTP 404 at the handshake
            (empty: every path).
    """

    def __init__(
        self,
        vendor: str,
        handler: Handler,
        config: SimulatorConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        connection_limit: int = 1,
        schedule: Sequence[tuple[float, Fault, float]] = (),
        paths: Sequence[str] = (),
    ) -> None:
        self.vendor = vendor
        self.paths = tuple(paths)
        self.market = EmulatedMarket(config)
        self.faults = Faults()
        self.connection_limit = connection_limit
        self.host = host
        self._requested_port = port
        self._handler = handler
        self._schedule = list(schedule)
        self._claims: dict[str, int] = {}
        self._connections: set[ServerConnection] = set()
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.connections_total = 0

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def claim(self, key: str) -> bool:
        """Count a connection against ``key``'s limit; False when the limit is reached."""
        if self._claims.get(key, 0) >= self.connection_limit:
            return False
        self._claims[key] = self._claims.get(key, 0) + 1
        return True

    def release(self, key: str) -> None:
        left = self._claims.get(key, 0) - 1
        if left > 0:
            self._claims[key] = left
        else:
            self._claims.pop(key, None)

    def inject(self, fault: Fault, duration_s: float = 0.0) -> None:
        """Inject a fault now. ``drop`` acts at once; the others at each connection's
        next data message."""
        log.warning(
            "emulator fault", extra={"vendor": self.vendor, "fault": fault.value, "s": duration_s}
        )
        self.faults.inject(fault, time.time(), duration_s)
        if fault is Fault.DROP:
            for connection in tuple(self._connections):
                connection.transport.abort()

    async def _serve(self, connection: ServerConnection) -> None:
        self._connections.add(connection)
        self.connections_total += 1
        try:
            await self._handler(self, connection)
        finally:
            self._connections.discard(connection)

    def _control(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if not url.path.startswith("/emulator/"):
            if self.paths and url.path.rstrip("/") not in self.paths:
                paths = ", ".join(self.paths)
                return connection.respond(HTTPStatus.NOT_FOUND, f"unknown stream; try {paths}\n")
            return None
        parts = url.path.strip("/").split("/")
        if parts[1:2] == ["state"]:
            state = {
                "vendor": self.vendor,
                "connections": len(self._connections),
                "connections_total": self.connections_total,
                "silent": self.faults.silent(time.time()),
                "faults": [[t, f.value, d] for t, f, d in self.faults.injected],
            }
            return connection.respond(HTTPStatus.OK, json.dumps(state) + "\n")
        if len(parts) == 3 and parts[1] == "fault":
            try:
                fault = Fault(parts[2])
                duration = float(parse_qs(url.query).get("duration", ["0"])[0])
            except ValueError:
                kinds = ", ".join(f.value for f in Fault)
                return connection.respond(HTTPStatus.BAD_REQUEST, f"faults: {kinds}\n")
            self.inject(fault, duration)
            return connection.respond(HTTPStatus.OK, f"injected {fault.value}\n")
        return connection.respond(HTTPStatus.NOT_FOUND, "try /emulator/state\n")

    async def _run_schedule(self) -> None:
        started = time.monotonic()
        for at, fault, duration in self._schedule:
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            self.inject(fault, duration)

    async def start(self) -> None:
        self._server = await serve(
            self._serve,
            self.host,
            self._requested_port,
            process_request=self._control,
            max_size=1 << 20,
            ping_interval=None,
            compression="deflate",
        )
        self._tasks = [
            asyncio.create_task(self.market.run(), name=f"{self.vendor}-market"),
            asyncio.create_task(self._run_schedule(), name=f"{self.vendor}-faults"),
        ]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.aclose()

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
