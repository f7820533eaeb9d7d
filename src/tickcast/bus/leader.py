"""One node holds the upstream: a lease on the bus, renewed while the node is healthy.

Rules: ``Term`` is pure: given what the bus answered and when (monotonic seconds), it
says whether this node leads. ``Leadership`` is the thin loop that asks the bus.

- Every ``ttl_s / 3`` a node that does not lead tries to acquire the lease, and the
  leader renews it. A ``Leaving`` node's lease is released, so another takes over at
  once; a dead node's expires after ``ttl_s`` and another takes it within ``ttl_s / 3``
  more (``poke`` tries at once, when a node learns that the leader is gone). After the
  bus comes back, a node that does not lead waits a whole ``ttl_s`` before it tries
  (``reconnected``): the engine may have lost the lease while its holder still leads.
- The leader **steps down on its own** when it has not renewed for ``0.6 * ttl_s``
  (counted from when the last successful renewal was *sent*, so the engine's expiry is
  later still): it stops the upstream before the lease can expire and another node
  start one. With a lease of 5 s that leaves 2 s for the upstream connection to close:
  never two upstream connections at once, even when the leader is cut off from the bus.
- Each grant has a new fencing ``token`` (the bus's), carried in the leader's messages so
  that a node ignores a deposed leader's late batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tickcast.bus.base import Bus, BusError, Lease
from tickcast.clock import Clock

log = logging.getLogger("tickcast.cluster")

#: The share of the lease's TTL after which a leader that could not renew steps down.
STEP_DOWN = 0.6


class Term:
    """Whether this node leads, from the bus's answers (pure).

    Args:
        ttl_s: the lease's time to live.
    """

    __slots__ = ("lease", "renewed_at", "ttl_s")

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.lease: Lease | None = None
        self.renewed_at = 0.0  # when the last successful acquire/renew was sent

    @property
    def leading(self) -> bool:
        return self.lease is not None

    def granted(self, lease: Lease, sent_at: float) -> None:
        self.lease = lease
        self.renewed_at = sent_at

    def renewed(self, ok: bool, sent_at: float) -> bool:
        """The renewal sent at ``sent_at`` answered ``ok``; True when still leading."""
        if ok:
            self.renewed_at = sent_at
            return True
        self.lease = None
        return False

    def expired(self, now: float) -> bool:
        """The leader must step down now: no renewal for ``STEP_DOWN * ttl_s``."""
        return self.lease is not None and now - self.renewed_at >= STEP_DOWN * self.ttl_s

    def lost(self) -> None:
        self.lease = None


#: Called with the new lease when this node starts leading, None when it stops.
OnChange = Callable[[Lease | None], Awaitable[None]]


class Leadership:
    """Acquires and renews the lease ``name`` for ``holder`` on ``bus``.

    ``on_change`` is awaited on every change (the node starts the upstream, or stops it
    before anything else happens); one that raises is logged, and the node steps down.
    """

    def __init__(
        self,
        bus: Bus,
        name: str,
        holder: str,
        ttl_s: float,
        on_change: OnChange,
        *,
        clock: Clock,
    ) -> None:
        self.bus = bus
        self.name = name
        self.holder = holder
        self.term = Term(ttl_s)
        self.on_change = on_change
        self.clock = clock
        self.elections = 0  # terms this node won
        self._hold_until = 0.0  # no acquire before (monotonic): see ``reconnected``
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def lease(self) -> Lease | None:
        return self.term.lease

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="leadership")

    def reconnected(self) -> None:
        """The bus came back. The engine may have restarted without its data, the lease
        with it, while its last holder still believes it leads (until its next renewal
        is refused, up to a third of the TTL later): a node that does not lead waits a
        whole TTL before it tries to acquire, so that the old holder has stepped down."""
        if self.term.lease is None:
            self._hold_until = self.clock.monotonic() + self.term.ttl_s

    def poke(self) -> None:
        """Try now, not at the next period (the leader just left)."""
        self._wake.set()

    async def aclose(self) -> None:
        """Stop trying; a held lease is given up (after ``on_change(None)``)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        lease = self.term.lease
        if lease is not None:
            await self._step_down("the node is stopping")
            with contextlib.suppress(BusError):
                await self.bus.release(lease)

    async def _step_down(self, why: str) -> None:
        self.term.lost()
        log.warning("%s no longer leads: %s", self.holder, why)
        try:
            await self.on_change(None)
        except Exception:
            log.exception("stepping down failed")

    async def _run(self) -> None:
        period = self.term.ttl_s / 3
        while True:
            try:
                await self._once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the leadership loop failed; it goes on")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._period(period))

    def _period(self, period: float) -> float:
        """Sleep at most until the step-down deadline, so it is never overslept."""
        term = self.term
        if term.lease is None:
            return period
        deadline = term.renewed_at + STEP_DOWN * term.ttl_s - self.clock.monotonic()
        return max(0.01, min(period, deadline))

    async def _once(self) -> None:
        term = self.term
        sent = self.clock.monotonic()
        if term.lease is None:
            if sent < self._hold_until:
                return
            try:
                lease = await self.bus.acquire(self.name, self.holder, term.ttl_s)
            except BusError:
                return
            if lease is None:
                return
            term.granted(lease, sent)
            self.elections += 1
            log.warning("%s leads now (fencing token %d)", self.holder, lease.token)
            try:
                await self.on_change(lease)
            except Exception:
                log.exception("taking the lead failed; stepping down")
                await self._step_down("taking the lead failed")
                with contextlib.suppress(BusError):
                    await self.bus.release(lease)
            return
        if term.expired(sent):
            await self._step_down("the lease could not be renewed in time")
            return
        # the answer must come before the step-down deadline: a renewal still waiting
        # then is a lost one (the lease may lapse while it waits)
        left = term.renewed_at + STEP_DOWN * term.ttl_s - sent
        try:
            ok = await asyncio.wait_for(self.bus.renew(term.lease, term.ttl_s), max(0.01, left))
        except TimeoutError:
            await self._step_down("the bus did not answer the renewal in time")
            return
        except BusError:
            ok = None
        if ok is None:
            if term.expired(self.clock.monotonic()):
                await self._step_down("the bus cannot be reached to renew the lease")
            return
        if not term.renewed(ok, sent):
            await self._step_down("the lease was lost")
