"""Cluster: one node's part in a cluster of gateway nodes joined by a bus.

Rules: this is the I/O that carries out ``publisher.py``'s modes, ``members.py``'s table
and ``bus/leader.py``'s lease; it decides nothing they can decide. Subjects, all under
``bus_prefix``: ``<prefix>.batch`` (the leader's stamped batches, to every node),
``<prefix>.publish`` (what followers hand the leader to stamp), ``<prefix>.control``
(heartbeats, connection counts, interest, committed writes, leaving); the lease is
``<prefix>.leader``.

- **One upstream.** Only the node holding the lease runs the feed (``Node.start_feed``);
  it stops it before the lease can lapse (``bus/leader.py``). On taking the lead it opens
  a new epoch and says so on the feed's status topic (``status.FEED``, provider
  ``cluster``).
- **One sequence.** The leader stamps and sends every batch; followers fan them out as
  they are, so history, last values and resume points are the same on every node.
- **Only what is watched.** Producers compute some topics only while watched (live
  positions, per-user streams, leaderboard views): a follower tells the leader which of
  those its clients watch (``Interest``), and the leader holds them in its own hub for
  that node, so its producers compute them; a node that leaves releases them.
- **Holes are signalled, never silent.** A batch missed (a gap in the leader's numbering)
  or a time cut off from the bus makes the node forget its history and close its clients
  with 1012 (service restart): they reconnect, and a resume answers with a snapshot and a
  reset. While cut off, the node stamps alone, in an epoch of its own, says so on the
  status topic and is not ready (``/ready`` answers 503), so that a load balancer sends
  clients elsewhere.
- **Limits are the cluster's.** Each node counts its own connections per user and sends
  a change at once (``Users``) and every count in every heartbeat; a node admits a user
  only while its count and the others' stay under the cap. Two nodes admitting the same
  user in the same few milliseconds may both admit: the cap can be passed by one
  connection per node for that long (documented).
- **Writes reach every node.** A node that commits a portfolio write says so
  (``Changed``); every node reloads that portfolio from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tickcast.bus import wire
from tickcast.bus.base import MAX_MESSAGE_BYTES, Bus, BusError, Lease
from tickcast.bus.leader import Leadership
from tickcast.closecodes import CloseCode
from tickcast.cluster.members import Members
from tickcast.cluster.publisher import ClusterPublisher, Mode, Verdict
from tickcast.config.groups import ClusterSettings
from tickcast.hub.sequencer import new_epoch
from tickcast.model.envelope import Envelope
from tickcast.model.market import FEED, Status
from tickcast.model.topic import Topic

if TYPE_CHECKING:
    from tickcast.node import Node

log = logging.getLogger("tickcast.cluster")

#: Bus messages waiting to be sent, at most; beyond, a message is dropped and counted
#: (a batch dropped is a gap the followers detect).
SEND_QUEUE = 10_000

#: The feed status topic's key in the hub.
STATUS_KEY = f"status.{FEED}"

#: The most topics or user counts in one control message (each well under the bus's
#: message limit); more go in several messages.
PART_ITEMS = 2_000

#: Heartbeats between two times a follower tells the leader every topic it watches.
INTEREST_EVERY = 10

#: The most queued messages sent in one call to the bus (one Redis round trip).
SEND_BATCH = 256

#: The wire of the hub subscriptions a leader holds for other nodes' clients.
REMOTE_WIRE = "cluster"


class _Remote:
    """A leader's stand-in, in its own hub, for the other nodes' clients of a topic."""

    wire = REMOTE_WIRE

    def deliver(self, item: object, key: str | None, now: float) -> None:
        pass  # the followers get every batch anyway

    def fault(self) -> None:
        pass


def _never_encoded(envelope: Envelope) -> bytes:
    return b""


class Cluster:
    """Joins ``node`` to the cluster on ``bus`` (see the module docstring).

    ``node`` is built with a ``ClusterPublisher`` (``Node(..., publisher=...)``) and its
    feed gated (``feed_gated``); the composition root adds the cluster as the node's
    last service, so it starts once the other services are loaded and stops first.

    Args:
        node: the node (its hub, publisher, clock, connections, feed).
        bus: the bus, not started (the cluster starts and closes it).
        settings: the cluster's settings.
        node_id: this node's id.
        url: where this node serves (shown to the others).
    """

    def __init__(
        self,
        node: Node,
        bus: Bus,
        settings: ClusterSettings,
        *,
        node_id: str,
        url: str = "",
    ) -> None:
        self.node = node
        self.bus = bus
        self.settings = settings
        self.node_id = node_id
        self.url = url
        self.clock = node.clock
        publisher = node.publisher
        assert isinstance(publisher, ClusterPublisher)
        self.publisher = publisher
        prefix = settings.bus_prefix
        self.subjects = {
            "batch": f"{prefix}.batch",
            "publish": f"{prefix}.publish",
            "control": f"{prefix}.control",
        }
        self.members = Members(node_id, 3 * settings.heartbeat_s)
        self.leadership = Leadership(
            bus,
            f"{prefix}.leader",
            node_id,
            settings.lease_ttl_s,
            self._lead_changed,
            clock=self.clock,
        )
        self.started = self.clock.wall()
        self.bus_up = False
        self.led_since: float | None = None  # monotonic, while leading
        self.leader_heard: tuple[str, int, float] | None = None  # (node, token, mono)
        self.counts = {"sent": 0, "received": 0, "dropped": 0, "gaps": 0, "unknown": 0}
        self.verdicts: dict[str, int] = {}
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(SEND_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []
        self._hooked: frozenset[str] = frozenset()
        self._remote: dict[str, set[str]] = {}  # node -> topic keys it watches
        self._holders: dict[str, int] = {}  # topic key -> nodes watching it
        # the leader (its id, token and resets) we last sent all our interest
        self._told: tuple[str, int, int] | None = None
        self._leader_resets = 0  # the leader's ``resets``, as its heartbeat said
        # times this node may have lost what others told it (off the bus, forgot a
        # node): in its heartbeat, so that followers tell it their interest again
        self.resets = 0
        self._stale: Envelope | None = None  # the "stale" status this node said alone
        self._changed: dict[str, list[Callable[[list[int] | None], Any]]] = {}
        self._counters: list[Any] = []
        self._remote_sub = _Remote()
        # this node's figures for the cluster's statistics (set by the composition root)
        self.figures: Callable[[], dict[str, int]] = dict
        publisher.send = self._send
        node.hub.codecs[REMOTE_WIRE] = _never_encoded

    # -- lifecycle

    async def start(self) -> None:
        self.node.feed_gated = True
        self.node.readiness = self.ready
        bus = self.bus
        await bus.start()
        self.bus_up = bus.connected
        bus.on_connection(self._connection)
        await bus.subscribe(self.subjects["batch"], self._on_batch)
        await bus.subscribe(self.subjects["publish"], self._on_publish)
        await bus.subscribe(self.subjects["control"], self._on_control)
        hub = self.node.hub
        self._hooked = hub.hooked_channels
        for channel in self._hooked:
            hub.on_first(channel, self._watch)
            hub.on_last(channel, self._unwatch)
        self._tasks = [
            asyncio.create_task(self._sender(), name="cluster-sender"),
            asyncio.create_task(self._heartbeats(), name="cluster-heartbeats"),
        ]
        self.leadership.start()

    async def aclose(self) -> None:
        await self.leadership.aclose()  # stops the feed and releases the lease if it led
        # then say so: the others try to take the lease at once
        self._send("control", wire.encode(wire.Leaving(self.node_id)))
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._drain(), 1.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.bus.aclose()

    async def _drain(self) -> None:
        if self.bus_up:
            await self._queue.join()

    # -- state

    @property
    def leading(self) -> bool:
        return self.publisher.mode is Mode.LEAD

    @property
    def leader(self) -> str | None:
        """The leader's node id, as far as this node knows; None while there is none."""
        if self.leading:
            return self.node_id
        heard = self.leader_heard
        if heard is None or heard[0] not in self.members:
            return None
        return heard[0]

    def ready(self) -> bool:
        """Serving the cluster's live data: leading with the feed up, or following a
        leader that is alive, with a batch of its applied, on a connected bus."""
        if self.leading:
            return self.node.feed_ready
        if self._stale is not None:
            if self.node.hub.cache.get(STATUS_KEY) is self._stale:
                return False  # its clients' last word is still "stale"
            self._stale = None
        follower = self.publisher.follower
        return (
            self.bus_up
            and self.publisher.mode is Mode.FOLLOW
            and self.leader is not None
            and follower.leader == self.leader
            and follower.n > 0
        )

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /cluster`` shows."""
        now = self.clock.monotonic()
        term = self.leadership.term
        lease = term.lease
        me = {
            "node": self.node_id,
            "url": self.url,
            "role": self.publisher.mode.value,
            "leader": self.leader,
            "epoch": self.node.hub.epoch,
            "connections": len(self.node.connections),
            "subscriptions": self.node.hub.subscription_count,
            "last_seen_s": 0.0,
        }
        nodes = [me]
        for member in self.members.others():
            hb = member.heartbeat
            nodes.append(
                {
                    "node": hb.node,
                    "url": hb.url,
                    "role": "leader" if hb.leader == hb.node else "follower",
                    "leader": hb.leader,
                    "epoch": hb.epoch,
                    "connections": hb.connections,
                    "subscriptions": hb.subscriptions,
                    "last_seen_s": round(now - member.seen, 3),
                }
            )
        heard = self.leader_heard
        return {
            "node": self.node_id,
            "leader": self.leader,
            "epoch": self.node.hub.epoch,
            "token": lease.token if lease is not None else (heard[1] if heard else 0),
            "role": self.publisher.mode.value,
            "lease": {
                "name": self.leadership.name,
                "ttl_s": term.ttl_s,
                "held": lease is not None,
                "age_s": None if self.led_since is None else round(now - self.led_since, 3),
                "renewed_s": None if lease is None else round(now - term.renewed_at, 3),
                "leader_heard_s": None if heard is None else round(now - heard[2], 3),
                "elections_won": self.leadership.elections,
            },
            "nodes": nodes,
            "bus": {
                "backend": self.bus.name,
                "connected": self.bus_up,
                "queued": self._queue.qsize(),
                **self.counts,
                "verdicts": dict(self.verdicts),
                "forwarded": self.publisher.forwarded,
            },
            "ready": self.ready(),
        }

    def totals(self) -> dict[str, int]:
        """The cluster's connections, subscriptions and updates: this node's now, the
        others' from their last heartbeats."""
        hub = self.node.hub
        totals = {
            "nodes": 1 + len(self.members),
            "connections": len(self.node.connections),
            "subscriptions": hub.subscription_count,
            "published": hub.published,
            "deliveries": hub.deliveries,
        }
        for member in self.members.others():
            hb = member.heartbeat
            totals["connections"] += hb.connections
            totals["subscriptions"] += hb.subscriptions
            totals["published"] += hb.published
            totals["deliveries"] += hb.deliveries
        return totals

    def others(self) -> tuple[int, dict[str, int], set[int]]:
        """The other nodes: how many, their figures summed, and their signed-in users."""
        figures: dict[str, int] = {}
        users: set[int] = set()
        for member in self.members.others():
            for name, value in member.heartbeat.figures.items():
                figures[name] = figures.get(name, 0) + value
            for key, n in member.users.items():
                user = _user_of(key)
                if n > 0 and user is not None:
                    users.add(user)
        return len(self.members), figures, users

    # -- sending

    def _send(self, kind: str, data: bytes) -> None:
        if len(data) > MAX_MESSAGE_BYTES:  # never sent: it would fail its whole group
            self.counts["dropped"] += 1
            log.error("a %s message of %d bytes is over the bus's limit", kind, len(data))
            return
        try:
            self._queue.put_nowait((self.subjects[kind], data))
        except asyncio.QueueFull:
            self.counts["dropped"] += 1

    async def _sender(self) -> None:
        """Sends what is queued, in order: everything queued at once in one call (one
        round trip to Redis), so that a round trip's latency does not cap the rate."""
        queue = self._queue
        while True:
            messages = [await queue.get()]
            while not queue.empty() and len(messages) < SEND_BATCH:
                messages.append(queue.get_nowait())
            try:
                await self.bus.publish_many(messages)
                self.counts["sent"] += len(messages)
            except BusError:
                self.counts["dropped"] += len(messages)
            except Exception:
                self.counts["dropped"] += len(messages)
                log.exception("bus messages could not be sent")
            finally:
                for _ in messages:
                    queue.task_done()

    # -- receiving

    def _decode(self, data: bytes) -> wire.Message | None:
        self.counts["received"] += 1
        try:
            message = wire.decode(data)
        except (msgspec.DecodeError, ValueError):
            message = None
        if message is None:
            self.counts["unknown"] += 1
        return message

    def _on_batch(self, data: bytes) -> None:
        batch = self._decode(data)
        if not isinstance(batch, wire.Batch):
            return
        try:
            verdict = self.publisher.apply(batch)
        except (msgspec.DecodeError, msgspec.ValidationError):  # nothing in it readable
            self.counts["unknown"] += 1
            return  # not applied: the next batch is a gap, and said so
        self.counts["unknown"] += self.publisher.unreadable  # a newer node's channels
        self.verdicts[verdict.value] = self.verdicts.get(verdict.value, 0) + 1
        if verdict is Verdict.GAP:
            self._hole(f"missed updates from the leader {batch.node}")
            self._resync()
        elif verdict is Verdict.TERM:
            self._hole(f"{batch.node} leads now, in a new epoch", gap=False)
        elif verdict is Verdict.JOINED:  # clients that came before: another numbering
            self._hole(f"{self.node_id} joined the cluster's numbering", gap=False)
        if verdict in (Verdict.JOINED, Verdict.TERM, Verdict.GAP):
            self._tell_interest(batch.node, batch.token, self._leader_resets)

    def _on_publish(self, data: bytes) -> None:
        message = self._decode(data)
        if not self.leading:
            return
        if isinstance(message, wire.Changed):
            self._tell_changed(message)
            return
        if not isinstance(message, wire.Publish):
            return
        try:
            events = self.publisher.codec.events_in(message.items)
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
            self.counts["unknown"] += 1
            return
        self.publisher.publish_for(message.node, message.id, events)

    def _on_control(self, data: bytes) -> None:
        message = self._decode(data)
        if message is None or getattr(message, "node", None) == self.node_id:
            return
        now = self.clock.monotonic()
        if isinstance(message, wire.Heartbeat):
            if self.members.heard(message, now):
                log.info("node %s joined the cluster", message.node)
            if message.leader == message.node:
                self.leader_heard = (message.node, message.token, now)
                self._leader_resets = message.resets
                self._tell_interest(message.node, message.token, message.resets)
            elif self.leader_heard is not None and self.leader_heard[0] == message.node:
                self.leader_heard = None  # it says it no longer leads
        elif isinstance(message, wire.Users):
            self.members.users(message.node, message.counts)
        elif isinstance(message, wire.Interest):
            self._interest(message)
        elif isinstance(message, wire.Changed):
            self._tell_changed(message)
        elif isinstance(message, wire.Leaving):
            self._left(message.node)

    def _tell_changed(self, message: wire.Changed) -> None:
        for handler in self._changed.get(message.what, ()):
            try:
                handler(message.ids)
            except Exception:
                log.exception("reloading %s %s failed", message.what, message.ids)

    def _left(self, node: str) -> None:
        if self.members.left(node):
            log.info("node %s left the cluster", node)
        self.resets += 1  # should it come back, it tells its interest again
        self._drop_interest(node)
        heard = self.leader_heard
        if heard is not None and heard[0] == node:
            self.leader_heard = None
            self.leadership.poke()  # the leader left: try to take over at once

    def _connection(self, up: bool) -> None:
        self.bus_up = up
        if not up:
            log.warning("node %s lost the bus", self.node_id)
            if self.publisher.mode is Mode.FOLLOW:
                self._alone()
            return
        log.warning("node %s is back on the bus", self.node_id)
        self.resets += 1
        self.leadership.reconnected()
        if self.publisher.mode is Mode.ALONE:
            self.publisher.follow()
            # through the leader, to every node: the status topic no longer says stale
            self._status("up", f"node {self.node_id} is back on the cluster's bus")
        self._told = None
        self._heartbeat()
        self._resync()

    def _alone(self) -> None:
        self.publisher.alone(new_epoch(self.clock.wall(), secrets.token_hex(3)))
        self._status("stale", "this node is cut off from the cluster's bus: no live data")
        # not ready again before the leader's word replaces it (``ready``)
        self._stale = self.node.hub.cache.get(STATUS_KEY)

    def _hole(self, why: str, *, gap: bool = True) -> None:
        """The stream this node relays has a hole, or a new numbering: forget history and
        send the clients away, to reconnect and resume (a reset and a snapshot answer)."""
        if gap:
            self.counts["gaps"] += 1
            # positions too: a resume from before the hole is a gap (a reset), even on
            # a topic whose last update was in the batch that was missed
            hub = self.node.hub
            hub.renumber(hub.sequencer, from_zero=False)
        if self.node.connections:
            log.warning("%s: %s; its clients reconnect and resume", self.node_id, why)
        for connection in list(self.node.connections):
            close = getattr(connection, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close(CloseCode.SERVICE_RESTART, why)

    def _status(self, state: str, reason: str) -> None:
        status = Status(
            FEED, "cluster", state, self.node.supervisor.active or "", reason, self.clock.wall()
        )
        self.publisher.publish([status])

    # -- leadership

    async def _lead_changed(self, lease: Lease | None) -> None:
        publisher = self.publisher
        if lease is not None:
            epoch = new_epoch(self.clock.wall(), f"{lease.token:x}{secrets.token_hex(2)}")
            publisher.lead(epoch, lease.token)
            self.led_since = self.clock.monotonic()
            self._heartbeat()
            self._status("leader", f"node {self.node_id} leads the cluster, epoch {epoch}")
            self._hole("this node leads now, in a new epoch", gap=False)
            self.node.start_feed()
            return
        self.led_since = None
        publisher.mute()  # what the feed still delivers while it stops is nobody's
        try:
            await self.node.stop_feed()
        finally:
            publisher.unmute()
        self._clear_remote()
        if self.bus_up:
            publisher.follow()
        else:
            self._alone()
        self._told = None

    # -- heartbeats and connection counts

    async def _heartbeats(self) -> None:
        period = self.settings.heartbeat_s
        beats = 0
        while True:
            try:
                self._beat(beats)
            except Exception:
                log.exception("a heartbeat failed")
            beats += 1
            await asyncio.sleep(period)

    def _beat(self, beats: int) -> None:
        """One heartbeat: say this node's news, forget silent nodes and what they
        watched, and every ``INTEREST_EVERY`` beats tell the leader again everything
        this node watches (a message lost on the bus, or a leader that forgot this node
        for a while, is mended so)."""
        self._heartbeat()
        for node in self.members.expire(self.clock.monotonic()):
            log.warning("node %s is silent: it left the cluster", node)
            self._left(node)
        for node in [n for n in self._remote if n not in self.members]:
            self._drop_interest(node)
        if beats % INTEREST_EVERY == INTEREST_EVERY - 1:
            self._told = None
            heard = self.leader_heard
            if heard is not None:
                self._tell_interest(heard[0], heard[1], self._leader_resets)

    def _heartbeat(self) -> None:
        hub = self.node.hub
        users: dict[str, int] = {}
        for counter in self._counters:
            users.update(counter.snapshot())
        parts: list[dict[str, int]] = []
        partial = len(users) > PART_ITEMS
        if partial:  # too many to fit: the counts go in Users messages of their own
            counts = list(users.items())
            parts = [dict(counts[i : i + PART_ITEMS]) for i in range(0, len(counts), PART_ITEMS)]
            users = {}
        lease = self.leadership.term.lease
        message = wire.Heartbeat(
            self.node_id,
            self.started,
            leader=self.leader,
            epoch=hub.epoch,
            token=lease.token if lease is not None else 0,
            url=self.url,
            connections=len(self.node.connections),
            subscriptions=hub.subscription_count,
            published=hub.published,
            deliveries=hub.deliveries,
            users=users,
            users_partial=partial,
            figures=self.figures(),
            resets=self.resets,
            bus_connected=self.bus_up,
        )
        self._send("control", wire.encode(message))
        for part in parts:  # after the heartbeat: a new member's counts are kept
            self._send("control", wire.encode(wire.Users(self.node_id, part)))

    def count_users(self, counter: Any) -> None:
        """Share ``counter``'s per-user counts (a ``ConnectionCounter``) with the cluster,
        and cap it by the other nodes' counts too."""
        self._counters.append(counter)
        counter.elsewhere = self._elsewhere
        counter.listener = self._user_changed

    def _elsewhere(self, key: Hashable) -> int:
        return self.members.connections_of(str(key))

    def _user_changed(self, key: Hashable, count: int) -> None:
        self._send("control", wire.encode(wire.Users(self.node_id, {str(key): count})))

    # -- committed writes

    def _resync(self) -> None:
        """This node may have missed what it was told of committed writes (it was off
        the bus, or missed a batch): every ``on_changed`` handler is called with None,
        for everything."""
        for handlers in self._changed.values():
            for handler in handlers:
                try:
                    handler(None)
                except Exception:
                    log.exception("a resync failed")

    def on_changed(self, what: str, handler: Callable[[list[int] | None], Any]) -> None:
        """Call ``handler(ids)`` when another node committed writes to ``what``, and
        ``handler(None)`` when this node may have missed some (reload everything)."""
        self._changed.setdefault(what, []).append(handler)

    def changed(self, what: str, ids: Iterable[int]) -> None:
        """Tell the other nodes that this one committed writes to ``ids`` of ``what``:
        on the control subject (every node), and on the leader's subject too, ahead of
        the update the write publishes, so that the leader holds its own (older) value
        of it back before it stamps the newer one (subjects are not ordered together)."""
        data = wire.encode(wire.Changed(self.node_id, what, list(ids)))
        if self.publisher.mode is Mode.FOLLOW:
            self._send("publish", data)
        self._send("control", data)

    # -- interest

    def _watch(self, topic: Topic) -> None:
        if self.publisher.mode is Mode.FOLLOW:
            message = wire.Interest(self.node_id, add=[str(topic)])
            self._send("control", wire.encode(message))

    def _unwatch(self, topic: Topic) -> None:
        if self.publisher.mode is Mode.FOLLOW:
            message = wire.Interest(self.node_id, remove=[str(topic)])
            self._send("control", wire.encode(message))

    def _tell_interest(self, leader: str, token: int, resets: int) -> None:
        """Send every hooked topic this node watches to a leader it has not told yet."""
        if self.publisher.mode is not Mode.FOLLOW or self._told == (leader, token, resets):
            return
        self._told = (leader, token, resets)
        topics = [str(t) for t in self.node.hub.watched(self._hooked)]
        # in parts that each fit a bus message: the first replaces, the rest add
        for i in range(0, max(1, len(topics)), PART_ITEMS):
            part = topics[i : i + PART_ITEMS]
            message = wire.Interest(self.node_id, add=part, full=i == 0)
            self._send("control", wire.encode(message))

    def _interest(self, message: wire.Interest) -> None:
        if not self.leading:
            return
        held = self._remote.setdefault(message.node, set())
        add = set(message.add)
        remove = set(message.remove)
        if message.full:
            remove |= held - add
            add -= held
        for key in add - held:
            held.add(key)
            self._hold(key, +1)
        for key in remove & held:
            held.discard(key)
            self._hold(key, -1)

    def _hold(self, key: str, delta: int) -> None:
        count = self._holders.get(key, 0) + delta
        channel, _, name = key.partition(".")
        if channel not in self._hooked or not name:
            return
        topic = Topic(channel, name)
        hub = self.node.hub
        if count <= 0:
            self._holders.pop(key, None)
            hub.unsubscribe(self._remote_sub, topic)
        else:
            self._holders[key] = count
            if count == 1 and delta > 0:
                hub.subscribe(self._remote_sub, topic)

    def _drop_interest(self, node: str) -> None:
        for key in self._remote.pop(node, set()):
            self._hold(key, -1)

    def _clear_remote(self) -> None:
        for node in list(self._remote):
            self._drop_interest(node)

    def collector(self) -> Collector:
        """The cluster's Prometheus metrics (register it on the node's registry)."""
        return _ClusterCollector(self)


class _ClusterCollector(Collector):
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def collect(self) -> Iterator[Metric]:
        c = self.cluster
        node = c.node_id
        yield _gauge(
            "tickcast_cluster_leader", "1 while this node holds the upstream lease", node, c.leading
        )
        yield _gauge(
            "tickcast_cluster_nodes",
            "Nodes in the cluster, this one included",
            node,
            1 + len(c.members),
        )
        yield _gauge(
            "tickcast_bus_connected", "1 while the bus engine is reachable", node, c.bus_up
        )
        elections = CounterMetricFamily(
            "tickcast_cluster_elections_won",
            "Times this node took the upstream lease",
            labels=["node"],
        )
        elections.add_metric([node], c.leadership.elections)
        yield elections
        messages = CounterMetricFamily(
            "tickcast_bus_messages",
            "Bus messages by outcome: sent, received, dropped (not sent), unknown (not understood)",
            labels=["node", "outcome"],
        )
        for outcome in ("sent", "received", "dropped", "unknown"):
            messages.add_metric([node, outcome], c.counts[outcome])
        yield messages
        gaps = CounterMetricFamily(
            "tickcast_cluster_gaps",
            "Holes in the leader's stream this node detected (its clients were sent to resume)",
            labels=["node"],
        )
        gaps.add_metric([node], c.counts["gaps"])
        yield gaps


def _user_of(key: str) -> int | None:
    """The user id a connection counter's key names: ``"7"`` (a user's shared count) or
    ``"('/ws/alerts', 7)"`` (a per-path count); None for anything else."""
    text = key.rstrip(")").rpartition(" ")[2] if key.endswith(")") else key
    if text.isascii() and text.isdigit():
        return int(text)
    return None


def _gauge(name: str, doc: str, node: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, doc, labels=["node"])
    gauge.add_metric([node], float(value))
    return gauge
