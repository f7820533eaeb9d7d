"""Guard: the checks every WebSocket front applies, at the handshake and per message.

Rules: the decisions are ``auth.policy`` and ``auth.limits`` (pure); this module reads
the ASGI scope, asks ``Identity`` who the client is, counts connections per user and per
client address, keeps each front's roster of open connections, and answers refusals the
same way on every front.

Who the client is (its address) was decided once, before any front ran, by
``web.proxyheaders`` (``trusted_proxies``): the guard reads ``scope["client"]``.

Order at the handshake: origin, then credentials (a malformed, ambiguous, bad or
expired one is refused; none is anonymous), then the market-data policy
(``anonymous_ok`` False refuses an anonymous client unless the front authenticates by
first message), then the connection caps: an authenticated client counts against its
user's cap (``max_connections_per_user``), an anonymous one against its address's
(``max_anonymous_connections_per_address``). How a front's connections count against
the user's cap is the front's ``UserCap``: ``SHARED`` (the market fronts: one count per
user, every such front together) or ``PER_PATH`` (the monitoring streams: a count of
their own per user and path, each path up to the same cap, never touching the shared
one, so an operator's dashboard of streams does not use up the market feeds' budget).
Per message: the token bucket (an error over the rate; close 3002 on a flood).

Refusing at the handshake (:func:`refuse`): a client that sent no ``Origin`` header is
not a browser and gets a plain HTTP answer before the upgrade (401, 403, 429 or 503,
with a JSON body), which HTTP and WebSocket client libraries report as such and do not
retry blindly. A browser sends ``Origin`` on every WebSocket handshake, and its
WebSocket API shows a script no HTTP status, only a close code: it gets the upgrade and
then, at once, the refusal's close code and message (closecodes.py), before any data.
Where the server offers no HTTP answer (the ASGI ``websocket.http.response``
extension), every client gets the close code.

A credential sent only as the cookie is one a browser attaches by itself, whatever site
opened the socket (cross-site WebSocket hijacking): it counts only when the Origin is
on the allow-list or, without a list, is the gateway's own (same host as ``Host``).
When the accounts database cannot answer, the client is refused with 1013 / 503 (try
again later), not left hanging.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.types import Scope, Send

from tickcast.auth import policy
from tickcast.auth.credentials import (
    ANONYMOUS,
    InvalidCredentials,
    Principal,
    Source,
    find_credential,
    looks_like_api_key,
    parse_api_key,
)
from tickcast.auth.forwarded import address_key
from tickcast.auth.limits import ConnectionCounter, RateLimit, RateVerdict
from tickcast.clock import SYSTEM, Clock, Now
from tickcast.closecodes import CloseCode
from tickcast.config.groups import AuthSettings, LimitsSettings
from tickcast.fronts.identity import LEEWAY_S, CredentialsUnavailable, Identity
from tickcast.model.topic import Topic
from tickcast.observability.stats import Stats
from tickcast.protocols.base import Command, Reply, Session
from tickcast.protocols.wire import Encoded

log = logging.getLogger("tickcast.fronts.guard")

#: The ASGI extension that lets an application answer a handshake with plain HTTP.
HTTP_RESPONSE_EXTENSION = "websocket.http.response"


class UserCap(enum.Enum):
    """How a front's connections count against ``max_connections_per_user``."""

    SHARED = "shared"  # one count per user, for every front that shares it
    PER_PATH = "per_path"  # a count of its own per user and path (the monitoring streams)


@dataclass(slots=True, eq=False)
class Ticket:
    """An admitted client: who it acts as, and from where.

    It holds one connection slot (its user's, or its address's while anonymous) until
    :meth:`Guard.release`.

    Attributes:
        principal: who the connection acts as.
        address: the client's address (after trusted proxies), for logs.
        address_key: what the per-address cap counts it under (an IPv6 /64...).
        path: the path its user slot is counted under (``UserCap.PER_PATH``); None:
            the user's shared count.
        key: the prefix of the API key it signed in with (None: another credential or
            none), for the fronts that look again at who the key names.
    """

    principal: Principal
    address: str
    address_key: str
    released: bool = False
    path: str | None = None
    key: str | None = None

    @property
    def user_slot(self) -> Hashable | None:
        return self.slot_of(self.principal)

    def slot_of(self, principal: Principal) -> Hashable | None:
        """The user slot ``principal`` holds through this ticket (None: anonymous)."""
        if principal.user_id is None or self.path is None:
            return principal.user_id
        return (self.path, principal.user_id)

    @property
    def address_slot(self) -> Hashable | None:
        return None if self.principal.authenticated else self.address_key


