"""Sequencer: (epoch, seq) per topic, apart from fan-out; epochs tell numberings apart."""

from __future__ import annotations

import pytest

from tickcast.hub.sequencer import Sequencer, new_epoch
from tickcast.model.market import Quote, Trade
from tickcast.model.topic import Channel, Topic

TS = 1_700_000_000.0


def quote(symbol: str) -> Quote:
    return Quote(symbol, 0.99, 1.01, 1.0, 1.0, 1.0, 100.0, TS, "test")


def trade(trade_id: str) -> Trade:
    return Trade("AAPL", 1.0, 1.0, TS, "test", trade_id)


def test_seq_per_topic_from_one_with_the_epoch() -> None:
    sequencer = Sequencer("e1")
    first = sequencer.stamp([quote("AAPL"), trade("t1"), quote("MSFT"), quote("AAPL")], TS)
    second = sequencer.stamp([trade("t2")], TS + 1)
    assert [(str(e.topic), e.seq, e.epoch, e.server_ts) for e in first + second] == [
        ("quotes.AAPL", 1, "e1", TS),
        ("trades.AAPL", 1, "e1", TS),
        ("quotes.MSFT", 1, "e1", TS),
        ("quotes.AAPL", 2, "e1", TS),
        ("trades.AAPL", 2, "e1", TS + 1),
    ]
    assert [e.payload for e in second] == [trade("t2")]
    assert sequencer.latest(Topic(Channel.QUOTES, "AAPL")) == 2
    assert sequencer.latest(Topic(Channel.BARS, "AAPL")) == 0


def test_a_new_sequencer_has_a_new_epoch() -> None:
    """A restart is a new sequencer: numbering starts at 1 again, under another epoch, so
    that (epoch, seq) still names one update."""
    before = Sequencer(new_epoch(1_700_000_000.0, "a1b2c3"))
    after = Sequencer(new_epoch(1_700_000_000.001, "a1b2c3"))
    same_ms = Sequencer(new_epoch(1_700_000_000.0, "d4e5f6"))
    assert len({before.epoch, after.epoch, same_ms.epoch}) == 3
    (old,) = before.stamp([trade("t1")], TS)
    (new,) = after.stamp([trade("t1")], TS)
    assert old.seq == new.seq == 1
    assert (old.epoch, old.seq) != (new.epoch, new.seq)


def test_an_epoch_is_the_wall_time_in_ms_then_the_token() -> None:
    assert new_epoch(1_700_000_000.5, "a1b2c3") == f"{1_700_000_000_500:x}a1b2c3"


def test_an_epoch_is_never_empty() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Sequencer("")
