"""Review of the cluster layer: defects found, each proven by a test marked
``xfail(strict=True)`` (it passes once the defect is fixed, then the mark must go).

Nodes run in one event loop on ``MemoryBus``es sharing a ``MemoryBroker``, with a
manual clock for the lease and the members' table. The background loops (leadership,
heartbeats) are given periods far longer than a test, so they run once at start; a
test moves them on explicitly (``poke``, the heartbeat loop's body). Every wait is for
a condition, with a generous bound.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

from support.clock import ManualClock
from tickcast.app import cluster_node
from tickcast.auth.limits import ConnectionCounter
from tickcast.bus import wire
from tickcast.bus.base import BusError, Lease
from tickcast.bus.leader import STEP_DOWN, Leadership
from tickcast.bus.memory import MemoryBroker, MemoryBus
from tickcast.cluster.publisher import ClusterPublisher, Mode, Verdict
from tickcast.cluster.service import Cluster
from tickcast.config.settings import Settings
from tickcast.hub.history import Gap
from tickcast.hub.hub import Hub
from tickcast.hub.sequencer import Sequencer
from tickcast.model.envelope import ResumePoint
from tickcast.model.market import FEED, Quote, Trade
from tickcast.model.topic import Channel, Topic
from tickcast.observability.faults import Faults
from tickcast.providers.base import Provider, Sink

#: The longest any condition is waited for (a busy 2-core machine included).
WAIT_S = 10.0
#: Periods no test lives long enough to see (the loops run once, at start).
FOREVER_S = 100_000.0


class Mute(Provider):
    name = "mute"

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset({"AAPL"})

    async def run(self, sink: Sink) -> None:
        await asyncio.Event().wait()


async def wait_for(condition: Callable[[], bool], what: str, limit_s: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(0.005)


async def settle() -> None:
    """Let every queued bus message be handled (memory bus: one task per subscription)."""
    for _ in range(50):
        await asyncio.sleep(0)


class Net:
    """Cluster nodes on one memory broker, one manual clock."""

    def __init__(self, tmp: Any) -> None:
        self.clock = ManualClock()
        self.broker = MemoryBroker(self.clock)
        self.prefix = f"review{secrets.token_hex(4)}"
        self.tmp = tmp
        self.nodes: list[Cluster] = []

    @property
    def lease_name(self) -> str:
        return f"{self.prefix}.leader"

    async def node(self, name: str, *, hooked: str | None = None) -> Cluster:
        settings = Settings(
            node_id=name,
            bus_prefix=self.prefix,
            lease_ttl_s=FOREVER_S,
            heartbeat_s=FOREVER_S / 10,
            database_url=f"sqlite+aiosqlite:///{self.tmp}/{name}.db",
        )
        node = cluster_node(settings, providers=[Mute()], clock=self.clock)
        if hooked is not None:  # a producer that computes only what is watched
            node.hub.on_first(hooked, lambda topic: None)
            node.hub.on_last(hooked, lambda topic: None)
        cluster = Cluster(
            node, MemoryBus(self.broker, clock=self.clock), settings.cluster, node_id=name
        )
        await cluster.start()
        self.nodes.append(cluster)
        return cluster

    async def close(self) -> None:
        for cluster in self.nodes:
            if cluster._tasks:
                await cluster.aclose()
            await cluster.node.stop_feed()
            await cluster.node.engine.dispose()
            cluster.node.pumps.close()


@pytest.fixture
async def net(tmp_path: Any) -> AsyncIterator[Net]:
    n = Net(tmp_path)
    yield n
    await n.close()


def quote(symbol: str, price: float = 100.0) -> Quote:
    return Quote(symbol, price - 0.01, price + 0.01, 1.0, 1.0, price, 10.0, 1.0, "sim")


class Watcher:
    """A client's subscription in a hub."""

    wire = "native"

    def deliver(self, item: object, key: str | None, now: float) -> None:
        pass

    def fault(self) -> None:
        pass


def expire_silent(cluster: Cluster) -> None:
    """One turn of the heartbeat loop's expiry (``Cluster._heartbeats``)."""
    for node in cluster.members.expire(cluster.clock.monotonic()):
        cluster._left(node)


