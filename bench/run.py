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
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))  # the modules below, when run.py is loaded by its path
from run_servers import (  # noqa: E402
    CLIENT_CPU,
    NICE,
    PIN,
    SERVER_CPU,
    SERVERS,
    _on_signal,
    ensure_node,
    kill_all,
    setup_client,
)
from run_tables import DOCS, render, render_only, write_docs  # noqa: E402
from run_tables import LATENCY_NOTE as LATENCY_NOTE  # noqa: E402  (tests/unit/test_bench_render.py)
from run_workloads import INTERLEAVE, run_workload, workloads  # noqa: E402

RESULTS = BENCH / "results"


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
