"""The Polygon stocks parser: each event type, per-event letters, timestamps, bad input,
status meanings, recorded sessions replayed against golden normalized output; and the
adapter's configuration (``PolygonProvider`` arguments and ``from_settings``, no I/O).

Golden files: ``tests/fixtures/polygon/<session>.jsonl`` holds recorded frames (one
``{"recv": <epoch s>, "frame": "<raw text>"}`` per line, built from the vendor's published
sample messages, see the README there); ``<session>.golden.jsonl`` holds, per frame, what
``parse`` must make of it. When the parser's output changes on purpose, regenerate the
golden files, read the diff, and commit them with the change::

    .venv/bin/python tests/unit/providers/test_polygon_parse.py --regenerate

Never regenerate to make a failing test pass without reading the diff.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tickcast.config.settings import Settings
from tickcast.errors import ConfigError
from tickcast.model.market import Bar, Quote, Trade
from tickcast.providers.base import Parsed, ParseError
from tickcast.providers.polygon.messages import (
    Imbalance,
    LimitUpLimitDown,
    QuoteEvent,
    Status,
    TradeEvent,
)
from tickcast.providers.polygon.parse import (
    ROUND_LOT_SHARES,
    SOURCE,
    StatusKind,
    classify,
    epoch_s,
    parse,
    subscription_param,
)
from tickcast.providers.polygon.stream import PolygonProvider

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "polygon"
SESSIONS = ["stocks_session", "errors_session"]
NOW = 1_700_000_000.0

# The vendor's own samples (from Polygon's documentation).
TRADE = (
    '{"ev":"T","sym":"AAPL","i":"5096","x":10,"p":161.87,"s":300,"c":[14,41],'
    '"t":1651684192462,"q":4009402,"z":3}'
)
QUOTE = (
    '{"ev":"Q","sym":"MSFT","bx":4,"bp":114.125,"bs":100,"ax":7,"ap":114.128,"as":160,'
    '"c":0,"i":[604],"t":1536036818784,"q":50385480,"z":3}'
)
SECOND = (
    '{"ev":"A","sym":"SPCE","v":200,"av":8642007,"op":25.66,"vw":25.3981,"o":25.39,'
    '"c":25.39,"h":25.39,"l":25.39,"a":25.3714,"z":50,"s":1610144868000,"e":1610144869000}'
)
MINUTE = (
    '{"ev":"AM","sym":"GTE","v":4110,"av":9470157,"op":0.4372,"vw":0.4488,"o":0.4488,'
    '"c":0.4486,"h":0.4489,"l":0.4486,"a":0.4352,"z":685,"s":1610144640000,"e":1610144700000}'
)
LULD = (
    '{"ev":"LULD","T":"MSFT","h":218.96,"l":198.11,"i":[21],"z":3,"t":1601316752683746,"q":290317}'
)
NOI = (
    '{"ev":"NOI","T":"NTEST.Q","t":1601318039223013600,"at":930,"a":"M","i":44,"x":10,'
    '"o":480,"p":440,"b":25.03}'
)


def frame(*items: str) -> str:
    return "[" + ",".join(items) + "]"


def only(parsed: Parsed) -> Any:
    assert not parsed.errors, parsed.errors
    assert len(parsed.events) + len(parsed.controls) == 1
    return (parsed.events or parsed.controls)[0]


# -- each event type


def test_trade_sample_becomes_a_trade() -> None:
    assert only(parse(frame(TRADE), NOW)) == Trade(
        symbol="AAPL",
        price=161.87,
        size=300.0,
        ts=1651684192.462,
        source="polygon",
        trade_id="5096",
    )


def test_quote_sample_becomes_a_quote_in_shares_with_mid_price_and_no_volume() -> None:
    quote = only(parse(frame(QUOTE), NOW))
    assert quote == Quote(
        symbol="MSFT",
        bid=114.125,
        ask=114.128,
        bid_size=100.0 * ROUND_LOT_SHARES,
        ask_size=160.0 * ROUND_LOT_SHARES,
        price=(114.125 + 114.128) / 2,
        volume=0.0,
        ts=1536036818.784,
        source="polygon",
    )
    assert type(quote.bid_size) is float


def test_second_aggregate_becomes_a_one_second_bar() -> None:
    assert only(parse(frame(SECOND), NOW)) == Bar(
        symbol="SPCE",
        open=25.39,
        high=25.39,
        low=25.39,
        close=25.39,
        volume=200.0,
        start=1610144868.0,
        ts=1610144869.0,
        source="polygon",
        interval_s=1,
    )


def test_minute_aggregate_becomes_a_one_minute_bar() -> None:
    assert only(parse(frame(MINUTE), NOW)) == Bar(
        symbol="GTE",
        open=0.4488,
        high=0.4489,
        low=0.4486,
        close=0.4486,
        volume=4110.0,
        start=1610144640.0,
        ts=1610144700.0,
        source="polygon",
        interval_s=60,
    )


def test_status_is_a_typed_control() -> None:
    status = only(parse('[{"ev":"status","status":"connected","message":"Connected"}]', NOW))
    assert status == Status(status="connected", message="Connected")
    assert status.ev == "status"


@pytest.mark.parametrize(
    ("item", "kind", "symbol"),
    [(LULD, LimitUpLimitDown, "MSFT"), (NOI, Imbalance, "NTEST.Q")],
    ids=["LULD", "NOI"],
)
def test_luld_and_noi_are_controls_never_dead_letters(item: str, kind: type, symbol: str) -> None:
    control = only(parse(frame(item), NOW))
    assert type(control) is kind
    assert control.T == symbol  # noqa: SIM300 - T is the wire field, not a constant


def test_a_frame_may_mix_event_types_and_statuses_in_order() -> None:
    status = '{"ev":"status","status":"success","message":"subscribed to: AM.*"}'
    parsed = parse(frame(TRADE, QUOTE, status, MINUTE, SECOND, LULD), NOW)
    assert [type(e) for e in parsed.events] == [Trade, Quote, Bar, Bar]
    assert [type(c) for c in parsed.controls] == [Status, LimitUpLimitDown]
    assert parsed.errors == []
    assert {e.source for e in parsed.events} == {SOURCE}


def test_bytes_frames_parse_like_text() -> None:
    assert parse(frame(TRADE, QUOTE).encode(), NOW) == parse(frame(TRADE, QUOTE), NOW)


def test_empty_frame_is_nothing() -> None:
    assert parse("[]", NOW) == Parsed([], [], [])


def test_fractional_size_comes_from_ds_when_present() -> None:
    item = '{"ev":"T","sym":"AAPL","i":"7","p":161.87,"s":0,"ds":"0.25","t":1651684192462}'
    assert only(parse(frame(item), NOW)).size == 0.25


def test_optional_fields_may_be_absent() -> None:
    item = '{"ev":"T","sym":"AAPL","p":161.87,"s":100,"t":1651684192462}'
    trade = only(parse(frame(item), NOW))
    assert trade.trade_id == ""
    assert trade.size == 100.0


# -- the same letter means different things per event


def test_letters_c_z_i_mean_what_their_event_says() -> None:
    trade_msg = msgspec.json.decode(TRADE, type=TradeEvent)
    quote_msg = msgspec.json.decode(QUOTE, type=QuoteEvent)
    assert trade_msg.c == [14, 41]  # T: conditions, a list
    assert trade_msg.z == 3  # T: tape
    assert trade_msg.i == "5096"  # T: trade id, a string
    assert quote_msg.c == 0  # Q: one condition
    assert quote_msg.i == [604]  # Q: indicators, a list
    assert quote_msg.z == 3  # Q: tape
    bar = only(parse(frame(SECOND), NOW))
    assert bar.close == 25.39  # A/AM: c is the close
    assert bar.volume == 200.0  # and z (50, the average size) is not the volume


def test_a_trade_with_a_numeric_id_or_a_quote_with_a_condition_list_is_a_dead_letter() -> None:
    trade = TRADE.replace('"i":"5096"', '"i":5096')
    quote = QUOTE.replace('"c":0', '"c":[0]')
    parsed = parse(frame(trade, quote), NOW)
    assert parsed.events == []
    assert [e.error for e in parsed.errors] == [
        "T: Expected `str`, got `int` - at `$.i`",
        "Q: Expected `int | null`, got `array` - at `$.c`",
    ]


# -- timestamps: "as they come"


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        pytest.param(1651684192462, 1651684192.462, id="ms"),
        pytest.param(1601316752683746, 1601316752.683746, id="us"),
        pytest.param(1601318039223013600, 1601318039.2230136, id="ns"),
        pytest.param(1651684192, 1651684192.0, id="s"),
    ],
)
def test_epoch_s_tells_units_apart_by_magnitude(t: int, expected: float) -> None:
    assert epoch_s(t) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "t", [1651684192462, 1651684192462000, 1651684192462000000], ids=["ms", "us", "ns"]
)
def test_trade_timestamps_in_ms_us_and_ns_give_the_same_time(t: int) -> None:
    item = TRADE.replace("1651684192462", str(t))
    assert only(parse(frame(item), NOW)).ts == pytest.approx(1651684192.462, abs=1e-6)


def test_unit_boundaries() -> None:
    assert epoch_s(10**11) == 10**8  # the smallest ms value: March 1973
    assert epoch_s(10**11 - 1) == 10**11 - 1  # below it: seconds
    assert epoch_s(10**14) == 10**8
    assert epoch_s(10**17) == 10**8


# -- bad input


def test_bad_items_are_parse_errors_and_the_rest_of_the_frame_survives() -> None:
    missing_price = '{"ev":"T","sym":"AAPL","i":"1","s":100,"t":1651684192462}'
    wrong_type = QUOTE.replace('"bp":114.125', '"bp":"114.125"')
    unknown = '{"ev":"FMV","sym":"AAPL","fmv":161.9,"t":1651684192462}'
    no_ev = '{"sym":"AAPL"}'
    items = [TRADE, missing_price, wrong_type, unknown, LULD, no_ev, "42", QUOTE]
    parsed = parse(frame(*items), NOW)
    assert [type(e) for e in parsed.events] == [Trade, Quote]
    assert [type(c) for c in parsed.controls] == [LimitUpLimitDown]
    assert parsed.errors == [
        ParseError("T: Object missing required field `p`", missing_price),
        ParseError("Q: Expected `float`, got `str` - at `$.bp`", wrong_type),
        ParseError("unknown event type 'FMV'", unknown),
        ParseError("missing 'ev'", no_ev),
        ParseError("expected a JSON object with an 'ev' field", "42"),
    ]


def test_an_unconvertible_fractional_size_is_a_parse_error() -> None:
    item = '{"ev":"T","sym":"AAPL","i":"7","p":1.0,"s":0,"ds":"a quarter","t":1651684192462}'
    parsed = parse(frame(TRADE, item), NOW)
    assert len(parsed.events) == 1
    assert parsed.errors[0].error.startswith("T: invalid value:")
    assert parsed.errors[0].raw == item


@pytest.mark.parametrize(
    "raw",
    ['[{"ev":"T","sym":"AAPL"', "not json", "", b"\xff\xfe"],
    ids=["truncated", "text", "empty", "not-utf8"],
)
def test_invalid_json_is_one_parse_error_with_the_whole_frame(raw: str | bytes) -> None:
    parsed = parse(raw, NOW)
    assert parsed.events == []
    assert parsed.controls == []
    assert len(parsed.errors) == 1
    assert parsed.errors[0].raw == raw
    assert parsed.errors[0].error.startswith("invalid JSON")


@pytest.mark.parametrize("raw", [TRADE, "42", '"T"', "null"], ids=["object", "int", "str", "null"])
def test_a_frame_that_is_not_an_array_is_one_parse_error(raw: str) -> None:
    parsed = parse(raw, NOW)
    assert parsed.events == []
    assert [e.raw for e in parsed.errors] == [raw]
    assert parsed.errors[0].error.startswith("expected a JSON array of messages")


# -- what status messages mean


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        ("connected", "Connected Successfully", StatusKind.CONNECTED),
        ("auth_success", "authenticated", StatusKind.AUTHENTICATED),
        ("success", "authenticated", StatusKind.AUTHENTICATED),  # 2019 clusters
        ("success", "subscribed to: T.AAPL", StatusKind.SUBSCRIBED),
        ("success", "unsubscribed to: T.AAPL", StatusKind.UNSUBSCRIBED),
        ("success", "something new", StatusKind.INFO),
        ("auth_failed", "authentication failed", StatusKind.AUTH_FAILED),
        ("error", "authentication failed", StatusKind.AUTH_FAILED),  # before 2021
        ("auth_failed", "Your plan doesn't include websocket access.", StatusKind.AUTH_FAILED),
        ("error", "Not authorized to access Q", StatusKind.AUTH_FAILED),
        ("auth_timeout", "No authentication request received.", StatusKind.AUTH_TIMEOUT),
        ("max_connections", "Maximum number of connections exceeded.", StatusKind.LIMIT),
        ("slow_consumer", "too slow", StatusKind.DISCONNECTED),
        ("force_disconnect", "bye", StatusKind.DISCONNECTED),
        ("error", "invalid subscription", StatusKind.ERROR),
        ("maintenance", "soon", StatusKind.INFO),
    ],
)
def test_classify(status: str, message: str, kind: StatusKind) -> None:
    assert classify(Status(status=status, message=message)) is kind


def test_subscription_param() -> None:
    assert subscription_param(Status(status="success", message="subscribed to: AM.*")) == "AM.*"
    ack = Status(status="success", message="unsubscribed to: T.AAPL")
    assert subscription_param(ack) == "T.AAPL"


def test_status_encodes_as_on_the_wire() -> None:
    status = Status(status="connected", message="Connected Successfully")
    assert msgspec.json.encode([status]) == (
        b'[{"ev":"status","status":"connected","message":"Connected Successfully"}]'
    )


# -- recorded sessions against golden output


def normalized(parsed: Parsed) -> dict[str, Any]:
    """What the golden files hold for one frame: plain JSON, type names included."""

    def typed(value: Any) -> dict[str, Any]:
        out = {"type": type(value).__name__, **msgspec.to_builtins(value)}
        if isinstance(value, Status):
            out["kind"] = classify(value).value
        return out

    return {
        "events": [typed(e) for e in parsed.events],
        "controls": [typed(c) for c in parsed.controls],
        "errors": [{"error": e.error, "raw": e.raw} for e in parsed.errors],
    }


def replay(session: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / f"{session}.jsonl").read_text().splitlines()
    out = []
    for line in lines:
        record = json.loads(line)
        out.append({"recv": record["recv"], **normalized(parse(record["frame"], record["recv"]))})
    return out


def golden(session: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / f"{session}.golden.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("session", SESSIONS)
def test_recorded_session_matches_golden_output_field_by_field(session: str) -> None:
    actual, expected = replay(session), golden(session)
    assert len(actual) == len(expected), "one golden record per recorded frame"
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        where = f"{session} frame {index + 1}"
        assert got["recv"] == want["recv"], where
        for part in ("events", "controls", "errors"):
            assert len(got[part]) == len(want[part]), f"{where}: number of {part}"
            for n, (item, want_item) in enumerate(zip(got[part], want[part], strict=True)):
                assert item.keys() == want_item.keys(), f"{where}: {part}[{n}] fields"
                for field, value in want_item.items():
                    assert item[field] == value, f"{where}: {part}[{n}].{field}"


def test_recorded_sessions_cover_every_kind_of_frame() -> None:
    records = [r for s in SESSIONS for r in golden(s)]
    events = {(e["type"], e.get("interval_s")) for r in records for e in r["events"]}
    assert events == {("Trade", None), ("Quote", None), ("Bar", 1), ("Bar", 60)}
    controls = {c["type"] for r in records for c in r["controls"]}
    assert controls == {"Status", "LimitUpLimitDown", "Imbalance"}
    kinds = {c.get("kind") for r in records for c in r["controls"]}
    assert {"connected", "authenticated", "subscribed", "auth_failed", "limit"} <= kinds
    assert any(r["events"] and r["controls"] for r in records), "a mixed frame"
    assert any(r["events"] and r["errors"] for r in records), "bad items among good ones"


# -- the adapter's configuration

KEY = "key"
SYMBOLS = ("AAPL", "MSFT")


@pytest.mark.parametrize(
    ("args", "options", "match"),
    [
        (("http//nope", KEY, SYMBOLS), {}, "invalid polygon url"),
        (("ws://h/stocks", "", SYMBOLS), {}, "key is empty"),
        (("ws://h/stocks", KEY, ()), {}, "stock tickers"),
        (("ws://h/stocks", KEY, ("BTC/USDT",)), {}, "stock tickers"),
        (("ws://h/stocks", KEY, SYMBOLS), {"channels": ("T", "XQ")}, "channels"),
        (("ws://h/stocks", KEY, SYMBOLS), {"handshake_timeout_s": 0}, "handshake_timeout_s"),
    ],
    ids=["url", "key", "no-symbols", "crypto", "channel", "timeout"],
)
def test_provider_refuses_bad_arguments(
    args: tuple[str, str, tuple[str, ...]], options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        PolygonProvider(*args, **options)


def test_from_settings_needs_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("TICKCAST_") or name in ("POLYGON_API_KEY", "MASSIVE_API_KEY"):
            monkeypatch.delenv(name)
    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        PolygonProvider.from_settings(Settings().upstream)
    monkeypatch.setenv("POLYGON_API_KEY", "secret")
    prov = PolygonProvider.from_settings(Settings().upstream)
    assert prov.symbols == {s for s in Settings().symbols if "/" not in s}
    assert prov.params[:3] == ("T.AAPL", "Q.AAPL", "AM.AAPL")
    with pytest.raises(ConfigError, match="stocks"):
        PolygonProvider.from_settings(Settings(symbols=("BTC/USDT",)).upstream)
    with pytest.raises(ConfigError, match="invalid polygon url"):
        PolygonProvider.from_settings(Settings(polygon_url="not a url").upstream)


def regenerate() -> None:
    for session in SESSIONS:
        path = FIXTURES / f"{session}.golden.jsonl"
        lines = [json.dumps(record, ensure_ascii=False) for record in replay(session)]
        path.write_text("\n".join(lines) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit(f"usage: {sys.argv[0]} --regenerate")
    regenerate()
