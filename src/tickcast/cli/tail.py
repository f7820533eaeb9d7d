"""``tickcast tail AAPL MSFT BTC/USDT``: a live terminal table of the market feed.

Built on the SDK (``tickcast.client``): it reconnects, resumes and conflates as any SDK
user does, and shows it. One row per symbol: last price, change since the first quote of
this run (and in %), bid, ask, spread, the last trade (price x size) and the quote's
age; a status line under it: connected or not, reconnects, the latest message's latency,
quotes conflated, resets and gaps, the streams the server holds suspended; with
``--stamps``, where the latest message's time went (the market feed's latency stamps:
upstream, in the gateway, downstream). When the server degrades the client (it fell
behind), each suspended stream and each resumed one is printed as a line above the
table (``notice``).

``TailBoard`` (what the table shows, from the messages) and ``render`` are plain
functions of their inputs, with the wall time passed in; ``run`` is the driver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tickcast.client import (
    Degraded,
    Feed,
    FeedError,
    Message,
    Quote,
    Reset,
    Resumed,
    Stamps,
    Trade,
    connect,
)
from tickcast.client.streams import normalize

DEFAULT_URL = "ws://127.0.0.1:8000/ws/market/feed"


@dataclass
class Row:
    first: float | None = None
    quote: Quote | None = None
    trade: Trade | None = None


@dataclass
class TailBoard:
    """The table's state: a row per symbol (in the order asked), resets seen."""

    symbols: list[str]
    rows: dict[str, Row] = field(default_factory=dict)
    resets: int = 0
    last_reset: str = ""

    def __post_init__(self) -> None:
        self.rows = {s: Row() for s in self.symbols}

    def take(self, message: Message) -> str | None:
        """Fold ``message`` in; a line to print for a suspended or resumed stream."""
        if isinstance(message, Degraded | Resumed):
            return notice(message)
        if isinstance(message, Quote):
            row = self.rows.setdefault(message.symbol, Row())
            if row.first is None:
                row.first = message.price
            row.quote = message
        elif isinstance(message, Trade):
            self.rows.setdefault(message.symbol, Row()).trade = message
        elif isinstance(message, Reset):
            self.resets += 1
            self.last_reset = f"{message.topic} {message.reason}"
        return None


def notice(message: Degraded | Resumed) -> str:
    """A suspended or resumed stream, as one line: ``trades.AAPL degraded after seq 41
    (slow_consumer)``, ``trades.AAPL resumed at seq 57: 16 replayed``, ``trades.AAPL
    resumed at seq 90 after a reset``."""
    if isinstance(message, Degraded):
        reason = f" ({message.reason})" if message.reason else ""
        return f"{message.topic} degraded after seq {message.seq}{reason}"
    if message.how == "reset":
        return f"{message.topic} resumed at seq {message.seq} after a reset"
    return f"{message.topic} resumed at seq {message.seq}: {message.replayed} replayed"


def _num(value: float) -> str:
    return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"


def _age(seconds: float) -> str:
    if seconds < 0:
        seconds = 0.0
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.0f}m"


def render(board: TailBoard, feed: Feed | None, wall: float, url: str) -> Group:
    """The table and the status line, as of ``wall`` (epoch seconds)."""
    table = Table(title=f"tickcast tail  {url}", title_justify="left", expand=False)
    for name in ("symbol", "last", "change", "chg %", "bid", "ask", "spread", "trade", "age"):
        table.add_column(name, justify="left" if name == "symbol" else "right")
    for symbol, row in board.rows.items():
        q = row.quote
        if q is None:
            table.add_row(symbol, "-", "", "", "", "", "", "", "waiting")
            continue
        change = q.price - (row.first if row.first is not None else q.price)
        pct = change / row.first * 100 if row.first else 0.0
        style = "green" if change > 0 else "red" if change < 0 else ""
        trade = f"{_num(row.trade.price)} x {row.trade.size:g}" if row.trade else ""
        table.add_row(
            symbol,
            _num(q.price),
            Text(f"{change:+,.4f}", style=style),
            Text(f"{pct:+.2f}%", style=style),
            _num(q.bid),
            _num(q.ask),
            _num(q.ask - q.bid),
            trade,
            _age(wall - q.ts),
        )
    return Group(table, Text(status_line(board, feed)))


