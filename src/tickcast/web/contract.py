"""The portfolio API's contract beyond its models: every status an operation answers,
the headers that come with them, the links between operations, and the handlers that keep
the answers to that contract.

Rules: the OpenAPI description must be true, and ``tests/integration/test_api_contract.py``
holds the real server to it with schemathesis. So every status code an operation can
answer is listed here with its shape; a rule of the data that no JSON Schema can state (a
symbol must be a known asset, a sell needs the quantity held) is a 422 whose description
names it. Nothing here reads a request's data: that is ``api.py``.
"""

import json
import re
from typing import Any, Final

import fastapi
from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from tickcast.web.schemas import ErrorOut

#: ``responses=`` of a FastAPI operation: status -> OpenAPI response (``model`` for its body).
Responses = dict[int | str, dict[str, Any]]


def header(description: str, example: str) -> dict[str, Any]:
    """A response header that is always sent (an OpenAPI Header Object)."""
    return {
        "description": description,
        "required": True,
        "schema": {"type": "string"},
        "example": example,
    }


#: Every operation reads credentials (``/assets`` too: a bad one is refused there as well).
CREDENTIALS: Final[Responses] = {
    401: {
        "model": ErrorOut,
        "description": "Missing, malformed, ambiguous or refused credentials: none where "
        "they are needed; an Authorization header that is not `Bearer <token>` (`Basic "
        "...`, or a value without a scheme), even beside a valid X-API-Key; more than one "
        "of Authorization and X-API-Key; an unknown, revoked or expired key or token.",
        "headers": {
            "WWW-Authenticate": header(
                'A Bearer challenge (RFC 6750 §3); `error="invalid_token"` when a '
                "credential was sent and refused.",
                'Bearer realm="tickcast"',
            )
        },
    },
    503: {
        "model": ErrorOut,
        "description": "The accounts database cannot answer to check an API key: retry.",
        "headers": {"Retry-After": header("Seconds to wait before retrying.", "5")},
    },
}
#: Every operation that reads a JSON body; its 422 is FastAPI's own (or ``refusals``).
BODY: Final[Responses] = {
    400: {"model": ErrorOut, "description": "The body cannot be read (it is not UTF-8)."},
    415: {
        "model": ErrorOut,
        "description": "The body is not declared JSON: send `Content-Type: application/json`.",
    },
}
NOT_FOUND: Final[Responses] = {
    404: {"model": ErrorOut, "description": "No such portfolio of the caller's."}
}
#: Operations on one portfolio, by operationId: where a portfolio id leads.
READERS: Final = ("get_portfolio", "list_positions", "list_transactions", "list_cash_transactions")
WRITERS: Final = ("record_transaction", "deposit", "withdraw")


def refusals(*rules: str) -> Responses:
    """The 422 of an operation whose valid body can still break a rule of the data."""
    return {
        422: {
            "description": "A body the schema refuses, or one that breaks a rule of the "
            "portfolio's data (the error's `type`): " + "; ".join(rules) + ".",
        }
    }


def links(portfolio_id: str, *operations: str) -> dict[str, Any]:
    """OpenAPI links (3.1 §4.8.20) from a response to the operations on its portfolio:
    ``portfolio_id`` is a runtime expression such as ``$response.body#/id``."""
    return {
        name: {"operationId": name, "parameters": {"portfolio_id": portfolio_id}}
        for name in operations
    }


# -- handlers that keep the answers to the contract


async def _method_not_allowed(request: Request, exc: StarletteHTTPException) -> Response:
    """A 405 whose ``Allow`` lists every method of the resource (RFC 9110 §15.5.6), where
    Starlette names only those of the first route whose path matched (``GET`` for
    ``/portfolios``, which also takes ``POST``)."""
    allowed = {
        method
        for route in request.app.routes
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] is not Match.NONE
        for method in route.methods or ()
    }
    if allowed:
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))}
    return await http_exception_handler(request, exc)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's own 422, also for a string that is not Unicode (JSON can spell a lone
    surrogate, ``"\\ud800"``): pydantic refuses it, and the ``input`` echoed back is then
    written with JSON escapes rather than failing to encode (a 500)."""
    try:
        return await request_validation_exception_handler(request, exc)
    except UnicodeEncodeError:
        content = {"detail": jsonable_encoder(exc.errors())}
        return Response(json.dumps(content), 422, media_type="application/json")


def install_handlers(api: fastapi.FastAPI) -> None:
    """The error handlers above, on ``api``."""
    api.add_exception_handler(405, _method_not_allowed)  # type: ignore[arg-type]
    api.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]


def mount_api(api: fastapi.FastAPI, path: str = "/api") -> Mount:
    """``api`` mounted at ``path``, for every URL under it.

    Starlette matches a mount's rest of the path with ``.*``, which stops at a line
    break: ``/api/portfolios/%0A`` would fall through to the gateway's plain-text 404
    rather than get the API's JSON answer (here a 422), as its OpenAPI description says.
    """
    mount = Mount(path, api)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount
