"""The leaderboard's polling routes (mounted at ``/api`` with the portfolio routes):

    GET /leaderboard                               {"type": "snapshot", "data": [entries]}
    GET /leaderboard/top?n=                        {"type": "top-performers", "data": [...]}
    GET /leaderboard/around/{portfolio_id}?window= {"type": "snapshot", "data": [...]}

Rules: thin. The bodies are the sockets' messages, encoded by the same codec
(``protocols/leaderboard/codec.py``) from the same views the service shows its
subscribers (``LeaderboardService.snapshot``, ``top``, ``around``): polling returns what
a socket received. Each answer carries an ``ETag`` (a hash of the body) and
``Cache-Control: no-cache``; a request whose ``If-None-Match`` names the current one is
answered 304 without a body. 404: a portfolio not on the board (unknown, or not public:
not told apart); 422: a bad parameter; 401: no credential while ``leaderboard_public``
is off.

The parameters are read as the sockets read them (``protocols/leaderboard/request.py``:
``top_n``, ``around_window``, ``portfolio_id_of``, from the raw query), so a poll and a
socket accept or refuse the same query, with the same message (the 422's ``msg``, the
socket's error). The signatures declare them for the OpenAPI description only, as text
(FastAPI reads no integer of its own: a repeated ``n`` would be its last value there).

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' signatures
at run time.
"""

import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Final

import fastapi
import msgspec
from fastapi import Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import WithJsonSchema

from tickcast.auth.credentials import Principal
from tickcast.config.groups import LeaderboardSettings
from tickcast.fronts.leaderboard import Board
from tickcast.protocols.leaderboard import codec
from tickcast.protocols.leaderboard.request import (
    DEFAULT_TOP,
    DEFAULT_WINDOW,
    MAX_ID,
    BadParameter,
    Limits,
    Params,
    around_window,
    not_on_the_board,
    parse_query,
    portfolio_id_of,
    top_n,
)
from tickcast.web.contract import CREDENTIALS, Responses
from tickcast.web.schemas import ErrorOut

_NUMBER: Final = {"type": "number"}
ENTRY_SCHEMA: Final[dict[str, Any]] = {
    "title": "LeaderboardEntry",
    "type": "object",
    "description": "One public portfolio's standing. Money and percentages are JSON "
    "numbers, rounded to 2 decimal places.",
    "required": [
        "rank",
        "portfolio_id",
        "portfolio_name",
        "owner_name",
        "return_percent",
        "total_value",
        "daily_change",
        "daily_change_percent",
        "previous_rank",
    ],
    "properties": {
        "rank": {"type": "integer", "minimum": 1},
        "portfolio_id": {"type": "integer", "minimum": 1},
        "portfolio_name": {"type": "string"},
        "owner_name": {"type": "string", "description": "The owner's username."},
        "return_percent": {
            **_NUMBER,
            "description": "(total_value - net_deposits) / net_deposits * 100; 0 when "
            "net_deposits <= 0.",
        },
        "total_value": _NUMBER,
        "daily_change": _NUMBER,
        "daily_change_percent": _NUMBER,
        "previous_rank": {
            "type": ["integer", "null"],
            "description": "The rank before its last move; null until it first moves "
            "after entering the board.",
        },
    },
}


def _message(kind: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "data"],
        "properties": {
            "type": {"const": kind},
            "data": {"type": "array", "items": ENTRY_SCHEMA},
        },
    }


def _ok(kind: str, description: str) -> Responses:
    return {
        200: {
            "description": description,
            "headers": {
                "ETag": {"description": "The body's tag.", "schema": {"type": "string"}},
            },
            "content": {"application/json": {"schema": _message(kind)}},
        },
        304: {"description": "Unchanged since the If-None-Match tag."},
    }


def _whole(low: int, high: int) -> WithJsonSchema:
    """The OpenAPI schema of a whole-number parameter, declared as text: ``request.py``
    reads it, from the raw query."""
    return WithJsonSchema({"type": "integer", "minimum": low, "maximum": high})


def _query(request: Request) -> Params:
    return parse_query(request.scope.get("query_string", b""))


def _refused(exc: BadParameter, where: str) -> RequestValidationError:
    """A 422 in FastAPI's validation shape, with the socket's message."""
    return RequestValidationError(
        [{"type": "value_error", "loc": (where, exc.name), "msg": exc.message, "input": exc.value}]
    )