def status_line(board: TailBoard, feed: Feed | None) -> str:
    if feed is None:
        return "connecting..."
    s = feed.stats
    latency = f"{s.latency_ms:.0f} ms" if s.latency_ms is not None else "-"
    conflated = feed.conflation.total + feed.counters.server_conflated
    parts = [
        "connected" if s.connected else "reconnecting",
        f"reconnects {s.reconnects}",
        f"latency {latency}",
        f"conflated {conflated}",
        f"resets {board.resets}",
        f"gaps {feed.counters.gaps}",
    ]
    if feed.degraded:
        parts.append(f"degraded {len(feed.degraded)}")
    if s.stamps is not None:
        parts.append(stamps_text(s.stamps))
    if board.last_reset:
        parts.append(f"last reset {board.last_reset}")
    return "  |  ".join(parts)


def stamps_text(stamps: Stamps) -> str:
    """``upstream 0.4 ms, gateway 71.7 ms, downstream 0.3 ms`` ("-" where a time is
    missing)."""

    def ms(us: int | None) -> str:
        return "-" if us is None else f"{us / 1000:.1f} ms"

    return (
        f"upstream {ms(stamps.upstream_us)}, gateway {ms(stamps.gateway_us)}, "
        f"downstream {ms(stamps.downstream_us)}"
    )


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = commands.add_parser(
        "tail",
        help="a live table of quotes and trades from a tickcast market feed",
        description="Subscribe to SYMBOLS on a tickcast market feed and show a live "
        "table: price, change, spread, last trade, age; and the connection's status. "
        "It reconnects and resumes by itself. Ctrl-C ends it.",
    )
    tail.add_argument("symbols", nargs="+", metavar="SYMBOL", help="e.g. AAPL MSFT BTC/USDT")
    tail.add_argument("--url", default=DEFAULT_URL, help=f"the feed (default {DEFAULT_URL})")
    tail.add_argument(
        "--channels",
        default="quotes,trades",
        help="comma-separated channels (default quotes,trades)",
    )
    tail.add_argument("--token", help="a JWT or an API key (default: $TICKCAST_TOKEN)")
    tail.add_argument(
        "--duration", type=float, default=0.0, help="seconds, then exit (default: until Ctrl-C)"
    )
    tail.add_argument(
        "--stamps",
        action="store_true",
        help="ask for latency stamps and show where the latest message's time went: "
        "upstream (event to gateway), in the gateway, downstream (gateway to here)",
    )


def _symbols(options: dict[str, Any]) -> list[str]:
    return [s.strip().upper() for s in options["symbols"] if s.strip()]


def _channels(options: dict[str, Any]) -> list[str]:
    return [c.strip() for c in options["channels"].split(",") if c.strip()]


def run(options: dict[str, Any]) -> int:
    try:  # a mistyped channel or symbol is said in a line, not a traceback
        normalize(_symbols(options), _channels(options))
    except ValueError as exc:
        print(f"tickcast tail: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_tail(options))
    except KeyboardInterrupt:
        return 0
    except FeedError as exc:
        print(f"tickcast tail: {exc}", file=sys.stderr)
        return 1


async def _tail(options: dict[str, Any]) -> int:
    symbols = _symbols(options)
    channels = _channels(options)
    token = options.get("token") or os.environ.get("TICKCAST_TOKEN")
    url = options["url"]
    board = TailBoard(symbols)
    duration = float(options.get("duration") or 0.0)
    with Live(render(board, None, time.time(), url), refresh_per_second=4) as live:
        async with connect(url, token=token, stamps=bool(options.get("stamps"))) as feed:
            await feed.subscribe(symbols, channels=channels)

            async def refresh() -> None:
                while True:
                    live.update(render(board, feed, time.time(), url))
                    await asyncio.sleep(0.25)

            painter = asyncio.create_task(refresh())
            try:
                async with asyncio.timeout(duration or None):
                    async for message in feed:
                        line = board.take(message)
                        if line is not None:
                            live.console.print(line, markup=False, highlight=False)
            except TimeoutError:
                pass
            finally:
                painter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await painter
            live.update(render(board, feed, time.time(), url))
    return 0
