"""A real `tickcast emulate <vendor>` process on a free port, driven by its control endpoint;
and ``released``, to wait for an in-process emulator to let go of a connection."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from support.server import free_port
from tickcast.emulators.base import EmulatorServer


@dataclass
class Emulator:
    vendor: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_file: BinaryIO

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def state(self) -> dict[str, Any]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/emulator/state", timeout=5)
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    def inject(self, fault: str, duration_s: float = 0.0) -> None:
        url = f"http://127.0.0.1:{self.port}/emulator/fault/{fault}?duration={duration_s}"
        httpx.get(url, timeout=5).raise_for_status()

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        finally:
            self.log_file.close()


def start_emulator(vendor: str, tmp_path: Path, *args: str) -> Emulator:
    """Start `python -m tickcast emulate <vendor>` on a free port; wait until it answers."""
    port = free_port()
    log_path = tmp_path / f"emulator-{vendor}-{port}.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickcast", "emulate", vendor, "--port", str(port), *args],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    emulator = Emulator(vendor, proc, port, log_path, log_file)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited {proc.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            emulator.state()
            return emulator
        time.sleep(0.1)
    emulator.stop()
    raise RuntimeError(f"emulator not up in 20 s:\n{log_path.read_text()}")


async def released(server: EmulatorServer, key: str = "emulator-key", wait_s: float = 5.0) -> None:
    """Wait until the in-process emulator ``server`` has let go of ``key``'s connection."""
    async with asyncio.timeout(wait_s):
        while not server.claim(key):  # noqa: ASYNC110 - claims have no event to wait on
            await asyncio.sleep(0.01)
    server.release(key)
