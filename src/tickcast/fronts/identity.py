"""Identity: who a WebSocket or HTTP client is, from a JWT or an API key.

Rules: the checks are ``auth.credentials`` (pure); this module adds the one I/O they
need, the API-key lookup, with a short cache so that a reconnect storm does not become a
database storm (RELIABILITY F9): a verified key is trusted for ``CACHE_S`` seconds,
a refused one is remembered as refused for as long. JWTs are verified locally, with no
lookup at all. Every front uses the same ``Identity``. When the database is down or slow
(RELIABILITY F11) a key seen before keeps working from the cache, and an unknown one is
answered "try again later" (CredentialsUnavailable) within ``LOOKUP_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tickcast.auth.credentials import (
    InvalidCredentials,
    Principal,
    hash_secret,
    issue_token,
    looks_like_api_key,
    parse_api_key,
    verify_secret,
    verify_token,
)
from tickcast.errors import TickcastError
from tickcast.storage.errors import NotFound
from tickcast.storage.repositories import ApiKeys, Users

#: Seconds a key lookup (good or bad) is reused.
CACHE_S: Final = 30.0
#: Seconds a key lookup may take before the database counts as unavailable.
LOOKUP_TIMEOUT_S: Final = 3.0
#: Allowed clock difference between nodes for a token's iat/exp, in seconds.
LEEWAY_S: Final = 5.0
_MAX_CACHE: Final = 10_000


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
    """

    def __init__(
        self,
        engine: AsyncEngine,
        jwt_secret: str,
        jwt_ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.jwt_secret = jwt_secret
        self.jwt_ttl_s = jwt_ttl_s
        self.clock = clock
        self._keys: dict[str, tuple[float, Principal | None, str]] = {}

    async def authenticate(self, token: str) -> Principal:
        """The principal of a JWT or an API key. Raises InvalidCredentials."""
        now = self.clock()
        if not looks_like_api_key(token):
            return Principal.from_claims(
                verify_token(token, self.jwt_secret, now, leeway_s=LEEWAY_S)
            )
        prefix, secret = parse_api_key(token)
        cached = self._keys.get(prefix)
        if cached is None or cached[0] < now:
            try:
                async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                    cached = await self._lookup(prefix, now)
            except (TimeoutError, SQLAlchemyError, OSError) as exc:
                if cached is None:  # a known key keeps working while the database is down
                    raise CredentialsUnavailable(
                        "Cannot check credentials now: try again later"
                    ) from exc
        _, principal, secret_hash = cached
        if principal is None or not verify_secret(secret, secret_hash):
            raise InvalidCredentials("Invalid API key")
        return principal

    async def _lookup(self, prefix: str, now: float) -> tuple[float, Principal | None, str]:
        entry: tuple[float, Principal | None, str]
        async with self.engine.connect() as conn:
            try:
                key = await ApiKeys(conn).find_by_prefix(prefix)
                user = await Users(conn).by_id(key.user_id)
            except NotFound:
                entry = (now + CACHE_S, None, hash_secret(""))
            else:
                principal = None if key.revoked else Principal(user.id, user.username)
                entry = (now + CACHE_S, principal, key.secret_hash)
        if len(self._keys) >= _MAX_CACHE:
            self._keys.clear()
        self._keys[prefix] = entry
        return entry

    def issue(self, principal: Principal) -> str:
        """A signed token for ``principal`` (e.g. in exchange for an API key)."""
        if principal.user_id is None or principal.username is None:
            raise InvalidCredentials("only an authenticated user gets a token")
        return issue_token(
            principal.user_id, principal.username, self.jwt_secret, self.clock(), self.jwt_ttl_s
        )
