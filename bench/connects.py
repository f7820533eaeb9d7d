"""Connects per second and server CPU per 1,000 connects (W3's connect phase), for several
source trees of tickcast, interleaved, with the compiled load client.

    PYTHONPATH=src .venv/bin/python bench/connects.py --tree before=/tmp/before/src \\
        --tree after=src --clients 5000 --repeat 3

Each round starts, for each ``--tree`` in turn, a fresh ``python -m tickcast serve`` from
that tree (``PYTHONPATH``; the simulator at 10 ticks/s over 100 symbols, batch 0, seed 1,
no per-address cap, as ``bench/run.py``'s ``tickcast-b0``), pinned to core 0, then runs
the C load client (bench/cclient, pinned to core 1) with ``--clients`` connections of one
symbol each, 100 handshakes in flight. A connect is a handshake plus its subscribe's
``subscribed`` reply. Reported per run: the client's connects/s (first connect to last
ack), and the server's CPU seconds (user + system) from just before the client starts to
the client's ``connected`` line, per 1,000 connects; at the end, a Markdown table of
the rounds with each tree's ratios to the first. Also per run: the server's garbage
collections and their pauses per 1,000 connects, by generation (its ``/metrics``; a
full collection walks every open connection's objects). ``--profile`` records the server
with py-spy during the connect phase of each run (a flame graph SVG per run, and the
top functions by own time on stdout). Only 127.0.0.1 is targeted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from fastpath import free_port, stop  # bench/ is this script's folder: on sys.path

BENCH = Path(__file__).resolve().parent
SYMBOLS = ",".join(f"S{i:03d}" for i in range(100))


def client_binary() -> str:
    spec = importlib.util.spec_from_file_location("cclient_build", BENCH / "cclient" / "build.py")
    assert spec is not None
    assert spec.loader is not None
    build: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return str(build.binary())


def start_server(
    src: Path, port: int, rate: float, log: Path, fast: bool, sim_ms: float | None = None
) -> subprocess.Popen[Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    env.update(
        PYTHONPATH=str(src),
        TICKCAST_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS="0",
        TICKCAST_WS_FAST_PATH="true" if fast else "false",
    )
    if sim_ms is not None:  # bench/run.py's tickcast-b0 runs the simulator every 1 ms
        env["TICKCAST_SIMULATOR_INTERVAL_MS"] = f"{sim_ms:g}"
    command = [
        sys.executable, "-m", "tickcast", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--symbols", SYMBOLS, "--rate", f"{rate:g}", "--batch-ms", "0", "--seed", "1",
        "--log-level", "warning",
    ]  # fmt: skip
    out = open(log, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(command, env=env, stdout=out, stderr=out, start_new_session=True)
    with contextlib.suppress(psutil.Error, AttributeError):
        psutil.Process(proc.pid).cpu_affinity([0])
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: see {log}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r,
        ):
            if r.status == 200:
                return proc
        if time.monotonic() > deadline:
            raise RuntimeError("the server was not ready in 60 s")
        time.sleep(0.2)


def measure(
    name: str, src: Path, args: argparse.Namespace, binary: str, tag: str
) -> dict[str, Any]:
    port = free_port()
    out = Path(args.logs)
    proc = start_server(src, port, args.rate, out / f"{tag}-server.log", not args.asgi, args.sim_ms)
    spy: subprocess.Popen[Any] | None = None
    try:
        server = psutil.Process(proc.pid)
        time.sleep(1.0)
        if args.profile:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(proc.pid),
                 "-r", "500", "-f", "raw", "-o", str(out / f"{tag}.folded"), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)
        command = [
            binary, "--url", f"ws://127.0.0.1:{port}/ws/market/feed",
            "--stats-url", f"http://127.0.0.1:{port}/metrics", "--stats-kind",
            f"schedule:{args.rate:g}", "--clients", str(args.clients), "--per-client", "1",
            "--nsymbols", "100", "--concurrency", str(args.concurrency), "--warmup", "0",
            "--duration", "1", "--drain-max", "1",
        ]  # fmt: skip
        gc0 = gc_seconds(port)
        cpu0 = sum(server.cpu_times()[:2])
        client = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        with contextlib.suppress(psutil.Error, AttributeError):
            psutil.Process(client.pid).cpu_affinity([1])
        connected: dict[str, Any] = {}
        assert client.stdout is not None
        for line in client.stdout:
            event = json.loads(line)
            if event.get("event") == "connected":
                cpu1 = sum(server.cpu_times()[:2])
                connected = event
                break
        gc1 = gc_seconds(port)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        client.kill()
        client.wait()
        ok = int(connected.get("clients_connected", 0))
        return {
            "tree": name,
            "connected": ok,
            "errors": connected.get("connect_errors"),
            "connects_per_s": connected.get("connects_per_s"),
            "server_cpu_ms_per_1k": round(1e6 * (cpu1 - cpu0) / ok, 1) if ok else None,
            "gc_ms_per_1k": gc_per_1k(gc0, gc1, ok),
        }
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        stop(proc)


def gc_seconds(port: int) -> dict[str, float]:
    """The server's garbage-collection pauses so far (its ``/metrics``): seconds and
    collections per generation (``gen2_s``, ``gen2_n``...)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        for suffix, unit in (("_sum", "s"), ("_count", "n")):
            head = f'tickcast_gc_pause_seconds{suffix}{{generation="'
            if line.startswith(head):
                generation = line[len(head) :].split('"', 1)[0]
                out[f"gen{generation}_{unit}"] = float(line.rsplit(" ", 1)[1])
    return out


