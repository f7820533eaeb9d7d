"""The leaderboard's wire (``/ws/updates``, ``/ws/top``, ``/ws/around`` and the polling
routes): JSON messages ``{"type": ..., "data": ...}``.

Rules: pure. Money and percentages go as JSON numbers (``Decimal`` written as a number,
exactly its digits: ``12.5``, never ``"12.5"``). An entry:

    {"rank": 1, "portfolio_id": 7, "portfolio_name": "Growth", "owner_name": "alice",
     "return_percent": 12.5, "total_value": 11250.0, "daily_change": 120.5,
     "daily_change_percent": 1.08, "previous_rank": 2}

Messages:

- ``BoardMessage`` snapshot: ``{"type": "snapshot", "data": [entries]}``; update:
  ``{"type": "update", "data": {"moved": [...], "entered": [...], "updated": [...],
  "left": [portfolio ids]}}``;
- ``TopView``: ``{"type": "top-performers", "data": [entries]}``;
- ``AroundView``: ``{"type": "snapshot" | "update", "data": [entries]}``;
- an error: ``{"type": "error", "data": {"message": "..."}}``.

A board snapshot of 1,000 entries is some 200 kB: ``encode`` keeps the last few
payloads' bytes by identity (``Memo``), so the one snapshot object the service holds
until the board changes is encoded once, whoever connects in between (and the polling
routes share the same bytes).
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any, Final

import msgspec

from tickcast.model.envelope import Envelope
from tickcast.model.leaderboard import AroundView, BoardMessage, RankedEntry, TopView
from tickcast.protocols.wire import Codec

#: The wire's name in the hub's codec table.
WIRE: Final = "leaderboard"

_encoder = msgspec.json.Encoder(decimal_format="number")

Payload = BoardMessage | TopView | AroundView


class EntryOut(msgspec.Struct, frozen=True, gc=False):
    """One entry as the wire shows it (field order is the documented one)."""

    rank: int
    portfolio_id: int
    portfolio_name: str
    owner_name: str
    return_percent: Decimal
    total_value: Decimal
    daily_change: Decimal
    daily_change_percent: Decimal
    previous_rank: int | None


class Message(msgspec.Struct, frozen=True, gc=False):
    type: str
    data: Any


class Changed(msgspec.Struct, frozen=True, gc=False):
    moved: list[EntryOut]
    entered: list[EntryOut]
    updated: list[EntryOut]
    left: list[int]


class ErrorData(msgspec.Struct, frozen=True, gc=False):
    message: str


def entry_out(ranked: RankedEntry) -> EntryOut:
    e = ranked.entry
    return EntryOut(
        ranked.rank,
        e.portfolio_id,
        e.portfolio_name,
        e.owner_name,
        e.return_percent,
        e.total_value,
        e.daily_change,
        e.daily_change_percent,
        ranked.previous_rank,
    )


def _entries(entries: tuple[RankedEntry, ...]) -> list[EntryOut]:
    return [entry_out(e) for e in entries]


def message(payload: Payload) -> Message:
    """The wire message of a payload (before encoding)."""
    if isinstance(payload, TopView):
        return Message("top-performers", _entries(payload.entries))
    if isinstance(payload, AroundView):
        return Message(payload.kind, _entries(payload.entries))
    if payload.kind == "snapshot":
        return Message("snapshot", _entries(payload.entries))
    changed = Changed(
        _entries(payload.moved),
        _entries(payload.entered),
        _entries(payload.updated),
        list(payload.left),
    )
    return Message("update", changed)


class Memo:
    """The bytes of the last ``size`` payloads encoded, by identity (a payload is
    frozen: the same object always encodes to the same bytes)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._held: OrderedDict[int, tuple[object, bytes]] = OrderedDict()

    def encode(self, payload: Payload) -> bytes:
        key = id(payload)
        held = self._held.get(key)
        if held is not None and held[0] is payload:
            self._held.move_to_end(key)
            return held[1]
        data = _encoder.encode(message(payload))
        self._held[key] = (payload, data)
        if len(self._held) > self.size:
            self._held.popitem(last=False)
        return data


_memo = Memo()


def encode(payload: Payload) -> bytes:
    """A payload's message, as JSON bytes (shared for the same payload object)."""
    return _memo.encode(payload)


def encode_envelope(envelope: Envelope) -> bytes:
    """The hub's codec: the envelope's payload as its message (the wire carries no
    sequence number: a leaderboard client starts from a snapshot)."""
    payload = envelope.payload
    if not isinstance(payload, BoardMessage | TopView | AroundView):
        raise TypeError(f"not a leaderboard payload: {type(payload).__name__}")
    return encode(payload)


def error(text: str) -> bytes:
    """The leaderboard sockets' error message."""
    return _encoder.encode(Message("error", ErrorData(text)))


CODECS: Final[dict[str, Codec]] = {WIRE: encode_envelope}
