"""The SDK's pure core (docs/client.md): reading the server's frames with the server's own
wire structs, positions and gaps per topic, client-side books, and the bounded queue that
conflates quotes and never drops a trade."""

from __future__ import annotations

import json
import random

import pytest

from tickcast.cli.loadgen import _print_report
from tickcast.client.feed import _retry, feed_url, refusal_of
from tickcast.client.load import Reservoir, percentile, symbols_for
from tickcast.client.queue import Put, ReceiveQueue
from tickcast.client.streams import Streams, normalize
from tickcast.errors import InvalidMessage
from tickcast.model.envelope import Envelope
from tickcast.model.market import FEED, Bar, BookUpdate, Quote, Status, Trade
from tickcast.model.signal import Signal
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.native import codec
from tickcast.protocols.native.client import (
    Heartbeat,
    Pong,
    Reset,
    ServerError,
    Subscribed,
    Unknown,
    Update,
    decode,
    subscribe,
)
from tickcast.protocols.native.timefmt import iso_ms, parse_iso_ms
from tickcast.retry import Backoff

TS = 1_700_000_000.123
EPOCH = "e1"


def q(price: float = 100.0, symbol: str = "AAPL") -> Quote:
    return Quote(symbol, price - 0.1, price + 0.1, 0.0, 0.0, price, 1000.0, TS, "sim")


def t(n: int, symbol: str = "AAPL") -> Trade:
    return Trade(symbol, 100.0, 5.0, TS, "sim", f"t{n}")


def up(payload: object, topic: str, seq: int, epoch: str = EPOCH) -> Update:
    return Update(payload, topic, seq, epoch)  # type: ignore[arg-type]


# -- the wire


@pytest.mark.parametrize(
    ("payload", "channel"),
    [
        (q(), Channel.QUOTES),
        (t(1), Channel.TRADES),
        (Bar("AAPL", 1.0, 2.0, 0.5, 1.5, 300.0, TS - 60, TS, "sim"), Channel.BARS),
        (BookUpdate("AAPL", ((100.0, 5.0),), ((100.5, 2.5),), True, TS, "sim", 7), Channel.BOOK),
        (Status(FEED, "sim", "up", "sim", "connected", TS), Channel.STATUS),
        (
            Signal("MA", "BUY", 1.5, "AAPL", "1m", "2026-01-02T03:04:05.000Z", "s1", "engine"),
            Channel.SIGNALS,
        ),
    ],
)
def test_every_data_message_reads_back_as_the_server_wrote_it(
    payload: object, channel: Channel
) -> None:
    symbol = FEED if channel is Channel.STATUS else "AAPL"
    envelope = Envelope(Topic(channel, symbol), 41, TS, payload, EPOCH)  # type: ignore[arg-type]
    (update,) = decode(codec.encode_with_seq(envelope))
    assert isinstance(update, Update)
    assert (update.topic, update.seq, update.epoch) == (f"{channel}.{symbol}", 41, EPOCH)
    assert type(update.payload) is type(payload)
    assert update.payload == payload


def test_an_array_frame_and_the_control_messages() -> None:
    frame = b"[" + codec.encode(Envelope(Topic(Channel.TRADES, "AAPL"), 1, TS, t(1))) + b"]"
    assert decode(frame) == [Update(t(1))]
    assert decode(codec.control("subscribed", 0, symbols=["AAPL"])) == [Subscribed(("AAPL",))]
    assert decode(codec.control("pong", TS)) == [Pong(pytest.approx(TS))]
    assert decode(codec.control("heartbeat", TS)) == [Heartbeat(pytest.approx(TS))]
    assert decode(codec.error("Invalid subscription request: x")) == [
        ServerError("Invalid subscription request: x")
    ]
    reset = {"type": "reset", "topic": "trades.AAPL", "seq": 9, "requested": 3,
             "reason": "history_gap", "epoch": EPOCH}  # fmt: skip
    assert decode(json.dumps(reset)) == [Reset("trades.AAPL", 9, 3, "history_gap", EPOCH)]
    assert decode('{"type": "news"}') == [Unknown({"type": "news"})]
    with pytest.raises(InvalidMessage):
        decode("{not json")
    with pytest.raises(InvalidMessage):
        decode('{"type": "trade", "symbol": "AAPL"}')


