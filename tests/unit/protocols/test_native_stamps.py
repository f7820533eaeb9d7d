"""Latency stamps (``stamps=1``): the event and receive stamps encoded once per update on
the stamped wires, the send stamp spliced per connection at write time."""

from __future__ import annotations

import json
import random
from itertools import pairwise
from typing import Any

import pytest

from tickcast.client.advice import feed_url
from tickcast.errors import InvalidMessage
from tickcast.model.channel import builtin
from tickcast.model.envelope import Envelope
from tickcast.model.market import FEED, Bar, BookUpdate, MarketEvent, Quote, Status, Trade
from tickcast.model.signal import Signal
from tickcast.protocols.native import client as wire
from tickcast.protocols.native import codec, stamps
from tickcast.protocols.native.session import Options, parse_options
from tickcast.protocols.wire import Encoded

topic_of = builtin().topic_of
TS = 1_682_944_496.789  # 2023-05-01T12:34:56.789Z
RECV = TS + 0.000_412
SEND = TS + 0.002_108


def events() -> list[MarketEvent | Signal]:
    return [
        Quote("AAPL", 150.2, 150.3, 300.0, 400.0, 150.25, 1000.0, TS, "alpaca"),
        Trade("AAPL", 150.25, 100.0, TS, "alpaca", "t1"),
        Bar("AAPL", 150.1, 150.4, 150.0, 150.2, 12000.0, TS - 60, TS, "alpaca"),
        BookUpdate("AAPL", ((150.2, 300.0),), ((150.3, 200.0),), True, TS, "alpaca", 17),
        Status(FEED, "alpaca", "up", "alpaca", 'a "quoted" } reason}}', TS, "tickcast"),
        Signal("MA_CROSS", "BUY", 162.5, "AAPL", "1m", "2023-05-01T12:34:56.789Z", "s1", "engine"),
    ]


def wrap(event: MarketEvent | Signal, seq: int = 7) -> Envelope:
    return Envelope(topic_of(event), seq, RECV, event, "18bcfe5682a1b2c3")


def loads(data: bytes) -> dict[str, Any]:
    message = json.loads(data)
    assert isinstance(message, dict)
    return message