async def leader_and_follower(net: Net, *, hooked: str | None = None) -> tuple[Cluster, Cluster]:
    a = await net.node("a", hooked=hooked)
    await wait_for(lambda: a.leading, "a to lead")
    b = await net.node("b", hooked=hooked)
    a._heartbeat()  # the heartbeat loop's next turn (b was not there for the first)
    await wait_for(lambda: "b" in a.members and "a" in b.members, "the nodes to meet")
    a.publisher.publish([quote("AAPL")])
    await wait_for(lambda: b.publisher.follower.leader == "a", "b to apply a batch of a's")
    return a, b


# -- leadership -----------------------------------------------------------------------


class HangingBus:
    """A bus whose lease renewal hangs (an engine that stopped answering), as a real
    backend's does for up to ``OPERATION_TIMEOUT_S`` (2 s) before ``BusError``."""

    name = "hanging"

    def __init__(self) -> None:
        self.renewing = asyncio.Event()
        self.answer = asyncio.Event()

    async def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        return Lease(name, holder, 1)

    async def renew(self, lease: Lease, ttl_s: float) -> bool:
        self.renewing.set()
        await self.answer.wait()
        raise BusError("timed out")

    async def release(self, lease: Lease) -> None:
        pass


async def test_a_leader_steps_down_at_its_deadline_even_while_a_renewal_hangs() -> None:
    clock = ManualClock()
    bus = HangingBus()
    changes: list[Lease | None] = []

    async def on_change(lease: Lease | None) -> None:
        changes.append(lease)

    ttl = 3.0
    leadership = Leadership(bus, "x.leader", "a", ttl, on_change, clock=clock)  # type: ignore[arg-type]
    leadership.start()
    try:
        await wait_for(lambda: changes == [Lease("x.leader", "a", 1)], "a to lead")
        clock.advance(ttl / 3)
        leadership.poke()
        await asyncio.wait_for(bus.renewing.wait(), WAIT_S)
        # the engine does not answer; time passes beyond the step-down deadline and up
        # to the lease's own expiry, where another node may take it
        clock.advance(ttl - ttl / 3)
        assert clock.monotonic() - leadership.term.renewed_at >= STEP_DOWN * ttl
        await wait_for(lambda: None in changes, "the leader to step down", limit_s=3.0)
    finally:
        bus.answer.set()
        await leadership.aclose()


async def test_after_the_engine_forgets_the_tokens_the_new_leaders_batches_are_applied(
    net: Net,
) -> None:
    net.broker.tokens[net.lease_name] = 41  # earlier terms
    a, b = await leader_and_follower(net)
    assert a.leadership.term.lease is not None
    assert a.leadership.term.lease.token > 41
    # the engine restarts without its data: the lease and its counter are gone; the
    # next grant comes later (a lease lapses before another is granted)
    net.broker.leases.clear()
    net.broker.tokens.clear()
    net.clock.advance(1.0)
    a.leadership.poke()  # a's renewal is refused: it steps down
    await wait_for(lambda: not a.leading and a.publisher.mode is Mode.FOLLOW, "a to step down")
    b.leadership.poke()  # b takes the lease again
    await wait_for(lambda: b.leading, "b to lead")
    b.publisher.publish([quote("MSFT")])
    await wait_for(lambda: b.node.hub.cache.get("quotes.MSFT") is not None, "b to publish")
    await settle()
    assert a.publisher.follower.leader == "b", a.verdicts
    assert a.node.hub.cache.get("quotes.MSFT") is not None


async def test_after_the_engine_restarts_two_nodes_never_lead_at_once(net: Net) -> None:
    a, b = await leader_and_follower(net)
    buses = [a.bus, b.bus]
    for bus in buses:
        assert isinstance(bus, MemoryBus)
        await bus.disconnect()
    net.broker.leases.clear()  # restarted without persistence: the lease is gone
    for bus in buses:
        assert isinstance(bus, MemoryBus)
        await bus.reconnect()
    b.leadership.poke()  # b's periodic try comes before a's renewal
    await settle()
    assert not (a.leading and b.leading)


# -- holes ----------------------------------------------------------------------------


def _follower(name: str) -> tuple[ClusterPublisher, Hub]:
    clock = ManualClock()
    hub = Hub(history_size=16, sequencer=Sequencer("boot"))
    publisher = ClusterPublisher(
        hub.sequencer,
        hub,
        Faults(),
        clock=clock,
        node=name,
        codec=wire.Codec(hub.channels),
        send=lambda kind, data: None,
    )
    return publisher, hub


def _items(n: int) -> list[wire.Item]:
    payload = msgspec.msgpack.encode(Trade("AAPL", 100.0 + n, 1.0, 1.0, "sim", f"t{n}"))
    return [(Channel.TRADES.value, "AAPL", n, 1.0, msgspec.Raw(payload))]


