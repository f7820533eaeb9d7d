"""bench/run.py's tables (``render``), from made-up rows: no server, no load client.

What the review of issue 15 asked of every table: a client-bound row flagged in every
workload whichever client measured it, the mode beside every W2 row, and the note that
latency is taken only on messages that arrived next to the superseded figure; and every
row as wide as its header.
"""

from __future__ import annotations

from typing import Any

from support.benchmod import load_bench

run = load_bench("bench_run", "run.py")


def result(**extra: Any) -> dict[str, Any]:
    return {
        "clients": 500,
        "per_client": 10,
        "rate": 2000.0,
        "clients_connected": 500,
        "per_tick_delivered_ratio": 0.5,
        "latest_delivered_ratio": 1.0,
        "received_msgs_per_s": 50_000.0,
        "latency_p50_ms": 30.0,
        "latency_p99_ms": 100.0,
        "latency_max_ms": 120.0,
        "age_p50_ms": 90.0,
        "age_p99_ms": 300.0,
        "superseded_p99_ms": 95.0,
        "superseded_max_ms": 120.0,
        "server_cpu_pct": 30.0,
        "server_rss_mb": 150.0,
        **extra,
    }


def doc(client: str) -> dict[str, Any]:
    bound = {"client_cpu_pct": 95.0, "client": client}
    rows: list[dict[str, Any]] = []
    for workload in ("W1", "W3", "W4"):
        rows.append(
            {"workload": workload, "server": "tickcast-b100", "mode": "m", **result(**bound)}
        )
    rows.append(
        {
            "workload": "W1-socketio",
            "server": "tickcast-b100-socketio",
            "step_rate": 1000.0,
            **result(**bound),
        }
    )
    rows.append(
        {
            "workload": "W2",
            "server": "node-ws",
            "mode": run.SERVERS["node-ws"].mode,
            "rule": "latest value",
            "client": client,
            "first_rate": 250.0,
            "best": {"rate": 250.0, "deliveries_per_s": 12_500.0, **result(**bound)},
            "fail_rate": 375.0,
            "fail_reason": "x",
        }
    )
    return {
        "machine": {
            "date": "d", "cpu": "c", "cores": 2, "ram_gb": 1, "kernel": "k", "python": "p",
            "node": "n", "versions": {}, "loadavg_at_start": [0, 0, 0],
        },
        "command": "bench/run.py",
        "titles": {w: w for w in ("W1", "W2", "W3", "W4", "W1-socketio")},
        "rows": rows,
    }  # fmt: skip


def tables(text: str) -> list[list[str]]:
    """Each table's lines (header, rule, rows)."""
    out: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def cells(line: str) -> int:
    return len(line.strip().strip("|").split(" | ")) if "---" not in line else line.count("|") - 1


def test_every_row_is_as_wide_as_its_header() -> None:
    for table in tables(run.render(doc("python"))):
        width = cells(table[0])
        assert all(cells(line) == width for line in table), table


def test_client_bound_is_flagged_in_every_workload_for_both_clients() -> None:
    for client, name in (("python", "Python"), ("c", "C")):
        text = run.render(doc(client))
        flagged = [line for line in text.splitlines() if "(client-bound" in line]
        assert len(flagged) == 5, text  # W1, W1-socketio, W2, W3, W4
        assert sum(f"(client-bound), {name}" in line for line in flagged) == 4


def test_latency_note_beside_superseded_under_w2_and_the_ladder() -> None:
    text = run.render(doc("python"))
    for title in ("### W2", "### W1-socketio"):
        section = text.split(title, 1)[1].split("###", 1)[0]
        assert "superseded p99" in section
        assert run.LATENCY_NOTE in section, title
    w2 = text.split("### W2", 1)[1].split("###", 1)[0]
    assert "| node-ws | per tick, per-subscriber send | latest value |" in w2
