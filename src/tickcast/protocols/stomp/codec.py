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

The per-user streams have destinations and bodies of their own, the analytics front
end's (money as JSON numbers, exactly as stored; times ISO 8601 UTC with milliseconds)::

    user_positions.<user>  destination:/topic/position-update
        {"id": {"portfolioId": 1, "symbol": "AAPL"}, "holdings": 10,
         "totalInvested": 1500.5, "realizedPnl": 0,
         "createdAt": "2024-01-15T10:30:00.000Z", "updatedAt": "2024-01-15T10:30:00.000Z"}
        one position: that object; none or several (a snapshot): a JSON array of them
    user_pnl.<user>        destination:/topic/unrealized-pnl
        [{"symbol": "AAPL", "overallUnrealised_Pnl": 400.2, "portfolio_id": 1}, ...]
        always an array (the positions that changed, or all of them: a snapshot)

Their ``message-id`` and ``seq`` count on the user's own topic.

A trading signal's body is the signal itself, in the shape every front gives it
(``model.signal.encode``), and its destination is its own topic's,
``/topic/signals.<SYMBOL>``, whether it reaches a subscription to that destination or
one to every signal (``ALL_SIGNALS``, ``/topic/signals``: the payload is shared by both)::

    {"type": "MA_CROSS", "signal": "BUY", "price": 162.5, "symbol": "AAPL",
     "timeframe": "1m", "timestamp": "...", "id": "...", "source": "engine"}