def answer(request: Request, body: bytes) -> Response:
    """``body`` with its ETag, or 304 when the client holds it."""
    tag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    held = request.headers.get("if-none-match", "")
    if tag in (t.strip() for t in held.split(",")) or held.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@dataclass(frozen=True, slots=True)
class LeaderboardRoutes:
    """What ``build_api`` is given to serve the leaderboard: the service, its settings."""

    board: Board
    settings: LeaderboardSettings


def add_leaderboard_routes(
    api: fastapi.FastAPI,
    board: Board,
    credentials: Callable[..., Coroutine[Any, Any, tuple[Principal, bool]]],
    *,
    unauthenticated: Callable[[], Exception],
    public: bool,
    max_top: int,
    max_window: int,
) -> None:
    """The polling routes on ``api`` (module docstring).

    Args:
        board: the leaderboard service.
        credentials: the API's dependency: the caller (ANONYMOUS without credentials);
            it answers 401 for a bad credential.
        unauthenticated: the 401 for a caller that sent none where one is needed.
        public: ``leaderboard_public``: anonymous callers are served.
        max_top, max_window: the largest ``n`` and ``window``.
    """
    Found = Annotated[tuple[Principal, bool], Depends(credentials)]
    limits = Limits(max_top, max_window)
    security: dict[str, Any] | None = {"security": [{}]} if public else None
    responses: Responses = CREDENTIALS  # a bad credential is a 401 even when public

    def check(found: tuple[Principal, bool]) -> None:
        if not public and not found[0].authenticated:
            raise unauthenticated()

    @api.get(
        "/leaderboard",
        operation_id="leaderboard",
        summary="The public leaderboard's snapshot (its best entries)",
        response_class=Response,
        responses={**_ok("snapshot", "The board, by rank."), **responses},
        openapi_extra=security,
    )
    async def leaderboard(request: Request, found: Found) -> Response:
        """What `/ws/updates` sends on connect: the best `leaderboard_snapshot_limit`
        entries of the portfolios that opted in, by return on invested capital."""
        check(found)
        return answer(request, codec.encode(board.snapshot()))

    @api.get(
        "/leaderboard/top",
        operation_id="leaderboard_top",
        summary="The leaderboard's best n entries",
        response_class=Response,
        responses={**_ok("top-performers", "The best n, by rank."), **responses},
        openapi_extra=security,
    )
    async def leaderboard_top(
        request: Request,
        found: Found,
        n: Annotated[
            str | None, Query(description=f"{DEFAULT_TOP} by default."), _whole(1, max_top)
        ] = None,
    ) -> Response:
        """What `/ws/top?n=` sends (`n` read as the socket reads it)."""
        check(found)
        try:
            count = top_n(_query(request), limits)
        except BadParameter as exc:
            raise _refused(exc, "query") from None
        return answer(request, codec.encode(board.top(count)))

    @api.get(
        "/leaderboard/around/{portfolio_id}",
        operation_id="leaderboard_around",
        summary="The leaderboard's entries around one public portfolio",
        response_class=Response,
        responses={
            **_ok("snapshot", "The entries window ranks either side, by rank."),
            **responses,
            404: {"model": ErrorOut, "description": "Not on the leaderboard (unknown or private)."},
        },
        openapi_extra=security,
    )
    async def leaderboard_around(
        request: Request,
        found: Found,
        portfolio_id: Annotated[str, Path(), _whole(1, MAX_ID)],
        window: Annotated[
            str | None,
            Query(description=f"{DEFAULT_WINDOW} by default."),
            _whole(0, max_window),
        ] = None,
    ) -> Response:
        """What `/ws/around?portfolio_id=&window=` sends on connect (the parameters read
        as the socket reads them)."""
        check(found)
        try:
            chosen = portfolio_id_of(portfolio_id)
        except BadParameter as exc:
            raise _refused(exc, "path") from None
        try:
            size = around_window(_query(request), limits)
        except BadParameter as exc:
            raise _refused(exc, "query") from None
        view = board.around(chosen, size)
        if view is None:
            raise HTTPException(404, not_on_the_board(chosen))
        return answer(request, codec.encode(msgspec.structs.replace(view, kind="snapshot")))
