"""Front 2's HTTP endpoints: websocket-info, status, force_price_update.

Rules: thin. Who the caller is comes from ``Identity`` (a Bearer JWT or API key, the
cookie, or ``X-API-Key``); the numbers come from the guard's rosters (every front's
connections) and the portfolio service. ``routes`` is given what it uses; it looks
nothing up.

    GET  /realtime/websocket-info/        how to connect, and the message types
    GET  /realtime/status/                global stats, and the caller's own
    POST /api/realtime/force_price_update/  {"symbols": [...]}  (authenticated)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple, Protocol

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tickcast.auth.credentials import (
    ANONYMOUS,
    InvalidCredentials,
    Principal,
    credentials_from_handshake,
)
from tickcast.auth.forwarded import valid_host
from tickcast.fronts import leaderboard, market, monitoring, realtime, socketio, stomp
from tickcast.fronts.guard import Guard, Ticket
from tickcast.fronts.identity import CredentialsUnavailable
from tickcast.model.portfolio import AssetUpdate
from tickcast.model.topic import MARKET_CHANNELS, Channel

CLIENT_TYPES = [
    "ping",
    "auth",
    "subscribe_asset",
    "unsubscribe_asset",
    "subscribe_portfolio",
    "unsubscribe_portfolio",
    "subscribe_positions",
    "unsubscribe_positions",
    "subscribe_signals",
    "unsubscribe_signals",
    "subscribe_signal_status",
    "unsubscribe_signal_status",
]
#: Where each front listens, by its name in the guard's rosters (the monitoring
#: streams' five paths as one brace pattern).
PATHS: Final = {
    market.NAME: market.PATH,
    realtime.NAME: realtime.PATH,
    stomp.NAME: stomp.PATH,
    socketio.NAME: socketio.PREFIX + "/",
    leaderboard.NAME: ", ".join(leaderboard.LeaderboardSpec.paths),  # three streams, one front
    monitoring.NAME: ", ".join(monitoring.MonitoringSpec.paths),  # five streams, one front
}
#: Channels that carry one asset's market data (the Front 2 asset, the Front 1 channels).
_ASSET_CHANNELS: Final = frozenset({Channel.ASSETS, *MARKET_CHANNELS} - {Channel.STATUS})
SERVER_TYPES = [
    "connection",
    "pong",
    "asset_update",
    "portfolio_update",
    "position_update",
    "positions_update",
    "signals_subscribed",
    "signals_unsubscribed",
    "new_signal",
    "signal_status_subscribed",
    "signal_status_unsubscribed",
    "status_update",
    "error",
]


class PriceUpdates(Protocol):
    """What ``force_price_update`` uses of the portfolio service."""

    def force_price_update(self, symbols: Iterable[str]) -> list[AssetUpdate]: ...


async def principal_of(request: Request, guard: Guard) -> Principal:
    """The caller, or ANONYMOUS. Raises InvalidCredentials for bad credentials."""
    token = credentials_from_handshake(request.scope.get("headers", ()), b"")
    if token is None:
        return ANONYMOUS
    return await guard.identity.authenticate(token)


class Elsewhere(NamedTuple):
    """The other nodes of a cluster, as their heartbeats report them.

    Attributes:
        nodes: how many other nodes there are.
        figures: their ``global_stats`` figures (``FIGURES``), summed.
        users: the ids of the users signed in there.
    """

    nodes: int
    figures: dict[str, int]
    users: set[int]


#: The figures of ``global_stats`` a node reports to the others, to be summed.
FIGURES = ("total_connections", "portfolio_subscriptions", "asset_subscriptions")


def figures(rosters: Mapping[str, Mapping[Any, Ticket]]) -> dict[str, int]:
    """This node's ``FIGURES``, for its heartbeat."""
    body = status_body(False, rosters, ANONYMOUS)["global_stats"]
    return {name: body[name] for name in FIGURES}