A resume the front cannot replay (the session's ``answer(ResumeGap)``) becomes, for
every subscription of that topic, a MESSAGE that carries no update but says so
(``reset_payload``; its head is the subscription's)::

    MESSAGE
    subscription:<id>
    destination:/topic/trades.AAPL
    message-id:reset-<n>
    reset:<history_gap | epoch_changed>
    requested:<seq the client named>
    seq:<the newest seq on the topic>
    epoch:<the current epoch>           (only when the client named one)
    content-type:application/json
    content-length:...

    {"type":"reset","topic":"trades.AAPL","seq":...,"requested":...,"reason":...,"epoch":...}

and the current value (if any) follows as an ordinary MESSAGE. A client that reads only
the body sees a JSON object too, with ``"type": "reset"``.
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Any, Final

import msgspec

from tickcast.model.envelope import Envelope
from tickcast.model.portfolio import PositionState, UserPnl, UserPositions
from tickcast.model.signal import Signal
from tickcast.model.signal import encode as encode_signal
from tickcast.model.topic import Channel, Topic
from tickcast.protocols.base import ResumeGap
from tickcast.protocols.native import codec as native
from tickcast.protocols.native.timefmt import iso_ms
from tickcast.protocols.stomp.frames import escape, message_payload

__all__ = [
    "ALL_SIGNALS",
    "POSITION_UPDATE",
    "PREFIX",
    "UNREALIZED_PNL",
    "USER_DESTINATIONS",
    "WIRE",
    "destination",
    "encode",
    "message_id",
    "reset_payload",
    "topic_of",
]

WIRE: Final = "stomp"
#: Every destination tickcast serves starts with it.
PREFIX: Final = "/topic/"
POSITION_UPDATE: Final = "/topic/position-update"
UNREALIZED_PNL: Final = "/topic/unrealized-pnl"
#: The per-user destinations: one name for every user, each reading their own topic.
USER_DESTINATIONS: Final = {
    POSITION_UPDATE: Channel.USER_POSITIONS,
    UNREALIZED_PNL: Channel.USER_PNL,
}
#: Every trading signal, whatever its symbol (a channel-wide subscription).
ALL_SIGNALS: Final = "/topic/signals"
_DESTINATION_OF: Final[dict[str, str]] = {
    str(channel): name for name, channel in USER_DESTINATIONS.items()
}

_encode_json = msgspec.json.Encoder(decimal_format="number").encode
#: Payloads whose body is their own (``body_of``), not Front 1's object.
_OWN_BODY: Final[frozenset[type]] = frozenset({UserPositions, UserPnl, Signal})
_ONE = Decimal(1)
#: Enough digits for any stored amount: the default context's 28 would round one.
_EXACT = Context(prec=100)


def destination(topic: Topic) -> str:
    """``/topic/<channel>.<key>``; a per-user topic's shared name."""
    shared = _DESTINATION_OF.get(topic.channel)
    return shared if shared is not None else f"{PREFIX}{topic.channel}.{topic.key}"


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


def _money(value: Decimal) -> Decimal:
    """The exact amount without trailing zeros (``22248.95``, not ``22248.9500000000``)."""
    normal = value.normalize(_EXACT)
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent <= 0:
        return normal
    return normal.quantize(_ONE, context=_EXACT)


def _position(p: PositionState) -> dict[str, Any]:
    return {
        "id": {"portfolioId": p.portfolio_id, "symbol": p.symbol},
        "holdings": _money(p.quantity),
        "totalInvested": _money(p.cost_basis),
        "realizedPnl": _money(p.realized_pnl),
        "createdAt": iso_ms(p.created_at),
        "updatedAt": iso_ms(p.updated_at),
    }


def body_of(payload: object) -> bytes:
    """The JSON body of an update: a per-user stream's own shape, a signal's, else
    Front 1's."""
    if type(payload) is Signal:
        return encode_signal(payload)
    if type(payload) is UserPositions:
        items = [_position(p) for p in payload.positions]
        return _encode_json(items[0] if len(items) == 1 else items)
    if type(payload) is UserPnl:
        return _encode_json(
            [
                {
                    "symbol": p.symbol,
                    "overallUnrealised_Pnl": _money(p.unrealized_pnl),
                    "portfolio_id": p.portfolio_id,
                }
                for p in payload.positions
            ]
        )
    raise TypeError(type(payload).__name__)


_encode_reset = msgspec.json.Encoder().encode


def reset_payload(gap: ResumeGap, destination: str, message_id: str) -> bytes:
    """The shared part of a reset MESSAGE (see the module docstring) to ``destination``."""
    fields: dict[str, object] = {
        "type": "reset",
        "topic": str(gap.topic),
        "seq": gap.latest,
        "requested": gap.requested,
        "reason": gap.reason,
    }
    extra = [("reset", gap.reason), ("requested", str(gap.requested)), ("seq", str(gap.latest))]
    if gap.epoch is not None:
        fields["epoch"] = gap.epoch
        extra.append(("epoch", gap.epoch))
    return message_payload(destination, message_id, _encode_reset(fields), extra=extra)


#: Per topic: the epoch they were made for, the MESSAGE payload's bytes up to the
#: message-id's seq, and by the body's length the bytes from there to the seq header's
#: value (``_heads``, ``_middle``). Bounded: every cached part counts, and past
#: ``_PARTS_MAX`` all of them go (one topic's bodies take a few lengths, so this is about
#: the number of topics).
_Heads = tuple[str, bytes, bytes, dict[int, bytes]]
_HEADS: dict[Topic, _Heads] = {}
_PARTS_MAX: Final = 65_536
_parts = 0
_CONTENT: Final = b"\ncontent-type:application/json\ncontent-length:"


def _heads(topic: Topic, epoch: str) -> _Heads:
    """``frames.message_payload``'s lines for an update of ``topic`` in ``epoch``, cut
    where the seq goes: up to the message-id's seq, and from the body's length to the
    seq header's value (escaping a text is escaping its characters one by one, so the
    escaped parts joined are the joined text escaped)."""
    global _parts
    ident = f"{topic}-{epoch}-" if epoch else f"{topic}-"
    head = f"destination:{escape(destination(topic))}\nmessage-id:{escape(ident)}"
    tail = f"\nepoch:{escape(epoch)}\nseq:" if epoch else "\nseq:"
    made: _Heads = (epoch, head.encode(), tail.encode(), {})
    if _parts >= _PARTS_MAX:
        _HEADS.clear()
        _parts = 0
    _parts += 1
    _HEADS[topic] = made
    return made


def _middle(made: _Heads, length: int) -> bytes:
    """The bytes between the message-id's seq and the seq header's value, for a body of
    ``length`` octets: the content type, the length, the epoch header, the seq's name."""
    global _parts
    middle = b"%b%d%b" % (_CONTENT, length, made[2])
    if _parts >= _PARTS_MAX:
        _HEADS.clear()
        _parts = 0
    _parts += 1
    made[3][length] = middle
    return middle


def encode(envelope: Envelope) -> bytes:
    """The shared MESSAGE payload of an update (see the module docstring): the bytes of
    ``frames.message_payload(destination(topic), message_id(envelope), body,
    extra=[("epoch", epoch), ("seq", seq)])``, the parts that stay the same for a topic
    (and a body's length) made once, the seq formatted once and the parts joined."""
    last = native._last
    if last[0] is envelope:
        # the market feed's body of this update, just encoded (it keeps no other: a
        # signal's, whose body here is the signal's own, is never kept)
        body = last[1]
    elif type(envelope.payload) in _OWN_BODY:
        body = body_of(envelope.payload)
    else:
        body = native.encode(envelope)
    epoch = envelope.epoch
    made = _HEADS.get(envelope.topic)
    if made is None or made[0] != epoch:
        made = _heads(envelope.topic, epoch)
    length = len(body)
    middle = made[3].get(length) or _middle(made, length)
    seq = b"%d" % envelope.seq
    return b"".join((made[1], seq, middle, seq, b"\n\n", body, b"\0"))
