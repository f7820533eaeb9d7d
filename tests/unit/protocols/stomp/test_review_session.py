"""Review findings in StompSession, at the pure session level (``now`` passed in),
each each fixed since."""

from __future__ import annotations

from tickcast.clock import Now
from tickcast.model.topic import Topic
from tickcast.protocols.base import Unsubscribe
from tickcast.protocols.stomp import codec
from tickcast.protocols.stomp.frames import Frame, FrameParser
from tickcast.protocols.stomp.session import StompSession, subscription_cap

AAPL = Topic("trades", "AAPL")


def at(offset: float) -> Now:
    return Now(5_000.0 + offset, 1_700_000_000.0 + offset)


def resolve(destination: str) -> Topic | None:
    return codec.topic_of(destination)


def frame(command: str, **headers: str) -> str:
    lines = [command] + [f"{k.replace('_', '-')}:{v}" for k, v in headers.items()]
    return "\n".join(lines) + "\n\n\x00"


def out(session: StompSession) -> list[Frame]:
    parser = FrameParser(unescape=session.version != "1.0")
    return [f for item in session.frames_to_send() for f in parser.feed(item.message)]


def test_stomp_1_0_unsubscribes_by_destination_a_subscription_made_with_an_id() -> None:
    """STOMP 1.0: UNSUBSCRIBE names the destination ("to no longer receive messages from
    that destination"); the id is an alternative when SUBSCRIBE gave one. A 1.0 client
    that subscribed with an id and unsubscribes by destination is answered with its
    RECEIPT, not ERROR "No subscription" and close 1002."""
    session = StompSession(resolve=resolve, now=at(0), session_id="s", cap=subscription_cap(10))
    session.receive_text(frame("CONNECT"), at(0.1))
    assert [f.command for f in out(session)] == ["CONNECTED"]
    assert session.version == "1.0"
    session.receive_text(frame("SUBSCRIBE", id="x", destination="/topic/trades.AAPL"), at(1))
    session.commands_received()
    session.receive_text(frame("UNSUBSCRIBE", destination="/topic/trades.AAPL", receipt="u"), at(2))
    assert [(f.command, f.headers.get("receipt-id")) for f in out(session)] == [("RECEIPT", "u")]
    assert session.commands_received() == [Unsubscribe((AAPL,))]
    assert session.close_reason is None
