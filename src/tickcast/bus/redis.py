"""The Redis bus: messages over Redis pub/sub, leases as keys with a Lua script each.

Rules: a thin driver over Redis (redis-py's asyncio client); Redis does the fan-out and
keeps the leases.

- **Messages**: ``PUBLISH`` on a pool of command connections; one dedicated pub/sub
  connection holds every ``SUBSCRIBE``, and one reader task takes what it receives in
  order and calls the subject's handler (a handler that raises is logged; the next
  message goes on). ``subscribe`` returns once Redis confirmed the subscription, so
  that whatever is published after it returns reaches the handler. Besides the
  caller's subjects, the connection is always subscribed to a control channel of its
  own (``__tickcast_bus:<random>``, outside the subjects' alphabet), so that it exists
  before any subscription and a silent connection can be checked with a ``PING``.
- **Loss and repair**: the reader sees a lost connection (Redis stopped, ``CLIENT KILL
  TYPE pubsub``, a PING unanswered for ``ANSWER_TIMEOUT_S`` after ``HEALTH_CHECK_S`` of
  silence): ``connected`` turns False, listeners hear False, and it reconnects for ever
  with capped, jittered back-off (``retry.Backoff``), subscribes again to every subject
  and, once Redis confirmed them all, listeners hear True. Operations raise ``BusError``
  meanwhile. redis-py's own retries are off, so that every loss is seen here.
- **Leases**: the key ``<name>`` holds ``<token>:<holder>`` with a ``PX`` expiry; the
  fencing token comes from ``INCR <name>:token`` (``:`` is outside the names' alphabet,
  so no lease name collides with a counter), raised to the engine's clock in ms when
  below it (so that a Redis restarted without its data still grants a greater token
  than before), in the same Lua script as the ``SET`` (so acquire is atomic). The
  counter never expires. ``renew`` and ``release`` are Lua scripts that act only if the key
  still holds exactly ``<token>:<holder>``. Keys are not hash-tagged: not for Redis
  Cluster.

Every operation waits at most ``OPERATION_TIMEOUT_S`` and raises ``BusError`` otherwise.
The URL's password is never logged nor put in an error: logs say ``host:port`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tickcast.bus.base import (
    MAX_MESSAGE_BYTES,
    OPERATION_TIMEOUT_S,
    BusError,
    Handler,
    Lease,
    scrub,
    where,
)
from tickcast.clock import SYSTEM, Clock
from tickcast.retry import Backoff

log = logging.getLogger("tickcast.bus")

T = TypeVar("T")

#: Seconds one wait for a pub/sub message lasts (the reader then checks the connection).
POLL_S: Final = 1.0
#: Seconds of silence on the pub/sub connection after which it is checked with a PING.
HEALTH_CHECK_S: Final = 5.0
#: Seconds a PING may wait for its answer before the connection counts as lost.
ANSWER_TIMEOUT_S: Final = 5.0
#: The default back-off between reconnection attempts: up to 0.1 s at first, 5 s at most.
BACKOFF: Final = Backoff(base_s=0.1, cap_s=5.0)

_ACQUIRE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
-- never below the engine's clock in ms: a Redis restarted without its data (the
-- counter lost) still grants tokens above every earlier one
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if token < floor then
  token = floor
  redis.call('SET', KEYS[2], token)
end
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return token
"""
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _ms(ttl_s: float) -> int:
    return max(1, round(ttl_s * 1000))


def _value(lease: Lease) -> str:
    return f"{lease.token}:{lease.holder}"


