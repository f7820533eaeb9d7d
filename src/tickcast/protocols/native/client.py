"""The client's side of Front 1: what a client sends, and what it makes of what it gets.

Rules: pure. The data messages are read with the server codec's own wire structs
(``codec._Quote``, ``codec._Trade``, ...), so a field added there is read here too; the
control messages (``subscribed``, ``unsubscribed``, ``pong``, ``heartbeat``, ``error``,
``reset``) are the session's, and a slow client's ``degraded`` and ``resumed`` the
front's (``codec.degraded``, ``codec.resumed``). A frame is one JSON object or, with
``frames=array``, a JSON array of them; ``decode`` returns the messages of one frame,
in order.

A data message becomes an ``Update``: the normalized payload (``model.market``'s
``Quote``, ``Trade``, ``Bar``, ``BookUpdate``, ``Status``, or a ``Signal``) with its
``topic``, ``seq`` and ``epoch`` (empty and 0 without the ``seq=1`` option) and its
latency ``Stamps`` (None without the ``stamps=1`` option). Timestamps
become epoch seconds. A message of a type this version does not know is an ``Unknown``
(a newer server may send more; a client skips it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgspec

from tickcast.errors import InvalidMessage
from tickcast.model.market import FEED, Bar, BookUpdate, Quote, Status, Trade
from tickcast.model.signal import Signal
from tickcast.protocols.native import codec
from tickcast.protocols.native.timefmt import parse_iso_ms

Payload = Quote | Trade | Bar | BookUpdate | Status | Signal


class Stamps(NamedTuple):
    """A data message's latency stamps (the ``stamps=1`` option), integer microseconds
    since the Unix epoch: ``event_us`` the event's own time (None when it has none),
    ``recv_us`` when the gateway received (stamped) it, ``send_us`` when the gateway
    wrote it to this connection; ``arrived_us`` is the client's own clock when the frame
    arrived (not on the wire: filled in by ``tickcast.client``, None from ``decode``)."""

    event_us: int | None
    recv_us: int
    send_us: int
    arrived_us: int | None = None

    @property
    def upstream_us(self) -> int | None:
        """From the event to the gateway's receipt (the provider and the network to it;
        includes the two clocks' difference)."""
        return None if self.event_us is None else self.recv_us - self.event_us

    @property
    def gateway_us(self) -> int:
        """From the gateway's receipt to its write to this connection: fan-out, the
        batching window, queueing behind a slow socket."""
        return self.send_us - self.recv_us

    @property
    def downstream_us(self) -> int | None:
        """From the gateway's write to the client's receipt (the network, the client's
        own backlog; includes the two clocks' difference)."""
        return None if self.arrived_us is None else self.arrived_us - self.send_us


class Update(NamedTuple):
    """A data message: ``payload`` on ``topic`` (``"trades.AAPL"``) at ``(epoch, seq)``;
    ``stamps`` when the connection asked for them (``stamps=1``), else None."""

    payload: Payload
    topic: str = ""
    seq: int = 0
    epoch: str = ""
    stamps: Stamps | None = None


class Subscribed(NamedTuple):
    """``{"type": "subscribed"}``; with ``?seq=1``, ``positions`` maps each topic the
    request added to its ``(epoch, seq)`` at that moment (empty from a server without)."""

    symbols: tuple[str, ...]
    positions: dict[str, tuple[str, int]] = {}  # noqa: RUF012 (never mutated)


class Unsubscribed(NamedTuple):
    symbols: tuple[str, ...]


class Pong(NamedTuple):
    ts: float


class Heartbeat(NamedTuple):
    ts: float


class ServerError(NamedTuple):
    """``{"type": "error"}``: a request was refused; the connection stays open."""

    message: str


class Reset(NamedTuple):
    """The server could not resume ``topic`` from ``requested``: the stream starts over
    at ``seq`` in ``epoch`` (a snapshot follows when the topic has one).

    ``reason`` is ``history_gap`` or ``epoch_changed`` (the server's), ``gap`` when a
    client saw a reliable stream's seq jump (its own verdict), or ``refused`` when the
    server refused to resubscribe the topic after a reconnect (the stream ended: the
    client dropped it).
    """

    topic: str
    seq: int
    requested: int
    reason: str
    epoch: str | None = None


