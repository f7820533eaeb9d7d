"""Identity: who a WebSocket or HTTP client is, from a JWT or an API key.

Rules: the checks are ``auth.credentials`` (pure); this module adds the one I/O they
need, the API-key lookup, with a short cache so that a reconnect storm does not become a
database storm (RELIABILITY F9): a verified key is trusted for ``CACHE_S`` seconds,
a refused one is remembered as refused for as long. JWTs are verified locally, with no
lookup at all. Every front uses the same ``Identity``. When the database is down or slow
(RELIABILITY F11) a key seen before keeps working from the cache, and an unknown one is
answered "try again later" (CredentialsUnavailable) within ``LOOKUP_TIMEOUT_S``.

- **Single flight**: one lookup per key prefix at a time; every handshake that needs the
  same key meanwhile waits for that lookup (each for at most ``LOOKUP_TIMEOUT_S``)
  rather than sending its own query. The lookup is a task of this object, so a waiter
  that gives up (or is cancelled) never cancels the query under the others.
- **Bounded, least recently used**: at most ``cache_size`` keys are remembered; past it
  the key used longest ago is forgotten, never the whole cache (a burst of new or
  unknown keys must not wipe out the keys that are in use).
- **Stale if the database fails**: an expired entry is still served when its refresh
  fails, and for ``RETRY_S`` after that failure it is served at once, without asking
  the database again (a down database must not cost every handshake a timeout). While
  the database answers, an expired entry is always refreshed first, so a revoked key
  stops working within ``CACHE_S``.

Looking again: ``recheck(prefix)`` refreshes a key whose cache entry has expired (and
does nothing otherwise); every lookup from the database tells the ``looked_up``
listeners what the key names now (a front that must notice a role taken away from an
open connection's user listens: ``Guard.watch``).

Key use (``keys list`` LAST USED): each successful API-key authentication is noted in
a ``KeyUsage`` (pure); the uses due (at most one per key per ``TOUCH_INTERVAL_S``) are
written by one background task that this object owns (``aclose`` waits for it, bounded), in one
transaction per batch. Nobody awaits that task: a connection never waits for the
write, and a failed write (the database is down) is logged and fails no connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, NamedTuple

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tickcast.auth.credentials import (
    InvalidCredentials,
    Principal,
    hash_secret,
    issue_token,
    looks_like_api_key,
    parse_api_key,
    parse_permissions,
    verify_secret,
    verify_token,
)
from tickcast.auth.usage import DEFAULT_INTERVAL_S, KeyUsage
from tickcast.errors import TickcastError
from tickcast.storage.errors import NotFound
from tickcast.storage.repositories import ApiKeys, Users

#: Seconds a key lookup (good or bad) is reused.
CACHE_S: Final = 30.0
#: Seconds a key lookup may take before the database counts as unavailable.
LOOKUP_TIMEOUT_S: Final = 3.0
#: Seconds an expired entry is served without a new lookup after a lookup failed.
RETRY_S: Final = 5.0
#: Allowed clock difference between nodes for a token's iat/exp, in seconds.
LEEWAY_S: Final = 5.0
#: Seconds ``aclose`` waits for work in flight (key-use writes) before cancelling it.
CLOSE_TIMEOUT_S: Final = LOOKUP_TIMEOUT_S + 2.0
#: Seconds between two recorded uses of one API key (``last_used_at``).
TOUCH_INTERVAL_S: Final = DEFAULT_INTERVAL_S
#: Keys remembered at most (least recently used forgotten first).
CACHE_SIZE: Final = 10_000

log = logging.getLogger("tickcast.fronts.identity")


class _Key(NamedTuple):
    """A cached key lookup: until when it is trusted, and what it said."""

    until: float
    key_id: int | None  # None: no such key
    principal: Principal | None  # None: unknown or revoked
    secret_hash: str


class CredentialsUnavailable(TickcastError):
    """The credentials could not be checked now (the accounts database is down or
    slow): not the client's fault; it should try again later (1013 / 503)."""


