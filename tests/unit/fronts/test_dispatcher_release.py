"""The Dispatcher releases what a client drops, even on a connection the server is
closing, and keys a registered channel's snapshot as the hub keys its updates.

Both were found in review (an unsubscribe read after a server-side close left the
subscription in the hub for good; a registered conflatable channel's snapshot was queued
without its key). No sleeps: every step is driven by hand (a scripted ``receive``, a
manual clock).
"""

from __future__ import annotations

import json
import operator
from collections.abc import AsyncIterator, Awaitable, Callable
from types import MappingProxyType
from typing import Any

import msgspec
import pytest
from starlette.types import Scope

from support.clock import ManualClock
from support.fakesocket import RecordingSocket
from support.silent import Silent
from tickcast.app import front_context
from tickcast.auth.credentials import Principal
from tickcast.closecodes import CloseCode
from tickcast.config.settings import Settings
from tickcast.fronts.base import FrontContext, FrontSpec, Opened, WebSocketFront
from tickcast.fronts.market import MarketFeedSpec
from tickcast.model.channel import ChannelSpec, Readers
from tickcast.model.topic import Channel, Topic
from tickcast.node import Node
from tickcast.protocols.base import Subscribe, Unsubscribe
from tickcast.protocols.native.session import MarketFeedSession

TS = 1_700_000_000.0


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    node = Node(Settings(batch_ms=0), providers=[Silent()], clock=ManualClock(wall=TS))
    try:
        yield node
    finally:
        node.pumps.close()
        await node.engine.dispose()


def scripted(steps: list[Callable[[], dict[str, Any]]]) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI ``receive`` that runs one step per call (a step may act first)."""
    queue = list(steps)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)()

    return receive


def text(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": json.dumps(message)}


async def test_an_unsubscribe_read_after_the_server_closed_the_connection_leaks_nothing(
    node: Node,
) -> None:
    """The server closes a connection (slow consumer, credential expiry, 1011...) while
    the client's ``unsubscribe`` is already on its way: the unsubscribe is read before
    the disconnect. Whatever order that happens in, nothing of the connection may stay
    subscribed in the hub after it ended (the hub would hold the dead connection, and a
    topic's last-subscriber hook would never fire)."""
    front = WebSocketFront(MarketFeedSpec(), front_context(node, None))
    last: list[Topic] = []
    node.hub.on_last(Channel.QUOTES, last.append)
    connection = front.connect({"query_string": b""}, RecordingSocket(), None)
    sub = {"action": "subscribe", "symbols": ["AAPL"], "channels": ["quotes"]}
    unsub = {"action": "unsubscribe", "symbols": ["AAPL"], "channels": ["quotes"]}

    def closed_by_server_then_unsubscribe() -> dict[str, Any]:
        # e.g. the hub's fan-out found it slow (close_slow) while the client was sending
        connection.close(CloseCode.TRY_AGAIN_LATER, "slow consumer")
        return text(unsub)

    receive = scripted(
        [
            lambda: text(sub),
            closed_by_server_then_unsubscribe,
            lambda: {"type": "websocket.disconnect", "code": 1013},
        ]
    )
    await connection.run(receive)
    assert node.hub.subscription_count == 0, "the closed connection is still subscribed"
    assert last == [Topic(Channel.QUOTES, "AAPL")]


class Signal(msgspec.Struct, frozen=True):
    """A payload of a channel registered by a plugin (not a built-in one)."""

    key: str
    value: int
    ts: float


class Signals(FrontSpec):
    name = "alphas"
    paths = ("/ws/signals",)
    codecs = MappingProxyType({"sig": lambda e: f"{e.topic} {e.payload.value}".encode()})
    guarded = False

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        return Opened(
            MarketFeedSession(is_known=lambda s: True, max_subscriptions=10, now=ctx.clock.now()),
            wire="sig",
            window_s=0.1,
        )


class Blocked(RecordingSocket):
    writable = False  # the peer does not read: what is queued stays pending


async def test_a_registered_conflatable_channel_conflates_its_snapshot_too(node: Node) -> None:
    """'A new kind of stream is one registration' (model/channel.py): a channel that
    conflates on the hub's registry conflates for a subscriber whatever the item, the
    snapshot included, and an unsubscribe drops what is pending for it. The Dispatcher
    keys the snapshot by ``Topic.conflatable``, which asks the *built-in* registry, so
    the snapshot of a registered channel is queued without its key."""
    node.hub.channels.register(
        ChannelSpec("alphas", Signal, True, operator.attrgetter("key"), Readers.PUBLIC)
    )
    topic = Topic("alphas", "a")
    node.publisher.publish([Signal("a", 1, TS)])  # type: ignore[list-item]
    front = WebSocketFront(Signals(), front_context(node, None))
    connection = front.connect({}, Blocked(), None)
    front.dispatcher.apply(connection, [Subscribe((topic,))])
    node.publisher.publish([Signal("a", 2, TS)])  # type: ignore[list-item]
    # the newer value replaces the pending one, as on every conflatable built-in channel
    assert [i.message for i in connection.outbox.flush(1e12, force=True)] == [b"alphas.a 2"]


async def test_an_unsubscribe_drops_the_pending_snapshot_of_a_registered_channel(
    node: Node,
) -> None:
    node.hub.channels.register(
        ChannelSpec("alphas", Signal, True, operator.attrgetter("key"), Readers.PUBLIC)
    )
    topic = Topic("alphas", "a")
    node.publisher.publish([Signal("a", 1, TS)])  # type: ignore[list-item]
    front = WebSocketFront(Signals(), front_context(node, None))
    connection = front.connect({}, Blocked(), None)
    front.dispatcher.apply(connection, [Subscribe((topic,))])
    front.dispatcher.apply(connection, [Unsubscribe((topic,))])
    assert len(connection.outbox) == 0, "the unsubscribed topic's snapshot is still queued"
