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
"""

from __future__ import annotations

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
from tickcast.fronts.identity import Identity


class Guard:
    """Admission and limits shared by the fronts of one node."""

    def __init__(self, settings: Settings, identity: Identity) -> None:
        self.settings = settings
        self.identity = identity
        self.connections = ConnectionCounter(settings.max_connections_per_user)
        self.refusals: dict[str, int] = {}

    async def admit(
        self, scope: Scope, *, first_message_auth: bool = False
    ) -> tuple[Principal, policy.Refusal | None]:
        """Who the client is, or why it may not connect. A principal that is admitted
        holds a connection slot: call ``release`` when it closes."""
        refusal = policy.check_origin(_header(scope, b"origin"), self.settings.allowed_origins)
        principal = ANONYMOUS
        if refusal is None:
            try:
                token = credentials_from_handshake(
                    scope.get("headers", ()), scope.get("query_string", b"")
                )
                if token is not None:
                    principal = await self.identity.authenticate(token)
            except InvalidCredentials as exc:
                refusal = policy.invalid_credentials(exc)
        if refusal is None and not first_message_auth:
            refusal = policy.check_market(principal, self.settings.allow_anonymous)
        if refusal is None and not self.connections.acquire(principal.user_id):
            refusal = policy.too_many_connections(self.settings.max_connections_per_user)
        if refusal is not None:
            self.refusals[refusal.reason.value] = self.refusals.get(refusal.reason.value, 0) + 1
        return principal, refusal

    def acquire_late(self, principal: Principal) -> policy.Refusal | None:
        """Count a connection that authenticated by its first message."""
        if self.connections.acquire(principal.user_id):
            return None
        return policy.too_many_connections(self.settings.max_connections_per_user)

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
