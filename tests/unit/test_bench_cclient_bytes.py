"""The compiled load client (bench/cclient/loadclient.c) on crafted byte streams.

test_bench_cclient.py feeds it through a real WebSocket library, which frames every
message minimally and decides itself where the bytes go. Here a raw asyncio server writes
the frames byte for byte as chosen: the 101 response split and followed in the same write
by the first frames, frame headers cut between writes (inside the 16-bit and the 64-bit
length), a 64-bit length on a small payload, a payload far larger than one read, many
frames in one write, a fragmented message cut inside its ``"timestamp"`` with a ping
between its fragments, a binary frame that mentions a price, stamps on both sides of
each boundary, then a close.

The pauses between writes only make it likely that the client reads a cut frame in
pieces; nothing waits on them and every count asserted holds however the bytes land.
No speed is asserted. Without gcc the tests skip (fail under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from support.benchmod import load_bench

build = load_bench("bench_cclient_build_bytes", "cclient/build.py")

#: a 2-second window 10 s in the past, across a second's boundary (the client keeps
#: buckets for the last 10 minutes only: no server lags that far within a run)


@pytest.fixture(scope="module")
def cbin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not build.available():
        if os.environ.get("CI") == "true":
            pytest.fail("gcc is required under CI to build bench/cclient")
        pytest.skip("gcc not found")
    path: Path = build.binary(cache=tmp_path_factory.mktemp("cclient-bytes"))
    return path


def iso(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def quote(ms: int, pad: int = 0) -> bytes:
    doc = {
        "symbol": "S000",
        "price": 101.5,
        "bid": 101.4,
        "ask": 101.6,
        "volume": 100,
        "timestamp": iso(ms),
        "source": "sim" + "x" * pad,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def frame(payload: bytes, op: int = 1, fin: bool = True, long: bool = False) -> bytes:
    """A server frame (unmasked); ``long``: the 64-bit length whatever the size."""
    head = bytes([(0x80 if fin else 0) | op])
    n = len(payload)
    if long or n > 0xFFFF:
        head += bytes([127]) + struct.pack(">Q", n)
    elif n >= 126:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([n])
    return head + payload


class Script:
    """What the server writes, in writes, and how many in-window quotes it holds."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.in_window = 0
        # the window's boundaries, from the time the test runs (the client keeps stamps
        # from 10 minutes before it starts: one taken at import could be older by then)
        self.b0 = (int(time.time()) - 10) * 1000 - 500
        self.b1 = self.b0 + 2000

    def stamps(self) -> list[int]:
        # both sides of both boundaries, and of a second's
        return [self.b0 - 1, self.b0, self.b0 + 499, self.b0 + 500, self.b1 - 1, self.b1]

    def build(self) -> None:
        w = self.writes
        counted = [ms for ms in self.stamps() if self.b0 <= ms < self.b1]
        # the 16-bit length, its header cut after one byte and after three
        for k, ms in enumerate(self.stamps()):  # sizes differ: no stale byte reads right
            f = frame(quote(ms, pad=150 + 37 * k))
            assert f[1] == 126
            w += [f[:1], f[1:3], f[3:]]
        self.in_window += len(counted)
        # the 64-bit length on a 200-byte payload, cut inside the length
        f = frame(quote(self.b0 + 5, pad=60), long=True)
        w += [f[:5], f[5:12], f[12:]]
        self.in_window += 1
        # an array frame of 700 quotes (over 64 KB), in 1,000-byte writes
        items = b"[" + b",".join(quote(self.b0 + 10 + k % 1000) for k in range(700)) + b"]"
        f = frame(items)
        assert len(items) > 0xFFFF
        w += [f[i : i + 1000] for i in range(0, len(f), 1000)]
        self.in_window += 700
        # many frames in one write: quotes, a ping, a message without a price
        many = b"".join(frame(quote(self.b0 + 20 + k)) for k in range(50))
        many += frame(b"hello", op=0x9) + frame(b'{"type":"heartbeat"}')
        w.append(many)
        self.in_window += 50
        # a binary frame that mentions a price: not a text message, not counted
        w.append(frame(quote(self.b0 + 30), op=0x2))
        # one message in three fragments, cut inside "timestamp", a ping between
        body = quote(self.b0 + 40)
        cut = body.index(b'"timestamp"') + 5
        w.append(frame(body[:cut], fin=False))
        w.append(frame(b"mid", op=0x9))
        w.append(frame(body[cut : cut + 7], op=0x0, fin=False))
        w.append(frame(body[cut + 7 :], op=0x0))
        self.in_window += 1
        # the same kind of message byte by byte
        f = frame(quote(self.b0 + 41))
        w += [f[i : i + 1] for i in range(len(f))]
        self.in_window += 1