class Guard:
    """Admission and limits shared by the fronts of one node.

    Args:
        limits: the connection caps, the client address's IPv6 prefix and the inbound
            rate (``settings.limits``).
        auth: the allowed origins and whether anonymous clients may read market data
            (``settings.auth``).
        identity: who a credential names.
        stats: where refusals are counted.

    Attributes:
        users: open connections per authenticated user (``UserCap.SHARED``).
        paths: open connections per path and user (``UserCap.PER_PATH``).
        addresses: open anonymous connections per client address.
        rosters: per front, its open connections and each one's ticket (the fronts fill
            them; ``/realtime/status/`` reads them).
    """

    def __init__(
        self, limits: LimitsSettings, auth: AuthSettings, identity: Identity, stats: Stats
    ) -> None:
        self.limits = limits
        self.auth = auth
        self.identity = identity
        self.stats = stats
        self.users = ConnectionCounter(limits.max_connections_per_user)
        self.paths = ConnectionCounter(limits.max_connections_per_user)
        self.addresses = ConnectionCounter(limits.max_anonymous_connections_per_address or None)
        self.rosters: dict[str, dict[Any, Ticket]] = {}
        self._judges: dict[str, Judge] = {}

    def roster(self, front: str) -> dict[Any, Ticket]:
        """The open connections of ``front`` (a name such as ``market_feed``)."""
        return self.rosters.setdefault(front, {})

    def watch(self, front: str, judge: Judge) -> None:
        """Have ``judge(connection, ticket, principal)`` told, for each connection on
        ``front`` signed in with an API key, what the key names whenever the identity
        looks it up again (``principal`` None: revoked or gone); the front decides
        whether the connection may stay (``recheck`` makes the lookups happen)."""
        if not self._judges:
            self.identity.looked_up.append(self._looked_up)
        self._judges[front] = judge

    def _looked_up(self, prefix: str, principal: Principal | None) -> None:
        for front, judge in self._judges.items():
            for connection, ticket in list(self.roster(front).items()):
                if ticket.key == prefix and not ticket.released:
                    judge(connection, ticket, principal)

    async def recheck(self, front: str) -> None:
        """Look again (through the identity's cache: a key is asked of the database at
        most once per cache period) at the keys of ``front``'s open connections."""
        for key in {t.key for t in self.roster(front).values() if t.key is not None}:
            await self.identity.recheck(key)

    def count(self, refusal: policy.Refusal) -> policy.Refusal:
        """Count a refusal in the metrics (``tickcast_refusals_total{reason}``)."""
        refusals = self.stats.refusals
        refusals[refusal.reason.value] = refusals.get(refusal.reason.value, 0) + 1
        return refusal

    async def admit(
        self,
        scope: Scope,
        *,
        first_message_auth: bool = False,
        token: str | None = None,
        user_cap: UserCap = UserCap.SHARED,
    ) -> tuple[Ticket, policy.Refusal | None]:
        """Who the client is, or why it may not connect. An admitted ticket holds a
        connection slot: call ``release`` when the connection ends.

        ``token``: a credential the protocol carries in its own handshake (Socket.IO's
        CONNECT ``auth``), checked instead of the request's: it is explicit, so it wins
        over the ambient cookie, and an explicit one in the request too is ambiguous
        (refused, as two in one request are). ``user_cap``: how the front counts a user's
        connections."""
        origin = header(scope, b"origin")
        refusal = policy.check_origin(origin, self.auth.allowed_origins)
        principal = ANONYMOUS
        used: str | None = None
        if refusal is None:
            try:
                found = find_credential(scope.get("headers", ()), scope.get("query_string", b""))
                if token is not None:
                    if found is not None and found.source is not Source.COOKIE:
                        raise InvalidCredentials(
                            f"two credentials: the handshake's auth and the {found.source.value}"
                        )
                    principal = await self.identity.authenticate(token)
                    used = token
                elif (
                    found is not None
                    and found.source is Source.COOKIE
                    and not self._own(origin, scope)
                ):
                    refusal = policy.origin_refused(origin)
                elif found is not None:
                    principal = await self.identity.authenticate(found.value)
                    used = found.value
            except InvalidCredentials as exc:
                refusal = policy.invalid_credentials(exc)
            except CredentialsUnavailable as exc:
                refusal = policy.unavailable(str(exc))
        ticket, refusal = self._ticket(
            scope, principal, used, refusal, first_message_auth, user_cap
        )
        if refusal is not None:
            self.count(refusal)
        return ticket, refusal

    def admit_now(
        self, scope: Scope, *, first_message_auth: bool = False, user_cap: UserCap = UserCap.SHARED
    ) -> Ticket | None:
        """``admit`` at once for a request that carries no credential (nothing to look
        up): its ticket, holding a slot, if it is admitted; None, with nothing counted
        or held, if it carries a credential or would be refused (``admit`` then decides,
        counts and answers it)."""
        if policy.check_origin(header(scope, b"origin"), self.auth.allowed_origins) is not None:
            return None
        try:
            found = find_credential(scope.get("headers", ()), scope.get("query_string", b""))
            if found is not None:
                return None
        except InvalidCredentials:
            return None
        ticket, refusal = self._ticket(scope, ANONYMOUS, None, None, first_message_auth, user_cap)
        return ticket if refusal is None else None

    def _ticket(
        self,
        scope: Scope,
        principal: Principal,
        used: str | None,
        refusal: policy.Refusal | None,
        first_message_auth: bool,
        user_cap: UserCap,
    ) -> tuple[Ticket, policy.Refusal | None]:
        """What ``admit`` decides once the credential is checked: the market policy, the
        ticket, and its slot (held only if nothing refuses it)."""
        if refusal is None and not first_message_auth:
            refusal = policy.check_market(principal, self.auth.allow_anonymous)
        address = client_address(scope)
        ticket = Ticket(
            principal,
            address,
            address_key(address, self.limits.ipv6_client_prefix),
            path=str(scope.get("path", "")) if user_cap is UserCap.PER_PATH else None,
            key=key_prefix(used),
        )
        if refusal is None:
            refusal = self._acquire(ticket)
        return ticket, refusal

    def _users(self, ticket: Ticket) -> ConnectionCounter:
        return self.users if ticket.path is None else self.paths

    def _acquire(self, ticket: Ticket) -> policy.Refusal | None:
        if not self._users(ticket).acquire(ticket.user_slot):
            return policy.too_many_connections(self.limits.max_connections_per_user)
        if not self.addresses.acquire(ticket.address_slot):
            return policy.too_many_anonymous(self.limits.max_anonymous_connections_per_address)
        return None

    def _own(self, origin: str | None, scope: Scope) -> bool:
        """No Origin (not a browser), an allow-listed one, or the gateway's own host."""
        if origin is None or self.auth.allowed_origins:
            return True  # an allow-list was already checked
        host = (header(scope, b"host") or "").lower()
        normal = policy.normalize_origin(origin)
        return normal is not None and normal.split("://", 1)[-1] == host

    def authenticate_late(self, ticket: Ticket, principal: Principal) -> policy.Refusal | None:
        """A connection authenticated by its first message: move its slot from its
        address to its user. On a refusal (the user's cap) nothing changes."""
        if not self._users(ticket).acquire(ticket.slot_of(principal)):
            return self.count(policy.too_many_connections(self.limits.max_connections_per_user))
        self.addresses.release(ticket.address_slot)
        ticket.principal = principal
        return None

    def release(self, ticket: Ticket) -> None:
        """Give the ticket's slot back (once; later calls do nothing)."""
        if ticket.released:
            return
        ticket.released = True
        self._users(ticket).release(ticket.user_slot)
        self.addresses.release(ticket.address_slot)

    def rate_limit(self) -> RateLimit:
        return RateLimit(self.limits.rate_limit_per_s, self.limits.rate_limit_burst)

    async def aclose(self) -> None:
        """Stop the background work (the identity's key-use writer): at shutdown."""
        await self.identity.aclose()