def test_a_batch_that_cannot_be_decoded_is_a_hole_not_silently_skipped() -> None:
    b, _hub = _follower("b")
    assert b.apply(wire.Batch("a", "E1", 1, _items(1), token=1)) is Verdict.JOINED
    garbage: list[wire.Item] = [(Channel.TRADES.value, "AAPL", 2, 1.0, msgspec.Raw(b"\x93\x01"))]
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        b.apply(wire.Batch("a", "E1", 2, garbage, token=1))
    verdict = b.apply(wire.Batch("a", "E1", 3, _items(3), token=1))
    assert verdict is Verdict.GAP  # batch 2 never reached the hub


async def test_a_batch_with_a_channel_this_node_lacks_does_not_lose_the_rest_silently(
    net: Net,
) -> None:
    _a, b = await leader_and_follower(net)
    n = b.publisher.follower.n
    epoch, token = b.publisher.follower.epoch, b.publisher.follower.token
    payload = msgspec.msgpack.encode(quote("TSLA"))
    items: list[wire.Item] = [
        ("newchannel", "X", 1, 1.0, msgspec.Raw(b"\x01")),
        (Channel.QUOTES.value, "TSLA", 7, 1.0, msgspec.Raw(payload)),
    ]
    rogue = MemoryBus(net.broker, clock=net.clock)
    await rogue.start()
    await rogue.publish(
        f"{net.prefix}.batch", wire.encode(wire.Batch("a", epoch, n + 1, items, token=token))
    )
    await rogue.publish(
        f"{net.prefix}.batch", wire.encode(wire.Batch("a", epoch, n + 2, _items(9), token=token))
    )
    await wait_for(lambda: b.publisher.follower.n == n + 2, "b to judge both batches")
    # either the known update arrived, or the hole was said
    assert b.node.hub.cache.get("quotes.TSLA") is not None or b.counts["gaps"] > 0


async def test_a_followers_update_sent_while_no_node_leads_is_not_lost(net: Net) -> None:
    a, b = await leader_and_follower(net)
    await a.bus.disconnect()  # the leader is cut off (or dead): it hears nothing more
    b.publisher.publish([quote("NFLX")])  # b's own update, e.g. a trade's position
    await settle()
    # the lease lapses; b learns the leader is gone and takes over
    net.clock.advance(FOREVER_S + 1)
    b.leadership.poke()
    await wait_for(lambda: b.leading, "b to lead")
    b.publisher.publish([quote("AAPL", 101.0)])
    await wait_for(lambda: b.node.hub.cache.get("quotes.AAPL") is not None, "b to publish")
    assert b.node.hub.cache.get("quotes.NFLX") is not None or b.counts["gaps"] > 0


# -- state after a fault --------------------------------------------------------------


async def test_a_follower_back_on_the_bus_no_longer_says_stale(net: Net) -> None:
    a, b = await leader_and_follower(net)
    bus = b.bus
    assert isinstance(bus, MemoryBus)
    await bus.disconnect()
    status = b.node.hub.cache.get(f"status.{FEED}")
    assert status is not None
    assert status.payload.state == "stale"
    await bus.reconnect()
    a.publisher.publish([quote("AAPL", 102.0)])
    await wait_for(lambda: b.ready(), "b to serve the leader's data again")
    status = b.node.hub.cache.get(f"status.{FEED}")
    assert status is not None
    assert status.payload.state != "stale", status.payload


# -- interest -------------------------------------------------------------------------


async def test_a_follower_forgotten_for_a_while_gets_its_interest_held_again(net: Net) -> None:
    hooked = Channel.POSITIONS.value
    a, b = await leader_and_follower(net, hooked=hooked)
    topic = Topic(hooked, "7")
    b.node.hub.subscribe(Watcher(), topic)
    await wait_for(lambda: str(topic) in a._holders, "the leader to hold b's topic")
    # b is silent for three heartbeats (a stalled process, dropped messages): a forgets it
    net.clock.advance(3 * b.settings.heartbeat_s + 1)
    expire_silent(a)
    assert "b" not in a.members
    assert str(topic) not in a._holders
    # b is heard again; its client still watches the topic
    b._heartbeat()
    a._heartbeat()
    await wait_for(lambda: "b" in a.members, "a to hear b again")
    await settle()
    assert topic in b.node.hub.watched(frozenset({hooked}))
    assert str(topic) in a._holders


