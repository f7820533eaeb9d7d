"""Which leaderboard stream a socket asks for: its path and its URL's query.

Rules: pure. ``choose`` turns a connection's path and query into the one topic its
session holds, or a refusal (a message and the close code):

- ``/ws/updates``: ``leaderboard.all``;
- ``/ws/top?n=`` (1..max_top, default 10): ``leaderboard_top.<n>``;
- ``/ws/around?portfolio_id=&window=`` (the id required; the window 0..max_window,
  default 5): ``leaderboard_around.<id>:<window>``.

Anonymous while the leaderboard is not public: 3503. A parameter given twice, empty,
not a plain decimal integer or out of range is a 3506 (a bad request); a portfolio that
is not on the board (unknown, or not public: the two are not told apart) a 3505.
Other query parameters (a credential such as ``token``) are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple
from urllib.parse import parse_qs

from tickcast.closecodes import CloseCode
from tickcast.model.leaderboard import (
    AROUND_CHANNEL,
    BOARD_CHANNEL,
    BOARD_KEY,
    TOP_CHANNEL,
    around_key,
)
from tickcast.model.topic import Topic

UPDATES_PATH: Final = "/ws/updates"
TOP_PATH: Final = "/ws/top"
AROUND_PATH: Final = "/ws/around"
PATHS: Final = (UPDATES_PATH, TOP_PATH, AROUND_PATH)
DEFAULT_TOP: Final = 10
DEFAULT_WINDOW: Final = 5
#: A portfolio id is a positive 63-bit integer.
MAX_ID: Final = 2**63 - 1


class Refusal(NamedTuple):
    message: str
    code: CloseCode


class Limits(NamedTuple):
    """The largest ``n`` and ``window`` a client may ask for."""

    max_top: int
    max_window: int


class BadParameter(ValueError):
    pass


def integer(
    query: dict[str, list[str]], name: str, low: int, high: int, default: int | None
) -> int:
    """The query's ``name`` as an integer in ``low..high``; ``default`` when absent (None:
    required). Raises BadParameter."""
    values = query.get(name)
    if values is None:
        if default is None:
            raise BadParameter(f"{name} is required")
        return default
    if len(values) != 1:
        raise BadParameter(f"{name} is given more than once")
    text = values[0]
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise BadParameter(f"{name} must be an integer from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise BadParameter(f"{name} must be an integer from {low} to {high}")
    return value


def choose(
    path: str,
    query_string: str,
    *,
    limits: Limits,
    is_public: Callable[[int], bool],
) -> Topic | Refusal:
    """The topic of the stream at ``path`` with ``query_string``, or why not."""
    query = parse_qs(query_string, keep_blank_values=True)
    try:
        if path == UPDATES_PATH:
            return Topic(BOARD_CHANNEL, BOARD_KEY)
        if path == TOP_PATH:
            n = integer(query, "n", 1, limits.max_top, DEFAULT_TOP)
            return Topic(TOP_CHANNEL, str(n))
        if path == AROUND_PATH:
            portfolio_id = integer(query, "portfolio_id", 1, MAX_ID, None)
            window = integer(query, "window", 0, limits.max_window, DEFAULT_WINDOW)
            if not is_public(portfolio_id):
                return Refusal(
                    f"Portfolio {portfolio_id} is not on the leaderboard", CloseCode.NOT_FOUND
                )
            return Topic(AROUND_CHANNEL, around_key(portfolio_id, window))
    except BadParameter as exc:
        return Refusal(f"Invalid request: {exc}", CloseCode.INVALID_REQUEST)
    return Refusal(f"No leaderboard stream at {path}", CloseCode.NOT_FOUND)


def sign_in_required() -> Refusal:
    return Refusal(
        "Authentication required: the leaderboard is for signed-in users",
        CloseCode.AUTHENTICATION_REQUIRED,
    )
