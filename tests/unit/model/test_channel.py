"""The channel registry: today's channels, and a new one as one registration."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import pytest

from support.publishing import stamp_and_fan_out
from tickcast.hub.hub import Hub
from tickcast.hub.sequencer import Sequencer
from tickcast.model.channel import ChannelSpec, Readers, builtin
from tickcast.model.envelope import Envelope
from tickcast.model.leaderboard import (
    AROUND_CHANNEL,
    BOARD_CHANNEL,
    TOP_CHANNEL,
    AroundView,
    BoardMessage,
    TopView,
)
from tickcast.model.market import Bar, BookUpdate, Quote, Status, Trade
from tickcast.model.monitoring import (
    AlertBatch,
    DeadLetterBatch,
    Pipeline,
    SystemMetrics,
    Telemetry,
)
from tickcast.model.portfolio import (
    AssetUpdate,
    PortfolioValue,
    PositionsUpdate,
    PositionUpdate,
    UserPnl,
    UserPositions,
)
from tickcast.model.signal import Signal as TradingSignal
from tickcast.model.signal import WorkerStatus
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.wire import Encoded

TS = 1_700_000_000.0

#: What model/topic.py fixed before the registry (its CONFLATABLE and _CHANNEL_OF).
CONFLATABLE_BEFORE = {
    Channel.QUOTES,
    Channel.ASSETS,
    Channel.PORTFOLIO,
    Channel.LIVE_POSITIONS,
}
CHANNEL_OF_BEFORE = {
    Quote: Channel.QUOTES,
    Trade: Channel.TRADES,
    Bar: Channel.BARS,
    BookUpdate: Channel.BOOK,
    Status: Channel.STATUS,
    AssetUpdate: Channel.ASSETS,
    PortfolioValue: Channel.PORTFOLIO,
    PositionUpdate: Channel.POSITIONS,
    PositionsUpdate: Channel.LIVE_POSITIONS,
}
#: Added since: Front 3's per-user streams (keyed by the owner; read by the owner only).
CHANNEL_OF_ADDED = {
    UserPositions: Channel.USER_POSITIONS,
    UserPnl: Channel.USER_PNL,
}
#: The trading signals and their workers' statuses.
CHANNEL_OF_SIGNALS: dict[type, str] = {
    TradingSignal: Channel.SIGNALS,
    WorkerStatus: Channel.SIGNAL_STATUS,
}

#: The public leaderboard: the board's snapshots and updates (reliable), its views
#: (conflated: each message is the whole view).
CHANNEL_OF_LEADERBOARD: dict[type, str] = {
    BoardMessage: BOARD_CHANNEL,
    TopView: TOP_CHANNEL,
    AroundView: AROUND_CHANNEL,
}

#: The monitoring streams (operators only; alerts and dead letters reliable).
CHANNEL_OF_MONITORING: dict[type, str] = {
    AlertBatch: "alerts",
    SystemMetrics: "metrics",
    Pipeline: "pipeline",
    Telemetry: "telemetry",
    DeadLetterBatch: "dlq",
}


def test_builtin_channels_match_today() -> None:
    channels = builtin()
    assert {spec.name: spec.payload for spec in channels} == {
        name: payload
        for payload, name in (
            CHANNEL_OF_BEFORE
            | CHANNEL_OF_ADDED
            | CHANNEL_OF_SIGNALS
            | CHANNEL_OF_LEADERBOARD
            | CHANNEL_OF_MONITORING
        ).items()
    }
    for name in CHANNEL_OF_MONITORING.values():
        assert channels.get(name).readers is Readers.OPERATOR
        assert channels.get(name).conflate is (name in ("metrics", "pipeline", "telemetry"))
    for name in CHANNEL_OF_SIGNALS.values():  # reliable and public
        assert channels.get(name).readers is Readers.PUBLIC
        assert not channels.get(name).conflate
    for name in CHANNEL_OF_ADDED.values():  # never conflated: each carries news
        assert channels.get(name).readers is Readers.OWNER
        assert not channels.get(name).conflate
    for name in CHANNEL_OF_LEADERBOARD.values():  # public: the front checks the setting
        assert channels.get(name).readers is Readers.PUBLIC
    assert not channels.get(BOARD_CHANNEL).conflate
    assert {spec.name for spec in channels if spec.conflate} == CONFLATABLE_BEFORE | {
        TOP_CHANNEL,
        AROUND_CHANNEL,
        "metrics",
        "pipeline",
        "telemetry",
    }
    leaderboard = set(CHANNEL_OF_LEADERBOARD.values())
    assert [spec.name for spec in channels if spec.name not in leaderboard] == [
        *Channel,
        *CHANNEL_OF_MONITORING.values(),
    ]
    for payload, name in CHANNEL_OF_BEFORE.items():
        spec = channels.get(name)
        assert spec.name is name  # the enum member: topics still test with `is`
        assert spec.payload is payload
    # the key: a symbol for market events, the id (or the asset's symbol) for the others
    quote = Quote("AAPL", 1.0, 1.1, 1.0, 1.0, 1.05, 100.0, TS, "test")
    topic = channels.topic_of(quote)
    assert topic == Topic(Channel.QUOTES, "AAPL") == Topic("quotes", "AAPL")
    assert topic.channel is Channel.QUOTES
    assert str(topic) == "quotes.AAPL"
    assert channels.get(topic.channel).conflate
    assert not channels.get(Channel.TRADES).conflate


def test_a_channel_is_named_and_typed_once() -> None:
    channels = builtin()
    with pytest.raises(ValueError, match="registered already"):
        channels.register(ChannelSpec("quotes", Signal, True, _name))
    with pytest.raises(ValueError, match="published on 'quotes'"):
        channels.register(ChannelSpec("alphas", Quote, True, _name))
    with pytest.raises(ValueError, match="invalid channel name"):
        channels.register(ChannelSpec("sig.nals", Signal, True, _name))
    with pytest.raises(KeyError):
        channels.of(Signal("momentum", 1.0, TS))


class Signal(msgspec.Struct, frozen=True):
    """A kind of stream the hub was not written for."""

    name: str
    value: float
    ts: float


def _name(signal: Signal) -> str:
    return signal.name


@dataclass(eq=False)
class Subscriber:
    wire: str
    received: list[tuple[Encoded, str | None]] = field(default_factory=list)

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        self.received.append((item, key))

    def fault(self) -> None:
        raise AssertionError("no fault expected")


def test_a_new_channel_is_one_registration() -> None:
    channels = builtin()
    channels.register(ChannelSpec("alphas", Signal, True, _name, Readers.AUTHENTICATED))
    encoded: list[Envelope] = []

    def codec(envelope: Envelope) -> bytes:
        encoded.append(envelope)
        return f"{envelope.topic}:{envelope.seq}:{envelope.payload.value}".encode()  # type: ignore[union-attr]

    hub = Hub({"w": codec}, sequencer=Sequencer("E", channels))
    assert hub.channels is channels
    sub, other = Subscriber("w"), Subscriber("w")
    hub.subscribe(sub, Topic("alphas", "momentum"))
    hub.subscribe(other, Topic("alphas", "momentum"))
    stamp_and_fan_out(hub, [Signal("momentum", 0.5, TS), Signal("carry", 0.1, TS)], server_ts=TS)
    stamp_and_fan_out(hub, [Signal("momentum", 0.7, TS + 1)], server_ts=TS + 1)

    expected = [
        (b"alphas.momentum:1:0.5", "alphas.momentum"),
        (b"alphas.momentum:2:0.7", "alphas.momentum"),  # it conflates: keyed
    ]
    assert [(item.payload, key) for item, key in sub.received] == expected
    assert [(item.payload, key) for item, key in other.received] == expected
    assert len(encoded) == 2  # encoded once per update, not per subscriber
    cached = hub.subscribe(Subscriber("w"), Topic("alphas", "carry"))
    assert cached is not None
    assert cached.payload == Signal("carry", 0.1, TS)
    assert hub.latest_seq(Topic("alphas", "momentum")) == 2
