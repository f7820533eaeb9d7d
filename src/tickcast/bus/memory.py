"""The in-process bus: the embedded default, for one node (nothing to start).

Rules: every ``MemoryBus`` on one ``MemoryBroker`` sees the others' messages and leases,
as nodes on one engine would (tests run several nodes in one process this way); by
default each bus has a broker of its own. A message is handed to each subscriber's
handler in publication order by a task of its own per subscription (a handler never runs
inside ``publish``, as with a real engine). A lease expires by the injected clock's
monotonic time. ``disconnect()`` and ``reconnect()`` simulate losing the engine, for the
conformance suite: messages published meanwhile are not delivered to that bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from tickcast.bus.base import MAX_MESSAGE_BYTES, BusError, Handler, Lease
from tickcast.clock import SYSTEM, Clock

log = logging.getLogger("tickcast.bus")


class MemoryBroker:
    """The shared state of the buses of one process: subscriptions and leases."""

    def __init__(self, clock: Clock = SYSTEM) -> None:
        self.clock = clock
        self.subscribers: dict[str, set[_Subscription]] = {}
        self.leases: dict[str, tuple[Lease, float]] = {}  # name -> (lease, expiry)
        self.tokens: dict[str, int] = {}

    def lease(self, name: str) -> Lease | None:
        held = self.leases.get(name)
        if held is None:
            return None
        lease, expiry = held
        if self.clock.monotonic() >= expiry:
            del self.leases[name]
            return None
        return lease


class _Subscription:
    """One handler's queue and the task that drains it in order."""

    def __init__(self, subject: str, handler: Handler) -> None:
        self.subject = subject
        self.handler = handler
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(), name=f"bus-memory:{subject}")

    async def _run(self) -> None:
        while True:
            data = await self.queue.get()
            try:
                self.handler(data)
            except Exception:
                log.exception("a bus handler on %s raised; the next message goes on", self.subject)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class MemoryBus:
    """A bus over a ``MemoryBroker`` (a private one when none is given)."""

    name = "memory"

    def __init__(self, broker: MemoryBroker | None = None, *, clock: Clock = SYSTEM) -> None:
        self.broker = MemoryBroker(clock) if broker is None else broker
        self._subs: dict[str, _Subscription] = {}
        self._handlers: dict[str, Handler] = {}
        self._listeners: list[Callable[[bool], None]] = []
        self._started = False
        self._up = False

    @property
    def connected(self) -> bool:
        return self._up

    async def start(self) -> None:
        self._started = self._up = True

    async def aclose(self) -> None:
        self._up = self._started = False
        for subject in list(self._subs):
            await self._drop(subject)
        self._handlers.clear()

    def _check(self) -> None:
        if not self._up:
            raise BusError("the memory bus is disconnected")

    async def publish(self, subject: str, data: bytes) -> None:
        self._check()
        if len(data) > MAX_MESSAGE_BYTES:
            raise BusError(f"a bus message is at most {MAX_MESSAGE_BYTES} bytes")
        for sub in tuple(self.broker.subscribers.get(subject, ())):
            sub.queue.put_nowait(bytes(data))

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        for subject, data in messages:
            await self.publish(subject, data)

    async def subscribe(self, subject: str, handler: Handler) -> None:
        self._check()
        await self._drop(subject)
        self._handlers[subject] = handler
        self._attach(subject, handler)

    def _attach(self, subject: str, handler: Handler) -> None:
        sub = self._subs[subject] = _Subscription(subject, handler)
        self.broker.subscribers.setdefault(subject, set()).add(sub)

    async def _drop(self, subject: str) -> None:
        sub = self._subs.pop(subject, None)
        if sub is None:
            return
        subs = self.broker.subscribers.get(subject)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.broker.subscribers[subject]
        await sub.close()

    async def unsubscribe(self, subject: str) -> None:
        self._handlers.pop(subject, None)
        await self._drop(subject)

    def on_connection(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    async def disconnect(self) -> None:
        """Lose the engine (tests): subscriptions stop, operations raise ``BusError``."""
        if not self._up:
            return
        self._up = False
        for subject in list(self._subs):
            await self._drop(subject)
        for listener in self._listeners:
            listener(False)

    async def reconnect(self) -> None:
        """The engine is back (tests): subscriptions restored, then ``on_connection(True)``."""
        if self._up or not self._started:
            return
        self._up = True
        for subject, handler in self._handlers.items():
            self._attach(subject, handler)
        for listener in self._listeners:
            listener(True)

    async def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        self._check()
        broker = self.broker
        if broker.lease(name) is not None:
            return None
        # never below the clock in ms, as Redis does: a broker that forgot its counters
        # still grants a greater token than before
        floor = int(broker.clock.wall() * 1000)
        token = broker.tokens[name] = max(broker.tokens.get(name, 0) + 1, floor)
        lease = Lease(name, holder, token)
        broker.leases[name] = (lease, broker.clock.monotonic() + ttl_s)
        return lease

    async def renew(self, lease: Lease, ttl_s: float) -> bool:
        self._check()
        broker = self.broker
        if broker.lease(lease.name) != lease:
            return False
        broker.leases[lease.name] = (lease, broker.clock.monotonic() + ttl_s)
        return True

    async def release(self, lease: Lease) -> None:
        self._check()
        if self.broker.lease(lease.name) == lease:
            del self.broker.leases[lease.name]

    async def holder(self, name: str) -> Lease | None:
        self._check()
        return self.broker.lease(name)
