"""Front 3's wire format for the hub: an envelope as the shared part of a STOMP MESSAGE.

Rules: pure. ``encode(envelope)`` is a ``protocols.wire.Codec``: it returns the MESSAGE's
payload (``frames.message_payload``: the headers every subscriber shares, the blank
line, the body and the NUL), built once per update; the front puts each subscription's
head before it (``Encoded.headed(head)``, the head from ``StompSession`` or
``frames.message_head``), so the body is encoded once and each STOMP subscription id
costs one small head.

A market update's body is Front 1's JSON object (``protocols.native.codec.encode``: the
same shape on every front; ``seq`` and ``epoch`` travel as headers here), with::

    destination:/topic/<channel>.<key>      e.g. /topic/trades.AAPL, /topic/status.FEED
    message-id:<channel>.<key>-<epoch>-<seq>  unique per update (the same for every
                                              subscriber of one update)
    content-type:application/json
    content-length:<octets of the body>
    epoch:<epoch>                           the numbering seq counts in (omitted if none)
    seq:<seq>                               per topic, +1 per update: a SUBSCRIBE's
                                            resume-epoch / resume-seq name one

Portfolio destinations (``/topic/position-update``, ``/topic/unrealized-pnl``) have
bodies of their own and are not encoded here.
"""

from __future__ import annotations

from typing import Final

from tickcast.model.envelope import Envelope
from tickcast.model.topic import Topic
from tickcast.protocols.native import codec as native
from tickcast.protocols.stomp.frames import message_payload

__all__ = ["PREFIX", "WIRE", "destination", "encode", "message_id", "topic_of"]

WIRE: Final = "stomp"
#: Every destination tickcast serves starts with it.
PREFIX: Final = "/topic/"


def destination(topic: Topic) -> str:
    """``/topic/<channel>.<key>``."""
    return f"{PREFIX}{topic.channel}.{topic.key}"


def topic_of(name: str) -> Topic | None:
    """The topic a ``/topic/<channel>.<key>`` destination names, by its syntax only
    (whether the channel exists, the key is known and the client may read it is the
    front's to decide); None when it is not of that form."""
    if not name.startswith(PREFIX):
        return None
    channel, dot, key = name[len(PREFIX) :].partition(".")
    if not dot or not channel or not key:
        return None
    return Topic(channel, key)


def message_id(envelope: Envelope) -> str:
    """Unique per update: its topic, epoch and seq."""
    if envelope.epoch:
        return f"{envelope.topic}-{envelope.epoch}-{envelope.seq}"
    return f"{envelope.topic}-{envelope.seq}"


def encode(envelope: Envelope) -> bytes:
    """The shared MESSAGE payload of a market update (see the module docstring)."""
    body = native.encode(envelope)
    extra = [("seq", str(envelope.seq))]
    if envelope.epoch:
        extra.insert(0, ("epoch", envelope.epoch))
    return message_payload(destination(envelope.topic), message_id(envelope), body, extra=extra)
