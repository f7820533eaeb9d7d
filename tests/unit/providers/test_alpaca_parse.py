"""The Alpaca parser: recorded sessions against golden output, then each rule on its own.

Golden files: ``tests/fixtures/alpaca/<session>.jsonl`` holds recorded frames (one
``{"recv": <epoch s>, "frame": "<raw text>"}`` per line, from the real samples in
Alpaca's documentation); ``<session>.golden.json`` holds what ``parse`` made of each frame. To
regenerate the golden files after a deliberate change of normalization, run

    TICKCAST_REGEN_GOLDEN=1 .venv/bin/pytest tests/unit/providers/test_alpaca_parse.py

then review the diff of ``tests/fixtures/alpaca/*.golden.json`` before committing it.
Every session is also replayed as msgpack (``t`` as a Timestamp extension, as the
vendor sends it to its SDKs) and must give the same events.
"""

from __future__ import annotations

import calendar
import json
import os
from pathlib import Path
from typing import Any

import msgpack
import msgspec
import pytest

from tickcast.model.market import Bar, BookUpdate, Quote, Trade
from tickcast.providers.alpaca import messages as wire
from tickcast.providers.alpaca.parse import parse, rfc3339_to_epoch_s
from tickcast.providers.base import Parsed

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "alpaca"
SESSIONS = sorted(p.stem for p in FIXTURES.glob("*.jsonl"))
REGENERATE = os.environ.get("TICKCAST_REGEN_GOLDEN") == "1"
RECV = 1_700_000_000.5


def load_session(name: str) -> list[tuple[float, str]]:
    lines = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    return [(entry["recv"], entry["frame"]) for entry in map(json.loads, lines)]


def as_plain(parsed: Parsed) -> dict[str, Any]:
    """A Parsed as JSON-ready data: each event and control with its type name."""

    def typed(obj: msgspec.Struct) -> dict[str, Any]:
        return {"type": type(obj).__name__, **msgspec.to_builtins(obj)}

    plain = {
        "events": [typed(e) for e in parsed.events],
        "controls": [typed(c) for c in parsed.controls],
        "errors": [{"error": e.error, "raw": e.raw} for e in parsed.errors],
    }
    return json.loads(json.dumps(plain))  # tuples -> lists, as in the golden file


def to_msgpack(frame: str) -> bytes:
    """A JSON frame as the vendor sends it in msgpack: same maps, ``t`` as Timestamp."""

    def convert(item: Any) -> Any:
        if isinstance(item, dict) and isinstance(item.get("t"), str):
            text = item["t"]
            whole, _, fraction = text.rstrip("Z").partition(".")
            fields = (whole[:4], whole[5:7], whole[8:10], whole[11:13], whole[14:16], whole[17:19])
            seconds = calendar.timegm((*map(int, fields), 0, 0, 0))
            nanos = int(fraction.ljust(9, "0")) if fraction else 0
            return {**item, "t": msgpack.Timestamp(seconds, nanos)}
        return item

    return msgpack.packb([convert(item) for item in json.loads(frame)])


# -- golden sessions


@pytest.mark.parametrize("session", SESSIONS)
def test_recorded_session_matches_golden_output(session: str) -> None:
    frames = load_session(session)
    actual = [as_plain(parse(frame, recv)) for recv, frame in frames]
    golden_path = FIXTURES / f"{session}.golden.json"
    if REGENERATE:
        golden_path.write_text(json.dumps(actual, indent=1) + "\n")
    golden = json.loads(golden_path.read_text())
    assert len(actual) == len(golden), f"{session}: frame count"
    for index, (got, want) in enumerate(zip(actual, golden, strict=True)):
        where = f"{session} frame {index}"
        for part in ("events", "controls", "errors"):
            assert len(got[part]) == len(want[part]), f"{where}: number of {part}"
            for n, (item, expected) in enumerate(zip(got[part], want[part], strict=True)):
                assert item.keys() == expected.keys(), f"{where}: {part}[{n}] fields"
                for field, value in expected.items():
                    assert item[field] == value, f"{where}: {part}[{n}].{field}"


@pytest.mark.parametrize("session", ["session_sip", "canonical", "session_test", "session_crypto"])
def test_recorded_session_parses_the_same_from_msgpack(session: str) -> None:
    for recv, frame in load_session(session):
        from_json = parse(frame, recv)
        from_msgpack = parse(to_msgpack(frame), recv)
        assert from_msgpack.events == from_json.events
        assert from_msgpack.errors == []
        assert [type(c) for c in from_msgpack.controls] == [type(c) for c in from_json.controls]