class RateLimited:
    """A session that applies a RateLimit to every inbound message of the ``Session`` it
    wraps, and is one itself.

    Over the rate a message is dropped and answered with the session's own
    ``send_error``; a client that keeps flooding is closed with 3002 (rate limited).
    The bucket refills on the monotonic clock (``now.mono``).
    """

    __slots__ = ("_limit", "_refusal", "_session")

    def __init__(self, session: Session, limit: RateLimit) -> None:
        self._session = session
        self._limit = limit
        self._refusal = _rate_refusal(limit.bucket.rate_per_s, limit.bucket.burst)

    @property
    def session(self) -> Session:
        """The wrapped session."""
        return self._session

    @property
    def close_reason(self) -> CloseCode | None:
        return self._session.close_reason

    @close_reason.setter
    def close_reason(self, code: CloseCode | None) -> None:
        self._session.close_reason = code

    @property
    def topics(self) -> Collection[Topic]:
        return self._session.topics

    def _admit(self, now: Now) -> bool:
        verdict = self._limit.check(now.mono)
        if verdict is RateVerdict.ALLOW:
            return True
        self._session.send_error(self._refusal.message, now)
        if verdict is RateVerdict.CLOSE:
            self._session.close_reason = self._refusal.close_code
        return False

    def receive_text(self, data: str, now: Now) -> None:
        if self._admit(now):
            self._session.receive_text(data, now)

    def receive_bytes(self, data: bytes, now: Now) -> None:
        if self._admit(now):
            self._session.receive_bytes(data, now)

    def handle_timer(self, now: Now) -> None:
        self._session.handle_timer(now)

    def next_deadline(self) -> float | None:
        return self._session.next_deadline()

    def frames_to_send(self) -> list[Encoded]:
        return self._session.frames_to_send()

    def commands_received(self) -> list[Command]:
        return self._session.commands_received()

    def answer(self, reply: Reply, now: Now) -> None:
        self._session.answer(reply, now)

    def send_error(self, message: str, now: Now) -> None:
        self._session.send_error(message, now)

    def release(self, topics: Iterable[Topic]) -> None:
        self._session.release(topics)