# -- shared figures -------------------------------------------------------------------


async def test_a_user_signed_in_elsewhere_on_a_per_path_front_counts_in_the_status(
    net: Net,
) -> None:
    a, b = await leader_and_follower(net)
    users, paths = ConnectionCounter(3), ConnectionCounter(3)
    b.count_users(users)
    b.count_users(paths)  # as join_cluster does: guard.users, guard.paths
    assert paths.acquire(("/ws/alerts", 5))  # Ticket.slot_of for a per-path front
    await wait_for(lambda: bool(a.members.connections_of(str(("/ws/alerts", 5)))), "a")
    _, _, signed_in = a.others()
    assert 5 in signed_in


async def test_a_heartbeat_with_an_odd_user_key_does_not_break_the_status(net: Net) -> None:
    a, _b = await leader_and_follower(net)
    rogue = MemoryBus(net.broker, clock=net.clock)
    await rogue.start()
    heartbeat = wire.Heartbeat("rogue", 0.0, users={"\u00b2": 1, "7": 1})
    await rogue.publish(f"{net.prefix}.control", wire.encode(heartbeat))
    await wait_for(lambda: "rogue" in a.members, "a to hear the heartbeat")
    _, _, signed_in = a.others()
    assert 7 in signed_in


async def test_interest_sent_while_the_leaders_bus_blipped_is_held_once_it_is_back(
    net: Net,
) -> None:
    hooked = Channel.POSITIONS.value
    a, b = await leader_and_follower(net, hooked=hooked)
    bus = a.bus
    assert isinstance(bus, MemoryBus)
    await bus.disconnect()
    topic = Topic(hooked, "8")
    b.node.hub.subscribe(Watcher(), topic)  # b's client starts watching: Interest(add)
    await settle()
    await bus.reconnect()  # a is back, still leading (it says so in a heartbeat)
    assert a.leading
    a._heartbeat()
    b._heartbeat()
    await settle()
    await wait_for(lambda: "a" in b.members, "b to hear a")
    assert str(topic) in a._holders


async def test_a_node_back_on_the_bus_reloads_the_writes_it_missed(net: Net) -> None:
    a, b = await leader_and_follower(net)
    reloaded: list[list[int]] = []
    b.on_changed("portfolio", reloaded.append)
    bus = b.bus
    assert isinstance(bus, MemoryBus)
    await bus.disconnect()
    a.changed("portfolio", [7])  # a committed a write to portfolio 7
    await settle()
    await bus.reconnect()
    a.publisher.publish([quote("AAPL", 103.0)])
    await wait_for(lambda: b.ready(), "b to follow again")
    await settle()
    assert reloaded  # portfolio 7, or everything: b cannot know what it missed


async def test_a_follower_stops_naming_a_leader_that_says_it_stepped_down(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await leader_and_follower(net)
    assert b.ready()

    async def refused(*args: object) -> Lease | None:
        raise BusError("OOM command not allowed")

    for cluster in (a, b):
        monkeypatch.setattr(cluster.bus, "acquire", refused)
    net.broker.leases.clear()  # a's lease is lost: its renewal is refused
    a.leadership.poke()
    await wait_for(lambda: not a.leading, "a to step down")
    a._heartbeat()  # a says it does not lead
    await settle()
    assert a.leader is None
    assert b.leader is None
    assert not b.ready()


async def test_after_a_lost_batch_a_resume_on_its_topic_is_not_silently_up_to_date(
    net: Net,
) -> None:
    a, b = await leader_and_follower(net)
    status = Topic(Channel.STATUS, FEED)
    a._status("up", "first")
    await wait_for(lambda: b.node.hub.position(status) == a.node.hub.position(status), "b")
    seen = b.node.hub.position(status)  # what b's client saw last
    # the bus loses one batch for b: the status changes there
    batch = f"{net.prefix}.batch"
    subs = net.broker.subscribers[batch]
    mine = {s for s in subs if s.handler == b._on_batch}
    subs -= mine
    a._status("stale", "second")
    await settle()
    subs |= mine
    a.publisher.publish([quote("AAPL", 104.0)])
    await wait_for(lambda: b.counts["gaps"] == 1, "b to see the hole")
    assert a.node.hub.position(status)[1] == seen[1] + 1
    answer = b.node.hub.resume(status, ResumePoint(seen[1], seen[0]))
    assert isinstance(answer, Gap), answer  # a reset and a snapshot, not "nothing new"