def test_timestamps_parse_back_to_the_millisecond() -> None:
    for ts in (TS, 0.0, 1_800_000_000.999, 1_700_000_001.0):
        assert parse_iso_ms(iso_ms(ts)) == pytest.approx(round(ts, 3), abs=1e-6)
    assert parse_iso_ms("2023-05-01T12:34:56+00:00") == pytest.approx(1682944496.0)


def test_a_resume_names_each_topic_at_its_epoch_and_seq() -> None:
    text = subscribe(["AAPL"], ["trades"], {"trades.AAPL": (EPOCH, 41)})
    assert json.loads(text) == {
        "action": "subscribe",
        "symbols": ["AAPL"],
        "channels": ["trades"],
        "resume": {"trades.AAPL": {"epoch": EPOCH, "seq": 41}},
    }


# -- streams


def test_topics_are_named_as_the_server_names_them() -> None:
    assert normalize(["aapl"], ["quotes", "trades"]) == ["quotes.AAPL", "trades.AAPL"]
    assert normalize(["FEED", "AAPL"], ["status", "quotes"]) == ["status.FEED", "quotes.AAPL"]
    with pytest.raises(ValueError, match="unknown channel"):
        normalize(["AAPL"], ["news"])


def test_a_reliable_gap_is_made_explicit_and_a_replay_is_delivered_once() -> None:
    s = Streams()
    s.add(["trades.AAPL"])
    assert s.accept(up(t(1), "trades.AAPL", 1)) == [up(t(1), "trades.AAPL", 1)]
    assert s.accept(up(t(1), "trades.AAPL", 1)) == []  # an overlapping replay
    assert s.counters.duplicates == 1
    out = s.accept(up(t(4), "trades.AAPL", 4))
    assert out == [Reset("trades.AAPL", 4, 1, "gap", EPOCH), up(t(4), "trades.AAPL", 4)]
    assert s.counters.gaps == 1
    # another epoch without a reset from the server: explicit too
    out = s.accept(up(t(5), "trades.AAPL", 1, "e2"))
    assert isinstance(out[0], Reset)
    assert s.positions["trades.AAPL"] == ("e2", 1)


def test_a_quote_jump_is_conflation_not_a_gap() -> None:
    s = Streams()
    s.add(["quotes.AAPL"])
    s.accept(up(q(), "quotes.AAPL", 1))
    assert s.accept(up(q(), "quotes.AAPL", 5)) == [up(q(), "quotes.AAPL", 5)]
    assert (s.counters.gaps, s.counters.server_conflated) == (0, 3)


def test_a_server_reset_re_anchors_the_topic() -> None:
    s = Streams()
    s.add(["quotes.AAPL", "trades.AAPL"])
    s.accept(up(t(1), "trades.AAPL", 3))
    s.reset(Reset("trades.AAPL", 17, 3, "epoch_changed", "e2"))
    assert s.accept(up(t(2), "trades.AAPL", 18, "e2")) == [up(t(2), "trades.AAPL", 18, "e2")]
    assert s.counters.gaps == 0
    # after a reset, the resubscription resumes from the new position; quotes never resume
    assert s.resubscribe() == [
        (["AAPL"], ["quotes"], {}),
        (["AAPL"], ["trades"], {"trades.AAPL": ("e2", 18)}),
    ]


def book(bids: tuple[tuple[float, float], ...], snapshot: bool) -> BookUpdate:
    return BookUpdate("AAPL", bids, (), snapshot, TS, "sim")


def test_a_book_is_kept_from_its_snapshot_and_fetched_again_after_a_gap() -> None:
    s = Streams()
    s.add(["book.AAPL"])
    assert s.accept(up(book(((1.0, 1.0),), False), "book.AAPL", 1)) == []  # no snapshot yet
    assert s.resnapshot() == ["AAPL"]
    assert s.resnapshot() == []  # asked once until it comes
    s.accept(up(book(((1.0, 1.0), (0.9, 2.0)), True), "book.AAPL", 5))
    s.accept(up(book(((0.9, 0.0),), False), "book.AAPL", 6))
    assert s.books["AAPL"].bids == {1.0: 1.0}
    out = s.accept(up(book(((0.8, 3.0),), False), "book.AAPL", 8))  # seq 7 went missing
    assert [type(m) for m in out] == [Reset]
    assert "AAPL" not in s.books
    assert s.resnapshot() == ["AAPL"]
    # the fresh snapshot (any seq) re-anchors the chain
    s.accept(up(book(((2.0, 1.0),), True), "book.AAPL", 12))
    assert s.books["AAPL"].bids == {2.0: 1.0}
    assert s.counters.gaps == 1


# -- the queue


