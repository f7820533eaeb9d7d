"""SockJS sessions and their registry, at the pure level (written from the cases of the
protocol's own test suite, sockjs-protocol 0.3.3): open, queue, attach, a second
receiving request, heartbeats, timeouts, close and its replay, the streaming limit."""

from __future__ import annotations

import pytest

from tickcast.clock import Now
from tickcast.protocols.sockjs.framing import (
    EVENTSOURCE,
    WEBSOCKET,
    XHR,
    XHR_SEND,
    XHR_STREAMING,
    PayloadError,
    encode_message,
)
from tickcast.protocols.sockjs.session import SockJSOptions, SockJSSession, SockJSSessions

PRELUDE = b"h" * 2048 + b"\n"


def at(mono: float) -> Now:
    # A wall clock far from the monotonic one: deadlines must follow mono only.
    return Now(mono, 1_700_000_000.0 - mono)


class Recorder:
    """An inner handler that keeps what it was given."""

    def __init__(self) -> None:
        self.got: list[str] = []

    def receive_text(self, data: str, now: Now) -> None:
        self.got.append(data)


def make(options: SockJSOptions | None = None) -> tuple[SockJSSession, Recorder]:
    handler = Recorder()
    return SockJSSession("s1", handler, at(0.0), options), handler


def test_the_first_poll_gets_the_open_frame_alone_then_what_was_sent() -> None:
    session, _handler = make()
    session.send("early", at(0.1))
    first = session.attach(XHR, at(0.2))
    assert (first.take(), first.done) == (b"o\n", True)
    assert session.receiver is None
    second = session.attach(XHR, at(0.3))
    assert (second.take(), second.done) == (b'a["early"]\n', True)


def test_a_poll_waits_when_nothing_is_queued_and_ends_with_one_frame() -> None:
    session, _ = make()
    session.attach(XHR, at(0.0)).take()
    poll = session.attach(XHR, at(1.0))
    assert (poll.take(), poll.done) == (b"", False)
    assert session.receiver is poll
    session.send_encoded([encode_message("x"), encode_message("y")], at(2.0))
    assert (poll.take(), poll.done) == (b'a["x","y"]\n', True)
    assert session.receiver is None


def test_posted_messages_reach_the_handler_in_order() -> None:
    session, handler = make()
    assert session.receive('["a","b"]', at(0.1)) == 2
    assert session.receive("[]", at(0.2)) == 0
    assert handler.got == ["a", "b"]


def test_a_broken_post_reaches_no_one() -> None:
    session, handler = make()
    with pytest.raises(PayloadError):
        session.receive('["a', at(0.1))
    with pytest.raises(PayloadError):
        session.receive("", at(0.1))
    assert handler.got == []


def test_a_second_receiving_request_gets_2010_and_leaves_the_first_alone() -> None:
    session, _ = make()
    first = session.attach(XHR_STREAMING, at(0.0))
    assert first.take() == PRELUDE + b"o\n"
    second = session.attach(XHR_STREAMING, at(0.5))
    assert second.take() == PRELUDE + b'c[2010,"Another connection still open"]\n'
    assert second.done
    assert session.receiver is first
    assert not first.done
    session.send("still", at(1.0))
    assert first.take() == b'a["still"]\n'
    # The refused request going away touches nothing.
    assert not session.abort(second, at(1.1))
    assert session.is_open
    assert session.receiver is first


def test_a_second_poll_gets_2010_too() -> None:
    session, _ = make()
    session.attach(XHR, at(0.0)).take()
    waiting = session.attach(XHR, at(0.1))
    refused = session.attach(XHR, at(0.2))
    assert (refused.take(), refused.done) == (b'c[2010,"Another connection still open"]\n', True)
    assert session.receiver is waiting


def test_an_attached_request_gets_a_heartbeat_on_the_monotonic_clock() -> None:
    session, _ = make(SockJSOptions(heartbeat_s=25.0))
    stream = session.attach(XHR_STREAMING, at(100.0))
    stream.take()
    assert session.next_deadline() == 125.0
    session.handle_timer(Now(124.9, 1e12))  # a wall clock stepped far ahead: nothing
    assert stream.take() == b""
    session.handle_timer(at(125.0))
    assert stream.take() == b"h\n"
    assert session.next_deadline() == 150.0
    session.send("m", at(140.0))  # a frame postpones the next beat
    assert stream.take() == b'a["m"]\n'
    assert session.next_deadline() == 165.0


