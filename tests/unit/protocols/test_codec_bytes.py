"""Every wire format's per-tick message, byte for byte (issue 15's encoding work).

The codecs build quotes, trades and asset updates on a fast path (no builder call, plain
structs, cached topic texts, STOMP heads and Socket.IO prefixes, memoised rounding, a
timestamp kept per millisecond). Nothing on the wire may change: the odd values here are
pinned as literal bytes (many decimals, large values, zeros of both signs, negatives,
crypto sizes of 8 decimals, exponents), and random ones are checked against the
straightforward construction each fast path replaces (the builders' structs,
``frames.message_payload``, ``event``, the realtime dict, ``round(ts * 1000)``).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickcast.model.envelope import Envelope
from tickcast.model.market import Quote, Status, Trade
from tickcast.model.portfolio import AssetUpdate
from tickcast.model.signal import Signal
from tickcast.model.signal import encode as encode_signal
from tickcast.model.topic import Channel, Topic
from tickcast.protocols import stamps
from tickcast.protocols.envelope import codec as realtime
from tickcast.protocols.native import codec as native
from tickcast.protocols.native import stamps as native_stamps
from tickcast.protocols.native.timefmt import iso_ms
from tickcast.protocols.socketio import codec as socketio
from tickcast.protocols.stomp import codec as stomp
from tickcast.protocols.stomp.frames import message_payload

#: 2023-05-01T12:34:56.789Z
TS = 1_682_944_496.789
EPOCH = "18bcfe5682a1b2c3"
STAMP = b'"timestamp":"2023-05-01T12:34:56.789Z"'


def wrap(event: Quote | Trade, seq: int = 42, epoch: str = EPOCH) -> Envelope:
    channel = Channel.QUOTES if type(event) is Quote else Channel.TRADES
    return Envelope(Topic(channel, event.symbol), seq, TS + 0.002, event, epoch)


# -- odd prices and sizes, pinned (the bytes the codec gave before its fast path)

GOLDEN: list[tuple[Quote | Trade, bytes]] = [
    (
        Quote(
            "AAPL", 0.123456789012345, 0.1234567890123456, 0, 0, 0.12345678901234567, 1000.0,
            TS, "alpaca",
        ),
        b'{"symbol":"AAPL","price":0.12345678901234566,"bid":0.123456789012345,'
        b'"ask":0.1234567890123456,"volume":1000,' + STAMP + b',"source":"alpaca"}',
    ),
    (
        Quote("BRK.A", 612345.25, 612350.75, 1, 1, 1e16, 123456789012345.0, TS, "polygon"),
        b'{"symbol":"BRK.A","price":1e16,"bid":612345.25,"ask":612350.75,'
        b'"volume":123456789012345,' + STAMP + b',"source":"polygon"}',
    ),
    (
        Quote("ZERO", 0.0, -0.0, 0, 0, 0.0, 0.0, TS, "replay"),
        b'{"symbol":"ZERO","price":0.0,"bid":0.0,"ask":-0.0,"volume":0,'
        + STAMP + b',"source":"replay"}',
    ),
    (
        Quote("CL", -37.63, -37.62, 1, 1, -37.625, 5.0e20, TS, "replay"),
        b'{"symbol":"CL","price":-37.625,"bid":-37.63,"ask":-37.62,'
        b'"volume":500000000000000000000,' + STAMP + b',"source":"replay"}',
    ),
    (
        Quote("BTC/USDT", 43125.1, 43125.2, 0.5, 0.25, 43125.15, 1234.56789012, TS, "simulator"),
        b'{"symbol":"BTC/USDT","price":43125.15,"bid":43125.1,"ask":43125.2,'
        b'"volume":1234.56789012,' + STAMP + b',"source":"simulator"}',
    ),
    (
        Trade("BTC/USDT", 43125.12345678, 0.00012345, TS, "simulator", "7"),
        b'{"type":"trade","symbol":"BTC/USDT","price":43125.12345678,"size":0.00012345,'
        + STAMP + b',"source":"simulator","trade_id":"7"}',
    ),
    (
        Trade("SHIB/USDT", 0.00000812, 1e-08, TS, "simulator"),
        b'{"type":"trade","symbol":"SHIB/USDT","price":8.12e-6,"size":1e-8,'
        + STAMP + b',"source":"simulator"}',
    ),
    (
        Trade("AAPL", 1e22, 2.0**70, TS, "polygon", "x"),
        b'{"type":"trade","symbol":"AAPL","price":1e22,"size":1180591620717411303424,'
        + STAMP + b',"source":"polygon","trade_id":"x"}',
    ),
    (
        Trade("AAPL", math.nan, math.inf, TS, "polygon"),
        b'{"type":"trade","symbol":"AAPL","price":null,"size":null,'
        + STAMP + b',"source":"polygon"}',
    ),
    (  # an int where a float belongs prints as the int it is
        Quote("AAPL", 150, 151, 1, 1, 150, 7, TS, "test"),
        b'{"symbol":"AAPL","price":150,"bid":150,"ask":151,"volume":7,'
        + STAMP + b',"source":"test"}',
    ),
]  # fmt: skip


@pytest.mark.parametrize(("event", "expected"), GOLDEN)
def test_odd_prices_and_sizes_on_the_market_feed(event: Quote | Trade, expected: bytes) -> None:
    envelope = wrap(event)
    assert native.encode(envelope) == expected
    topic = str(envelope.topic).encode()
    assert native.encode_with_seq(envelope) == (
        expected[:-1] + b',"topic":"' + topic + b'","seq":42,"epoch":"' + EPOCH.encode() + b'"}'
    )


@pytest.mark.parametrize(("event", "expected"), GOLDEN)
def test_odd_prices_and_sizes_on_stomp_and_socketio(event: Quote | Trade, expected: bytes) -> None:
    envelope = wrap(event)
    name = b"quote" if type(event) is Quote else b"trade"
    assert socketio.encode(envelope) == b'42["' + name + b'",' + expected + b"]"
    topic = str(envelope.topic)
    assert (
        stomp.encode(envelope)
        == (
            f"destination:/topic/{topic}\nmessage-id:{topic}-{EPOCH}-42\n"
            f"content-type:application/json\ncontent-length:{len(expected)}\n"
            f"epoch:{EPOCH}\nseq:42\n\n"
        ).encode()
        + expected
        + b"\0"
    )


def test_odd_asset_updates_on_the_realtime_envelope() -> None:
    def message(*fields: Any) -> bytes:
        update = AssetUpdate("AAPL", *fields, TS, "sim")  # type: ignore[arg-type]
        return realtime.encode(Envelope(Topic(Channel.ASSETS, "AAPL"), 1, TS, update, EPOCH))

    head = b'{"type":"asset_update","data":{"symbol":"AAPL",'
    tail = b'},"timestamp":"2023-05-01T12:34:56.789Z"}'
    assert message(150.25, 1.7499999999999716, 1.1784511784511593, 1234.5678901234, 1e16, -0.0) == (
        head + b'"price":150.25,"change":1.75,"change_percent":1.1785,"volume":1234.56789,'
        b'"high":1e16,"low":-0.0' + tail
    )
    # zeros of both signs and an int equal to a float seen before print as they are
    assert message(2.0, 2.0, 2.0, 7.0, 1, 2) == (
        head + b'"price":2.0,"change":2.0,"change_percent":2.0,"volume":7,"high":1,"low":2' + tail
    )
    assert message(2, 2, 2, 7, 1, 2) == (
        head + b'"price":2,"change":2,"change_percent":2,"volume":7,"high":1,"low":2' + tail
    )
    assert message(0.0, 0.0, 0.0, 0.0, 0.0, 0.0) == (
        head
        + b'"price":0.0,"change":0.0,"change_percent":0.0,"volume":0,"high":0.0,"low":0.0'
        + tail
    )
    assert message(0.0, -0.0, -0.0, 0.5, 0.0, 0.0) == (
        head
        + b'"price":0.0,"change":-0.0,"change_percent":-0.0,"volume":0.5,"high":0.0,"low":0.0'
        + tail
    )


# -- random values against the straightforward construction

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda x: round(x, 2)),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([0.0, -0.0, 1e-8, 0.00012345, 1e16, 1e22, 150.25]),
)
texts = st.text(min_size=1, max_size=12)
times = st.floats(min_value=0, max_value=4_102_444_800)


@st.composite
def market_events(draw: st.DrawFn) -> Quote | Trade:
    symbol, source, ts = draw(texts), draw(texts), draw(times)
    if draw(st.booleans()):
        return Quote(
            symbol, draw(numbers), draw(numbers), 1.0, 1.0, draw(numbers), draw(numbers), ts, source
        )
    return Trade(
        symbol, draw(numbers), draw(numbers), ts, source, draw(st.sampled_from(["", "t:1"]))
    )


def reference_native(envelope: Envelope, *, seq: bool) -> bytes:
    """The builders' structs, as every message was encoded before the fast path."""
    event = envelope.payload
    build = native._MESSAGE[type(event)]
    if seq:
        return native._encode(build(event, str(envelope.topic), envelope.seq, envelope.epoch))
    return native._encode(build(event, "", 0, ""))


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(market_events(), min_size=1, max_size=6),
    epoch=st.sampled_from(["", EPOCH, "a:b\\c"]),
    seq=st.integers(min_value=0, max_value=10**12),
)
def test_every_market_wire_matches_its_reference(
    events: list[Quote | Trade], epoch: str, seq: int
) -> None:
    for event in events:
        envelope = wrap(event, seq, epoch)
        body = reference_native(envelope, seq=False)
        assert native.encode(envelope) == body
        assert native.encode_with_seq(envelope) == reference_native(envelope, seq=True)
        name = socketio.event_name(envelope.topic.channel)
        assert socketio.encode(envelope) == socketio.event(name, body)
        extra = ([("epoch", epoch)] if epoch else []) + [("seq", str(seq))]
        assert stomp.encode(envelope) == message_payload(
            stomp.destination(envelope.topic), stomp.message_id(envelope), body, extra=extra
        )


