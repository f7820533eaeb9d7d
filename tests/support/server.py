"""A real `tickcast serve` process on a free port, for integration tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

TESTS = Path(__file__).resolve().parents[1]
#: ``python -c`` program for ``start_server(setup=...)``: call ``module:function``, then
#: run the ``tickcast`` command line as ``python -m tickcast`` would.
_SETUP_THEN_CLI = (
    "import importlib, sys; "
    "module, _, function = sys.argv.pop(1).partition(':'); "
    "getattr(importlib.import_module(module), function)(); "
    "from tickcast.cli.main import main; "
    "sys.exit(main(sys.argv[1:]))"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_file: BinaryIO

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def feed(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/market/feed"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.http}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """SIGTERM (or ``signum``), as a deployment would; kill if not gone in 15 s."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signum)
                try:
                    return self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            return self.proc.wait(timeout=5)
        finally:
            self.log_file.close()


def start_server(
    tmp_path: Path,
    *,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    args: Sequence[str] = (),
    setup: str | None = None,
    **settings: object,
) -> Server:
    """Start `python -m tickcast serve` with TICKCAST_* settings; wait until /ready.

    ``extra_env`` adds variables that are not settings (vendor credentials); ``port``
    reuses a port (a restart), else a free one is picked; ``args`` are more flags.
    ``setup`` ("module:function", importable from tests/) runs in the server process
    before it starts: a test registers a front of its own that way.
    """
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    env.setdefault("TICKCAST_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/tickcast.db")
    env.update({f"TICKCAST_{k.upper()}": str(v) for k, v in settings.items()})
    env.update(extra_env or {})
    program = [sys.executable, "-m", "tickcast"]
    if setup is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
        program = [sys.executable, "-c", _SETUP_THEN_CLI, setup]
    log_path = tmp_path / f"server-{port}.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [*program, "serve", "--port", str(port), *args],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, port, log_path, log_file)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.http}/ready", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server not ready in 30 s:\n{server.log()}")
