"""The SDK and a slow client's suspended streams (docs/client.md, docs/market-feed.md
"Degraded before disconnected"): ``degraded`` and ``resumed`` read as typed messages,
the gap tracking that takes the hole they announce for what it is (replayed, or reset),
and ``tickcast tail``'s line for each."""

from __future__ import annotations

import json

import pytest

from tickcast.cli.tail import TailBoard, notice, status_line
from tickcast.client import Feed
from tickcast.client.streams import Streams
from tickcast.errors import InvalidMessage
from tickcast.model.book import OrderBook
from tickcast.model.market import BookUpdate, Trade
from tickcast.protocols.native import codec
from tickcast.protocols.native.client import Degraded, Reset, Resumed, Unknown, Update, decode

TS = 1_700_000_000.123
EPOCH = "18bcfe5682a1b2c3"
TOPIC = "trades.AAPL"


def trade(seq: int, topic: str = TOPIC, epoch: str = EPOCH) -> Update:
    return Update(Trade("AAPL", 100.0, 5.0, TS, "sim", f"t{seq}"), topic, seq, epoch)


def book(seq: int, snapshot: bool) -> Update:
    payload = BookUpdate("AAPL", ((100.0, 5.0),), ((100.5, 2.5),), snapshot, TS, "sim", seq)
    return Update(payload, "book.AAPL", seq, EPOCH)


def streams(*topics: str) -> Streams:
    s = Streams()
    s.add(topics or (TOPIC,))
    return s


def feed(s: Streams, *updates: Update) -> list[Update | Reset]:
    out: list[Update | Reset] = []
    for u in updates:
        out.extend(s.accept(u))
    return out


# -- the wire


def test_degraded_and_resumed_read_back_as_the_server_writes_them() -> None:
    (degraded,) = decode(codec.degraded(TOPIC, 41, EPOCH))
    assert degraded == Degraded(TOPIC, 41, EPOCH, "slow_consumer")
    (resumed,) = decode(codec.resumed(TOPIC, 57, EPOCH, 16))
    assert resumed == Resumed(TOPIC, 57, EPOCH, 16, "replay")
    # without epochs (a client without seq=1 still learns which topic has a hole)
    assert decode(codec.degraded(TOPIC, 0, "")) == [Degraded(TOPIC, 0, "", "slow_consumer")]
    assert decode(codec.resumed(TOPIC, 3, "", 0)) == [Resumed(TOPIC, 3, "", 0)]


def test_they_read_inside_an_array_frame_between_data_messages() -> None:
    frame = b"[%b,%b]" % (codec.degraded(TOPIC, 4, EPOCH), codec.resumed(TOPIC, 9, EPOCH, 5))
    assert [type(m) for m in decode(frame)] == [Degraded, Resumed]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "degraded", "seq": 1},  # no topic
        {"type": "degraded", "topic": TOPIC, "seq": "1"},
        {"type": "degraded", "topic": TOPIC, "seq": -1},
        {"type": "resumed", "topic": TOPIC},  # no seq
        {"type": "resumed", "topic": TOPIC, "seq": 2, "replayed": 1.5},
        {"type": "resumed", "topic": TOPIC, "seq": True},
    ],
)
def test_a_malformed_notice_is_an_unreadable_message(message: dict[str, object]) -> None:
    with pytest.raises(InvalidMessage):
        decode(json.dumps(message))


def test_another_unknown_type_is_still_unknown() -> None:
    (message,) = decode('{"type":"throttled","topic":"trades.AAPL"}')
    assert isinstance(message, Unknown)


# -- gap tracking


def test_a_replayed_hole_is_no_gap_and_the_resumed_says_replay() -> None:
    s = streams()
    assert feed(s, trade(1), trade(2)) == [trade(1), trade(2)]
    degraded = Degraded(TOPIC, 2, EPOCH, "slow_consumer")
    assert s.degraded(degraded) == degraded
    assert s.suspended == {TOPIC: degraded}
    # the replay from seq + 1, then resumed at the last replayed, then live
    assert feed(s, trade(3), trade(4), trade(5)) == [trade(3), trade(4), trade(5)]
    assert s.resumed(Resumed(TOPIC, 5, EPOCH, 3)) == [Resumed(TOPIC, 5, EPOCH, 3, "replay")]
    assert s.suspended == {}
    assert feed(s, trade(6)) == [trade(6)]
    c = s.counters
    assert (c.gaps, c.degraded, c.resumed_replay, c.resumed_reset, c.replayed) == (0, 1, 1, 0, 3)
    assert s.positions[TOPIC] == (EPOCH, 6)


def test_a_reset_while_suspended_makes_the_jump_no_gap_and_the_resumed_says_reset() -> None:
    s = streams()
    feed(s, trade(1), trade(2))
    s.degraded(Degraded(TOPIC, 2, EPOCH, "slow_consumer"))
    # the history no longer reached back: reset at the latest, no snapshot for trades
    reset = Reset(TOPIC, 900, 2, "history_gap", EPOCH)
    assert s.reset(reset) == reset
    assert s.resumed(Resumed(TOPIC, 900, EPOCH, 0)) == [Resumed(TOPIC, 900, EPOCH, 0, "reset")]
    assert feed(s, trade(901), trade(902)) == [trade(901), trade(902)]
    c = s.counters
    assert (c.gaps, c.resets, c.resumed_replay, c.resumed_reset) == (0, 1, 0, 1)


