"""Credentials: API keys, signed tokens (JWT) and where a WebSocket handshake carries them.

Rules: pure. Functions take data, and ``now`` where time matters, and return data; nothing
here reads a clock, a socket or a database. ``secrets`` is used only to mint new keys and
secrets. Storage keeps ``(prefix, hash_secret(secret), user)`` per API key; the driver looks
the prefix up and calls :func:`verify_secret`. Tokens are verified locally (no database),
which keeps a reconnect storm cheap.

Formats::

    API key  tc_<prefix>_<secret>
             tc_Xk3v9QwZp0aB_q9Zr1m0W8v0bC4v2hVd8PjH8kq3P0Jm1b5zq0Lw7v9E
             prefix: 12 URL-safe characters, public, the lookup key in storage;
             secret: 43 URL-safe characters (32 random bytes), stored only as a SHA-256 hash.
    JWT      eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsIm5hbWUiOi...<signature>
             header {"alg": "HS256", "typ": "JWT"}
             claims {"sub": "42", "name": "ada", "iat": 1700000000, "exp": 1700003600}

Time: ``now`` for tokens is wall-clock POSIX seconds (JWT ``iat``/``exp`` are, RFC 7519
§2 NumericDate), not a monotonic clock.

Errors: :class:`InvalidCredentials` (the client sent something that is not a valid
credential, or several: answer HTTP 401, or close 3500) and its subclass
:class:`ExpiredCredentials` (HTTP 401, or close 3501). Messages are client-facing and
never contain the credential.
A jwt secret that is too short is a :class:`~tickcast.errors.ConfigError` (our fault).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple
from urllib.parse import unquote_to_bytes

import jwt

from tickcast.errors import ConfigError, TickcastError

API_KEY_PREFIX: Final = "tc_"
#: Characters in the public part of an API key.
PREFIX_CHARS: Final = 12
#: Random bytes in a new API key's secret (43 URL-safe characters).
SECRET_BYTES: Final = 32
#: Longest credential accepted from a client, in characters; longer ones are refused
#: before any parsing (an HS256 token of ours is about 180 characters).
MAX_CREDENTIAL_CHARS: Final = 4096
JWT_ALGORITHM: Final = "HS256"
#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (32 bytes).
MIN_JWT_SECRET_BYTES: Final = 32
DEFAULT_COOKIE: Final = "tickcast_token"
#: The query parameter a browser may carry its token in (browsers cannot set headers on a
#: WebSocket). Access logs must redact it: see :func:`redact_query_string`.
QUERY_PARAM: Final = "token"

_API_KEY_RE: Final = re.compile(r"tc_([A-Za-z0-9_-]{12})_([A-Za-z0-9_-]{43,128})")
#: RFC 6750 §2.1 b64token: what a bearer credential may look like on the wire.
_B64TOKEN_RE: Final = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_USER_ID_RE: Final = re.compile(r"[0-9]{1,19}")
_REDACTED: Final = "[redacted]"

#: The permission to publish trading signals (``POST /api/signals``).
PUBLISH_SIGNALS: Final = "publish:signals"
#: Every permission an API key may carry (``tickcast keys create --permission``). A
#: user holds none by default: reading is what users do; publishing is a producer's job.
PERMISSIONS: Final = frozenset({PUBLISH_SIGNALS})


class InvalidCredentials(TickcastError):
    """The client's credential is not valid: malformed, forged, unknown or refused."""


class ExpiredCredentials(InvalidCredentials):
    """The client's token was valid but its ``exp`` has passed: get a new one."""


# -- API keys


class NewKey(NamedTuple):
    """A freshly minted API key. Show ``token`` to its owner once; store ``secret_hash``.

    The repr hides the secret so that a key never lands in a log by accident.
    """

    prefix: str
    secret: str
    token: str

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)

    def __repr__(self) -> str:
        return f"NewKey(prefix={self.prefix!r}, secret='***', token='***')"


