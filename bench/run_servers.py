"""bench/run.py's servers and the processes it starts: each server's definition (command
line, environment, URLs, how its ticks are counted), starting it and the load client
pinned to their cores, waiting until ready, stopping them, and their CPU and RSS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
TICKCAST = str(Path(PY).parent / "tickcast")
NODE_DIR = BENCH / "peers" / "node_ws"
NSYMBOLS = 100
SYMBOLS = ",".join(f"S{i:03d}" for i in range(NSYMBOLS))
SERVER_CPU, CLIENT_CPU = 0, 1


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    kind: str  # tickcast | fastapi | socketio | node
    batch_ms: int = 0
    array: bool = False
    #: tickcast's front: native (Front 1), stomp (STOMP over WebSocket), sockjs-ws or
    #: sockjs-xhr (STOMP over SockJS's websocket or xhr_streaming transport), socketio
    #: (Front 5, Socket.IO's websocket transport, quotes as ``quote`` events)
    front: str = "native"
    #: ``tickcast serve --workers N`` (0: the flag is not given); the processes are one
    #: server to the harness (CPU and RSS summed over the process tree)
    workers: int = 0
    #: the bus joining the workers: "" (the in-process memory bus), "redis" or "nats"
    bus: str = ""
    #: the WebSocket path before the fast path (``ws_fast_path = false``: each connection
    #: a task reading uvicorn's ASGI queue), for the before/after rows
    asgi: bool = False
    #: the simulator's wake-up cadence, ms (``simulator_interval_ms``): 1, as the peers'
    #: tick loops (a 1 ms sleep between passes), so that every server gets its ticks on
    #: the same cadence; 0 = tickcast's default (one wake-up every 5 ms at these rates)
    sim_ms: float = 1.0

    @property
    def opt_in(self) -> bool:
        """Run only when named in ``--servers`` (the workers need Redis or NATS; the ASGI
        path, the default simulator cadence and a 1 ms window are comparisons)."""
        return self.workers > 0 or self.asgi or not self.sim_ms or self.batch_ms not in (0, 100)

    @property
    def w1_only(self) -> bool:
        """A variant of a front's wire, measured in W1 only."""
        return self.array or self.front != "native"

    @property
    def conflated(self) -> bool:
        return self.kind == "tickcast" and self.batch_ms > 0

    @property
    def track_latest(self) -> bool:
        """Batch 0 still conflates within one event-loop pass: also measure latest-value."""
        return self.kind == "tickcast" and self.batch_ms == 0

    @property
    def protocol(self) -> str:
        return "socketio" if self.kind == "socketio" else self.front

    @property
    def mode(self) -> str:
        if self.kind != "tickcast":
            return "per tick, per-subscriber send"
        mode = f"batch {self.batch_ms} ms, conflated" if self.batch_ms else "batch 0 (low latency)"
        wire = {
            "stomp": ", STOMP over WebSocket",
            "sockjs-ws": ", STOMP over SockJS websocket",
            "sockjs-xhr": ", STOMP over SockJS xhr-streaming",
            "socketio": ", Socket.IO (websocket transport)",
        }.get(self.front, "")
        if self.workers:
            over = f" over {self.bus}" if self.bus else " (memory bus)"
            wire += f", {self.workers} worker{'s' if self.workers > 1 else ''}{over}"
        if self.asgi:
            wire += ", ASGI path (ws_fast_path off)"
        if not self.sim_ms:
            wire += ", simulator every 5 ms"
        return mode + (", array frames" if self.array else "") + wire

    def command(self, port: int, rate: float) -> list[str]:
        if self.kind == "tickcast":
            return [
                TICKCAST, "serve", "--host", "127.0.0.1", "--port", str(port),
                "--symbols", SYMBOLS, "--rate", f"{rate:g}", "--batch-ms", str(self.batch_ms),
                "--seed", "1", "--log-level", "warning", *self.workers_args(port),
            ]  # fmt: skip
        common = ["--host", "127.0.0.1", "--port", str(port), "--nsymbols", str(NSYMBOLS),
                  "--rate", f"{rate:g}"]  # fmt: skip
        if self.kind == "node":
            return ["node", str(NODE_DIR / "server.js"), *common]
        return [PY, str(BENCH / "peers" / f"{self.kind}_peer.py"), *common]

    def workers_args(self, port: int) -> list[str]:
        """``--workers N`` and the bus: a prefix of this run's own (pid and port), so that
        nothing is shared with another run or test on the same Redis or NATS."""
        if not self.workers:
            return []
        args = ["--workers", str(self.workers)]
        if self.bus:
            args += ["--bus", BUS_URLS[self.bus], "--bus-prefix", f"bench-{os.getpid()}-{port}"]
        return args

    def env(self) -> dict[str, str]:
        """The server's environment: tickcast's per-address cap on anonymous connections
        is lifted, since every benchmark client connects from 127.0.0.1."""
        if self.kind != "tickcast":
            return dict(os.environ)
        env = {**os.environ, "TICKCAST_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS": "0"}
        if self.asgi:
            env["TICKCAST_WS_FAST_PATH"] = "false"
        env["TICKCAST_SIMULATOR_INTERVAL_MS"] = f"{self.sim_ms:g}"
        return env

    def ws_url(self, port: int) -> str:
        if self.kind == "socketio" or self.front == "socketio":
            return f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        if self.front == "stomp":
            return f"ws://127.0.0.1:{port}/stomp/websocket"
        if self.front.startswith("sockjs"):
            return f"http://127.0.0.1:{port}/stomp"
        return f"ws://127.0.0.1:{port}/ws/market/feed" + ("?frames=array" if self.array else "")

    def stats(self, port: int, rate: float) -> tuple[str, str]:
        if self.kind == "tickcast":
            # tickcast's simulator stamps tick k at start + k / rate, so the schedule is the
            # exact ground truth (tickcast_events_in_total{kind="quote"} counts the same
            # ticks, but a scrape can only be stamped to within its HTTP round trip).
            # Skipped ticks count as not delivered.
            return f"http://127.0.0.1:{port}/metrics", f"schedule:{rate:g}"
        return f"http://127.0.0.1:{port}/stats", "peer"


