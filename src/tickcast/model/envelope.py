"""Envelope: what the hub publishes and every client message is built from.

``seq`` is per topic, starts at 1 and increases by exactly 1 per published update, so a
client can detect a gap. ``epoch`` names the numbering ``seq`` belongs to: it changes
whenever the numbering restarts (a new process), so ``(epoch, seq)`` is unique across
restarts and ``seq`` alone only within one epoch. It is opaque to clients. ``server_ts``
is the wall-clock time (epoch seconds UTC) at which the update was stamped.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from tickcast.model.topic import Event, Topic


class Envelope(msgspec.Struct, frozen=True, gc=False):
    topic: Topic
    seq: int
    server_ts: float
    payload: Event
    epoch: str = ""


class ResumePoint(NamedTuple):
    """Where a client left a topic: the last ``seq`` it saw, in ``epoch``.

    ``epoch`` None means the current epoch (a bare seq, as clients written before epochs
    send it); a resume across a restart is then undetectable, which is their contract.
    """

    seq: int
    epoch: str | None = None