def test_golden_sessions_cover_every_message_type() -> None:
    seen: set[str] = set()
    for session in SESSIONS:
        for _, frame in load_session(session):
            try:
                items = json.loads(frame)
            except ValueError:
                continue
            if isinstance(items, list):
                seen.update(item["T"] for item in items if isinstance(item, dict))
    known = {"t", "q", "b", "u", "d", "o", "s", "l", "x", "c", "i", "n"}
    assert known | {"success", "error", "subscription"} <= seen


# -- one rule at a time


def js(message: dict[str, Any]) -> str:
    """A message as the vendor writes it: compact JSON, keys in the given order."""
    return json.dumps(message, separators=(",", ":"))


# The canonical examples of Alpaca's documentation (the book: its schema, with made-up levels).
TRADE = js(
    {"T": "t", "i": 96921, "S": "AAPL", "x": "D", "p": 126.55, "s": 1}
    | {"t": "2021-02-22T15:51:44.208Z", "c": ["@", "I"], "z": "C"}
)
QUOTE = js(
    {"T": "q", "S": "FAKEPACA", "bx": "O", "bp": 133.85, "bs": 4, "ax": "R", "ap": 135.77}
    | {"as": 5, "c": ["R"], "z": "A", "t": "2024-07-24T07:56:53.639713735Z"}
)
BAR = js(
    {"T": "b", "S": "SPY", "o": 388.985, "h": 389.13, "l": 388.975, "c": 389.12, "v": 49378}
    | {"n": 461, "vw": 389.062639, "t": "2021-02-22T19:15:00Z"}
)
BOOK = js(
    {"T": "o", "S": "BTC/USD", "t": "2024-03-12T10:38:50.79613221Z"}
    | {"b": [{"p": 71849.4, "s": 0.5}, {"p": 71859.53, "s": 0.25}]}
    | {"a": [{"p": 71887.7, "s": 0.5}, {"p": 71882.79, "s": 0}], "r": True}
)
STATUS = js(
    {"T": "s", "S": "AAPL", "sc": "H", "sm": "Trading Halt", "rc": "T12", "rm": "Halted"}
    | {"t": "2021-02-22T19:15:00Z", "z": "C"}
)
LULD = js(
    {"T": "l", "S": "IONM", "u": 3.24, "d": 2.65, "i": "B"}
    | {"t": "2023-04-06T13:34:45.565004401Z", "z": "C"}
)
CANCEL = js(
    {"T": "x", "S": "GOOGL", "i": 465, "x": "D", "p": 105.31, "s": 300, "a": "C", "z": "C"}
    | {"t": "2023-04-06T13:15:42.83540958Z"}
)
CORRECTION = js(
    {"T": "c", "S": "EEM", "x": "M", "oi": 52983525033527, "op": 39.1582, "os": 440000}
    | {"oc": [" ", "7"], "ci": 52983525034326, "cp": 39.1809, "cs": 440000, "cc": [" ", "7"]}
    | {"z": "B", "t": "2023-04-06T14:25:06.542305024Z"}
)
IMBALANCE = js({"T": "i", "S": "AAPL", "p": 126.5, "z": "C", "t": "2021-02-22T20:50:00Z"})
NEWS = js({"T": "n", "id": 1, "headline": "h", "symbols": ["AAPL"], "source": "benzinga"})


def one(item: str, encoding: str = "json") -> Parsed:
    frame = f"[{item}]"
    return parse(to_msgpack(frame) if encoding == "msgpack" else frame, RECV)


ENCODINGS = pytest.mark.parametrize("encoding", ["json", "msgpack"])


@ENCODINGS
def test_trade(encoding: str) -> None:
    parsed = one(TRADE, encoding)
    ts = calendar.timegm((2021, 2, 22, 15, 51, 44)) + 0.208
    assert parsed.events == [Trade("AAPL", 126.55, 1.0, ts, "alpaca", "96921")]
    assert parsed.controls == parsed.errors == []


@ENCODINGS
def test_stock_quote_sizes_become_shares_and_price_is_the_mid(encoding: str) -> None:
    (quote,) = one(QUOTE, encoding).events
    assert quote == Quote(
        "FAKEPACA", 133.85, 135.77, 400.0, 500.0, (133.85 + 135.77) / 2, 0.0, quote.ts, "alpaca"
    )
    assert quote.ts == calendar.timegm((2024, 7, 24, 7, 56, 53)) + 0.639713735


@ENCODINGS
def test_crypto_quote_sizes_stay_in_coins(encoding: str) -> None:
    item = js(
        {"T": "q", "S": "BTC/USD", "bp": 71849.4, "bs": 0.553986, "ap": 71880.1, "as": 0.14}
        | {"t": "2024-03-12T10:38:51Z"}
    )
    (quote,) = one(item, encoding).events
    assert (quote.bid_size, quote.ask_size) == (0.553986, 0.14)