@functools.lru_cache(maxsize=16)
def _rate_refusal(rate_per_s: float, burst: int) -> policy.Refusal:
    """The rate-limit refusal (frozen), built once per rate rather than per connection."""
    return policy.rate_limited(rate_per_s, burst)


#: Told what a watched connection's API key names now (``Guard.watch``).
Judge = Callable[[Any, Ticket, Principal | None], None]


def key_prefix(credential: str | None) -> str | None:
    """The prefix of an API key (what its lookup is cached under); None for anything
    else (a JWT, nothing)."""
    if credential is None or not looks_like_api_key(credential):
        return None
    try:
        return parse_api_key(credential)[0]
    except InvalidCredentials:
        return None


def header(scope: Scope, name: bytes) -> str | None:
    """The first ``name`` header of the request, decoded as latin-1; None if absent."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def client_address(scope: Scope) -> str:
    """The client's address as ``web.proxyheaders`` resolved it (``unknown`` if none)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def refuse(scope: Scope, send: Send, refusal: policy.Refusal) -> None:
    """Answer a refused handshake: plain HTTP for a non-browser client, else the upgrade
    and at once the refusal's close code (see the module docstring). Logged here."""
    origin = header(scope, b"origin")
    log.info(
        "client refused",
        extra={
            "client": client_address(scope),
            "origin": origin,
            "reason": refusal.reason.value,
            "code": int(refusal.close_code),
            "path": scope.get("path"),
        },
    )
    if origin is None and HTTP_RESPONSE_EXTENSION in scope.get("extensions", {}):
        body = msgspec.json.encode(
            {
                "error": refusal.message,
                "reason": refusal.reason.value,
                "close_code": int(refusal.close_code),
                "reconnect": refusal.reconnect,
            }
        )
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        if refusal.http_status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="tickcast"'))
        start = {"type": "websocket.http.response.start", "status": refusal.http_status}
        await send({**start, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.accept"})
    close = {"type": "websocket.close", "code": int(refusal.close_code)}
    await send({**close, "reason": refusal.close_reason})


def close_on_expiry(
    connection: Any, principal: Principal, clock: Clock = SYSTEM
) -> asyncio.TimerHandle | None:
    """Close ``connection`` (3501) when ``principal``'s token stops being accepted; cancel
    the handle when the connection ends. None for a credential that does not expire.

    A token is accepted until ``exp`` plus ``LEEWAY_S`` (clock differences between
    nodes, as ``Identity`` checks it at the handshake), so the close comes then too: a
    token accepted at the handshake is never closed as expired a moment later.

    ``exp`` is a wall stamp, so the delay is reckoned from ``clock.wall()``, once; the
    loop then counts it down on its own (monotonic) clock.
    """
    if principal.expires_at is None:
        return None
    refusal = policy.expired()

    def expire() -> None:
        if not connection.closing:
            connection.close(refusal.close_code, refusal.close_reason)

    delay = max(0.0, principal.expires_at + LEEWAY_S - clock.wall())
    return asyncio.get_running_loop().call_later(delay, expire)
