"""Sequencer: stamps events with their topic, ``(epoch, seq)`` and the server time.

Rules: pure. Sequencing is apart from fan-out: the hub fans out envelopes that are
already stamped, so that what one stamper numbered can be fanned out elsewhere. A
sequencer numbers each topic from 1 within its one epoch and never restarts numbering:
a restart is a new ``Sequencer`` with a new epoch (``new_epoch``, made by the composition
root from the wall time and a random token), so that ``(epoch, seq)`` names one update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tickcast.model.channel import Channels, builtin
from tickcast.model.envelope import Envelope
from tickcast.model.topic import Event, Topic

#: The epoch of a hub built without a sequencer (tests and tools; a process makes its own).
DEFAULT_EPOCH = "0"


def new_epoch(wall: float, token: str) -> str:
    """An epoch that no earlier process had: the wall time in ms (hex), then ``token``.

    Opaque to clients, who echo it when they resume. ``token`` (random) tells apart two
    processes started in the same millisecond.
    """
    return f"{int(wall * 1000):x}{token}"


class Sequencer:
    """Per-topic sequence numbers within one epoch.

    Args:
        epoch: the numbering's name; non-empty.
        channels: the channel registry that names each event's topic (the built-in
            channels when omitted).
    """

    __slots__ = ("_by_type", "channels", "epoch")

    def __init__(self, epoch: str, channels: Channels | None = None) -> None:
        if not epoch:
            raise ValueError("an epoch must be a non-empty string")
        self.epoch = epoch
        self.channels = builtin() if channels is None else channels
        # payload type -> (its channel's name, its key, key -> [the one Topic of that
        # key, the last seq stamped on it]): a topic is built once, not per event, and
        # its count sits beside it (no dict keyed by Topic to hash per event). A payload
        # type's channel never changes once registered, so this grows as topics do.
        self._by_type: dict[type, tuple[str, Callable[[Any], str], dict[str, list[Any]]]] = {}

    def stamp(self, events: Iterable[Event], server_ts: float) -> list[Envelope]:
        """One envelope per event, in order: its topic's next seq, this epoch, ``server_ts``."""
        epoch = self.epoch
        stamped: list[Envelope] = []
        append = stamped.append
        by_type = self._by_type
        for event in events:
            kind = by_type.get(type(event))
            if kind is None:
                kind = self._kind(event)
            key = kind[1](event)
            counted = kind[2].get(key)
            if counted is None:
                counted = kind[2][key] = [Topic(kind[0], key), 0]
            seq = counted[1] = counted[1] + 1
            append(Envelope(counted[0], seq, server_ts, event, epoch))
        return stamped

    def _kind(self, event: Event) -> tuple[str, Callable[[Any], str], dict[str, list[Any]]]:
        """What names the topics of ``event``'s type (KeyError when no channel carries it)."""
        spec = self.channels.of(event)
        kind = self._by_type[type(event)] = (spec.name, spec.key, {})
        return kind

    def latest(self, topic: Topic) -> int:
        """The last seq stamped on ``topic`` (0 when none)."""
        channels = self.channels
        if topic.channel not in channels:
            return 0
        kind = self._by_type.get(channels.get(topic.channel).payload)
        counted = None if kind is None else kind[2].get(topic.symbol)
        return 0 if counted is None else int(counted[1])