@ENCODINGS
@pytest.mark.parametrize(("kind", "interval_s"), [("b", 60), ("u", 60), ("d", 86400)])
def test_bars(encoding: str, kind: str, interval_s: int) -> None:
    (bar,) = one(BAR.replace('"T":"b"', f'"T":"{kind}"'), encoding).events
    start = float(calendar.timegm((2021, 2, 22, 19, 15, 0)))
    ts = start + 60 if interval_s == 60 else RECV
    assert bar == Bar(
        "SPY", 388.985, 389.13, 388.975, 389.12, 49378.0, start, ts, "alpaca", interval_s
    )


def test_updated_bar_replaces_the_bar_with_the_same_start() -> None:
    (bar,) = one(BAR).events
    (updated,) = one(BAR.replace('"T":"b"', '"T":"u"').replace("49378", "49512")).events
    assert (updated.symbol, updated.start, updated.interval_s) == (bar.symbol, bar.start, 60)
    assert updated.volume == 49512


@ENCODINGS
def test_orderbook_reset_is_a_snapshot_with_levels_best_first(encoding: str) -> None:
    (book,) = one(BOOK, encoding).events
    assert isinstance(book, BookUpdate)
    assert book.snapshot is True
    assert book.bids == ((71859.53, 0.25), (71849.4, 0.5))
    assert book.asks == ((71882.79, 0.0), (71887.7, 0.5))
    assert (book.sequence, book.source) == (0, "alpaca")
    (delta,) = one(BOOK.replace(',"r":true', ""), encoding).events
    assert isinstance(delta, BookUpdate)
    assert delta.snapshot is False


@ENCODINGS
@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (js({"T": "success", "msg": "connected"}), wire.Success("connected")),
        (js({"T": "error", "code": 406, "msg": "limit"}), wire.Error(406, "limit")),
        (
            js({"T": "subscription", "trades": [], "quotes": ["FAKEPACA"], "bars": ["FAKEPACA"]}),
            wire.Subscription(trades=[], quotes=["FAKEPACA"], bars=["FAKEPACA"]),
        ),
    ],
)
def test_control_messages_are_typed(encoding: str, item: str, expected: object) -> None:
    assert one(item, encoding) == Parsed([], [expected], [])


@ENCODINGS
@pytest.mark.parametrize(
    ("kind", "item"),
    [
        (wire.TradingStatus, STATUS),
        (wire.Luld, LULD),
        (wire.CancelError, CANCEL),
        (wire.Correction, CORRECTION),
        (wire.Imbalance, IMBALANCE),
        (wire.News, NEWS),
    ],
)
def test_side_channels_are_controls_not_dead_letters(encoding: str, kind: type, item: str) -> None:
    parsed = one(item, encoding)
    assert parsed.events == parsed.errors == []
    assert [type(c) for c in parsed.controls] == [kind]


def test_subscription_channels_tolerate_missing_and_null_lists() -> None:
    (reply,) = one('{"T":"subscription","trades":null,"dailyBars":["VOO"]}').controls
    assert reply.channel("trades") == []
    assert reply.channel("quotes") == []
    assert reply.channel("dailyBars") == ["VOO"]
    assert reply.channel("cancelErrors") == []


# -- timestamps


def test_nanoseconds_are_kept_as_far_as_a_float_allows() -> None:
    base = calendar.timegm((2023, 4, 6, 11, 54, 26))
    first = rfc3339_to_epoch_s("2023-04-06T11:54:26.838232225Z")
    second = rfc3339_to_epoch_s("2023-04-06T11:54:26.838232525Z")  # 300 ns later
    assert first == base + 0.838232225
    assert second > first
    assert second - first == pytest.approx(300e-9, abs=1e-7)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-02-22T19:15:00Z", calendar.timegm((2021, 2, 22, 19, 15, 0))),
        ("2021-02-22T15:51:44.208Z", calendar.timegm((2021, 2, 22, 15, 51, 44)) + 0.208),
        ("2021-02-22T14:51:44.5-01:00", calendar.timegm((2021, 2, 22, 15, 51, 44)) + 0.5),
        ("2021-02-22T17:51:44+02:00", calendar.timegm((2021, 2, 22, 15, 51, 44))),
    ],
)
def test_rfc3339_forms(text: str, expected: float) -> None:
    assert rfc3339_to_epoch_s(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2021-02-22",
        "2021-02-22T19:15:00",
        "2021-02-22T19:15:00.Z",
        "2021-13-22T19:15:00Z",
        "2021-02-22T19:15:00+0100",
        "2021-02-22T19:15:00+01:0x",
        "2021-02-22T19:15:00.123",
        "2021-02-22T19:15:61Z",
        "2021-02-22T24:15:00Z",
        "+021-02-22T19:15:00Z",
        "2021/02/22T19:15:00Z",
        "2021-02-22T19:1５:00Z",
    ],
)
def test_invalid_timestamp_is_a_parse_error(text: str) -> None:
    parsed = one(TRADE.replace("2021-02-22T15:51:44.208Z", text))
    assert parsed.events == []
    assert len(parsed.errors) == 1
    assert "timestamp" in parsed.errors[0].error