class Degraded(NamedTuple):
    """``{"type": "degraded"}``: the server suspended ``topic`` (a reliable stream) because
    this client fell behind (``reason`` ``slow_consumer``). ``seq`` is the last update of
    the topic it was sent before the hole (0 when none was), in ``epoch`` (empty without
    one); nothing of the topic follows until its ``Resumed``."""

    topic: str
    seq: int
    epoch: str = ""
    reason: str = ""


class Resumed(NamedTuple):
    """``{"type": "resumed"}``: a suspended ``topic`` is live again. What it missed was
    replayed (``replayed`` updates, the last at ``seq``), or, where the server's history
    no longer reached back, a ``Reset`` came before it and the stream starts over at
    ``seq``; live updates follow from ``seq + 1``. ``how`` says which: ``replay`` or
    ``reset``, as the client saw it (``client.streams`` fills it in: the wire does not
    say; ``decode`` gives ``replay``)."""

    topic: str
    seq: int
    epoch: str = ""
    replayed: int = 0
    how: str = "replay"


class Unknown(NamedTuple):
    message: Any


ServerMessage = (
    Update
    | Subscribed
    | Unsubscribed
    | Pong
    | Heartbeat
    | ServerError
    | Reset
    | Degraded
    | Resumed
    | Unknown
)

_decode_json: Final = msgspec.json.Decoder().decode
_encode_json: Final = msgspec.json.Encoder().encode


def _number(value: float | int) -> float:
    return float(value)


def _quote(d: dict[str, Any]) -> Update:
    w = msgspec.convert(d, codec._Quote)
    payload = Quote(
        w.symbol,
        w.bid,
        w.ask,
        0.0,
        0.0,
        w.price,
        _number(w.volume),
        parse_iso_ms(w.timestamp),
        w.source,
    )
    return Update(payload, w.topic, w.seq, w.epoch)


def _trade(d: dict[str, Any]) -> Update:
    w = msgspec.convert(d, codec._Trade)
    payload = Trade(
        w.symbol, w.price, _number(w.size), parse_iso_ms(w.timestamp), w.source, w.trade_id
    )
    return Update(payload, w.topic, w.seq, w.epoch)


def _bar(d: dict[str, Any]) -> Update:
    w = msgspec.convert(d, codec._Bar)
    start = parse_iso_ms(w.start)
    payload = Bar(
        w.symbol,
        w.open,
        w.high,
        w.low,
        w.close,
        _number(w.volume),
        start,
        parse_iso_ms(w.timestamp),
        w.source,
    )
    return Update(payload, w.topic, w.seq, w.epoch)


def _book(d: dict[str, Any]) -> Update:
    w = msgspec.convert(d, codec._Book)
    bids = tuple((float(p), float(s)) for p, s in w.bids)
    asks = tuple((float(p), float(s)) for p, s in w.asks)
    ts = parse_iso_ms(w.timestamp)
    payload = BookUpdate(w.symbol, bids, asks, w.snapshot, ts, w.source, w.sequence)
    return Update(payload, w.topic, w.seq, w.epoch)


def _status(d: dict[str, Any]) -> Update:
    w = msgspec.convert(d, codec._Status)
    ts = parse_iso_ms(w.timestamp)
    payload = Status(FEED, w.provider, w.state, w.active, w.reason, ts, w.source)
    return Update(payload, w.topic, w.seq, w.epoch)


def _signal(d: dict[str, Any]) -> Update:
    w = msgspec.convert(d, codec._Signal)
    return Update(w.data, w.topic, w.seq, w.epoch)


def _symbols(d: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(s) for s in d.get("symbols") or ())


def _subscribed(d: dict[str, Any]) -> Subscribed:
    raw = d.get("positions")
    positions: dict[str, tuple[str, int]] = {}
    if isinstance(raw, dict):
        for topic, p in raw.items():
            if isinstance(p, dict) and isinstance(p.get("epoch"), str):
                seq = p.get("seq")
                if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
                    positions[str(topic)] = (p["epoch"], seq)
    return Subscribed(_symbols(d), positions)