def test_quotes_conflate_in_place_and_trades_are_never_dropped() -> None:
    queue: ReceiveQueue[object] = ReceiveQueue(max_items=3)
    assert queue.put(q(1.0)) is Put.QUEUED
    assert queue.put(t(1)) is Put.QUEUED
    assert queue.put(q(2.0)) is Put.CONFLATED
    assert queue.put(q(5.0, "MSFT")) is Put.QUEUED
    assert queue.put(t(2)) is Put.QUEUED
    assert queue.put(t(3)) is Put.QUEUED
    assert queue.put(t(4)) is Put.FULL  # refused, never dropped silently
    assert queue.put(q(3.0)) is Put.CONFLATED  # quotes still fit: one slot per symbol
    assert list(queue.drain()) == [q(3.0), t(1), q(5.0, "MSFT"), t(2), t(3)]
    assert (queue.conflation.total, queue.conflation.by_symbol) == (2, {"AAPL": 2})
    assert queue.put(q(4.0)) is Put.QUEUED  # taken: the next one queues again


def test_the_queue_stays_bounded_however_many_quotes_come() -> None:
    queue: ReceiveQueue[object] = ReceiveQueue(max_items=10)
    rng = random.Random(7)
    symbols = [f"S{i}" for i in range(20)]
    for _ in range(10_000):
        queue.put(q(rng.random(), rng.choice(symbols)))
    assert len(queue) <= 20


# -- connection policy


def test_the_url_gets_seq_heartbeat_and_array_frames_unless_it_sets_them() -> None:
    assert feed_url("ws://h/ws/market/feed", 5, True) == (
        "ws://h/ws/market/feed?seq=1&heartbeat=5&frames=array"
    )
    assert feed_url("ws://h/f?frames=single&x=1", 0, True) == "ws://h/f?frames=single&x=1&seq=1"


def test_which_closes_and_refusals_are_retried() -> None:
    assert _retry(None)  # an abort: no close frame
    assert _retry(1001)
    assert _retry(1013)
    assert _retry(3001)
    assert not _retry(3500)
    assert not _retry(1008)
    assert _retry(4999)  # unknown: retried
    body = json.dumps({"error": "Invalid token", "close_code": 3500, "reconnect": False})
    assert refusal_of(401, body.encode()) == (3500, "Invalid token", False)
    assert refusal_of(403, b"<html>")[2] is False
    assert refusal_of(503, b"busy") == (503, "HTTP 503 busy", True)


def test_the_back_off_is_capped_and_jittered() -> None:
    backoff = Backoff(base_s=0.25, cap_s=15.0)
    rng = random.Random(1)
    delays = [backoff.delay(a, rng) for a in range(40)]
    assert all(0 <= d <= 15.0 for d in delays)
    assert len(set(delays)) == len(delays)


# -- the load generator's arithmetic (tickcast loadgen, bench/loadclient.py)


def test_symbols_spread_evenly_over_clients() -> None:
    universe = [f"S{i}" for i in range(10)]
    counts: dict[str, int] = {}
    for client in range(20):
        for symbol in symbols_for(client, 5, universe):
            counts[symbol] = counts.get(symbol, 0) + 1
    assert set(counts.values()) == {10}
    assert symbols_for(0, 3, ["A", "B"]) == ["A", "B"]  # never a symbol twice


def test_percentiles_and_a_bounded_reservoir() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2.0
    sample = Reservoir(size=100, rng=random.Random(3))
    for v in range(10_000):
        sample.add(float(v))
    assert len(sample.values) == 100
    assert (sample.count, sample.maximum) == (10_000, 9999.0)
    p50 = sample.summary()["p50"]
    assert p50 is not None
    assert 3000 < p50 < 7000


def test_the_loadgen_report_prints(capsys: pytest.CaptureFixture[str]) -> None:
    _print_report(
        {
            "clients_requested": 2, "clients_connected": 2, "connect_s": 0.1,
            "delivered": 1234, "duration_s": 2.0, "delivered_per_s": 617.0,
            "latency_ms": {"p50": 1.5, "p90": None, "p99": 3.0, "max": 9.0},
            "reconnects": 1, "heartbeat_timeouts": 0, "conflated": 3, "resets": 0,
            "gaps": 0, "errors": {"FeedRefused": 1},
        }
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "1,234 messages in 2.0 s (617/s)" in out
    assert "p50 1.5  p90 -  p99 3.0  max 9.0" in out
    assert "1 x FeedRefused" in out
