"""Guard: the checks every WebSocket front applies, at the handshake and per message.

Rules: the decisions are ``auth.policy`` and ``auth.limits`` (pure); this module reads
the ASGI scope, asks ``Identity`` who the client is, and counts connections per user.
A refusal is answered the same way on every front: the WebSocket is accepted and then
closed with the refusal's close code (1008) and message, as MISSION.md asks for origins,
so that a browser client can show why.

Order at the handshake: origin, then credentials (a bad or expired one is refused; none
is anonymous), then the market-data policy (``anonymous_ok`` False refuses an anonymous
client unless the front authenticates by first message), then the per-user connection
cap. Per message: the token bucket (an error over the rate; close on a flood).

A credential sent only as the cookie is one a browser attaches by itself, whatever site
opened the socket (cross-site WebSocket hijacking): it counts only when the Origin is
on the allow-list or, without a list, is the gateway's own (same host as ``Host``).
When the accounts database cannot answer, the client is closed with 1013 (try again
later), not left hanging.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.types import Scope

from tickcast.auth import policy
from tickcast.auth.credentials import (
    ANONYMOUS,
    InvalidCredentials,
    Principal,
    credentials_from_handshake,
)
from tickcast.auth.limits import ConnectionCounter, RateLimit, RateVerdict
from tickcast.closecodes import CloseCode
from tickcast.config.settings import Settings
from tickcast.fronts.identity import CredentialsUnavailable, Identity
from tickcast.observability.stats import Stats


class Guard:
    """Admission and limits shared by the fronts of one node."""

    def __init__(self, settings: Settings, identity: Identity, stats: Stats) -> None:
        self.settings = settings
        self.identity = identity
        self.stats = stats
        self.connections = ConnectionCounter(settings.max_connections_per_user)

    def count(self, refusal: policy.Refusal) -> policy.Refusal:
        """Count a refusal in the metrics (``tickcast_refusals_total{reason}``)."""
        refusals = self.stats.refusals
        refusals[refusal.reason.value] = refusals.get(refusal.reason.value, 0) + 1
        return refusal

    async def admit(
        self, scope: Scope, *, first_message_auth: bool = False
    ) -> tuple[Principal, policy.Refusal | None]:
        """Who the client is, or why it may not connect. A principal that is admitted
        holds a connection slot: call ``release`` when it closes."""
        origin = _header(scope, b"origin")
        refusal = policy.check_origin(origin, self.settings.allowed_origins)
        principal = ANONYMOUS
        if refusal is None:
            try:
                token = credentials_from_handshake(
                    scope.get("headers", ()), scope.get("query_string", b"")
                )
                if token is not None and self._cookie_only(scope) and not self._own(origin, scope):
                    refusal = policy.origin_refused(origin)
                elif token is not None:
                    principal = await self.identity.authenticate(token)
            except InvalidCredentials as exc:
                refusal = policy.invalid_credentials(exc)
            except CredentialsUnavailable as exc:
                refusal = policy.unavailable(str(exc))
        if refusal is None and not first_message_auth:
            refusal = policy.check_market(principal, self.settings.allow_anonymous)
        if refusal is None and not self.connections.acquire(principal.user_id):
            refusal = policy.too_many_connections(self.settings.max_connections_per_user)
        if refusal is not None:
            self.count(refusal)
        return principal, refusal

    def _own(self, origin: str | None, scope: Scope) -> bool:
        """No Origin (not a browser), an allow-listed one, or the gateway's own host."""
        if origin is None or self.settings.allowed_origins:
            return True  # an allow-list was already checked
        host = (_header(scope, b"host") or "").lower()
        normal = policy.normalize_origin(origin)
        return normal is not None and normal.split("://", 1)[-1] == host

    @staticmethod
    def _cookie_only(scope: Scope) -> bool:
        headers = {key.lower() for key, _ in scope.get("headers", ())}
        if b"authorization" in headers or b"x-api-key" in headers:
            return False
        return b"token=" not in scope.get("query_string", b"")

    def acquire_late(self, principal: Principal) -> policy.Refusal | None:
        """Count a connection that authenticated by its first message."""
        if self.connections.acquire(principal.user_id):
            return None
        return self.count(policy.too_many_connections(self.settings.max_connections_per_user))

    def release(self, principal: Principal) -> None:
        self.connections.release(principal.user_id)

    def rate_limit(self) -> RateLimit:
        return RateLimit(self.settings.rate_limit_per_s, self.settings.rate_limit_burst)


class RateLimited:
    """A session wrapper that applies a RateLimit to every inbound message.

    Over the rate a message is dropped and answered with ``refuse(message, now)``; a
    client that keeps flooding is closed with 1008.
    """

    def __init__(
        self, session: Any, limit: RateLimit, refuse: Callable[[str, float], None]
    ) -> None:
        self._session = session
        self._limit = limit
        self._refuse = refuse
        self._message = policy.rate_limited(limit.bucket.rate_per_s, limit.bucket.burst).message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def _admit(self, now: float) -> bool:
        verdict = self._limit.check(now)
        if verdict is RateVerdict.ALLOW:
            return True
        self._refuse(self._message, now)
        if verdict is RateVerdict.CLOSE:
            self._session.close_reason = CloseCode.POLICY_VIOLATION
        return False

    def receive_text(self, data: str, now: float) -> None:
        if self._admit(now):
            self._session.receive_text(data, now)

    def receive_bytes(self, data: bytes, now: float) -> None:
        if self._admit(now):
            self._session.receive_bytes(data, now)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def close_on_expiry(connection: Any, principal: Principal) -> asyncio.TimerHandle | None:
    """Close ``connection`` (1008) when ``principal``'s token expires; cancel the handle
    when the connection ends. None for a credential that does not expire."""
    if principal.expires_at is None:
        return None
    refusal = policy.expired()

    def expire() -> None:
        if not connection.closing:
            connection.close(refusal.close_code, refusal.close_reason)

    delay = max(0.0, principal.expires_at - time.time())
    return asyncio.get_running_loop().call_later(delay, expire)
