"""Envelope: what the hub publishes and every client message is built from.

``seq`` is per topic, starts at 1 and increases by exactly 1 per published update, so a
client can detect a gap. ``server_ts`` is the wall-clock time (epoch seconds UTC) at
which the update entered the hub.
"""

from __future__ import annotations

import msgspec

from tickcast.model.topic import Event, Topic


class Envelope(msgspec.Struct, frozen=True, gc=False):
    topic: Topic
    seq: int
    server_ts: float
    payload: Event