def new_api_key() -> NewKey:
    """Mint an API key: ``tc_<prefix>_<secret>`` (see the module docstring)."""
    prefix = secrets.token_urlsafe(PREFIX_CHARS * 3 // 4)  # 9 bytes -> 12 characters
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return NewKey(prefix, secret, f"{API_KEY_PREFIX}{prefix}_{secret}")


def looks_like_api_key(token: str) -> bool:
    """Whether ``token`` is meant as an API key rather than a JWT.

    A JWT starts with its base64url-encoded JSON header (``eyJ...``, from ``{"``), so it
    can never start with ``tc_``. This only routes the credential; it does not validate it.
    """
    return token.startswith(API_KEY_PREFIX)


def parse_api_key(token: str) -> tuple[str, str]:
    """Split ``tc_<prefix>_<secret>`` into ``(prefix, secret)``.

    The prefix is exactly 12 URL-safe characters (it may itself contain ``_``, so the key is
    split by position, not on ``_``); the secret is 43 to 128 URL-safe characters.

    Raises:
        InvalidCredentials: anything else (the message does not repeat the token).
    """
    match = _API_KEY_RE.fullmatch(token) if len(token) <= MAX_CREDENTIAL_CHARS else None
    if match is None:
        raise InvalidCredentials("Invalid API key: expected tc_<prefix>_<secret>")
    return match.group(1), match.group(2)


def hash_secret(secret: str) -> str:
    """The stored form of an API key secret: SHA-256, as 64 lowercase hex digits.

    A fast, unsalted hash is right here, and bcrypt/scrypt/argon2 are not needed: those
    are slow on purpose to protect *low-entropy, human-chosen* passwords from dictionary
    attacks after a database leak. An API key secret is 32 bytes from a CSPRNG
    (``secrets``): guessing it means searching 2**256 values, which no hash speed makes
    feasible, and no two users share one, so salts and rainbow tables are moot. A slow hash
    would only cost ~100 ms of CPU on every connect and turn a reconnect storm into a
    denial of service in a reconnect storm; bcrypt also truncates input at 72 bytes.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def verify_secret(secret: str, stored_hash: str) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``, compared in constant time.

    ``hmac.compare_digest`` takes the same time wherever the first difference is, so the
    comparison reveals nothing about the stored hash.
    """
    computed = hash_secret(secret).encode("ascii")
    return hmac.compare_digest(computed, stored_hash.encode("utf-8", "replace"))


# -- signed tokens (JWT)


#: The roles a token may carry (``storage.records.ROLES``).
ROLES: Final = ("user", "operator")


class Claims(NamedTuple):
    """What a verified token says: who, until when (``expires_at``, POSIX seconds), and
    the user's role when it was issued (``role``; "user" when the token has none)."""

    user_id: int
    username: str
    expires_at: float
    role: str = "user"


def new_jwt_secret() -> str:
    """A random HS256 key (43 URL-safe characters = 32 bytes), for ``jwt_secret = None``."""
    return secrets.token_urlsafe(MIN_JWT_SECRET_BYTES)


def issue_token(
    user_id: int,
    username: str,
    secret: str | bytes,
    now: float,
    ttl_s: float,
    role: str = "user",
) -> str:
    """Sign a token for ``user_id``, valid from ``now`` for ``ttl_s`` seconds.

    Claims: ``sub`` (the user id as a string, RFC 7519 §4.1.2), ``name``, ``iat`` (``now``
    rounded down) and ``exp`` (``now + ttl_s`` rounded up, whole seconds as most JWT
    libraries expect), and ``role`` for an operator (``ROLES``; a user's token carries
    none, as tokens did before roles). A role is the user's when the token was issued: a
    user demoted since keeps it until the token expires (``jwt_ttl_s``).

    Raises:
        ConfigError: ``secret`` is shorter than 32 bytes.
        ValueError: ``ttl_s`` is not a positive number, ``now`` is not finite,
            ``user_id`` is out of range, ``username`` is empty or not printable, or
            ``role`` is unknown (our own code's mistake).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    key = _jwt_key(secret)
    _check_now(now)
    if not (math.isfinite(ttl_s) and ttl_s > 0):
        raise ValueError(f"ttl_s must be a positive number of seconds, not {ttl_s!r}")
    if isinstance(user_id, bool) or not 0 <= user_id < 10**19:
        raise ValueError(f"user_id must be an integer from 0 to 10**19 - 1, not {user_id!r}")
    if not username or not username.isprintable():
        raise ValueError(f"username must be a non-empty printable string, not {username!r}")
    claims = {
        "sub": str(user_id),
        "name": username,
        "iat": math.floor(now),
        "exp": math.ceil(now + ttl_s),
    }
    if role != "user":
        claims["role"] = role
    return jwt.encode(claims, key, algorithm=JWT_ALGORITHM)


def verify_token(token: str, secret: str | bytes, now: float, *, leeway_s: float = 0) -> Claims:
    """Check a token's signature and claims at ``now``; return who it is for.

    Rules:
        - Only HS256 is accepted (``alg`` is never taken from the token: ``none``, HS384,
          RS256... are refused, RFC 8725 §3.1).
        - ``sub`` (a decimal user id), ``name`` (a printable string: no control
          characters to forge log lines with), ``iat`` and ``exp`` (numbers) are required.
        - Expired when ``exp <= now - leeway_s`` (RFC 7519 §4.1.4: ``now`` must be before
          ``exp``).
        - A token issued in the future (``iat > now + leeway_s``) is refused: either a
          clock is wrong or the token was not minted by us as we mint them. Give a few
          seconds of ``leeway_s`` between nodes whose clocks may differ.
        - ``nbf``, if present, must be ``<= now + leeway_s``.
        - A token carrying ``aud`` is refused (it was meant for another service).
        - ``role``, if present, is one of ``ROLES`` (absent: "user").

    PyJWT's own time checks (``exp``, ``iat``, ``nbf``) are switched off: they compare with
    the system clock. PyJWT still reads that clock internally, but nothing uses the value;
    every time rule is checked here against the ``now`` passed in, so the result depends
    only on the arguments.

    Raises:
        ExpiredCredentials: the token expired.
        InvalidCredentials: anything else wrong with the token.
        ConfigError: ``secret`` is shorter than 32 bytes.
        ValueError: ``now`` or ``leeway_s`` is not a finite number (>= 0 for leeway_s).
    """
    key = _jwt_key(secret)
    _check_now(now)
    if not (math.isfinite(leeway_s) and leeway_s >= 0):
        raise ValueError(f"leeway_s must be a number of seconds >= 0, not {leeway_s!r}")
    if len(token) > MAX_CREDENTIAL_CHARS:
        raise InvalidCredentials("Invalid token: too long")
    if not token.isascii():  # compact JWS is base64url and dots (RFC 7515 §7.1)
        raise InvalidCredentials("Invalid token: malformed")
    payload = _decode(token, key)

    sub, name = payload["sub"], payload.get("name")
    if not isinstance(sub, str) or not _USER_ID_RE.fullmatch(sub):
        raise InvalidCredentials("Invalid token: 'sub' must be a user id")
    if not isinstance(name, str) or not name or not name.isprintable():
        raise InvalidCredentials("Invalid token: 'name' must be a non-empty printable string")
    exp = _number_claim(payload, "exp")
    iat = _number_claim(payload, "iat")
    if exp <= now - leeway_s:
        raise ExpiredCredentials("Token expired: sign in again or refresh it")
    if iat > now + leeway_s:
        raise InvalidCredentials("Invalid token: issued in the future (check the clocks)")
    if "nbf" in payload and _number_claim(payload, "nbf") > now + leeway_s:
        raise InvalidCredentials("Invalid token: not valid yet (nbf)")
    role = payload.get("role", "user")
    if role not in ROLES:
        raise InvalidCredentials(f"Invalid token: 'role' must be one of {', '.join(ROLES)}")
    return Claims(int(sub), name, float(exp), role)


def _decode(token: str, key: bytes) -> dict[str, Any]:
    """Verify the signature (HS256 only) and parse the claims; PyJWT checks no time."""
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[JWT_ALGORITHM],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["sub", "exp", "iat"],
            },
        )
    except jwt.InvalidAlgorithmError:
        raise InvalidCredentials(
            f"Invalid token: algorithm not allowed (only {JWT_ALGORITHM})"
        ) from None
    except jwt.InvalidSignatureError:
        raise InvalidCredentials("Invalid token: bad signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidCredentials(f"Invalid token: missing claim {exc.claim!r}") from None
    except jwt.InvalidAudienceError:
        raise InvalidCredentials("Invalid token: meant for another audience") from None
    except jwt.PyJWTError:
        raise InvalidCredentials("Invalid token: malformed") from None


def _number_claim(payload: dict[str, Any], name: str) -> float:
    value = payload[name]
    error = InvalidCredentials(f"Invalid token: {name!r} must be a number of seconds")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error
    try:
        seconds = float(value)  # an int too large for a float raises OverflowError
    except OverflowError:
        raise error from None
    if not math.isfinite(seconds):
        raise error
    return seconds


def _jwt_key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if len(key) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(
            f"jwt_secret must be at least {MIN_JWT_SECRET_BYTES} bytes (RFC 7518 §3.2), "
            f"got {len(key)}"
        )
    return key


def _check_now(now: float) -> None:
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, not {now!r}")


# -- the WebSocket handshake


class Source(enum.Enum):
    """Where a request carried its credential."""

    AUTHORIZATION = "Authorization header"
    API_KEY_HEADER = "X-API-Key header"
    QUERY = f"query parameter {QUERY_PARAM}"
    COOKIE = "cookie"


class Credential(NamedTuple):
    """A credential as a request carried it: the value, and where it was.

    The repr hides the value, so that a credential never lands in a log by accident.
    """

    value: str
    source: Source

    def __repr__(self) -> str:
        return f"Credential(value='***', source={self.source.name})"


def find_credential(
    headers: Sequence[tuple[bytes, bytes]],
    query_string: bytes = b"",
    cookie_name: str = DEFAULT_COOKIE,
) -> Credential | None:
    """The one credential a request (HTTP or WebSocket handshake) carries, or None.

    Rules (one for HTTP and WebSocket handshakes alike):

    - *Explicit* credentials are ``Authorization: Bearer <token>`` (RFC 6750 §2.1),
      ``X-API-Key: <key>`` and the query parameter ``?token=<token>`` (percent-decoded;
      for browsers, which cannot set headers on a WebSocket). A request carries at most
      one: two sources, or one header or parameter given twice, are ambiguous and
      refused, even when the values agree (RFC 6750 §2: "Clients MUST NOT use more than
      one method to transmit the token in each request").
    - An ``Authorization`` header must be ``Bearer <token>``. Another scheme (``Basic
      ...``) or a bare value without a scheme is refused, never skipped: a client that
      sent it meant something by it, and falling back to another credential (or to
      anonymous access) would hide its mistake.
    - The cookie ``cookie_name`` (``Cookie: a=b; tickcast_token=<token>``) is *ambient*:
      a browser attaches it by itself to every request to this host. It counts only when
      no explicit credential is present, which then wins.
    - A value that is present but empty, longer than ``MAX_CREDENTIAL_CHARS`` or not a
      bearer-token string is refused rather than falling back to anonymous access.

    Any source may carry either kind of credential: route the value with
    :func:`looks_like_api_key`, not by where it came from. ``headers`` are ASGI-style
    ``(name, value)`` byte pairs (names in any case); pass ``query_string`` empty for
    HTTP requests, whose URLs end up in logs.

    Raises:
        InvalidCredentials: malformed or ambiguous credentials (HTTP 401); the message
            says which and never repeats a credential.
    """
    explicit: list[tuple[Source, bytes]] = []
    cookie: bytes | None = None
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if name == b"authorization":
            scheme, space, rest = raw_value.strip().partition(b" ")
            if not space or scheme.lower() != b"bearer":
                raise InvalidCredentials(
                    "Malformed Authorization header: expected 'Bearer <token or API key>'"
                )
            explicit.append((Source.AUTHORIZATION, rest))
        elif name == b"x-api-key":
            explicit.append((Source.API_KEY_HEADER, raw_value))
        elif name == b"cookie" and cookie is None:
            cookie = _cookie_value(raw_value, cookie_name.encode("latin-1", "replace"))
    explicit.extend(
        (Source.QUERY, value) for value in _query_values(query_string, QUERY_PARAM.encode())
    )
    if len(explicit) > 1:
        sources = ", ".join(dict.fromkeys(source.value for source, _ in explicit))
        raise InvalidCredentials(
            f"Ambiguous credentials: send exactly one credential, not several ({sources})"
        )
    if explicit:
        source, raw = explicit[0]
        return Credential(_checked(raw, source.value), source)
    if cookie is not None:
        return Credential(_checked(cookie, f"cookie {cookie_name}"), Source.COOKIE)
    return None


def credentials_from_handshake(
    headers: Sequence[tuple[bytes, bytes]],
    query_string: bytes,
    cookie_name: str = DEFAULT_COOKIE,
) -> str | None:
    """The value of :func:`find_credential`, or None (same rules, same errors)."""
    found = find_credential(headers, query_string, cookie_name)
    return None if found is None else found.value


def _cookie_value(header: bytes, name: bytes) -> bytes | None:
    """The first ``name=value`` in a Cookie header (RFC 6265 §4.2), quotes removed."""
    for pair in header.split(b";"):
        key, sep, value = pair.partition(b"=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value.startswith(b'"') and value.endswith(b'"'):
                value = value[1:-1]
            return value
    return None


def _query_values(query: bytes, name: bytes) -> list[bytes]:
    """Every ``name=value`` in a query string, percent-decoded (``+`` is a space)."""
    values = []
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if len(key) <= 3 * len(name) and unquote_to_bytes(key.replace(b"+", b" ")) == name:
            if len(value) > 3 * MAX_CREDENTIAL_CHARS:
                values.append(value)  # too long even before decoding: _checked refuses it
            else:
                values.append(unquote_to_bytes(value.replace(b"+", b" ")))
    return values


def _checked(raw: bytes, source: str) -> str:
    if len(raw) > MAX_CREDENTIAL_CHARS:
        raise InvalidCredentials(
            f"Invalid credential in {source}: longer than {MAX_CREDENTIAL_CHARS} characters"
        )
    value = raw.strip(b" \t").decode("latin-1")
    if not value:
        raise InvalidCredentials(f"Empty credential in {source}")
    if not _B64TOKEN_RE.fullmatch(value):
        raise InvalidCredentials(f"Malformed credential in {source}")
    return value


def redact_query_string(query: str) -> str:
    """``query`` with the value of every ``token`` parameter replaced, for access logs.

    uvicorn logs query strings verbatim, so a driver that logs the
    request target passes it through here first::

        >>> redact_query_string("seq=1&token=eyJhbGciOi.x.y")
        'seq=1&token=[redacted]'
    """
    name = QUERY_PARAM.encode("ascii")
    parts = []
    for pair in query.split("&"):
        key, sep, _ = pair.partition("=")
        raw_key = key.encode("utf-8", "surrogatepass").replace(b"+", b" ")
        if sep and unquote_to_bytes(raw_key) == name:
            pair = f"{key}={_REDACTED}"
        parts.append(pair)
    return "&".join(parts)


def parse_permissions(text: str) -> frozenset[str]:
    """The permissions stored as ``text`` (space-separated, as the ``api_keys.permissions``
    column holds them); unknown names are kept out (a permission removed from the code
    grants nothing)."""
    return frozenset(p for p in text.split() if p in PERMISSIONS)


def check_permissions(names: Sequence[str]) -> str:
    """``names`` as stored (sorted, space-separated). Raises ValueError for an unknown one."""
    unknown = sorted(set(names) - PERMISSIONS)
    if unknown:
        known = ", ".join(sorted(PERMISSIONS))
        raise ValueError(f"unknown permission {unknown[0]!r} (known: {known})")
    return " ".join(sorted(set(names)))


# -- who a connection acts as


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a connection acts as: a user, or nobody (``ANONYMOUS``).

    Attributes:
        user_id: the user's id; None for an anonymous client.
        username: the user's name, for logs and replies; None for an anonymous client.
        expires_at: when the credential stops being valid (a token's ``exp``, POSIX
            seconds); None when it does not expire (an API key, anonymous). A connection
            is closed when it passes.
        permissions: what the credential allows beyond reading (``PERMISSIONS``): those
            of the API key it is; a token carries none (a key's permissions are not
            passed on to the tokens exchanged for it).
        role: the user's role (``storage.records.ROLES``): "user", or "operator", who
            may read the monitoring streams; an anonymous client is a "user".
    """

    user_id: int | None = None
    username: str | None = None
    expires_at: float | None = None
    permissions: frozenset[str] = frozenset()
    role: str = "user"

    def __post_init__(self) -> None:
        if self.user_id is None and self.username is not None:
            raise ValueError("an anonymous principal has no username")
        if self.user_id is None and self.permissions:
            raise ValueError("an anonymous principal has no permission")
        if self.user_id is None and self.role != "user":
            raise ValueError("an anonymous principal has no role")

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def operator(self) -> bool:
        """Whether the principal may read the monitoring streams."""
        return self.role == "operator"

    def may(self, permission: str) -> bool:
        """Whether the credential carries ``permission``."""
        return permission in self.permissions

    @classmethod
    def from_claims(cls, claims: Claims) -> Principal:
        return cls(claims.user_id, claims.username, claims.expires_at, role=claims.role)


ANONYMOUS: Final = Principal()
