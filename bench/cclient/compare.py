"""The Python and the C load client side by side (docs/performance.md, "The compiled load
client"): the same sender, the same flags, one after the other, a line of JSON per run.

    .venv/bin/python bench/cclient/compare.py ceiling            # the fast local sender
    .venv/bin/python bench/cclient/compare.py pair --rate 2844   # one tickcast server

``ceiling``: bench/cclient/sender.c (core 0) writes quote frames as fast as each socket
takes them, 512 frames per ``send()`` and then 1 (the per-tick servers' way); each client
(core 1) reads for ``--duration`` s over 1 and 500 connections. The sender has no rate:
what a client reads is its ceiling, unless the sender's core is the limit (then the
client's CPU stays under 100 %). Latency there is queueing in the socket buffers.

``pair``: one ``tickcast serve`` (core 0, batch ``--batch-ms``), then the Python and the C
client alternately (core 1, ``--reps`` times each) with W2's clients (500 x 10 of 100
symbols): messages/s, client CPU and CPU microseconds per message, per-tick delivered,
latency, connects/s. Every child is started in its own session and stopped by its id.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
ROOT = BENCH.parent
PY = sys.executable
sys.path.insert(0, str(HERE))
import build  # noqa: E402  (bench/cclient/build.py)


def clients() -> dict[str, list[str]]:
    return {"python": [PY, str(BENCH / "loadclient.py")], "c": [str(build.binary())]}


def run_client(cmd: list[str], flags: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(BENCH)])}
    proc = subprocess.run(
        ["taskset", "-c", "1", *cmd, *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    return lines[-1] if lines else {"error": proc.stderr[-300:]}


def row(name: str, r: dict[str, Any], **extra: Any) -> None:
    cpu, mps = r.get("client_cpu_pct"), r.get("received_msgs_per_s")
    print(
        json.dumps(
            {
                **extra,
                "client": name,
                "msgs_per_s": mps,
                "client_cpu_pct": cpu,
                "cpu_us_per_msg": round(cpu * 1e4 / mps, 3) if cpu and mps else None,
                "per_tick": r.get("per_tick_delivered_ratio"),
                "p50_ms": r.get("latency_p50_ms"),
                "p99_ms": r.get("latency_p99_ms"),
                "connects_per_s": r.get("connects_per_s"),
                "error": r.get("error"),
                "loadavg1": round(os.getloadavg()[0], 2),
            }
        ),
        flush=True,
    )


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


def ceiling(args: argparse.Namespace) -> None:
    sender = str(build.binary("sender"))
    for per_write in (512, 1):
        for conns in (1, 500):
            for name, cmd in clients().items():
                port = 19000 + (os.getpid() + per_write + conns) % 900
                life = args.duration + 40
                proc = subprocess.Popen(
                    ["taskset", "-c", "0", sender, str(port), f"{life:g}", str(per_write)],
                    start_new_session=True,
                )
                time.sleep(0.3)
                flags = [
                    "--url", f"ws://127.0.0.1:{port}/ws",
                    "--stats-url", f"http://127.0.0.1:{port}/stats", "--stats-kind", "schedule:1",
                    "--clients", str(conns), "--per-client", "1", "--nsymbols", "100",
                    "--warmup", "1", "--duration", f"{args.duration:g}", "--drain-max", "1",
                    "--drain-min", "0", "--fresh-pairs", "0", "--connect-phase-timeout", "30",
                ]  # fmt: skip
                try:
                    row(name, run_client(cmd, flags), frames_per_write=per_write, conns=conns)
                finally:
                    stop(proc)


def pair(args: argparse.Namespace) -> None:
    port = 18800 + os.getpid() % 100
    symbols = ",".join(f"S{i:03d}" for i in range(100))
    env = {**os.environ, "TICKCAST_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS": "0"}
    cmd = [
        "taskset", "-c", "0", str(Path(PY).parent / "tickcast"), "serve",
        "--host", "127.0.0.1", "--port", str(port), "--symbols", symbols,
        "--rate", f"{args.rate:g}", "--batch-ms", str(args.batch_ms), "--seed", "1",
        "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        flags = [
            "--url", f"ws://127.0.0.1:{port}/ws/market/feed",
            "--stats-url", f"http://127.0.0.1:{port}/metrics",
            "--stats-kind", f"schedule:{args.rate:g}",
            "--clients", str(args.clients), "--per-client", "10", "--nsymbols", "100",
            "--warmup", "1", "--duration", f"{args.duration:g}", "--drain-max", "5",
            "--conflated" if args.batch_ms else "--track-latest",
        ]  # fmt: skip
        for rep in range(args.reps):
            for name, cmd in clients().items():
                row(name, run_client(cmd, flags), rate=args.rate, batch_ms=args.batch_ms, rep=rep)
    finally:
        stop(server)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("ceiling")
    c.add_argument("--duration", type=float, default=4.0, help="s, measured window")
    q = sub.add_parser("pair")
    q.add_argument("--rate", type=float, default=2844.0, help="ticks/s")
    q.add_argument("--batch-ms", type=int, default=0)
    q.add_argument("--clients", type=int, default=500)
    q.add_argument("--reps", type=int, default=2)
    q.add_argument("--duration", type=float, default=4.0, help="s, measured window")
    args = p.parse_args()
    {"ceiling": ceiling, "pair": pair}[args.cmd](args)


if __name__ == "__main__":
    main()