def test_msgpack_timestamp_keeps_nanoseconds() -> None:
    stamp = msgpack.Timestamp(1680782066, 838232225)
    raw = msgpack.packb([{"T": "t", "S": "AAPL", "i": 1, "p": 1.5, "s": 2, "t": stamp}])
    (trade,) = parse(raw, RECV).events
    assert trade.ts == 1680782066 + 0.838232225


@pytest.mark.parametrize(
    "stamp",
    [msgspec.msgpack.Ext(5, b"x"), msgspec.msgpack.Ext(-1, b"bad"), 1680782066, 16.5],
)
def test_msgpack_t_that_is_not_a_timestamp_is_a_parse_error(stamp: object) -> None:
    item = {"T": "t", "S": "AAPL", "i": 1, "p": 1.5, "s": 2, "t": stamp}
    raw = msgspec.msgpack.encode([item])
    parsed = parse(raw, RECV)
    assert parsed.events == []
    (error,) = parsed.errors
    assert "timestamp" in error.error or "`$.t`" in error.error


# -- errors: what is lost is one item, never the frame


@ENCODINGS
def test_bad_item_is_one_parse_error_and_the_rest_of_the_frame_survives(encoding: str) -> None:
    bad = QUOTE.replace('"bp":133.85', '"bp":"133.85"')
    frame = f"[{TRADE},{bad},{QUOTE}]"
    parsed = parse(to_msgpack(frame) if encoding == "msgpack" else frame, RECV)
    assert [type(e) for e in parsed.events] == [Trade, Quote]
    (error,) = parsed.errors
    assert "bp" in error.error
    if encoding == "json":
        assert error.raw == bad
    else:
        assert msgpack.unpackb(error.raw)["bp"] == "133.85"


def test_missing_field_names_the_field() -> None:
    parsed = one('{"T":"q","S":"AMD","bp":1.0,"t":"2021-02-22T19:15:00Z"}')
    assert parsed.events == []
    assert "bs" in parsed.errors[0].error


def test_unknown_type_is_a_parse_error_and_known_ones_survive() -> None:
    parsed = parse(f'[{{"T":"zz","S":"AAPL"}},{TRADE}]', RECV)
    assert [type(e) for e in parsed.events] == [Trade]
    (error,) = parsed.errors
    assert error.error.startswith("unknown message type")
    assert error.raw == '{"T":"zz","S":"AAPL"}'


@pytest.mark.parametrize("item", ["3", '"q"', "null", "[]", '{"S":"AAPL"}'])
def test_item_that_is_not_a_message_is_a_parse_error(item: str) -> None:
    parsed = parse(f"[{item},{QUOTE}]", RECV)
    assert [type(e) for e in parsed.events] == [Quote]
    assert [e.raw for e in parsed.errors] == [item]


def test_invalid_json_is_one_parse_error_for_the_frame() -> None:
    frame = f"[{QUOTE},{{"
    parsed = parse(frame, RECV)
    assert parsed.events == parsed.controls == []
    (error,) = parsed.errors
    assert error.raw == frame
    assert error.error.startswith("invalid JSON")


def test_invalid_msgpack_is_one_parse_error_for_the_frame() -> None:
    raw = to_msgpack(f"[{QUOTE}]")[:-3]
    (error,) = parse(raw, RECV).errors
    assert (error.raw, error.error.startswith("invalid msgpack")) == (raw, True)


@pytest.mark.parametrize("frame", ['{"T":"success","msg":"connected"}', "42", '"text"', "null"])
def test_frame_that_is_not_an_array_is_one_parse_error(frame: str) -> None:
    (error,) = parse(frame, RECV).errors
    assert error.raw == frame
    assert "not an array" in error.error


def test_json_delivered_as_bytes_is_parsed_as_json() -> None:
    assert parse(f"[{TRADE}]".encode(), RECV) == parse(f"[{TRADE}]", RECV)


def test_empty_frame_is_empty() -> None:
    assert parse("[]", RECV) == Parsed([], [], [])