def test_the_wires_of_one_update_share_its_body_and_no_other_update_gets_it() -> None:
    first = wrap(Trade("AAPL", 1.5, 2.0, TS, "sim", "1"))
    twin = wrap(Trade("AAPL", 1.5, 2.0, TS, "sim", "1"))  # equal, another envelope
    other = wrap(Trade("AAPL", 1.25, 2.0, TS, "sim", "2"))
    body = native.encode(first)
    assert native._last[1] is body  # kept for every other wire of this update
    assert stomp.encode(first).endswith(b"\n\n" + body + b"\0")
    assert socketio.encode(first) == b'42["trade",' + body + b"]"
    assert native.encode(twin) == body
    assert native._last[1] is not body  # an equal envelope is another update
    assert native.encode(other) == reference_native(other, seq=False) != body
    # the wires of the first update, after another update's body was kept: its own
    assert stomp.encode(first).endswith(b"\n\n" + body + b"\0")
    assert socketio.encode(first) == b'42["trade",' + body + b"]"
    assert native_stamps.encode_stamped(first) == stamps.with_stamps(body, first)
    assert native.encode(first) == body


def test_a_signal_after_the_market_feed_keeps_its_own_body_on_stomp_and_socketio() -> None:
    """The market feed wraps a signal (``{"type": "signal", "data": ...}``); STOMP and
    Socket.IO carry the signal itself, and read the market feed's kept body on the
    envelope's identity alone: so a signal's is never kept."""
    signal = Signal("MA_CROSS", "BUY", 1.5, "AAPL", "1m", "2023-05-01T12:34:56.789Z", "s", "e")
    envelope = Envelope(Topic(Channel.SIGNALS, "AAPL"), 3, TS, signal, EPOCH)
    alone = (stomp.encode(envelope), socketio.encode(envelope))
    wrapped = native.encode(envelope)
    assert wrapped.startswith(b'{"type":"signal","data":{')
    assert native._last[0] is not envelope
    assert (stomp.encode(envelope), socketio.encode(envelope)) == alone
    assert alone[0].endswith(b"\n\n" + encode_signal(signal) + b"\0")
    assert alone[1] == b'42["new_signal",' + encode_signal(signal) + b"]"
    assert native_stamps.encode_stamped(envelope) == stamps.with_stamps(wrapped, envelope)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=8),
    epoch=st.sampled_from(["", EPOCH, "a:b\\c"]),
    seq=st.integers(min_value=0, max_value=10**12),
)
def test_stomp_parts_kept_per_topic_and_length_give_the_reference_payload(
    sizes: list[int], epoch: str, seq: int
) -> None:
    """Bodies of many lengths on one topic (each length's middle part made once)."""
    for size in sizes:
        event = Trade("A:B", 1.5, 2.0, TS, "s" * size)
        envelope = wrap(event, seq, epoch)
        body = native.encode(envelope)
        extra = ([("epoch", epoch)] if epoch else []) + [("seq", str(seq))]
        expected = message_payload(
            stomp.destination(envelope.topic), stomp.message_id(envelope), body, extra=extra
        )
        assert stomp.encode(envelope) == expected


