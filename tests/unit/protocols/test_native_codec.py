"""Front 1 codec: the exact quote shape of the original service, typed channels, seq, ISO
timestamps."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tickcast.model.channel import builtin
from tickcast.model.envelope import Envelope
from tickcast.model.market import FEED, Bar, BookUpdate, MarketEvent, Quote, Status, Trade
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.native import codec
from tickcast.protocols.native.timefmt import iso_ms

topic_of = builtin().topic_of

#: 2023-05-01T12:34:56.789Z, the timestamp of the original protocol's example.
TS = 1_682_944_496.789
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def wrap(event: MarketEvent, seq: int = 1) -> Envelope:
    return Envelope(topic_of(event), seq, TS + 0.002, event)


def decode(data: bytes) -> dict[str, Any]:
    message = json.loads(data)
    assert isinstance(message, dict)
    return message


def mission_quote(volume: float = 1000.0) -> Quote:
    return Quote(
        symbol="AAPL",
        bid=150.20,
        ask=150.30,
        bid_size=300.0,
        ask_size=400.0,
        price=150.25,
        volume=volume,
        ts=TS,
        source="alpaca",
    )


# -- quotes


def test_quote_encodes_to_exactly_the_mission_shape() -> None:
    assert codec.encode(wrap(mission_quote())) == (
        b'{"symbol":"AAPL","price":150.25,"bid":150.2,"ask":150.3,"volume":1000,'
        b'"timestamp":"2023-05-01T12:34:56.789Z","source":"alpaca"}'
    )


def test_quote_fields_and_order_match_mission() -> None:
    message = decode(codec.encode(wrap(mission_quote())))
    assert list(message) == ["symbol", "price", "bid", "ask", "volume", "timestamp", "source"]
    assert message == {
        "symbol": "AAPL",
        "price": 150.25,
        "bid": 150.20,
        "ask": 150.30,
        "volume": 1000,
        "timestamp": "2023-05-01T12:34:56.789Z",
        "source": "alpaca",
    }
    assert type(message["volume"]) is int


def test_fractional_volume_stays_a_float() -> None:
    message = decode(codec.encode(wrap(mission_quote(volume=0.125))))
    assert message["volume"] == 0.125


def test_quote_with_seq_adds_topic_and_seq_at_the_end() -> None:
    message = decode(codec.encode_with_seq(wrap(mission_quote(), seq=42)))
    assert list(message) == [
        "symbol",
        "price",
        "bid",
        "ask",
        "volume",
        "timestamp",
        "source",
        "topic",
        "seq",
    ]
    assert message["topic"] == "quotes.AAPL"
    assert message["seq"] == 42


def test_seq_variant_adds_the_epoch_after_seq_and_the_plain_wire_never_shows_it() -> None:
    stamped = Envelope(topic_of(mission_quote()), 42, TS + 0.002, mission_quote(), "18bcfe56a1")
    message = decode(codec.encode_with_seq(stamped))
    assert list(message)[-3:] == ["topic", "seq", "epoch"]
    assert message["epoch"] == "18bcfe56a1"
    plain = codec.encode(stamped)
    assert plain == codec.encode(wrap(mission_quote(), seq=42))
    assert b"epoch" not in plain
    trade = Trade("AAPL", 150.0, 0.5, TS, "simulator", "t1")
    envelope = Envelope(topic_of(trade), 3, TS, trade, "e9")
    assert decode(codec.encode_with_seq(envelope))["epoch"] == "e9"
    assert "epoch" not in decode(codec.encode(envelope))


def test_codecs_are_registered_by_wire_name() -> None:
    assert set(codec.CODECS) == {"market", "market+seq"}
    assert codec.CODECS["market"] is codec.encode
    assert codec.CODECS["market+seq"] is codec.encode_with_seq


# -- other channels


def test_trade_carries_type_and_integral_size() -> None:
    trade = Trade("BTC/USDT", 65000.5, 2.0, TS, "simulator", "t-17")
    assert decode(codec.encode(wrap(trade))) == {
        "type": "trade",
        "symbol": "BTC/USDT",
        "price": 65000.5,
        "size": 2,
        "timestamp": "2023-05-01T12:34:56.789Z",
        "source": "simulator",
        "trade_id": "t-17",
    }


def test_trade_without_id_omits_trade_id_and_seq_variant_adds_topic() -> None:
    trade = Trade("AAPL", 150.0, 0.5, TS, "simulator")
    message = decode(codec.encode_with_seq(wrap(trade, seq=3)))
    assert message == {
        "type": "trade",
        "symbol": "AAPL",
        "price": 150.0,
        "size": 0.5,
        "timestamp": "2023-05-01T12:34:56.789Z",
        "source": "simulator",
        "topic": "trades.AAPL",
        "seq": 3,
    }


def test_bar_carries_type_and_iso_start() -> None:
    bar = Bar("AAPL", 1.0, 2.0, 0.5, 1.5, 300.0, TS - 60, TS, "simulator")
    assert decode(codec.encode(wrap(bar))) == {
        "type": "bar",
        "symbol": "AAPL",
        "open": 1.0,
        "high": 2.0,
        "low": 0.5,
        "close": 1.5,
        "volume": 300,
        "start": "2023-05-01T12:33:56.789Z",
        "timestamp": "2023-05-01T12:34:56.789Z",
        "source": "simulator",
    }


def test_book_carries_type_levels_and_provider_sequence() -> None:
    book = BookUpdate(
        "AAPL", ((100.0, 5.0), (99.5, 1.5)), ((100.5, 2.0),), False, TS, "simulator", 9
    )
    assert decode(codec.encode_with_seq(wrap(book, seq=4))) == {
        "type": "book",
        "symbol": "AAPL",
        "bids": [[100.0, 5.0], [99.5, 1.5]],
        "asks": [[100.5, 2.0]],
        "snapshot": False,
        "timestamp": "2023-05-01T12:34:56.789Z",
        "source": "simulator",
        "sequence": 9,
        "topic": "book.AAPL",
        "seq": 4,
    }


def test_feed_status_carries_type_provider_state_and_the_active_provider() -> None:
    status = Status(FEED, "alpaca", "backoff", "polygon", "connection closed", TS)
    assert topic_of(status) == Topic(Channel.STATUS, FEED)
    assert decode(codec.encode_with_seq(wrap(status, seq=3))) == {
        "type": "status",
        "provider": "alpaca",
        "state": "backoff",
        "active": "polygon",
        "reason": "connection closed",
        "timestamp": "2023-05-01T12:34:56.789Z",
        "source": "tickcast",
        "topic": "status.FEED",
        "seq": 3,
    }


def test_non_market_payload_is_refused() -> None:
    # Our own misuse, not the peer's: it raises rather than encoding something.
    bogus = Envelope(Topic(Channel.QUOTES, "AAPL"), 1, TS, "not an event")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        codec.encode(bogus)


# -- control messages


def test_pong_and_heartbeat_carry_an_iso_timestamp() -> None:
    assert decode(codec.control("pong", TS)) == {
        "type": "pong",
        "timestamp": "2023-05-01T12:34:56.789Z",
    }
    assert decode(codec.control("heartbeat", TS)) == {
        "type": "heartbeat",
        "timestamp": "2023-05-01T12:34:56.789Z",
    }


def test_other_control_messages_carry_only_their_fields() -> None:
    assert decode(codec.control("subscribed", TS, symbols=["AAPL"])) == {
        "type": "subscribed",
        "symbols": ["AAPL"],
    }


def test_error_message() -> None:
    assert codec.error("Invalid JSON") == b'{"type":"error","message":"Invalid JSON"}'


# -- iso_ms


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (TS, "2023-05-01T12:34:56.789Z"),
        (1_682_944_499.999, "2023-05-01T12:34:59.999Z"),
        (1_682_944_500.0, "2023-05-01T12:35:00.000Z"),
        (1_682_944_499.9996, "2023-05-01T12:35:00.000Z"),  # rounds into the next minute
        (1_682_944_499.9994, "2023-05-01T12:34:59.999Z"),
        (1_682_985_599.9996, "2023-05-02T00:00:00.000Z"),  # ... and the next day
        (1_704_067_199.9999, "2024-01-01T00:00:00.000Z"),  # ... and the next year
        (1_709_164_800.0, "2024-02-29T00:00:00.000Z"),  # leap day
        (-1.5, "1969-12-31T23:59:58.500Z"),
    ],
)
def test_iso_ms_formats_epoch_seconds(ts: float, expected: str) -> None:
    assert iso_ms(ts) == expected


def reference_iso(millis: int) -> str:
    moment = EPOCH + timedelta(milliseconds=millis)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_iso_ms_matches_datetime_for_random_timestamps() -> None:
    """Random instants 1970-2100, with sub-millisecond noise that must round away.

    Consecutive calls jump between minutes and days, exercising the cached prefix.
    """
    rng = random.Random(20230501)
    for _ in range(5000):
        millis = rng.randrange(0, 4_102_444_800_000)
        # +-0.4 ms of noise: far enough from .5 ms that float error cannot flip rounding.
        ts = millis / 1000 + rng.uniform(-0.0004, 0.0004)
        assert iso_ms(ts) == reference_iso(millis), ts


def test_iso_ms_walks_across_a_minute_boundary_millisecond_by_millisecond() -> None:
    start = 1_682_985_599_990  # 2023-05-01T23:59:59.990Z, the minute and the day roll over
    for millis in range(start, start + 25):
        assert iso_ms(millis / 1000) == reference_iso(millis)
    # And back to an earlier minute after the cached prefix moved on.
    assert iso_ms(TS) == "2023-05-01T12:34:56.789Z"
