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

from tickcast.auth.credentials import Principal
from tickcast.config.groups import LeaderboardSettings
from tickcast.fronts.leaderboard import Board
from tickcast.protocols.leaderboard import codec
from tickcast.protocols.leaderboard.request import DEFAULT_TOP, DEFAULT_WINDOW, MAX_ID
from tickcast.web.contract import CREDENTIALS, Responses
from tickcast.web.schemas import ErrorOut, WholeText

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
            "description": "The rank at the previous batching window; null when new.",
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
        n: Annotated[int, Query(ge=1, le=max_top), WholeText] = DEFAULT_TOP,
    ) -> Response:
        """What `/ws/top?n=` sends."""
        check(found)
        return answer(request, codec.encode(board.top(n)))

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
        portfolio_id: Annotated[int, Path(ge=1, le=MAX_ID), WholeText],
        window: Annotated[int, Query(ge=0, le=max_window), WholeText] = DEFAULT_WINDOW,
    ) -> Response:
        """What `/ws/around?portfolio_id=&window=` sends on connect."""
        check(found)
        view = board.around(portfolio_id, window)
        if view is None:
            raise HTTPException(404, f"Portfolio {portfolio_id} is not on the leaderboard")
        return answer(request, codec.encode(msgspec.structs.replace(view, kind="snapshot")))
