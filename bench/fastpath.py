"""The WebSocket fast path against the ASGI path, in one run: memory per idle subscribed
connection and connects per second.

    PYTHONPATH=src .venv/bin/python bench/fastpath.py                  # 2,000 connections
    PYTHONPATH=src .venv/bin/python bench/fastpath.py --clients 5000 --repeat 2

For each mode (``ws_fast_path`` on, then off; ``--repeat`` alternates them) a fresh
``tickcast serve`` (this checkout's ``src``, or the tree ``--src`` names; the simulator at
``--rate`` ticks/s over 100 symbols, 100 ms batching, no per-address cap) is started,
pinned to core 0. This process, pinned to core 1, opens ``--clients`` connections to the
market feed with picows (``--concurrency`` handshakes in flight), each subscribed to one
symbol: a connect is counted once its ``subscribed`` reply arrived. Then, after
``--settle`` seconds, the server's RSS; per connection: (RSS loaded - RSS before) /
connections. Also the server's CPU seconds over the connect phase, per 1,000 connects.
The connections are then closed and the server stopped (SIGTERM). Only 127.0.0.1 is
targeted; every child is killed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = [f"S{i:03d}" for i in range(100)]
TEXT = WSMsgType.TEXT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client(WSListener):  # type: ignore[misc]
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: WSTransport | None = None
        self.received = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        payload = json.dumps({"action": "subscribe", "symbols": [self.symbol]}).encode()
        transport.send(TEXT, payload)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("closed before subscribed"))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            return
        data = frame.get_payload_as_bytes()
        if b'"subscribed"' in data and not self.subscribed.done():
            self.subscribed.set_result(None)
        else:
            self.received += 1


def start_server(
    port: int, fast: bool, rate: float, workdir: Path, cpu: int, src: Path = ROOT / "src"
) -> subprocess.Popen[Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    env.update(
        PYTHONPATH=str(src),
        TICKCAST_WS_FAST_PATH="true" if fast else "false",
        TICKCAST_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS="0",
        TICKCAST_DATABASE_URL=f"sqlite+aiosqlite:///{workdir}/bench-{port}.db",
        TICKCAST_LOG_LEVEL="warning",
    )
    command = [
        sys.executable, "-m", "tickcast", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--symbols", ",".join(SYMBOLS), "--rate", f"{rate:g}", "--batch-ms", "100",
    ]  # fmt: skip
    log = open(workdir / f"server-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    with contextlib.suppress(psutil.Error, AttributeError):
        psutil.Process(proc.pid).cpu_affinity([cpu])
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: see {workdir}/server-{port}.log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the server was not ready in 60 s")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


async def connect_all(url: str, n: int, concurrency: int) -> tuple[list[Client], float]:
    """Open ``n`` subscribed connections; them and the seconds it took."""
    gate = asyncio.Semaphore(concurrency)
    clients: list[Client] = []

    async def one(i: int) -> None:
        async with gate:
            _, client = await ws_connect(lambda: Client(SYMBOLS[i % len(SYMBOLS)]), url)
            clients.append(client)
            await asyncio.wait_for(client.subscribed, 30)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return clients, time.perf_counter() - t0


async def measure(fast: bool, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    port = free_port()
    proc = start_server(port, fast, args.rate, workdir, args.server_cpu, args.src)
    try:
        server = psutil.Process(proc.pid)
        await asyncio.sleep(args.settle)
        rss_before = server.memory_info().rss
        cpu0 = sum(server.cpu_times()[:2])
        url = f"ws://127.0.0.1:{port}/ws/market/feed"
        clients, took = await connect_all(url, args.clients, args.concurrency)
        cpu1 = sum(server.cpu_times()[:2])
        await asyncio.sleep(args.settle)
        rss_loaded = server.memory_info().rss
        received = sum(c.received for c in clients)
        for client in clients:
            if client.transport is not None:
                client.transport.send_close()
                client.transport.disconnect()
        return {
            "mode": "fast path" if fast else "ASGI path",
            "clients": len(clients),
            "connects_per_s": round(len(clients) / took),
            "server_cpu_ms_per_1k_connects": round(1e6 * (cpu1 - cpu0) / len(clients), 1),
            "rss_before_mb": round(rss_before / 2**20, 1),
            "rss_loaded_mb": round(rss_loaded / 2**20, 1),
            "rss_per_conn_kb": round((rss_loaded - rss_before) / len(clients) / 1024, 2),
            "updates_received": received,
        }
    finally:
        stop(proc)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    with contextlib.suppress(psutil.Error, AttributeError):
        psutil.Process().cpu_affinity([args.client_cpu])
    rows = []
    with tempfile.TemporaryDirectory(prefix="tickcast-fastpath-") as tmp:
        for _ in range(args.repeat):
            for fast in (True, False):
                row = await measure(fast, args, Path(tmp))
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=50, help="handshakes in flight")
    p.add_argument("--rate", type=float, default=10.0, help="simulator ticks/s in total")
    p.add_argument("--settle", type=float, default=3.0, help="s before each RSS reading")
    p.add_argument("--repeat", type=int, default=1, help="rounds of (fast, ASGI)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--src", default=str(ROOT / "src"), help="the source tree the server runs")
    args = p.parse_args()
    args.src = Path(args.src).resolve()
    limit = args.clients + 1024
    with contextlib.suppress(ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < limit:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