class RedisBus:
    """A bus over the Redis at ``url`` (``redis://[user:password@]host:port/db``,
    ``rediss://`` for TLS); see the module docstring.

    Args:
        url: the Redis URL.
        backoff: the waits between reconnection attempts.
        rng: the back-off's random source.
        clock: monotonic seconds for the pub/sub health check.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        backoff: Backoff = BACKOFF,
        rng: random.Random | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self._url = url
        self._where = where(url)
        self.backoff = backoff
        self.rng = rng or random.Random()
        self.clock = clock
        self._control = f"__tickcast_bus:{secrets.token_hex(8)}"
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._handlers: dict[str, Handler] = {}
        self._acks: dict[str, list[asyncio.Future[None]]] = {}
        self._listeners: list[Callable[[bool], None]] = []
        self._up = False

    @property
    def connected(self) -> bool:
        return self._up

    # -- connection -------------------------------------------------------------------

    async def start(self) -> None:
        if self._client is not None:
            return
        client = Redis.from_url(
            self._url,
            socket_connect_timeout=OPERATION_TIMEOUT_S,
            socket_timeout=OPERATION_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self._client = client
        try:
            self._pubsub = await asyncio.wait_for(self._connect(), OPERATION_TIMEOUT_S)
        except Exception as exc:
            self._client = None
            with contextlib.suppress(Exception):
                await client.aclose()
            raise BusError(
                f"cannot reach the Redis bus at {self._where}: {self._why(exc)}"
            ) from None
        self._up = True
        self._task = asyncio.create_task(self._run(), name="bus-redis")
        log.info("bus: connected to Redis at %s", self._where)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._up = False
        self._fail_acks()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        self._handlers.clear()

    def on_connection(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def _notify(self, up: bool) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(up)
            except Exception:
                log.exception("bus: a connection listener raised")

    def _why(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return scrub(text, self._url)

    async def _connect(self) -> PubSub:
        """A new pub/sub connection subscribed to the control channel and every
        subject, returned once Redis confirmed them all (messages that arrive meanwhile
        are delivered)."""
        assert self._client is not None
        pubsub = self._client.pubsub()
        try:
            wanted = {self._control, *self._handlers}
            await pubsub.subscribe(*wanted)
            while wanted:
                message = await pubsub.get_message(timeout=POLL_S)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    wanted.discard(_text(message["channel"]))
                else:
                    self._handle(message)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        return pubsub

    async def _run(self) -> None:
        """The reader: reads the pub/sub connection until it is lost, then reconnects."""
        while True:
            pubsub = self._pubsub
            assert pubsub is not None
            try:
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bus: lost Redis at %s (%s); reconnecting", self._where, self._why(exc))
            self._up = False
            self._pubsub = None
            self._fail_acks()
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            self._notify(False)
            self._pubsub = await self._reconnect()
            self._up = True
            log.warning("bus: connected again to Redis at %s", self._where)
            self._notify(True)

    async def _reconnect(self) -> PubSub:
        attempt = 0
        while True:
            await asyncio.sleep(self.backoff.delay(attempt, self.rng))
            attempt += 1
            try:
                return await asyncio.wait_for(self._connect(), OPERATION_TIMEOUT_S * 2)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info(
                    "bus: Redis at %s still unreachable (%s), attempt %d",
                    self._where,
                    self._why(exc),
                    attempt,
                )

    async def _read(self, pubsub: PubSub) -> None:
        """Hand every message to its handler, in order; a silent connection is checked
        with a PING whose answer must come within ``ANSWER_TIMEOUT_S``."""
        clock = self.clock
        heard = clock.monotonic()
        asked: float | None = None
        while True:
            message = await pubsub.get_message(timeout=POLL_S)
            now = clock.monotonic()
            if message is not None:
                heard, asked = now, None
                self._handle(message)
                continue
            if asked is not None:
                if now - asked > ANSWER_TIMEOUT_S:
                    raise TimeoutError(f"no answer to a PING for {ANSWER_TIMEOUT_S:g} s")
            elif now - heard >= HEALTH_CHECK_S:
                await pubsub.ping()
                asked = now

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            subject = _text(message["channel"])
            handler = self._handlers.get(subject)
            if handler is None:
                return
            data = message["data"]
            try:
                handler(data if isinstance(data, bytes) else str(data).encode())
            except Exception:
                log.exception("a bus handler on %s raised; the next message goes on", subject)
        elif kind == "subscribe":
            waiters = self._acks.get(_text(message["channel"]))
            if waiters:
                waiter = waiters.pop(0)
                if not waiter.done():
                    waiter.set_result(None)

    def _fail_acks(self) -> None:
        acks, self._acks = self._acks, {}
        for waiters in acks.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(BusError("the Redis bus connection was lost"))

    # -- operations -------------------------------------------------------------------

    def _check(self) -> Redis:
        if not self._up or self._client is None:
            raise BusError(f"the Redis bus at {self._where} is not connected")
        return self._client

    async def _call(self, what: str, operation: Callable[[Redis], Awaitable[T]]) -> T:
        client = self._check()
        try:
            return await asyncio.wait_for(operation(client), OPERATION_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            raise BusError(f"the Redis bus at {self._where}: {what}: {self._why(exc)}") from None

    async def publish(self, subject: str, data: bytes) -> None:
        if len(data) > MAX_MESSAGE_BYTES:
            raise BusError(f"a bus message is at most {MAX_MESSAGE_BYTES} bytes")
        await self._call("publish", lambda c: c.publish(subject, data))

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if any(len(data) > MAX_MESSAGE_BYTES for _, data in messages):
            raise BusError(f"a bus message is at most {MAX_MESSAGE_BYTES} bytes")

        async def pipelined(client: Redis) -> None:
            pipe = client.pipeline(transaction=False)  # one round trip, in order
            for subject, data in messages:
                pipe.publish(subject, data)
            await pipe.execute()

        await self._call("publish", pipelined)

    async def subscribe(self, subject: str, handler: Handler) -> None:
        self._check()
        if subject in self._handlers:
            self._handlers[subject] = handler  # Redis already sends it: a new handler
            return
        pubsub = self._pubsub
        assert pubsub is not None
        waiter = asyncio.get_running_loop().create_future()
        self._acks.setdefault(subject, []).append(waiter)
        self._handlers[subject] = handler

        async def confirmed() -> None:
            await pubsub.subscribe(subject)
            await waiter

        try:
            await asyncio.wait_for(confirmed(), OPERATION_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError, BusError) as exc:
            if self._handlers.get(subject) is handler:
                del self._handlers[subject]
            raise BusError(f"the Redis bus at {self._where}: subscribe: {self._why(exc)}") from None

    async def unsubscribe(self, subject: str) -> None:
        if self._handlers.pop(subject, None) is None:
            return
        pubsub = self._pubsub
        if self._up and pubsub is not None:
            # Nothing is called any more; a failure here is a lost connection, which the
            # reader repairs without this subject.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.unsubscribe(subject), OPERATION_TIMEOUT_S)

    # -- leases -----------------------------------------------------------------------

    async def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        async def run(client: Redis) -> Any:
            script = client.register_script(_ACQUIRE)
            return await script(keys=[name, f"{name}:token"], args=[holder, _ms(ttl_s)])

        token = await self._call("acquire", run)
        return None if token is None else Lease(name, holder, int(token))

    async def renew(self, lease: Lease, ttl_s: float) -> bool:
        async def run(client: Redis) -> Any:
            script = client.register_script(_RENEW)
            return await script(keys=[lease.name], args=[_value(lease), _ms(ttl_s)])

        return bool(await self._call("renew", run))

    async def release(self, lease: Lease) -> None:
        async def run(client: Redis) -> Any:
            script = client.register_script(_RELEASE)
            return await script(keys=[lease.name], args=[_value(lease)])

        await self._call("release", run)

    async def holder(self, name: str) -> Lease | None:
        async def run(client: Redis) -> Any:
            return await client.get(name)

        value = await self._call("holder", run)
        if value is None:
            return None
        token, sep, holder = _text(value).partition(":")
        if not sep or not token.isdigit():
            return None  # not a lease (someone else's key): nobody holds it
        return Lease(name, holder, int(token))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
