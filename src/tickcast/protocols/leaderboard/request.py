"""Which leaderboard stream a socket asks for: its path and its URL's query; and the
one reading of the leaderboard's parameters, shared by the sockets and the polling
routes (``web/leaderboard.py``), so that both accept or refuse the same query with the
same message.

Rules: pure. ``choose`` turns a connection's path and query into the one topic its
session holds, or a refusal (a message and the close code):

- ``/ws/updates``: ``leaderboard.all``;
- ``/ws/top?n=`` (1..max_top, default 10): ``leaderboard_top.<n>``;
- ``/ws/around?portfolio_id=&window=`` (the id required; the window 0..max_window,
  default 5): ``leaderboard_around.<id>:<window>``.

Anonymous while the leaderboard is not public: 3503. A parameter given twice, empty,
not a whole number as a URL writes it (decimal digits; no sign, spaces, separators,
decimals or leading zero: ``01`` is not 1, as everywhere in the API) or out of range
is a 3506 (a bad request; over HTTP a 422 with the same message); a portfolio that is
not on the board (unknown, or not public: the two are not told apart) a 3505. Other
query parameters (a credential such as ``token``) are ignored.

The query is read by ``parse_query`` (``&``-separated, percent-decoded, blank values
kept), then ``top_n``, ``around_window`` and ``portfolio_id_of`` read its parameters.
"""

from __future__ import annotations

import re
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
#: A whole number as a URL writes it: one text per number (``01``, ``+1``, ``1.0`` are
#: not 1), at most 19 digits.
_WHOLE: Final = re.compile(r"0|[1-9][0-9]{0,18}")

#: A URL's query: each parameter's values, in order.
Params = dict[str, list[str]]


class Refusal(NamedTuple):
    message: str
    code: CloseCode


class Limits(NamedTuple):
    """The largest ``n`` and ``window`` a client may ask for."""

    max_top: int
    max_window: int


class BadParameter(ValueError):
    """A parameter refused: ``name`` and what is wrong (``str``); ``message`` is what
    the client is told (the socket's error message, the 422's ``msg``)."""

    def __init__(self, name: str, problem: str, value: str | None = None) -> None:
        super().__init__(problem)
        self.name = name
        self.value = value

    @property
    def message(self) -> str:
        return f"Invalid request: {self}"


def parse_query(raw: bytes | str) -> Params:
    """A URL's query (the ASGI scope's ``query_string``) as its parameters' values."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    return parse_qs(text, keep_blank_values=True)


def whole(name: str, text: str, low: int, high: int) -> int:
    """``text`` as a whole number in ``low..high`` (module docstring). Raises
    BadParameter."""
    if not (text.isascii() and _WHOLE.fullmatch(text)) or not low <= int(text) <= high:
        raise BadParameter(
            name,
            f"{name} must be a whole number from {low} to {high}, in decimal digits "
            "(no sign, spaces, decimals or leading zero)",
            text,
        )
    return int(text)


def integer(query: Params, name: str, low: int, high: int, default: int | None) -> int:
    """The query's ``name`` as an integer in ``low..high``; ``default`` when absent (None:
    required). Raises BadParameter."""
    values = query.get(name)
    if values is None:
        if default is None:
            raise BadParameter(name, f"{name} is required")
        return default
    if len(values) != 1:
        raise BadParameter(name, f"{name} is given more than once", ",".join(values))
    return whole(name, values[0], low, high)


def top_n(query: Params, limits: Limits) -> int:
    """``n`` of ``/ws/top`` and ``GET /api/leaderboard/top``."""
    return integer(query, "n", 1, limits.max_top, DEFAULT_TOP)


def around_window(query: Params, limits: Limits) -> int:
    """``window`` of ``/ws/around`` and ``GET /api/leaderboard/around/{id}``."""
    return integer(query, "window", 0, limits.max_window, DEFAULT_WINDOW)


def portfolio_id_of(text: str) -> int:
    """A portfolio id (``/ws/around``'s query, the polling route's path)."""
    return whole("portfolio_id", text, 1, MAX_ID)


def choose(
    path: str,
    query_string: str,
    *,
    limits: Limits,
    is_public: Callable[[int], bool],
) -> Topic | Refusal:
    """The topic of the stream at ``path`` with ``query_string``, or why not."""
    query = parse_query(query_string)
    try:
        if path == UPDATES_PATH:
            return Topic(BOARD_CHANNEL, BOARD_KEY)
        if path == TOP_PATH:
            return Topic(TOP_CHANNEL, str(top_n(query, limits)))
        if path == AROUND_PATH:
            chosen = integer(query, "portfolio_id", 1, MAX_ID, None)
            window = around_window(query, limits)
            if not is_public(chosen):
                return Refusal(not_on_the_board(chosen), CloseCode.NOT_FOUND)
            return Topic(AROUND_CHANNEL, around_key(chosen, window))
    except BadParameter as exc:
        return Refusal(exc.message, CloseCode.INVALID_REQUEST)
    return Refusal(f"No leaderboard stream at {path}", CloseCode.NOT_FOUND)


def not_on_the_board(portfolio_id: int) -> str:
    """Why a portfolio's window is refused (3505, 404): unknown or private alike."""
    return f"Portfolio {portfolio_id} is not on the leaderboard"


def sign_in_required() -> Refusal:
    return Refusal(
        "Authentication required: the leaderboard is for signed-in users",
        CloseCode.AUTHENTICATION_REQUIRED,
    )
