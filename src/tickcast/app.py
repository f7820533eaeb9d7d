"""Composition root: ``build_app(settings)`` wires the node, the fronts and the routes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from tickcast import __version__
from tickcast.config.settings import Settings
from tickcast.fronts import echo, market
from tickcast.node import Node
from tickcast.observability.metrics import CONTENT_TYPE


def build_app(settings: Settings, node: Node | None = None) -> Starlette:
    """The ASGI application: health, readiness, metrics and the WebSocket fronts."""
    node = node or Node(settings)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def ready(_: Request) -> Response:
        body = {
            "ready": node.ready,
            "providers": [p.name for p in node.providers],
            "connections": node.stats.connections,
        }
        return JSONResponse(body, status_code=200 if node.ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(node.metrics.render(), media_type=CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await node.start()
        try:
            yield
        finally:
            await node.aclose()

    routes: list[Route | WebSocketRoute] = [
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics),
        WebSocketRoute(market.PATH, market.MarketFeedFront(node)),
    ]
    if settings.test_echo:
        routes.append(WebSocketRoute(echo.PATH, echo.EchoFront(node)))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.node = node
    return app
