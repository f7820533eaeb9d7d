"""``tickcast tail`` in a real terminal (tmux: send-keys, capture-pane) against a real
``tickcast serve``, restarted under it; and ``tickcast loadgen`` against the same.

tmux must be installed (.ci/run installs it); without it the test is skipped, or fails
under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.server import Server, start_server
from tickcast.client import Quote, connect_sync

WAIT_S = 30.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class Tmux:
    """A private tmux server (its own socket), one session running one command."""

    def __init__(self, tmp_path: Path) -> None:
        self.socket = str(tmp_path / "tmux.sock")

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, check=False
        )

    def start(self, command: list[str]) -> None:
        env = [f"{k}={v}" for k, v in os.environ.items() if k in ("PYTHONPATH", "PATH")]
        # the pane's own size, not a COLUMNS the test runner may have inherited
        shell = " ".join(["env", "-u", "COLUMNS", "-u", "LINES", *env, *command])
        done = self("new-session", "-d", "-s", "t", "-x", "140", "-y", "30", shell)
        assert done.returncode == 0, done.stderr
        self("set-option", "-t", "t", "remain-on-exit", "on")

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "t").stdout

    def wait(self, condition: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + WAIT_S
        while True:
            text = self.screen()
            if condition(text):
                return text
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{text}"
            time.sleep(0.2)

    def dead(self) -> bool:
        return self("display-message", "-p", "-t", "t", "#{pane_dead}").stdout.strip() == "1"

    def kill(self) -> None:
        self("kill-server")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        _unavailable("tmux is not installed")
    terminal = Tmux(tmp_path)
    try:
        yield terminal
    finally:
        terminal.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _row(screen: str, symbol: str) -> list[str]:
    for line in screen.splitlines():
        cells = [c.strip() for c in line.replace("│", "|").split("|") if c.strip()]
        if cells and cells[0] == symbol:
            return cells
    return []


def _priced(screen: str, symbol: str) -> bool:
    cells = _row(screen, symbol)
    return len(cells) >= 8 and cells[1] != "-"


def test_tail_shows_live_quotes_and_comes_back_after_a_restart(
    tmux: Tmux, server: Server, tmp_path: Path
) -> None:
    tmux.start(
        [sys.executable, "-m", "tickcast", "tail", "AAPL", "MSFT", "BTC/USDT", "--url", server.feed]
    )
    screen = tmux.wait(
        lambda s: all(_priced(s, sym) for sym in ("AAPL", "MSFT", "BTC/USDT")) and "connected" in s,
        "a priced row per symbol",
    )
    assert "spread" in screen
    assert "reconnects 0" in screen
    bid, ask, spread = (float(c.replace(",", "")) for c in _row(screen, "AAPL")[4:7])
    assert spread == pytest.approx(ask - bid, abs=0.02)

    port = server.port
    server.stop()
    tmux.wait(lambda s: "reconnecting" in s, "the status line to say so")
    again = start_server(tmp_path, port=port)
    try:
        tmux.wait(lambda s: "connected  |  reconnects 1" in s, "the reconnect")
        tmux("send-keys", "-t", "t", "C-c")
        deadline = time.monotonic() + WAIT_S
        while not tmux.dead():
            assert time.monotonic() < deadline, "tail did not end on Ctrl-C"
            time.sleep(0.1)
    finally:
        again.stop()
    assert "Traceback" not in tmux.screen()


def test_loadgen_reports_deliveries_latency_and_errors(server: Server) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "tickcast", "loadgen", "--url", server.feed, "--clients", "4",
            "--symbols-per-client", "2", "--duration", "2", "--json",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["clients_connected"] == 4
    assert report["delivered"] > 0
    assert report["latency_ms"]["p50"] is not None
    assert report["errors"] == {}
    assert report["reconnects"] == 0


def test_loadgen_counts_clients_the_gateway_refuses_and_says_why(tmp_path: Path) -> None:
    capped = start_server(tmp_path, max_anonymous_connections_per_address=2)
    try:
        done = subprocess.run(
            [
                sys.executable, "-m", "tickcast", "loadgen", "--url", capped.feed,
                "--clients", "4", "--symbols-per-client", "1", "--duration", "1",
                "--max-attempts", "2", "--json",
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        capped.stop()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["clients_connected"] == 2
    # the two over the cap gave up after their attempts, each with the gateway's words
    [(error, count)] = report["errors"].items()
    assert count == 2
    assert error.startswith("FeedGaveUp: 2 connection attempts failed; the last: 3001")
    assert "Too many anonymous connections" in error


def test_the_synchronous_client_reads_a_real_server(server: Server) -> None:
    with connect_sync(server.feed) as feed:
        feed.subscribe(["aapl"], channels=["quotes"])
        deadline = time.monotonic() + WAIT_S
        message = None
        while not isinstance(message, Quote):
            assert time.monotonic() < deadline, "no quote"
            message = feed.get(timeout=1.0)
        assert message.symbol == "AAPL"
        assert feed.stats.connected
    assert not feed.stats.connected
