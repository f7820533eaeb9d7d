"""History: per-topic ring buffers and resume by sequence number."""

from __future__ import annotations

import pytest

from tickcast.hub.history import Gap, History
from tickcast.model.envelope import Envelope
from tickcast.model.market import Trade
from tickcast.model.topic import Channel, Topic

TOPIC = Topic(Channel.TRADES, "AAPL")
KEY = str(TOPIC)


def envelope(seq: int, topic: Topic = TOPIC) -> Envelope:
    trade = Trade(topic.symbol, 100.0 + seq, 1.0, 1_700_000_000.0 + seq, "test", str(seq))
    return Envelope(topic, seq, 1_700_000_000.0 + seq, trade)


def history_with(size: int, last_seq: int, key: str = KEY, topic: Topic = TOPIC) -> History:
    history = History(size)
    for seq in range(1, last_seq + 1):
        history.append(key, envelope(seq, topic))
    return history


def test_resume_returns_exactly_the_missed_envelopes_in_order() -> None:
    history = history_with(size=10, last_seq=8)
    assert history.resume(KEY, after_seq=5, latest_seq=8) == [
        envelope(6),
        envelope(7),
        envelope(8),
    ]


def test_resume_from_just_before_the_oldest_returns_the_whole_buffer() -> None:
    history = history_with(size=3, last_seq=8)  # holds 6, 7, 8
    assert history.resume(KEY, after_seq=5, latest_seq=8) == [
        envelope(6),
        envelope(7),
        envelope(8),
    ]


def test_resume_from_zero_returns_everything_since_the_first() -> None:
    history = history_with(size=10, last_seq=3)
    assert history.resume(KEY, after_seq=0, latest_seq=3) == [
        envelope(1),
        envelope(2),
        envelope(3),
    ]


def test_client_up_to_date_gets_nothing() -> None:
    history = history_with(size=10, last_seq=8)
    assert history.resume(KEY, after_seq=8, latest_seq=8) == []


def test_resume_older_than_the_buffer_is_a_gap() -> None:
    history = history_with(size=3, last_seq=8)  # holds 6, 7, 8
    assert history.resume(KEY, after_seq=4, latest_seq=8) == Gap(requested=4, oldest=6, latest=8)


def test_resume_ahead_of_latest_is_a_gap() -> None:
    history = history_with(size=10, last_seq=8)
    assert history.resume(KEY, after_seq=12, latest_seq=8) == Gap(requested=12, oldest=1, latest=8)


def test_resume_on_a_topic_never_recorded_is_a_gap() -> None:
    history = History(10)
    assert history.resume("trades.MSFT", after_seq=3, latest_seq=5) == Gap(3, 0, 5)


def test_history_size_zero_gives_a_gap_unless_up_to_date() -> None:
    history = history_with(size=0, last_seq=8)
    assert history.resume(KEY, after_seq=7, latest_seq=8) == Gap(requested=7, oldest=0, latest=8)
    assert history.resume(KEY, after_seq=8, latest_seq=8) == []


def test_ring_evicts_the_oldest_envelopes() -> None:
    history = history_with(size=3, last_seq=5)
    assert history.resume(KEY, after_seq=2, latest_seq=5) == [
        envelope(3),
        envelope(4),
        envelope(5),
    ]
    assert history.resume(KEY, after_seq=1, latest_seq=5) == Gap(1, 3, 5)


def test_topics_have_separate_buffers() -> None:
    other = Topic(Channel.TRADES, "MSFT")
    history = History(5)
    history.append(KEY, envelope(1))
    history.append(str(other), envelope(1, other))
    history.append(str(other), envelope(2, other))
    assert history.resume(KEY, after_seq=0, latest_seq=1) == [envelope(1)]
    assert history.resume(str(other), after_seq=1, latest_seq=2) == [envelope(2, other)]
    assert history.resume("trades.TSLA", after_seq=0, latest_seq=0) == []


def test_negative_size_raises() -> None:
    with pytest.raises(ValueError, match="size must be >= 0"):
        History(-1)
