"""Latency stamps on the market feed (the ``stamps=1`` option): where an update's time went.

Rules: pure. The mechanism is ``protocols/stamps.py``'s, shared with the realtime
envelope: a stamped data message ends with one more field, ``stamps``::

    {"symbol": "AAPL", ..., "source": "simulator",
     "stamps": {"event_us": 1764957491123000, "recv_us": 1764957491123412,
                "send_us": 1764957491125108}}

- ``event_us``: the event's own time (the provider's timestamp; ``timestamp`` at
  microsecond precision, as the provider gave it; a trading signal's ``timestamp``;
  left out for an event without one);
- ``recv_us``: the envelope's server time: the wall time the publisher read once per
  upstream batch, when it stamped the batch's sequence numbers, in the same event-loop
  step that read the batch off the provider's socket and parsed it (no queue between);
- ``send_us``: when this connection's socket write of the message happened (one clock
  read per write; every message of one write carries the same value).

The first two are the same for every subscriber, so they are encoded once per update
with the rest of the message, by the stamped wires' codecs (``market+stamps``,
``market+seq+stamps``); the payload then ends with ``"recv_us":R}}``. The third is per
connection: ``stamped_payloads`` splices ``,"send_us":S`` before the last two bytes at
write time (``transport.connection``'s ``_write``, for a connection on a stamped wire
only), a slice and a concatenation per message, then frames them. Clients on the other
wires get the same bytes (the same frame objects) as before.
"""

from __future__ import annotations

from typing import Final

from tickcast.protocols import stamps as _stamps
from tickcast.protocols.native import codec
from tickcast.protocols.stamps import (
    FIELD,
    event_time,
    micros,
    stamp,
    stamped,
    stamped_codecs,
    stamped_payloads,
    with_stamps,
)
from tickcast.protocols.wire import Codec

__all__ = [
    "CODECS",
    "FIELD",
    "STAMPED_WIRES",
    "WIRE_SEQ_STAMPS",
    "WIRE_STAMPS",
    "encode_seq_stamped",
    "encode_stamped",
    "event_time",
    "micros",
    "stamp",
    "stamped_payloads",
    "wire",
    "with_stamps",
]

WIRE_STAMPS: Final = _stamps.stamped_wire(codec.WIRE)  # "market+stamps"
WIRE_SEQ_STAMPS: Final = _stamps.stamped_wire(codec.WIRE_SEQ)  # "market+seq+stamps"
#: The wires whose data messages carry ``stamps`` and are completed per connection.
STAMPED_WIRES: Final = frozenset((WIRE_STAMPS, WIRE_SEQ_STAMPS))


def wire(*, seq: bool, stamps: bool) -> str:
    """The native wire for these options."""
    if stamps:
        return WIRE_SEQ_STAMPS if seq else WIRE_STAMPS
    return codec.WIRE_SEQ if seq else codec.WIRE


#: The plain Front 1 message with its event and receive stamps.
encode_stamped: Final = stamped(codec.encode)
#: The ``seq=1`` message with its event and receive stamps.
encode_seq_stamped: Final = stamped(codec.encode_with_seq)

#: Every native wire: the front registers these with the hub.
CODECS: Final[dict[str, Codec]] = {
    **stamped_codecs(codec.CODECS),
    WIRE_STAMPS: encode_stamped,
    WIRE_SEQ_STAMPS: encode_seq_stamped,
}