def status_body(
    ready: bool,
    rosters: Mapping[str, Mapping[Any, Ticket]],
    caller: Principal,
    elsewhere: Elsewhere | None = None,
) -> Any:
    """The body of ``GET /realtime/status/``: every front's connections, and the caller's.

    In a cluster, ``elsewhere`` is the other nodes': the global figures are the
    cluster's (``fronts`` and ``user_stats`` stay this node's), and ``cluster`` says how
    many nodes they count.

    ``rosters`` maps a front's name (``market_feed``, ``realtime``) to its open
    connections and their tickets; a connection's ``session.topics`` are its
    subscriptions. Every figure counts every front: ``asset_subscriptions`` counts the
    market data of a symbol a connection subscribed to (a Front 2 ``subscribe_asset``,
    a Front 1 symbol x channel), ``portfolio_subscriptions`` the portfolios (Front 2
    only has them). ``fronts`` breaks the connections down per front.
    """
    fronts: dict[str, Any] = {}
    everyone: list[tuple[Principal, Any]] = []
    for name, roster in rosters.items():
        open_ = [(ticket.principal, connection.session) for connection, ticket in roster.items()]
        everyone.extend(open_)
        fronts[name] = {
            "path": PATHS.get(name),
            "connections": len(open_),
            "authenticated_connections": sum(1 for p, _ in open_ if p.authenticated),
            "subscriptions": sum(len(session.topics) for _, session in open_),
        }
    body: dict[str, Any] = {
        "service_status": "running" if ready else "starting",
        "global_stats": {
            "total_connections": len(everyone),
            "authenticated_users": len({p.user_id for p, _ in everyone if p.authenticated}),
            "portfolio_subscriptions": sum(
                1 for _, s in everyone for t in s.topics if t.channel is Channel.PORTFOLIO
            ),
            "asset_subscriptions": sum(
                1 for _, s in everyone for t in s.topics if t.channel in _ASSET_CHANNELS
            ),
            "fronts": fronts,
        },
    }
    if elsewhere is not None:
        stats = body["global_stats"]
        for name in FIGURES:
            stats[name] += elsewhere.figures.get(name, 0)
        local_users = {p.user_id for p, _ in everyone if p.authenticated}
        stats["authenticated_users"] = len(local_users | elsewhere.users)
        body["cluster"] = {"nodes": 1 + elsewhere.nodes}
    if caller.authenticated:
        mine = [s for p, s in everyone if p.user_id == caller.user_id]
        body["user_stats"] = {
            "user_id": caller.user_id,
            "connection_count": len(mine),
            "subscriptions": {
                "portfolios": sorted(
                    {
                        int(t.symbol)
                        for s in mine
                        for t in s.topics
                        if t.channel is Channel.PORTFOLIO
                    }
                ),
                "assets": sorted(
                    {t.symbol for s in mine for t in s.topics if t.channel in _ASSET_CHANNELS}
                ),
            },
        }
    return body


def routes(
    portfolios: PriceUpdates,
    guard: Guard,
    *,
    is_known: Callable[[str], bool],
    ready: Callable[[], bool],
    address: str,
    allow_anonymous: bool,
    elsewhere: Callable[[], Elsewhere | None] = lambda: None,
) -> list[Route]:
    """The endpoints, over what they use.

    Args:
        portfolios: publishes the asset updates ``force_price_update`` asks for.
        guard: who a caller is (``identity``), and every front's open connections
            (``rosters``).
        is_known: Front 2's universe (``fronts.realtime.tradable``).
        ready: whether the gateway serves market data yet (``service_status``).
        address: ``host:port`` advertised when the request's Host is unusable.
        allow_anonymous: whether anonymous clients get market data (advertised).
        elsewhere: the other nodes of a cluster (None: a node alone).
    """

    async def websocket_info(request: Request) -> Response:
        # scheme and Host as the client used them: web.proxyheaders resolved both
        # (from trusted proxies only) before this runs; a Host that is not a plain
        # name[:port] is never reflected into the advertised URL
        secure = request.url.scheme == "https"
        host = valid_host(request.headers.get("host")) or address
        return JSONResponse(
            {
                "websocket_url": f"{'wss' if secure else 'ws'}://{host}{realtime.PATH}",
                "connection_info": {
                    "protocol": "wss" if secure else "ws",
                    "host": host,
                    "path": realtime.PATH,
                    "authentication": {
                        "kinds": ["jwt", "api_key"],
                        "handshake": [
                            "Authorization: Bearer",
                            "X-API-Key",
                            "cookie tickcast_token",
                            "?token=",
                        ],
                        "first_message": {"type": "auth", "data": {"token": "..."}},
                        "anonymous_market_data": allow_anonymous,
                    },
                },
                "message_types": {"client": CLIENT_TYPES, "server": SERVER_TYPES},
            }
        )

    async def status(request: Request) -> Response:
        try:
            caller = await principal_of(request, guard)
        except InvalidCredentials as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        except CredentialsUnavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return JSONResponse(status_body(ready(), guard.rosters, caller, elsewhere()))

    async def force_price_update(request: Request) -> Response:
        try:
            caller = await principal_of(request, guard)
        except InvalidCredentials as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        except CredentialsUnavailable as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        if not caller.authenticated:
            return JSONResponse({"error": "authentication required"}, status_code=401)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":  # a cross-site form cannot send this (CSRF)
            return JSONResponse(
                {"error": "send the body as Content-Type: application/json"}, status_code=415
            )
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        symbols = body.get("symbols") if isinstance(body, dict) else None
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            return JSONResponse({"error": "'symbols' must be a list of strings"}, status_code=400)
        wanted = list(dict.fromkeys(s.strip().upper() for s in symbols))[:1000]
        unknown = [s for s in wanted if not is_known(s)]
        updates = portfolios.force_price_update([s for s in wanted if s not in unknown])
        return JSONResponse(
            {
                "status": "ok",
                "updated": [u.symbol for u in updates],
                "unknown": unknown,
                "no_price_yet": [
                    s for s in wanted if s not in unknown and s not in {u.symbol for u in updates}
                ],
            }
        )

    return [
        Route("/realtime/websocket-info/", websocket_info),
        Route("/realtime/status/", status),
        Route("/api/realtime/force_price_update/", force_price_update, methods=["POST"]),
    ]