def test_a_waiting_poll_ends_with_a_heartbeat() -> None:
    session, _ = make(SockJSOptions(heartbeat_s=10.0))
    session.attach(XHR, at(0.0)).take()
    poll = session.attach(XHR, at(1.0))
    session.handle_timer(at(11.0))
    assert (poll.take(), poll.done) == (b"h\n", True)
    assert session.receiver is None


def test_the_session_expires_after_the_disconnect_delay_without_a_request() -> None:
    session, _ = make(SockJSOptions(disconnect_delay_s=5.0))
    assert session.next_deadline() == 5.0  # from its creation, before any request
    poll = session.attach(XHR, at(1.0))
    assert poll.done
    assert session.next_deadline() == 6.0
    session.handle_timer(at(5.9))
    assert not session.expired
    session.handle_timer(at(6.0))
    assert session.expired
    assert session.next_deadline() is None
    assert not session.send("late", at(6.1))
    with pytest.raises(ValueError, match="expired"):
        session.attach(XHR, at(6.2))


def test_an_attached_request_keeps_the_session_alive() -> None:
    session, _ = make(SockJSOptions(heartbeat_s=25.0, disconnect_delay_s=5.0))
    stream = session.attach(EVENTSOURCE, at(0.0))
    assert stream.take() == b"\r\ndata: o\r\n\r\n"
    session.handle_timer(at(20.0))
    assert not session.expired


def test_close_sends_what_is_queued_first_then_the_close_frame_to_every_later_poll() -> None:
    session, handler = make()
    assert session.attach(XHR, at(0.0)).take() == b"o\n"
    session.send("ERROR", at(0.1))
    assert session.close(at(0.2))
    assert not session.is_open
    assert not session.send("after", at(0.3))
    assert session.attach(XHR, at(0.4)).take() == b'a["ERROR"]\n'
    for t in (0.5, 0.6):
        poll = session.attach(XHR, at(t))
        assert (poll.take(), poll.done) == (b'c[3000,"Go away!"]\n', True)
    # Messages posted to a closed session are dropped.
    session.receive('["x"]', at(0.7))
    assert handler.got == []
    assert not session.close(at(0.8), 3001, "again")


def test_a_session_closed_before_its_first_poll_opens_first() -> None:
    session, _ = make()
    session.close(at(0.0))
    assert session.attach(XHR, at(0.1)).take() == b"o\n"
    assert session.attach(XHR, at(0.2)).take() == b'c[3000,"Go away!"]\n'


def test_closing_ends_an_attached_stream_and_a_new_one_gets_the_close_frame() -> None:
    session, _ = make()
    first = session.attach(XHR_STREAMING, at(0.0))
    assert first.take() == PRELUDE + b"o\n"
    session.close(at(0.1), 3000, "Go away!")
    assert (first.take(), first.done) == (b'c[3000,"Go away!"]\n', True)
    second = session.attach(XHR_STREAMING, at(0.2))
    assert (second.take(), second.done) == (PRELUDE + b'c[3000,"Go away!"]\n', True)


def test_a_closed_session_still_expires() -> None:
    session, _ = make(SockJSOptions(disconnect_delay_s=5.0))
    session.close(at(0.0), 1000, "bye")
    assert session.attach(XHR, at(1.0)).take() == b"o\n"
    assert session.attach(XHR, at(2.0)).take() == b'c[1000,"bye"]\n'
    session.handle_timer(at(7.0))
    assert session.expired


def test_a_stream_ends_after_the_response_limit_and_the_next_one_goes_on() -> None:
    # The suite's case: limit 4096, 31 messages of 128 x's, each a 133-byte frame.
    session, _ = make(SockJSOptions(response_limit=4096))
    stream = session.attach(XHR_STREAMING, at(0.0))
    assert stream.take() == PRELUDE + b"o\n"
    message = "x" * 128
    for i in range(31):
        assert not stream.done, i
        session.send(message, at(1.0 + i))
        assert stream.take() == b'a["' + message.encode() + b'"]\n'
    assert stream.done
    assert session.receiver is None
    session.send("next", at(40.0))
    following = session.attach(XHR_STREAMING, at(41.0))
    assert following.take() == PRELUDE + b'a["next"]\n'
    assert not following.done


