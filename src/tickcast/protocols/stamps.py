"""Latency stamps, for any front whose messages are JSON objects (the ``stamps=1`` option).

Rules: pure. A stamped data message ends with one more field, ``stamps``, three wall
times in integer microseconds since the Unix epoch (UTC)::

    {..., "stamps": {"event_us": 1764957491123000, "recv_us": 1764957491123412,
                     "send_us": 1764957491125108}}

- ``event_us``: the event's own time (its ``ts``: the provider's timestamp at
  microsecond precision, or when the gateway computed a value of its own, an asset's
  figures or a portfolio's; a trading signal's ``timestamp``; left out for an event
  without one);
- ``recv_us``: the envelope's server time: the wall time the publisher read once per
  batch, when it stamped the batch's sequence numbers;
- ``send_us``: when this connection's socket write of the message happened (one clock
  read per write; every message of one write carries the same value).

The first two are the same for every subscriber, so they are encoded once per update
with the rest of the message, by a stamped wire's codec (``stamped(codec)``, registered
under the plain wire's name plus ``+stamps``, ``stamped_codecs``; or a codec of its own
that encodes a message with a last ``Stamps`` field in one go, ``stamps_of``: the same
bytes); the payload then ends with ``"recv_us":R}}``. The third is per connection:
``stamped_payloads`` splices ``,"send_us":S`` before the last two bytes at write time
(``transport.connection``'s ``_write``, for a connection on a stamped wire only:
``is_stamped``), a slice and a concatenation per message, then frames them. Clients on
the other wires get the same bytes (the same frame objects) as before. The market feed
(``protocols/native/stamps``) and the realtime envelope (``protocols/envelope/codec``)
use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

from tickcast.model.envelope import Envelope
from tickcast.model.signal import Signal
from tickcast.protocols.native.timefmt import parse_iso_ms
from tickcast.protocols.wire import Codec, Encoded

#: A stamped wire's name is its plain wire's name with this suffix.
SUFFIX: Final = "+stamps"

#: The field's name, and the pieces of a stamped message's tail.
FIELD: Final = "stamps"
_OPEN: Final = b',"stamps":{'
_EVENT: Final = b'"event_us":'
_RECV: Final = b'"recv_us":'
_SEND: Final = b',"send_us":'
_CLOSE: Final = b"}}"
#: The longest tail ``"recv_us":<int>}}`` of a shared stamped payload (17 digits and a
#: sign cover any epoch microsecond there is), where ``stamp`` looks for its mark.
_TAIL: Final = len(_RECV) + 18 + len(_CLOSE)


def stamped_wire(wire: str) -> str:
    """The stamped wire of a plain one (``realtime`` -> ``realtime+stamps``)."""
    return wire + SUFFIX


def is_stamped(wire: str) -> bool:
    """Whether a connection on ``wire`` gets its messages' ``send_us`` at write time."""
    return wire.endswith(SUFFIX)


def micros(ts: float) -> int:
    """Epoch seconds as integer microseconds."""
    return round(ts * 1_000_000)


def event_time(event: object) -> float | None:
    """The event's own time, epoch seconds: its ``ts``; for a trading signal (whose
    ``ts`` is 0, no upstream tick) the time its ``timestamp`` names. None when it has
    none that can be read."""
    if isinstance(event, Signal):
        try:
            return parse_iso_ms(event.timestamp)
        except ValueError:
            return None
    ts: float = getattr(event, "ts", 0.0)
    return ts or None


#: The last receive stamp's tail, ``"recv_us":R}}``, and the server time it is for: every
#: envelope of a publisher's batch has the same ``server_ts``, so it is made once per
#: batch, not per update (``round`` alone costs about 0.1 us). One tuple, read and
#: replaced whole.
_recv: tuple[float, bytes] = (math.nan, b"")
#: The last event time and its ``micros``: a tick's book update, trade and quote share
#: their ``ts``.
_event: tuple[float, int] = (math.nan, 0)
_float = float


