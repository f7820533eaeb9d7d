"""bench/run.py's workloads and how they are run: W1 to W4 and the W1-socketio ladder,
one measurement (a server and the load client, one result row), W2's ramp and its
pass/fail verdicts.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from run_servers import (
    CLIENT_CPU,
    NSYMBOLS,
    SERVER_CPU,
    SERVERS,
    LineReader,
    Server,
    Tree,
    client_command,
    client_for,
    core_busy,
    cpu_delta,
    free_port,
    kill,
    pinned_default,
    spawn,
    wait_ready,
    wait_workers,
    worker_connections,
)
from run_tables import CLIENT_BOUND_PCT, RULES, client_bound, fmt, summary

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


INTERLEAVE = [False]  # --interleave: W2's servers step by step rather than one by one


# ---------------------------------------------------------------------------------------------
# One measurement
# ---------------------------------------------------------------------------------------------


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
# Running a workload
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