def client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Decode the client's masked frames (opcode, payload)."""
    out = []
    i = 0
    while i + 2 <= len(data):
        op, n = data[i] & 0x0F, data[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            n = struct.unpack(">H", data[j : j + 2])[0]
            j += 2
        elif n == 127:
            n = struct.unpack(">Q", data[j : j + 8])[0]
            j += 8
        key = data[j : j + 4]
        j += 4
        if j + n > len(data):
            break
        out.append((op, bytes(b ^ key[k % 4] for k, b in enumerate(data[j : j + n]))))
        i = j + n
    return out


class RawServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.stats_calls = 0
        self.from_client = b""
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"GET /stats"):
            self.stats_calls += 1
            ticks = 0 if self.stats_calls == 1 else self.script.in_window
            body = json.dumps(
                {"ticks": ticks, "boundary_ms": self.script.b0 if ticks == 0 else self.script.b1}
            )
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
            )
            await writer.drain()
            writer.close()
            return
        ack = frame(b'{"type":"subscribed","symbols":["S000"]}')
        response = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"
        )
        writer.write(response[:20])
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(response[20:] + ack + frame(quote(self.script.b0 - 5)))
        await writer.drain()
        reading = asyncio.create_task(self.read_client(reader))
        for chunk in self.script.writes:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(frame(struct.pack(">H", 1000) + b"bye", op=0x8))
        await writer.drain()
        await reading
        writer.close()
        self.done.set()

    async def read_client(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65536):
            self.from_client += data


async def run(cbin: Path, server: RawServer, port: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        str(cbin),
        "--url", f"ws://127.0.0.1:{port}/ws/market/feed",
        "--stats-url", f"http://127.0.0.1:{port}/stats", "--stats-kind", "peer",
        "--clients", "1", "--per-client", "1", "--nsymbols", "1",
        "--warmup", "0", "--duration", "0.1", "--drain-min", "0", "--drain-stall", "3",
        "--drain-max", "30", "--sample-every", "1", "--fresh-stride", "1",
        "--track-latest", "--connect-timeout", "30",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, err.decode()[-2000:]
    return {line["event"]: line for line in lines}


async def test_crafted_byte_streams_are_counted_exactly(cbin: Path) -> None:
    script = Script()
    script.build()
    server = RawServer(script)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        got = await run(cbin, server, port)
        await asyncio.wait_for(server.done.wait(), 30)
    finally:
        srv.close()
        await srv.wait_closed()
    r = got["result"]
    assert "error" not in r, r
    assert got["measure_start"]["boundary"] == script.b0
    assert got["measure_end"]["boundary"] == script.b1
    assert r["clients_connected"] == 1
    assert r["expected_deliveries"] == script.in_window
    assert r["received_in_window"] == script.in_window
    assert r["per_tick_delivered_ratio"] == 1.0
    assert r["latency_samples"] == script.in_window
    # every text quote, in the window or not (b0 - 5, b0 - 1 and b1 are not)
    assert r["per_client_received_min"] == script.in_window + 3
    assert r["disconnected_during_run"] == 1
    # the newest stamp received in the window was b1 - 1, and one at b1 arrived
    assert r["latest_delivered_ratio"] == 1.0
    frames = client_frames(server.from_client)
    ops = [op for op, _ in frames]
    assert frames[0] == (0x1, b'{"action":"subscribe","symbols":["S000"]}')
    assert (0xA, b"hello") in frames
    assert (0xA, b"mid") in frames
    assert ops[-1] == 0x8
    assert frames[-1][1] == struct.pack(">H", 1000)
    # stamped 8 to 10 s before they were sent: every latency is at least 8 s
    assert 8000 <= r["latency_p50_ms"] <= r["latency_p99_ms"] <= r["latency_max_ms"]