class Identity:
    """Turns credentials into a Principal.

    Args:
        engine: the accounts database.
        jwt_secret: the HS256 key.
        jwt_ttl_s: lifetime of issued tokens.
        clock: wall clock (epoch seconds).
        touch_interval_s: least seconds between two recorded uses of one API key.
        cache_size: API keys remembered at most (least recently used forgotten first).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        jwt_secret: str,
        jwt_ttl_s: float,
        clock: Callable[[], float] = time.time,
        touch_interval_s: float = TOUCH_INTERVAL_S,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.engine = engine
        self.jwt_secret = jwt_secret
        self.jwt_ttl_s = jwt_ttl_s
        self.clock = clock
        self.usage = KeyUsage(touch_interval_s)
        self.cache_size = max(1, cache_size)
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._lookups: dict[str, asyncio.Task[_Key]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        #: told ``(prefix, principal)`` after each lookup (None: revoked or unknown)
        self.looked_up: list[Callable[[str, Principal | None], None]] = []

    async def authenticate(self, token: str) -> Principal:
        """The principal of a JWT or an API key. Raises InvalidCredentials."""
        now = self.clock()
        if not looks_like_api_key(token):
            return Principal.from_claims(
                verify_token(token, self.jwt_secret, now, leeway_s=LEEWAY_S)
            )
        prefix, secret = parse_api_key(token)
        cached = self._keys.get(prefix)
        if cached is not None:
            self._keys.move_to_end(prefix)
        if cached is None or cached.until < now:
            try:
                cached = await self._fresh(prefix, now)
            except (TimeoutError, SQLAlchemyError, OSError) as exc:
                if cached is None:  # a known key keeps working while the database is down
                    raise CredentialsUnavailable(
                        "Cannot check credentials now: try again later"
                    ) from exc
                if cached.until < now:  # served as it is, without a lookup, for a while
                    cached = cached._replace(until=now + RETRY_S)
                    self._remember(prefix, cached)
        if cached.principal is None or not verify_secret(secret, cached.secret_hash):
            raise InvalidCredentials("Invalid API key")
        if cached.key_id is not None and self.usage.used(cached.key_id, now):
            self._write_usage()
        return cached.principal

    async def recheck(self, prefix: str) -> None:
        """Look the key up again if its cache entry has expired (or is gone); the
        listeners hear the answer. A database that cannot answer changes nothing."""
        now = self.clock()
        cached = self._keys.get(prefix)
        if cached is not None and cached.until >= now:
            return
        try:
            await self._fresh(prefix, now)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            log.warning("could not look an API key up again: %s", exc or type(exc))

    async def _fresh(self, prefix: str, now: float) -> _Key:
        """The key as the database says now: one lookup per prefix at a time, shared."""
        task = self._lookups.get(prefix)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._lookup(prefix, now), name="identity-key-lookup"
            )
            self._lookups[prefix] = task
            task.add_done_callback(lambda done: self._lookup_done(prefix, done))
        async with asyncio.timeout(LOOKUP_TIMEOUT_S):
            return await asyncio.shield(task)

    def _lookup_done(self, prefix: str, task: asyncio.Task[_Key]) -> None:
        if self._lookups.get(prefix) is task:
            del self._lookups[prefix]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have given up already

    async def _lookup(self, prefix: str, now: float) -> _Key:
        async with asyncio.timeout(LOOKUP_TIMEOUT_S):
            entry = await self._query(prefix, now)
        self._remember(prefix, entry)
        for listener in self.looked_up:
            try:
                listener(prefix, entry.principal)
            except Exception:  # a listener's bug must not fail the lookup
                log.exception("a key-lookup listener failed")
        return entry

    def _remember(self, prefix: str, entry: _Key) -> None:
        self._keys[prefix] = entry
        self._keys.move_to_end(prefix)
        while len(self._keys) > self.cache_size:
            self._keys.popitem(last=False)

    async def _query(self, prefix: str, now: float) -> _Key:
        entry: _Key
        async with self.engine.connect() as conn:
            try:
                key = await ApiKeys(conn).find_by_prefix(prefix)
                user = await Users(conn).by_id(key.user_id)
            except NotFound:
                entry = _Key(now + CACHE_S, None, None, hash_secret(""))
            else:
                principal = None
                if not key.revoked:
                    allowed = parse_permissions(key.permissions)
                    principal = Principal(
                        user.id, user.username, permissions=allowed, role=user.role
                    )
                entry = _Key(now + CACHE_S, key.id, principal, key.secret_hash)
        return entry

    # -- recording key use, in the background

    def _write_usage(self) -> None:
        """Make sure the writer runs (one at a time; it takes every use due)."""
        if self._closed or (self._writer is not None and not self._writer.done()):
            return
        self._writer = asyncio.get_running_loop().create_task(
            self._write_due(), name="identity-key-usage"
        )

    async def _write_due(self) -> None:
        while self.usage.pending:
            due = self.usage.take()
            try:
                async with asyncio.timeout(LOOKUP_TIMEOUT_S), self.engine.begin() as conn:
                    keys = ApiKeys(conn)
                    for key_id, at in due.items():
                        with contextlib.suppress(NotFound):  # deleted meanwhile
                            await keys.touch_last_used(key_id, at=_utc(at))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let a bookkeeping write hurt anyone
                log.warning(
                    "could not record the use of %d API key(s): %s", len(due), exc or type(exc)
                )

    async def wait_written(self) -> None:
        """Wait until the key uses due so far are written (or failed): for tests."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def aclose(self) -> None:
        """Stop recording key use (shutdown): no new write starts, and the uses already
        due are flushed. Work in flight (that write, and key lookups) is waited for, up
        to ``CLOSE_TIMEOUT_S``, never cancelled mid-query (a query cancelled while the
        driver's thread runs it is lost, and that thread may then answer a loop that is
        already closed); only what is still running after that is cancelled."""
        self._closed = True
        writer, self._writer = self._writer, None
        busy = [t for t in (writer, *self._lookups.values()) if t is not None and not t.done()]
        if not busy:
            return
        await asyncio.wait(busy, timeout=CLOSE_TIMEOUT_S)
        for task in busy:
            if not task.done():
                task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)

    def issue(self, principal: Principal) -> str:
        """A signed token for ``principal`` (e.g. in exchange for an API key)."""
        if principal.user_id is None or principal.username is None:
            raise InvalidCredentials("only an authenticated user gets a token")
        return issue_token(
            principal.user_id,
            principal.username,
            self.jwt_secret,
            self.clock(),
            self.jwt_ttl_s,
            role=principal.role,
        )


def _utc(posix_s: float) -> datetime:
    return datetime.fromtimestamp(posix_s, UTC)
