"""Front 1 session: client messages in, replies and subscription commands out, timers.

The session is sans-I/O: every test feeds text with an explicit ``now`` and reads
``frames_to_send()`` and ``commands_received()``. No event loop, no sleeps.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.model.envelope import ResumePoint
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.base import Refused, ResumeGap, Subscribe, Unsubscribe
from tickcast.protocols.native import codec
from tickcast.protocols.native.session import (
    MarketFeedSession,
    Options,
    parse_options,
    subscription_cap,
)

#: 2023-05-01T12:34:56Z: the wall clock at the connect (replies are stamped from it)
NOW = 1_682_944_496.0
#: the monotonic clock at the connect (deadlines are kept in it)
M0 = 5_000.0


def at(offset: float) -> Now:
    """``offset`` seconds after the connect, on both clocks."""
    return Now(M0 + offset, NOW + offset)


KNOWN = frozenset({"AAPL", "MSFT", "TSLA", "BTC/USDT", "BRK.B"})
DEFAULT_OPTIONS = Options()


def make_session(
    *,
    max_subscriptions: int = 10,
    options: Options = DEFAULT_OPTIONS,
    idle_timeout_s: float = 0.0,
) -> MarketFeedSession:
    return MarketFeedSession(
        is_known=KNOWN.__contains__,
        cap=subscription_cap(max_subscriptions),
        now=at(0),
        options=options,
        idle_timeout_s=idle_timeout_s,
    )


AT_1 = at(1)


def send(session: MarketFeedSession, message: Any, now: Now = AT_1) -> list[dict[str, Any]]:
    """Send a message (a str is sent verbatim, anything else as JSON); return the replies."""
    session.receive_text(message if isinstance(message, str) else json.dumps(message), now)
    return replies(session)


def replies(session: MarketFeedSession) -> list[dict[str, Any]]:
    frames = session.frames_to_send()
    assert all(frame.control for frame in frames), "replies must be control frames"
    return [json.loads(frame.payload) for frame in frames]


def q(symbol: str) -> Topic:
    return Topic(Channel.QUOTES, symbol)


def t(symbol: str) -> Topic:
    return Topic(Channel.TRADES, symbol)


def error(message: str) -> dict[str, str]:
    return {"type": "error", "message": message}


#: Every malformed request's error starts with the original server's exact text.
P = "Invalid subscription request: "
SYMBOLS_ERROR = P + "'symbols' must be a non-empty list of strings"
CHANNEL_ERROR = P + "unknown channel: choose from quotes, trades, bars, book, status, signals"

MALFORMED: list[tuple[str, Any, str]] = [
    ("bad json", "{not json", P + "invalid JSON"),
    ("empty text", "", P + "invalid JSON"),
    ("truncated json", '{"action": "subscribe", "symbols": ["AAPL"]', P + "invalid JSON"),
    ("json array", ["subscribe"], P + "expected a JSON object"),
    ("json string", '"subscribe"', P + "expected a JSON object"),
    ("json number", "42", P + "expected a JSON object"),
    ("json null", "null", P + "expected a JSON object"),
    ("missing action", {"symbols": ["AAPL"]}, P + "missing 'action'"),
    ("null action", {"action": None}, P + "missing 'action'"),
    ("unknown action", {"action": "subscrbe"}, P + "unknown action 'subscrbe'"),
    ("non-string action", {"action": 7}, P + "unknown action '7'"),
    ("long action is cut", {"action": "x" * 100}, P + f"unknown action {'x' * 40!r}"),
    ("symbols missing", {"action": "subscribe"}, SYMBOLS_ERROR),
    ("symbols a string", {"action": "subscribe", "symbols": "AAPL"}, SYMBOLS_ERROR),
    ("symbols an object", {"action": "subscribe", "symbols": {"AAPL": 1}}, SYMBOLS_ERROR),
    ("symbols empty", {"action": "subscribe", "symbols": []}, SYMBOLS_ERROR),
    ("symbol a number", {"action": "subscribe", "symbols": ["AAPL", 3]}, SYMBOLS_ERROR),
    ("symbol null", {"action": "subscribe", "symbols": [None]}, SYMBOLS_ERROR),
    ("unsubscribe symbols empty", {"action": "unsubscribe", "symbols": []}, SYMBOLS_ERROR),
    ("symbol empty", {"action": "subscribe", "symbols": ["  "]}, P + "invalid symbol ''"),
    (
        "symbol with space",
        {"action": "subscribe", "symbols": ["AA PL"]},
        P + "invalid symbol 'AA PL'",
    ),
    ("symbol with quote", {"action": "subscribe", "symbols": ['A"B']}, P + "invalid symbol 'A\"B'"),
    (
        "symbol leading dot",
        {"action": "subscribe", "symbols": [".AAPL"]},
        P + "invalid symbol '.AAPL'",
    ),
    (
        "symbol too long",
        {"action": "subscribe", "symbols": ["A" * 33]},
        P + f"invalid symbol {'A' * 33!r}",
    ),
    (
        "symbol non-ascii",
        {"action": "subscribe", "symbols": ["ÄPFEL"]},
        P + "invalid symbol 'ÄPFEL'",
    ),
    (
        "unknown symbol",
        {"action": "subscribe", "symbols": ["AAPL", "ZZZZ", "YYY"]},
        P + "unknown symbol: ZZZZ, YYY",
    ),
    (
        "unknown channel",
        {"action": "subscribe", "symbols": ["AAPL"], "channels": ["news"]},
        CHANNEL_ERROR,
    ),
    (
        "channel not a string",
        {"action": "subscribe", "symbols": ["AAPL"], "channels": [1]},
        CHANNEL_ERROR,
    ),
    (
        "channel a list",
        {"action": "subscribe", "symbols": ["AAPL"], "channels": [["quotes"]]},
        CHANNEL_ERROR,
    ),
    (
        "channels a string",
        {"action": "subscribe", "symbols": ["AAPL"], "channels": "quotes"},
        P + "'channels' must be a non-empty list",
    ),
    (
        "channels empty",
        {"action": "subscribe", "symbols": ["AAPL"], "channels": []},
        P + "'channels' must be a non-empty list",
    ),
    (
        "unsubscribe unknown channel",
        {"action": "unsubscribe", "symbols": ["AAPL"], "channels": ["news"]},
        CHANNEL_ERROR,
    ),
    (
        "resume not a map",
        {"action": "subscribe", "symbols": ["AAPL"], "resume": [["quotes.AAPL", 1]]},
        P + "'resume' must map topics to seq numbers",
    ),
    (
        "resume topic without channel",
        {"action": "subscribe", "symbols": ["AAPL"], "resume": {"AAPL": 1}},
        P + "invalid resume topic 'AAPL'",
    ),
    (
        "resume topic without symbol",
        {"action": "subscribe", "symbols": ["AAPL"], "resume": {"quotes.": 1}},
        P + "invalid resume topic 'quotes.'",
    ),
    (
        "resume topic unknown channel",
        {"action": "subscribe", "symbols": ["AAPL"], "resume": {"news.AAPL": 1}},
        P + "invalid resume topic 'news.AAPL'",
    ),
    (
        "resume topic not requested",
        {"action": "subscribe", "symbols": ["AAPL"], "resume": {"trades.AAPL": 1}},
        P + "resume topic trades.AAPL is not in this subscription",
    ),
    (
        "resume seq negative",
        {"action": "subscribe", "symbols": ["AAPL"], "resume": {"quotes.AAPL": -1}},
        P + "invalid resume seq for quotes.AAPL: must be an integer >= 0",
    ),
    (
        "resume seq a string",
        {"action": "subscribe", "symbols": ["AAPL"], "resume": {"quotes.AAPL": "5"}},
        P + "invalid resume seq for quotes.AAPL: must be an integer >= 0",
    ),
    (
        "resume seq a float",
        {"action": "subscribe", "symbols": ["AAPL"], "resume": {"quotes.AAPL": 5.0}},
        P + "invalid resume seq for quotes.AAPL: must be an integer >= 0",
    ),
    (
        "resume seq a bool",
        {"action": "subscribe", "symbols": ["AAPL"], "resume": {"quotes.AAPL": True}},
        P + "invalid resume seq for quotes.AAPL: must be an integer >= 0",
    ),
]


@pytest.mark.parametrize(
    ("message", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in MALFORMED],
)
def test_malformed_message_returns_error_and_keeps_session_usable(
    message: Any, expected: str
) -> None:
    session = make_session()
    assert send(session, message) == [error(expected)]
    # Clients of the original server match its exact text: it always comes first.
    assert expected.startswith("Invalid subscription request: ")
    assert session.commands_received() == []
    assert session.topics == set()
    assert session.close_reason is None
    # The session still works.
    assert send(session, {"action": "subscribe", "symbols": ["MSFT"]}) == [
        {"type": "subscribed", "symbols": ["MSFT"]}
    ]
    assert session.commands_received() == [Subscribe((q("MSFT"),), {})]


def test_deeply_nested_json_returns_error_and_keeps_session_usable() -> None:
    session = make_session()
    # 2 KB, far below max_message_bytes (64 KiB by default).
    (reply,) = send(session, "[" * 1000 + "]" * 1000)
    assert reply["type"] == "error"
    assert send(session, {"action": "ping"})[0]["type"] == "pong"


def test_binary_frame_returns_error_and_keeps_session_usable() -> None:
    session = make_session()
    session.receive_bytes(b'{"action":"ping"}', at(1))
    assert replies(session) == [error(P + "binary frames are not supported; send JSON text")]
    assert send(session, {"action": "ping"}, now=at(2)) == [
        {"type": "pong", "timestamp": "2023-05-01T12:34:58.000Z"}
    ]


def test_unknown_symbol_subscribes_nothing() -> None:
    session = make_session()
    replies_ = send(session, {"action": "subscribe", "symbols": ["AAPL", "NOPE"]})
    assert replies_ == [error(P + "unknown symbol: NOPE")]
    assert session.topics == set()
    assert session.commands_received() == []


def test_unknown_symbol_message_lists_at_most_ten() -> None:
    session = make_session()
    unknown = [f"X{i}" for i in range(12)]
    assert send(session, {"action": "subscribe", "symbols": unknown}) == [
        error(P + "unknown symbol: " + ", ".join(unknown[:10]))
    ]


def test_too_many_subscriptions_returns_error_and_keeps_existing() -> None:
    session = make_session(max_subscriptions=3)
    send(session, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes", "trades"]})
    session.commands_received()
    replies_ = send(
        session, {"action": "subscribe", "symbols": ["MSFT"], "channels": ["quotes", "trades"]}
    )
    assert replies_ == [
        error("Too many symbols: at most 3 subscriptions (symbol x channel) per connection")
    ]
    assert session.topics == {q("AAPL"), t("AAPL")}
    assert session.commands_received() == []


def test_subscriptions_up_to_the_limit_are_accepted() -> None:
    session = make_session(max_subscriptions=3)
    send(session, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
    # Already-held topics do not count twice.
    assert send(session, {"action": "subscribe", "symbols": ["AAPL", "MSFT", "TSLA"]}) == [
        {"type": "subscribed", "symbols": ["AAPL", "MSFT", "TSLA"]}
    ]
    assert session.topics == {q("AAPL"), q("MSFT"), q("TSLA")}


def test_invalid_resume_subscribes_nothing() -> None:
    session = make_session()
    message = {
        "action": "subscribe",
        "symbols": ["AAPL", "MSFT"],
        "resume": {"quotes.AAPL": 3, "quotes.MSFT": -2},
    }
    assert send(session, message)[0]["type"] == "error"
    assert session.topics == set()
    assert session.commands_received() == []


# -- subscribe


def test_subscribe_replies_and_emits_a_subscribe_command() -> None:
    session = make_session()
    assert send(session, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]}) == [
        {"type": "subscribed", "symbols": ["AAPL", "MSFT"]}
    ]
    assert session.commands_received() == [Subscribe((q("AAPL"), q("MSFT")), {})]
    assert session.commands_received() == []  # taken once
    assert session.topics == {q("AAPL"), q("MSFT")}


def test_default_channel_is_quotes() -> None:
    session = make_session()
    send(session, {"action": "subscribe", "symbols": ["AAPL"]})
    assert session.topics == {q("AAPL")}


def test_explicit_null_channels_means_the_default() -> None:
    session = make_session()
    send(session, {"action": "subscribe", "symbols": ["AAPL"], "channels": None})
    assert session.topics == {q("AAPL")}


def test_subscribe_to_several_channels() -> None:
    session = make_session()
    send(
        session,
        {
            "action": "subscribe",
            "symbols": ["AAPL", "BTC/USDT"],
            "channels": ["trades", "book", "trades"],
        },
    )
    book = Channel.BOOK
    assert session.commands_received() == [
        Subscribe(
            (t("AAPL"), Topic(book, "AAPL"), t("BTC/USDT"), Topic(book, "BTC/USDT")),
            {},
        )
    ]


def test_symbols_are_upper_cased_trimmed_and_deduplicated() -> None:
    session = make_session()
    replies_ = send(
        session, {"action": "subscribe", "symbols": [" aapl", "AAPL", "brk.b", "btc/usdt", "Aapl"]}
    )
    assert replies_ == [{"type": "subscribed", "symbols": ["AAPL", "BRK.B", "BTC/USDT"]}]
    assert session.commands_received() == [Subscribe((q("AAPL"), q("BRK.B"), q("BTC/USDT")), {})]


def test_resubscribing_is_idempotent_and_commands_only_new_topics() -> None:
    session = make_session()
    send(session, {"action": "subscribe", "symbols": ["AAPL"]})
    session.commands_received()
    assert send(session, {"action": "subscribe", "symbols": ["AAPL"]}) == [
        {"type": "subscribed", "symbols": ["AAPL"]}
    ]
    assert session.commands_received() == [Subscribe((), {})]
    send(session, {"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
    assert session.commands_received() == [Subscribe((q("MSFT"),), {})]
    assert session.topics == {q("AAPL"), q("MSFT")}


def test_resume_map_is_passed_on_for_new_topics() -> None:
    session = make_session()
    send(
        session,
        {
            "action": "subscribe",
            "symbols": ["AAPL"],
            "channels": ["quotes", "trades"],
            "resume": {"trades.aapl": 41, "quotes.AAPL": 0},
        },
    )
    assert session.commands_received() == [
        Subscribe((q("AAPL"), t("AAPL")), {t("AAPL"): ResumePoint(41), q("AAPL"): ResumePoint(0)})
    ]


def test_resume_object_form_carries_the_epoch_and_a_bare_seq_none() -> None:
    """{"epoch": ..., "seq": ...} is a seq in that epoch; a bare int (clients written
    before epochs) is a seq in the current epoch (None)."""
    session = make_session()
    send(
        session,
        {
            "action": "subscribe",
            "symbols": ["AAPL"],
            "channels": ["quotes", "trades"],
            "resume": {"trades.AAPL": {"epoch": "18bcfe5682a1b2c3", "seq": 41}, "quotes.AAPL": 7},
        },
    )
    assert session.commands_received() == [
        Subscribe(
            (q("AAPL"), t("AAPL")),
            {t("AAPL"): ResumePoint(41, "18bcfe5682a1b2c3"), q("AAPL"): ResumePoint(7)},
        )
    ]


RESUME_POSITION = (
    P + 'invalid resume position for quotes.AAPL: expected {"epoch": "<as sent>", '
    '"seq": <integer >= 0>}'
)


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        pytest.param({"seq": 4}, RESUME_POSITION, id="no epoch"),
        pytest.param({"epoch": "e1"}, RESUME_POSITION, id="no seq"),
        pytest.param({"epoch": "", "seq": 4}, RESUME_POSITION, id="empty epoch"),
        pytest.param({"epoch": 7, "seq": 4}, RESUME_POSITION, id="epoch a number"),
        pytest.param({"epoch": "e1", "seq": 4, "x": 1}, RESUME_POSITION, id="extra field"),
        pytest.param({}, RESUME_POSITION, id="empty object"),
        pytest.param(
            {"epoch": "e1", "seq": -1},
            P + "invalid resume position for quotes.AAPL: seq must be an integer >= 0",
            id="seq negative",
        ),
        pytest.param(
            {"epoch": "e1", "seq": "4"},
            P + "invalid resume position for quotes.AAPL: seq must be an integer >= 0",
            id="seq a string",
        ),
        pytest.param(
            {"epoch": "e1", "seq": True},
            P + "invalid resume position for quotes.AAPL: seq must be an integer >= 0",
            id="seq a bool",
        ),
    ],
)
def test_resume_object_form_is_validated(position: object, expected: str) -> None:
    session = make_session()
    message = {"action": "subscribe", "symbols": ["AAPL"], "resume": {"quotes.AAPL": position}}
    assert send(session, message) == [error(expected)]
    assert session.commands_received() == []
    assert session.topics == set()


def test_resume_for_an_already_held_topic_is_ignored() -> None:
    session = make_session()
    send(session, {"action": "subscribe", "symbols": ["AAPL"]})
    session.commands_received()
    send(
        session,
        {
            "action": "subscribe",
            "symbols": ["AAPL"],
            "channels": ["quotes", "trades"],
            "resume": {"quotes.AAPL": 5, "trades.AAPL": 6},
        },
    )
    assert session.commands_received() == [Subscribe((t("AAPL"),), {t("AAPL"): ResumePoint(6)})]


# -- unsubscribe


def subscribed_session() -> MarketFeedSession:
    session = make_session()
    send(session, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes", "trades"]})
    send(session, {"action": "subscribe", "symbols": ["MSFT"]})
    session.commands_received()
    return session


def test_unsubscribe_removes_every_channel_of_the_symbol() -> None:
    session = subscribed_session()
    assert send(session, {"action": "unsubscribe", "symbols": ["aapl"]}) == [
        {"type": "unsubscribed", "symbols": ["AAPL"]}
    ]
    (command,) = session.commands_received()
    assert isinstance(command, Unsubscribe)
    assert set(command.topics) == {q("AAPL"), t("AAPL")}
    assert len(command.topics) == 2
    assert session.topics == {q("MSFT")}


def test_unsubscribe_with_channels_removes_only_those() -> None:
    session = subscribed_session()
    send(session, {"action": "unsubscribe", "symbols": ["AAPL", "MSFT"], "channels": ["trades"]})
    assert session.commands_received() == [Unsubscribe((t("AAPL"),))]
    assert session.topics == {q("AAPL"), q("MSFT")}


def test_unsubscribe_of_unheld_symbol_replies_and_removes_nothing() -> None:
    session = subscribed_session()
    assert send(session, {"action": "unsubscribe", "symbols": ["TSLA"]}) == [
        {"type": "unsubscribed", "symbols": ["TSLA"]}
    ]
    assert session.commands_received() == [Unsubscribe(())]
    assert session.topics == {q("AAPL"), t("AAPL"), q("MSFT")}


def test_unsubscribe_frees_room_under_the_limit() -> None:
    session = make_session(max_subscriptions=1)
    send(session, {"action": "subscribe", "symbols": ["AAPL"]})
    assert send(session, {"action": "subscribe", "symbols": ["MSFT"]})[0]["type"] == "error"
    send(session, {"action": "unsubscribe", "symbols": ["AAPL"]})
    assert send(session, {"action": "subscribe", "symbols": ["MSFT"]}) == [
        {"type": "subscribed", "symbols": ["MSFT"]}
    ]


# -- ping


def test_ping_returns_pong_with_iso_timestamp() -> None:
    session = make_session()
    assert send(session, {"action": "ping"}, now=at(0.789)) == [
        {"type": "pong", "timestamp": "2023-05-01T12:34:56.789Z"}
    ]
    assert session.commands_received() == []


def test_replies_keep_the_order_of_requests() -> None:
    session = make_session()
    session.receive_text('{"action":"ping"}', at(0))
    session.receive_text("nope", at(0))
    session.receive_text('{"action":"subscribe","symbols":["AAPL"]}', at(0))
    assert [r["type"] for r in replies(session)] == ["pong", "error", "subscribed"]


def test_send_control_and_send_error_queue_control_frames() -> None:
    session = make_session()
    session.send_control("gap", at(0), topic="trades.AAPL")
    session.send_error("snapshot follows", at(0))
    assert replies(session) == [
        {"type": "gap", "topic": "trades.AAPL"},
        error("snapshot follows"),
    ]


# -- options


@pytest.mark.parametrize(
    ("query", "options"),
    [
        ("", Options()),
        ("seq=1", Options(seq=True)),
        ("seq=true", Options(seq=True)),
        ("seq=0", Options(seq=False)),
        ("seq=false", Options(seq=False)),
        ("frames=array", Options(array=True)),
        ("frames=single", Options(array=False)),
        ("heartbeat=30", Options(heartbeat_s=30.0)),
        ("heartbeat=1", Options(heartbeat_s=1.0)),
        ("heartbeat=3600", Options(heartbeat_s=3600.0)),
        ("heartbeat=0", Options(heartbeat_s=0.0)),
        ("heartbeat=2.5", Options(heartbeat_s=2.5)),
        ("seq=1&frames=array&heartbeat=15", Options(seq=True, array=True, heartbeat_s=15.0)),
        ("token=abc&seq=1", Options(seq=True)),  # other parameters are not options
    ],
)
def test_parse_options_accepts_valid_values(query: str, options: Options) -> None:
    assert parse_options(query) == (options, [])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("seq=yes", "option seq must be 0 or 1"),
        ("seq=", "option seq must be 0 or 1"),
        ("frames=batch", "option frames must be 'single' or 'array'"),
        ("frames=", "option frames must be 'single' or 'array'"),
        ("heartbeat=abc", "option heartbeat must be 0 or 1 to 3600 seconds"),
        ("heartbeat=", "option heartbeat must be 0 or 1 to 3600 seconds"),
        ("heartbeat=0.5", "option heartbeat must be 0 or 1 to 3600 seconds"),
        ("heartbeat=3601", "option heartbeat must be 0 or 1 to 3600 seconds"),
        ("heartbeat=-5", "option heartbeat must be 0 or 1 to 3600 seconds"),
        ("heartbeat=nan", "option heartbeat must be 0 or 1 to 3600 seconds"),
        ("heartbeat=inf", "option heartbeat must be 0 or 1 to 3600 seconds"),
    ],
)
def test_parse_options_refuses_invalid_values_with_a_message(query: str, message: str) -> None:
    assert parse_options(query) == (Options(), [message])


def test_parse_options_reports_each_refused_option_and_keeps_valid_ones() -> None:
    options, errors = parse_options("seq=2&frames=array&heartbeat=99999")
    assert options == Options(seq=False, array=True, heartbeat_s=0.0)
    assert errors == [
        "option seq must be 0 or 1",
        "option heartbeat must be 0 or 1 to 3600 seconds",
    ]


def test_options_select_the_wire_format() -> None:
    assert Options().wire == codec.WIRE == "market"
    assert Options(seq=True).wire == codec.WIRE_SEQ == "market+seq"


# -- timers


def test_no_timers_means_no_deadline() -> None:
    session = make_session()
    assert session.next_deadline() is None
    session.handle_timer(at(1_000_000))
    assert session.frames_to_send() == []
    assert session.close_reason is None


def test_heartbeat_timer_emits_heartbeats_at_the_right_time() -> None:
    session = make_session(options=Options(heartbeat_s=30.0))
    assert session.next_deadline() == M0 + 30
    session.handle_timer(at(29.999))
    assert session.frames_to_send() == []
    session.handle_timer(at(30.25))
    assert replies(session) == [{"type": "heartbeat", "timestamp": "2023-05-01T12:35:26.250Z"}]
    assert session.next_deadline() == M0 + 60.25
    session.handle_timer(at(60.25))
    assert replies(session) == [{"type": "heartbeat", "timestamp": "2023-05-01T12:35:56.250Z"}]
    assert session.close_reason is None


def test_a_wall_clock_step_neither_fires_nor_delays_a_heartbeat_and_stamps_it() -> None:
    session = make_session(options=Options(heartbeat_s=30.0))
    session.handle_timer(Now(M0 + 29.9, NOW + 3600))  # the wall clock jumped an hour ahead
    assert session.frames_to_send() == []
    session.handle_timer(Now(M0 + 30, NOW - 60))  # then a minute behind the connect
    assert replies(session) == [{"type": "heartbeat", "timestamp": "2023-05-01T12:33:56.000Z"}]
    assert session.next_deadline() == M0 + 60


def test_client_messages_do_not_delay_heartbeats() -> None:
    session = make_session(options=Options(heartbeat_s=30.0))
    send(session, {"action": "ping"}, now=at(20))
    assert session.next_deadline() == M0 + 30


def test_idle_timeout_sets_close_reason_3008() -> None:
    session = make_session(idle_timeout_s=60.0)
    assert session.next_deadline() == M0 + 60
    session.handle_timer(at(59.9))
    assert session.close_reason is None
    session.handle_timer(at(60))
    assert session.close_reason is CloseCode.IDLE_TIMEOUT
    assert session.close_reason == 3008


@pytest.mark.parametrize(
    "activity",
    [
        lambda s: s.receive_text('{"action":"ping"}', at(10)),
        lambda s: s.receive_text("garbage", at(10)),
        lambda s: s.receive_bytes(b"\x00", at(10)),
    ],
    ids=["message", "malformed message", "binary frame"],
)
def test_any_client_frame_resets_the_idle_timer(activity: Any) -> None:
    session = make_session(idle_timeout_s=60.0)
    activity(session)
    assert session.next_deadline() == M0 + 70
    session.handle_timer(at(69))
    assert session.close_reason is None
    session.handle_timer(at(70))
    assert session.close_reason is CloseCode.IDLE_TIMEOUT


def test_next_deadline_is_the_earlier_of_idle_and_heartbeat() -> None:
    session = make_session(options=Options(heartbeat_s=30.0), idle_timeout_s=45.0)
    assert session.next_deadline() == M0 + 30
    session.handle_timer(at(30))
    assert replies(session)[0]["type"] == "heartbeat"
    assert session.next_deadline() == M0 + 45  # idle (+45) before heartbeat (+60)
    session.handle_timer(at(45))
    assert session.close_reason is CloseCode.IDLE_TIMEOUT
    assert session.frames_to_send() == []


def test_unsubscribe_with_null_channels_removes_every_channel() -> None:
    session = make_session()
    send(session, {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes", "trades"]})
    session.commands_received()
    send(session, {"action": "unsubscribe", "symbols": ["AAPL"], "channels": None})
    assert session.topics == set()


def test_the_status_channel_has_one_stream_feed() -> None:
    session = make_session()
    assert send(session, {"action": "subscribe", "symbols": ["feed"], "channels": ["status"]}) == [
        {"type": "subscribed", "symbols": ["FEED"]}
    ]
    (command,) = session.commands_received()
    assert isinstance(command, Subscribe)
    assert command.topics == (Topic(Channel.STATUS, "FEED"),)


def test_status_with_market_channels_subscribes_each_where_it_belongs() -> None:
    session = make_session()
    send(
        session,
        {"action": "subscribe", "symbols": ["AAPL", "FEED"], "channels": ["quotes", "status"]},
    )
    (command,) = session.commands_received()
    assert isinstance(command, Subscribe)
    assert set(command.topics) == {q("AAPL"), Topic(Channel.STATUS, "FEED")}


@pytest.mark.parametrize(
    "message",
    [
        {"action": "subscribe", "symbols": ["AAPL"], "channels": ["status"]},
        {"action": "subscribe", "symbols": ["FEED"]},
        {"action": "subscribe", "symbols": ["FEED"], "channels": ["trades"]},
    ],
)
def test_status_and_feed_do_not_mix_with_the_wrong_partner(message: dict[str, Any]) -> None:
    session = make_session()
    assert send(session, message) == [
        {
            "type": "error",
            "message": "Invalid subscription request: the status channel has one symbol, FEED",
        }
    ]
    assert session.commands_received() == []
    assert send(session, {"action": "subscribe", "symbols": ["AAPL"]})[0]["type"] == "subscribed"


@pytest.mark.parametrize("channel", ["portfolio", "positions", "assets"])
def test_other_fronts_channels_are_not_market_feed_channels(channel: str) -> None:
    # portfolio data is private: the market feed must never subscribe to it by name
    session = make_session()
    message = {"action": "subscribe", "symbols": ["AAPL"], "channels": [channel]}
    assert send(session, message) == [{"type": "error", "message": CHANNEL_ERROR}]
    assert session.commands_received() == []


# -- the front's answers


def test_a_resume_gap_is_answered_with_a_reset_in_the_clients_form() -> None:
    session = make_session()
    bare = ResumeGap(t("AAPL"), 99, 12, "history_gap", None)
    session.answer(bare, at(0))
    session.answer(ResumeGap(t("AAPL"), 41, 3, "epoch_changed", "e2"), at(0))
    assert replies(session) == [
        {
            "type": "reset",
            "topic": "trades.AAPL",
            "seq": 12,
            "requested": 99,
            "reason": "history_gap",
        },
        {
            "type": "reset",
            "topic": "trades.AAPL",
            "seq": 3,
            "requested": 41,
            "reason": "epoch_changed",
            "epoch": "e2",
        },
    ]
    assert session.commands_received() == []
    assert session.close_reason is None


def test_a_refused_answer_is_an_error_and_a_close() -> None:
    session = make_session()
    session.answer(Refused("Not allowed", CloseCode.FORBIDDEN), at(0))
    assert replies(session) == [error("Not allowed")]
    assert session.close_reason is CloseCode.FORBIDDEN
