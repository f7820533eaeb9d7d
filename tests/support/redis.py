"""A ``redis-server`` of a test's own, on a free port, stopped and started at will: for
fault tests that take Redis away (the machine's shared Redis is never stopped)."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

#: The longest a start or a stop is waited for (a busy 2-core machine included).
TIMEOUT_S = 60.0


@dataclass
class PrivateRedis:
    """A ``redis-server`` of this test's own, stopped and started at will."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
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
        client = Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TIMEOUT_S
            while True:
                try:
                    await client.ping()
                    return
                except Exception:
                    if loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()


#: The machine's shared Redis (never stopped or flushed by a test).
SHARED_URL = "redis://127.0.0.1:6379/0"


def require_redis(url: str = SHARED_URL) -> None:
    """Skip when Redis cannot be reached; under ``CI=true`` fail (CI must provide it)."""
    import os

    import pytest
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis at {url} is not available: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        client.close()