#: The bus engines a ``--workers`` server is run over (the shared services on 127.0.0.1).
BUS_URLS = {"redis": "redis://127.0.0.1:6379/0", "nats": "nats://127.0.0.1:4222"}

SERVERS = {
    s.name: s
    for s in [
        Server("tickcast-b100", "tickcast", batch_ms=100),
        Server("tickcast-b0", "tickcast", batch_ms=0),
        Server("tickcast-b100-asgi", "tickcast", batch_ms=100, asgi=True),
        Server("tickcast-b0-asgi", "tickcast", batch_ms=0, asgi=True),
        Server("tickcast-b0-sim5", "tickcast", batch_ms=0, sim_ms=0),
        Server("tickcast-b1", "tickcast", batch_ms=1),
        Server("tickcast-b100-array", "tickcast", batch_ms=100, array=True),
        Server("tickcast-b100-stomp", "tickcast", batch_ms=100, front="stomp"),
        Server("tickcast-b100-sockjs-ws", "tickcast", batch_ms=100, front="sockjs-ws"),
        Server("tickcast-b100-sockjs-xhr", "tickcast", batch_ms=100, front="sockjs-xhr"),
        Server("tickcast-b100-socketio", "tickcast", batch_ms=100, front="socketio"),
        Server("tickcast-b0-socketio", "tickcast", batch_ms=0, front="socketio"),
        Server("fastapi", "fastapi"),
        Server("socketio", "socketio"),
        Server("node-ws", "node"),
        Server("tickcast-b0-w1", "tickcast", batch_ms=0, workers=1),
        Server("tickcast-b0-w2-redis", "tickcast", batch_ms=0, workers=2, bus="redis"),
        Server("tickcast-b0-w2-nats", "tickcast", batch_ms=0, workers=2, bus="nats"),
        Server("tickcast-b100-w1", "tickcast", batch_ms=100, workers=1),
        Server("tickcast-b100-w2-redis", "tickcast", batch_ms=100, workers=2, bus="redis"),
    ]
}


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

_children: list[subprocess.Popen[Any]] = []


NICE = [0]  # --nice: scheduling priority of the server and the load client
#: --server-cpus, --client-cpus: the cores each side is pinned to
PIN: dict[int, set[int]] = {SERVER_CPU: {SERVER_CPU}, CLIENT_CPU: {CLIENT_CPU}}


def pinned_default() -> bool:
    return {SERVER_CPU: {SERVER_CPU}, CLIENT_CPU: {CLIENT_CPU}} == PIN


def _preexec(cpu: int) -> Callable[[], None]:
    cpus = {c for c in PIN.get(cpu, {cpu}) if c < (os.cpu_count() or 1)}

    def setup() -> None:
        if NICE[0]:
            with contextlib.suppress(OSError):
                os.nice(NICE[0])
        with contextlib.suppress(OSError):
            if cpus:
                os.sched_setaffinity(0, cpus)
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    return setup


def spawn(cmd: list[str], cpu: int, log: Path, **kw: Any) -> subprocess.Popen[Any]:
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stderr=err,
            stdout=kw.pop("stdout", err),
            preexec_fn=_preexec(cpu),
            start_new_session=True,
            **kw,
        )
    _children.append(proc)
    return proc


