"""The bus messages: every payload survives the trip, and what a node does not know
is ignored (a rolling upgrade), never an error."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tickcast.bus import wire
from tickcast.hub.sequencer import Sequencer
from tickcast.model.channel import builtin
from tickcast.model.market import Quote, Status, Trade
from tickcast.model.monitoring import Alert, AlertBatch, Severity
from tickcast.model.portfolio import PortfolioValue
from tickcast.model.signal import Signal

D = Decimal


def _value() -> PortfolioValue:
    return PortfolioValue(
        7, "Growth", 3, D("1000.10"), D("900"), D("1.5"), D("0.15"), D("100.10"), D("0"),
        D("950.1"), D("50"), D("1000"), 1.5,
    )  # fmt: skip


EVENTS = [
    Quote("AAPL", 1.0, 1.1, 100.0, 200.0, 1.05, 10.0, 1.0, "sim"),
    Trade("BTC/USDT", 2.5, 0.1, 2.0, "sim", "t1"),
    Status("FEED", "simulator", "up", "simulator", "session up", 3.0),
    _value(),
    Signal("signal", "BUY", 101.5, "AAPL", "1m", "2026-12-05T10:00:00Z", id="s1"),
    AlertBatch((Alert("a1", "cpu", "host", Severity.HIGH, "hot", "gateway", 4.0),)),
]


def test_a_batch_of_every_kind_of_payload_comes_back_equal() -> None:
    codec = wire.Codec(builtin())
    envelopes = Sequencer("e1").stamp(EVENTS, 12.5)
    data = wire.encode(wire.Batch("a", "e1", 1, codec.items(envelopes), token=3))
    batch = wire.decode(data)
    assert isinstance(batch, wire.Batch)
    assert (batch.node, batch.epoch, batch.n, batch.token) == ("a", "e1", 1, 3)
    assert codec.envelopes(batch.epoch, batch.items) == envelopes
    # Decimal stays exact
    assert codec.envelopes("e1", batch.items)[3].payload.total_value == D("1000.10")


def test_forwarded_events_come_back_equal() -> None:
    codec = wire.Codec(builtin())
    message = wire.decode(wire.encode(wire.Publish("b", codec.events_out(EVENTS))))
    assert isinstance(message, wire.Publish)
    assert codec.events_in(message.items) == EVENTS


def test_a_kind_this_version_does_not_know_is_ignored() -> None:
    newer = msgspec.msgpack.encode({"k": "rebalance", "node": "c", "v": 1})
    assert wire.decode(newer) is None


def test_a_higher_version_is_ignored_and_a_new_field_is_dropped() -> None:
    later = msgspec.msgpack.encode({"k": "leaving", "node": "c", "v": wire.VERSION + 1})
    assert wire.decode(later) is None
    extra = msgspec.msgpack.encode({"k": "leaving", "node": "c", "v": 1, "reason": "deploy"})
    assert wire.decode(extra) == wire.Leaving("c")


def test_garbage_is_a_decode_error_for_the_caller_to_count() -> None:
    with pytest.raises(msgspec.DecodeError):
        wire.decode(b"\xc1not msgpack")


def test_a_long_batch_is_split_in_runs_under_the_limit() -> None:
    codec = wire.Codec(builtin())
    quotes = [Quote(f"S{i}", 1.0, 1.1, 1.0, 1.0, 1.0, 1.0, float(i), "sim") for i in range(300)]
    items = codec.items(Sequencer("e").stamp(quotes, 1.0))
    runs = wire.split(items, 2000)
    assert len(runs) > 1
    assert [item for run in runs for item in run] == items
    assert all(sum(len(i[4]) + len(i[1]) + 32 for i in run) <= 2000 for run in runs)
