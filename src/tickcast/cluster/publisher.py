"""ClusterPublisher: the publisher of a node in a cluster; ``Follower``: a follower's
view of the leader's batches.

Rules: pure (its clock injected, the bus reached through ``send``, a plain callback the
driver queues). A node is in one of three modes:

- ``LEAD``: it holds the upstream lease. It stamps (its sequencer, in the epoch it
  opened when it took the lead), fans out on its hub, sends the stamped batch on the
  bus (``Batch``, numbered ``n`` within the epoch, with the lease's fencing token), then
  calls the taps: one sequence per topic, the leader's, for the whole cluster.
- ``FOLLOW``: the leader's batches are fanned out as they were stamped (``apply``), then
  tapped, so every node holds the same history and last values, and a client resumes on
  any node. What a follower publishes itself (a write it took: a transaction's position
  update) is sent to the leader to stamp (``Publish``, numbered), and kept until the
  leader's batch that stamped it says so (``ack``): a new leader gets what the old one
  did not acknowledge, and a follower that takes the lead stamps it itself, so a
  follower's update is never lost to a leader change (it may come twice, never not).
  What a follower's taps publish while a leader's batch is applied is dropped: the
  leader derives the same from the same batch (a signal from a bar), and publishing it
  again would duplicate it.
- ``ALONE``: cut off from the bus. It stamps in an epoch of its own and fans out
  locally (a status saying so), so that nothing it says is mistaken for the leader's
  numbering; back on the bus, the leader's next batch changes the epoch again.

``Follower`` decides what to make of each batch: the next one, a new term, a duplicate,
a deposed leader's late one, or a gap (a batch missed: the bus lost it).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

from tickcast.bus import wire
from tickcast.clock import Clock
from tickcast.hub.hub import Hub
from tickcast.hub.publisher import LocalPublisher
from tickcast.hub.sequencer import Sequencer
from tickcast.model.envelope import Envelope
from tickcast.model.topic import Event
from tickcast.observability.faults import Faults

#: A follower's forwarded updates kept until acknowledged, at most (then the oldest go).
OUTSTANDING = 10_000


class Mode(enum.Enum):
    LEAD = "leader"
    FOLLOW = "follower"
    ALONE = "alone"


class Verdict(enum.Enum):
    NEXT = "next"  # the batch after the last one: apply
    JOINED = "joined"  # the first batch this node sees: apply
    TERM = "term"  # a new leader's first batch: apply (the epoch changes)
    GAP = "gap"  # at least one batch was missed: apply, and signal the hole
    OWN = "own"  # this node's own batch, back from the bus: ignore
    DUPLICATE = "duplicate"  # already applied: ignore
    DEPOSED = "deposed"  # from a leader with an older token: ignore


class Follower:
    """The leader's batches as one node receives them (pure).

    Attributes:
        epoch: the epoch of the last batch applied ("" before the first).
        n: its number.
        token: the fencing token of its leader.
        leader: its leader's node id.
    """

    __slots__ = ("epoch", "leader", "me", "n", "token")

    def __init__(self, me: str) -> None:
        self.me = me
        self.epoch = ""
        self.n = 0
        self.token = 0
        self.leader: str | None = None

    def led(self, epoch: str, token: int) -> None:
        """This node leads now, from batch 0 of ``epoch``."""
        self.epoch, self.n, self.token, self.leader = epoch, 0, token, self.me

    def sent(self, n: int) -> None:
        self.n = n

    def judge(self, node: str, epoch: str, n: int, token: int) -> Verdict:
        if node == self.me:
            return Verdict.OWN
        if token < self.token:
            return Verdict.DEPOSED
        first = not self.epoch
        if epoch != self.epoch:
            verdict = Verdict.JOINED if first else (Verdict.TERM if n == 1 else Verdict.GAP)
        elif n <= self.n:
            return Verdict.DUPLICATE
        else:
            verdict = Verdict.NEXT if n == self.n + 1 else Verdict.GAP
        self.epoch, self.n, self.token, self.leader = epoch, n, token, node
        return verdict


class ClusterPublisher(LocalPublisher):
    """A node's publisher in a cluster (see the module docstring).

    Args:
        node: this node's id.
        codec: payloads to and from the wire.
        send: queues a bus message for sending: ``(kind, data)``, ``kind`` being
            ``"batch"`` (to every node) or ``"publish"`` (to the leader).
    """

    __slots__ = (
        "_ack",
        "_applying",
        "_muted",
        "_outstanding",
        "_sent_id",
        "codec",
        "derived_dropped",
        "follower",
        "forwarded",
        "lost",
        "mode",
        "node",
        "send",
        "token",
        "unreadable",
    )

    def __init__(
        self,
        sequencer: Sequencer,
        hub: Hub,
        faults: Faults,
        *,
        clock: Clock,
        node: str,
        codec: wire.Codec,
        send: Callable[[str, bytes], None],
    ) -> None:
        super().__init__(sequencer, hub, faults, clock=clock)
        self.node = node
        self.codec = codec
        self.send = send
        self.mode = Mode.FOLLOW
        self.follower = Follower(node)
        self.token = 0
        self.forwarded = 0  # events sent to the leader to publish
        self.derived_dropped = 0  # events a follower's taps published while applying
        self._applying = False
        self._muted = False
        self._outstanding: dict[int, list[Event]] = {}  # Publish id -> its events
        self._sent_id = 0
        self._ack: tuple[str, int] | None = None  # (follower, id) being stamped
        self.lost = 0  # forwarded events dropped past OUTSTANDING (a leaderless while)
        self.unreadable = 0  # items of the last batch applied that could not be read

    # -- modes

    def _renumber(self, epoch: str, *, from_zero: bool = True) -> None:
        self.sequencer = Sequencer(epoch, self.hub.channels)
        self.hub.renumber(self.sequencer, from_zero=from_zero)

    def lead(self, epoch: str, token: int) -> None:
        """Take the lead: number from 1 in the new ``epoch``."""
        self._renumber(epoch)
        self.token = token
        self.follower.led(epoch, token)
        self.mode = Mode.LEAD
        pending, self._outstanding = self._outstanding, {}
        for events in pending.values():  # this node's own, never acknowledged
            self.publish(events)

    def follow(self) -> None:
        """Stop leading (or rejoin the bus): publish through the leader from now on. The
        leader's numbering tells whether a batch was missed meanwhile."""
        self.mode = Mode.FOLLOW

    def mute(self) -> None:
        """Stepping down: publish nothing until ``unmute`` (the feed is being stopped,
        and another node may lead already)."""
        self._muted = True
        self.mode = Mode.FOLLOW

    def unmute(self) -> None:
        self._muted = False

    def alone(self, epoch: str) -> None:
        """Cut off from the bus: stamp locally, in ``epoch`` (one of this node's own)."""
        self._renumber(epoch)
        self.mode = Mode.ALONE

    # -- publishing

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        mode = self.mode
        if mode is Mode.FOLLOW:
            if self._applying or self._muted:
                self.derived_dropped += len(events)
                return
            self.forwarded += len(events)
            self._sent_id += 1
            outstanding = self._outstanding
            outstanding[self._sent_id] = list(events)
            while len(outstanding) > OUTSTANDING:
                self.lost += len(outstanding.pop(next(iter(outstanding))))
            self._forward(self._sent_id, events)
            return
        now = self.clock.now()
        envelopes = self.sequencer.stamp(events, now.wall)
        self.hub.fan_out(envelopes, now.mono)
        if mode is Mode.LEAD:
            follower = self.follower
            parts = wire.split(self.codec.items(envelopes), wire.PART_BYTES)
            ack_node, ack_id = self._ack or ("", 0)
            for i, items in enumerate(parts, 1):
                n = follower.n + 1
                follower.sent(n)
                last = i == len(parts)
                batch = wire.Batch(
                    self.node,
                    self.sequencer.epoch,
                    n,
                    items,
                    token=self.token,
                    ack_node=ack_node if last else "",
                    ack_id=ack_id if last else 0,
                )
                self.send("batch", wire.encode(batch))
        self._tap(envelopes)

    def _forward(self, publish_id: int, events: Sequence[Event]) -> None:
        message = wire.Publish(self.node, self.codec.events_out(events), id=publish_id)
        self.send("publish", wire.encode(message))

    def publish_for(self, node: str, publish_id: int, events: Sequence[Event]) -> None:
        """The leader publishes a follower's forwarded events; its batch acknowledges
        them (``ack_node``, ``ack_id``)."""
        self._ack = (node, publish_id)
        try:
            self.publish(events)
        finally:
            self._ack = None

    def _acknowledged(self, upto: int) -> None:
        outstanding = self._outstanding
        for publish_id in [i for i in outstanding if i <= upto]:
            del outstanding[publish_id]

    def _tap(self, envelopes: Sequence[Envelope]) -> None:
        for name, tap in self._taps:
            try:
                tap(envelopes)
            except Exception as exc:  # a service's bug must not stop the feed or the batch
                self.faults.report("tap", exc, tap=name, envelopes=len(envelopes))

    def apply(self, batch: wire.Batch) -> Verdict:
        """A batch from the bus: judged, and fanned out and tapped when it is news."""
        if self.mode is not Mode.FOLLOW:
            # a leader or a node alone fans out nothing of another's; the judge is not
            # told, so that once this node follows, what it did not apply is a gap
            return Verdict.OWN if batch.node == self.node else Verdict.DEPOSED
        if batch.node == self.node:
            return Verdict.OWN
        # decoded before it is judged: a batch that cannot be read is a hole (the next
        # one is a gap), never one counted as applied
        envelopes, self.unreadable = self.codec.readable(batch.epoch, batch.items)
        verdict = self.follower.judge(batch.node, batch.epoch, batch.n, batch.token)
        if verdict in (Verdict.OWN, Verdict.DUPLICATE, Verdict.DEPOSED):
            return verdict
        if batch.ack_node == self.node:
            self._acknowledged(batch.ack_id)
        if verdict is Verdict.TERM or verdict is Verdict.GAP:
            # a new leader, or batches lost: what was not acknowledged goes again
            for publish_id, events in self._outstanding.items():
                self._forward(publish_id, events)
        if batch.epoch != self.sequencer.epoch:
            # a new term numbers from 1; anything else joins a numbering under way
            self._renumber(batch.epoch, from_zero=verdict is Verdict.TERM and batch.n == 1)
        self.hub.fan_out(envelopes, self.clock.monotonic())
        self._applying = True
        try:
            self._tap(envelopes)
        finally:
            self._applying = False
        return verdict


class Gated:
    """A publisher that publishes only while ``primary()``: for what a cluster's leader
    alone computes on a timer (the leaderboard's views, the monitoring streams)."""

    __slots__ = ("primary", "publisher")

    def __init__(self, publisher: LocalPublisher, primary: Callable[[], bool]) -> None:
        self.publisher = publisher
        self.primary = primary

    def publish(self, events: Sequence[Event]) -> None:
        if self.primary():
            self.publisher.publish(events)
