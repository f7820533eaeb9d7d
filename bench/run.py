"""Run the fan-out benchmark: tickcast and its peers, side by side, in one run.

    .venv/bin/python bench/run.py --quick                 # ~3 minute smoke of everything
    .venv/bin/python bench/run.py --write-docs            # full run, rewrites docs/performance.md
    .venv/bin/python bench/run.py --servers tickcast-b0,node-ws --workloads W1
    .venv/bin/python bench/run.py --workloads W1-socketio --rates 1000,2000,4000  # Front 5 ladder
    .venv/bin/python bench/run.py --workloads W2 --servers tickcast-b0-w1,tickcast-b0-w2-redis \
        --server-cpus 0,1 --client-cpus 0,1        # scale-out: 1 and 2 worker processes

Every server runs alone, pinned to core 0; the load client (bench/loadclient.py) runs in its
own process pinned to core 1 (``--server-cpus`` and ``--client-cpus`` change both: a
``--workers`` server's processes share the server's cores). The ``-w1``/``-w2`` servers
(``tickcast serve --workers N``, over Redis or NATS on 127.0.0.1 with a bus prefix of the
run's own) are run only when named in ``--servers``. Server CPU is the psutil cpu_times
delta over the measured window as % of one core (summed over a server's processes). Every
wait has a timeout; every child is started in its own process group and killed at exit, on
Ctrl-C and on any exception. Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import datetime as dt
import importlib.util
import json
import os
import platform
import queue
import resource
import shlex
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
RESULTS = BENCH / "results"
DOCS = ROOT / "docs" / "performance.md"
NSYMBOLS = 100
SYMBOLS = ",".join(f"S{i:03d}" for i in range(NSYMBOLS))
SERVER_CPU, CLIENT_CPU = 0, 1
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


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
# Workloads
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Load:
    clients: int
    per_client: int
    rate: float
    warmup: float
    duration: float
    probe_interval: float = 0.0
    drain_max: float = 15.0
    concurrency: int = 100


def workloads(quick: bool) -> dict[str, dict[str, Any]]:
    q = quick
    return {
        "W1": {
            "title": "W1: 500 clients x 10 of 100 symbols, 2,000 ticks/s (100,000 deliveries/s)",
            "load": Load(100 if q else 500, 10, 2000, 1 if q else 5, 3 if q else 20, 1.0),
            "servers": list(SERVERS),
        },
        "W2": {
            "title": "W2: tick-rate ramp, x1.5 per step, 500 clients x 10 symbols",
            "load": Load(500, 10, 250, 1 if q else 3, 3 if q else 10),
            "servers": [s for s in SERVERS if not SERVERS[s].w1_only],
            "factor": 1.5,
            "max_steps": 2 if q else 14,
            "budget_s": 40 if q else 480,
            "retries": 0 if q else 1,
        },
        "W3": {
            "title": "W3: 5,000 idle subscribed connections (10 ticks/s in total)",
            "load": Load(500 if q else 5000, 1, 10, 1 if q else 3, 3 if q else 5, 1.0, 2.0),
            "servers": [s for s in SERVERS if not SERVERS[s].w1_only],
        },
        "W4": {
            "title": "W4: 5,000 clients x 10 symbols, 200 ticks/s (about 20 messages/s each)",
            "load": Load(500 if q else 5000, 10, 200, 1 if q else 5, 3 if q else 20),
            "servers": [s for s in SERVERS if not SERVERS[s].w1_only],
        },
        "W1-socketio": {
            "title": "W1-socketio: saturation ladder, 500 Socket.IO clients x 10 of 100 symbols, "
            "tick rate raised per step (a fresh server per step)",
            "load": Load(100 if q else 500, 10, 1000, 1 if q else 5, 3 if q else 15),
            "servers": ["socketio", "tickcast-b0-socketio", "tickcast-b100-socketio"],
            "rates": [1000.0] if q else [1000.0, 2000.0, 4000.0],
        },
    }


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

_children: list[subprocess.Popen[Any]] = []


INTERLEAVE = [False]  # --interleave: W2's servers step by step rather than one by one
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


# ---------------------------------------------------------------------------------------------
# One measurement
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


def measure(server: Server, load: Load, tag: str, logs: Path) -> dict[str, Any]:
    """Start the server, run the load client against it once, stop both; one result row."""
    port = free_port()
    slog = logs / f"{tag}-server.log"
    clog = logs / f"{tag}-client.log"
    sproc = spawn(server.command(port, load.rate), SERVER_CPU, slog, env=server.env())
    cproc: subprocess.Popen[Any] | None = None
    row: dict[str, Any] = {"server": server.name, "mode": server.mode, **dataclasses.asdict(load)}
    try:
        wait_ready(sproc, port, slog)
        if server.workers > 1:
            wait_workers(port, server.workers)
        ps = Tree(psutil.Process(sproc.pid))
        time.sleep(1.0)
        rss_before = ps.rss()
        stats_url, stats_kind = server.stats(port, load.rate)
        timeout_connect = 60 + load.clients / 20
        client = client_for(server, stats_kind)
        row["client"] = client
        ccmd = [
            *client_command(client), "--url", server.ws_url(port),
            "--protocol", server.protocol, "--stats-url", stats_url, "--stats-kind", stats_kind,
            "--clients", str(load.clients), "--per-client", str(load.per_client),
            "--nsymbols", str(NSYMBOLS), "--warmup", f"{load.warmup:g}",
            "--duration", f"{load.duration:g}", "--probe-interval", f"{load.probe_interval:g}",
            "--drain-max", f"{load.drain_max:g}", "--concurrency", str(load.concurrency),
            "--connect-phase-timeout", f"{timeout_connect:g}",
        ] + (["--conflated"] if server.conflated else []) + (
            ["--track-latest"] if server.track_latest else [])  # fmt: skip
        cproc = spawn(ccmd, CLIENT_CPU, clog, stdout=subprocess.PIPE, text=True)
        lines = LineReader(cproc)
        lines.wait_for("connected", timeout_connect + 30)
        lines.wait_for("measure_start", load.warmup + 45)
        if server.workers > 1:  # after the warm-up: the heartbeats have told every count
            row["worker_connections"] = worker_connections(port)
        cpu0, t0, cores0 = ps.cpu(), time.monotonic(), core_busy()
        rss_loaded = ps.rss()
        lines.wait_for("measure_end", load.duration + 45)
        cpu1, t1, cores1 = ps.cpu(), time.monotonic(), core_busy()
        rss_end = ps.rss()
        result = lines.wait_for("result", load.drain_max + 120)
        rss_drained = ps.rss()
        busy = cpu_delta(cpu0, cpu1)
        row.update(result)
        row.pop("event", None)
        connected = max(1, int(result.get("clients_connected") or 1))
        wall = t1 - t0
        core_pct = [round(100.0 * (b - a) / wall, 1) for a, b in zip(cores0, cores1, strict=True)]
        client_pct = float(result.get("client_cpu_pct") or 0.0)
        pinned = pinned_default()
        row.update(
            server_cpu_pct=round(100.0 * busy / wall, 1),
            # CPU used by everything else on the two pinned cores (other tenants, kernel):
            # the machine is shared, so this says how much to trust a row.
            other_load_core0_pct=round(core_pct[SERVER_CPU] - 100.0 * busy / wall, 1)
            if len(core_pct) > SERVER_CPU and pinned
            else None,
            other_load_core1_pct=round(core_pct[CLIENT_CPU] - client_pct, 1)
            if len(core_pct) > CLIENT_CPU and pinned
            else None,
            # the same over every core (server and client not on one core each)
            other_load_all_pct=round(sum(core_pct) - 100.0 * busy / wall - client_pct, 1),
            server_rss_before_mb=round(rss_before / 2**20, 1),
            server_rss_mb=round(max(rss_loaded, rss_end) / 2**20, 1),
            # A server whose clients fall behind buffers for them: RSS at the start and end
            # of the window and after the drain shows whether that memory is bounded.
            server_rss_start_mb=round(rss_loaded / 2**20, 1),
            server_rss_end_mb=round(rss_end / 2**20, 1),
            server_rss_after_drain_mb=round(rss_drained / 2**20, 1),
            server_rss_per_conn_kb=round((rss_loaded - rss_before) / connected / 1024, 1),
        )
        if sproc.poll() is not None:
            row["error"] = f"server exited with {sproc.returncode} during the run"
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if cproc is not None:
            kill(cproc)
        kill(sproc)
    return row


def core_busy() -> list[float]:
    """Busy seconds per CPU since boot (everything but idle and iowait)."""
    return [sum(t) - t.idle - getattr(t, "iowait", 0.0) for t in psutil.cpu_times(percpu=True)]


#: Above this share of its core the load client, not the server, may be the limit: such a
#: row is flagged everywhere, and a W2 step taken so is a lower bound, not a pass.
CLIENT_BOUND_PCT = 90.0

#: W2's pass rules, the same for every server (each server is judged by both, each row
#: says which): every tick delivered on time, or the latest value never long out of date.
RULES: dict[str, str] = {
    "every tick": "per-tick delivered >= 99.9 %, latency p99 <= 100 ms",
    "latest value": "superseded p99 <= 150 ms, latency p99 <= 150 ms",
}


def client_bound(row: dict[str, Any]) -> bool:
    return (row.get("client_cpu_pct") or 0.0) > CLIENT_BOUND_PCT


def judge_common(row: dict[str, Any]) -> str | None:
    """Why a W2 step fails under every rule (None: it does not)."""
    if row.get("error"):
        return str(row["error"])[:120]
    if row.get("clients_connected") != row.get("clients"):
        return f"only {row.get('clients_connected')}/{row.get('clients')} connected"
    if row.get("disconnected_during_run"):
        return f"{row['disconnected_during_run']} clients disconnected"
    if client_bound(row):
        return f"load client above {CLIENT_BOUND_PCT:g} % CPU (result is a lower bound)"
    return None


def judge(row: dict[str, Any], rule: str) -> tuple[bool, str]:
    """W2 pass/fail of one step under one rule of ``RULES``, with the reason."""
    why = judge_common(row)
    if why is not None:
        return False, why
    p99 = row.get("latency_p99_ms")
    if rule == "every tick":
        delivered = row.get("per_tick_delivered_ratio") or 0.0
        if delivered < 0.999:
            return False, f"per-tick delivered {100 * delivered:.2f}% < 99.9%"
        if p99 is None or p99 > 100.0:
            return False, f"p99 {fmt(p99)} ms > 100 ms"
        return True, "ok"
    stale = row.get("superseded_p99_ms")
    if stale is None or stale > 150.0:
        return False, f"superseded p99 {fmt(stale)} ms > 150 ms"
    if p99 is None or p99 > 150.0:
        return False, f"p99 {fmt(p99)} ms > 150 ms"
    return True, "ok"


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def clamp(v: float | None) -> float | None:
    """Per-core and per-process CPU accounting jitter makes "other load" dip below zero."""
    return None if v is None else max(0.0, v)


def pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    node = "-"
    if shutil.which("node"):
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    versions = {}
    for mod in ("picows", "uvicorn", "fastapi", "socketio", "uvloop"):
        with contextlib.suppress(Exception):
            import importlib.metadata as md

            versions[mod] = md.version("python-socketio" if mod == "socketio" else mod)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "versions": versions,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def pins(doc: dict[str, Any], side: str) -> str:
    cpus = doc.get("pinning", {}).get(side) or [SERVER_CPU if side == "server" else CLIENT_CPU]
    return ("s " if len(cpus) > 1 else " ") + ",".join(str(c) for c in cpus)


def render(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    out = [
        f"Run {m['date']} on {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Linux "
        f"{m['kernel']}, Python {m['python']}, Node {m['node']} "
        f"({', '.join(f'{k} {v}' for k, v in m['versions'].items())}); load average at start "
        f"{m['loadavg_at_start']}. Server pinned to core{pins(doc, 'server')}, load client to "
        f"core{pins(doc, 'client')}.",
        "",
        f"Reproduce: {doc['command']}"
        if doc["command"].count("`") > 2
        else f"Reproduce: `{doc['command']}`",
        "",
    ]
    if doc.get("notes"):
        out += [f"Note: {doc['notes']}", ""]
    rows: list[dict[str, Any]] = doc["rows"]
    by = {w: [r for r in rows if r["workload"] == w] for w in ("W1", "W2", "W3", "W4")}
    titles = doc["titles"]
    if by["W1"]:
        out += [
            f"### {titles['W1']}",
            "",
            "| server | mode | per-tick delivered % | msgs/s received "
            "| latency p50 / p99 / max ms | held value age p50 / p99 ms "
            "| superseded p99 / max ms | server CPU % | server RSS MB "
            "| extra connect under load p50 / max ms | client CPU %, load client "
            "| other load core 0 % |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in by["W1"]:
            out.append(
                f"| {r['server']} | {r['mode']} | {pct(r.get('per_tick_delivered_ratio'))} "
                f"| {fmt(r.get('received_msgs_per_s'), 0)} | {latency(r)} | {freshness(r)} "
                f"| {fmt(r.get('server_cpu_pct'))} | {fmt(r.get('server_rss_mb'))} "
                f"| {fmt(r.get('probe_connect_p50_ms'))} / {fmt(r.get('probe_connect_max_ms'))}"
                f" | {client_cpu(r)} | {fmt(clamp(r.get('other_load_core0_pct')))} |" + err_note(r)
            )
        out += [*LEGEND, ""]
    if doc["rows"] and any(r["workload"] == "W1-socketio" for r in rows):
        out += render_ladder([r for r in rows if r["workload"] == "W1-socketio"], titles)
    if by["W2"]:
        out += [
            f"### {titles['W2']}",
            "",
            "Each server is judged by both rules, the same for all: "
            + "; ".join(f"**{k}**: {v}" for k, v in RULES.items())
            + f"; under both, every client connected and the load client at most "
            f"{CLIENT_BOUND_PCT:g} % CPU.",
            "",
            "| server | mode | rule | highest rate passed, ticks/s | deliveries/s "
            "| per-tick delivered % there | p99 ms there | superseded p99 ms there "
            "| server CPU % there | client CPU % there, load client | other load core 0 % there "
            "| first failing rate | why it failed |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in by["W2"]:
            best = r.get("best") or {}
            best_rate = fmt(best.get("rate"), 0) if best else f"< {fmt(r.get('first_rate'), 0)}"
            out.append(
                f"| {r['server']} | {r.get('mode', '-')} | {r.get('rule', '-')} "
                f"| {best_rate} | {fmt(best.get('deliveries_per_s'), 0)} "
                f"| {pct(best.get('per_tick_delivered_ratio'))} "
                f"| {fmt(best.get('latency_p99_ms'))} | {fmt(best.get('superseded_p99_ms'))} "
                f"| {fmt(best.get('server_cpu_pct'))} "
                f"| {client_cpu({'client': r.get('client'), **best})} "
                f"| {fmt(clamp(best.get('other_load_core0_pct')))} "
                f"| {fmt(r.get('fail_rate'), 0)} | {r.get('fail_reason', '-')} |"
            )
        out += ["", LATENCY_NOTE, ""]
    if by["W3"]:
        out += [
            f"### {titles['W3']}",
            "",
            "| server | connected | connects/s | RSS before MB | RSS after MB | RSS per "
            "connection KB | extra connect p50 / max ms | server CPU % "
            "| client CPU %, load client |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in by["W3"]:
            out.append(
                f"| {r['server']} | {fmt(r.get('clients_connected'))} "
                f"| {fmt(r.get('connects_per_s'), 0)} | {fmt(r.get('server_rss_before_mb'))} "
                f"| {fmt(r.get('server_rss_mb'))} | {fmt(r.get('server_rss_per_conn_kb'))} "
                f"| {fmt(r.get('probe_connect_p50_ms'))} / {fmt(r.get('probe_connect_max_ms'))}"
                f" | {fmt(r.get('server_cpu_pct'))} | {client_cpu(r)} |" + err_note(r)
            )
        out.append("")
    if by["W4"]:
        out += [
            f"### {titles['W4']}",
            "",
            "| server | mode | connected | connects/s | per-tick delivered % | msgs/s received "
            "| latency p50 / p99 / max ms | held value age p50 / p99 ms "
            "| superseded p99 / max ms | server CPU % | server RSS MB "
            "| client CPU %, load client | other load core 0 % |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in by["W4"]:
            out.append(
                f"| {r['server']} | {r['mode']} | {fmt(r.get('clients_connected'))} "
                f"| {fmt(r.get('connects_per_s'), 0)} "
                f"| {pct(r.get('per_tick_delivered_ratio'))} "
                f"| {fmt(r.get('received_msgs_per_s'), 0)} | {latency(r)} | {freshness(r)} "
                f"| {fmt(r.get('server_cpu_pct'))} | {fmt(r.get('server_rss_mb'))} "
                f"| {client_cpu(r)} | {fmt(clamp(r.get('other_load_core0_pct')))} |" + err_note(r)
            )
        out += [*LEGEND, ""]
    return "\n".join(out)


#: Under the W1 and W4 tables: what the columns measure (docs/performance.md, Definitions).
LEGEND = [
    "",
    "Per-tick delivered: messages stamped in the window / (ticks x subscribers), for every "
    "server (a conflating server sends fewer by design). Latency: only on messages that "
    "arrived (for a conflating server, the ticks it kept). Held value age and superseded: "
    "sampled every 100 ms on the values a fixed subset of the clients hold, so staleness "
    "that conflation or a backlog hides from the latency shows here. Client CPU above "
    f"{CLIENT_BOUND_PCT:g} % is marked client-bound: a lower bound for the server.",
]

#: Under the W2 table and the W1-socketio ladder, beside their superseded column.
LATENCY_NOTE = (
    "Latency: only on messages that arrived (for a conflating server, the ticks it kept); "
    "superseded (how long the value a client holds has been out of date, sampled every "
    "100 ms) shows the staleness that hides."
)


def latency(r: dict[str, Any]) -> str:
    return (
        f"{fmt(r.get('latency_p50_ms'))} / {fmt(r.get('latency_p99_ms'))} "
        f"/ {fmt(r.get('latency_max_ms'))}"
    )


def freshness(r: dict[str, Any]) -> str:
    """Held value age p50 / p99, then superseded p99 / max (two table cells)."""
    return (
        f"{fmt(r.get('age_p50_ms'))} / {fmt(r.get('age_p99_ms'))} "
        f"| {fmt(r.get('superseded_p99_ms'))} / {fmt(r.get('superseded_max_ms'))}"
    )


def client_cpu(r: dict[str, Any]) -> str:
    """The load client's CPU %, flagged when the client may be the limit, and which
    client measured the row (rows from before ``--client`` existed: the Python one)."""
    which = "C" if r.get("client") == "c" else "Python"
    return (
        fmt(r.get("client_cpu_pct")) + (" (client-bound)" if client_bound(r) else "") + f", {which}"
    )


def cpu_per_kmsg(cpu_pct: float | None, per_s: float | None) -> float | None:
    """Server CPU milliseconds spent per 1,000 messages (or deliveries)."""
    if not cpu_pct or not per_s:
        return None
    return cpu_pct * 10.0 / (per_s / 1000.0)


def latest_per_s(r: dict[str, Any]) -> float | None:
    """Latest-value deliveries/s: the offered deliveries whose latest value arrived."""
    if r.get("latest_delivered_ratio") is None or not r.get("deliveries_per_s"):
        return None
    return float(r["deliveries_per_s"]) * float(r["latest_delivered_ratio"])


def render_ladder(rows: list[dict[str, Any]], titles: dict[str, str]) -> list[str]:
    """The W1-socketio ladder: one row per server per step, then tickcast over the peer."""
    out = [
        f"### {titles.get('W1-socketio', 'W1-socketio')}",
        "",
        "| offered deliveries/s (ticks/s) | server | msgs/s received | per-tick delivered % "
        "| latest value delivered % | p50 ms | p99 ms | superseded p99 / max ms "
        "| server CPU % | CPU ms per 1,000 msgs "
        "| RSS MB: window start / end / after drain | client CPU % | other load core 0 % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rate = float(r.get("step_rate") or r["rate"])
        bound = " (client-bound: a lower bound)" if client_bound(r) else ""
        out.append(
            f"| {fmt(rate * r['clients'] * r['per_client'] / NSYMBOLS, 0)} ({fmt(rate, 0)}) "
            f"| {r['server']} | {fmt(r.get('received_msgs_per_s'), 0)} "
            f"| {pct(r.get('per_tick_delivered_ratio'))} "
            f"| {pct(r.get('latest_delivered_ratio'))} | {fmt(r.get('latency_p50_ms'))} "
            f"| {fmt(r.get('latency_p99_ms'))} "
            f"| {fmt(r.get('superseded_p99_ms'))} / {fmt(r.get('superseded_max_ms'))} "
            f"| {fmt(r.get('server_cpu_pct'))} "
            f"| {fmt(cpu_per_kmsg(r.get('server_cpu_pct'), r.get('received_msgs_per_s')), 2)} "
            f"| {fmt(r.get('server_rss_start_mb'))} / {fmt(r.get('server_rss_end_mb'))} "
            f"/ {fmt(r.get('server_rss_after_drain_mb'))} "
            f"| {fmt(r.get('client_cpu_pct'))}{bound} "
            f"| {fmt(clamp(r.get('other_load_core0_pct')))} |" + err_note(r)
        )
    out += ["", LATENCY_NOTE, "", *render_ratios(rows), ""]
    return out


def render_ratios(rows: list[dict[str, Any]]) -> list[str]:
    """tickcast's delivered rate over the peer's at the same offered load. Batch 0 counts
    messages (each one tick delivered); batch 100 counts latest-value deliveries, since a
    conflated message stands for every tick of its symbol in the window."""
    out = [
        "| offered deliveries/s | tickcast row | tickcast delivered/s (measure) "
        "| peer msgs/s | x peer | CPU ms per 1,000: tickcast / peer |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for rate in dict.fromkeys(float(r["step_rate"]) for r in rows):
        step = [r for r in rows if float(r["step_rate"]) == rate]
        peer = next((r for r in step if r["server"] == "socketio"), None)
        peer_rate = (peer or {}).get("received_msgs_per_s")
        peer_cpu = cpu_per_kmsg((peer or {}).get("server_cpu_pct"), peer_rate)
        for r in step:
            if r["server"] == "socketio" or r.get("error"):
                continue
            if SERVERS[r["server"]].conflated:
                got, what = latest_per_s(r), "latest value"
            else:
                got, what = r.get("received_msgs_per_s"), "per tick"
            ratio = got / peer_rate if got and peer_rate else None
            offered = rate * r["clients"] * r["per_client"] / NSYMBOLS
            out.append(
                f"| {fmt(offered, 0)} | {r['server']} | {fmt(got, 0)} ({what}) "
                f"| {fmt(peer_rate, 0)} | {fmt(ratio, 2)} "
                f"| {fmt(cpu_per_kmsg(r.get('server_cpu_pct'), got), 2)} / {fmt(peer_cpu, 2)} |"
            )
    return out


def err_note(r: dict[str, Any]) -> str:
    return f" error: {str(r['error'])[:100]} |" if r.get("error") else ""


def write_docs(text: str) -> None:
    block = f"{BEGIN}\n{text}\n{END}"
    if DOCS.exists():
        cur = DOCS.read_text()
        if BEGIN in cur and END in cur:
            head, rest = cur.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            DOCS.write_text(head + block + tail)
            return
        DOCS.write_text(cur.rstrip() + "\n\n## Results\n\n" + block + "\n")
        return
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text("# Performance\n\n## Results\n\n" + block + "\n")


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def run_workload(
    name: str, spec: dict[str, Any], servers: list[str], logs: Path
) -> list[dict[str, Any]]:
    if "rates" in spec:
        return run_ladder(name, spec, servers, logs)
    if name == "W2" and INTERLEAVE[0]:
        return run_ramps_interleaved(servers, spec, logs)
    rows: list[dict[str, Any]] = []
    for sname in servers:
        server = SERVERS[sname]
        base: Load = spec["load"]
        if name != "W2":
            print(f"[bench] {name} {sname} ...", flush=True)
            row = measure(server, base, f"{name}-{sname}", logs)
            row["workload"] = name
            rows.append(row)
            print(f"[bench]   {summary(row)}", flush=True)
            continue
        rows += run_ramp(sname, spec, logs)
    return rows


def run_ramp(sname: str, spec: dict[str, Any], logs: Path) -> list[dict[str, Any]]:
    """W2 for one server: raise the rate step by step while any rule of ``RULES`` still
    passes; one row per rule, with the highest step it passed and its first failure."""
    ramp = Ramp(sname, spec)
    while (load := ramp.pending()) is not None:
        ramp.announce()
        ramp.record(measure(SERVERS[sname], load, ramp.tag(), logs))
    return ramp.rows()


def run_ramps_interleaved(
    servers: list[str], spec: dict[str, Any], logs: Path
) -> list[dict[str, Any]]:
    """W2 for several servers at once (``--interleave``): each attempt of a step is taken
    for every server still climbing before the next, so that the servers compared at one
    rate are measured a minute apart at most, not a ramp apart. The rules, steps,
    retries and cap are ``run_ramp``'s; the time budget is per server, so it is the
    budget times the number of servers from the start."""
    spec = {**spec, "budget_s": spec["budget_s"] * max(1, len(servers))}
    ramps = [Ramp(sname, spec) for sname in servers]
    while True:
        todo = [(ramp, load) for ramp in ramps if (load := ramp.pending()) is not None]
        if not todo:
            break
        for ramp, load in todo:
            ramp.announce()
            ramp.record(measure(SERVERS[ramp.sname], load, ramp.tag(), logs))
    return [row for ramp in ramps for row in ramp.rows()]


class Ramp:
    """One server's W2 ramp as a state machine: ``pending`` is the load of the next
    measurement (None once the ramp is over), ``record`` takes its row. A step fails a
    rule for good only if every attempt fails it (on a shared machine)."""

    def __init__(self, sname: str, spec: dict[str, Any]) -> None:
        self.sname, self.spec = sname, spec
        self.base: Load = spec["load"]
        self.rate = self.base.rate
        self.steps: list[dict[str, Any]] = []
        self.best: dict[str, dict[str, Any] | None] = dict.fromkeys(RULES)
        self.failed: dict[str, tuple[float | None, str]] = {}
        self.started = time.monotonic()
        self.i = 0
        self.done = False
        self.load: Load | None = None
        self.attempt = 0
        self.alive: list[str] = []
        self.passed: dict[str, dict[str, Any]] = {}
        self.why: dict[str, str] = {}

    def tag(self) -> str:
        return f"W2-{self.sname}-{self.rate:g}-{self.attempt}"

    def pending(self) -> Load | None:
        if self.load is not None or self.done:
            return self.load
        alive = [r for r in RULES if r not in self.failed]
        if self.i >= self.spec["max_steps"] or not alive:
            self.done = True
            return None
        if time.monotonic() - self.started > self.spec["budget_s"]:
            for r in alive:
                self.failed[r] = (None, f"not reached (time budget {self.spec['budget_s']} s)")
            self.done = True
            return None
        self.alive, self.passed, self.why, self.attempt = alive, {}, {}, 0
        self.load = dataclasses.replace(self.base, rate=self.rate)
        return self.load

    def announce(self) -> None:
        if not self.attempt:
            print(
                f"[bench] W2 {self.sname} step {self.i + 1}: {self.rate:g} ticks/s ...", flush=True
            )

    def record(self, row: dict[str, Any]) -> None:
        verdicts = {r: judge(row, r) for r in self.alive if r not in self.passed}
        row.update(
            attempt=self.attempt + 1,
            step_verdicts={r: ("pass" if ok else text) for r, (ok, text) in verdicts.items()},
        )
        self.steps.append(row)
        for r, (ok, reason) in verdicts.items():
            if ok:
                self.passed[r] = {**row, "rate": self.rate}
            else:
                self.why[r] = reason
        said = "; ".join(f"{r}: {'PASS' if ok else t}" for r, (ok, t) in verdicts.items())
        print(f"[bench]   {said}; {summary(row)}", flush=True)
        self.attempt += 1
        if len(self.passed) < len(self.alive) and self.attempt < 1 + self.spec["retries"]:
            return  # another attempt of this step
        for r in self.alive:
            if r in self.passed:
                self.best[r] = self.passed[r]
            else:
                self.failed[r] = (self.rate, self.why[r])
        self.rate = round(self.rate * self.spec["factor"])
        self.i += 1
        self.load = None

    def rows(self) -> list[dict[str, Any]]:
        cap = (None, f"not reached (cap of {self.spec['max_steps']} steps)")
        return [
            {
                "server": self.sname,
                "workload": "W2",
                "mode": SERVERS[self.sname].mode,
                "client": next((s.get("client") for s in self.steps), None),
                "rule": r,
                "rule_text": RULES[r],
                "first_rate": self.base.rate,
                "best": self.best[r],
                "fail_rate": self.failed.get(r, cap)[0],
                "fail_reason": self.failed.get(r, cap)[1],
                # every step's full result, kept once (in the first rule's row)
                "steps": self.steps if r == next(iter(RULES)) else [],
            }
            for r in RULES
        ]


def run_ladder(
    name: str, spec: dict[str, Any], servers: list[str], logs: Path
) -> list[dict[str, Any]]:
    """Every server at every tick rate, a fresh server per step; step by step rather than
    server by server, so the rows compared at one load are taken minutes apart at most."""
    rows: list[dict[str, Any]] = []
    for rate in spec["rates"]:
        load = dataclasses.replace(spec["load"], rate=rate)
        for sname in servers:
            print(f"[bench] {name} {sname} {rate:g} ticks/s ...", flush=True)
            row = measure(SERVERS[sname], load, f"{name}-{sname}-{rate:g}", logs)
            row.update(workload=name, step_rate=rate)
            rows.append(row)
            print(f"[bench]   {summary(row)}", flush=True)
    return rows


def summary(r: dict[str, Any]) -> str:
    if r.get("error"):
        return f"error: {r['error']}"
    return (
        f"per tick {pct(r.get('per_tick_delivered_ratio'))}% "
        f"(latest {pct(r.get('latest_delivered_ratio'))}%) p50 {fmt(r.get('latency_p50_ms'))} "
        f"p99 {fmt(r.get('latency_p99_ms'))} max {fmt(r.get('latency_max_ms'))} ms, "
        f"age p99 {fmt(r.get('age_p99_ms'))} superseded p99/max "
        f"{fmt(r.get('superseded_p99_ms'))}/{fmt(r.get('superseded_max_ms'))} ms, "
        f"server CPU {fmt(r.get('server_cpu_pct'))}%, RSS {fmt(r.get('server_rss_mb'))} MB, "
        f"client CPU {fmt(r.get('client_cpu_pct'))}%, connected {r.get('clients_connected')}, "
        f"{fmt(r.get('connects_per_s'), 0)} conn/s, probe {fmt(r.get('probe_connect_p50_ms'))}"
        f"/{fmt(r.get('probe_connect_max_ms'))} ms, other load core0/1 "
        f"{fmt(clamp(r.get('other_load_core0_pct')))}/{fmt(r.get('other_load_core1_pct'))}%"
    )


def render_only(files: list[str], write: bool) -> None:
    docs = [json.loads(Path(f).read_text()) for f in files]
    merged = dict(docs[-1])  # machine info of the latest run
    rows: dict[tuple[str, float, str, str], dict[str, Any]] = {}
    for d in docs:
        for r in d["rows"]:
            rows[(r["workload"], r.get("step_rate") or 0.0, r["server"], r.get("rule", ""))] = r
        merged["titles"] = {**d["titles"], **merged["titles"]}
    merged["rows"] = [
        rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1], list(SERVERS).index(k[2]), k[3]))
    ]
    if len(docs) > 1:
        merged["command"] = "; ".join(
            f"{', '.join(sorted({r['workload'] for r in d['rows']}))}: `{d['command']}`"
            for d in docs
        )
        merged["command"] += f"; merged with `bench/run.py --render {' '.join(files)}`"
        merged["notes"] = " ".join(dict.fromkeys(d["notes"] for d in docs if d.get("notes")))
    text = render(merged)
    print(text)
    if write:
        write_docs(text)
        print(f"[bench] wrote {DOCS.relative_to(ROOT)}")


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small, short smoke run")
    p.add_argument("--servers", default="", help=f"comma list of {', '.join(SERVERS)}")
    p.add_argument(
        "--workloads", default="W1,W2,W3,W4", help="comma list of W1, W2, W3, W4, W1-socketio"
    )
    p.add_argument(
        "--rates",
        default="",
        help="comma list of tick rates for the W1-socketio ladder (default 1000,2000,4000)",
    )
    p.add_argument("--warmup", type=float, help="s, overrides every workload's warm-up")
    p.add_argument("--duration", type=float, help="s, overrides every workload's window")
    p.add_argument("--max-steps", type=int, help="overrides W2's cap on steps")
    p.add_argument("--retries", type=int, help="overrides W2's retries of a failing step")
    p.add_argument("--write-docs", action="store_true", help=f"rewrite the table in {DOCS}")
    p.add_argument("--notes", default="", help="a sentence printed above the tables")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value for server and client (negative = ahead of other tenants; root only)",
    )
    p.add_argument(
        "--interleave",
        action="store_true",
        help="W2: take each step for every server before the next step (same rules)",
    )
    p.add_argument(
        "--server-cpus",
        default=str(SERVER_CPU),
        help="comma list of the cores the server (all its workers) is pinned to",
    )
    p.add_argument(
        "--client-cpus", default=str(CLIENT_CPU), help="comma list of the load client's cores"
    )
    p.add_argument(
        "--client",
        choices=["python", "c"],
        default="python",
        help="load client: python (bench/loadclient.py, every protocol) or c (bench/cclient, "
        "built with gcc on first use; native protocol only, the Python one measures the rest)",
    )
    p.add_argument(
        "--render",
        nargs="+",
        metavar="JSON",
        help="only render (and with --write-docs, write) earlier results; a later file's rows "
        "replace an earlier file's rows for the same server and workload",
    )
    args = p.parse_args()
    NICE[0] = args.nice
    INTERLEAVE[0] = args.interleave
    PIN[SERVER_CPU] = {int(c) for c in args.server_cpus.split(",") if c}
    PIN[CLIENT_CPU] = {int(c) for c in args.client_cpus.split(",") if c}
    if args.render:
        render_only(args.render, args.write_docs)
        return

    setup_client(args.client)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    atexit.register(kill_all)

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    logs = RESULTS / f"logs-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    wanted = [s for s in args.servers.split(",") if s] or [
        s for s in SERVERS if not SERVERS[s].opt_in
    ]
    unknown = [s for s in wanted if s not in SERVERS]
    if unknown:
        p.error(f"unknown servers: {unknown}")
    if "node-ws" in wanted and not ensure_node():
        wanted.remove("node-ws")
    specs = workloads(args.quick)
    if args.rates:
        specs["W1-socketio"]["rates"] = [float(r) for r in args.rates.split(",") if r]
    for spec in specs.values():  # a short run: the titles say so
        if args.warmup is not None:
            spec["load"] = dataclasses.replace(spec["load"], warmup=args.warmup)
        if args.duration is not None:
            spec["load"] = dataclasses.replace(spec["load"], duration=args.duration)
            spec["title"] += f" ({spec['load'].warmup:g} s warm-up, {args.duration:g} s window)"
    if args.max_steps is not None:
        specs["W2"]["max_steps"] = args.max_steps
    if args.retries is not None:
        specs["W2"]["retries"] = args.retries
    doc: dict[str, Any] = {
        "machine": machine_info(),
        "command": ".venv/bin/python bench/run.py " + shlex.join(sys.argv[1:]),
        "notes": args.notes,
        "pinning": {"server": sorted(PIN[SERVER_CPU]), "client": sorted(PIN[CLIENT_CPU])},
        "titles": {
            k: v["title"] + (" (quick: reduced)" if args.quick else "") for k, v in specs.items()
        },
        "rows": [],
    }
    out = RESULTS / f"run-{stamp}.json"
    for w in [w for w in args.workloads.split(",") if w]:
        spec = specs[w]
        servers = [s for s in spec["servers"] if s in wanted]
        doc["rows"] += run_workload(w, spec, servers, logs)
        out.write_text(json.dumps(doc, indent=1))
    text = render(doc)
    print("\n" + text)
    print(f"[bench] results: {out.relative_to(ROOT)}; logs: {logs.relative_to(ROOT)}")
    if args.write_docs:
        write_docs(text)
        print(f"[bench] wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
