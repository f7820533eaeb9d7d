"""The per-subscription heads seam: the hub stamps each item with its topic, and a
``HeadedConnection`` turns one shared item into its own items (``heads``), each queued
under the conflation key joined with its tag. Replies (no topic) pass as they are; the
plain ``Connection`` has no such step."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from support.clock import ManualClock
from support.publishing import stamp_and_fan_out
from tickcast.clock import Now
from tickcast.hub.hub import Hub
from tickcast.hub.outbox import Outbox
from tickcast.hub.pump import Pump, Pumps
from tickcast.model.envelope import Envelope
from tickcast.model.market import Trade
from tickcast.model.topic import Topic
from tickcast.observability.stats import Stats
from tickcast.protocols.wire import Encoded
from tickcast.transport.connection import Connection, HeadedConnection, payload_size

TS = 1_700_000_000.0


class Socket:
    raw = True
    writable = True

    def __init__(self) -> None:
        self.on_writable: Callable[[], None] | None = None
        self.written: list[bytes] = []

    def write_frames(self, data: bytes) -> bool:
        self.written.append(data)
        return self.writable

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        self.written.extend(payloads)

    def send_bytes(self, payload: bytes) -> None:
        self.written.append(payload)

    def peer_limited(self) -> bool | None:
        return True

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        pass


class Session:
    close_reason = None

    def receive_text(self, data: str, now: Now) -> None: ...
    def receive_bytes(self, data: bytes, now: Now) -> None: ...
    def handle_timer(self, now: Now) -> None: ...
    def next_deadline(self) -> float | None:
        return None

    def frames_to_send(self) -> list[Encoded]:
        return []

    def commands_received(self) -> Sequence[object]:
        return []


@pytest.fixture
async def pump() -> AsyncIterator[Pump]:
    pumps = Pumps(ManualClock())
    yield pumps.get(10.0)  # a window that never fires during a test
    pumps.close()


def tags_heads(tags: dict[str, list[str]]) -> Callable[[Encoded], list[tuple[Encoded, str]]]:
    """Heads as a front gives them: for each tag held on the item's topic, the item
    headed with ``<tag>|``."""

    def heads(item: Encoded) -> list[tuple[Encoded, str]]:
        return [(item.headed(f"{tag}|".encode()), tag) for tag in tags.get(item.topic, ())]

    return heads


Heads = Callable[[Encoded], list[tuple[Encoded, str]]]


def headed_connection(pump: Pump, heads: Heads) -> HeadedConnection:
    return HeadedConnection(
        heads=heads,
        sock=Socket(),
        session=Session(),
        wire="w",
        array=False,
        outbox=Outbox(pump.window_s, 1000, 0, size=payload_size),
        pump=pump,
        stats=Stats(),
        on_commands=lambda _c, _cmds: None,
        on_close=lambda _c: None,
    )


def pending(connection: Connection) -> list[bytes]:
    return [item.message for item in connection.outbox.flush(0.0, force=True)]


def test_the_hub_stamps_the_topic_on_what_it_encodes() -> None:
    seen: list[Encoded] = []

    class Subscriber:
        wire = "w"

        def deliver(self, item: Encoded, key: str | None, now: float) -> None:
            seen.append(item)

        def fault(self) -> None: ...

    hub = Hub({"w": lambda e: str(e.seq).encode()})
    topic = Topic("trades", "AAPL")
    hub.subscribe(Subscriber(), topic)
    stamp_and_fan_out(hub, [Trade("AAPL", 1.0, 1, TS, "test")], TS)
    assert [item.topic for item in seen] == ["trades.AAPL"]
    replay = Envelope(topic, 1, TS, Trade("AAPL", 1.0, 1, TS, "test"))
    assert hub.encode("w", replay).topic == "trades.AAPL"  # snapshots and replays too
    assert Encoded(b"pong", control=True).topic == ""  # a reply has none
    assert seen[0].headed(b"h").topic == "trades.AAPL"


async def test_one_item_becomes_one_per_subscription_of_its_topic(pump: Pump) -> None:
    conn = headed_connection(pump, tags_heads({"trades.AAPL": ["a", "b"]}))
    item = Encoded(b"T1", topic="trades.AAPL")
    conn.deliver(item, None, 0.0)
    out = conn.outbox.flush(0.0, force=True)
    assert [i.message for i in out] == [b"a|T1", b"b|T1"]
    assert all(i.payload is item.payload for i in out)  # the body is shared, not copied


async def test_conflation_keys_are_per_subscription(pump: Pump) -> None:
    conn = headed_connection(pump, tags_heads({"quotes.AAPL": ["a", "b"]}))
    for n in range(3):
        conn.deliver(Encoded(b"Q%d" % n, topic="quotes.AAPL"), "quotes.AAPL", 0.0)
    # the latest per subscription: neither one for both, nor every update
    assert pending(conn) == [b"a|Q2", b"b|Q2"]


async def test_replies_and_topics_without_subscriptions(pump: Pump) -> None:
    conn = headed_connection(pump, tags_heads({"trades.AAPL": ["a"]}))
    conn.deliver(Encoded(b"RECEIPT", control=True), None, 0.0)  # no topic: as it is
    conn.deliver(Encoded(b"T", topic="trades.MSFT"), None, 0.0)  # nobody holds it here
    assert pending(conn) == [b"RECEIPT"]


async def test_queue_heads_snapshots_too(pump: Pump) -> None:
    conn = headed_connection(pump, tags_heads({"quotes.AAPL": ["a"]}))
    conn.queue(Encoded(b"S", topic="quotes.AAPL"), "quotes.AAPL")
    assert pending(conn) == [b"a|S"]


async def test_a_plain_connection_queues_the_shared_item(pump: Pump) -> None:
    conn = Connection(
        sock=Socket(),
        session=Session(),
        wire="w",
        array=False,
        outbox=Outbox(pump.window_s, 1000, 0, size=payload_size),
        pump=pump,
        stats=Stats(),
        on_commands=lambda _c, _cmds: None,
        on_close=lambda _c: None,
    )
    item = Encoded(b"Q", topic="quotes.AAPL")
    conn.deliver(item, "quotes.AAPL", 0.0)
    assert conn.outbox.flush(0.0, force=True) == [item]
    assert type(conn).deliver is Connection.deliver
