"""SockJS's URLs, its ``/info`` body and its header policy, as data.

Rules: pure. Under a prefix (``/stomp``)::

    <prefix> and <prefix>/          the greeting, "Welcome to SockJS!\\n" (text/plain)
    <prefix>/info                   GET: the info JSON; OPTIONS: the CORS preflight
    <prefix>/websocket              the raw WebSocket (no SockJS framing)
    <prefix>/<server>/<session>/<transport>
                                    a session's transport (``framing.TRANSPORTS``)

The server and session segments are any non-empty text without a dot or a slash;
anything else (an empty or dotted segment, too few or too many segments, an unknown
transport: jsonp, htmlfile and the iframe pages are not served) is not found (404).
``allowed_methods`` says what each route takes (405 with ``Allow`` otherwise).

Headers (lists of ``(name, value)``):

- CORS (``cors_headers``): a request without ``Origin`` gets ``*`` (0.3.3's suite);
  one whose Origin the injected check allows gets it echoed, with
  ``Access-Control-Allow-Credentials: true``, ``Vary: Origin`` and its
  ``Access-Control-Request-Headers`` echoed as ``Access-Control-Allow-Headers``;
  ``null`` (a file:// page) is an origin like any other, echoed when allowed (a
  credentialed request cannot use ``*``). A foreign Origin gets no grant at all; the
  driver should refuse such a request (403) before a session sees it
  (``origin_allowed``), since a browser sends a simple POST before any preflight.
- OPTIONS (``options_headers``): the methods, and cacheable for a year
  (``Access-Control-Max-Age``, ``Cache-Control: public, max-age=...``, ``Expires``).
- Every transport and ``/info``: never cached (``NO_CACHE``).
- ``JSESSIONID`` (``jsessionid_header``), when configured for sticky load balancers: the
  client's own value echoed, else ``dummy``, with ``path=/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from email.utils import formatdate
from typing import Final, NamedTuple

from tickcast.protocols.sockjs.framing import TRANSPORTS, Transport

__all__ = [
    "GREETING",
    "INFO",
    "NO_CACHE",
    "ONE_YEAR_S",
    "RAW_WEBSOCKET",
    "ROOT",
    "Headers",
    "OriginCheck",
    "SessionPath",
    "Static",
    "allowed_methods",
    "cors_headers",
    "greeting_headers",
    "info_body",
    "info_headers",
    "jsessionid_header",
    "options_headers",
    "origin_allowed",
    "parse",
    "transport_headers",
]

Headers = list[tuple[str, str]]
#: Whether an Origin header's value is allowed (the gateway's guard decides).
OriginCheck = Callable[[str], bool]

GREETING: Final = b"Welcome to SockJS!\n"
ONE_YEAR_S: Final = 31_536_000
NO_CACHE: Final = ("Cache-Control", "no-store, no-cache, no-transform, must-revalidate, max-age=0")

_TEXT: Final = "text/plain; charset=UTF-8"
_JSON: Final = "application/json; charset=UTF-8"


class Static(NamedTuple):
    """A route outside any session: ``greeting``, ``info`` or ``websocket`` (raw)."""

    name: str


class SessionPath(NamedTuple):
    """``<server>/<session>/<transport>``: ``server`` is for load balancers only."""

    server: str
    session: str
    transport: Transport


ROOT: Final = Static("greeting")
INFO: Final = Static("info")
RAW_WEBSOCKET: Final = Static("websocket")


def _segment_ok(segment: str) -> bool:
    return bool(segment) and "." not in segment


def parse(path: str, prefix: str) -> Static | SessionPath | None:
    """The route of ``path`` (the request's path, without its query) under ``prefix``
    (no trailing slash), or None: not found."""
    if path == prefix or path == prefix + "/":
        return ROOT
    if not path.startswith(prefix + "/"):
        return None
    rest = path[len(prefix) + 1 :]
    if rest == "info":
        return INFO
    if rest == "websocket":
        return RAW_WEBSOCKET
    parts = rest.split("/")
    if len(parts) != 3:
        return None
    server, session, name = parts
    transport = TRANSPORTS.get(name)
    if transport is None or not _segment_ok(server) or not _segment_ok(session):
        return None
    return SessionPath(server, session, transport)


def allowed_methods(route: Static | SessionPath) -> tuple[str, ...]:
    """The methods a route takes (what a 405's ``Allow`` lists)."""
    if isinstance(route, SessionPath):
        if route.transport.method == "POST":
            return ("OPTIONS", "POST")
        return (route.transport.method,)
    if route == INFO:
        return ("OPTIONS", "GET")
    return ("GET",)


def info_body(*, websocket: bool, cookie_needed: bool, entropy: int) -> bytes:
    """The ``/info`` JSON; ``entropy`` is a fresh random number in [0, 2**32)."""
    if not 0 <= entropy < 2**32:
        raise ValueError("entropy is a 32-bit unsigned number")
    return json.dumps(
        {
            "websocket": websocket,
            "origins": ["*:*"],
            "cookie_needed": cookie_needed,
            "entropy": entropy,
        },
        separators=(",", ":"),
    ).encode()


def origin_allowed(origin: str | None, allowed: OriginCheck) -> bool:
    """A request may be served: it names no Origin, or one ``allowed`` accepts."""
    return origin is None or allowed(origin)


def cors_headers(
    origin: str | None, allowed: OriginCheck, request_headers: str | None = None
) -> Headers:
    """The CORS grant for a request from ``origin`` (none for a foreign one)."""
    if origin is None:
        return [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true")]
    if not allowed(origin):
        return []
    headers = [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
    ]
    if request_headers:
        headers.append(("Access-Control-Allow-Headers", request_headers))
    return headers


def options_headers(
    route: Static | SessionPath,
    origin: str | None,
    allowed: OriginCheck,
    wall: float,
    request_headers: str | None = None,
) -> Headers:
    """An OPTIONS answer's headers (status 204, no body), cacheable for a year from
    ``wall`` (epoch seconds, for ``Expires``)."""
    return [
        ("Cache-Control", f"public, max-age={ONE_YEAR_S}"),
        ("Expires", formatdate(wall + ONE_YEAR_S, usegmt=True)),
        ("Access-Control-Allow-Methods", ", ".join(allowed_methods(route))),
        ("Access-Control-Max-Age", str(ONE_YEAR_S)),
        *cors_headers(origin, allowed, request_headers),
    ]


def greeting_headers() -> Headers:
    """The greeting's headers."""
    return [("Content-Type", _TEXT)]


def info_headers(origin: str | None, allowed: OriginCheck) -> Headers:
    """``GET /info``'s headers: JSON, never cached, with CORS (never a cookie)."""
    return [("Content-Type", _JSON), NO_CACHE, *cors_headers(origin, allowed)]


#: A cookie value we echo as it came (RFC 6265's cookie-octets); anything else: dummy.
_COOKIE_VALUE: Final = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,256}")


def jsessionid_header(cookie_header: str | None) -> tuple[str, str]:
    """``Set-Cookie: JSESSIONID=<the client's, or dummy>; path=/``."""
    value = "dummy"
    for part in (cookie_header or "").split(";"):
        name, _, raw = part.partition("=")
        if name.strip() == "JSESSIONID":
            raw = raw.strip()
            if _COOKIE_VALUE.fullmatch(raw):
                value = raw
            break
    return ("Set-Cookie", f"JSESSIONID={value}; path=/")


def transport_headers(
    transport: Transport,
    origin: str | None,
    allowed: OriginCheck,
    *,
    cookie_needed: bool = False,
    cookie_header: str | None = None,
) -> Headers:
    """A transport's response headers: its content type, never cached, CORS, and the
    ``JSESSIONID`` cookie when configured (the websocket has none: its answer is the
    handshake)."""
    if transport.content_type is None:
        return []
    headers: Headers = [("Content-Type", transport.content_type), NO_CACHE]
    headers += cors_headers(origin, allowed)
    if cookie_needed:
        headers.append(jsessionid_header(cookie_header))
    return headers
