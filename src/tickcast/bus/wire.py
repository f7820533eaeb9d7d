"""What nodes say to each other on the bus: typed, versioned messages (msgpack).

Rules: pure. Every message is a msgspec struct tagged by its kind (``"k"``) with a
version (``"v"``). A rolling upgrade, one node at a time, works because a node
ignores what it does not know: a field added later has a default (old nodes drop it,
new nodes fill it in), and a kind it does not know, or a major version above its own,
is not an error but ``None`` from ``decode`` (counted by the caller). A change that old
nodes could not ignore takes a new kind, never a new meaning for an old field.

Envelopes travel in a ``Batch`` as they were stamped by the leader: topic, seq, server
time and epoch, and the payload encoded once with msgpack; a receiver decodes each
payload with its channel's type from the channel registry (``model/channel.py``), so a
new channel needs nothing here. A batch too long for one bus message is split, each
part numbered in the same sequence (``n``), so that a receiver detects a lost part.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from tickcast.model.channel import Channels
from tickcast.model.envelope import Envelope
from tickcast.model.topic import Event, Topic

#: This code's version of the bus messages; a message of a higher one is ignored.
VERSION = 1

#: The most payload bytes in one batch message (a longer batch is split).
PART_BYTES = 256 * 1024

#: An envelope on the wire: channel, key, seq, server time, the payload (msgpack).
Item = tuple[str, str, int, float, msgspec.Raw]


class Batch(msgspec.Struct, frozen=True, tag="batch", tag_field="k"):
    """Envelopes the leader stamped, in order. ``n`` numbers the leader's batches
    within ``epoch`` from 1, so that a follower detects one it missed."""

    node: str
    epoch: str
    n: int
    items: list[Item]
    token: int = 0
    ack_node: str = ""  # the follower whose forwarded events this batch stamped
    ack_id: int = 0  # ... up to its Publish of this id
    v: int = VERSION


class Publish(msgspec.Struct, frozen=True, tag="publish", tag_field="k"):
    """Events a follower produced (a write it took), for the leader to stamp and
    publish: ``(channel, payload)`` each."""

    node: str
    items: list[tuple[str, msgspec.Raw]]
    id: int = 0  # numbers a follower's Publishes: the leader's batch acknowledges it
    v: int = VERSION


class Heartbeat(msgspec.Struct, frozen=True, tag="heartbeat", tag_field="k"):
    """A node's news, every ``heartbeat_s``: who it is, who it thinks leads, and its
    figures (summed for the cluster's statistics)."""

    node: str
    started: float
    leader: str | None = None
    epoch: str = ""
    token: int = 0
    url: str = ""
    connections: int = 0
    subscriptions: int = 0
    published: int = 0
    deliveries: int = 0
    users: dict[str, int] = {}
    users_partial: bool = False  # too many: the counts came in Users messages instead
    figures: dict[str, int] = {}
    bus_connected: bool = True
    resets: int = 0  # times it may have lost what others told it (a leader resets then)
    v: int = VERSION


class Users(msgspec.Struct, frozen=True, tag="users", tag_field="k"):
    """A node's connection count of some users, sent as soon as it changes (the
    heartbeat repeats every count), so that a cap holds across the cluster."""

    node: str
    counts: dict[str, int]
    v: int = VERSION


class Interest(msgspec.Struct, frozen=True, tag="interest", tag_field="k"):
    """Topics a node's clients started (``add``) or stopped (``remove``) watching, on
    channels whose producer computes only what is watched. ``full``: ``add`` is every
    such topic the node watches (sent to a new leader), replacing what it said before."""

    node: str
    add: list[str] = []
    remove: list[str] = []
    full: bool = False
    v: int = VERSION


class Changed(msgspec.Struct, frozen=True, tag="changed", tag_field="k"):
    """A node committed a write: every node reloads ``ids`` of ``what`` (``"portfolio"``)
    from the database."""

    node: str
    what: str
    ids: list[int]
    v: int = VERSION


class Leaving(msgspec.Struct, frozen=True, tag="leaving", tag_field="k"):
    """A node is stopping (it released the lease if it held it)."""

    node: str
    v: int = VERSION


Message = Batch | Publish | Heartbeat | Users | Interest | Changed | Leaving

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> Message | None:
    """The message in ``data``; None for what this version does not know (another
    kind, a higher version). Anything else malformed raises ``msgspec.DecodeError``."""
    try:
        message = _decoder.decode(data)
    except msgspec.ValidationError:
        return None  # an unknown kind or a field of a newer shape
    return None if message.v > VERSION else message


class Codec:
    """Envelopes and events to and from the wire, with the payload types of ``channels``."""

    __slots__ = ("_channels", "_decoders")

    def __init__(self, channels: Channels) -> None:
        self._channels = channels
        self._decoders: dict[str, msgspec.msgpack.Decoder[object]] = {}

    def _decoder(self, channel: str) -> msgspec.msgpack.Decoder[object]:
        decoder = self._decoders.get(channel)
        if decoder is None:
            spec = self._channels.get(channel)  # KeyError: a channel this node lacks
            decoder = self._decoders[channel] = msgspec.msgpack.Decoder(spec.payload)
        return decoder

    def items(self, envelopes: Iterable[Envelope]) -> list[Item]:
        encode_ = _encoder.encode
        raw = msgspec.Raw
        return [
            (e.topic.channel, e.topic.symbol, e.seq, e.server_ts, raw(encode_(e.payload)))
            for e in envelopes
        ]

    def envelopes(self, epoch: str, items: Sequence[Item]) -> list[Envelope]:
        out: list[Envelope] = []
        for channel, key, seq, ts, payload in items:
            event: Event = self._decoder(channel).decode(payload)  # type: ignore[assignment]
            out.append(Envelope(Topic(channel, key), seq, ts, event, epoch))
        return out

    def readable(self, epoch: str, items: Sequence[Item]) -> tuple[list[Envelope], int]:
        """``envelopes``, without the items this node cannot read (a channel it does not
        have, a payload of another shape), and how many those were. A batch of items
        none of which can be read raises (``msgspec.DecodeError``): it is a hole."""
        out: list[Envelope] = []
        skipped = 0
        for channel, key, seq, ts, payload in items:
            try:
                event: Event = self._decoder(channel).decode(payload)  # type: ignore[assignment]
            except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
                skipped += 1
                continue
            out.append(Envelope(Topic(channel, key), seq, ts, event, epoch))
        if skipped and not out:
            raise msgspec.DecodeError(f"none of the batch's {skipped} items can be read")
        return out, skipped

    def events_out(self, events: Iterable[Event]) -> list[tuple[str, msgspec.Raw]]:
        of = self._channels.of
        return [(of(e).name, msgspec.Raw(_encoder.encode(e))) for e in events]

    def events_in(self, items: Sequence[tuple[str, msgspec.Raw]]) -> list[Event]:
        return [self._decoder(c).decode(p) for c, p in items]  # type: ignore[misc]


def split(items: list[Item], limit: int) -> list[list[Item]]:
    """``items`` in runs whose payloads total at most ``limit`` bytes (one item alone
    may exceed it: it goes in a run of its own)."""
    runs: list[list[Item]] = []
    run: list[Item] = []
    size = 0
    for item in items:
        n = len(item[4]) + len(item[1]) + 32
        if run and size + n > limit:
            runs.append(run)
            run, size = [], 0
        run.append(item)
        size += n
    if run:
        runs.append(run)
    return runs