def gc_per_1k(before: dict[str, float], after: dict[str, float], ok: int) -> dict[str, float]:
    """Per 1,000 connects: each generation's collections and pause milliseconds."""
    if not ok:
        return {}
    return {
        key: round((1e6 if key.endswith("_s") else 1e3) * (after[key] - before.get(key, 0)) / ok, 1)
        for key in sorted(after)
    }


def _function(frame: str) -> str:
    """``name (file.py:line)`` -> ``name (file.py)``."""
    head, _, where = frame.partition(" (")
    return f"{head} ({where.rsplit(':', 1)[0]})" if where else head


def top(folded: Path, n: int = 25) -> list[tuple[str, float, float]]:
    """The functions with the most own samples in a py-spy raw (folded) file: name, own %,
    inclusive %."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_function(f) for f in stack.split(";")]
        c = int(count)
        own[frames[-1]] = own.get(frames[-1], 0) + c
        for name in set(frames):
            incl[name] = incl.get(name, 0) + c
        total += c
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:n]
    pct = 100 / max(total, 1)
    return [(name, round(c * pct, 1), round(incl[name] * pct, 1)) for name, c in ranked]


def top_inclusive(folded: Path, n: int = 40) -> list[tuple[str, float]]:
    incl: dict[str, int] = {}
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        c = int(count)
        for name in {_function(f) for f in stack.split(";")}:
            incl[name] = incl.get(name, 0) + c
        total += c
    ranked = sorted(incl.items(), key=lambda kv: -kv[1])[:n]
    return [(name, round(100 * c / max(total, 1), 1)) for name, c in ranked]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", action="append", required=True, help="NAME=SRC_DIR")
    p.add_argument("--clients", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--asgi", action="store_true", help="ws_fast_path off")
    p.add_argument(
        "--sim-ms", type=float, default=None, help="the simulator's interval (run.py's b0: 1)"
    )
    p.add_argument("--logs", default="/tmp/tickcast-connects")
    p.add_argument("--profile", action="store_true", help="py-spy each run (folded, in --logs)")
    args = p.parse_args()
    Path(args.logs).mkdir(parents=True, exist_ok=True)
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1]).resolve()) for t in args.tree]
    binary = client_binary()
    rows: list[dict[str, Any]] = []
    for r in range(args.repeat):
        for name, src in trees:
            tag = f"{name}-{r}"
            row = measure(name, src, args, binary, tag)
            rows.append({**row, "round": r + 1})
            print(json.dumps(row), flush=True)
            folded = Path(args.logs) / f"{tag}.folded"
            if args.profile and folded.exists():
                print("   own%  incl%", flush=True)
                for fn, pct, inc in top(folded):
                    print(f"   {pct:5.1f} {inc:5.1f}  {fn}", flush=True)
                print("   inclusive:", flush=True)
                for fn, inc in top_inclusive(folded):
                    print(f"   {inc:5.1f}  {fn}", flush=True)
    print(summary(rows, [name for name, _ in trees]))
    return 0


def summary(rows: list[dict[str, Any]], names: list[str]) -> str:
    """A Markdown table, one line per round: each tree's connects/s and server CPU per
    1,000 connects, and each later tree's ratio to the first (CPU: lower is better)."""
    first, rest = names[0], names[1:]
    head = ["round"]
    for key in ("connects/s", "CPU ms per 1k"):
        head += [f"{key} {name}" for name in names] + [f"ratio {name}" for name in rest]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted({row["round"] for row in rows}):
        by = {row["tree"]: row for row in rows if row["round"] == r}
        cells = [str(r)]
        for key in ("connects_per_s", "server_cpu_ms_per_1k"):
            values = {name: by.get(name, {}).get(key) for name in names}
            cells += [f"{v:,.0f}" if v else "-" for v in values.values()]
            base = values[first]
            cells += [f"{values[n] / base:.2f}" if base and values[n] else "-" for n in rest]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
