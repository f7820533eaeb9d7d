"""Every WebSocket close code tickcast sends, with its reason and whether to reconnect.

Rules: this is the one catalogue. The fronts, the guard and the sessions close with a
``CloseCode``; ``docs/realtime.md`` ("Close codes") lists the same codes, reasons and
advice (a test compares the two), and the browser client (``web/static/tickcast.js``)
stops on the codes whose advice is "do not reconnect".

Ranges: RFC 6455 §7.4.1 codes keep their standard meaning (1008 policy violation, used
for an Origin that is not allowed, as the original services did; 1009 message too big; 1013 try
again later). Application codes follow Centrifugo's convention: 3000-3499 mean
"reconnect (with back-off)", 3500-3999 mean "terminal: retrying the same connection
cannot help; change something first" (a new token, other credentials, another Origin).

"Reconnect" advice is for a client that would retry the same connection unchanged:
``reconnect=True`` means a retry after a back-off may succeed as is.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class CloseInfo(NamedTuple):
    """A close code's default reason text and whether a client should reconnect."""

    code: int
    reason: str
    reconnect: bool


class CloseCode(enum.IntEnum):
    """Close codes; ``CLOSE_INFO[code]`` gives the reason text and reconnect advice."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down or draining: reconnect (elsewhere)
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003  # e.g. a binary frame on a text-only protocol
    INVALID_PAYLOAD = 1007  # text frame that is not UTF-8
    POLICY_VIOLATION = 1008  # an Origin not on the allow-list
    MESSAGE_TOO_BIG = 1009  # inbound message over max_message_bytes
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # the node's stream has a hole (a cluster node missed updates
    # from the bus, or was cut off from it): reconnect and resume, a reset follows
    TRY_AGAIN_LATER = 1013  # a slow consumer ("slow consumer: 2.1 s behind"); or the
    # accounts database cannot answer now
    TOO_MANY_CONNECTIONS = 3001  # the user's or the address's connection cap is reached
    RATE_LIMITED = 3002  # the client kept sending over the message rate
    IDLE_TIMEOUT = 3008  # no message from the client within the idle timeout
    INVALID_CREDENTIALS = 3500  # malformed, ambiguous, forged, unknown or revoked
    TOKEN_EXPIRED = 3501  # the token's exp has passed: get a new token first
    AUTH_TIMEOUT = 3502  # no credentials within auth_timeout_s (first-message auth)
    AUTHENTICATION_REQUIRED = 3503  # anonymous access is off and no credentials came
    FORBIDDEN = 3504  # authenticated, but not allowed
    NOT_FOUND = 3505  # what the connection asks for does not exist (or is not public)
    INVALID_REQUEST = 3506  # the connection's URL parameters are invalid


CLOSE_INFO: dict[CloseCode, CloseInfo] = {
    CloseCode.NORMAL: CloseInfo(1000, "normal closure", False),
    CloseCode.GOING_AWAY: CloseInfo(1001, "server shutting down", True),
    CloseCode.PROTOCOL_ERROR: CloseInfo(1002, "protocol error", False),
    CloseCode.UNSUPPORTED_DATA: CloseInfo(1003, "unsupported data", False),
    CloseCode.INVALID_PAYLOAD: CloseInfo(1007, "invalid payload", False),
    CloseCode.POLICY_VIOLATION: CloseInfo(1008, "policy violation", False),
    CloseCode.MESSAGE_TOO_BIG: CloseInfo(1009, "message too big", False),
    CloseCode.INTERNAL_ERROR: CloseInfo(1011, "internal error", True),
    CloseCode.SERVICE_RESTART: CloseInfo(1012, "service restart", True),
    CloseCode.TRY_AGAIN_LATER: CloseInfo(1013, "try again later", True),
    CloseCode.TOO_MANY_CONNECTIONS: CloseInfo(3001, "too many connections", True),
    CloseCode.RATE_LIMITED: CloseInfo(3002, "too many messages", True),
    CloseCode.IDLE_TIMEOUT: CloseInfo(3008, "idle timeout", True),
    CloseCode.INVALID_CREDENTIALS: CloseInfo(3500, "invalid credentials", False),
    CloseCode.TOKEN_EXPIRED: CloseInfo(3501, "token expired", False),
    CloseCode.AUTH_TIMEOUT: CloseInfo(3502, "authentication timeout", False),
    CloseCode.AUTHENTICATION_REQUIRED: CloseInfo(3503, "authentication required", False),
    CloseCode.FORBIDDEN: CloseInfo(3504, "forbidden", False),
    CloseCode.NOT_FOUND: CloseInfo(3505, "not found", False),
    CloseCode.INVALID_REQUEST: CloseInfo(3506, "invalid request", False),
}


def info(code: CloseCode) -> CloseInfo:
    """The reason text and reconnect advice of ``code``."""
    return CLOSE_INFO[code]
