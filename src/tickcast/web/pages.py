"""The gateway's browser pages: the landing page, Front 2's live dashboard and WebSocket
test page, the API docs page, and their static files.

Rules: no templating and no inline script or style: each page is a static HTML file in
``web/static`` that loads ES modules from ``/static/`` (by relative URLs, so that a
proxy may mount the gateway under a path prefix), so a strict Content-Security-Policy
covers everything (the API docs page's also allows ``data:`` images) and nothing is
ever fetched from another origin (no CDN): the analytics page's STOMP and SockJS
libraries are their UMD builds, vendored in ``static/vendor/`` with their licences and
loaded by plain ``<script src>`` tags. The files are found next to this module
(``Path(__file__).parent``), so the pages work from an installed wheel as from a
checkout. Swagger UI's script and stylesheet come from the installed
``fastapi-offline`` package (``SWAGGER_UI_DIR``), never from the internet. This module
holds no state and knows nothing of the node: the pages talk to the gateway over
``/ws/realtime/``, ``/stomp``, the Front 4 sockets (``/ws/top``, ``/ws/alerts``...)
and ``/api`` like any other client.

    GET /                        the landing page: links to every page, API and endpoint
    GET /realtime/dashboard/     live quotes, sparklines, the signed-in user's portfolios
    GET /realtime/test/          connect, send any message, see every frame
    GET /analytics/              positions, unrealized P&L and quotes over STOMP + SockJS
                                 (``/stomp``) with rx-stomp, as the analytics front end
    GET /operations/             alerts, system metrics, pipeline, telemetry and dead
                                 letters over the monitoring sockets (``/ws/alerts``...),
                                 polling ``/api/monitoring/...`` while they cannot connect;
                                 for operators
    GET /static/<file>           the pages' JavaScript modules, CSS and icon
    GET /static/swagger-ui/<file>  Swagger UI's bundle and stylesheet (for ``/api/docs``)

``/api/docs`` itself is routed by the API (``web/api.py``) to ``api_docs_page()``.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

#: The folder the pages and their assets are served from.
STATIC_DIR: Final = Path(__file__).parent / "static"
#: Swagger UI's ``swagger-ui-bundle.js`` and ``swagger-ui.css`` (Swagger UI 5, which reads
#: the OpenAPI 3.1 that FastAPI writes), as the ``fastapi-offline`` package ships them.
SWAGGER_UI_DIR: Final = Path(str(importlib.resources.files("fastapi_offline") / "static"))

#: Only this origin, plus WebSockets: the test page may connect to any gateway, and older
#: browsers do not count ws: as ``'self'``.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; connect-src 'self' ws: wss:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The API docs page's: the same, but no WebSockets, and images from ``data:`` URLs too
#: (Swagger UI's stylesheet draws its icons with them; they come from no host at all).
API_DOCS_CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

#: Seconds a browser may reuse a static file before asking again. Short, so that an
#: upgraded gateway's pages and modules agree within a minute, with no build step to
#: fingerprint file names.
STATIC_MAX_AGE_S: Final = 60

#: Types set here rather than guessed from the host's mime.types: a module script served
#: as anything but JavaScript is refused by the browser.
MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

PAGES: Final = {
    "/": "index.html",
    "/realtime/dashboard/": "dashboard.html",
    "/realtime/test/": "test.html",
    "/analytics/": "analytics.html",
    "/operations/": "operations.html",
}
#: The API docs page (Swagger UI), routed by ``web/api.py`` at ``/api/docs``.
API_DOCS_PAGE: Final = "apidocs.html"


class _StaticFiles(StaticFiles):
    """StaticFiles with fixed content types, a short Cache-Control and the CSP."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = MEDIA_TYPES.get(Path(full_path).suffix.lower())
        if media_type is not None and response.status_code == 200:
            response.headers["content-type"] = media_type
        response.headers["cache-control"] = f"public, max-age={STATIC_MAX_AGE_S}"
        response.headers.update(SECURITY_HEADERS)
        return response


def _page(
    filename: str, csp: str = CONTENT_SECURITY_POLICY
) -> Callable[[Request], Awaitable[Response]]:
    path = STATIC_DIR / filename
    # no-cache: asked for every time, so a page never outlives its modules
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": csp, "Cache-Control": "no-cache"}

    async def page(_: Request) -> Response:
        return FileResponse(path, media_type=MEDIA_TYPES[".html"], headers=headers)

    return page


def api_docs_page() -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of the API docs page: Swagger UI, every file from this gateway."""
    return _page(API_DOCS_PAGE, API_DOCS_CONTENT_SECURITY_POLICY)


def routes() -> list[BaseRoute]:
    """The pages and ``/static``; mount them beside Front 2's HTTP routes."""
    pages: list[BaseRoute] = [Route(url, _page(name)) for url, name in PAGES.items()]
    swagger_ui = _StaticFiles(directory=SWAGGER_UI_DIR, check_dir=True)
    static = _StaticFiles(directory=STATIC_DIR, check_dir=True)
    return [
        *pages,
        # before /static, which would otherwise answer 404 for these
        Mount("/static/swagger-ui", app=swagger_ui, name="swagger-ui"),
        Mount("/static", app=static, name="static"),
    ]