def test_stomp_parts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stomp, "_PARTS_MAX", 5)
    stomp._HEADS.clear()
    for i in range(40):
        event = Trade(f"S{i % 7}", 1.5, 2.0, TS, "s" * (i % 9))
        envelope = wrap(event, i, EPOCH)
        body = native.encode(envelope)
        expected = message_payload(
            stomp.destination(envelope.topic),
            stomp.message_id(envelope),
            body,
            extra=[("epoch", EPOCH), ("seq", str(i))],
        )
        assert stomp.encode(envelope) == expected
        assert stomp._parts <= 5
        assert sum(1 + len(made[3]) for made in stomp._HEADS.values()) <= 5


def test_stomp_heads_follow_a_topic_whose_epoch_changes() -> None:
    trade = Trade("A:B\nC\\D", 1.5, 2.0, TS, "sim")
    for epoch in ("e1", "", "e:2", "e1"):
        envelope = wrap(trade, 7, epoch)
        extra = ([("epoch", epoch)] if epoch else []) + [("seq", "7")]
        assert stomp.encode(envelope) == message_payload(
            stomp.destination(envelope.topic),
            stomp.message_id(envelope),
            native.encode(envelope),
            extra=extra,
        )


_realtime_json = msgspec.json.Encoder(decimal_format="number").encode


