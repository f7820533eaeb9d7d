"""Composition root: ``build_app(settings)`` wires the node, its services, the fronts and
the routes. The node names no service: the portfolio service (``add_portfolios``) and
the signal service (``add_signals``) are built here; each listens through a tap on the
node's publisher, publishes through it, and starts and stops with the node. Nothing
looks them up: the fronts and the web routes are given what they use as arguments."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from tickcast import __version__
from tickcast.auth.credentials import new_jwt_secret
from tickcast.auth.forwarded import TrustedProxies
from tickcast.bus import wire
from tickcast.bus.base import Bus
from tickcast.bus.registry import backend_of as bus_backend
from tickcast.bus.registry import create as create_bus
from tickcast.clock import SYSTEM
from tickcast.cluster.publisher import ClusterPublisher, Gated
from tickcast.cluster.service import Cluster
from tickcast.config.settings import Settings
from tickcast.errors import BusError, ConfigError
from tickcast.fronts import monitoring as monitoring_front
from tickcast.fronts import realtime, registry, stomp
from tickcast.fronts import socketio as socketio_front
from tickcast.fronts.base import FrontContext, FrontSpec, WebSocketFront
from tickcast.fronts.guard import Guard
from tickcast.fronts.identity import CACHE_S, Identity
from tickcast.fronts.leaderboard import LeaderboardSpec
from tickcast.fronts.sockjs import SockJSEndpoint
from tickcast.hub.publisher import Publisher
from tickcast.leaderboard.service import LeaderboardService
from tickcast.monitoring.service import (
    MonitoringService,
    ProviderLetters,
    SignalLetters,
    Sources,
)
from tickcast.node import Node
from tickcast.observability.metrics import CONTENT_TYPE
from tickcast.portfolio.service import PortfolioService
from tickcast.protocols.sockjs.session import SockJSOptions
from tickcast.signals.engine import Engine, EngineParams
from tickcast.signals.history import SignalHistory
from tickcast.signals.redis_source import RedisSource
from tickcast.signals.service import SignalService
from tickcast.transport.direct import Direct
from tickcast.web import pages
from tickcast.web import realtime as realtime_web
from tickcast.web.api import build_api
from tickcast.web.contract import mount_api
from tickcast.web.leaderboard import LeaderboardRoutes
from tickcast.web.proxyheaders import ProxyHeaders

log = logging.getLogger("tickcast.app")

#: Fronts also served over SockJS, under a prefix: front name -> prefix.
SOCKJS_PREFIXES: dict[str, str] = {stomp.NAME: "/stomp"}


class WebSocketDispatch:
    """Hands WebSocket connections for known paths straight to their front.

    Starlette's middleware and routing stay on the call stack of every connection for its
    whole life; for tens of thousands of long-lived sockets those frames are a large share
    of the memory per connection, so WebSocket fronts bypass them. Everything else goes to
    the Starlette app. A SockJS endpoint (``mounts``: by prefix) takes every request
    under its prefix, HTTP and WebSocket alike (its session paths are dynamic), except the
    WebSocket paths a front serves exactly (``/stomp/websocket``, the raw STOMP front).
    """

    def __init__(
        self,
        app: Starlette,
        fronts: dict[str, ASGIApp],
        proxies: TrustedProxies | None = None,
        mounts: dict[str, ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.fronts = fronts
        self.mounts = tuple(
            (prefix, prefix + "/", mount) for prefix, mount in (mounts or {}).items()
        )
        self.state = app.state
        # who the client is, decided once for every request (web/proxyheaders.py)
        self.proxy_headers = ProxyHeaders(self._dispatch, proxies or TrustedProxies())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.proxy_headers(scope, receive, send)

    def connect_direct(self, scope: Scope, direct: Direct) -> bool:
        """A WebSocket client connected without an ASGI call, if its front can do it at
        once (``transport/direct.py``: ``DirectConnect``); False: nothing done."""
        front = self.fronts.get(scope["path"])
        connect = getattr(front, "connect_direct", None)
        return connect is not None and bool(connect(self.proxy_headers.resolve(scope), direct))

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            front = self.fronts.get(scope["path"])
            if front is not None:
                await front(scope, receive, send)
                return
        if self.mounts:
            path = scope.get("path", "")
            for prefix, under, mount in self.mounts:
                if path == prefix or path.startswith(under):
                    await mount(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def add_portfolios(node: Node, settings: Settings) -> PortfolioService:
    """Build the portfolio service over ``node``: it publishes through the node's
    publisher, revalues through a tap on it (``on_published``), computes live positions
    while someone watches them (the hub's first/last-subscriber hooks, ``follow``),
    and starts and stops with the node. The caller hands it to what uses it."""
    service = PortfolioService(
        node.engine,
        node.publisher,
        interval_s=settings.update_interval_s,
        faults=node.faults,
    )
    node.publisher.tap(service.on_published, name="portfolios")
    service.follow(node.hub)
    node.add_service(service)
    return service


def add_signals(node: Node, settings: Settings, cluster: Cluster | None = None) -> SignalService:
    """Build the signal service over ``node``: the engine (when ``signals_engine``) runs
    on the bars it sees through a tap on the node's publisher, which also fills the
    history; signals from Redis (when ``signals_redis_url`` is set) and from the HTTP
    API are published through the same publisher; the workers' statuses follow the
    feed's readiness and the Redis subscription. It starts and stops with the node and
    exports its metrics on the node's registry. The caller hands it (and its
    ``history``) to what uses it."""
    group = settings.signals
    engine = None
    if group.signals_engine:
        engine = Engine(
            EngineParams(
                fast=group.signals_fast,
                slow=group.signals_slow,
                rsi_period=group.signals_rsi_period,
                oversold=group.signals_oversold,
                overbought=group.signals_overbought,
                cooldown_s=group.signals_cooldown_s,
            )
        )

    def primary() -> bool:
        """Whether this node ingests what every node hears (True when it is alone)."""
        return cluster is None or cluster.leading

    service = SignalService(
        node.publisher,
        SignalHistory(group.signals_history_size, group.signals_history_window_s),
        clock=node.clock,
        engine=engine,
        feed_ready=lambda: node.ready,
        faults=node.faults,
        max_symbols=group.signals_max_symbols,
        is_known=node.is_known,
    )
    if group.signals_redis_url:
        service.add_source(
            RedisSource(
                group.signals_redis_url.get_secret_value(),
                group.signals_channel,
                # every node of a cluster hears the channel; the leader alone ingests
                lambda data: service.ingest(data, "redis") if primary() else None,
                on_change=service.check,
                clock=node.clock,
            )
        )
    node.publisher.tap(service.on_published, name="signals")
    node.metrics.registry.register(service.collector())
    node.add_service(service)
    return service


def add_monitoring(
    node: Node,
    settings: Settings,
    signals: SignalService,
    guard: Guard,
    publisher: Publisher | None = None,
) -> MonitoringService:
    """Build the monitoring service over ``node``: it samples the node's counters, the
    feed, the dead letters (the providers' and ``signals``'), the open connections of
    every front (``guard``'s rosters) and the host, evaluates the alert rules and
    publishes the monitoring streams through the node's publisher; it starts and stops
    with the node. The caller hands it to the monitoring front and routes."""
    sources = Sources(
        stats=node.stats,
        faults=node.faults,
        hub_counts=lambda: (node.hub.published, node.hub.deliveries),
        gauges=node.gauges,
        feed=node.supervisor,
        letters={
            "providers": ProviderLetters(node.dead_letters),
            "signals": SignalLetters(signals),
        },
        latency=node.metrics.latency,
        gc=node.metrics.gc_pauses,
        connections=lambda: {name: len(held) for name, held in guard.rosters.items()},
        disk_path=_disk_path(settings.database_url),
    )
    service = MonitoringService(
        publisher or node.publisher, settings.monitoring, sources, clock=node.clock
    )
    node.add_service(service)
    return service


def add_leaderboard(
    node: Node,
    settings: Settings,
    portfolios: PortfolioService,
    publisher: Publisher | None = None,
) -> LeaderboardService:
    """Build the public leaderboard over ``node``, after ``portfolios`` (it starts once
    the portfolios are loaded): it ranks the values the portfolio service publishes
    (a tap on the node's publisher), learns of opt-ins and opt-outs from it, computes
    only the views someone watches (the hub's first/last-subscriber hooks) and publishes
    them through the node's publisher. The caller hands it to the front and the routes."""
    group = settings.leaderboard
    service = LeaderboardService(
        node.engine,
        portfolios,
        publisher or node.publisher,
        clock=node.clock,
        window_s=group.leaderboard_window_ms / 1000,
        snapshot_s=group.leaderboard_snapshot_s,
        snapshot_limit=group.leaderboard_snapshot_limit,
        faults=node.faults,
    )
    node.publisher.tap(service.on_published, name="leaderboard")
    portfolios.on_public(service.on_public)
    service.follow(node.hub)
    node.add_service(service)
    return service


def join_cluster(
    cluster: Cluster,
    node: Node,
    portfolios: PortfolioService,
    signals: SignalService,
    guard: Guard,
) -> None:
    """Make ``node``'s services a cluster's: the leader alone publishes what is computed
    on a timer (portfolio values, workers' statuses; the leaderboard and the monitoring
    are given a gated publisher), a committed portfolio write is reloaded by every other
    node, and the connection caps count every node's connections. The cluster is the
    node's last service: it starts once the others are loaded, and stops first."""
    portfolios.primary = signals.primary = lambda: cluster.leading
    portfolios.on_committed = lambda portfolio_id: cluster.changed("portfolio", [portfolio_id])
    reloader = Reloader(portfolios)
    cluster.on_changed("portfolio", reloader.ask)
    node.add_service(reloader)
    cluster.count_users(guard.users)
    cluster.count_users(guard.paths)
    cluster.figures = lambda: realtime_web.figures(guard.rosters)
    node.metrics.registry.register(cluster.collector())
    node.add_service(cluster)


class Reloader:
    """Reloads portfolios another node wrote, one reload at a time (two reads of one
    portfolio must not finish in the other order), the requests queued meanwhile merged:
    ids, or None for every portfolio (after this node missed what it was told)."""

    def __init__(self, portfolios: PortfolioService) -> None:
        self.portfolios = portfolios
        self._ids: set[int] = set()
        self._all = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def ask(self, ids: list[int] | None) -> None:
        self.portfolios.hold(ids)  # not published before it is read back
        if ids is None:
            self._all = True
        else:
            self._ids.update(ids)
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="portfolio-reloads")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            ids, everything = self._ids, self._all
            self._ids, self._all = set(), False
            try:
                await self.portfolios.reload(None if everything else sorted(ids))
            except Exception:  # the database is away: the next request tries again
                log.exception("reloading portfolios written by another node failed")


def solo_snapshot(node: Node, node_id: str) -> dict[str, Any]:
    """``GET /cluster`` of a node alone (``bus_url`` memory://): it leads itself."""
    return {
        "node": node_id,
        "leader": node_id,
        "epoch": node.hub.epoch,
        "token": 0,
        "role": "leader",
        "lease": None,
        "nodes": [
            {
                "node": node_id,
                "role": "leader",
                "leader": node_id,
                "epoch": node.hub.epoch,
                "connections": len(node.connections),
                "subscriptions": node.hub.subscription_count,
                "last_seen_s": 0.0,
            }
        ],
        "bus": {"backend": "memory", "connected": True},
        "ready": node.ready,
    }


def _disk_path(database_url: str) -> str:
    """Whose disk the metrics show: a SQLite database's directory, else the working one."""
    if database_url.startswith("sqlite") and ":///" in database_url:
        path = os.path.dirname(os.path.abspath(database_url.split(":///", 1)[1] or "."))
        if os.path.isdir(path):
            return path
    return "."


def node_id_of(settings: Settings) -> str:
    """This node's id: ``node_id``, else ``<host name>:<port>``."""
    return settings.node_id or f"{socket.gethostname()}:{settings.port}"


def cluster_node(settings: Settings, **kwargs: Any) -> Node:
    """A node whose publisher is a cluster's (``Node``'s arguments otherwise)."""
    node_id = node_id_of(settings)

    def publisher(sequencer: Any, hub: Any, faults: Any, *, clock: Any) -> ClusterPublisher:
        return ClusterPublisher(
            sequencer,
            hub,
            faults,
            clock=clock,
            node=node_id,
            codec=wire.Codec(hub.channels),
            send=lambda kind, data: None,  # the cluster sets its own
        )

    return Node(settings, publisher=publisher, **kwargs)


def build_app(
    settings: Settings, node: Node | None = None, *, bus: Bus | None = None
) -> WebSocketDispatch:
    """The ASGI application: health, readiness, metrics, the feed's state and the fronts.

    ``node``: a bare ``Node`` (tests pass one with their own providers); its services
    are added here. ``bus``: the bus joining this node to others; by default the one
    ``bus_url`` names, none for ``memory://`` (a node alone). A node of a cluster is
    built with ``cluster_node``."""
    if bus is None and bus_backend(settings.bus_url.get_secret_value()) != "memory":
        clock = node.clock if node is not None else SYSTEM
        bus = create_bus(settings.bus_url.get_secret_value(), clock=clock)
    if node is None:
        node = cluster_node(settings) if bus is not None else Node(settings)
    cluster = None
    gated: Publisher | None = None
    if bus is not None:
        cluster = Cluster(
            node,
            bus,
            settings.cluster,
            node_id=node_id_of(settings),
            url=f"http://{settings.host}:{settings.port}",
        )
        leading = cluster  # not Optional in the closures
        gated = Gated(node.publisher, lambda: leading.leading)
    portfolios = add_portfolios(node, settings)
    signals = add_signals(node, settings, cluster)
    leaderboard = add_leaderboard(node, settings, portfolios, gated)
    is_known = realtime.tradable(node.is_known, portfolios)
    if settings.jwt_secret is not None:
        jwt_secret = settings.jwt_secret.get_secret_value()
    else:
        jwt_secret = new_jwt_secret()
        log.warning(
            "no jwt_secret set: tokens are signed with a key of this process only "
            "(they die with it, and other nodes reject them); set TICKCAST_JWT_SECRET"
        )
    guard = Guard(
        settings.limits,
        settings.auth,
        Identity(node.engine, jwt_secret, settings.jwt_ttl_s),
        node.stats,
    )

    monitoring = add_monitoring(node, settings, signals, guard, gated)
    if cluster is not None:
        join_cluster(cluster, node, portfolios, signals, guard)

    async def cluster_state(_: Request) -> Response:
        if cluster is not None:
            return JSONResponse(cluster.snapshot())
        return JSONResponse(solo_snapshot(node, node_id_of(settings)))

    def elsewhere() -> realtime_web.Elsewhere | None:
        if cluster is None:
            return None
        return realtime_web.Elsewhere(*cluster.others())

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def ready(_: Request) -> Response:
        body = {
            "ready": node.ready,
            "providers": [p.name for p in node.providers],
            "active_provider": node.supervisor.active or None,
            "connections": len(node.connections),
        }
        return JSONResponse(body, status_code=200 if node.ready else 503)

    async def feed(_: Request) -> Response:
        supervisor = node.supervisor
        body = {
            "active": supervisor.active or None,
            "providers": [
                {"name": name, "state": state.value} for name, state in supervisor.states().items()
            ],
            "failovers": node.stats.failovers,
            "failbacks": node.stats.failbacks,
            "dead_letters": node.dead_letters.total,
        }
        return JSONResponse(body)

    async def dead_letters(request: Request) -> Response:
        try:
            limit = min(1000, max(0, int(request.query_params.get("limit", "100"))))
        except ValueError:
            return JSONResponse({"error": "limit must be an integer"}, status_code=400)
        letters = node.dead_letters.recent(limit)
        return Response(msgspec.json.encode(letters), media_type="application/json")

    async def signal_dead_letters(request: Request) -> Response:
        try:
            limit = min(1000, max(0, int(request.query_params.get("limit", "100"))))
        except ValueError:
            return JSONResponse({"error": "limit must be an integer"}, status_code=400)
        letters = signals.recent_dead_letters(limit)
        return Response(msgspec.json.encode(letters), media_type="application/json")

    async def signal_status(_: Request) -> Response:
        body = {
            "statuses": signals.statuses(),
            "history": len(signals.history),
            "dead_letters": sum(signals.dead_letter_totals.values()),
        }
        return Response(msgspec.json.encode(body), media_type="application/json")

    async def metrics(_: Request) -> Response:
        return Response(node.metrics.render(), media_type=CONTENT_TYPE)

    running: Node = node  # not Optional in the closure (mypy < 1.16 does not narrow there)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            await running.start()
        except BusError as exc:
            # The cause is outside the process (the bus cannot be reached): said in one
            # line, not as a traceback. ``on_fatal`` stops the server before it serves,
            # and ``tickcast serve`` prints the reason and exits 1.
            log.critical("cannot start: %s", exc)
            await running.aclose()
            running.fatal = exc
            if running.on_fatal is not None:
                running.on_fatal(exc)
            yield
            return
        try:
            yield
        finally:
            running.closing()  # a lease won from here on starts no feed
            for endpoint in sockjs:
                await endpoint.aclose()
            await socketio_endpoint.aclose()
            for front in contracted:
                await front.aclose()
            await guard.aclose()
            await running.aclose()

    # every front is on the contract: the registry's (the market feed...), and Fronts 2
    # and 3, built here because they are given the portfolio service
    specs = [
        *registry.specs(settings),
        realtime_spec(portfolios, settings),
        stomp.spec(settings, portfolios),
        monitoring_front.MonitoringSpec(
            monitoring, min(settings.monitoring.monitoring_interval_s, CACHE_S)
        ),
        LeaderboardSpec(leaderboard, settings.leaderboard),
    ]
    fronts: dict[str, ASGIApp] = {}
    contracted = _contract_fronts(specs, node, guard)
    for front in contracted:
        for path in front.spec.paths:
            if path in fronts:
                raise ConfigError(f"two fronts serve {path} (one is {front.spec.name!r})")
            fronts[path] = front
    sockjs = sockjs_endpoints(contracted, settings)
    socketio_endpoint = add_socketio(node, settings, guard, signals.history)
    routes: list[BaseRoute] = [
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics),
        Route("/feed", feed),
        Route("/cluster", cluster_state),
        Route("/feed/dead-letters", dead_letters),
        Route("/signals/status", signal_status),
        Route("/signals/dead-letters", signal_dead_letters),
        *realtime_web.routes(
            portfolios,
            guard,
            is_known=is_known,
            ready=lambda: node.ready,
            address=f"{settings.host}:{settings.port}",
            allow_anonymous=settings.allow_anonymous,
            elsewhere=elsewhere,
        ),
        *pages.routes(),
        *(WebSocketRoute(path, front) for path, front in fronts.items()),
        # after the realtime routes: /api/realtime/force_price_update/ is matched first
        mount_api(
            build_api(
                portfolios,
                node.engine,
                guard,
                is_known=is_known,
                symbols=node.symbols,
                allow_anonymous=settings.allow_anonymous,
                signals=signals,
                monitoring=monitoring,
                leaderboard=LeaderboardRoutes(leaderboard, settings.leaderboard),
            )
        ),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.node = node
    app.state.guard = guard
    app.state.portfolios = portfolios  # for tests and tools: the app is given it, never reads it
    app.state.leaderboard = leaderboard  # likewise
    app.state.signals = signals  # likewise; its ``history`` is what a front catches up from
    app.state.monitoring = monitoring  # likewise (tests evaluate it on demand)
    return WebSocketDispatch(
        app,
        fronts,
        TrustedProxies(settings.trusted_proxies, settings.forwarded_headers),
        mounts={
            **{endpoint.prefix: endpoint for endpoint in sockjs},
            socketio_endpoint.prefix: socketio_endpoint,
        },
    )


def add_socketio(
    node: Node, settings: Settings, guard: Guard, history: SignalHistory
) -> socketio_front.SocketIOEndpoint:
    """Front 5 (Socket.IO at ``/socket.io/``) over the node's hub; ``history`` (the
    signal service's) is what a client catches up from (``last_signal_id``)."""
    front = WebSocketFront(socketio_front.SocketIOSpec(), front_context(node, guard))
    return socketio_front.SocketIOEndpoint(front, settings.signals, history)


def sockjs_endpoints(fronts: list[WebSocketFront], settings: Settings) -> list[SockJSEndpoint]:
    """A SockJS endpoint for each front ``SOCKJS_PREFIXES`` names, with the settings'
    heartbeat, disconnect delay and response limit."""
    options = SockJSOptions(
        heartbeat_s=settings.sockjs_heartbeat_s,
        disconnect_delay_s=settings.sockjs_disconnect_delay_s,
        response_limit=settings.sockjs_response_limit,
    )
    return [
        SockJSEndpoint(front, SOCKJS_PREFIXES[front.spec.name], options)
        for front in fronts
        if front.spec.name in SOCKJS_PREFIXES
    ]


def realtime_spec(portfolios: PortfolioService, settings: Settings) -> realtime.RealtimeSpec:
    """Front 2 over ``portfolios``, with its settings."""
    return realtime.RealtimeSpec(
        portfolios,
        cache_timeout_s=settings.cache_timeout_s,
        allow_anonymous=settings.allow_anonymous,
        auth_timeout_s=settings.auth_timeout_s,
    )


def _contract_fronts(specs: list[FrontSpec], node: Node, guard: Guard) -> list[WebSocketFront]:
    """An endpoint for each front (fronts/base.py), over one context."""
    ctx = front_context(node, guard)
    return [WebSocketFront(spec, ctx) for spec in specs]


def front_context(node: Node, guard: Guard | None) -> FrontContext:
    """What a front on the contract may use of ``node``: the one place it is assembled
    (``guard`` None serves unguarded). Its clock and pumps are the node's (tests give
    the node a manual clock: ``Node(..., clock=)``)."""
    settings = node.settings
    return FrontContext(
        hub=node.hub,
        publisher=node.publisher.publish,
        pumps=node.pumps,
        clock=node.clock,
        stats=node.stats,
        faults=node.faults,
        latency=node.metrics.latency.observe,
        guard=guard,
        server=settings.server,
        limits=settings.limits,
        outbox=settings.outbox,
        connections=node.connections,
        is_known=node.is_known,
    )
