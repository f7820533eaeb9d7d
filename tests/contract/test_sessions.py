"""The session conformance suite: what every protocol session promises its driver
(``protocols/base.py``'s ``Session``), run against each of them.

A case runs against every session that has the capability it needs (``Kit``'s flags):
the market feed (``native``), the realtime envelope (``envelope``), STOMP (``stomp``,
connected by its CONNECT frame), Socket.IO's events (``socketio``) and the test-only
echo. A new protocol joins by adding its ``Kit`` to ``KITS``; what only one protocol
says (its words, its options) stays in ``tests/unit/protocols/``.

Sessions are pure: every case is plain calls with ``now`` passed in; nothing sleeps.
``at(s)`` is the time ``s`` seconds after the connect, on both clocks (``Now``):
deadlines are monotonic, so a case that steps only the wall clock shows it changes none.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tickcast.auth.limits import RateLimit, SubscriptionCap
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.fronts.echo import EchoSession
from tickcast.fronts.guard import RateLimited
from tickcast.model.envelope import ResumePoint
from tickcast.model.topic import Topic
from tickcast.protocols import base
from tickcast.protocols.base import Refused, Session, Subscribe, Unsubscribe
from tickcast.protocols.envelope import session as envelope
from tickcast.protocols.native import session as native
from tickcast.protocols.socketio import session as socketio
from tickcast.protocols.stomp import codec as stomp_codec
from tickcast.protocols.stomp import session as stomp
from tickcast.protocols.wire import Encoded

T0 = 1_700_000_000.0  # wall: stamps
M0 = 5_000.0  # monotonic: deadlines


def at(offset: float) -> Now:
    """``offset`` seconds after the connect, on both clocks."""
    return Now(M0 + offset, T0 + offset)


KNOWN = frozenset({"AAPL", "MSFT", "TSLA"})


#: A ping in the JSON protocols' words (each reads the field it knows).
PING = '{"action":"ping","type":"ping"}'


@dataclass(frozen=True)
class Kit:
    """How the suite drives one protocol.

    Attributes:
        make: a session holding at most ``cap`` topics, idle-closed after ``idle_s``
            (0: never), connected at ``at(0)``.
        subscribe: the client messages that subscribe to one symbol each (None: the
            protocol has no subscriptions).
        unsubscribe: the messages that drop each symbol.
        cap_message: how the protocol words the subscription cap.
        errors: a malformed message is answered with one error and the session lives.
        binary_echoed: a binary message comes back as itself (else it gets an error).
        refusable: an ``answer(Refused)`` closes the session.
        idle: the session closes an idle client (3008).
        bare_resume: a subscription resuming from a bare seq, for ``symbol`` after
            ``seq`` (None: the protocol has no resume).
        ping: a client message that gets one reply and changes nothing.
        subscribe_again: another subscription to a symbol held already (None: the same
            as ``subscribe``; STOMP needs a fresh id).
        unsubscribe_unheld: dropping a symbol never subscribed is harmless (STOMP: an
            unknown subscription id is an ERROR).
        errors_close: every error reply ends the session (STOMP's ERROR).
        malformed: a message the protocol cannot parse (for ``errors_close`` ones).
        binary_frames: a binary message carries the protocol's frames like a text one.
    """

    make: Callable[[int, float], Session]
    subscribe: Callable[[str], list[str]] | None
    unsubscribe: Callable[[str], list[str]] | None
    cap_message: str | None
    errors: bool
    binary_echoed: bool
    refusable: bool
    idle: bool
    bare_resume: Callable[[str, int], str] | None
    ping: str = PING
    subscribe_again: Callable[[str], list[str]] | None = None
    unsubscribe_unheld: bool = True
    errors_close: bool = False
    malformed: str | None = None
    binary_frames: bool = False


def _native(cap: int, idle_s: float) -> Session:
    return native.MarketFeedSession(
        is_known=KNOWN.__contains__,
        cap=native.subscription_cap(cap),
        now=at(0),
        idle_timeout_s=idle_s,
    )


def _envelope(cap: int, idle_s: float) -> Session:
    return envelope.RealtimeSession(
        connection_id="c-1",
        user_id=7,
        anonymous_allowed=True,
        is_known=KNOWN.__contains__,
        owner_of=lambda _portfolio: 7,
        cap=envelope.subscription_cap(cap),
        now=at(0),
        idle_timeout_s=idle_s,
    )


def _echo(cap: int, idle_s: float) -> Session:
    return EchoSession()


def _stomp(cap: int, idle_s: float) -> Session:
    """Connected: the client sends heart-beats every ``idle_s / 2`` and we want them as
    often, so a client silent ``idle_s`` (twice the interval) is dead: closed 3008."""
    interval = int(idle_s * 500)

    def resolve(destination: str) -> Topic | None:
        topic = stomp_codec.topic_of(destination)
        return topic if topic is not None and topic.key in KNOWN else None

    session = stomp.StompSession(
        resolve=resolve,
        now=at(0),
        session_id="c-1",
        cap=stomp.subscription_cap(cap),
        heart_beat=(0, interval),
    )
    session.receive_text(
        f"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:{interval},0\n\n\x00", at(0)
    )
    return session


def _socketio(cap: int, idle_s: float) -> Session:
    """Opened: its ``welcome`` and default channels taken. Engine.IO keeps the
    heartbeat, so it has no idle timeout; a ``subscribe`` replaces the client's whole
    selection, so the per-symbol subscription cases do not apply (its own tests:
    tests/unit/protocols/socketio)."""
    session = socketio.SocketIOSession(
        welcome="hello", is_known=KNOWN.__contains__, cap=SubscriptionCap(cap)
    )
    session.frames_to_send()
    session.commands_received()
    return session


def _stomp_frame(command: str, **headers: str) -> str:
    lines = [command] + [f"{name.replace('_', '-')}:{value}" for name, value in headers.items()]
    return "\n".join(lines) + "\n\n\x00"


def _stomp_subscribe(id_: str, symbol: str, **more: str) -> str:
    return _stomp_frame("SUBSCRIBE", id=id_, destination=f"/topic/trades.{symbol}", **more)


def _native_message(action: str, symbol: str, **more: Any) -> str:
    return json.dumps({"action": action, "symbols": [symbol], "channels": ["trades"], **more})


def _envelope_message(type_: str, symbol: str) -> str:
    return json.dumps({"type": type_, "data": {"symbol": symbol}})


KITS: dict[str, Kit] = {
    "native": Kit(
        make=_native,
        subscribe=lambda s: [_native_message("subscribe", s)],
        unsubscribe=lambda s: [_native_message("unsubscribe", s)],
        cap_message=native.CAP_MESSAGE,
        errors=True,
        binary_echoed=False,
        refusable=True,
        idle=True,
        bare_resume=lambda s, seq: _native_message("subscribe", s, resume={f"trades.{s}": seq}),
    ),
    "envelope": Kit(
        make=_envelope,
        subscribe=lambda s: [_envelope_message("subscribe_asset", s)],
        unsubscribe=lambda s: [_envelope_message("unsubscribe_asset", s)],
        cap_message=envelope.CAP_MESSAGE,
        errors=True,
        binary_echoed=False,
        refusable=True,
        idle=True,
        bare_resume=None,
    ),
    "stomp": Kit(
        make=_stomp,
        subscribe=lambda s: [_stomp_subscribe(f"sub-{s}", s)],
        unsubscribe=lambda s: [_stomp_frame("UNSUBSCRIBE", id=f"sub-{s}")],
        cap_message=stomp.CAP_MESSAGE,
        errors=False,
        binary_echoed=False,
        refusable=True,
        idle=True,
        bare_resume=lambda s, seq: _stomp_subscribe(f"sub-{s}", s, resume_seq=str(seq)),
        ping=_stomp_frame("ACK", id="m-1", receipt="ping"),
        subscribe_again=lambda s: [_stomp_subscribe(f"sub-{s}-again", s)],
        unsubscribe_unheld=False,
        errors_close=True,
        malformed="NOT A FRAME\n\n\x00",
        binary_frames=True,
    ),
    # a subscribe replaces the whole selection, so the cases that add one symbol at a
    # time (and the malformed-text case, which ends with one) are its own unit tests'
    "socketio": Kit(
        make=_socketio,
        subscribe=None,
        unsubscribe=None,
        cap_message=None,
        errors=False,
        binary_echoed=False,
        refusable=False,
        idle=False,
        bare_resume=None,
        ping='["unsubscribe"]',
    ),
    "echo": Kit(
        make=_echo,
        subscribe=None,
        unsubscribe=None,
        cap_message=None,
        errors=False,
        binary_echoed=True,
        refusable=False,
        idle=False,
        bare_resume=None,
    ),
}


@pytest.fixture(params=sorted(KITS))
def kit(request: pytest.FixtureRequest) -> Kit:
    return KITS[request.param]


def need(condition: object, what: str) -> None:
    if not condition:
        pytest.skip(f"the protocol has no {what}")


def connected(kit: Kit, cap: int = 10, idle_s: float = 0.0) -> Session:
    """A session whose greeting (if any) has been taken."""
    session = kit.make(cap, idle_s)
    session.frames_to_send()
    session.commands_received()
    return session


AT_1 = at(1)


def feed(session: Session, messages: list[str], now: Now = AT_1) -> None:
    for message in messages:
        session.receive_text(message, now)


def texts(frames: list[Encoded]) -> list[str]:
    return [frame.message.decode() for frame in frames]


def test_every_session_is_a_session() -> None:
    sessions: list[Session] = [kit.make(10, 0.0) for kit in KITS.values()]
    for session in sessions:
        for name in ("receive_text", "answer", "send_error", "release", "commands_received"):
            assert callable(getattr(session, name))


def test_frames_and_commands_drain(kit: Kit) -> None:
    session = connected(kit)
    session.receive_text(kit.ping, at(1))
    if kit.subscribe is not None:
        feed(session, kit.subscribe("AAPL"))
    assert session.frames_to_send()
    assert session.frames_to_send() == []
    if kit.subscribe is not None:
        assert session.commands_received()
    assert session.commands_received() == []


def test_malformed_text_gets_one_error_and_the_session_lives(kit: Kit) -> None:
    need(kit.errors, "error replies")
    session = connected(kit)
    for bad in ("not json", "[1, 2]", "{}"):
        session.receive_text(bad, at(1))
        frames = session.frames_to_send()
        assert len(frames) == 1, bad
        assert "error" in frames[0].message.decode()
        assert session.commands_received() == []
        assert session.close_reason is None
    assert kit.subscribe is not None
    feed(session, kit.subscribe("AAPL"))
    assert session.commands_received()


def test_a_malformed_message_is_an_error_and_the_end_where_the_protocol_says(kit: Kit) -> None:
    need(kit.errors_close, "fatal errors")
    assert kit.malformed is not None
    session = connected(kit)
    session.receive_text(kit.malformed, at(1))
    [frame] = session.frames_to_send()
    assert frame.control
    assert b"ERROR" in frame.message
    assert session.close_reason is not None
    assert session.commands_received() == []


def test_binary_carries_frames_where_the_protocol_says(kit: Kit) -> None:
    need(kit.binary_frames, "frames in binary messages")
    session = connected(kit)
    session.receive_bytes(kit.ping.encode(), at(1))
    as_bytes = session.frames_to_send()
    session.receive_text(kit.ping, at(1))
    assert as_bytes == session.frames_to_send()
    assert as_bytes
    assert session.close_reason is None


def test_binary_is_answered_per_protocol(kit: Kit) -> None:
    need(not kit.binary_frames, "binary replies of its own")
    session = connected(kit)
    session.receive_bytes(b"\x00\x01", at(1))
    [frame] = session.frames_to_send()
    if kit.binary_echoed:
        assert frame.binary
        assert frame.message == b"\x00\x01"
    else:
        assert not frame.binary
        assert "error" in frame.message.decode()
    assert session.close_reason is None


def test_replies_are_control_items(kit: Kit) -> None:
    session = kit.make(10, 0.0)
    session.receive_text(kit.ping, at(1))
    session.receive_text("not json", at(1))
    session.receive_bytes(b"x", at(1))
    if kit.subscribe is not None:
        feed(session, kit.subscribe("AAPL"))
    frames = session.frames_to_send()
    assert frames
    assert all(frame.control for frame in frames)


def test_subscribe_yields_typed_topics(kit: Kit) -> None:
    need(kit.subscribe, "subscriptions")
    assert kit.subscribe is not None
    session = connected(kit)
    again = kit.subscribe_again or kit.subscribe
    feed(session, kit.subscribe("AAPL") + kit.subscribe("MSFT") + again("AAPL"))
    assert session.close_reason is None
    commands = session.commands_received()
    assert all(isinstance(command, Subscribe) for command in commands)
    added = [topic for command in commands for topic in command.topics]  # type: ignore[union-attr]
    assert all(isinstance(topic, Topic) for topic in added)
    symbols = [topic.symbol for topic in added]
    # a held topic is never added twice; a protocol of per-subscription ids asks again
    # for a held topic that a new id joins (its current value is owed to that id)
    assert symbols == (["AAPL", "MSFT", "AAPL"] if kit.subscribe_again else ["AAPL", "MSFT"])
    assert all(not command.resume for command in commands[2:])  # type: ignore[union-attr]
    assert set(session.topics) == set(added)


def test_over_the_cap_adds_nothing_and_errors_once(kit: Kit) -> None:
    need(kit.subscribe, "subscriptions")
    assert kit.subscribe is not None
    assert kit.cap_message is not None
    session = connected(kit, cap=1)
    feed(session, kit.subscribe("AAPL"))
    session.frames_to_send()
    held = set(session.topics)
    assert session.commands_received()
    feed(session, kit.subscribe("MSFT"))
    [frame] = session.frames_to_send()
    assert SubscriptionCap(1, kit.cap_message).message in frame.message.decode()
    assert session.commands_received() == []
    assert set(session.topics) == held
    assert (session.close_reason is not None) is kit.errors_close


def test_unsubscribe_yields_only_held_topics(kit: Kit) -> None:
    need(kit.subscribe, "subscriptions")
    assert kit.subscribe is not None
    assert kit.unsubscribe is not None
    session = connected(kit)
    feed(session, kit.subscribe("AAPL"))
    [subscribed] = session.commands_received()
    assert isinstance(subscribed, Subscribe)
    unheld = kit.unsubscribe("MSFT") if kit.unsubscribe_unheld else []
    feed(session, unheld + kit.unsubscribe("AAPL"))
    dropped = [
        topic
        for command in session.commands_received()
        if isinstance(command, Unsubscribe)
        for topic in command.topics
    ]
    assert dropped == list(subscribed.topics)
    assert not session.topics


def test_release_forgets_the_topics(kit: Kit) -> None:
    need(kit.subscribe, "subscriptions")
    assert kit.subscribe is not None
    session = connected(kit)
    feed(session, kit.subscribe("AAPL") + kit.subscribe("MSFT"))
    session.commands_received()
    session.release(tuple(session.topics))
    assert not session.topics
    assert session.commands_received() == []


def test_idle_deadline_closes_3008_at_the_deadline(kit: Kit) -> None:
    need(kit.idle, "idle timeout")
    session = connected(kit, idle_s=30.0)
    session.receive_text(kit.ping, at(5))
    assert session.next_deadline() == M0 + 35
    session.handle_timer(at(34.999))
    assert session.close_reason is None
    session.handle_timer(at(35))
    assert session.close_reason is CloseCode.IDLE_TIMEOUT


def test_a_wall_clock_step_neither_fires_nor_delays_the_idle_deadline(kit: Kit) -> None:
    need(kit.idle, "idle timeout")
    session = connected(kit, idle_s=30.0)
    # the wall clock jumps an hour ahead (NTP, a VM resumed) while 5 s pass
    session.receive_text(kit.ping, Now(M0 + 5, T0 + 3600))
    assert session.next_deadline() == M0 + 35
    session.handle_timer(Now(M0 + 34.999, T0 + 7200))  # far ahead on the wall: not yet
    assert session.close_reason is None
    session.handle_timer(Now(M0 + 35, T0 - 86_400))  # a day back on the wall: due all the same
    assert session.close_reason is CloseCode.IDLE_TIMEOUT


def test_refused_answer_sets_close_reason(kit: Kit) -> None:
    session = connected(kit)
    session.answer(Refused("Invalid token", CloseCode.INVALID_CREDENTIALS), at(1))
    frames = session.frames_to_send()
    if not kit.refusable:
        assert session.close_reason is None
        return
    assert session.close_reason is CloseCode.INVALID_CREDENTIALS
    [frame] = frames
    assert frame.control
    assert "Invalid token" in frame.message.decode()


def test_bare_int_resume_is_current_epoch(kit: Kit) -> None:
    need(kit.bare_resume, "resume")
    assert kit.bare_resume is not None
    session = connected(kit)
    session.receive_text(kit.bare_resume("AAPL", 41), at(1))
    [command] = session.commands_received()
    assert isinstance(command, Subscribe)
    [topic] = command.topics
    assert command.resume == {topic: ResumePoint(41)}
    assert command.resume[topic].epoch is None


def test_a_rate_limited_session_refuses_in_its_own_words(kit: Kit) -> None:
    inner = connected(kit)
    limited: Session = RateLimited(inner, RateLimit(1.0, 1, close_after=1))
    limited.receive_text(kit.ping, at(1))
    assert len(limited.frames_to_send()) == 1  # allowed: the protocol's own reply
    limited.receive_text(kit.ping, at(1))
    [refusal] = texts(limited.frames_to_send())
    assert "Too many messages" in refusal
    assert limited.close_reason is CloseCode.RATE_LIMITED
    assert inner.close_reason is CloseCode.RATE_LIMITED
    assert list(limited.topics) == list(inner.topics)


def test_commands_and_replies_are_the_contract_types() -> None:
    assert set(base.Command.__args__) == {  # type: ignore[attr-defined]
        base.Subscribe,
        base.SubscribeChannel,
        base.UnsubscribeChannel,
        base.Unsubscribe,
        base.Authenticate,
    }
    assert set(base.Reply.__args__) == {  # type: ignore[attr-defined]
        base.Authenticated,
        base.Refused,
        base.ResumeGap,
    }
    assert Subscribe((Topic.parse("trades.AAPL"),)).resume == {}


def test_the_rate_limit_refills_on_the_monotonic_clock(kit: Kit) -> None:
    limited: Session = RateLimited(connected(kit), RateLimit(1.0, 1, close_after=1))
    for i in range(3):  # one a second on the monotonic clock; the wall clock steps back
        limited.receive_text(kit.ping, Now(M0 + 1 + i, T0 - 3600 * i))
        [reply] = texts(limited.frames_to_send())
        assert "Too many messages" not in reply
    assert limited.close_reason is None
