"""``tickcast``: the command line.

Settings come from defaults < a TOML file (``--config`` or ``TICKCAST_CONFIG``) <
``TICKCAST_*`` environment variables < the flags given here.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from tickcast import __version__
from tickcast.config.load import load_settings
from tickcast.config.settings import Settings
from tickcast.errors import BusError, ConfigError
from tickcast.storage.records import ROLES

#: Every endpoint ``serve`` answers, for ``serve --help``: (method, path, what it is).
#: ``WS`` is a WebSocket; ``SOCKJS`` is SockJS's routes (HTTP and WebSocket) under a
#: prefix, ``SIO`` Socket.IO's (Engine.IO polling and WebSocket); ``/...`` ends a path
#: prefix. A test compares this list with
#: the application's routes both ways: add an endpoint there, list it here.
SERVE_ENDPOINTS: Final = (
    ("GET", "/", "landing page: links to all of these"),
    ("GET", "/realtime/dashboard/", "live dashboard: quotes, your portfolios"),
    ("GET", "/realtime/test/", "WebSocket test page"),
    ("GET", "/analytics/", "positions, unrealized P&L, quotes over STOMP + SockJS"),
    ("GET", "/operations/", "operations: alerts, metrics, pipeline, telemetry (operators)"),
    ("GET", "/static/...", "the pages' scripts and styles, Swagger UI"),
    ("WS", "/ws/market/feed", "market feed: quotes, trades, bars, books"),
    ("WS", "/ws/realtime/", "realtime envelope: assets, portfolios"),
    ("WS", "/stomp/websocket", "STOMP 1.2 over WebSocket: market data, your positions"),
    ("SOCKJS", "/stomp/...", "STOMP over SockJS: new SockJS('http://host:port/stomp')"),
    ("SIO", "/socket.io/...", "Socket.IO: trading signals, io('http://host:port')"),
    ("WS", "/ws/updates", "leaderboard: snapshot, then rank changes"),
    ("WS", "/ws/top", "leaderboard: the best n (?n=10)"),
    ("WS", "/ws/around", "leaderboard: around one (?portfolio_id=&window=5)"),
    ("WS", "/ws/echo", "echo, for conformance tests (test_echo)"),
    ("WS", "/ws/alerts", "monitoring (operators): alerts, each frame an array"),
    ("WS", "/ws/metrics", "monitoring (operators): CPU, memory, disk, network"),
    ("WS", "/ws/pipeline", "monitoring (operators): providers and the hub"),
    ("WS", "/ws/telemetry", "monitoring (operators): connections, rates, latency, GC"),
    ("WS", "/ws/dlq", "monitoring (operators): dead letters as they arrive"),
    ("GET", "/health", "the process is up, its version"),
    ("GET", "/ready", "200 once market data flows, else 503"),
    ("GET", "/metrics", "Prometheus metrics"),
    ("GET", "/feed", "the active provider, each one's state"),
    ("GET", "/feed/dead-letters", "unparseable upstream messages (?limit=)"),
    ("GET", "/cluster", "the nodes, the leader, the epoch, the lease and the bus"),
    ("GET", "/signals/status", "the signal workers' statuses"),
    ("GET", "/signals/dead-letters", "refused signals from Redis (?limit=)"),
    ("GET", "/realtime/websocket-info/", "how to connect to /ws/realtime/"),
    ("GET", "/realtime/status/", "connection and subscription counts"),
    ("POST", "/api/realtime/force_price_update/", "publish asset updates now"),
    ("GET", "/api/docs", "the HTTP API in Swagger UI"),
    ("GET", "/api/openapi.json", "the HTTP API's OpenAPI description"),
    ("POST", "/api/auth/token", "an API key in, a JWT out"),
    ("GET", "/api/me", "who the caller is"),
    ("GET", "/api/portfolios", "your portfolios, valued live"),
    ("POST", "/api/portfolios", "create a portfolio"),
    ("GET", "/api/portfolios/{portfolio_id}", "one, with its positions"),
    ("PATCH", "/api/portfolios/{portfolio_id}", "opt in to the leaderboard, or out"),
    ("GET", "/api/portfolios/{portfolio_id}/positions", "its positions"),
    ("GET", "/api/portfolios/{portfolio_id}/transactions", "its transactions"),
    ("POST", "/api/portfolios/{portfolio_id}/transactions", "record a buy or a sell"),
    ("POST", "/api/portfolios/{portfolio_id}/deposits", "deposit cash"),
    ("POST", "/api/portfolios/{portfolio_id}/withdrawals", "withdraw cash"),
    ("GET", "/api/portfolios/{portfolio_id}/cash-transactions", "its deposits and withdrawals"),
    ("GET", "/api/assets", "known assets, prices, previous closes"),
    ("POST", "/api/signals", "publish a trading signal (publish:signals key)"),
    ("GET", "/api/signals", "recent trading signals (?symbol=&since=&limit=)"),
    ("GET", "/api/leaderboard", "the public leaderboard (as /ws/updates)"),
    ("GET", "/api/leaderboard/top", "its best n (?n=10)"),
    ("GET", "/api/leaderboard/around/{portfolio_id}", "around one (?window=5)"),
    ("GET", "/api/monitoring/alerts", "alerts (operators; ?resolved=true|false)"),
    ("GET", "/api/monitoring/metrics", "the latest system metrics (operators)"),
    ("GET", "/api/monitoring/pipeline", "the latest pipeline figures (operators)"),
    ("GET", "/api/monitoring/telemetry", "the latest telemetry (operators)"),
    ("GET", "/api/monitoring/dlq", "the current dead letters (operators)"),
)


def _endpoints_help() -> str:
    width = max(len(path) for _, path, _ in SERVE_ENDPOINTS)
    lines = [f"  {method:<6} {path:<{width}}  {what}" for method, path, what in SERVE_ENDPOINTS]
    return "\n".join(
        [
            "endpoints, at http://HOST:PORT (WS: a WebSocket, at ws://HOST:PORT):",
            *lines,
            "",
            "Settings: defaults < --config FILE < TICKCAST_* environment < these flags.",
        ]
    )


def _serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway (HTTP, WebSockets, the feed with failover)",
        description="Run the gateway: the WebSocket fronts, the HTTP API, the pages and\n"
        "the operations endpoints, fed by the configured providers (with failover).",
        epilog=_endpoints_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--config", help="TOML settings file (default: $TICKCAST_CONFIG)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8000)")
    serve.add_argument(
        "--symbols",
        help="comma-separated simulator universe "
        "(default AAPL,MSFT,GOOGL,AMZN,TSLA,NVDA,SPY,BTC/USDT,ETH/USDT)",
    )
    serve.add_argument(
        "--rate", type=float, help="simulator quote ticks per second, all symbols (default 50)"
    )
    serve.add_argument(
        "--batch-ms",
        type=float,
        dest="batch_ms",
        help="batching window per client in ms; 0 = write every event-loop pass (default 100)",
    )
    serve.add_argument("--seed", type=int, help="simulator random seed (default 42)")
    serve.add_argument(
        "--calendar",
        help="'always' (market always open, default) or an exchange code such as XNYS",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="seed the demo user and portfolios (idempotent) and print the dashboard URL "
        "with a fresh demo API key",
    )
    _feed_flags(serve)
    _database_url_flag(serve)
    _cluster_flags(serve)
    _log_flags(serve)


def _cluster_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--bus",
        dest="bus_url",
        metavar="URL",
        help="what joins the gateway nodes: memory:// (one process, the default), "
        "redis://host:port/db or nats://host:port ($TICKCAST_BUS_URL)",
    )
    serve.add_argument(
        "--bus-prefix",
        dest="bus_prefix",
        help="prefix of every bus subject and key, so that two clusters can share one "
        "Redis or NATS (default tickcast)",
    )
    serve.add_argument(
        "--node-id",
        dest="node_id",
        help="this node's name in the cluster (default HOSTNAME:PORT; with --workers, "
        "each worker's is this with -w1, -w2, ...)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="gateway processes sharing HOST:PORT (SO_REUSEPORT), each a node of the "
        "cluster: more than 1 needs --bus redis://... or nats://... (default 1)",
    )


def _log_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", dest="log_level", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", dest="log_format", choices=["json", "console"])


def _feed_flags(parser: argparse.ArgumentParser) -> None:
    from tickcast.providers.registry import names

    parser.add_argument(
        "--feed",
        help="providers in order of preference, comma-separated, e.g. alpaca,polygon,simulator "
        f"(known: {', '.join(names())}; default simulator). Credentials come from "
        "ALPACA_API_KEY_ID / ALPACA_API_SECRET_KEY / POLYGON_API_KEY in the environment",
    )
    parser.add_argument(
        "--replay-file", dest="replay_file", help="recording for the replay provider"
    )
    parser.add_argument(
        "--replay-speed",
        dest="replay_speed",
        type=float,
        help="replay speed: 1 = real time (default), N = N times faster, 0 = flat out",
    )
    parser.add_argument(
        "--replay-loop",
        dest="replay_loop",
        action="store_const",
        const=True,
        help="start the replay over at the end of the file",
    )


def _ingest_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_, description=help_)
    parser.add_argument("--config", help="TOML settings file (default: $TICKCAST_CONFIG)")
    parser.add_argument("--symbols", help="comma-separated universe (default: the simulator's)")
    parser.add_argument("--calendar", help="'always' (default) or an exchange code such as XNYS")
    parser.add_argument("--rate", type=float, help="simulator ticks per second (default 50)")
    parser.add_argument("--seed", type=int, help="simulator random seed (default 42)")
    _feed_flags(parser)
    _log_flags(parser)
    return parser


def _feed_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    feed = _ingest_parser(
        commands,
        "feed",
        "run the price-feed service on its own: ingest with failover, write the latest "
        "prices as JSON lines every --interval",
    )
    feed.add_argument(
        "--interval", type=float, default=1.0, help="seconds between price batches (default 1)"
    )
    feed.add_argument(
        "--batch-size",
        dest="batch_size",
        type=int,
        help="most prices per written batch (default: the batch_size setting, 100)",
    )
    feed.add_argument("--out", default="-", help="file to append to (default - : stdout)")
    feed.add_argument("--verbose", action="store_true", help="log every batch written")


def _record_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    record = _ingest_parser(
        commands, "record", "record what the feed delivers to a JSON-lines file, for replay"
    )
    record.add_argument("--out", required=True, help="the recording to write")
    record.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: never)"
    )
    record.add_argument(
        "--count", type=int, default=0, help="stop after this many events (0: never)"
    )


def _emulate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    emulate = commands.add_parser(
        "emulate",
        help="serve a vendor's stream protocol (alpaca, polygon) from the simulator",
        description="Serve Alpaca's v2 market-data stream or Polygon's stocks stream from "
        "the simulator, for offline development and CI. Credentials: the same environment "
        "variables as the adapters, else emulator-key / emulator-secret. Fault control: "
        "GET /emulator/fault/<drop|silent|malformed|slow|resume>?duration=S on the same port.",
    )
    emulate.add_argument("vendor", choices=["alpaca", "polygon"])
    emulate.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    emulate.add_argument("--port", type=int, default=8765, help="listen port (default 8765)")
    emulate.add_argument("--symbols", help="comma-separated universe (default: the vendor's)")
    emulate.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    emulate.add_argument("--rate", type=float, default=50.0, help="ticks per second (default 50)")
    emulate.add_argument(
        "--faults",
        default="",
        help="scripted faults, e.g. 'drop@30,silent@60:10,malformed@90,slow@120'",
    )
    emulate.add_argument(
        "--connection-limit",
        dest="connection_limit",
        type=int,
        default=1,
        help="connections allowed per key (default 1, as both vendors)",
    )
    emulate.add_argument(
        "--delayed", action="store_true", help="polygon: the 15-minute delayed cluster"
    )
    _log_flags(emulate)


def _database_url_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        dest="database_url",
        help="the accounts and portfolios database, e.g. postgresql+asyncpg://user@host/db "
        "(default sqlite tickcast.db; $TICKCAST_DATABASE_URL)",
    )


def _database_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML settings file (default: $TICKCAST_CONFIG)")
    _database_url_flag(parser)
    _log_flags(parser)


def _users_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser("users", help="user accounts", description="User accounts.")
    actions = users.add_subparsers(dest="users_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a user", description="Create a user.")
    create.add_argument("username", help="1 to 64 printable characters, no spaces")
    create.add_argument(
        "--role",
        choices=ROLES,
        default="user",
        help="user (default), or operator: may read the monitoring streams (/ws/alerts...)",
    )
    _database_flags(create)
    set_role = actions.add_parser(
        "set-role",
        help="give a user a role (user or operator)",
        description="Give a user a role. Its API keys carry it at once (within 30 s: the "
        "gateway's key cache); a token issued before keeps the role it was issued with "
        "until it expires.",
    )
    set_role.add_argument("username")
    set_role.add_argument("role", choices=ROLES)
    _database_flags(set_role)
    listing = actions.add_parser(
        "list", help="every user, with its role", description="List the users and their roles."
    )
    _database_flags(listing)


def _keys_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser(
        "keys",
        help="API keys (stored hashed: a key is shown once, when it is created)",
        description="API keys. The database keeps a key's prefix and a hash of its secret.",
    )
    actions = keys.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="mint a key for a user; printed once, alone on stdout",
        description="Mint an API key for a user. It is printed once, alone on stdout.",
    )
    create.add_argument("--user", required=True, help="the key's owner")
    create.add_argument("--label", default="default", help="what the key is for (default)")
    create.add_argument(
        "--permission",
        dest="permissions",
        action="append",
        default=[],
        metavar="NAME",
        help="what the key may do beyond reading (repeatable): publish:signals "
        "(POST /api/signals); none by default",
    )
    _database_flags(create)
    listing = actions.add_parser(
        "list", help="a user's keys (prefixes, never secrets)", description="List a user's keys."
    )
    listing.add_argument("--user", required=True, help="the keys' owner")
    _database_flags(listing)
    revoke = actions.add_parser(
        "revoke", help="revoke a key by its prefix", description="Revoke an API key."
    )
    revoke.add_argument(
        "prefix", help="the key as `keys list` names it (tc_ and 12 characters), or the whole key"
    )
    _database_flags(revoke)


def _update_prices_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "update-prices",
        help="one-time update of the assets' prices from the configured feed",
        description="Run the configured feed until every symbol has a price (or --timeout), "
        "then write the assets' prices in one transaction.",
    )
    parser.add_argument(
        "--symbols", help="comma-separated symbols to update (default: the feed's universe)"
    )
    parser.add_argument(
        "--historical",
        action="store_true",
        help="also build daily closes and set each asset's previous close (simulator only)",
    )
    parser.add_argument("--days", type=int, help="days of history for --historical (default 30)")
    parser.add_argument(
        "--dry-run", dest="dry_run", action="store_true", help="print what would be written"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the prices (default 30)"
    )
    parser.add_argument("--calendar", help="'always' (default) or an exchange code such as XNYS")
    parser.add_argument("--rate", type=float, help="simulator ticks per second (default 50)")
    parser.add_argument("--seed", type=int, help="simulator random seed (default 42)")
    _feed_flags(parser)
    _database_flags(parser)


def _demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="seed the demo user, API key and portfolios (idempotent)",
        description="Seed the user 'demo', an API key and three portfolios, then print "
        "the dashboard URL. Running it again changes nothing (add --new-key for a key).",
    )
    demo.add_argument(
        "--new-key",
        dest="new_key",
        action="store_true",
        help="mint a new demo API key (the earlier demo keys are revoked)",
    )
    demo.add_argument("--host", help="where `serve` listens, for the URL (default 127.0.0.1)")
    demo.add_argument("--port", type=int, help="where `serve` listens (default 8000)")
    _database_flags(demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickcast", description="tickcast, the real-time market-data gateway."
    )
    parser.add_argument("--version", action="version", version=f"tickcast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(commands)
    _feed_parser(commands)
    _record_parser(commands)
    _emulate_parser(commands)
    _users_parser(commands)
    _keys_parser(commands)
    _update_prices_parser(commands)
    _demo_parser(commands)
    from tickcast.cli import loadgen, tail

    tail.add_parser(commands)
    loadgen.add_parser(commands)
    return parser


#: The simulator's bar length under ``serve --demo`` when ``simulator_bar_s`` is not set:
#: the signal rules need 15 (RSI) to 22 (crossover) bars before their first signal.
DEMO_BAR_S = 5


def demo_settings(settings: Settings) -> Settings:
    """``settings`` for the demo: short simulator bars unless the user chose a length."""
    if "simulator_bar_s" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"simulator_bar_s": DEMO_BAR_S})


def serve(settings: Settings, *, demo: bool = False, sock: socket.socket | None = None) -> int:
    """Run the gateway until SIGTERM or SIGINT; the exit status.

    ``sock``: a bound socket to listen on (a ``--workers`` worker's, with
    ``SO_REUSEPORT``) instead of binding ``host``:``port`` here.
    """
    import uvicorn

    from tickcast.app import build_app
    from tickcast.observability.logs import configure_logging
    from tickcast.transport.uvicorn_protocols import protocol_classes

    configure_logging(settings.log_level, settings.log_format)
    if demo:
        from tickcast.cli.accounts import Refused, prepare_demo

        try:
            hint = prepare_demo(settings)  # before the node loads its portfolios
        except Refused as exc:
            print(f"tickcast serve: {exc}", file=sys.stderr)
            return 1
        # printed, not logged: the log filter redacts query strings, and this one
        # carries the demo key on purpose (for the person who just ran the command)
        print(hint, file=sys.stderr, flush=True)
        settings = demo_settings(settings)
    http, ws = protocol_classes(
        handshake_timeout_s=settings.handshake_timeout_s,
        close_timeout_s=settings.close_timeout_s,
    )
    app = build_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=http,
        ws=ws,
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=settings.permessage_deflate,
        ws_ping_interval=settings.ws_ping_interval_s or None,
        ws_ping_timeout=settings.ws_ping_timeout_s or None,
        timeout_graceful_shutdown=int(settings.close_timeout_s) + 1,
        access_log=False,
        # Who the client is behind a proxy is decided once, in the app, by
        # trusted_proxies and forwarded_headers (web/proxyheaders.py: X-Forwarded-* or Forwarded);
        # uvicorn's own rewrite (X-Forwarded-For/-Proto from forwarded_allow_ips, which
        # defaults to 127.0.0.1) stays off so that the two never disagree.
        proxy_headers=False,
        log_config=None,
        lifespan="on",
        backlog=4096,
    )
    # uvicorn re-raises the signal that stopped it once shutdown is complete, which
    # would end the process "killed by SIGTERM"; a clean drain should exit 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _ignore)
    node = app.state.node
    server = uvicorn.Server(config)
    node.on_fatal = lambda exc: setattr(server, "should_exit", True)
    server.run(sockets=None if sock is None else [sock])
    if isinstance(node.fatal, BusError):
        print(f"tickcast serve: cannot start: {node.fatal}", file=sys.stderr)
        return 1
    if node.fatal is not None:
        print(f"tickcast serve: the feed cannot deliver: {node.fatal}", file=sys.stderr)
        return 1
    return 0


def _ignore(signum: int, frame: object) -> None:
    pass


#: Flags of each command that are not settings.
_COMMAND_FLAGS = {
    "serve": ("demo", "workers"),
    "feed": ("interval", "batch_size", "out", "verbose"),
    "record": ("out", "duration", "count"),
    "users": ("users_action", "username", "role"),
    "keys": ("keys_action", "user", "label", "prefix", "permissions"),
    "update-prices": ("symbols", "historical", "days", "dry_run", "timeout"),
    "demo": ("new_key",),
}
#: Commands on accounts and prices: quiet logs (warnings) unless --log-level is given.
_ACCOUNT_COMMANDS = frozenset({"users", "keys", "update-prices", "demo"})


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader went away (`tickcast users list | head`): no traceback; what is
        # left of stdout goes nowhere, so that closing it at exit raises nothing either
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # as a shell reports a command ended by SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    options = vars(args)
    command = options.pop("command")
    if command == "emulate":
        return _emulate(options)
    if command == "tail":
        from tickcast.cli import tail

        return tail.run(options)
    if command == "loadgen":
        from tickcast.cli import loadgen

        return loadgen.run(options)
    # pop(name, None): an action's parser (keys revoke) lacks the other actions' flags
    flags = {name: options.pop(name, None) for name in _COMMAND_FLAGS.get(command, ())}
    config_file = options.pop("config", None)
    try:
        settings = load_settings(config_file, options)
        if command == "serve":
            return _serve(settings, demo=bool(flags["demo"]), workers=flags["workers"])
        if command in _ACCOUNT_COMMANDS:
            quiet = options.get("log_level") is None
            return _accounts(command, settings, flags, quiet=quiet)
        return _ingest(command, settings, flags)
    except ConfigError as exc:
        print(f"tickcast: {exc}", file=sys.stderr)
        return 2


def _serve(settings: Settings, *, demo: bool, workers: int) -> int:
    from tickcast.cli import workers as pool

    pool.check(workers, settings.bus_url.get_secret_value())
    if workers == 1:
        return serve(settings, demo=demo)
    return pool.supervise(settings, workers, demo=demo)


def _ingest(command: str, settings: Settings, flags: dict[str, Any]) -> int:
    from tickcast.cli import feedcmds
    from tickcast.observability.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    if command == "feed":
        if flags["batch_size"] is None:
            flags["batch_size"] = settings.batch_size
        if flags["interval"] <= 0 or flags["batch_size"] < 1:
            raise ConfigError("--interval must be > 0 and --batch-size >= 1")
        return feedcmds.run_feed(settings.upstream, **flags)
    if command == "record":
        return feedcmds.run_record(
            settings.upstream,
            out=Path(flags["out"]),
            duration=flags["duration"],
            count=flags["count"],
        )
    raise AssertionError(command)  # argparse only accepts known commands


def _accounts(command: str, settings: Settings, flags: dict[str, Any], *, quiet: bool) -> int:
    from tickcast.cli import accounts, prices
    from tickcast.observability.logs import configure_logging

    configure_logging("warning" if quiet else settings.log_level, settings.log_format)
    if command == "users":
        return accounts.run_users(
            settings, flags["users_action"], flags["username"] or "", role=flags["role"] or "user"
        )
    if command == "keys":
        return accounts.run_keys(
            settings,
            flags["keys_action"],
            user=flags["user"],
            label=flags["label"] or accounts.DEFAULT_LABEL,
            prefix=flags["prefix"],
            permissions=flags["permissions"] or (),
        )
    if command == "demo":
        return accounts.run_demo(settings, new_key=bool(flags["new_key"]))
    if command == "update-prices":
        if flags["days"] is not None and not flags["historical"]:
            raise ConfigError("--days needs --historical")
        symbols = flags["symbols"]
        return prices.run_update_prices(
            settings,
            [s for s in symbols.split(",") if s.strip()] if symbols else None,
            (flags["days"] or 30) if flags["historical"] else None,
            bool(flags["dry_run"]),
            timeout_s=flags["timeout"],
        )
    raise AssertionError(command)  # argparse only accepts known commands


def _emulate(options: dict[str, Any]) -> int:
    from tickcast.cli import emulate
    from tickcast.observability.logs import configure_logging

    configure_logging(options["log_level"] or "info", options["log_format"] or "console")
    symbols = options["symbols"]
    try:
        server = emulate.build(
            options["vendor"],
            host=options["host"],
            port=options["port"],
            symbols=[s.strip() for s in symbols.split(",") if s.strip()] if symbols else None,
            seed=options["seed"],
            rate=options["rate"],
            faults=options["faults"],
            connection_limit=options["connection_limit"],
            delayed=options["delayed"],
        )
    except ValueError as exc:
        print(f"tickcast emulate: {exc}", file=sys.stderr)
        return 2
    return emulate.run(server)


if __name__ == "__main__":
    sys.exit(main())
