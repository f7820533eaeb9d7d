"""A ``nats-server`` of a test's own (JetStream on), on a free port, stopped and started
at will: for fault tests that take NATS away (the machine's shared NATS is never
stopped). Its JetStream data lives in the test's directory, so a restart keeps it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: The longest a start or a stop is waited for (a busy 2-core machine included).
TIMEOUT_S = 60.0


@dataclass
class PrivateNats:
    """A ``nats-server -js`` of this test's own, stopped and started at will."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "nats-server",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.workdir / "jetstream"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=TIMEOUT_S)
        self.proc = None

    async def ready(self) -> None:
        """Wait until the server answers a PING on its client port."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT_S
        while True:
            try:
                if await asyncio.wait_for(_pong(self.port), 5):
                    return
            except (OSError, TimeoutError):
                pass
            if loop.time() > deadline:
                raise TimeoutError(f"nats-server on port {self.port} did not start")
            await asyncio.sleep(0.05)


async def _pong(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, family=socket.AF_INET)
    try:
        await reader.readline()  # INFO {...}
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        await writer.drain()
        return (await reader.readline()).startswith(b"PONG")
    finally:
        writer.close()
        await writer.wait_closed()
