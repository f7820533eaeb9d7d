"""Front 5 wire format: hub updates as Socket.IO events, framed once for Engine.IO.

Rules: pure. The hub encodes each update once for every Socket.IO client, as the text
of an Engine.IO MESSAGE carrying a Socket.IO EVENT of the default namespace::

    42["new_signal",{"type":"MA_CROSS","signal":"BUY","price":162.5,...}]
    42["status_update",{"service":"SignalMonitorWorker","status":"active","message":"..."}]
    42["quote",{"symbol":"AAPL","price":187.2,...}]

``4`` is Engine.IO's MESSAGE packet, ``2`` Socket.IO's EVENT; the array is the event's
name and its one argument. Over a WebSocket that text is the whole frame, so the hub's
pre-built frame goes to the socket as it is; over long-polling the same text is the
packet Engine.IO puts in its payload. Signals and worker statuses are in the seed's
shape (``model.signal.encode``); quotes and the other market channels in Front 1's
(``protocols.native.codec``). The front's own replies (``welcome``, ``subscribed``,
``error``, ``reset``) are built here too, as control items.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from tickcast.model.envelope import Envelope
from tickcast.model.market import Bar, BookUpdate, Quote, Status, Trade
from tickcast.model.signal import Signal, WorkerStatus
from tickcast.model.signal import encode as encode_signal
from tickcast.model.topic import Channel
from tickcast.protocols.native import codec as native
from tickcast.protocols.wire import Encoded

WIRE: Final = "socketio"

#: The Engine.IO MESSAGE packet type and Socket.IO EVENT packet type, as a prefix.
EVENT_PREFIX: Final = b"42"

NEW_SIGNAL: Final = "new_signal"
STATUS_UPDATE: Final = "status_update"
WELCOME: Final = "welcome"
SUBSCRIBED: Final = "subscribed"
ERROR: Final = "error"
RESET: Final = "reset"

#: Event names of the channels that are not signals (one word, as Front 1's ``type``).
_CHANNEL_EVENTS: Final[dict[str, str]] = {
    Channel.QUOTES: "quote",
    Channel.TRADES: "trade",
    Channel.BARS: "bar",
    Channel.BOOK: "book",
    Channel.STATUS: "status",
}

_json: Final = msgspec.json.Encoder()


def event_name(channel: str) -> str:
    """The event a channel's updates are emitted as."""
    if channel == Channel.SIGNALS:
        return NEW_SIGNAL
    if channel == Channel.SIGNAL_STATUS:
        return STATUS_UPDATE
    return _CHANNEL_EVENTS.get(channel, channel)


def event(name: str, body: bytes) -> bytes:
    """``42["name",body]``: one Socket.IO event of the default namespace, as the text of
    an Engine.IO message (``body`` is JSON already)."""
    return b"".join((EVENT_PREFIX, b'["', name.encode(), b'",', body, b"]"))


#: Front 1's events, told apart by their exact type (``isinstance`` of a union is slow).
_MARKET: Final = frozenset((Quote, Trade, Bar, BookUpdate, Status))
#: ``42["<event>",`` per channel: what every event of the channel starts with.
_HEADS: dict[str, bytes] = {}
_HEADS_MAX: Final = 4096


def _head(channel: str) -> bytes:
    head = event(event_name(channel), b"")[:-1]
    if len(_HEADS) >= _HEADS_MAX:
        _HEADS.clear()
    _HEADS[channel] = head
    return head


def encode(envelope: Envelope) -> bytes:
    """The hub's codec: one update as its event (see the module docstring)."""
    last = native._last
    if last[0] is envelope:
        # the market feed's body of this update, just encoded (it keeps no other: a
        # signal's, whose body here is the signal's own, is never kept)
        body = last[1]
    elif type(envelope.payload) in _MARKET:
        body = native.encode(envelope)
    elif isinstance(envelope.payload, Signal | WorkerStatus):
        body = encode_signal(envelope.payload)
    else:
        body = native.encode(envelope)
    channel = envelope.topic.channel
    return b"".join((_HEADS.get(channel) or _head(channel), body, b"]"))


def control(name: str, **fields: Any) -> Encoded:
    """A reply of the front's own (``welcome``, ``subscribed``, ``error``, ``reset``)."""
    return Encoded(event(name, _json.encode(fields)), control=True)


CODECS: Final = {WIRE: encode}


_SIGNAL_HEAD: Final = event(NEW_SIGNAL, b'{"type":"')[:-1]


def signal_type(payload: bytes) -> str | None:
    """The strategy type of a ``new_signal`` item built by ``encode`` (a ``Signal``'s first
    field is its type), read without decoding the rest; None for any other event."""
    if not payload.startswith(_SIGNAL_HEAD):
        return None
    start = len(_SIGNAL_HEAD)
    end = payload.find(b'"', start)
    name = payload[start:end]
    if b"\\" in name:  # an escaped character: read the type the long way
        decoded = msgspec.json.decode(payload[2:])
        return str(decoded[1]["type"])
    return name.decode()


def keeps(payload: bytes, types: frozenset[str]) -> bool:
    """Whether a client narrowed to signal ``types`` gets this item (every item that is
    not a signal, and the signals of those types)."""
    kind = signal_type(payload)
    return kind is None or kind in types