def _ts(d: dict[str, Any]) -> float:
    text = d.get("timestamp")
    return parse_iso_ms(text) if isinstance(text, str) else 0.0


def _reset(d: dict[str, Any]) -> Reset:
    epoch = d.get("epoch")
    return Reset(
        str(d["topic"]),
        int(d["seq"]),
        int(d.get("requested", 0)),
        str(d.get("reason", "")),
        str(epoch) if epoch is not None else None,
    )


def _seq(d: dict[str, Any]) -> int:
    seq = d["seq"]
    if type(seq) is not int or seq < 0:
        raise ValueError("'seq' must be a non-negative integer")
    return seq


def _degraded(d: dict[str, Any]) -> Degraded:
    return Degraded(str(d["topic"]), _seq(d), str(d.get("epoch") or ""), str(d.get("reason", "")))


def _resumed(d: dict[str, Any]) -> Resumed:
    replayed = d.get("replayed", 0)
    if type(replayed) is not int or replayed < 0:
        raise ValueError("'replayed' must be a non-negative integer")
    return Resumed(str(d["topic"]), _seq(d), str(d.get("epoch") or ""), replayed)


_BY_TYPE: Final[dict[str, Callable[[dict[str, Any]], ServerMessage]]] = {
    "trade": _trade,
    "bar": _bar,
    "book": _book,
    "status": _status,
    "signal": _signal,
    "subscribed": _subscribed,
    "unsubscribed": lambda d: Unsubscribed(_symbols(d)),
    "pong": lambda d: Pong(_ts(d)),
    "heartbeat": lambda d: Heartbeat(_ts(d)),
    "error": lambda d: ServerError(str(d.get("message", ""))),
    "reset": _reset,
    "degraded": _degraded,
    "resumed": _resumed,
}


def _stamps(raw: Any) -> Stamps:
    """``{"event_us": E, "recv_us": R, "send_us": S}`` (``event_us`` may be absent)."""
    if not isinstance(raw, dict):
        raise ValueError("'stamps' must be an object")
    event, recv, send = raw.get("event_us"), raw.get("recv_us"), raw.get("send_us")
    if type(recv) is not int or type(send) is not int or type(event) not in (int, type(None)):
        raise ValueError("'stamps' must hold integer microseconds")
    return Stamps(event, recv, send)


def _message(d: Any) -> ServerMessage:
    if not isinstance(d, dict):
        return Unknown(d)
    kind = d.get("type")
    message: ServerMessage
    if kind is None:
        message = _quote(d) if "price" in d else Unknown(d)
    else:
        read = _BY_TYPE.get(kind)
        message = Unknown(d) if read is None else read(d)
    if "stamps" in d and type(message) is Update:
        return message._replace(stamps=_stamps(d["stamps"]))
    return message


def decode(frame: str | bytes) -> list[ServerMessage]:
    """The messages of one text frame, in order.

    Raises:
        InvalidMessage: the frame is not JSON, or a known message lacks a field or has
            one of the wrong type.
    """
    try:
        raw = _decode_json(frame)
        if isinstance(raw, list):
            return [_message(d) for d in raw]
        return [_message(raw)]
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, ValueError) as exc:
        raise InvalidMessage(f"unreadable server message: {exc}") from None


# -- what a client sends


def subscribe(
    symbols: Sequence[str],
    channels: Sequence[str] | None = None,
    resume: Mapping[str, tuple[str, int]] | None = None,
) -> str:
    """``{"action": "subscribe", ...}``; ``resume`` maps a topic to its ``(epoch, seq)``."""
    message: dict[str, Any] = {"action": "subscribe", "symbols": list(symbols)}
    if channels is not None:
        message["channels"] = list(channels)
    if resume:
        # an epoch as it came; a bare seq from a server without epochs
        message["resume"] = {t: {"epoch": e, "seq": s} if e else s for t, (e, s) in resume.items()}
    return _encode_json(message).decode()


def unsubscribe(symbols: Iterable[str], channels: Sequence[str] | None = None) -> str:
    message: dict[str, Any] = {"action": "unsubscribe", "symbols": list(symbols)}
    if channels is not None:
        message["channels"] = list(channels)
    return _encode_json(message).decode()


def ping() -> str:
    return '{"action":"ping"}'
