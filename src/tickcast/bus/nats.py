"""The NATS bus: messages on core NATS subjects, leases in JetStream key-value buckets.

Rules: a thin driver over NATS (nats-py); the server does the fan-out and keeps the
leases.

- **Messages**: a subject is a core NATS subject (at most once, nothing kept). nats-py
  calls one subscription's callback one message at a time, in order; the callback
  calls the subject's handler (one that raises is logged; the next message goes on).
  ``subscribe`` returns after a ``flush`` (a PING answered), so the server has the
  subscription before anything published after it. A second ``subscribe`` only swaps
  the handler. The connection echoes: the publisher's own subscriptions get its
  messages.
- **Loss and repair**: nats-py reconnects for ever (``max_reconnect_attempts=-1``; it
  would give up after 60 by default), every ``RECONNECT_WAIT_S`` (plus its jitter), and
  subscribes again before its ``reconnected_cb``: listeners hear False from
  ``disconnected_cb`` and True from ``reconnected_cb``. Operations raise ``BusError``
  while disconnected (nats-py would buffer a publish instead).
- **Leases**: one JetStream key-value bucket per lease name (``lease_bucket``), holding
  one key, ``lease``. The server here (2.9) has no per-key TTL, so the lease's TTL is
  the bucket's (the stream's ``max_age``): a bucket per name lets each lease have its
  own. ``acquire`` is ``kv.create`` (refused while the key holds a value), and the token
  is the acquiring node's clock in ms, kept in the value: a grant comes only after the
  previous lease lapsed (seconds later), so tokens grow, even when JetStream lost its
  data (a revision would start over) or the bucket was deleted. The cached buckets are
  looked up again after any failure. ``renew`` is ``kv.update`` with
  ``last`` = the revision read (a compare-and-set), rewriting the value with its token,
  so that the message, hence the expiry, starts again. ``release`` is ``kv.delete`` with
  ``last``. When ``ttl_s`` differs from the bucket's ``max_age`` (a bucket made with
  another TTL, or a new TTL asked), the bucket's ``max_age`` is set to it after a
  successful acquire or renew (never before: a refused acquire must not change the
  holder's TTL); this applies to the whole bucket, which holds only this lease. Expiry
  is the server's: it may come a little after ``ttl_s`` (its expiry timer's lag).

Every operation waits at most ``OPERATION_TIMEOUT_S`` and raises ``BusError`` otherwise.
The URL's password is never logged nor put in an error: logs say ``host:port`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from nats.js.errors import (
    BadRequestError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

from tickcast.bus.base import (
    MAX_MESSAGE_BYTES,
    OPERATION_TIMEOUT_S,
    BusError,
    Handler,
    Lease,
    scrub,
    where,
)

log = logging.getLogger("tickcast.bus")

T = TypeVar("T")

#: Seconds ``start`` waits for the first connection before raising ``BusError``.
CONNECT_TIMEOUT_S: Final = 5.0
#: Seconds between reconnection attempts (nats-py adds up to 0.1 s of jitter).
RECONNECT_WAIT_S: Final = 0.5
#: Seconds between the client's PINGs; ``MAX_OUTSTANDING_PINGS`` unanswered in a row make
#: the connection count as lost (a cut that sends no FIN or RST is seen within ~15 s;
#: nats-py's default, 120 s x 2, would take minutes).
PING_INTERVAL_S: Final = 5
MAX_OUTSTANDING_PINGS: Final = 2
#: The only key of a lease's bucket.
KEY: Final = "lease"


def lease_bucket(name: str) -> str:
    """The bucket of lease ``name``: ``lease_`` and the name, with ``_`` written ``__``
    and ``.`` written ``_d`` (bucket names allow letters, digits, ``_`` and ``-``;
    the mapping is one to one)."""
    return "lease_" + name.replace("_", "__").replace(".", "_d")


class _Subscription:
    """A subject's handler; the callback calls it while it is the subject's current."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sub: Any = None


