"""Recording and replay: the file format (pure), the Recorder, and the ReplayProvider.

The format and the Recorder are tested on bytes; the provider plays real files written
in ``tmp_path`` into a recording Sink. Timing assertions are loose on purpose (the
machine is noisy): what is exact is computed from the file, what is measured has wide
bounds.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from support.sink import Enough, RecordingSink
from tickcast.errors import ConfigError, UpstreamError
from tickcast.model.market import FEED, Bar, BookUpdate, MarketEvent, Quote, Status, Trade
from tickcast.providers.base import ParseError, Sink
from tickcast.providers.replay.format import (
    FORMAT,
    VERSION,
    Header,
    decode_event,
    decode_header,
    encode_event,
    encode_header,
    retime,
)
from tickcast.providers.replay.record import Recorder
from tickcast.providers.replay.stream import BATCH_WINDOW_S, FAST_BATCH, ReplayProvider

T0 = 1_732_150_000.0  # when the (fictional) recordings were made: long ago

QUOTE = Quote("AAPL", 189.98, 190.02, 300.0, 200.0, 190.0, 12_345.0, T0 + 0.1, "alpaca")
TRADE = Trade("MSFT", 410.5, 25.0, T0 + 0.2, "polygon", "t-77")
BAR = Bar("AAPL", 189.0, 191.0, 188.5, 190.0, 5_000.0, T0 - 60.0, T0, "alpaca", 60)
BOOK = BookUpdate(
    "BTC/USDT",
    ((64_990.0, 1.5), (64_989.5, 0.25)),
    ((65_000.0, 2.0),),
    True,
    T0 + 0.3,
    "simulator",
    42,
)
STATUS = Status(FEED, "alpaca", "up", "alpaca", "session up", T0)

EVENTS: list[MarketEvent] = [QUOTE, TRADE, BAR, BOOK]


# -- the format: header


def test_header_round_trip() -> None:
    line = encode_header("alpaca", frozenset({"MSFT", "AAPL"}), T0)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    header = decode_header(line)
    assert header == Header(FORMAT, VERSION, "alpaca", ("AAPL", "MSFT"), T0)


def test_header_is_json_with_the_documented_fields() -> None:
    line = encode_header("alpaca,simulator", ("TSLA", "AAPL"), T0)
    assert json.loads(line) == {
        "format": "tickcast-recording",
        "version": 1,
        "provider": "alpaca,simulator",
        "symbols": ["AAPL", "TSLA"],  # sorted
        "started": T0,
    }


def test_decode_header_accepts_text() -> None:
    line = encode_header("simulator", ("AAPL",), T0).decode()
    assert decode_header(line).symbols == ("AAPL",)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"hello world\n", id="not-json"),
        pytest.param(b"[1, 2, 3]\n", id="not-an-object"),
        pytest.param(
            encode_event(QUOTE, T0), id="an-event-line"
        ),  # a recording with its header cut off
        pytest.param(b'{"format": "tickcast-recording", "version": 1}\n', id="missing-fields"),
        pytest.param(
            b'{"format": "tickcast-recording", "version": "1", "provider": "x",'
            b' "symbols": [], "started": 0}',
            id="wrong-type",
        ),
    ],
)
def test_decode_header_refuses_what_is_not_a_recording(line: bytes) -> None:
    with pytest.raises(ValueError, match="not a tickcast recording"):
        decode_header(line)


@pytest.mark.parametrize(
    ("fmt", "version"),
    [
        pytest.param("other-recording", 1, id="other-format"),
        pytest.param(FORMAT, 2, id="future-version"),
        pytest.param(FORMAT, 0, id="old-version"),
    ],
)
def test_decode_header_refuses_other_formats_and_versions(fmt: str, version: int) -> None:
    line = json.dumps(
        {"format": fmt, "version": version, "provider": "x", "symbols": ["A"], "started": T0}
    )
    with pytest.raises(ValueError, match="unsupported recording"):
        decode_header(line)


# -- the format: events


def test_quote_line_has_every_field() -> None:
    line = encode_event(QUOTE, T0 + 0.5)
    assert line is not None
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {
        "recv": T0 + 0.5,
        "type": "quote",
        "data": {
            "symbol": "AAPL",
            "bid": 189.98,
            "ask": 190.02,
            "bid_size": 300.0,
            "ask_size": 200.0,
            "price": 190.0,
            "volume": 12_345.0,
            "ts": T0 + 0.1,
            "source": "alpaca",
        },
    }


def test_trade_line_has_every_field() -> None:
    line = encode_event(TRADE, T0 + 0.5)
    assert line is not None
    assert json.loads(line) == {
        "recv": T0 + 0.5,
        "type": "trade",
        "data": {
            "symbol": "MSFT",
            "price": 410.5,
            "size": 25.0,
            "ts": T0 + 0.2,
            "source": "polygon",
            "trade_id": "t-77",
        },
    }


def test_bar_line_has_every_field() -> None:
    line = encode_event(BAR, T0 + 0.5)
    assert line is not None
    assert json.loads(line) == {
        "recv": T0 + 0.5,
        "type": "bar",
        "data": {
            "symbol": "AAPL",
            "open": 189.0,
            "high": 191.0,
            "low": 188.5,
            "close": 190.0,
            "volume": 5_000.0,
            "start": T0 - 60.0,
            "ts": T0,
            "source": "alpaca",
            "interval_s": 60,
        },
    }


def test_book_line_has_every_field() -> None:
    line = encode_event(BOOK, T0 + 0.5)
    assert line is not None
    assert json.loads(line) == {
        "recv": T0 + 0.5,
        "type": "book",
        "data": {
            "symbol": "BTC/USDT",
            "bids": [[64_990.0, 1.5], [64_989.5, 0.25]],
            "asks": [[65_000.0, 2.0]],
            "snapshot": True,
            "ts": T0 + 0.3,
            "source": "simulator",
            "sequence": 42,
        },
    }


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_event_round_trip(event: MarketEvent) -> None:
    line = encode_event(event, T0 + 1.25)
    assert line is not None
    decoded = decode_event(line)
    assert not isinstance(decoded, ParseError), decoded
    recv, back = decoded
    assert recv == T0 + 1.25
    assert type(back) is type(event)
    assert back == event
    for field in event.__struct_fields__:
        assert getattr(back, field) == getattr(event, field), field


def test_event_round_trip_as_text_and_with_defaults_left_out() -> None:
    line = encode_event(Trade("AAPL", 1.0, 2.0, T0, "alpaca"), T0)
    assert line is not None
    decoded = decode_event(line.decode())
    assert not isinstance(decoded, ParseError)
    assert decoded[1] == Trade("AAPL", 1.0, 2.0, T0, "alpaca", "")
    # a line written without the optional fields still reads
    short = b'{"recv": 1.0, "type": "trade", "data": {"symbol": "A", "price": 1.0,'
    short += b' "size": 1.0, "ts": 1.0, "source": "x"}}'
    decoded = decode_event(short)
    assert not isinstance(decoded, ParseError)
    assert decoded == (1.0, Trade("A", 1.0, 1.0, 1.0, "x"))


def test_status_is_not_recorded() -> None:
    assert encode_event(STATUS, T0) is None


BAD_LINES = [
    pytest.param(b"not json\n", id="not-json"),
    pytest.param(b"\xff\xfe garbage\n", id="not-utf8"),
    pytest.param(b"[1, 2]\n", id="array"),
    pytest.param(b"{}\n", id="empty-object"),
    pytest.param(b'{"recv": 1.0, "type": "quote"}\n', id="no-data"),
    pytest.param(b'{"recv": "soon", "type": "trade", "data": {}}\n', id="recv-not-a-number"),
    pytest.param(b'{"recv": 1.0, "type": "quote", "data": {"symbol": "AAPL"}}\n', id="fields"),
    pytest.param(
        b'{"recv": 1.0, "type": "trade", "data": {"symbol": "A", "price": "x",'
        b' "size": 1.0, "ts": 1.0, "source": "s"}}',
        id="field-type",
    ),
    pytest.param(encode_event(QUOTE, T0)[:40], id="truncated"),  # type: ignore[index]
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_a_bad_line_is_a_parse_error_with_the_raw_line(line: bytes) -> None:
    result = decode_event(line)
    assert isinstance(result, ParseError)
    assert result.raw == line
    assert result.error


def test_a_bad_text_line_keeps_its_text() -> None:
    result = decode_event("not json")
    assert isinstance(result, ParseError)
    assert result.raw == "not json"


@pytest.mark.parametrize("kind", ["status", "orderbook", "Quote", ""])
def test_an_unknown_type_is_a_parse_error(kind: str) -> None:
    line = json.dumps({"recv": 1.0, "type": kind, "data": {"symbol": "AAPL"}}).encode()
    result = decode_event(line)
    assert isinstance(result, ParseError)
    assert "unknown event type" in result.error
    assert repr(kind) in result.error
    assert result.raw == line


# -- the format: retime


@pytest.mark.parametrize("event", [QUOTE, TRADE, BOOK], ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("shift", [3600.5, -10.0, 0.0])
def test_retime_moves_ts_and_nothing_else(event: MarketEvent, shift: float) -> None:
    moved = retime(event, shift)
    assert type(moved) is type(event)
    assert moved.ts == pytest.approx(event.ts + shift)
    for field in event.__struct_fields__:
        if field != "ts":
            assert getattr(moved, field) == getattr(event, field), field


@pytest.mark.parametrize("shift", [3600.5, -10.0])
def test_retime_moves_a_bars_start_too(shift: float) -> None:
    moved = retime(BAR, shift)
    assert isinstance(moved, Bar)
    assert moved.ts == pytest.approx(BAR.ts + shift)
    assert moved.start == pytest.approx(BAR.start + shift)
    assert moved.ts - moved.start == pytest.approx(BAR.ts - BAR.start)
    unchanged = ("symbol", "open", "high", "low", "close", "volume", "source", "interval_s")
    assert [getattr(moved, f) for f in unchanged] == [getattr(BAR, f) for f in unchanged]


def test_retime_leaves_the_original_alone() -> None:
    retime(BAR, 100.0)
    assert BAR.ts == T0
    assert BAR.start == T0 - 60.0


# -- the Recorder


class FakeClock:
    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def __call__(self) -> float:
        return self.readings.pop(0)


def test_recorder_writes_the_header_first() -> None:
    out = io.BytesIO()
    recorder = Recorder(out, "alpaca,polygon", ["MSFT", "AAPL"], clock=FakeClock(T0))
    assert recorder.count == 0
    assert out.getvalue() == encode_header("alpaca,polygon", ("AAPL", "MSFT"), T0)
    header = decode_header(out.getvalue())
    assert header.provider == "alpaca,polygon"
    assert header.symbols == ("AAPL", "MSFT")
    assert header.started == T0


def test_recorder_writes_one_line_per_event_with_the_delivery_time() -> None:
    out = io.BytesIO()
    recorder = Recorder(out, "alpaca", ["AAPL"], clock=FakeClock(T0, T0 + 1.0, T0 + 2.5))
    recorder([QUOTE, TRADE])
    recorder([BAR, BOOK])
    recorder.close()
    assert recorder.count == 4
    header, *lines = out.getvalue().splitlines(keepends=True)
    assert decode_header(header).started == T0
    assert lines == [
        encode_event(QUOTE, T0 + 1.0),
        encode_event(TRADE, T0 + 1.0),
        encode_event(BAR, T0 + 2.5),
        encode_event(BOOK, T0 + 2.5),
    ]
    decoded = [decode_event(line) for line in lines]
    assert decoded == [
        (T0 + 1.0, QUOTE),
        (T0 + 1.0, TRADE),
        (T0 + 2.5, BAR),
        (T0 + 2.5, BOOK),
    ]


def test_recorder_skips_status() -> None:
    out = io.BytesIO()
    recorder = Recorder(out, "alpaca", ["AAPL"], clock=FakeClock(T0, T0 + 1, T0 + 2))
    recorder([STATUS, QUOTE, STATUS])
    recorder([STATUS])
    assert recorder.count == 1
    _, *lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert b'"type":"quote"' in lines[0]
    assert b"session up" not in out.getvalue()


def test_recorder_empty_batch_writes_nothing() -> None:
    out = io.BytesIO()
    recorder = Recorder(out, "alpaca", [], clock=FakeClock(T0, T0 + 1))
    size = len(out.getvalue())
    recorder([])
    assert recorder.count == 0
    assert len(out.getvalue()) == size
    assert decode_header(out.getvalue()).symbols == ()


# -- the ReplayProvider


def trade(i: int, recv: float, latency: float = 0.001) -> Trade:
    """The i-th trade of a test recording (its id tells where it came from)."""
    return Trade("AAPL" if i % 2 else "MSFT", 100.0 + i, 1.0 + i, recv - latency, "alpaca", str(i))


def write_recording(
    path: Path,
    recvs: Sequence[float],
    *,
    symbols: Sequence[str] = ("AAPL", "MSFT"),
    extra: dict[int, bytes] | None = None,
) -> list[Trade]:
    """A recording of one trade per receive time; ``extra`` inserts raw lines before the
    event of that index. Returns the trades as recorded."""
    trades = [trade(i, recv) for i, recv in enumerate(recvs)]
    with path.open("wb") as file:
        file.write(encode_header("alpaca", tuple(symbols), recvs[0] if recvs else T0))
        for i, event in enumerate(trades):
            if extra and i in extra:
                file.write(extra[i])
            line = encode_event(event, recvs[i])
            assert line is not None
            file.write(line)
    return trades


def ids(events: Sequence[MarketEvent]) -> list[str]:
    return [e.trade_id for e in events if isinstance(e, Trade)]


async def test_speed_0_delivers_everything_fast_in_order_and_looking_live(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rec.jsonl"
    # 50 events over 49 s, recorded long ago
    trades = write_recording(path, [T0 + i for i in range(50)])
    provider = ReplayProvider(path, speed=0)
    sink = RecordingSink()
    started = time.monotonic()
    before = time.time()
    await asyncio.wait_for(provider.run(sink), 10)  # loop=False: run returns
    elapsed = time.monotonic() - started
    after = time.time()
    assert elapsed < 2.0  # 49 recorded seconds, flat out
    events = sink.events
    assert ids(events) == [str(i) for i in range(50)]
    for event, recorded in zip(events, trades, strict=True):
        assert isinstance(event, Trade)
        # moved to about now, recorded latency kept
        assert before - 1.0 <= event.ts <= after + 1.0
        assert msgspec.structs.replace(event, ts=recorded.ts) == recorded
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert sink.dead_letters == []
    assert sink.states == ["connecting", "subscribed"]
    assert sink.details == [str(path), "2 symbols"]


async def test_speed_0_delivers_in_big_batches_yielding_between_them(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    count = 2 * FAST_BATCH + 7
    write_recording(path, [T0 + i * 0.001 for i in range(count)])
    sink = RecordingSink()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(ticker())
    try:
        await asyncio.wait_for(ReplayProvider(path, speed=0).run(sink), 10)
    finally:
        other.cancel()
    assert [len(b) for b in sink.batches] == [FAST_BATCH, FAST_BATCH, 7]
    assert ids(sink.events) == [str(i) for i in range(count)]
    assert ticks >= 2  # the loop ran other tasks between batches


async def test_speed_n_keeps_the_spacing_divided_by_n(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    recvs = [T0 + 0.25 * i for i in range(5)]  # one second of recording
    write_recording(path, recvs)
    sink = RecordingSink()
    started = time.monotonic()
    before = time.time()
    await asyncio.wait_for(ReplayProvider(path, speed=10).run(sink), 10)
    elapsed = time.monotonic() - started
    assert 0.05 <= elapsed <= 1.0, elapsed  # 0.1 s, give or take a noisy machine
    events = sink.events
    assert ids(events) == ["0", "1", "2", "3", "4"]
    # timestamps: exactly the recorded spacing / 10, starting about now
    assert events[0].ts == pytest.approx(before, abs=1.0)
    for i, event in enumerate(events):
        assert event.ts - events[0].ts == pytest.approx(0.025 * i, abs=1e-6)
    # deliveries: apart by about the spacing / 10 (never early overall)
    assert len(sink.batches) == 5
    assert sink.arrivals[-1] - sink.arrivals[0] >= 0.09


async def test_speed_1_is_real_time(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write_recording(path, [T0, T0 + 0.3])
    sink = RecordingSink()
    started = time.monotonic()
    await asyncio.wait_for(ReplayProvider(path).run(sink), 10)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed <= 2.0, elapsed
    assert sink.events[1].ts - sink.events[0].ts == pytest.approx(0.3, abs=1e-6)
    assert sink.events[0].ts == pytest.approx(time.time(), abs=2.0)


async def test_events_recorded_together_are_delivered_together(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    close = BATCH_WINDOW_S / 2
    write_recording(path, [T0, T0, T0 + close, T0 + 0.1, T0 + 0.1, T0 + 0.2])
    sink = RecordingSink()
    await asyncio.wait_for(ReplayProvider(path, speed=1).run(sink), 10)
    assert [ids(b) for b in sink.batches] == [["0", "1", "2"], ["3", "4"], ["5"]]


async def test_bars_are_retimed_with_their_start(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    with path.open("wb") as file:
        file.write(encode_header("alpaca", ("AAPL",), T0))
        for event in (BAR, QUOTE, BOOK):
            line = encode_event(event, T0 + 0.5)
            assert line is not None
            file.write(line)
    sink = RecordingSink()
    now = time.time()
    await asyncio.wait_for(ReplayProvider(path, speed=0).run(sink), 10)
    bar, quote, book = sink.events
    assert isinstance(bar, Bar)
    assert bar.ts == pytest.approx(now, abs=5.0)
    assert bar.ts - bar.start == pytest.approx(60.0)
    assert msgspec.structs.replace(bar, ts=BAR.ts, start=BAR.start) == BAR
    assert msgspec.structs.replace(quote, ts=QUOTE.ts) == QUOTE
    assert msgspec.structs.replace(book, ts=BOOK.ts) == BOOK
    # the recorded order of event times survives the move
    assert bar.ts < quote.ts < book.ts


async def test_loop_starts_over_and_time_keeps_moving_forward(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    lines = 4
    write_recording(path, [T0 + 0.1 * i for i in range(lines)])  # 0.3 s per pass
    sink = RecordingSink(stop_after=3 * lines + 1)
    with pytest.raises(Enough):
        await asyncio.wait_for(ReplayProvider(path, speed=10, loop=True).run(sink), 10)
    events = sink.events
    assert len(events) > lines
    assert ids(events) == [str(i % lines) for i in range(len(events))]
    stamps = [e.ts for e in events]
    assert stamps == sorted(stamps)
    # each pass is later than the previous one, event for event
    for i in range(lines, len(events)):
        assert events[i].ts > events[i - lines].ts
    # one state report for the whole replay, not one per pass
    assert sink.states == ["connecting", "subscribed"]
    assert sink.details == [str(path), "2 symbols"]


async def test_loop_at_speed_0_starts_over_too(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    lines = FAST_BATCH + 10  # (see test_a_looping_replay_lets_other_tasks_run)
    write_recording(path, [T0 + 0.01 * i for i in range(lines)])
    sink = RecordingSink(stop_after=2 * lines + 5)
    with pytest.raises(Enough):
        await asyncio.wait_for(ReplayProvider(path, speed=0, loop=True).run(sink), 10)
    events = sink.events
    assert ids(events) == [str(i % lines) for i in range(len(events))]
    stamps = [e.ts for e in events]
    assert stamps == sorted(stamps)
    assert events[lines].ts >= events[lines - 1].ts
    assert events[2 * lines].ts > events[lines].ts > events[0].ts


class CountingClock:
    """time.time that gives up (raises Enough) after ``limit`` readings."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        if self.readings > self.limit:
            raise Enough
        return time.time()