def test_the_websocket_has_no_response_limit() -> None:
    session = SockJSSession(None, Recorder(), at(0.0), SockJSOptions(response_limit=10))
    ws = session.attach(WEBSOCKET, at(0.0))
    assert ws.take() == b"o"
    for i in range(5):
        session.send("x" * 20, at(1.0 + i))
    assert not ws.done
    assert ws.take() == b'a["xxxxxxxxxxxxxxxxxxxx"]' * 5


def test_websocket_messages_reach_the_handler() -> None:
    session, handler = make()
    session.attach(WEBSOCKET, at(0.0)).take()
    session.receive_websocket("", at(0.1))
    session.receive_websocket('["a"]', at(0.2))
    session.receive_websocket('"b"', at(0.3))
    with pytest.raises(PayloadError):
        session.receive_websocket('["a', at(0.4))
    assert handler.got == ["a", "b"]


def test_an_aborted_request_ends_the_session() -> None:
    session, _ = make()
    session.attach(XHR, at(0.0)).take()
    poll = session.attach(XHR, at(0.1))
    assert session.abort(poll, at(0.2))
    assert session.expired
    assert poll.done


def test_xhr_send_is_not_a_receiving_transport() -> None:
    session, _ = make()
    with pytest.raises(ValueError, match="not a receiving"):
        session.attach(XHR_SEND, at(0.0))


def test_queued_bytes_count_what_waits_for_a_request() -> None:
    session, _ = make()
    session.send("abc", at(0.0))
    assert session.queued_bytes == len(b'"abc"')
    session.attach(XHR, at(0.1)).take()  # the open frame only
    assert session.queued_bytes == len(b'"abc"')
    session.attach(XHR, at(0.2)).take()
    assert session.queued_bytes == 0


def test_the_registry_finds_by_id_and_forgets_the_expired() -> None:
    sessions = SockJSSessions(SockJSOptions(disconnect_delay_s=5.0))
    a = sessions.open("a", Recorder(), at(0.0))
    b = sessions.open("b", Recorder(), at(2.0))
    assert sessions.get("a") is a
    assert sessions.get("zzz") is None
    with pytest.raises(ValueError, match="is live"):
        sessions.open("a", Recorder(), at(0.5))
    stream = b.attach(XHR_STREAMING, at(3.0))
    assert sessions.next_deadline() == 5.0
    assert sessions.expire(at(4.9)) == []
    assert sessions.expire(at(5.0)) == [a]
    assert sessions.get("a") is None
    assert len(sessions) == 1
    # b has a request attached: its heartbeat is its driver's, the sweep leaves it be.
    assert sessions.expire(at(100.0)) == []
    assert stream.take() == PRELUDE + b"o\n"
    assert sessions.next_deadline() is None
    b.abort(stream, at(101.0))
    # Over, with no other session waiting to expire: due at once, so a sweep comes.
    assert sessions.next_deadline() == float("-inf")
    assert sessions.expire(at(101.0)) == [b]
    assert sessions.next_deadline() is None
    # The id is free again: a new session opens.
    again = sessions.open("a", Recorder(), at(102.0))
    assert again.attach(XHR, at(102.1)).take() == b"o\n"


def test_frames_not_yet_taken_stay_apart_for_a_websocket() -> None:
    """A websocket writes a message per frame: frames that pile up before its writer
    runs (an open, messages, a heartbeat, the close) are taken one element each."""
    session, _ = make(SockJSOptions(heartbeat_s=1.0))
    ws = session.attach(WEBSOCKET, at(0.0))
    session.send("a", at(0.1))
    session.handle_timer(at(1.2))
    session.send("b", at(1.3))
    session.close(at(1.4))
    assert ws.take_frames() == [b"o", b'a["a"]', b"h", b'a["b"]', b'c[3000,"Go away!"]']
    assert ws.take_frames() == []
    assert ws.done


def test_take_frames_keeps_the_prelude_first_for_a_stream() -> None:
    session, _ = make()
    stream = session.attach(XHR_STREAMING, at(0.0))
    session.send("x", at(0.1))
    assert stream.take_frames() == [PRELUDE, b"o\n", b'a["x"]\n']
