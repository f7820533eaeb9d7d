"""StompSession: every command path of STOMP 1.2 at the pure session level, from the
specification's rules (our own cases). Plain calls with ``now`` passed in; no sleeps."""

from __future__ import annotations

import json

import pytest

from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.model.envelope import ResumePoint
from tickcast.model.topic import Topic
from tickcast.protocols.base import (
    Authenticate,
    Authenticated,
    Refused,
    ResumeGap,
    Subscribe,
    Unsubscribe,
)
from tickcast.protocols.stomp import codec
from tickcast.protocols.stomp.frames import Frame, FrameParser, Limits
from tickcast.protocols.stomp.session import (
    StompSession,
    negotiate_heartbeat,
    negotiate_version,
    subscription_cap,
)

T0 = 1_700_000_000.0
M0 = 5_000.0


def at(offset: float) -> Now:
    return Now(M0 + offset, T0 + offset)


KNOWN = {"AAPL", "MSFT"}


def resolve(destination: str) -> Topic | None:
    topic = codec.topic_of(destination)
    if topic is None or topic.channel not in ("quotes", "trades") or topic.key not in KNOWN:
        return None
    return topic


AAPL = Topic("trades", "AAPL")
MSFT = Topic("trades", "MSFT")


def make(**kw: object) -> StompSession:
    options: dict[str, object] = {"resolve": resolve, "now": at(0), "session_id": "s-1"}
    options.update(kw)
    options.setdefault("cap", subscription_cap(10))
    return StompSession(**options)  # type: ignore[arg-type]


def frame(command: str, body: str = "", **headers: str) -> str:
    lines = [command] + [f"{k.replace('_', '-')}:{v}" for k, v in headers.items()]
    return "\n".join(lines) + "\n\n" + body + "\x00"


def out(session: StompSession) -> list[Frame]:
    """What the session sent, parsed back as a client would."""
    parser = FrameParser(unescape=session.version != "1.0")
    return [f for item in session.frames_to_send() for f in parser.feed(item.message)]


CONNECT = frame("CONNECT", accept_version="1.0,1.1,1.2", host="h", heart_beat="0,0")


def connected(**kw: object) -> StompSession:
    session = make(**kw)
    session.receive_text(CONNECT, at(0.1))
    [reply] = out(session)
    assert reply.command == "CONNECTED"
    return session


def sub(id_: str, destination: str = "/topic/trades.AAPL", **headers: str) -> str:
    return frame("SUBSCRIBE", id=id_, destination=destination, **headers)


def test_connect_answers_connected_with_version_heartbeat_server_and_session() -> None:
    session = make(server="tickcast/0.1.0")
    session.receive_text(frame("CONNECT", accept_version="1.1,1.2", host="h"), at(1))
    [reply] = out(session)
    assert reply == Frame(
        "CONNECTED",
        {
            "version": "1.2",
            "heart-beat": "10000,10000",
            "server": "tickcast/0.1.0",
            "session": "s-1",
        },
    )
    assert session.connected
    assert session.close_reason is None


def test_the_stomp_command_connects_too() -> None:
    session = make()
    session.receive_text(frame("STOMP", accept_version="1.2", host="h"), at(1))
    assert [f.command for f in out(session)] == ["CONNECTED"]


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "1.0"),
        ("1.0", "1.0"),
        ("1.1", "1.1"),
        ("1.0,1.1,1.2", "1.2"),
        ("1.2,2.0", "1.2"),
        ("2.0", None),
        ("", None),
    ],
)
def test_version_negotiation(accept: str | None, chosen: str | None) -> None:
    assert negotiate_version(accept) == chosen


def test_no_common_version_is_an_error_with_our_versions_then_close() -> None:
    session = make()
    session.receive_text(frame("CONNECT", accept_version="2.0,2.1"), at(1))
    [error] = out(session)
    assert error.command == "ERROR"
    assert error.headers["version"] == "1.0,1.1,1.2"
    assert "message" in error.headers
    assert session.close_reason is CloseCode.PROTOCOL_ERROR


