"""Front 3 over WebSocket (``fronts/stomp.py``), at the pure level: the sub-protocol it
picks, the destinations it resolves, and the MESSAGEs one shared item becomes (one per
subscription, the headed item shared by every client that numbers its ids alike)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tickcast.clock import Now
from tickcast.fronts.stomp import (
    HeadCache,
    StompSpec,
    message_id_of,
    pick_subprotocol,
    resolve,
)
from tickcast.model.channel import builtin
from tickcast.model.envelope import Envelope
from tickcast.model.market import Trade
from tickcast.model.topic import Topic
from tickcast.protocols.stomp import codec
from tickcast.protocols.stomp.session import StompSession
from tickcast.protocols.wire import Encoded

NOW = Now(5_000.0, 1_700_000_000.0)
AAPL = Topic("trades", "AAPL")


def ctx() -> Any:
    """What ``resolve`` reads of a ``FrontContext``: the registry and the universe."""
    return SimpleNamespace(
        hub=SimpleNamespace(channels=builtin()), is_known=lambda s: s in {"AAPL", "MSFT"}
    )


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["v11.stomp", "v12.stomp"], "v12.stomp"),
        (["v10.stomp", "v11.stomp"], "v11.stomp"),
        (["v10.stomp"], "v10.stomp"),
        (["mqtt", "v12.stomp"], "v12.stomp"),
        ([], None),
        (["mqtt"], None),  # never one the client did not offer
        (None, None),
    ],
)
def test_the_highest_offered_sub_protocol(offered: object, chosen: str | None) -> None:
    assert pick_subprotocol(offered) == chosen
    spec = StompSpec(allow_anonymous=True, login_timeout_s=10)
    scope = {} if offered is None else {"subprotocols": offered}
    assert spec.subprotocol(scope) == chosen


@pytest.mark.parametrize(
    ("destination", "topic"),
    [
        ("/topic/quotes.AAPL", Topic("quotes", "AAPL")),
        ("/topic/trades.MSFT", Topic("trades", "MSFT")),
        ("/topic/bars.AAPL", Topic("bars", "AAPL")),
        ("/topic/book.AAPL", Topic("book", "AAPL")),
        ("/topic/status.FEED", Topic("status", "FEED")),
        ("/topic/status.AAPL", None),
        ("/topic/quotes.FEED", None),
        ("/topic/quotes.NOPE", None),  # not in the feed's universe
        ("/topic/quotes.aapl", None),
        ("/topic/portfolio.1", None),  # another front's channel
        ("/topic/position-update", None),  # not built yet
        ("/queue/quotes.AAPL", None),
        ("quotes.AAPL", None),
    ],
)
def test_destinations(destination: str, topic: Topic | None) -> None:
    assert resolve(ctx(), destination) == topic


def session(*subscribe: tuple[str, str]) -> StompSession:
    s = StompSession(resolve=lambda d: resolve(ctx(), d), now=NOW, max_subscriptions=10)
    text = "CONNECT\naccept-version:1.2\n\n\0" + "".join(
        f"SUBSCRIBE\nid:{id_}\ndestination:/topic/trades.AAPL\nack:{ack}\n\n\0"
        for id_, ack in subscribe
    )
    s.receive_text(text, NOW)
    s.frames_to_send()
    s.commands_received()
    return s


def shared_item(seq: int) -> Encoded:
    envelope = Envelope(AAPL, seq, 1.0, Trade("AAPL", 1.5, 10, 1.0, "test"), "e1")
    return Encoded(codec.encode(envelope), ts=1.0, topic=str(AAPL))


def test_one_message_per_subscription_of_the_topic() -> None:
    spec = StompSpec(allow_anonymous=True, login_timeout_s=10)
    one = session(("sub-0", "auto"), ("sub-1", "auto"))
    item = shared_item(7)
    out = spec.heads(one, item)
    assert [tag for _, tag in out] == ["sub-0", "sub-1"]
    first, second = (headed.message for headed, _ in out)
    assert first.startswith(b"MESSAGE\nsubscription:sub-0\ndestination:/topic/trades.AAPL\n")
    assert second.startswith(b"MESSAGE\nsubscription:sub-1\n")
    assert first.endswith(item.payload)
    assert second.endswith(item.payload)
    assert spec.heads(one, Encoded(b"x", topic="trades.MSFT")) == []


def test_clients_sharing_an_id_share_one_headed_item_per_update() -> None:
    spec = StompSpec(allow_anonymous=True, login_timeout_s=10)
    a, b = session(("sub-0", "auto")), session(("sub-0", "auto"))
    item = shared_item(1)
    (from_a, _), (from_b, _) = spec.heads(a, item)[0], spec.heads(b, item)[0]
    assert from_a is from_b
    assert from_a.frame is from_b.frame  # one frame built for both
    (newer, _) = spec.heads(a, shared_item(2))[0]
    assert newer is not from_a
    assert b"seq:2" in newer.message


def test_an_acknowledged_subscription_gets_its_own_ack_header() -> None:
    spec = StompSpec(allow_anonymous=True, login_timeout_s=10)
    s = session(("sub-0", "client-individual"))
    item = shared_item(3)
    (headed, tag), *_ = spec.heads(s, item)
    assert tag == "sub-0"
    assert headed.head == b"MESSAGE\nsubscription:sub-0\nack:trades.AAPL-e1-3\n"
    assert message_id_of(item.payload) == "trades.AAPL-e1-3"


def test_the_head_cache_is_bounded() -> None:
    cache = HeadCache(limit=2)
    item = Encoded(b"p", topic="t.k")
    for head in (b"a", b"b", b"c"):
        cache.headed(item, head)
    assert len(cache) == 1  # started again when full
    assert cache.headed(item, b"c") is cache.headed(item, b"c")