def with_stamps(payload: bytes, envelope: Envelope) -> bytes:
    """A message (one JSON object) with ``"stamps": {"event_us", "recv_us"}`` as its last
    field (``event_us`` left out when the event has no time), still open for
    ``send_us``'s splice (``stamp``). The bytes of
    ``payload[:-1] + b',"stamps":{"event_us":E,"recv_us":R}}'``, the receive tail kept
    per server time and the event's microseconds per event time."""
    global _recv, _event
    server_ts = envelope.server_ts
    recv = _recv
    if recv[0] != server_ts:  # a NaN never equals: made (and raising) each time
        recv = _recv = (server_ts, b"%b%d%b" % (_RECV, round(server_ts * 1_000_000), _CLOSE))
    event = envelope.payload
    ts = event_time(event) if type(event) is Signal else (getattr(event, "ts", 0.0) or None)
    if ts is None:
        return b"%b%b%b" % (payload[:-1], _OPEN, recv[1])
    last = _event
    if last[0] == ts and type(ts) is _float:
        us = last[1]
    else:
        us = round(ts * 1_000_000)  # micros(ts), inline
        _event = (ts, us)
    return b"%b%b%b%d,%b" % (payload[:-1], _OPEN, _EVENT, us, recv[1])


class Stamps(msgspec.Struct, gc=False):
    """``{"event_us": E, "recv_us": R}``, for a codec that encodes a message with its
    stamps as its last field in one go (``stamps_of``), rather than splicing them into
    the plain message (``with_stamps``): the same bytes."""

    event_us: int
    recv_us: int


#: The last server time and its ``micros`` (``stamps_of``'s, as ``_recv`` is the splice's).
_recv_us: tuple[float, int] = (math.nan, 0)


def stamps_of(ts: float, server_ts: float) -> Stamps:
    """The stamps of an update whose event time is ``ts`` (one with a time: ``ts`` not
    zero, not a signal's) and whose envelope's is ``server_ts``; both microseconds kept
    per time, as ``with_stamps`` keeps them."""
    global _recv_us, _event
    recv = _recv_us
    if recv[0] != server_ts:
        recv = _recv_us = (server_ts, round(server_ts * 1_000_000))
    last = _event
    if last[0] == ts and type(ts) is _float:
        us = last[1]
    else:
        us = round(ts * 1_000_000)
        _event = (ts, us)
    return Stamps(us, recv[1])


def stamped(encode: Codec) -> Codec:
    """The codec of ``encode``'s stamped wire: its message with the event and receive
    stamps."""

    def encode_stamped(envelope: Envelope) -> bytes:
        return with_stamps(encode(envelope), envelope)

    encode_stamped.__qualname__ = encode_stamped.__name__ = f"stamped_{encode.__name__}"
    return encode_stamped


def stamped_codecs(codecs: Mapping[str, Codec]) -> dict[str, Codec]:
    """``codecs`` and, beside each, its stamped wire (``stamped_wire``, ``stamped``)."""
    out = dict(codecs)
    for name, encode in codecs.items():
        out[stamped_wire(name)] = stamped(encode)
    return out


def stamp(payload: bytes, send: bytes) -> bytes:
    """``payload`` with ``"send_us": send`` (digits) added to its ``stamps``; a payload
    that is not a stamped wire's data message (a control reply) is returned as it is."""
    if payload.endswith(_CLOSE) and payload.find(_RECV, max(0, len(payload) - _TAIL)) >= 0:
        return payload[:-2] + _SEND + send + _CLOSE
    return payload


def stamped_payloads(items: Iterable[Encoded], wall: float, *, array: bool) -> list[bytes]:
    """The messages of one write, ``send_us`` = ``wall`` spliced into every data message
    (a control reply, or anything that is not a stamped wire's data message, as it is);
    with ``array``, runs of data messages joined in JSON arrays, each control reply a
    message of its own (as ``transport.connection`` groups the unstamped ones)."""
    tail = b"%b%d%b" % (_SEND, micros(wall), _CLOSE)
    at = len(_CLOSE)
    out: list[bytes] = []
    run: list[bytes] = out if not array else []
    for item in items:
        if item.control or item.head:
            if array and run:
                out.append(b"[" + b",".join(run) + b"]")
                run = []
            out.append(item.message)
            continue
        payload = item.payload
        if payload.endswith(_CLOSE) and payload.find(_RECV, len(payload) - _TAIL) >= 0:
            payload = payload[:-at] + tail
        run.append(payload)
    if array and run:
        out.append(b"[" + b",".join(run) + b"]")
    return out