@pytest.mark.parametrize(
    ("recvs", "speed"),
    [
        pytest.param([T0, T0 + 1, T0 + 2], 0.0, id="speed-0-small-file"),
        pytest.param([T0, T0, T0], 1.0, id="speed-1-one-batch"),
    ],
)
async def test_a_looping_replay_lets_other_tasks_run(
    tmp_path: Path, recvs: list[float], speed: float
) -> None:
    path = tmp_path / "rec.jsonl"
    write_recording(path, recvs)
    # the clock is read at least once per pass: it ends the replay if the loop is hogged
    clock = CountingClock(limit=20_000)
    provider = ReplayProvider(path, speed=speed, loop=True, clock=clock)
    sink = RecordingSink()
    task = asyncio.create_task(provider.run(sink))
    try:
        await asyncio.sleep(0.05)
        # the replay is still going (it loops) and this coroutine got to run meanwhile
        assert not task.done(), "the replay hogged the event loop until its clock gave up"
    finally:
        task.cancel()
        with pytest.raises((asyncio.CancelledError, Enough)):
            await task


async def test_a_looping_replay_of_a_recording_without_events_ends(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write_recording(path, [])
    provider = ReplayProvider(path, speed=0, loop=True, clock=CountingClock(limit=1000))
    await asyncio.wait_for(provider.run(RecordingSink()), 5)  # nothing to loop over


async def test_without_loop_run_returns_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write_recording(path, [T0, T0 + 0.05, T0 + 0.1])
    sink = RecordingSink()
    task = asyncio.create_task(ReplayProvider(path, speed=1, loop=False).run(sink))
    await asyncio.wait_for(asyncio.shield(task), 10)  # returns: the upstream ended
    assert task.done()
    assert not task.cancelled()
    assert task.exception() is None
    assert ids(sink.events) == ["0", "1", "2"]


async def test_a_corrupt_line_is_a_dead_letter_and_the_rest_plays(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    bad = b'{"recv": 1.0, "type": "quote", "data": {"symbol": "AAPL"}}\n'
    unknown = b'{"recv": 1.0, "type": "status", "data": {}}\n'
    write_recording(
        path,
        [T0 + 0.01 * i for i in range(6)],
        extra={2: b"this is not json\n", 3: b"\n   \n", 4: bad + unknown},
    )
    sink = RecordingSink()
    before = time.time()
    await asyncio.wait_for(ReplayProvider(path, speed=0).run(sink), 10)
    assert ids(sink.events) == ["0", "1", "2", "3", "4", "5"]
    # blank lines are skipped quietly; the others are dead letters, in file order
    assert [raw for raw, _, _ in sink.dead_letters] == [b"this is not json\n", bad, unknown]
    assert all(error for _, error, _ in sink.dead_letters)
    assert "unknown event type" in sink.dead_letters[2][1]
    assert all(received_at >= before - 1 for _, _, received_at in sink.dead_letters)


async def test_a_recording_deleted_while_looping_is_an_upstream_error(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write_recording(path, [T0, T0 + 0.02])

    class Deleting(RecordingSink):
        def __call__(self, events: Sequence[MarketEvent]) -> None:
            super().__call__(events)
            path.unlink(missing_ok=True)

    sink = Deleting()
    with pytest.raises(UpstreamError, match="cannot read"):
        await asyncio.wait_for(ReplayProvider(path, speed=1, loop=True).run(sink), 10)
    assert ids(sink.events) == ["0", "1"]  # the pass under way finished


def test_symbols_come_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write_recording(path, [T0], symbols=("TSLA", "AAPL", "BTC/USDT"))
    provider = ReplayProvider(path)
    assert provider.symbols == frozenset({"TSLA", "AAPL", "BTC/USDT"})
    assert provider.header.provider == "alpaca"
    assert provider.name == "replay"


def test_the_recording_sink_is_a_sink() -> None:
    sink: Sink = RecordingSink()
    sink([QUOTE])
    sink.dead_letter(b"x", "bad", T0)
    sink.state("connecting")
    assert isinstance(sink, RecordingSink)
    assert sink.events == [QUOTE]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(None, id="missing"),
        pytest.param(b"", id="empty"),
        pytest.param(b"hello\nworld\n", id="text"),
        pytest.param(encode_event(QUOTE, T0), id="no-header"),
        pytest.param(
            json.dumps(
                {"format": FORMAT, "version": 99, "provider": "x", "symbols": [], "started": 0}
            ).encode(),
            id="future-version",
        ),
    ],
)
def test_what_is_not_a_recording_is_a_config_error(tmp_path: Path, content: Any) -> None:
    path = tmp_path / "rec.jsonl"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        ReplayProvider(path)


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ReplayProvider(tmp_path)


def test_a_negative_speed_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    write_recording(path, [T0])
    with pytest.raises(ConfigError, match="speed"):
        ReplayProvider(path, speed=-1)