def test_a_first_frame_other_than_connect_is_an_error_then_close() -> None:
    session = make()
    session.receive_text(sub("0"), at(1))
    [error] = out(session)
    assert error.command == "ERROR"
    assert "CONNECT" in error.headers["message"]
    assert session.close_reason is CloseCode.PROTOCOL_ERROR
    assert session.commands_received() == []
    session.receive_text(CONNECT, at(2))  # closed: nothing more is read
    assert out(session) == []


def test_login_timeout_for_a_client_that_never_connects() -> None:
    session = make(login_timeout_s=5.0)
    assert session.next_deadline() == M0 + 5
    session.receive_text("\n", at(1))  # a heart-beat is not a CONNECT
    session.handle_timer(at(4.999))
    assert session.close_reason is None
    session.handle_timer(Now(M0 + 5, T0 - 3600))  # due on the monotonic clock
    [error] = out(session)
    assert error.command == "ERROR"
    assert "Login timeout" in error.headers["message"]
    assert session.close_reason is CloseCode.AUTH_TIMEOUT
    assert session.next_deadline() is None


def test_an_error_before_connected_is_not_escaped() -> None:
    """Until CONNECTED the client knows no version, so it does not unescape (stompjs
    read ``Login timeout\\c ...``): such an ERROR goes unescaped, with no backslash;
    after CONNECTED a 1.2 ERROR is escaped."""
    session = make(login_timeout_s=5.0)
    session.handle_timer(at(6))
    [item] = session.frames_to_send()
    assert item.message.startswith(b"ERROR\nmessage:Login timeout: ")
    assert b"\\" not in item.message.split(b"\n\n")[0]
    later = connected()
    later.receive_text(frame("SUBSCRIBE", id="0", destination="/topic/quotes.NOPE"), at(1))
    [error] = later.frames_to_send()
    assert b"message:Unknown destination /topic/quotes.NOPE" in error.message
    after = connected()
    after.receive_text(frame("BEGIN", transaction="t"), at(1))
    [error] = after.frames_to_send()
    assert error.message.startswith(b"ERROR\nmessage:BEGIN\\c transactions")


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        (None, (10000, 10000), (0, 0)),  # absent: 0,0
        ("0,0", (10000, 10000), (0, 0)),
        ("10000,10000", (10000, 10000), (10000, 10000)),
        ("5000,20000", (10000, 10000), (20000, 10000)),  # we send max(sx,cy), they max(cx,sy)
        ("20000,5000", (10000, 10000), (10000, 20000)),
        ("0,5000", (10000, 10000), (10000, 0)),  # the client cannot send
        ("5000,0", (10000, 10000), (0, 10000)),  # the client wants none
        ("5000,5000", (0, 0), (0, 0)),  # we neither send nor want
        ("5000,5000", (0, 8000), (0, 8000)),
    ],
)
def test_heartbeat_negotiation(
    client: str | None, server: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert negotiate_heartbeat(client, server) == expected


@pytest.mark.parametrize("bad", ["10000", "a,b", "1,2,3", "-1,5", ""])
def test_a_malformed_heartbeat_header_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not a heart-beat"):
        negotiate_heartbeat(bad, (1, 1))
    session = make()
    session.receive_text(frame("CONNECT", accept_version="1.2", heart_beat=bad), at(1))
    assert [f.command for f in out(session)] == ["ERROR"]
    assert session.close_reason is CloseCode.PROTOCOL_ERROR


def test_heartbeats_are_sent_at_the_outgoing_interval_and_a_silent_peer_is_dead() -> None:
    session = make(heart_beat=(10000, 10000))
    session.receive_text(frame("CONNECT", accept_version="1.2", heart_beat="10000,10000"), at(0))
    out(session)
    assert session.heartbeats == (10000, 10000)
    assert session.next_deadline() == M0 + 10
    session.handle_timer(at(10))
    assert [item.message for item in session.frames_to_send()] == [b"\n"]
    assert session.next_deadline() == M0 + 20
    session.receive_text("\n", at(15))  # the client's heart-beat: alive until 15 + 2 x 10
    for t in (20, 30):
        session.handle_timer(at(t))
        assert [item.message for item in session.frames_to_send()] == [b"\n"]
    assert session.next_deadline() == M0 + 35
    session.handle_timer(at(34.999))
    assert session.close_reason is None
    session.handle_timer(at(35))
    assert session.close_reason is CloseCode.IDLE_TIMEOUT
    assert session.frames_to_send() == []  # a dead peer gets no ERROR
    assert session.next_deadline() is None


def test_a_wall_clock_step_does_not_move_the_heartbeat_deadlines() -> None:
    session = make(heart_beat=(0, 10000))
    session.receive_text(frame("CONNECT", accept_version="1.2", heart_beat="10000,0"), at(0))
    session.handle_timer(Now(M0 + 19.9, T0 + 86_400))
    assert session.close_reason is None
    session.handle_timer(Now(M0 + 20, T0 - 86_400))
    assert session.close_reason is CloseCode.IDLE_TIMEOUT


def test_stomp_1_0_has_no_heartbeats_and_no_escaping() -> None:
    session = make()
    session.receive_text(frame("CONNECT", heart_beat="10000,10000"), at(0))
    [reply] = out(session)
    assert reply.headers == {"version": "1.0", "server": "tickcast", "session": "s-1"}
    assert session.heartbeats == (0, 0)
    assert session.next_deadline() is None
    session.receive_text("SUBSCRIBE\ndestination:/topic/trades.AAPL\nreceipt:a\\b\n\n\x00", at(1))
    [receipt] = session.frames_to_send()
    assert receipt.message == b"RECEIPT\nreceipt-id:a\\b\n\n\x00"
    [subscription] = session.subscriptions_for(AAPL)
    assert subscription.id == "/topic/trades.AAPL"  # 1.0: the destination names it
    session.receive_text(frame("UNSUBSCRIBE", destination="/topic/trades.AAPL"), at(2))
    assert session.commands_received() == [Subscribe((AAPL,)), Unsubscribe((AAPL,))]


def test_credentials_ask_the_front_and_wait_for_its_answer() -> None:
    for headers, token in [
        ({"Authorization": "Bearer jwt-1"}, "jwt-1"),
        ({"login": "alice", "passcode": "key-2"}, "key-2"),
        ({"login": "key-3"}, "key-3"),
    ]:
        session = make(anonymous_allowed=False)
        session.receive_text(frame("CONNECT", accept_version="1.2", **headers), at(1))
        assert session.commands_received() == [Authenticate(token)]
        assert out(session) == []
        session.receive_text(sub("0", receipt="r"), at(1.5))  # waits for CONNECTED
        assert out(session) == []
        assert session.commands_received() == []
        session.answer(Authenticated(7), at(2))
        assert [f.command for f in out(session)] == ["CONNECTED", "RECEIPT"]
        assert session.commands_received() == [Subscribe((AAPL,))]
        assert session.user_id == 7
        assert session.next_deadline() is None


def test_refused_credentials_are_an_error_with_a_message_then_the_replys_close() -> None:
    session = make()
    session.receive_text(frame("CONNECT", accept_version="1.2", passcode="bad"), at(1))
    session.commands_received()
    session.answer(Refused("Invalid API key", CloseCode.INVALID_CREDENTIALS), at(2))
    [error] = out(session)
    assert error.command == "ERROR"
    assert error.headers["message"] == "Invalid API key"
    assert error.headers["content-type"] == "text/plain"
    assert error.body == b"Invalid API key"
    assert session.close_reason is CloseCode.INVALID_CREDENTIALS
    assert not session.connected


def test_a_pending_credentials_check_still_has_the_login_deadline() -> None:
    session = make(login_timeout_s=5.0)
    session.receive_text(frame("CONNECT", accept_version="1.2", passcode="k"), at(1))
    session.handle_timer(at(5))
    assert session.close_reason is CloseCode.AUTH_TIMEOUT
    session.answer(Authenticated(1), at(6))  # too late: nothing
    assert [f.command for f in out(session)] == ["ERROR"]


def test_no_credentials_when_they_are_required() -> None:
    session = make(anonymous_allowed=False)
    session.receive_text(CONNECT, at(1))
    [error] = out(session)
    assert error.command == "ERROR"
    assert session.close_reason is CloseCode.AUTHENTICATION_REQUIRED


def test_a_handshake_authenticated_session_connects_at_once() -> None:
    session = make(user_id=3, anonymous_allowed=False)
    session.receive_text(frame("CONNECT", accept_version="1.2", passcode="ignored"), at(1))
    assert [f.command for f in out(session)] == ["CONNECTED"]
    assert session.commands_received() == []


def test_subscribe_maps_the_destination_and_keeps_ids_per_topic() -> None:
    session = connected()
    session.receive_text(sub("sub-0") + sub("sub-1") + sub("sub-2", "/topic/trades.MSFT"), at(1))
    # sub-1 joins a held topic: asked again (for its current value), and fresh
    assert session.commands_received() == [
        Subscribe((AAPL,)),
        Subscribe((AAPL,)),
        Subscribe((MSFT,)),
    ]
    assert [s.id for s in session.subscriptions_for(AAPL)] == ["sub-0", "sub-1"]
    assert session.take_fresh(AAPL) == ("sub-1",)
    assert session.take_fresh(AAPL) == ()  # once
    assert set(session.topics) == {AAPL, MSFT}
    [s0, _] = session.subscriptions_for(AAPL)
    assert s0.head == b"MESSAGE\nsubscription:sub-0\n" == s0.head_for("m-9")
    assert out(session) == []  # no receipt asked, none sent
    session.receive_text(frame("UNSUBSCRIBE", id="sub-0"), at(2))
    assert session.commands_received() == []  # sub-1 still holds it
    session.receive_text(frame("UNSUBSCRIBE", id="sub-1"), at(3))
    assert session.commands_received() == [Unsubscribe((AAPL,))]
    assert set(session.topics) == {MSFT}
    assert session.close_reason is None


def test_client_ack_subscriptions_get_an_ack_header_and_acks_are_accepted() -> None:
    session = connected()
    session.receive_text(
        sub("0", ack="client") + sub("1", "/topic/trades.MSFT", ack="client-individual"), at(1)
    )
    [aapl] = session.subscriptions_for(AAPL)
    assert aapl.head_for("m-1") == b"MESSAGE\nsubscription:0\nack:m-1\n"
    session.receive_text(frame("ACK", id="m-1", receipt="a") + frame("NACK", id="m-2"), at(2))
    assert [(f.command, f.headers) for f in out(session)] == [("RECEIPT", {"receipt-id": "a"})]
    assert session.close_reason is None


@pytest.mark.parametrize(
    ("data", "words", "code"),
    [
        (sub("0") + sub("0"), "in use", CloseCode.PROTOCOL_ERROR),
        (sub("0", "/topic/trades.NOPE"), "Unknown destination", CloseCode.POLICY_VIOLATION),
        (sub("0", "/queue/x"), "Unknown destination", CloseCode.POLICY_VIOLATION),
        (frame("SUBSCRIBE", id="0"), "destination", CloseCode.PROTOCOL_ERROR),
        (frame("SUBSCRIBE", destination="/topic/trades.AAPL"), "id", CloseCode.PROTOCOL_ERROR),
        (sub("0", ack="sometimes"), "ack", CloseCode.PROTOCOL_ERROR),
        (frame("UNSUBSCRIBE", id="nope"), "No subscription", CloseCode.PROTOCOL_ERROR),
        (frame("UNSUBSCRIBE"), "id", CloseCode.PROTOCOL_ERROR),
        (frame("SEND", "hi", destination="/topic/trades.AAPL"), "SEND", CloseCode.POLICY_VIOLATION),
        (frame("BEGIN", transaction="t"), "transactions", CloseCode.PROTOCOL_ERROR),
        (frame("COMMIT", transaction="t"), "transactions", CloseCode.PROTOCOL_ERROR),
        (frame("ABORT", transaction="t"), "transactions", CloseCode.PROTOCOL_ERROR),
        (CONNECT, "Already connected", CloseCode.PROTOCOL_ERROR),
        (frame("MESSAGE"), "Unknown command", CloseCode.PROTOCOL_ERROR),
        ("SUBSCRIBE\nid:a\\tb\n\n\x00", "escape", CloseCode.PROTOCOL_ERROR),
        ("SUBSCRIBE\nno colon\n\n\x00", "name:value", CloseCode.PROTOCOL_ERROR),
        (sub("0", resume_seq="x"), "resume-seq", CloseCode.PROTOCOL_ERROR),
        (sub("0", resume_epoch="e"), "resume-seq", CloseCode.PROTOCOL_ERROR),
    ],
)
def test_each_error_is_an_error_frame_then_close(data: str, words: str, code: CloseCode) -> None:
    session = connected()
    session.receive_text(data, at(1))
    frames = out(session)
    assert frames[-1].command == "ERROR"
    assert words in frames[-1].headers["message"]
    assert session.close_reason is code
    assert session.next_deadline() is None or session.heartbeats == (0, 0)


def test_an_error_carries_the_receipt_id_of_the_frame_that_caused_it() -> None:
    session = connected()
    session.receive_text(frame("SEND", destination="/x", receipt="r-9"), at(1))
    [error] = out(session)
    assert error.headers["receipt-id"] == "r-9"


def test_frames_before_a_malformed_one_are_handled_first() -> None:
    session = connected()
    session.receive_text(sub("0", receipt="r-1") + "BAD LINE\n\n\x00", at(1))
    assert [f.command for f in out(session)] == ["RECEIPT", "ERROR"]
    assert session.commands_received() == [Subscribe((AAPL,))]


def test_limits_are_an_error_then_close_1009() -> None:
    session = connected(limits=Limits(max_frame_bytes=100, max_headers=4, max_header_line=50))
    session.receive_text(frame("ACK", id="x" * 80), at(1))
    [error] = out(session)
    assert error.command == "ERROR"
    assert "header line" in error.headers["message"]
    assert session.close_reason is CloseCode.MESSAGE_TOO_BIG
    flood = connected(limits=Limits(max_frame_bytes=100, max_headers=4, max_header_line=50))
    flood.receive_text("ACK\n" + "".join(f"h{i}:v\n" for i in range(10)) + "\n\x00", at(1))
    assert flood.close_reason is CloseCode.MESSAGE_TOO_BIG


def test_receipts_come_after_the_frame_is_handled_in_order() -> None:
    session = connected()
    session.receive_text(sub("0", receipt="1") + frame("UNSUBSCRIBE", id="0", receipt="2"), at(1))
    assert [f.headers["receipt-id"] for f in out(session)] == ["1", "2"]
    assert session.commands_received() == [Subscribe((AAPL,)), Unsubscribe((AAPL,))]


def test_disconnect_with_a_receipt_answers_then_closes_normally() -> None:
    session = connected()
    session.receive_text(frame("DISCONNECT", receipt="bye") + sub("late"), at(1))
    [receipt] = out(session)
    assert receipt == Frame("RECEIPT", {"receipt-id": "bye"})
    assert session.close_reason is CloseCode.NORMAL
    assert session.commands_received() == []  # nothing after DISCONNECT


def test_a_frame_split_over_messages_and_frames_joined_in_one() -> None:
    session = connected()
    data = sub("0", receipt="a") + "\n" + sub("1", "/topic/trades.MSFT", receipt="b")
    for i in range(0, len(data), 7):
        session.receive_bytes(data[i : i + 7].encode(), at(1))
    assert [f.headers["receipt-id"] for f in out(session)] == ["a", "b"]
    assert session.commands_received() == [Subscribe((AAPL,)), Subscribe((MSFT,))]


def test_escaped_ids_round_trip_to_the_message_head() -> None:
    session = connected()
    session.receive_text(
        "SUBSCRIBE\nid:a\\cb\\nc\ndestination:/topic/trades.AAPL\nreceipt:x\\cy\n\n\x00", at(1)
    )
    [receipt] = out(session)
    assert receipt.headers["receipt-id"] == "x:y"
    [subscription] = session.subscriptions_for(AAPL)
    assert subscription.id == "a:b\nc"
    assert subscription.head == b"MESSAGE\nsubscription:a\\cb\\nc\n"


def test_resume_headers_become_resume_points() -> None:
    session = connected()
    session.receive_text(sub("0", resume_epoch="e1", resume_seq="41"), at(1))
    session.receive_text(sub("1", "/topic/trades.MSFT", resume_seq="7"), at(1))
    session.receive_text(sub("2", resume_seq="99"), at(1))  # AAPL is held: live, no resume
    assert session.commands_received() == [
        Subscribe((AAPL,), {AAPL: ResumePoint(41, "e1")}),
        Subscribe((MSFT,), {MSFT: ResumePoint(7)}),
        Subscribe((AAPL,)),  # the current value for sub 2, no replay
    ]


def test_a_resume_gap_is_a_reset_message_per_subscription_of_the_topic() -> None:
    session = connected()
    session.receive_text(
        sub("0", resume_epoch="old", resume_seq="41") + sub("1", ack="client"), at(1)
    )
    session.answer(ResumeGap(AAPL, 41, 57, "epoch_changed", "new"), at(2))
    items = session.frames_to_send()
    assert all(item.control for item in items)
    frames = [f for item in items for f in FrameParser().feed(item.message)]
    assert [f.headers["subscription"] for f in frames] == ["0", "1"]
    first = frames[0]
    assert first.command == "MESSAGE"
    assert first.headers["destination"] == "/topic/trades.AAPL"
    assert first.headers["reset"] == "epoch_changed"
    assert (first.headers["seq"], first.headers["requested"], first.headers["epoch"]) == (
        "57",
        "41",
        "new",
    )
    assert json.loads(first.body) == {
        "type": "reset",
        "topic": "trades.AAPL",
        "seq": 57,
        "requested": 41,
        "reason": "epoch_changed",
        "epoch": "new",
    }
    assert frames[1].headers["ack"] == frames[1].headers["message-id"]
    assert frames[0].headers["message-id"] != frames[1].headers["message-id"]


def test_a_bare_seq_reset_has_no_epoch() -> None:
    session = connected()
    session.receive_text(sub("0", resume_seq="3"), at(1))
    session.answer(ResumeGap(AAPL, 3, 90, "history_gap", None), at(2))
    [reset] = out(session)
    assert "epoch" not in reset.headers
    assert "epoch" not in json.loads(reset.body)


def test_the_cap_counts_subscriptions_and_refuses_in_stomp_words() -> None:
    session = connected(cap=subscription_cap(2))
    session.receive_text(sub("0") + sub("1"), at(1))
    session.receive_text(sub("2", "/topic/trades.MSFT"), at(1))
    [error] = out(session)
    assert error.headers["message"] == "Too many subscriptions: at most 2 per connection"
    assert session.close_reason is CloseCode.POLICY_VIOLATION
    assert set(session.topics) == {AAPL}


def test_release_forgets_every_subscription_of_the_topics() -> None:
    session = connected()
    session.receive_text(sub("0") + sub("1") + sub("2", "/topic/trades.MSFT"), at(1))
    session.commands_received()
    session.release([AAPL])
    assert session.subscriptions_for(AAPL) == ()
    assert session.subscription("0") is None
    assert session.subscription("2") is not None
    assert set(session.topics) == {MSFT}
    assert session.commands_received() == []


def test_send_error_is_an_error_then_close_1008_and_keeps_a_close_code_already_set() -> None:
    session = connected()
    session.send_error("Not allowed to read trades.AAPL", at(1))
    [error] = out(session)
    assert error.headers["message"] == "Not allowed to read trades.AAPL"
    assert session.close_reason is CloseCode.POLICY_VIOLATION
    other = connected()
    other.close_reason = CloseCode.RATE_LIMITED
    other.send_error("Too many messages", at(1))
    assert other.close_reason is CloseCode.RATE_LIMITED


def test_too_many_frames_while_the_credentials_are_checked() -> None:
    session = make()
    session.receive_text(frame("CONNECT", accept_version="1.2", passcode="k"), at(1))
    session.receive_text("".join(frame("ACK", id=str(i)) for i in range(40)), at(1))
    [error] = out(session)
    assert error.command == "ERROR"
    assert session.close_reason is CloseCode.POLICY_VIOLATION


def test_a_multiline_error_message_stays_one_header() -> None:
    session = connected()
    session.send_error("line one\nline: two", at(1))
    [error] = out(session)
    assert error.headers["message"] == "line one line: two"
    assert error.body == b"line one\nline: two"


def test_a_1_0_subscription_head_is_not_escaped() -> None:
    """STOMP 1.0 has no header escaping: the MESSAGE names the subscription exactly as
    the client wrote its id (found in review: ``a:b`` came back as ``a\\cb``)."""
    s = StompSession(resolve=lambda d: Topic("trades", "AAPL"), now=at(0), max_subscriptions=10)
    s.receive_text("CONNECT\n\n\0", at(0))  # no accept-version: 1.0
    s.receive_text("SUBSCRIBE\nid:a:b\ndestination:/topic/trades.AAPL\nack:client\n\n\0", at(0))
    assert s.version == "1.0"
    sub = s.subscription("a:b")
    assert sub is not None
    assert sub.head == b"MESSAGE\nsubscription:a:b\n"
    assert sub.head_for("m:1") == b"MESSAGE\nsubscription:a:b\nack:m:1\n"


def test_stomp_1_0_frames_in_the_connect_message_are_read_without_escaping() -> None:
    # review defect: what followed CONNECT in one message was parsed before CONNECT
    # named the version, so a 1.0 id a\cb (no escaping in 1.0) came back as a:b
    session = make()
    session.receive_text(
        frame("CONNECT")
        + "SUBSCRIBE\nid:a\\cb\ndestination:/topic/trades.AAPL\nreceipt:r\\c1\n\n\x00",
        at(0),
    )
    assert session.version == "1.0"
    assert session.close_reason is None
    [subscription] = session.subscriptions_for(AAPL)
    assert subscription.id == "a\\cb"
    [connected_, receipt] = session.frames_to_send()
    assert connected_.message.startswith(b"CONNECTED\n")
    assert receipt.message == b"RECEIPT\nreceipt-id:r\\c1\n\n\x00"


def test_stomp_1_2_frames_in_the_connect_message_are_unescaped() -> None:
    session = make()
    session.receive_text(
        CONNECT + "SUBSCRIBE\nid:a\\cb\ndestination:/topic/trades.AAPL\n\n\x00", at(0)
    )
    assert session.version == "1.2"
    [subscription] = session.subscriptions_for(AAPL)
    assert subscription.id == "a:b"


def test_frames_after_connect_wait_for_the_credentials_with_the_right_version() -> None:
    session = make()
    session.receive_text(
        frame("CONNECT", passcode="k")
        + "SUBSCRIBE\nid:a\\cb\ndestination:/topic/trades.AAPL\n\n\x00",
        at(0),
    )
    assert session.commands_received() == [Authenticate("k")]
    session.answer(Authenticated(7), at(1))
    [subscription] = session.subscriptions_for(AAPL)
    assert subscription.id == "a\\cb"  # 1.0: as sent


def test_an_unsubscribe_is_told_once_to_the_connection() -> None:
    session = connected()
    assert not session.forgotten()
    session.receive_text(sub("0") + sub("1"), at(1))
    assert not session.forgotten()
    session.receive_text(frame("UNSUBSCRIBE", id="0"), at(2))
    assert session.forgotten()
    assert not session.forgotten()


def test_a_fresh_id_that_leaves_is_no_longer_fresh() -> None:
    session = connected()
    session.receive_text(sub("0") + sub("1") + frame("UNSUBSCRIBE", id="1"), at(1))
    assert session.take_fresh(AAPL) == ()
