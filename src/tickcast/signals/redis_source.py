"""RedisSource: trading signals from a Redis pub/sub channel.

Rules: this module is the Redis I/O; what a message means is the service's
(``SignalService.ingest``: a signal, or a dead letter). One task subscribes to
``channel`` and hands every message's bytes to ``on_message``; a listener that loses
its connection (Redis restarted, the network cut) reconnects with capped, jittered
back-off (``retry.Backoff``) and subscribes again, for as long as the service runs.
redis-py's own retries are off, so that every loss is seen, counted and reported here.

Health (``status``), as the ``redis`` worker status says it:

- **active**: subscribed; messages are being received;
- **degraded**: not subscribed, and fewer than ``offline_after`` connection attempts
  have failed in a row (starting up, or a loss being repaired);
- **offline**: ``offline_after`` or more attempts in a row have failed: Redis is down
  or unreachable; the source keeps trying (at most ``backoff.cap_s`` apart).

Every change of state calls ``on_change`` (the service publishes the new status at
once). Pub/sub is at-most-once: what is published while the listener is not subscribed
never reaches it; that gap is what the degraded and offline statuses report.

The URL's password is never logged: ``safe_url`` is what logs and statuses show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Callable
from typing import Final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tickcast.clock import SYSTEM, Clock
from tickcast.model.signal import WorkerStatus
from tickcast.retry import Backoff

log = logging.getLogger("tickcast.signals.redis")

NAME: Final = "redis"
#: Failed connection attempts in a row after which the source counts as offline.
OFFLINE_AFTER: Final = 3
#: Seconds a connection attempt may take.
CONNECT_TIMEOUT_S: Final = 5.0
#: Seconds of silence after which the subscription's connection is checked with a PING.
HEALTH_CHECK_S: Final = 10.0
#: Seconds a PING (or the SUBSCRIBE) may wait for Redis's answer before the connection
#: counts as lost: a cut that sends no FIN or RST (a partition, a frozen Redis) is seen.
ANSWER_TIMEOUT_S: Final = 5.0
#: The longest one wait for a message lasts (the loop then checks the connection).
POLL_S: Final = 1.0
#: Seconds a connection's close (or the listener's stop) may take before it is given up.
CLOSE_TIMEOUT_S: Final = 5.0
#: The default back-off between attempts: up to 0.5 s at first, never more than 15 s.
BACKOFF: Final = Backoff(base_s=0.5, cap_s=15.0)


#: A password in the URL's query string, which redis-py reads too.
_QUERY_PASSWORD: Final = re.compile(r"(?i)([?&]password=)[^&#]*")


def _secrets(url: str) -> list[str]:
    """What of ``url`` must never be shown: the password of its user part, found
    without a URL parser (a password holding ``/``, ``#`` or ``?`` unescaped breaks
    one: everything up to the last ``@`` is the user part), each piece a parser could
    cut it into, and a ``password=`` in the query."""
    found: list[str] = []
    _, sep, rest = url.partition("://")
    userinfo = rest[: rest.rfind("@")] if sep and "@" in rest else ""
    if userinfo:
        password = userinfo.partition(":")[2] if ":" in userinfo else userinfo
        if password:
            found.append(password)
            found.extend(p for p in re.split(r"[/#?:]", password) if len(p) >= 3)
    for match in _QUERY_PASSWORD.finditer(url):
        value = match.group(0).partition("=")[2]
        if value:
            found.append(value)
    return sorted(set(found), key=len, reverse=True)  # the whole before its pieces


def safe_url(url: str) -> str:
    """``url`` without its password (``redis://user:***@host:6379/0``), wherever it is:
    the user part (whatever it holds) and a ``password=`` in the query."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<a Redis URL that cannot be parsed>"
    at = rest.rfind("@")
    if at != -1:
        userinfo, host = rest[:at], rest[at + 1 :]
        user = userinfo.partition(":")[0] if ":" in userinfo else ""
        rest = f"{user}:***@{host}"
    return _QUERY_PASSWORD.sub(r"\1***", f"{scheme}://{rest}")


def _without_password(text: str, url: str) -> str:
    """``text`` (an error message) with ``url``, and anything of its password, taken
    out."""
    text = text.replace(url, safe_url(url))
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


class RedisSource:
    """Subscribes to ``channel`` at ``url``; see the module docstring.

    Args:
        url: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS).
        channel: the pub/sub channel signals arrive on.
        on_message: called with each message's bytes.
        on_change: called after each change of state.
        backoff: the waits between connection attempts.
        rng: the back-off's random source.
        offline_after: failed attempts in a row that make the source offline.
        clock: the node's clock (its monotonic seconds time the health checks).
    """

    def __init__(
        self,
        url: str,
        channel: str,
        on_message: Callable[[bytes], object],
        *,
        on_change: Callable[[], object] = lambda: None,
        backoff: Backoff = BACKOFF,
        rng: random.Random | None = None,
        offline_after: int = OFFLINE_AFTER,
        clock: Clock = SYSTEM,
    ) -> None:
        self.clock = clock
        self.url = url
        self.channel = channel
        self.on_message = on_message
        self.on_change = on_change
        self.backoff = backoff
        self.rng = rng or random.Random()
        self.offline_after = offline_after
        self.subscribed = False
        self.failures = 0  # connection attempts failed in a row
        self.last_error = ""
        self.counts: dict[str, int] = {"connected": 0, "lost": 0, "failed": 0, "messages": 0}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @property
    def name(self) -> str:
        return NAME

    def events(self) -> dict[str, int]:
        return dict(self.counts)

    def status(self) -> WorkerStatus:
        """The source's health in words anyone may read (the status channel is
        public): the channel, never the server's address or the error's text, which
        the log has (``last_error``, the password taken out)."""
        where = f"channel {self.channel!r}"
        if self.subscribed:
            return WorkerStatus(NAME, "active", f"subscribed to {where}")
        if self.failures >= self.offline_after:
            return WorkerStatus(
                NAME,
                "offline",
                f"cannot reach Redis ({self.failures} attempts failed); retrying {where}",
            )
        if self.last_error:
            return WorkerStatus(NAME, "degraded", f"connection lost; resubscribing to {where}")
        return WorkerStatus(NAME, "degraded", f"connecting to subscribe to {where}")

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="signals-redis")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # bounded: redis-py's own close must not hold the shutdown for ever
            done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
            if not done:
                log.warning("signals: the Redis listener did not stop within %g s", CLOSE_TIMEOUT_S)
        self._set_subscribed(False)

    async def wait_subscribed(self) -> None:
        """Wait until subscribed (for tests and tools)."""
        await self._subscribed.wait()

    def _set_subscribed(self, subscribed: bool) -> None:
        """Change the subscription state; ``on_change`` when the status changed."""
        was = self.status().status
        self.subscribed = subscribed
        if subscribed:
            self._subscribed.set()
        else:
            self._subscribed.clear()
        if self.status().status != was:
            self.on_change()

    async def _run(self) -> None:
        log.info("listening for signals on %s", f"{self.channel!r} at {safe_url(self.url)}")
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._lost(exc)
            except Exception as exc:  # e.g. a URL redis-py cannot use: reported, retried
                self._lost(exc)  # logged there, the password taken out (no traceback)
            delay = self.backoff.delay(max(0, self.failures - 1), self.rng)
            await asyncio.sleep(delay)

    async def _listen(self) -> None:
        """One connection: subscribe, wait for Redis to confirm it (a refusal, such as an
        ACL's NOPERM, raises here and counts as a failed attempt), then read messages,
        checking a silent connection with a PING whose answer must come in time."""
        client = Redis.from_url(
            self.url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        pubsub: PubSub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            clock = self.clock
            heard = clock.monotonic()  # when Redis last said anything
            asked: float | None = heard  # an answer is awaited since (the SUBSCRIBE's)
            while True:
                message = await pubsub.get_message(timeout=POLL_S)
                now = clock.monotonic()
                if message is not None:
                    heard, asked = now, None
                    kind = message.get("type")
                    if kind == "message":
                        data = message["data"]
                        self.counts["messages"] += 1
                        self._deliver(data if isinstance(data, bytes) else str(data).encode())
                    elif kind == "subscribe" and not self.subscribed:
                        self._confirmed()
                    continue
                if asked is not None:
                    if now - asked > ANSWER_TIMEOUT_S:
                        what = "the PING" if self.subscribed else "the SUBSCRIBE"
                        raise TimeoutError(f"no answer to {what} for {ANSWER_TIMEOUT_S:g} s")
                elif now - heard >= HEALTH_CHECK_S:
                    await pubsub.ping()
                    asked = now
        finally:  # each close bounded: a connection in a bad state must not hang us
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), CLOSE_TIMEOUT_S)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.aclose(), CLOSE_TIMEOUT_S)

    def _confirmed(self) -> None:
        """Redis confirmed the subscription: active, and the failures are behind."""
        self.counts["connected"] += 1
        if self.failures or self.last_error:
            log.warning("signals: subscribed again to %r at %s", self.channel, safe_url(self.url))
        self.failures = 0
        self.last_error = ""
        self._set_subscribed(True)

    def _deliver(self, data: bytes) -> None:
        try:
            self.on_message(data)
        except Exception:  # the service's bug must not end the subscription
            log.exception("signals: a message from Redis could not be handled")

    def _lost(self, exc: BaseException) -> None:
        was = self.status().status
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.last_error = _without_password(error, self.url)
        if self.subscribed:
            self.counts["lost"] += 1
            log.warning("signals: lost the Redis subscription (%s); reconnecting", self.last_error)
        else:
            self.counts["failed"] += 1
            self.failures += 1
            log.warning(
                "signals: cannot subscribe at %s (%s), attempt %d",
                safe_url(self.url),
                self.last_error,
                self.failures,
            )
        self.subscribed = False
        self._subscribed.clear()
        if self.status().status != was:  # lost, or degraded -> offline after more failures
            self.on_change()
