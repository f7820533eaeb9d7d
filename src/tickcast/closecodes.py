"""Every WebSocket close code tickcast sends, with its reason and whether to reconnect.

Ranges follow RFC 6455 and Centrifugo's convention for application codes: 3000-3499
mean "reconnect", 3500-3999 mean "terminal, do not reconnect".
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class CloseInfo(NamedTuple):
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
    POLICY_VIOLATION = 1008  # auth, origin, limits
    MESSAGE_TOO_BIG = 1009  # inbound message over max_message_bytes
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # slow consumer: the client fell too far behind
    IDLE_TIMEOUT = 3008  # no message from the client within the idle timeout


CLOSE_INFO: dict[CloseCode, CloseInfo] = {
    CloseCode.NORMAL: CloseInfo(1000, "normal closure", False),
    CloseCode.GOING_AWAY: CloseInfo(1001, "server shutting down", True),
    CloseCode.PROTOCOL_ERROR: CloseInfo(1002, "protocol error", False),
    CloseCode.UNSUPPORTED_DATA: CloseInfo(1003, "unsupported data", False),
    CloseCode.INVALID_PAYLOAD: CloseInfo(1007, "invalid payload", False),
    CloseCode.POLICY_VIOLATION: CloseInfo(1008, "policy violation", False),
    CloseCode.MESSAGE_TOO_BIG: CloseInfo(1009, "message too big", False),
    CloseCode.INTERNAL_ERROR: CloseInfo(1011, "internal error", True),
    CloseCode.TRY_AGAIN_LATER: CloseInfo(1013, "slow consumer: outbound queue overflow", True),
    CloseCode.IDLE_TIMEOUT: CloseInfo(3008, "idle timeout", True),
}


def info(code: CloseCode) -> CloseInfo:
    return CLOSE_INFO[code]
