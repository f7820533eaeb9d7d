"""The ingest commands as real processes: `tickcast record`, `feed`, `emulate`, and
`serve --feed replay|alpaca`.

Each command runs as ``python -m tickcast ...`` with an environment stripped of
TICKCAST_* (and of vendor credentials unless a test sets them). Waits poll for a
condition with a deadline; nothing sleeps for correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from support.emulator import Emulator, start_emulator
from support.server import free_port, start_server
from support.wsclient import recv_json, recv_until, send_json
from tickcast.emulators.base import Fault
from tickcast.providers.base import ParseError
from tickcast.providers.replay.format import decode_event, decode_header

VENDOR_VARIABLES = ("ALPACA_", "POLYGON_", "MASSIVE_")
WRONG_ALPACA = {"ALPACA_API_KEY_ID": "emulator-key", "ALPACA_API_SECRET_KEY": "wrong"}


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without TICKCAST_* settings or vendor credentials, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TICKCAST_") and not k.startswith(VENDOR_VARIABLES)
    }
    env.update(extra)
    return env


def tickcast(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tickcast *args`` to completion (killed after ``timeout``)."""
    return subprocess.run(
        [sys.executable, "-m", "tickcast", *args],
        env=clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(condition: Any, wait_s: float, what: str) -> None:
    deadline = time.monotonic() + wait_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {wait_s} s")
        time.sleep(0.05)


@contextlib.contextmanager
def process(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A background ``python -m tickcast`` (stdout and stderr to ``log``), always reaped."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tickcast", *args], env=env, stdout=out, stderr=out
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


@pytest.fixture
def alpaca(tmp_path: Path) -> Iterator[Emulator]:
    emulator = start_emulator("alpaca", tmp_path)
    yield emulator
    emulator.stop()


# -- record, then serve the recording


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tickcast record --feed simulator --count 300``'s file."""
    out = tmp_path_factory.mktemp("recording") / "session.jsonl"
    result = tickcast("record", "--feed", "simulator", "--count", "300", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "recorded" in result.stderr
    return out


def test_record_writes_a_valid_recording(recording: Path) -> None:
    header_line, *lines = recording.read_bytes().splitlines()
    header = decode_header(header_line)
    assert header.provider == "simulator"
    assert "AAPL" in header.symbols
    assert list(header.symbols) == sorted(header.symbols)
    assert header.started == pytest.approx(time.time(), abs=600)
    assert len(lines) >= 300
    decoded = [decode_event(line) for line in lines]
    errors = [d for d in decoded if isinstance(d, ParseError)]
    assert errors == []
    recvs = [d[0] for d in decoded if not isinstance(d, ParseError)]
    assert recvs == sorted(recvs)
    assert recvs[0] >= header.started
    events = [d[1] for d in decoded if not isinstance(d, ParseError)]
    assert {e.source for e in events} == {"simulator"}
    assert {e.symbol for e in events} <= set(header.symbols)
    kinds = {json.loads(line)["type"] for line in lines}
    assert "quote" in kinds
    assert kinds <= {"quote", "trade", "bar", "book"}  # never a feed status


def test_record_stops_after_its_duration(tmp_path: Path) -> None:
    out = tmp_path / "short.jsonl"
    started = time.monotonic()
    result = tickcast("record", "--feed", "simulator", "--duration", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert 0.5 <= time.monotonic() - started < 15
    header_line, *lines = out.read_bytes().splitlines()
    assert decode_header(header_line).provider == "simulator"
    assert lines


def recorded_symbols(recording: Path) -> list[str]:
    with recording.open("rb") as file:
        return list(decode_header(file.readline()).symbols)


async def wait_ready(proc: subprocess.Popen[bytes], port: int, wait_s: float) -> None:
    """Poll /ready until 200; fail if the process exits or the time is up."""
    deadline = time.monotonic() + wait_s
    async with httpx.AsyncClient(timeout=1) as http:
        while True:
            assert proc.poll() is None, f"the gateway exited {proc.returncode}"
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"the gateway did not answer /ready within {wait_s} s")
            await asyncio.sleep(0.1)


async def subscribe_and_get_quotes(url: str, symbols: list[str]) -> list[dict[str, Any]]:
    async with connect(url) as ws:
        await send_json(ws, {"action": "subscribe", "symbols": symbols})
        assert await recv_json(ws) == {"type": "subscribed", "symbols": symbols}
        quotes = []
        for _ in range(5):
            quotes.append(await recv_until(ws, lambda m: m.get("symbol") == "AAPL", wait_s=10))
        return quotes


def check_live_quotes(quotes: list[dict[str, Any]]) -> None:
    for quote in quotes:
        assert quote["source"] == "simulator"
        assert 0 < quote["bid"] <= quote["ask"]
        ts = dt.datetime.fromisoformat(quote["timestamp"].replace("Z", "+00:00"))
        # replayed events are moved to look live
        assert abs(ts.timestamp() - time.time()) < 60


async def test_serve_replays_a_recording_to_front1_clients(tmp_path: Path, recording: Path) -> None:
    symbols = recorded_symbols(recording)
    server = start_server(
        tmp_path, feed="replay", replay_file=recording, replay_speed=10, replay_loop="true"
    )
    try:
        quotes = await subscribe_and_get_quotes(server.feed, symbols)
        check_live_quotes(quotes)
        async with httpx.AsyncClient(timeout=5) as http:
            feed = (await http.get(f"{server.http}/feed")).json()
        assert feed["active"] == "replay"
        # the replay loops: it still delivers after more than one pass (2.6 s / 10)
        later = await subscribe_and_get_quotes(server.feed, ["AAPL"])
        check_live_quotes(later)
        assert server.proc.poll() is None
    finally:
        returncode = server.stop()
    assert returncode == 0, server.log()[-2000:]


async def test_serve_replays_a_recording_flat_out_in_a_loop(
    tmp_path: Path, recording: Path
) -> None:
    # What start_server(feed="replay", replay_speed=0, replay_loop=true) would do, with a
    # shorter wait: a blocked gateway never gets ready, and start_server waits 30 s.
    port = free_port()
    env = clean_env(
        TICKCAST_FEED="replay",
        TICKCAST_REPLAY_FILE=str(recording),
        TICKCAST_REPLAY_SPEED="0",
        TICKCAST_REPLAY_LOOP="true",
    )
    log = tmp_path / "serve.log"
    with process(["serve", "--port", str(port)], log, env) as proc:
        await wait_ready(proc, port, 6)
        quotes = await subscribe_and_get_quotes(f"ws://127.0.0.1:{port}/ws/market/feed", ["AAPL"])
        check_live_quotes(quotes)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


# -- tickcast feed


def complete_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines()


@pytest.mark.parametrize("run", [1, 2])
def test_feed_writes_price_batches_and_ends_cleanly_on_sigterm(tmp_path: Path, run: int) -> None:
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    args = ["feed", "--feed", "simulator", "--interval", "0.2", "--batch-size", "2"]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tickcast", *args], env=clean_env(), stdout=out, stderr=err
        )
        try:

            def enough() -> bool:
                assert proc.poll() is None, stderr.read_text()
                return len(complete_lines(stdout)) >= 6

            wait_for(enough, 15, "six price lines")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0, stderr.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
    data = stdout.read_bytes()
    assert data.endswith(b"\n")  # the final flush wrote whole lines
    lines = [json.loads(line) for line in data.splitlines()]
    symbols = set()
    for line in lines:
        assert list(line) == ["type", "timestamp", "prices"]
        assert line["type"] == "prices"
        assert line["timestamp"].endswith("Z")
        assert 1 <= len(line["prices"]) <= 2
        for price in line["prices"]:
            assert set(price) == {
                "symbol",
                "price",
                "bid",
                "ask",
                "volume",
                "timestamp",
                "source",
            }
            assert price["source"] == "simulator"
            assert 0 < price["bid"] <= price["ask"]
            symbols.add(price["symbol"])
    assert len(symbols) > 2  # more symbols than one batch holds: split across lines
    assert "Traceback" not in stderr.read_text()


def test_feed_alpaca_without_credentials_exits_2() -> None:
    result = tickcast("feed", "--feed", "alpaca", timeout=15)
    assert result.returncode == 2
    assert "ALPACA_API_KEY_ID" in result.stderr
    assert result.stdout == ""


def test_feed_alpaca_with_refused_credentials_exits_1_after_one_attempt(
    alpaca: Emulator,
) -> None:
    env = clean_env(TICKCAST_ALPACA_URL=f"{alpaca.url}/v2/iex", **WRONG_ALPACA)
    started = time.monotonic()
    result = tickcast("feed", "--feed", "alpaca", env=env, timeout=20)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert elapsed < 10
    assert "credentials refused" in result.stderr
    assert "Traceback" not in result.stderr
    assert alpaca.state()["connections_total"] == 1  # refused once, never retried


def test_serve_alpaca_with_refused_credentials_exits_1(tmp_path: Path, alpaca: Emulator) -> None:
    env = clean_env(TICKCAST_ALPACA_URL=f"{alpaca.url}/v2/iex", **WRONG_ALPACA)
    log = tmp_path / "serve.log"
    with process(["serve", "--feed", "alpaca", "--port", str(free_port())], log, env) as proc:
        assert proc.wait(timeout=20) == 1
    output = log.read_text()
    assert "the feed cannot deliver" in output
    assert alpaca.state()["connections_total"] == 1


# -- tickcast emulate


def test_emulate_an_unknown_vendor_exits_2() -> None:
    result = tickcast("emulate", "nosuch", "--port", str(free_port()), timeout=15)
    assert result.returncode == 2
    assert "nosuch" in result.stderr


def test_emulate_with_a_bad_fault_schedule_exits_2_listing_the_kinds() -> None:
    result = tickcast(
        "emulate", "alpaca", "--port", str(free_port()), "--faults", "bogus@1", timeout=15
    )
    assert result.returncode == 2
    assert "bogus@1" in result.stderr
    for kind in Fault:
        assert kind.value in result.stderr


# -- help


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        pytest.param([], ["serve", "feed", "record", "emulate"], id="tickcast"),
        pytest.param(["feed"], ["--interval", "--batch-size", "--verbose", "--feed"], id="feed"),
        pytest.param(["record"], ["--count", "--duration", "--out", "--feed"], id="record"),
        pytest.param(["emulate"], ["--faults", "alpaca", "polygon"], id="emulate"),
    ],
)
def test_help(args: list[str], mentions: list[str]) -> None:
    result = tickcast(*args, "--help", timeout=15)
    assert result.returncode == 0, result.stderr
    for flag in mentions:
        assert flag in result.stdout, flag


def test_feed_ends_cleanly_when_its_reader_goes_away() -> None:
    # `tickcast feed | head -c 100`: the pipe closes; the feed must stop, exit 0, no traceback
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickcast", "feed", "--interval", "0.1"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.read(100)
    proc.stdout.close()
    try:
        returncode = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert returncode == 0, stderr
    assert "Traceback" not in stderr
