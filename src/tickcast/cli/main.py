"""``tickcast``: the command line.

Settings come from defaults < a TOML file (``--config`` or ``TICKCAST_CONFIG``) <
``TICKCAST_*`` environment variables < the flags given here.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tickcast import __version__
from tickcast.config.load import load_settings
from tickcast.config.settings import Settings
from tickcast.errors import ConfigError


def _serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway (HTTP, WebSockets, the feed with failover)",
        description="Run the gateway: /ws/market/feed, /health, /ready, /metrics, /feed.",
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
    _feed_flags(serve)
    _log_flags(serve)


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
    return parser


def serve(settings: Settings) -> int:
    import uvicorn

    from tickcast.app import build_app
    from tickcast.observability.logs import configure_logging
    from tickcast.transport.uvicorn_protocols import protocol_classes

    configure_logging(settings.log_level, settings.log_format)
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
    server.run()
    if node.fatal is not None:
        print(f"tickcast serve: the feed cannot deliver: {node.fatal}", file=sys.stderr)
        return 1
    return 0


def _ignore(signum: int, frame: object) -> None:
    pass


#: Flags of each command that are not settings.
_COMMAND_FLAGS = {
    "feed": ("interval", "batch_size", "out", "verbose"),
    "record": ("out", "duration", "count"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = vars(args)
    command = options.pop("command")
    if command == "emulate":
        return _emulate(options)
    flags = {name: options.pop(name) for name in _COMMAND_FLAGS.get(command, ())}
    config_file = options.pop("config", None)
    try:
        settings = load_settings(config_file, options)
        if command == "serve":
            return serve(settings)
        return _ingest(command, settings, flags)
    except ConfigError as exc:
        print(f"tickcast: {exc}", file=sys.stderr)
        return 2


def _ingest(command: str, settings: Settings, flags: dict[str, Any]) -> int:
    from tickcast.cli import feedcmds
    from tickcast.observability.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    if command == "feed":
        if flags["batch_size"] is None:
            flags["batch_size"] = settings.batch_size
        if flags["interval"] <= 0 or flags["batch_size"] < 1:
            raise ConfigError("--interval must be > 0 and --batch-size >= 1")
        return feedcmds.run_feed(settings, **flags)
    if command == "record":
        return feedcmds.run_record(
            settings, out=Path(flags["out"]), duration=flags["duration"], count=flags["count"]
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
