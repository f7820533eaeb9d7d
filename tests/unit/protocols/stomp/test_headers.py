"""stomp.headers, frames.error_frame and codec.reset_payload on their own: what a client's
CONNECT, SUBSCRIBE and UNSUBSCRIBE say, and the session's ERROR and reset MESSAGE (the
session's tests drive the same through frames)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tickcast.closecodes import CloseCode
from tickcast.model.envelope import ResumePoint
from tickcast.model.topic import Topic
from tickcast.protocols.base import ResumeGap
from tickcast.protocols.stomp import codec, session
from tickcast.protocols.stomp.frames import FrameParser, error_frame, message_payload
from tickcast.protocols.stomp.headers import (
    WHOLE,
    Fatal,
    Subscription,
    check_overlap,
    connect_heartbeats,
    connect_version,
    credentials,
    read_subscribe,
    resume_point,
    unsubscribe_id,
)


def fatal(code: CloseCode, call: Callable[[], object]) -> Fatal:
    with pytest.raises(Fatal) as caught:
        call()
    assert caught.value.code == code
    return caught.value


def test_the_session_still_exports_what_its_users_import() -> None:
    for name in session.__all__:
        assert getattr(session, name) is not None
    assert session.Subscription is Subscription
    assert session.WHOLE == WHOLE


def test_connect_version_and_heartbeats() -> None:
    assert connect_version({}) == "1.0"
    assert connect_version({"accept-version": "1.0, 1.2,9"}) == "1.2"
    refused = fatal(CloseCode.PROTOCOL_ERROR, lambda: connect_version({"accept-version": "2"}))
    assert refused.version
    assert connect_heartbeats({"heart-beat": "0,5000"}, (10_000, 10_000)) == (10_000, 0)
    fatal(CloseCode.PROTOCOL_ERROR, lambda: connect_heartbeats({"heart-beat": "x"}, (1, 1)))


def test_credentials_in_their_order_and_a_token_too_long() -> None:
    assert credentials({}) is None
    assert credentials({"Authorization": "Bearer  t1 ", "passcode": "p"}) == "t1"
    assert credentials({"authorization": "Basic x"}) == "Basic x"
    assert credentials({"passcode": "p", "login": "l"}) == "p"
    assert credentials({"login": "l"}) == "l"
    assert credentials({"passcode": "x" * 4096}) == "x" * 4096
    fatal(CloseCode.INVALID_CREDENTIALS, lambda: credentials({"login": "x" * 4097}))


def test_subscribe_headers_checked_in_order() -> None:
    asked = read_subscribe({"destination": "/topic/q.A", "id": "1"}, "1.2", ())
    assert asked == ("/topic/q.A", "1", "auto", None)
    assert read_subscribe({"destination": "/d"}, "1.0", ()).id == "/d"
    fatal(CloseCode.PROTOCOL_ERROR, lambda: read_subscribe({"id": "1"}, "1.2", ()))
    fatal(CloseCode.PROTOCOL_ERROR, lambda: read_subscribe({"destination": "/d"}, "1.2", ()))
    in_use = fatal(
        CloseCode.PROTOCOL_ERROR,
        lambda: read_subscribe({"destination": "/d", "id": "1", "ack": "x"}, "1.2", {"1"}),
    )
    assert "in use" in str(in_use)  # before the bad ack
    fatal(
        CloseCode.PROTOCOL_ERROR,
        lambda: read_subscribe({"destination": "/d", "id": "1", "ack": "x"}, "1.2", ()),
    )
    rated = {"destination": "/d", "id": "1", "max-rate": "2.5"}
    assert read_subscribe(rated, "1.2", ()).max_rate == 2.5
    rated["max-rate"] = "fast"
    fatal(CloseCode.PROTOCOL_ERROR, lambda: read_subscribe(rated, "1.2", ()))


def test_resume_point() -> None:
    assert resume_point({}) is None
    assert resume_point({"resume-seq": "7"}) == ResumePoint(7, None)
    assert resume_point({"resume-seq": "7", "resume-epoch": "e"}) == ResumePoint(7, "e")
    for bad in (
        {"resume-epoch": "e"},
        {"resume-seq": "-1"},
        {"resume-seq": "1", "resume-epoch": ""},
    ):
        fatal(CloseCode.PROTOCOL_ERROR, lambda bad=bad: resume_point(bad))


def test_a_channel_is_read_whole_or_by_key() -> None:
    keyed = Subscription("1", Topic("signals", "AAPL"), "/topic/signals.AAPL", "auto", b"")
    whole = Subscription("2", Topic("signals", WHOLE), "/topic/signals", "auto", b"")
    check_overlap(Topic("signals", "MSFT"), "/topic/signals.MSFT", None, [keyed], {})
    fatal(
        CloseCode.POLICY_VIOLATION,
        lambda: check_overlap(Topic("signals", WHOLE), "/topic/signals", None, [keyed], {}),
    )
    fatal(
        CloseCode.POLICY_VIOLATION,
        lambda: check_overlap(
            Topic("signals", "A"), "/topic/signals.A", None, [whole], {"signals": (whole,)}
        ),
    )
    fatal(
        CloseCode.PROTOCOL_ERROR,
        lambda: check_overlap(Topic("signals", WHOLE), "/s", ResumePoint(1), [], {}),
    )


def test_unsubscribe_by_destination_in_stomp_1_0_only() -> None:
    held = {"7": Subscription("7", Topic("quotes", "A"), "/topic/quotes.A", "auto", b"")}
    assert unsubscribe_id({"id": "9"}, "1.2", held) == "9"
    assert unsubscribe_id({"destination": "/topic/quotes.A"}, "1.0", held) == "7"
    assert unsubscribe_id({"destination": "/other"}, "1.0", held) == "/other"
    fatal(CloseCode.PROTOCOL_ERROR, lambda: unsubscribe_id({"destination": "/d"}, "1.2", held))


def test_error_frame() -> None:
    frame = error_frame("a\\b\n  c" + "x" * 300, escaped=False, slashes=True, receipt="r")
    parsed = FrameParser().feed(frame)[0]
    assert parsed.command == "ERROR"
    assert parsed.headers["message"] == ("a/b c" + "x" * 300)[:200]
    assert parsed.headers["receipt-id"] == "r"
    assert parsed.body == ("a\\b\n  c" + "x" * 300).encode()
    assert b"version:" not in frame
    versioned = error_frame("no", escaped=True, versions="1.0,1.1,1.2")
    assert b"\nversion:1.0,1.1,1.2\n" in versioned
    assert b"a\\\\b" in error_frame("a\\b", escaped=True)  # escaped, not made a slash


def test_reset_payload() -> None:
    gap = ResumeGap(Topic("trades", "AAPL"), 3, 9, "epoch_changed", "e2")
    payload = codec.reset_payload(gap, "/topic/trades.AAPL", "reset-1")
    body = json.dumps(
        {
            "type": "reset",
            "topic": "trades.AAPL",
            "seq": 9,
            "requested": 3,
            "reason": "epoch_changed",
            "epoch": "e2",
        },
        separators=(",", ":"),
    ).encode()
    extra = [("reset", "epoch_changed"), ("requested", "3"), ("seq", "9"), ("epoch", "e2")]
    assert payload == message_payload("/topic/trades.AAPL", "reset-1", body, extra=extra)
    bare = codec.reset_payload(gap._replace(epoch=None), "/d", "reset-2")
    assert b"\nepoch:" not in bare
    assert b'"epoch"' not in bare