def test_a_reset_without_an_epoch_is_resumed_at_the_resumed_seq() -> None:
    s = streams()
    feed(s, trade(1))
    s.degraded(Degraded(TOPIC, 1, EPOCH, "slow_consumer"))
    s.reset(Reset(TOPIC, 500, 1, "history_gap", None))
    (resumed,) = s.resumed(Resumed(TOPIC, 500, EPOCH, 0))
    assert resumed.how == "reset"
    assert s.positions[TOPIC] == (EPOCH, 500)
    assert feed(s, trade(501)) == [trade(501)]
    # and the check is back: a jump after the resumed is a gap again
    (gap, update) = feed(s, trade(503))
    assert gap == Reset(TOPIC, 503, 501, "gap", EPOCH)
    assert update == trade(503)
    assert s.counters.gaps == 1


def test_a_replay_that_stops_short_of_the_resumed_is_a_gap_said_before_it() -> None:
    s = streams()
    feed(s, trade(1), trade(2))
    s.degraded(Degraded(TOPIC, 2, EPOCH, "slow_consumer"))
    feed(s, trade(3))
    out = s.resumed(Resumed(TOPIC, 6, EPOCH, 4))
    assert out == [Reset(TOPIC, 6, 3, "gap", EPOCH), Resumed(TOPIC, 6, EPOCH, 4, "replay")]
    assert s.counters.gaps == 1
    # not reported twice: the live update after it follows the resumed's seq
    assert feed(s, trade(7)) == [trade(7)]
    assert s.counters.gaps == 1


def test_a_hole_inside_the_replay_is_still_a_gap() -> None:
    s = streams()
    feed(s, trade(1))
    s.degraded(Degraded(TOPIC, 1, EPOCH, "slow_consumer"))
    out = feed(s, trade(2), trade(4))
    assert out == [trade(2), Reset(TOPIC, 4, 2, "gap", EPOCH), trade(4)]


def test_a_topic_with_nothing_delivered_yet_takes_the_resumed_position() -> None:
    s = streams()
    s.degraded(Degraded(TOPIC, 0, EPOCH, "slow_consumer"))
    assert s.resumed(Resumed(TOPIC, 0, EPOCH, 0)) == [Resumed(TOPIC, 0, EPOCH, 0)]
    assert s.positions[TOPIC] == (EPOCH, 0)
    assert feed(s, trade(1)) == [trade(1)]
    assert s.counters.gaps == 0


def test_a_book_reset_while_suspended_is_rebuilt_from_its_snapshot() -> None:
    s = streams("book.AAPL")
    feed(s, book(1, True), book(2, False))
    s.degraded(Degraded("book.AAPL", 2, EPOCH, "slow_consumer"))
    s.reset(Reset("book.AAPL", 40, 2, "history_gap", EPOCH))
    assert "AAPL" not in s.books
    assert feed(s, book(40, True)) == [book(40, True)]
    (resumed,) = s.resumed(Resumed("book.AAPL", 40, EPOCH, 0))
    assert resumed.how == "reset"
    assert feed(s, book(41, False)) == [book(41, False)]
    assert isinstance(s.books["AAPL"], OrderBook)
    assert s.counters.gaps == 0
    assert s.resnapshot() == []


def test_notices_of_a_topic_no_longer_wanted_are_dropped() -> None:
    s = streams()
    s.degraded(Degraded(TOPIC, 3, EPOCH, "slow_consumer"))
    s.remove([TOPIC])
    assert s.suspended == {}
    assert s.degraded(Degraded(TOPIC, 3, EPOCH, "slow_consumer")) is None
    assert s.resumed(Resumed(TOPIC, 3, EPOCH, 0)) == []
    assert s.counters.degraded == 1


def test_a_reconnect_ends_the_suspension() -> None:
    s = streams()
    feed(s, trade(1))
    s.degraded(Degraded(TOPIC, 1, EPOCH, "slow_consumer"))
    s.reset(Reset(TOPIC, 1, 1, "history_gap", EPOCH))  # a reset in the old connection
    (request,) = s.resubscribe()
    assert request[2] == {TOPIC: (EPOCH, 1)}  # resumed from the last position
    assert s.suspended == {}
    # a later suspension of the new connection starts clean
    s.degraded(Degraded(TOPIC, 1, EPOCH, "slow_consumer"))
    (resumed,) = s.resumed(Resumed(TOPIC, 1, EPOCH, 0))
    assert resumed.how == "replay"


# -- tickcast tail


def test_tail_prints_a_line_for_each_notice() -> None:
    board = TailBoard(["AAPL"])
    assert board.take(Degraded(TOPIC, 41, EPOCH, "slow_consumer")) == (
        "trades.AAPL degraded after seq 41 (slow_consumer)"
    )
    assert board.take(Resumed(TOPIC, 57, EPOCH, 16, "replay")) == (
        "trades.AAPL resumed at seq 57: 16 replayed"
    )
    assert notice(Resumed(TOPIC, 90, EPOCH, 0, "reset")) == (
        "trades.AAPL resumed at seq 90 after a reset"
    )
    assert board.take(Trade("AAPL", 1.0, 1.0, TS, "sim")) is None
    assert board.rows["AAPL"].trade is not None


def test_tail_status_line_counts_the_streams_suspended_now() -> None:
    feed = Feed("ws://127.0.0.1:1/ws/market/feed")
    board = TailBoard(["AAPL"])
    feed.streams.add([TOPIC, "trades.MSFT"])
    assert "degraded" not in status_line(board, feed)
    feed.streams.degraded(Degraded(TOPIC, 4, EPOCH, "slow_consumer"))
    feed.streams.degraded(Degraded("trades.MSFT", 9, EPOCH, "slow_consumer"))
    assert set(feed.degraded) == {TOPIC, "trades.MSFT"}
    assert "degraded 2" in status_line(board, feed).split("  |  ")
    feed.streams.resumed(Resumed(TOPIC, 4, EPOCH, 0))
    assert "degraded 1" in status_line(board, feed).split("  |  ")