def kill(proc: subprocess.Popen[Any], grace: float = 3.0) -> None:
    """Stop one child we started (its own process group, by id): TERM, then KILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
    if proc in _children:
        _children.remove(proc)


def kill_all() -> None:
    for proc in list(_children):
        kill(proc, 1.0)


def _on_signal(signum: int, _frame: Any) -> None:
    kill_all()
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen[Any], port: int, log: Path, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail}")
        url = f"http://127.0.0.1:{port}/ready"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as r:
            if r.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"server not ready on port {port} after {timeout:.0f} s")


def wait_workers(port: int, workers: int, timeout: float = 45.0) -> None:
    """Wait until ``workers`` distinct workers answer ``/cluster`` (each request a new
    connection, which the kernel hashes to a worker), each seeing them all and a leader:
    a worker not yet listening would otherwise be given none of the clients."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=1.0) as r,
        ):
            doc = json.loads(r.read())
            if len(doc.get("nodes", [])) >= workers and doc.get("leader"):
                seen.add(str(doc["node"]))
        if len(seen) >= workers:
            return
        time.sleep(0.05)
    raise TimeoutError(
        f"{len(seen)} of {workers} workers ready on port {port} after {timeout:.0f} s"
    )


def worker_connections(port: int) -> dict[str, int]:
    """Each worker's client connections, from ``/cluster`` (one worker's view of all)."""
    with (
        contextlib.suppress(OSError, ValueError),
        urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=2.0) as r,
    ):
        return {str(n["node"]): int(n["connections"]) for n in json.loads(r.read())["nodes"]}
    return {}


class Tree:
    """A server's process and its children (a ``--workers`` supervisor's workers): CPU
    and RSS summed, each process's CPU counted from when it was first seen."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc

    def procs(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [self.proc, *self.proc.children(recursive=True)]
        return [self.proc]

    def cpu(self) -> dict[int, float]:
        """Busy seconds (user + system) per pid."""
        out: dict[int, float] = {}
        for p in self.procs():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
        return out

    def rss(self) -> int:
        total = 0
        for p in self.procs():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """Busy seconds between two ``Tree.cpu`` readings (a process born between them
    counts from 0; one that ended between them is not counted)."""
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


class LineReader:
    """JSON lines from the client's stdout, read on a thread so every wait can time out."""

    def __init__(self, proc: subprocess.Popen[Any]) -> None:
        self.q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.proc = proc
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.q.put(json.loads(line))
        self.q.put(None)

    def wait_for(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"load client: no {event!r} within {timeout:.0f} s")
            try:
                msg = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if msg is None:
                raise RuntimeError(f"load client exited before {event!r}")
            if msg.get("event") == "result" and event != "result":
                raise RuntimeError(f"load client failed: {msg.get('error', msg)}")
            if msg.get("event") == event:
                return msg


def core_busy() -> list[float]:
    """Busy seconds per CPU since boot (everything but idle and iowait)."""
    return [sum(t) - t.idle - getattr(t, "iowait", 0.0) for t in psutil.cpu_times(percpu=True)]


# ---------------------------------------------------------------------------------------------
# The load client
# ---------------------------------------------------------------------------------------------

#: --client: the load client asked for ("python" or "c"), and the C client's binary once
#: built (bench/cclient/build.py: from source with gcc, into a cache directory)
CLIENT: dict[str, Any] = {"asked": "python", "binary": None}


def client_for(server: Server, stats_kind: str) -> str:
    """The load client that measures ``server``: the C one when asked for, built, and the
    server speaks what it speaks (the native protocol; schedule or peer stats), else
    the Python one (every protocol)."""
    if CLIENT["asked"] != "c" or CLIENT["binary"] is None:
        return "python"
    if server.protocol != "native" or stats_kind.startswith("prom:"):
        return "python"
    return "c"


def client_command(client: str) -> list[str]:
    """The command line of the load client, before its flags (both take the same)."""
    if client == "c":
        return [str(CLIENT["binary"])]
    return [PY, str(BENCH / "loadclient.py")]


def setup_client(asked: str) -> None:
    """Build the C client if asked for; without gcc (or if it fails to build) say so and
    measure with the Python client."""
    CLIENT["asked"] = asked
    if asked != "c":
        return
    spec = importlib.util.spec_from_file_location("cclient_build", BENCH / "cclient" / "build.py")
    assert spec is not None
    assert spec.loader is not None
    build: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    try:
        CLIENT["binary"] = build.binary()
    except build.BuildError as exc:
        print(f"[bench] {exc}; measuring with the Python client", flush=True)
        return
    print(f"[bench] load client: {CLIENT['binary']} (C, native protocol)", flush=True)


def ensure_node() -> bool:
    if not shutil.which("node"):
        print("[bench] node not found: skipping node-ws", flush=True)
        return False
    if not (NODE_DIR / "node_modules" / "ws").exists():
        print("[bench] npm ci in bench/peers/node_ws ...", flush=True)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )
    return True