class NatsBus:
    """A bus over the NATS server at ``url`` (``nats://[user:password@]host:port``,
    ``tls://`` for TLS), with JetStream for the leases; see the module docstring."""

    name = "nats"

    def __init__(self, url: str) -> None:
        self._url = url
        self._where = where(url)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subs: dict[str, _Subscription] = {}
        self._buckets: dict[str, KeyValue] = {}
        self._listeners: list[Callable[[bool], None]] = []
        self._up = False
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._up and self._nc is not None and self._nc.is_connected

    # -- connection -------------------------------------------------------------------

    async def start(self) -> None:
        if self._nc is not None:
            return
        nc = Client()
        self._closing = False
        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=[self._url],
                    connect_timeout=int(OPERATION_TIMEOUT_S),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    # nats-py annotates int seconds, and sleeps for a float just as well
                    reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]
                    ping_interval=PING_INTERVAL_S,
                    max_outstanding_pings=MAX_OUTSTANDING_PINGS,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                ),
                CONNECT_TIMEOUT_S,
            )
        except Exception as exc:
            self._closing = True
            with contextlib.suppress(Exception):
                await nc.close()
            raise BusError(
                f"cannot reach the NATS bus at {self._where}: {self._why(exc)}"
            ) from None
        self._nc = nc
        self._js = nc.jetstream(timeout=OPERATION_TIMEOUT_S)
        self._up = True
        log.info("bus: connected to NATS at %s", self._where)

    async def aclose(self) -> None:
        nc, self._nc = self._nc, None
        self._closing = True
        self._up = False
        self._js = None
        self._subs.clear()
        self._buckets.clear()
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), OPERATION_TIMEOUT_S)

    def on_connection(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def _notify(self, up: bool) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(up)
            except Exception:
                log.exception("bus: a connection listener raised")

    async def _disconnected(self) -> None:
        if self._closing or not self._up:
            return
        self._up = False
        log.warning("bus: lost NATS at %s; reconnecting", self._where)
        self._notify(False)

    async def _reconnected(self) -> None:
        if self._closing or self._up:
            return
        self._up = True
        log.warning("bus: connected again to NATS at %s", self._where)
        self._notify(True)

    async def _error(self, exc: Exception) -> None:
        if not self._closing:
            log.info("bus: NATS at %s: %s", self._where, self._why(exc))

    def _why(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return scrub(text, self._url)

    # -- operations -------------------------------------------------------------------

    def _check(self) -> Client:
        if not self.connected or self._nc is None:
            raise BusError(f"the NATS bus at {self._where} is not connected")
        return self._nc

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        self._check()
        try:
            return await asyncio.wait_for(operation(), OPERATION_TIMEOUT_S)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            self._buckets.clear()  # JetStream may have lost them: look them up again
            raise BusError(f"the NATS bus at {self._where}: {what}: {self._why(exc)}") from None

    async def publish(self, subject: str, data: bytes) -> None:
        if len(data) > MAX_MESSAGE_BYTES:
            raise BusError(f"a bus message is at most {MAX_MESSAGE_BYTES} bytes")
        nc = self._check()
        await self._call("publish", lambda: nc.publish(subject, bytes(data)))

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if any(len(data) > MAX_MESSAGE_BYTES for _, data in messages):
            raise BusError(f"a bus message is at most {MAX_MESSAGE_BYTES} bytes")
        nc = self._check()

        async def buffered() -> None:  # nats-py buffers and flushes on its own
            for subject, data in messages:
                await nc.publish(subject, bytes(data))

        await self._call("publish", buffered)

    async def subscribe(self, subject: str, handler: Handler) -> None:
        nc = self._check()
        current = self._subs.get(subject)
        if current is not None:
            current.handler = handler  # the server already sends it: a new handler
            return
        entry = self._subs[subject] = _Subscription(handler)

        async def deliver(msg: Msg) -> None:
            if self._subs.get(subject) is not entry:
                return
            try:
                entry.handler(msg.data)
            except Exception:
                log.exception("a bus handler on %s raised; the next message goes on", subject)

        async def run() -> None:
            entry.sub = await nc.subscribe(subject, cb=deliver)
            await nc.flush(timeout=int(OPERATION_TIMEOUT_S))

        try:
            await self._call("subscribe", run)
        except BusError:
            if self._subs.get(subject) is entry:
                del self._subs[subject]
            raise

    async def unsubscribe(self, subject: str) -> None:
        entry = self._subs.pop(subject, None)
        if entry is None or entry.sub is None:
            return
        with contextlib.suppress(Exception):  # nothing is called any more either way
            await asyncio.wait_for(entry.sub.unsubscribe(), OPERATION_TIMEOUT_S)

    # -- leases -----------------------------------------------------------------------

    async def _bucket(self, name: str, ttl_s: float | None) -> KeyValue | None:
        """Lease ``name``'s bucket; made (with ``ttl_s``) when missing and ``ttl_s`` is
        given, else None when missing."""
        bucket = lease_bucket(name)
        kv = self._buckets.get(bucket)
        if kv is not None:
            return kv
        js = self._js
        assert js is not None
        try:
            kv = await js.key_value(bucket)
        except BucketNotFoundError:
            if ttl_s is None:
                return None
            try:
                kv = await js.create_key_value(bucket=bucket, history=1, ttl=ttl_s)
            except BadRequestError:  # made meanwhile with another TTL
                kv = await js.key_value(bucket)
        self._buckets[bucket] = kv
        return kv

    async def _set_ttl(self, name: str, ttl_s: float) -> None:
        """Make the bucket's ``max_age`` ``ttl_s`` if it is not (to the millisecond)."""
        js = self._js
        assert js is not None
        info = await js.stream_info(f"KV_{lease_bucket(name)}")
        config = info.config
        if config.max_age is not None and abs(config.max_age - ttl_s) < 0.001:
            return
        window = config.duplicate_window
        config.max_age = ttl_s
        config.duplicate_window = ttl_s if window is None else min(window, ttl_s)
        await js.update_stream(config)

    async def _current(self, kv: KeyValue, name: str) -> tuple[Lease, int] | None:
        """The lease held on ``name`` and its key's revision; None when nobody holds it."""
        try:
            entry = await kv.get(KEY)
        except KeyNotFoundError:  # KeyDeletedError too
            return None
        if entry.value is None or entry.revision is None:
            return None
        value = json.loads(entry.value)
        token = int(value.get("token", entry.revision))
        return Lease(name, str(value["holder"]), token), entry.revision

    async def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        async def run() -> Lease | None:
            kv = await self._bucket(name, ttl_s)
            assert kv is not None
            # the token: this node's clock in ms, which grows from one grant to the next
            # (a grant comes after the previous lease lapsed), even when JetStream lost
            # its data and revisions start over
            token = int(time.time() * 1000)
            value = json.dumps({"holder": holder, "token": token}).encode()
            try:
                try:
                    await kv.create(KEY, value)
                except KeyNotFoundError:  # the deleted key's marker expired meanwhile
                    await kv.create(KEY, value)
            except KeyWrongLastSequenceError:
                return None
            await self._set_ttl(name, ttl_s)
            return Lease(name, holder, token)

        return await self._call("acquire", run)

    async def renew(self, lease: Lease, ttl_s: float) -> bool:
        async def run() -> bool:
            kv = await self._bucket(lease.name, None)
            current = None if kv is None else await self._current(kv, lease.name)
            if kv is None or current is None or current[0] != lease:
                return False
            value = {"holder": lease.holder, "token": lease.token}
            try:
                await kv.update(KEY, json.dumps(value).encode(), last=current[1])
            except KeyWrongLastSequenceError:
                return False
            await self._set_ttl(lease.name, ttl_s)
            return True

        return await self._call("renew", run)

    async def release(self, lease: Lease) -> None:
        async def run() -> None:
            kv = await self._bucket(lease.name, None)
            current = None if kv is None else await self._current(kv, lease.name)
            if kv is None or current is None or current[0] != lease:
                return
            with contextlib.suppress(BadRequestError):  # lost meanwhile (wrong last)
                await kv.delete(KEY, last=current[1])

        await self._call("release", run)

    async def holder(self, name: str) -> Lease | None:
        async def run() -> Lease | None:
            kv = await self._bucket(name, None)
            current = None if kv is None else await self._current(kv, name)
            return None if current is None else current[0]

        return await self._call("holder", run)
