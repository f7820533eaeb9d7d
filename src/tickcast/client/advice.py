"""What the client makes of a URL, a close code and a refused handshake: whether to try
again.

Rules: pure (no asyncio, no sockets). The feed driver (``feed.py``) asks ``retry`` after
a close and ``refusal_of`` after an HTTP refusal of the handshake; ``False`` ends the
feed with ``FeedRefused`` rather than a retry loop that cannot succeed.
"""

from __future__ import annotations

import json
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tickcast.closecodes import CLOSE_INFO, CloseCode

#: The 4xx statuses of a handshake refusal that a later retry may get past (when the body
#: names no close code): a timeout, "too early", too many requests. Every other 4xx says
#: the request itself is wrong (credentials, Origin, URL, method, proxy authentication,
#: protocol): it is terminal. 5xx and the rest are retried.
RETRYABLE_4XX: Final = frozenset({408, 425, 429})
#: Application close codes in this range mean "terminal: change something first"
#: (closecodes.py), including the codes this version does not know yet.
TERMINAL_RANGE: Final = range(3500, 4000)


def feed_url(url: str, heartbeat_s: float, array: bool, stamps: bool = False) -> str:
    """``url`` with the options the client relies on: ``seq=1`` (positions, resume),
    ``heartbeat`` and ``frames=array``, and ``stamps=1`` when asked, unless the URL sets
    them itself."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("seq", "1")
    if heartbeat_s:
        query.setdefault("heartbeat", f"{heartbeat_s:g}")
    if array:
        query.setdefault("frames", "array")
    if stamps:
        query.setdefault("stamps", "1")
    return urlunsplit(parts._replace(query=urlencode(query)))


def refusal_of(status: int, body: bytes | bytearray) -> tuple[int, str, bool]:
    """(code, reason, reconnect?) of an HTTP refusal of the handshake; the gateway's body
    names the close code and the advice (``{"error", "close_code", "reconnect"}``)."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("close_code"), int):
        reconnect = doc.get("reconnect")
        code = int(doc["close_code"])
        reason = str(doc.get("error", ""))
        return code, reason, bool(reconnect) if isinstance(reconnect, bool) else retry(code)
    text = body.decode("utf-8", "replace")[:200]
    terminal = 400 <= status < 500 and status not in RETRYABLE_4XX
    return status, f"HTTP {status} {text}".strip(), not terminal


def retry(code: int | None) -> bool:
    """Whether a connection closed with ``code`` is worth another try (None: no close
    frame, an abort; 1000: a proxy's idle close as much as the server's). A code this
    version does not know follows the range convention: 3500-3999 terminal, else retry."""
    if code is None or code == CloseCode.NORMAL:
        return True
    try:
        return CLOSE_INFO[CloseCode(code)].reconnect
    except (ValueError, KeyError):
        return code not in TERMINAL_RANGE
