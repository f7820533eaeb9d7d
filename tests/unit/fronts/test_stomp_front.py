"""Front 3 over WebSocket (``fronts/stomp.py``), at the pure level: the sub-protocol it
picks, the destinations it resolves, and the MESSAGEs one shared item becomes (one per
subscription, the headed item shared by every client that numbers its ids alike)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tickcast.auth.credentials import ANONYMOUS, Principal
from tickcast.clock import Now
from tickcast.fronts.stomp import (
    HeadCache,
    StompSpec,
    message_id_of,
    pick_subprotocol,
    resolve,
)
from tickcast.model.channel import Readers, builtin
from tickcast.model.envelope import Envelope
from tickcast.model.market import Trade
from tickcast.model.portfolio import UserPnl, UserPositions
from tickcast.model.topic import Topic
from tickcast.protocols.stomp import codec
from tickcast.protocols.stomp.session import WHOLE, StompSession, Unreadable
from tickcast.protocols.wire import Encoded

TS = 1_700_000_000.0
NOW = Now(5_000.0, TS)
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
        ("/topic/signals", Topic("signals", WHOLE)),  # every signal: channel-wide
        ("/topic/signals.AAPL", Topic("signals", "AAPL")),
        ("/topic/signals.BTC/USDT", Topic("signals", "BTC/USDT")),  # any well-formed one
        ("/topic/signals.aapl", None),
        ("/topic/signals.../x", None),
        ("/topic/signals.", None),
        ("/topic/signal_status.SignalMonitorWorker", None),  # not served here
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


class Streams:
    """The per-user snapshots, as the portfolio service gives them."""

    def user_positions(self, owner_id: int) -> UserPositions:
        return UserPositions(owner_id, (), TS)

    def user_pnl(self, owner_id: int) -> UserPnl:
        return UserPnl(owner_id, (), TS)


def test_the_shared_user_destinations_name_the_subscribers_own_topic() -> None:
    spec = StompSpec(Streams(), allow_anonymous=True, login_timeout_s=10)
    c = ctx()
    assert spec.resolve_for(c, "/topic/position-update", 7) == Topic("user_positions", "7")
    assert spec.resolve_for(c, "/topic/unrealized-pnl", 7) == Topic("user_pnl", "7")
    with pytest.raises(Unreadable, match="Authentication required"):
        spec.resolve_for(c, "/topic/position-update", None)
    # never by their channel's own name, and not without the portfolio service
    assert spec.resolve_for(c, "/topic/user_positions.7", 7) is None
    bare = StompSpec(allow_anonymous=True, login_timeout_s=10)
    assert bare.resolve_for(c, "/topic/position-update", 7) is None


def test_a_user_topic_is_read_by_its_own_user_only() -> None:
    spec = StompSpec(Streams(), allow_anonymous=True, login_timeout_s=10)
    mine = Topic("user_positions", "7")
    assert spec.may_read(Principal(7, "u"), mine, Readers.OWNER)
    assert not spec.may_read(Principal(8, "v"), mine, Readers.OWNER)
    assert not spec.may_read(ANONYMOUS, mine, Readers.OWNER)
    assert not spec.may_read(Principal(7, "u"), Topic("portfolio", "7"), Readers.OWNER)
    assert spec.may_read(ANONYMOUS, AAPL, Readers.PUBLIC)


def test_a_user_topics_snapshot_is_computed_and_published() -> None:
    spec = StompSpec(Streams(), allow_anonymous=True, login_timeout_s=10)
    published: list[object] = []
    c = SimpleNamespace(publisher=published.extend)
    assert spec.snapshot(Topic("user_pnl", "7"), None, c) is None  # type: ignore[arg-type]
    assert spec.snapshot(Topic("user_positions", "7"), None, c) is None  # type: ignore[arg-type]
    assert published == [UserPnl(7, (), TS), UserPositions(7, (), TS)]
