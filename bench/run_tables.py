"""bench/run.py's results as markdown: the tables of every workload (``render``), the
one-line progress summary, and the results block of docs/performance.md (``write_docs``,
``render_only``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from run_servers import CLIENT_CPU, NSYMBOLS, ROOT, SERVER_CPU, SERVERS

DOCS = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


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
