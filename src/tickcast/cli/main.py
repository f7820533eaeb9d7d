"""``tickcast``: the command line.

Settings come from defaults < a TOML file (``--config`` or ``TICKCAST_CONFIG``) <
``TICKCAST_*`` environment variables < the flags given here.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from tickcast import __version__
from tickcast.config.load import load_settings
from tickcast.config.settings import Settings
from tickcast.errors import ConfigError


def _serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway (HTTP, WebSockets, built-in simulator)",
        description="Run the gateway: /ws/market/feed, /health, /ready, /metrics.",
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
        "--log-level", dest="log_level", choices=["debug", "info", "warning", "error"]
    )
    serve.add_argument("--log-format", dest="log_format", choices=["json", "console"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickcast", description="tickcast, the real-time market-data gateway."
    )
    parser.add_argument("--version", action="version", version=f"tickcast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(commands)
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
    config = uvicorn.Config(
        build_app(settings),
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
    uvicorn.Server(config).run()
    return 0


def _ignore(signum: int, frame: object) -> None:
    pass


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = vars(args)
    command = options.pop("command")
    config_file = options.pop("config", None)
    try:
        settings = load_settings(config_file, options)
    except ConfigError as exc:
        print(f"tickcast: {exc}", file=sys.stderr)
        return 2
    if command == "serve":
        return serve(settings)
    raise AssertionError(command)  # argparse only accepts known commands


if __name__ == "__main__":
    sys.exit(main())