def reference_asset(update: AssetUpdate) -> bytes:
    """The realtime ``asset_update`` as a dict, as it was encoded before the fast path."""
    volume = update.volume
    data = {
        "symbol": update.symbol,
        "price": update.price,
        "change": round(update.change, 6),
        "change_percent": round(update.change_percent, 4),
        "volume": int(volume)
        if type(volume) is float and volume.is_integer()
        else round(volume, 6),
        "high": update.high,
        "low": update.low,
    }
    return _realtime_json({"type": "asset_update", "data": data, "timestamp": iso_ms(update.ts)})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(*[numbers] * 6, times), min_size=1, max_size=8))
def test_asset_updates_match_their_reference(rows: list[tuple[Any, ...]]) -> None:
    for *fields, ts in rows:
        update = AssetUpdate("AAPL", *fields, ts, "sim")
        envelope = Envelope(Topic(Channel.ASSETS, "AAPL"), 1, ts, update)
        try:
            expected = reference_asset(update)
        except (ValueError, OverflowError) as error:  # round() of a nan or an inf volume
            with pytest.raises(type(error)):
                realtime.encode(envelope)
            continue
        assert realtime.encode(envelope) == expected


# -- timestamps: the millisecond kept with a range of ts known to print it


def reference_iso(ts: float) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=round(ts * 1000))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_iso_ms_at_every_rounding_boundary_in_every_order() -> None:
    """Around each half millisecond (where round() goes to even), ts one ulp apart, in
    increasing, decreasing and shuffled order: the kept range never covers a ts that
    rounds elsewhere."""
    rng = random.Random(15)
    for base in (1_682_944_496_789, 1_682_944_499_999, 1_700_000_000_000, 1, 0):
        around: list[float] = []
        for half in (base - 0.5, base + 0.5, base + 1.5):
            x = half / 1000
            for _ in range(4):
                x = math.nextafter(x, -math.inf)
            for _ in range(9):
                around.append(x)
                x = math.nextafter(x, math.inf)
        inside = [(base + offset) / 1000 for offset in (-0.3, 0.0, 0.2, 0.49, 0.499999)]
        points = around + inside
        for order in (
            sorted(points),
            sorted(points, reverse=True),
            rng.sample(points, len(points)),
        ):
            for ts in order:
                assert iso_ms(ts) == reference_iso(ts), repr(ts)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=4_102_444_800_000),
    st.lists(st.floats(min_value=-1.5, max_value=1.5), min_size=1, max_size=40),
)
def test_iso_ms_matches_round_for_ticks_within_and_across_milliseconds(
    millis: int, offsets: list[float]
) -> None:
    for offset in offsets:
        ts = (millis + offset) / 1000
        assert iso_ms(ts) == reference_iso(ts), repr(ts)


# -- latency stamps: the receive tail kept per server time, event_us per event time


def reference_stamps(payload: bytes, envelope: Envelope) -> bytes:
    """``with_stamps`` as it was: ``event_time`` and ``micros`` for every update."""
    event_ts = stamps.event_time(envelope.payload)
    event = b"" if event_ts is None else b'"event_us":%d,' % stamps.micros(event_ts)
    recv = b'"recv_us":%d}}' % stamps.micros(envelope.server_ts)
    return payload[:-1] + b',"stamps":{' + event + recv


