"""Trading signals on Fronts 1, 2 and 3: each codec's shape and each session's messages.

Pure: codecs are called with envelopes, sessions fed text with an explicit ``now``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.hub.cache import LastValueCache
from tickcast.model.envelope import Envelope, ResumePoint
from tickcast.model.signal import Signal, WorkerStatus
from tickcast.model.signal import encode as seed_json
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.base import (
    Subscribe,
    SubscribeChannel,
    Unsubscribe,
    UnsubscribeChannel,
)
from tickcast.protocols.envelope import codec as envelope_codec
from tickcast.protocols.envelope.session import RealtimeSession
from tickcast.protocols.envelope.session import subscription_cap as realtime_cap
from tickcast.protocols.native import codec as native_codec
from tickcast.protocols.native.session import MarketFeedSession
from tickcast.protocols.native.session import subscription_cap as native_cap
from tickcast.protocols.stomp import codec as stomp_codec
from tickcast.protocols.stomp.frames import FrameParser
from tickcast.protocols.stomp.session import WHOLE, StompSession

WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NOW = Now(5_000.0, WALL)
SERVER_TS = WALL + 1.25
EPOCH = "18bcfe5682a1b2c3"
SIGNAL = Signal(
    "MA_CROSS", "BUY", 162.5, "AAPL", "1m", "2026-01-01T00:00:00.000Z", "MA-AAPL-1", "engine"
)
STATUS = WorkerStatus("SignalMonitorWorker", "degraded", "redis unreachable")
SIGNALS_AAPL = Topic(Channel.SIGNALS, "AAPL")


def envelope(payload: Signal | WorkerStatus, seq: int = 7) -> Envelope:
    key = payload.symbol if isinstance(payload, Signal) else payload.service
    channel = Channel.SIGNALS if isinstance(payload, Signal) else Channel.SIGNAL_STATUS
    return Envelope(Topic(channel, key), seq, SERVER_TS, payload, EPOCH)


SEED = json.loads(seed_json(SIGNAL))


# -- codecs


def test_front_1_wraps_the_signal_under_data_beside_its_own_type_tag() -> None:
    assert json.loads(native_codec.encode(envelope(SIGNAL))) == {"type": "signal", "data": SEED}
    assert json.loads(native_codec.encode_with_seq(envelope(SIGNAL))) == {
        "type": "signal",
        "data": SEED,
        "topic": "signals.AAPL",
        "seq": 7,
        "epoch": EPOCH,
    }
    assert SEED["type"] == "MA_CROSS"  # the strategy, untouched under data


def test_front_2_new_signal_and_status_update_are_stamped_with_the_server_time() -> None:
    stamp = "2026-01-01T00:00:01.250Z"
    assert json.loads(envelope_codec.encode(envelope(SIGNAL))) == {
        "type": "new_signal",
        "data": SEED,
        "timestamp": stamp,
    }
    assert json.loads(envelope_codec.encode(envelope(STATUS))) == {
        "type": "status_update",
        "data": {
            "service": "SignalMonitorWorker",
            "status": "degraded",
            "message": "redis unreachable",
        },
        "timestamp": stamp,
    }


def test_front_3_body_is_the_seed_json_under_the_signal_topic_destination() -> None:
    [frame] = FrameParser().feed(
        b"MESSAGE\nsubscription:s\n" + stomp_codec.encode(envelope(SIGNAL))
    )
    assert frame.headers["destination"] == "/topic/signals.AAPL"
    assert frame.headers["message-id"] == f"signals.AAPL-{EPOCH}-7"
    assert frame.headers["content-type"] == "application/json"
    assert (frame.headers["epoch"], frame.headers["seq"]) == (EPOCH, "7")
    assert frame.body == seed_json(SIGNAL)


def test_a_signal_is_an_event_never_a_new_subscribers_current_value() -> None:
    cache = LastValueCache()
    cache.update("signals.AAPL", envelope(SIGNAL))
    cache.update("signal_status.SignalMonitorWorker", envelope(STATUS))
    assert cache.get("signals.AAPL") is None
    assert cache.get("signal_status.SignalMonitorWorker") == envelope(STATUS)  # a state


# -- Front 1


def native() -> MarketFeedSession:
    return MarketFeedSession(is_known={"AAPL", "MSFT"}.__contains__, cap=native_cap(4), now=NOW)


def native_send(s: MarketFeedSession, message: Any) -> list[dict[str, Any]]:
    s.receive_text(json.dumps(message), NOW)
    return [json.loads(f.payload) for f in s.frames_to_send()]


def test_front_1_subscribes_signals_of_any_well_formed_symbol_with_resume() -> None:
    s = native()
    resume = {"signals.AAPL": {"epoch": EPOCH, "seq": 3}}
    message = {
        "action": "subscribe",
        "symbols": ["aapl", "BTC/USDT"],
        "channels": ["signals"],
        "resume": resume,
    }
    assert native_send(s, message) == [{"type": "subscribed", "symbols": ["AAPL", "BTC/USDT"]}]
    [command] = s.commands_received()
    assert isinstance(command, Subscribe)
    assert set(command.topics) == {SIGNALS_AAPL, Topic(Channel.SIGNALS, "BTC/USDT")}
    assert command.resume == {SIGNALS_AAPL: ResumePoint(3, EPOCH)}
    # twice: idempotent, as every Front 1 subscription (nothing new for the hub)
    assert native_send(s, {**message, "resume": None})[0]["type"] == "subscribed"
    assert s.commands_received() == [Subscribe(())]
    # unsubscribe without channels drops the signals too
    native_send(s, {"action": "unsubscribe", "symbols": ["AAPL", "BTC/USDT"]})
    [gone] = s.commands_received()
    assert isinstance(gone, Unsubscribe)
    assert set(gone.topics) == {SIGNALS_AAPL, Topic(Channel.SIGNALS, "BTC/USDT")}
    assert not s.topics


def test_front_1_market_channels_beside_signals_still_need_known_symbols() -> None:
    s = native()
    message = {"action": "subscribe", "symbols": ["BTC/USDT"], "channels": ["quotes", "signals"]}
    [reply] = native_send(s, message)
    assert reply == {
        "type": "error",
        "message": "Invalid subscription request: unknown symbol: BTC/USDT",
    }
    assert not s.topics
    assert not s.commands_received()


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (
            {"channels": ["signal"]},
            "unknown channel: choose from quotes, trades, bars, book, status, signals",
        ),
        ({"channels": ["signal_status"]}, "unknown channel: choose from"),
        ({"symbols": ["../X"]}, "invalid symbol '../X'"),
        ({"symbols": ["FEED"]}, "the status channel has one symbol, FEED"),
        ({"symbols": []}, "'symbols' must be a non-empty list of strings"),
    ],
)
def test_front_1_bad_signal_subscriptions_are_errors_and_the_session_goes_on(
    message: dict[str, Any], text: str
) -> None:
    s = native()
    request = {"action": "subscribe", "symbols": ["AAPL"], "channels": ["signals"], **message}
    [reply] = native_send(s, request)
    assert reply["type"] == "error"
    assert reply["message"].startswith(f"Invalid subscription request: {text}")
    assert not s.topics
    assert not s.commands_received()
    assert native_send(s, {"action": "ping"})[0]["type"] == "pong"


def test_front_1_signals_count_under_the_cap() -> None:
    s = native()
    request = {"action": "subscribe", "symbols": ["A", "B", "C", "D", "E"], "channels": ["signals"]}
    [reply] = native_send(s, request)
    assert reply["type"] == "error"
    assert "at most 4" in reply["message"]


# -- Front 2


def realtime(*, user_id: int | None = None, anonymous: bool = True) -> RealtimeSession:
    s = RealtimeSession(
        connection_id="c-1",
        user_id=user_id,
        anonymous_allowed=anonymous,
        is_known={"AAPL"}.__contains__,
        owner_of={}.get,
        cap=realtime_cap(3),
        now=NOW,
    )
    s.frames_to_send()
    return s


def rt_send(s: RealtimeSession, type_: str, data: Any = None) -> list[dict[str, Any]]:
    s.receive_text(json.dumps({"type": type_, "data": {} if data is None else data}), NOW)
    return [json.loads(f.payload) for f in s.frames_to_send()]


def rt_reply(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": type_, "data": data, "timestamp": "2026-01-01T00:00:00.000Z"}


def rt_error(message: str) -> list[dict[str, Any]]:
    return [rt_reply("error", {"message": message})]


def test_front_2_signals_of_some_symbols_acknowledged_then_dropped() -> None:
    s = realtime()
    reply = rt_send(s, "subscribe_signals", {"symbols": ["aapl", "BTC/USDT", "AAPL"]})
    assert reply == [rt_reply("signals_subscribed", {"symbols": ["AAPL", "BTC/USDT"]})]
    assert s.commands_received() == [Subscribe((SIGNALS_AAPL, Topic(Channel.SIGNALS, "BTC/USDT")))]
    # twice: acknowledged again, nothing new for the hub
    rt_send(s, "subscribe_signals", {"symbols": ["AAPL"]})
    assert s.commands_received() == []
    reply = rt_send(s, "unsubscribe_signals", {"symbols": ["AAPL", "MSFT"]})
    assert reply == [rt_reply("signals_unsubscribed", {"symbols": ["AAPL", "MSFT"]})]
    assert s.commands_received() == [Unsubscribe((SIGNALS_AAPL,))]
    rt_send(s, "unsubscribe_signals")  # the rest
    assert s.commands_received() == [Unsubscribe((Topic(Channel.SIGNALS, "BTC/USDT"),))]
    assert not s.topics


def test_front_2_every_signal_is_channel_wide_and_the_two_forms_do_not_mix() -> None:
    s = realtime()
    assert rt_send(s, "subscribe_signals") == [rt_reply("signals_subscribed", {"symbols": None})]
    assert s.commands_received() == [SubscribeChannel(Channel.SIGNALS)]
    rt_send(s, "subscribe_signals")
    assert s.commands_received() == []  # held already
    assert rt_send(s, "subscribe_signals", {"symbols": ["AAPL"]}) == rt_error(
        "Already subscribed to every signal: send unsubscribe_signals first"
    )
    assert rt_send(s, "unsubscribe_signals", {"symbols": ["AAPL"]}) == rt_error(
        "Subscribed to every signal: send unsubscribe_signals without symbols"
    )
    assert rt_send(s, "unsubscribe_signals") == [
        rt_reply("signals_unsubscribed", {"symbols": None})
    ]
    assert s.commands_received() == [UnsubscribeChannel(Channel.SIGNALS)]
    rt_send(s, "subscribe_signals", {"symbols": ["AAPL"]})
    s.commands_received()
    assert rt_send(s, "subscribe_signals") == rt_error(
        "Already subscribed to the signals of AAPL: send unsubscribe_signals first"
    )
    assert s.commands_received() == []


def test_front_2_worker_status_is_channel_wide() -> None:
    s = realtime()
    assert rt_send(s, "subscribe_signal_status") == [rt_reply("signal_status_subscribed", {})]
    assert s.commands_received() == [SubscribeChannel(Channel.SIGNAL_STATUS)]
    assert rt_send(s, "unsubscribe_signal_status") == [rt_reply("signal_status_unsubscribed", {})]
    assert s.commands_received() == [UnsubscribeChannel(Channel.SIGNAL_STATUS)]
    rt_send(s, "unsubscribe_signal_status")  # not held: acknowledged, nothing to drop
    assert s.commands_received() == []


@pytest.mark.parametrize(
    "data", [{"symbols": []}, {"symbols": "AAPL"}, {"symbols": ["../x"]}, {"symbols": [1]}]
)
def test_front_2_bad_symbols_are_an_error_and_the_session_goes_on(data: dict[str, Any]) -> None:
    s = realtime()
    assert rt_send(s, "subscribe_signals", data) == rt_error(
        "Invalid request: 'symbols' must be a non-empty list of tickers such as 'AAPL'"
    )
    assert s.commands_received() == []
    assert not s.topics
    assert rt_send(s, "ping") == [rt_reply("pong", {})]


def test_front_2_signals_count_under_the_cap_and_need_a_reader() -> None:
    s = realtime()
    rt_send(s, "subscribe_signal_status")
    rt_send(s, "subscribe_signals", {"symbols": ["A", "B"]})
    assert rt_send(s, "subscribe_asset", {"symbol": "AAPL"}) == rt_error(
        "Too many subscriptions: at most 3 per connection"
    )
    closed = realtime(anonymous=False)
    closed.frames_to_send()
    assert rt_send(closed, "subscribe_signals") == rt_error("Authentication required")
    assert closed.commands_received() == []


# -- Front 3


def stomp_resolve(destination: str) -> Topic | None:
    if destination == stomp_codec.ALL_SIGNALS:
        return Topic(Channel.SIGNALS, WHOLE)
    return stomp_codec.topic_of(destination)


def stomp() -> StompSession:
    s = StompSession(resolve=stomp_resolve, now=NOW, max_subscriptions=10)
    s.receive_text("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00", NOW)
    s.frames_to_send()
    return s


def frame(command: str, **headers: str) -> str:
    lines = "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in headers.items())
    return f"{command}\n{lines}\n\x00"


def test_front_3_every_signal_is_channel_wide_and_names_every_signal_topic() -> None:
    s = stomp()
    s.receive_text(frame("SUBSCRIBE", id="all", destination="/topic/signals"), NOW)
    s.receive_text(frame("SUBSCRIBE", id="all-2", destination="/topic/signals"), NOW)
    assert s.commands_received() == [SubscribeChannel(Channel.SIGNALS)]  # once
    assert not s.topics  # nothing keyed
    ids = [sub.id for sub in s.subscriptions_for(SIGNALS_AAPL)]
    assert ids == ["all", "all-2"]
    assert s.subscriptions_for(Topic(Channel.QUOTES, "AAPL")) == ()
    s.receive_text(frame("UNSUBSCRIBE", id="all"), NOW)
    assert s.commands_received() == []  # another id holds it
    s.receive_text(frame("UNSUBSCRIBE", id="all-2"), NOW)
    assert s.commands_received() == [UnsubscribeChannel(Channel.SIGNALS)]
    assert s.subscriptions_for(SIGNALS_AAPL) == ()
    assert s.close_reason is None


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        ("/topic/signals", "/topic/signals.AAPL", CloseCode.POLICY_VIOLATION),
        ("/topic/signals.AAPL", "/topic/signals", CloseCode.POLICY_VIOLATION),
    ],
)
def test_front_3_a_channel_is_read_whole_or_by_key_not_both(
    first: str, second: str, code: CloseCode
) -> None:
    s = stomp()
    s.receive_text(frame("SUBSCRIBE", id="a", destination=first), NOW)
    s.commands_received()
    s.receive_text(frame("SUBSCRIBE", id="b", destination=second), NOW)
    [error] = s.frames_to_send()
    assert error.payload.startswith(b"ERROR\n")
    assert b"read a channel whole or by key, not both" in error.payload
    assert s.close_reason is code
    assert s.commands_received() == []


def test_front_3_no_resume_on_every_signal() -> None:
    s = stomp()
    s.receive_text(frame("SUBSCRIBE", id="a", destination="/topic/signals", resume_seq="4"), NOW)
    [error] = s.frames_to_send()
    assert b"resume-seq names a position on one topic" in error.payload
    assert s.close_reason is CloseCode.PROTOCOL_ERROR


def test_front_3_one_symbol_resumes_like_any_topic() -> None:
    s = stomp()
    s.receive_text(
        frame(
            "SUBSCRIBE",
            id="a",
            destination="/topic/signals.AAPL",
            resume_seq="4",
            resume_epoch=EPOCH,
        ),
        NOW,
    )
    assert s.commands_received() == [
        Subscribe((SIGNALS_AAPL,), {SIGNALS_AAPL: ResumePoint(4, EPOCH)})
    ]
