"""Policy: who may read what, which Origins may open a WebSocket, and how a refusal reads.

Rules: pure. Each rule is a predicate (``origin_allowed``, ``may_read_market``,
``may_read_portfolio``) and a ``check_*`` twin that returns a :class:`Refusal` or None.
A Refusal is a value: a client-facing message (never a secret), the HTTP status to answer
with before the WebSocket upgrade and the close code to use after it. Every refusal
concerns one connection only. This module knows nothing of storage, sockets or fronts.

Origins (against cross-site WebSocket hijacking): an allow-list entry is
``scheme://host[:port]``, e.g.
``https://app.example.com`` or ``http://localhost:8080``. Matching is exact after
normalization (scheme and host lower-cased, a default port dropped: ``https://a.com:443``
is ``https://a.com``); never by substring, prefix or pattern. An Origin with a path (even a
trailing ``/``), user info, a query or a fragment is not an origin and never matches.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from tickcast.auth.credentials import (
    PUBLISH_SIGNALS,
    ExpiredCredentials,
    InvalidCredentials,
    Principal,
)
from tickcast.closecodes import CloseCode, info
from tickcast.errors import ConfigError

#: The Origin browsers send from opaque contexts (sandboxed iframes, ``file:`` pages,
#: some redirects). Many unrelated pages share it, so it matches only if listed as is.
NULL_ORIGIN: Final = "null"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_MAX_ORIGIN_CHARS: Final = 2048
_ORIGIN_RE: Final = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
#: RFC 6455 §5.5: a close frame's payload is at most 125 bytes, 2 of them the code.
MAX_CLOSE_REASON_BYTES: Final = 123


# -- refusals


class Reason(enum.StrEnum):
    """Why a connection or a request was refused (for logs and metrics labels)."""

    ORIGIN = "origin"
    UNAUTHENTICATED = "unauthenticated"
    INVALID_CREDENTIALS = "invalid_credentials"
    EXPIRED = "expired"
    AUTH_TIMEOUT = "auth_timeout"
    FORBIDDEN = "forbidden"
    CONNECTION_LIMIT = "connection_limit"
    ADDRESS_LIMIT = "address_limit"
    SUBSCRIPTION_LIMIT = "subscription_limit"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refusal, ready for any front.

    Attributes:
        reason: the kind of refusal.
        message: client-facing text; safe to send and to log (it never holds a secret).
        http_status: the answer when refusing before the WebSocket upgrade (401, 403,
            429, 503), and on HTTP.
        close_code: the close code when the refusal closes a WebSocket; each kind has its
            own (closecodes.py says whether a client should reconnect).
    """

    reason: Reason
    message: str
    http_status: int
    close_code: CloseCode

    @property
    def close_reason(self) -> str:
        """``message`` cut to fit a close frame (123 bytes of UTF-8, RFC 6455 §5.5)."""
        raw = self.message.encode("utf-8")
        if len(raw) <= MAX_CLOSE_REASON_BYTES:
            return self.message
        return raw[: MAX_CLOSE_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."

    @property
    def reconnect(self) -> bool:
        """Whether retrying the same connection later may succeed (closecodes.py)."""
        return info(self.close_code).reconnect


def unavailable(message: str) -> Refusal:
    """The credentials could not be checked now (the accounts database is down): 1013."""
    return Refusal(Reason.UNAVAILABLE, message, 503, CloseCode.TRY_AGAIN_LATER)


def expired() -> Refusal:
    """The token of an open connection has expired (3501: get a new token first)."""
    return Refusal(Reason.EXPIRED, "Token expired: sign in again", 401, CloseCode.TOKEN_EXPIRED)


def origin_refused(origin: str | None) -> Refusal:
    """An Origin not on the allow-list: HTTP 403, close 1008 (as the original services did)."""
    shown = "(none)" if origin is None else repr(origin[:80])
    return Refusal(Reason.ORIGIN, f"Origin {shown} is not allowed", 403, CloseCode.POLICY_VIOLATION)


def unauthenticated() -> Refusal:
    """No credentials where they are required: HTTP 401, close 3503."""
    return Refusal(
        Reason.UNAUTHENTICATED,
        "Authentication required: send a token (Authorization: Bearer, cookie or ?token=) "
        "or an API key",
        401,
        CloseCode.AUTHENTICATION_REQUIRED,
    )


def invalid_credentials(error: InvalidCredentials) -> Refusal:
    """The refusal for a credential that failed; the message is the error's own.

    An expired token is its own kind (3501: get a new one); anything else is 3500.
    """
    if isinstance(error, ExpiredCredentials):
        return Refusal(Reason.EXPIRED, str(error) or "Token expired", 401, CloseCode.TOKEN_EXPIRED)
    return Refusal(
        Reason.INVALID_CREDENTIALS,
        str(error) or "Invalid credentials",
        401,
        CloseCode.INVALID_CREDENTIALS,
    )


def auth_timeout(timeout_s: float) -> Refusal:
    """No credentials within ``timeout_s`` seconds of first-message authentication."""
    return Refusal(
        Reason.AUTH_TIMEOUT,
        f"No credentials within {timeout_s:g} s",
        401,
        CloseCode.AUTH_TIMEOUT,
    )


def forbidden(message: str) -> Refusal:
    """Authenticated, but not allowed: HTTP 403, close 3504."""
    return Refusal(Reason.FORBIDDEN, message, 403, CloseCode.FORBIDDEN)


def too_many_connections(max_per_user: int) -> Refusal:
    """The user already holds ``max_per_user`` connections: HTTP 429, close 3001."""
    return Refusal(
        Reason.CONNECTION_LIMIT,
        f"Too many connections: at most {max_per_user} per user",
        429,
        CloseCode.TOO_MANY_CONNECTIONS,
    )


def too_many_anonymous(max_per_address: int) -> Refusal:
    """The client's address already holds ``max_per_address`` anonymous connections."""
    return Refusal(
        Reason.ADDRESS_LIMIT,
        f"Too many anonymous connections from this address: at most {max_per_address} "
        "(authenticate for a limit of your own)",
        429,
        CloseCode.TOO_MANY_CONNECTIONS,
    )


def too_many_subscriptions(max_subscriptions: int) -> Refusal:
    """Over the subscription cap: an error message; the connection stays open."""
    return Refusal(
        Reason.SUBSCRIPTION_LIMIT,
        f"Too many symbols: at most {max_subscriptions} subscriptions (symbol x channel) "
        "per connection",
        429,
        CloseCode.POLICY_VIOLATION,
    )


def rate_limited(rate_per_s: float, burst: int) -> Refusal:
    """Over the message rate: an error per message, then close 3002 on a flood."""
    return Refusal(
        Reason.RATE_LIMITED,
        f"Too many messages: at most {rate_per_s:g} per second (bursts of {burst})",
        429,
        CloseCode.RATE_LIMITED,
    )


# -- origins


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` lower-cased without a default port; None if not an origin.

    ``"null"`` stays ``"null"``. Examples: ``HTTPS://App.Example.com:443`` ->
    ``https://app.example.com``; ``https://a.com/`` -> None (a path); ``*`` -> None.
    """
    if origin == NULL_ORIGIN:
        return NULL_ORIGIN
    match = _ORIGIN_RE.fullmatch(origin) if len(origin) <= _MAX_ORIGIN_CHARS else None
    if match is None:
        return None
    scheme, host = match["scheme"].lower(), match["host"].lower()
    if match["port"] is None:
        return f"{scheme}://{host}"
    port = int(match["port"])
    if port > 65535:
        return None
    if _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """Whether a WebSocket handshake with this ``Origin`` header may proceed.

    Rules:
        - An empty ``allowed`` allows any origin (the setting's documented default; a
          browser-facing deployment should list its sites).
        - A missing Origin header (None) is allowed: browsers always send Origin on a
          WebSocket handshake (RFC 6455 §4.1, Fetch), so its absence means a non-browser
          client (SDK, script), which Cross-Site WebSocket Hijacking cannot use; such a
          client still needs a credential to get past authentication.
        - Otherwise the normalized origin must equal a normalized entry (see the module
          docstring); ``"null"`` matches only a literal ``"null"`` entry. Entries that are
          not origins match nothing (:func:`validate_allowed_origins` reports them).
    """
    if not allowed or origin is None:
        return True
    wanted = normalize_origin(origin)
    return wanted is not None and wanted in {normalize_origin(entry) for entry in allowed}


def check_origin(origin: str | None, allowed: Sequence[str]) -> Refusal | None:
    """:func:`origin_allowed` as a decision: None, or a refusal (HTTP 403 / close 1008)."""
    return None if origin_allowed(origin, allowed) else origin_refused(origin)


def validate_allowed_origins(entries: Iterable[str]) -> tuple[str, ...]:
    """Normalized allow-list entries, for settings validation at start-up.

    Raises:
        ConfigError: an entry is not ``scheme://host[:port]`` or ``null`` (e.g. it has a
            trailing ``/`` or a path, or is a pattern such as ``*`` or
            ``https://*.example.com``: matching is exact).
    """
    normalized: list[str] = []
    for entry in entries:
        origin = normalize_origin(entry.strip())
        if origin is None:
            raise ConfigError(
                f"allowed_origins: {entry[:80]!r} is not an origin: expected "
                "scheme://host[:port] (no path, no trailing slash, no wildcard) or null"
            )
        normalized.append(origin)
    return tuple(dict.fromkeys(normalized))


# -- who may read what


def may_read_market(principal: Principal, allow_anonymous: bool) -> bool:
    """Public market data: any authenticated user; anonymous clients if the setting allows."""
    return principal.authenticated or allow_anonymous


def check_market(principal: Principal, allow_anonymous: bool) -> Refusal | None:
    """:func:`may_read_market` as a decision (HTTP 401 / close 3503 when refused)."""
    return None if may_read_market(principal, allow_anonymous) else unauthenticated()


def may_publish_signals(principal: Principal) -> bool:
    """Publishing trading signals needs an API key carrying ``publish:signals``: users of
    the gateway read signals, producers (services holding such a key) publish them."""
    return principal.authenticated and principal.may(PUBLISH_SIGNALS)


def may_read_portfolio(principal: Principal, owner_id: int) -> bool:
    """A portfolio is readable by its owner only (never by anonymous clients)."""
    return principal.authenticated and principal.user_id == owner_id


def check_portfolio(principal: Principal, owner_id: int) -> Refusal | None:
    """:func:`may_read_portfolio` as a decision.

    Anonymous: 401 (authentication required). Another user: 403, with a message that
    does not reveal whether the portfolio exists.
    """
    if may_read_portfolio(principal, owner_id):
        return None
    if not principal.authenticated:
        return unauthenticated()
    return forbidden("Portfolio data is available to its owner only")
