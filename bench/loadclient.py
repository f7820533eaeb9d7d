"""Fan-out load client for the tickcast benchmark (one process, picows, asyncio).

Opens N WebSocket connections (bounded concurrency at connect time), subscribes connection
``i`` to symbols ``(i * k + j) % nsymbols`` for ``j < k`` (so when ``N * k`` is a multiple of
``nsymbols`` every symbol has exactly the same number of subscribers), and counts every
market-data message.

Measurement (see docs/performance.md for the definitions):

* The measured window is delimited by two snapshots of the *server's* tick counter, each with a
  millisecond boundary: the peers report how many ticks they stamped before the millisecond of
  their latest tick; for tickcast the count is its simulator's schedule (``schedule:RATE``); a
  Prometheus counter (``prom:METRIC``) is stamped with the midpoint of the HTTP request.
* Every received message is bucketed by its ``timestamp`` (millisecond string), so messages
  generated inside the window are counted no matter when they arrive (the client drains after
  the window closes).
* Delivered, for every server = messages with a timestamp in the window / (ticks in the
  window x subscribers per symbol): per tick.
* Latest value (``--conflated``/``--track-latest``, beside it): a tick counts as delivered if a
  message for its symbol stamped at or after it arrived; per (connection, symbol) see
  ``coverage``.
* Latency = receive wall time - message timestamp, on every ``--sample-every``-th message; the
  max is exact over all messages (last arrival per timestamp bucket). Only messages that
  arrived are measured, so a conflating server's latency is that of the ticks it kept.
  Every server stamps to the nearest millisecond (tickcast's wire format; the peers follow
  it), so a latency is off by at most 0.5 ms either way, for every server alike.
* Freshness (bench/freshness.py): on a fixed clock, the age of the newest value every n-th
  connection holds (about ``--fresh-pairs`` pairs, every symbol), and how long it has been
  superseded at the source.

Progress goes to stdout as JSON lines (``connected``, ``measure_start``, ``measure_end``,
``result``), which bench/run.py reads to time its server CPU measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import resource
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from picows import WSTransport, ws_connect

from freshness import ts_epoch
from loadclient_counts import (
    COUNTS,
    FRESH,
    LAST_RECV,
    SAMPLES,
    Sampler,
    Window,
    coverage,
    in_window,
    iso23,
    snapshot,
    symbols_for,
)
from loadclient_listeners import LISTENERS, FeedListener, XhrListener, XhrStreaming
from tickcast.client.load import percentile

_time = time.time


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------------------------


_sessions = iter(range(1 << 62))


def sockjs_session() -> str:
    """``<server>/<session>`` path segments of a new SockJS session."""
    n = next(_sessions)
    return f"{n % 1000:03d}/s{n}"


async def open_one(
    args: argparse.Namespace, symbols: list[str], probe: bool, fresh: bool = False
) -> tuple[WSTransport, FeedListener, float, float]:
    cls = LISTENERS[args.protocol]
    holder: list[FeedListener] = []

    def factory() -> FeedListener:
        listener = cls(symbols, args.conflated or args.track_latest, probe, fresh)
        holder.append(listener)
        return listener

    t0 = _time()
    transport: Any
    if args.protocol == "sockjs-xhr":
        listener = factory()
        assert isinstance(listener, XhrListener)
        url = urlsplit(args.url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        stream = XhrStreaming(listener, host, port, f"{url.path}/{sockjs_session()}")
        listener.stream = stream
        transport, _ = await asyncio.wait_for(
            asyncio.get_running_loop().create_connection(lambda: stream, host, port),
            args.connect_timeout,
        )
        transport = stream
    else:
        url_s = args.url
        if args.protocol == "sockjs-ws":
            url_s = url_s.replace("http://", "ws://", 1) + f"/{sockjs_session()}/websocket"
        transport, _ = await asyncio.wait_for(
            ws_connect(factory, url_s, websocket_handshake_timeout=args.connect_timeout),
            args.connect_timeout,
        )
    t_open = _time()
    listener = holder[0]
    try:
        t_ack = await asyncio.wait_for(asyncio.shield(listener.subscribed), args.connect_timeout)
    except BaseException:
        transport.disconnect(graceful=False)
        raise
    return transport, listener, t_open - t0, t_ack - t0


def fresh_stride(args: argparse.Namespace) -> int:
    """Every n-th connection is tracked for freshness: ``--fresh-stride``, or (0) about
    ``--fresh-pairs`` (connection, symbol) pairs, with n coprime to the period of the
    symbol rule so that the tracked connections cover every symbol."""
    if args.fresh_stride or args.fresh_pairs <= 0:
        return int(args.fresh_stride)
    period = args.nsymbols // math.gcd(args.nsymbols, args.per_client)
    stride = max(1, round(args.clients * args.per_client / args.fresh_pairs))
    while math.gcd(stride, period) != 1:
        stride += 1
    return stride


async def connect_all(
    args: argparse.Namespace,
) -> tuple[list[tuple[WSTransport, FeedListener] | None], dict[str, Any]]:
    sem = asyncio.Semaphore(args.concurrency)
    stride = fresh_stride(args)
    conns: list[tuple[WSTransport, FeedListener] | None] = [None] * args.clients
    errors: dict[str, int] = {}
    ack_times: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            try:
                fresh = stride > 0 and i % stride == 0
                transport, listener, _, _ = await open_one(args, symbols_for(i, args), False, fresh)
            except Exception as exc:
                key = type(exc).__name__
                errors[key] = errors.get(key, 0) + 1
                return
            conns[i] = (transport, listener)
            ack_times.append(_time())

    t0 = _time()
    tasks = [asyncio.create_task(one(i)) for i in range(args.clients)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), args.connect_phase_timeout)
    except TimeoutError:
        errors["ConnectPhaseTimeout"] = sum(1 for c in conns if c is None)
        for t in tasks:
            t.cancel()
    ok = sum(1 for c in conns if c is not None)
    elapsed = (max(ack_times) - t0) if ack_times else 0.0
    info = {
        "clients_requested": args.clients,
        "clients_connected": ok,
        "connect_errors": errors,
        "connect_seconds": round(elapsed, 3),
        "connects_per_s": round(ok / elapsed, 1) if elapsed > 0 else None,
    }
    return conns, info


async def probe_loop(args: argparse.Namespace, out: list[dict[str, Any]]) -> None:
    """Time one extra connect + subscribe every ``--probe-interval`` s while the load runs."""
    sym = [args.symbol_format.format(0)]
    while True:
        await asyncio.sleep(args.probe_interval)
        try:
            transport, _, t_open, t_ack = await open_one(args, sym, True)
            out.append({"handshake_ms": t_open * 1000, "subscribed_ms": t_ack * 1000})
            transport.disconnect(graceful=False)
        except Exception as exc:
            out.append({"error": type(exc).__name__})


async def fresh_loop(conns: list[tuple[WSTransport, FeedListener] | None], interval: float) -> None:
    """Sample what the tracked pairs hold every ``interval`` s, on a fixed clock."""
    pairs = [
        (c[1].held, s.encode()) for c in conns if c is not None and c[1].fresh for s in c[1].symbols
    ]
    start = _time()
    k = 0
    while True:
        FRESH.sample(_time(), pairs)
        k += 1
        await asyncio.sleep(max(0.0, start + k * interval - _time()))


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------


async def drain(
    args: argparse.Namespace,
    check: Callable[[], tuple[bool, float]],
) -> float:
    """Wait until check() says done, or progress stalls after --drain-min, or --drain-max."""
    start = _time()
    last_value, last_change = -1.0, start
    while True:
        done, value = check()
        now = _time()
        if done:
            break
        if value != last_value:
            last_value, last_change = value, now
        if now - start >= args.drain_min and now - last_change >= args.drain_stall:
            break
        if now - start >= args.drain_max:
            break
        await asyncio.sleep(0.2)
    return _time() - start


async def run(args: argparse.Namespace) -> dict[str, Any]:
    Sampler.every = args.sample_every
    conns, info = await connect_all(args)
    emit("connected", **info)
    if info["clients_connected"] == 0:
        return {**info, "error": "no connection succeeded"}

    await asyncio.sleep(args.warmup)
    probes: list[dict[str, Any]] = []
    ticks0, bound0, unc0 = await snapshot(args)
    cpu0, wall0 = time.process_time(), _time()
    recv0 = Sampler.total
    emit("measure_start", boundary=bound0)
    probe_task = asyncio.create_task(probe_loop(args, probes)) if args.probe_interval > 0 else None
    fresh_task = asyncio.create_task(fresh_loop(conns, args.fresh_interval))
    await asyncio.sleep(args.duration)
    for task in (probe_task, fresh_task):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    ticks1, bound1, unc1 = await snapshot(args)
    Window.limit = iso23(bound1)
    cpu1, wall1 = time.process_time(), _time()
    recv1 = Sampler.total
    emit("measure_end", boundary=bound1)

    b0, b1 = iso23(bound0), iso23(bound1)
    window = (bound1 - bound0) / 1000.0
    ticks = ticks1 - ticks0
    subs = args.clients * args.per_client / args.nsymbols  # subscribers per symbol (uniform)
    expected = ticks * subs

    if args.conflated:

        def check() -> tuple[bool, float]:
            frac, uncovered = coverage(conns, args, b0, b1, bound0 / 1e3, strict=True)
            return uncovered == 0, frac

    else:

        def check() -> tuple[bool, float]:
            got = in_window(b0, b1)
            return got >= expected, float(got)

    drained = await drain(args, check)
    received = in_window(b0, b1)
    latest, uncovered = None, None
    if args.conflated or args.track_latest:
        latest, uncovered = coverage(conns, args, b0, b1, bound0 / 1e3)
    per_tick = received / expected if expected else 0.0
    delivered = per_tick  # one measure for every server; latest value is reported beside

    lat = sorted((now - ts_epoch(ts)) * 1000.0 for ts, now in SAMPLES if b0 <= ts < b1)
    max_all = max(
        ((LAST_RECV[ts] - ts_epoch(ts)) * 1000.0 for ts in COUNTS if b0 <= ts < b1),
        default=None,
    )
    per_client = [c[1].received for c in conns if c is not None]
    disconnected = sum(1 for c in conns if c is not None and c[1].disconnected)
    ok_probes = [p for p in probes if "error" not in p]
    probe_ms = sorted(p["subscribed_ms"] for p in ok_probes)
    result = {
        **info,
        "protocol": args.protocol,
        "conflated": args.conflated,
        "window_s": round(window, 3),
        "boundary_uncertainty_ms": round(max(unc0, unc1) * 1000, 2),
        "ticks_in_window": ticks,
        "tick_rate_achieved": round(ticks / window, 1) if window > 0 else None,
        "subscribers_per_symbol": subs,
        "expected_deliveries": expected,
        "deliveries_per_s": round(expected / window, 1) if window > 0 else None,
        "received_in_window": received,
        "received_msgs_per_s": round((recv1 - recv0) / (wall1 - wall0), 1),
        "delivered_ratio": round(delivered or 0.0, 6),
        "per_tick_delivered_ratio": round(per_tick, 6),
        "latest_delivered_ratio": None if latest is None else round(latest, 6),
        "uncovered_pairs": uncovered,
        "fresh_pairs": sum(len(c[1].symbols) for c in conns if c is not None and c[1].fresh),
        "fresh_interval_s": args.fresh_interval,
        **FRESH.summary(),
        "drain_s": round(drained, 2),
        "disconnected_during_run": disconnected,
        "per_client_received_min": min(per_client, default=0),
        "per_client_received_max": max(per_client, default=0),
        "latency_samples": len(lat),
        "latency_p50_ms": percentile(lat, 0.50),
        "latency_p99_ms": percentile(lat, 0.99),
        "latency_max_ms": max_all,
        "client_cpu_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "probes": len(probes),
        "probe_failures": len(probes) - len(ok_probes),
        "probe_connect_p50_ms": percentile(probe_ms, 0.5),
        "probe_connect_max_ms": probe_ms[-1] if probe_ms else None,
    }
    for c in conns:
        if c is not None:
            c[0].disconnect(graceful=False)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/ws/market/feed[?frames=array]")
    p.add_argument(
        "--protocol",
        choices=list(LISTENERS),
        default="native",
        help="native, socketio, stomp (--url ws://.../stomp/websocket), sockjs-ws or "
        "sockjs-xhr (--url http://.../stomp)",
    )
    p.add_argument("--stats-url", required=True, help="http://127.0.0.1:PORT/stats or /metrics")
    p.add_argument(
        "--stats-kind",
        default="peer",
        help='"peer" (JSON {ticks, boundary}), "prom:METRIC{label=\\"v\\"}" (Prometheus) or\n'
        '"schedule:RATE" (the server stamps tick k at start + k / RATE and skips none)',
    )
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--per-client", type=int, default=10, help="symbols per connection")
    p.add_argument("--nsymbols", type=int, default=100)
    p.add_argument("--symbol-format", default="S{:03d}")
    p.add_argument("--conflated", action="store_true", help="server conflates (batched mode)")
    p.add_argument(
        "--track-latest",
        action="store_true",
        help="also report the latest-value delivered ratio (implied by --conflated)",
    )
    p.add_argument("--concurrency", type=int, default=100, help="connects in flight")
    p.add_argument("--connect-timeout", type=float, default=15.0, help="s, per connection")
    p.add_argument("--connect-phase-timeout", type=float, default=180.0, help="s, all connects")
    p.add_argument("--warmup", type=float, default=5.0, help="s")
    p.add_argument("--duration", type=float, default=20.0, help="s, measured window")
    p.add_argument("--drain-min", type=float, default=2.0, help="s")
    p.add_argument("--drain-stall", type=float, default=1.0, help="s without progress = done")
    p.add_argument("--drain-max", type=float, default=15.0, help="s")
    p.add_argument("--stats-timeout", type=float, default=15.0, help="s")
    p.add_argument("--sample-every", type=int, default=10, help="latency sample rate")
    p.add_argument("--probe-interval", type=float, default=0.0, help="s; 0 = no probes")
    p.add_argument(
        "--fresh-stride",
        type=int,
        default=0,
        help="track what every n-th connection holds (0: about --fresh-pairs pairs)",
    )
    p.add_argument("--fresh-pairs", type=int, default=720, help="pairs tracked (<= 0: none)")
    p.add_argument("--fresh-interval", type=float, default=0.1, help="s, freshness clock")
    args = p.parse_args(argv)
    for url in (args.url, args.stats_url):
        if urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
            p.error(f"{url}: the benchmark only targets 127.0.0.1")
    return args


def main() -> None:
    args = parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.clients * 2 + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    timeout = args.connect_phase_timeout + args.warmup + args.duration + args.drain_max + 120
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        result = runner(asyncio.wait_for(run(args), timeout))
    except Exception as exc:
        emit("result", error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)
    emit("result", **result)


if __name__ == "__main__":
    main()