@pytest.mark.parametrize("event", events(), ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(
    ("stamped", "plain"),
    [
        (stamps.encode_stamped, codec.encode),
        (stamps.encode_seq_stamped, codec.encode_with_seq),
    ],
    ids=["plain", "seq"],
)
def test_a_stamped_message_is_the_plain_one_plus_stamps_as_its_last_field(
    event: MarketEvent | Signal, stamped: Any, plain: Any
) -> None:
    envelope = wrap(event)
    shared = stamped(envelope)
    message = loads(shared)  # valid JSON before the send stamp too
    assert list(message)[-1] == "stamps"
    assert message.pop("stamps") == {
        "event_us": round(TS * 1e6),  # a signal's: the time its timestamp names
        "recv_us": round(RECV * 1e6),
    }
    assert message == loads(plain(envelope))
    # the plain wire's bytes, then the stamps: nothing else about the message moved
    assert shared.startswith(plain(envelope)[:-1] + b',"stamps":{')


@pytest.mark.parametrize("event", events(), ids=lambda e: type(e).__name__)
def test_the_send_stamp_completes_the_message_in_order(event: MarketEvent | Signal) -> None:
    item = Encoded(stamps.encode_seq_stamped(wrap(event)), ts=event.ts, topic="x")
    (out,) = stamps.stamped_payloads([item], SEND, array=False)
    message = loads(out)
    assert list(message["stamps"]) == ["event_us", "recv_us", "send_us"]
    lat = message["stamps"]
    assert all(type(v) is int for v in lat.values())
    assert lat["event_us"] <= lat["recv_us"] <= lat["send_us"]
    assert lat["send_us"] == round(SEND * 1e6)
    assert stamps.stamp(item.payload, b"%d" % round(SEND * 1e6)) == out
    assert item.payload == stamps.encode_seq_stamped(wrap(event))  # the shared one untouched


def test_every_write_gets_its_own_send_stamp_on_the_same_shared_item() -> None:
    item = Encoded(stamps.encode_stamped(wrap(events()[0])))
    (first,) = stamps.stamped_payloads([item], SEND, array=False)
    (later,) = stamps.stamped_payloads([item], SEND + 1.5, array=True)
    assert (
        loads(first)["stamps"]["send_us"] + round(1.5e6)
        == json.loads(later)[0]["stamps"]["send_us"]
    )


def test_an_event_without_a_readable_time_has_no_event_stamp() -> None:
    signal = Signal("MA_CROSS", "BUY", 162.5, "AAPL", "1m", "soon", "s1", "engine")
    item = Encoded(stamps.encode_stamped(wrap(signal)))
    (out,) = stamps.stamped_payloads([item], SEND, array=False)
    assert loads(out)["stamps"] == {
        "recv_us": round(RECV * 1e6),
        "send_us": round(SEND * 1e6),
    }


def test_control_replies_and_foreign_payloads_pass_untouched() -> None:
    control = Encoded(codec.control("subscribed", 0, symbols=["AAPL"]), control=True)
    plain = Encoded(codec.encode(wrap(events()[1])))  # not a stamped wire's message
    nested = Encoded(b'{"a":{"b":1}}')
    tiny = Encoded(b"{}")
    items = [control, plain, nested, tiny]
    out = stamps.stamped_payloads(items, SEND, array=False)
    assert all(a is b.payload for a, b in zip(out, items, strict=True))
    for payload in (control.payload, plain.payload, nested.payload, tiny.payload):
        assert stamps.stamp(payload, b"1") is payload


def test_random_batches_stay_valid_json_single_and_as_an_array() -> None:
    rng = random.Random(15)
    pool = events()
    for _ in range(200):
        batch: list[Encoded] = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.2:
                batch.append(Encoded(codec.control("pong", TS), control=True))
                continue
            event = rng.choice(pool)
            wire = rng.choice([stamps.encode_stamped, stamps.encode_seq_stamped])
            batch.append(Encoded(wire(wrap(event, rng.randint(1, 10**9)))))
        wall = TS + rng.random() * 10
        singles = [loads(p) for p in stamps.stamped_payloads(batch, wall, array=False)]
        assert len(singles) == len(batch)
        for item, message in zip(batch, singles, strict=True):
            assert ("stamps" in message) is (not item.control)
            if not item.control:
                assert message["stamps"]["send_us"] == round(wall * 1e6)
        # as array frames: runs of data messages in arrays, each control reply alone
        frames = [json.loads(p) for p in stamps.stamped_payloads(batch, wall, array=True)]
        flat = [m for f in frames for m in (f if isinstance(f, list) else [f])]
        assert flat == singles
        assert all(isinstance(f, list) or f["type"] == "pong" for f in frames)
        assert all(not (isinstance(a, list) and isinstance(b, list)) for a, b in pairwise(frames))


@pytest.mark.parametrize(
    ("query", "seq", "stamped", "wire"),
    [
        ("stamps=1", False, True, "market+stamps"),
        ("stamps=true&seq=1", True, True, "market+seq+stamps"),
        ("stamps=0&seq=1", True, False, "market+seq"),
        ("", False, False, "market"),
    ],
)
def test_the_option_picks_the_wire(query: str, seq: bool, stamped: bool, wire: str) -> None:
    options, errors = parse_options(query)
    assert errors == []
    assert (options.seq, options.stamps, options.wire) == (seq, stamped, wire)
    assert wire in stamps.CODECS
    assert (wire in stamps.STAMPED_WIRES) is stamped


@pytest.mark.parametrize("value", ["yes", "", "2", "on"])
def test_a_bad_stamps_value_is_refused_and_the_default_used(value: str) -> None:
    options, errors = parse_options(f"stamps={value}")
    assert errors == ["option stamps must be 0 or 1"]
    assert options == Options()


# -- the client's side


@pytest.mark.parametrize("event", events(), ids=lambda e: type(e).__name__)
def test_the_client_reads_the_stamps_beside_the_payload(event: MarketEvent | Signal) -> None:
    envelope = wrap(event)
    item = Encoded(stamps.encode_seq_stamped(envelope))
    (frame,) = stamps.stamped_payloads([item], SEND, array=True)
    (update,) = wire.decode(frame)
    assert isinstance(update, wire.Update)
    plain = wire.decode(codec.encode_with_seq(envelope))[0]
    assert update._replace(stamps=None) == plain  # the payload reads as without stamps
    assert update.stamps == wire.Stamps(round(TS * 1e6), round(RECV * 1e6), round(SEND * 1e6))
    assert update.stamps.upstream_us == 412
    assert update.stamps.gateway_us == 1696
    assert update.stamps.downstream_us is None
    assert update.stamps._replace(arrived_us=round(SEND * 1e6) + 50).downstream_us == 50


def test_the_client_reads_messages_without_stamps_as_before() -> None:
    (update,) = wire.decode(codec.encode(wrap(events()[0])))
    assert isinstance(update, wire.Update)
    assert update.stamps is None
    assert wire.decode(b'{"type":"pong","timestamp":"2023-05-01T12:34:56.789Z","stamps":1}')[
        0
    ] == wire.Pong(TS)  # a reply's stamps (none are sent) are not read


@pytest.mark.parametrize(
    "stamps_json",
    [
        '"soon"',
        '{"recv_us":1}',
        '{"recv_us":1.5,"send_us":2}',
        '{"event_us":"x","recv_us":1,"send_us":2}',
    ],
)
def test_malformed_stamps_are_an_unreadable_message(stamps_json: str) -> None:
    quote = codec.encode(wrap(events()[0]))
    with pytest.raises(InvalidMessage, match="stamps"):
        wire.decode(quote[:-1] + b',"stamps":' + stamps_json.encode() + b"}")


def test_the_sdk_asks_for_stamps_only_when_told() -> None:
    assert "stamps" not in feed_url("ws://h/ws/market/feed", 5, True)
    assert feed_url("ws://h/f", 0, False, stamps=True) == "ws://h/f?seq=1&stamps=1"
    assert feed_url("ws://h/f?stamps=0", 0, False, stamps=True) == "ws://h/f?stamps=0&seq=1"


def test_tail_says_where_the_time_went() -> None:
    from tickcast.cli.tail import stamps_text

    full = wire.Stamps(1_000_000, 1_000_400, 1_072_100, 1_072_400)
    assert stamps_text(full) == "upstream 0.4 ms, gateway 71.7 ms, downstream 0.3 ms"
    bare = wire.Stamps(None, 1_000_400, 1_000_500)
    assert stamps_text(bare) == "upstream -, gateway 0.1 ms, downstream -"