SIGNAL_TIMES = ["2023-05-01T12:34:56.789Z", "1970-01-01T00:00:00.000Z", "not a time"]
STAMP_TIMES = [TS, TS + 1e-6, TS + 0.5e-6, -0.0, 0.0, 1.0, 1, 2**60, 0.25e-6, 1.5e-6, -1.5e-6]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(STAMP_TIMES) | st.floats(0, 4e9, allow_nan=False),
            st.sampled_from(STAMP_TIMES) | st.floats(0, 4e9, allow_nan=False),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_stamps_match_their_reference_whatever_the_times_repeat(
    rows: list[tuple[float, float, int]],
) -> None:
    """Server and event times repeating, changing, equal as numbers but of another type
    (``1`` and ``1.0``, ``0.0`` and ``-0.0``) or absent (a zero ``ts``, a signal's
    unreadable time): every stamped message is the one made from scratch."""
    for server_ts, ts, kind in rows:
        event: Any
        if kind == 0:
            event = Quote("AAPL", 1.5, 1.75, 1, 1, 1.625, 10.0, ts, "sim")
        elif kind == 1:
            event = Trade("AAPL", 1.5, 2.0, ts, "sim", "1")
        elif kind == 2:
            event = Status("FEED", "sim", "up", "sim", "", ts)
        else:
            timestamp = SIGNAL_TIMES[int(abs(ts)) % len(SIGNAL_TIMES)]
            event = Signal("MA_CROSS", "BUY", 1.5, "AAPL", "1m", timestamp, "s", "engine")
        envelope = Envelope(Topic(Channel.QUOTES, "AAPL"), 1, server_ts, event, EPOCH)
        payload = b'{"a":1}'
        assert stamps.with_stamps(payload, envelope) == reference_stamps(payload, envelope)


def test_a_server_time_that_is_not_a_number_raises_every_time() -> None:
    """NaN equals nothing, so it is never taken from the kept tail: it raises as
    ``micros`` does, each time, and the next real time is stamped right."""
    trade = Trade("AAPL", 1.5, 2.0, TS, "sim", "1")
    for _ in range(2):
        with pytest.raises(ValueError, match="NaN"):
            stamps.with_stamps(b"{}", Envelope(Topic(Channel.TRADES, "AAPL"), 1, math.nan, trade))
    envelope = Envelope(Topic(Channel.TRADES, "AAPL"), 1, TS, trade)
    assert stamps.with_stamps(b"{}", envelope) == reference_stamps(b"{}", envelope)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(market_events(), min_size=1, max_size=6),
    epoch=st.sampled_from(["", EPOCH, "a:b\\c"]),
    seq=st.integers(min_value=0, max_value=10**12),
    server_ts=st.sampled_from([TS + 0.002, TS, 1.0]),
)
def test_stamped_market_wires_in_one_go_or_spliced_match_their_reference(
    events: list[Quote | Trade], epoch: str, seq: int, server_ts: float
) -> None:
    """A quote or trade encoded with its stamps in one go (no plain body kept for its
    envelope), and spliced into the plain body the market feed has just encoded: both
    the plain message with the stamps made from scratch."""
    for event in events:
        envelope = Envelope(wrap(event).topic, seq, server_ts, event, epoch)
        plain = reference_native(envelope, seq=False)
        with_seq = reference_native(envelope, seq=True)
        alone = native_stamps.encode_stamped(envelope)  # nothing kept for it yet
        assert alone == reference_stamps(plain, envelope)
        assert native_stamps.encode_seq_stamped(envelope) == reference_stamps(with_seq, envelope)
        assert native.encode(envelope) == plain  # kept: the stamped wire splices it
        assert native_stamps.encode_stamped(envelope) == alone


def test_a_stamped_event_without_a_time_has_no_event_stamp_either_way() -> None:
    for event in (Quote("AAPL", 1.5, 1.75, 1, 1, 1.625, 10.0, 0.0, "sim"),
                  Trade("AAPL", 1.5, 2.0, -0.0, "sim", "1")):  # fmt: skip
        envelope = wrap(event)
        for encode, seq in (
            (native_stamps.encode_stamped, False),
            (native_stamps.encode_seq_stamped, True),
        ):
            expected = reference_stamps(reference_native(envelope, seq=seq), envelope)
            assert b"event_us" not in expected
            assert encode(envelope) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(*[numbers] * 6, times | st.just(0.0)), min_size=1, max_size=8))
def test_stamped_asset_updates_match_their_reference(rows: list[tuple[Any, ...]]) -> None:
    """``realtime+stamps``: an ``asset_update`` encoded with its stamps in one go is the
    plain message with the stamps made from scratch (or raises as the plain one does)."""
    for *fields, ts in rows:
        update = AssetUpdate("AAPL", *fields, ts, "sim")
        envelope = Envelope(Topic(Channel.ASSETS, "AAPL"), 1, TS, update)
        try:
            expected = reference_stamps(reference_asset(update), envelope)
        except (ValueError, OverflowError) as error:
            with pytest.raises(type(error)):
                realtime.encode_stamped(envelope)
            continue
        assert realtime.encode_stamped(envelope) == expected
        assert realtime.CODECS[realtime.WIRE_STAMPS] is realtime.encode_stamped
