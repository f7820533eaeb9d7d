"""The Polygon.io (Massive) stocks WebSocket messages, as msgspec Structs.

Rules: pure wire shapes, no behaviour. Field names are the wire's single letters, typed as
the vendor's spec (``.polygon/websocket.json``) documents them, and the same Structs
encode the emulator's frames (``tickcast.emulators.polygon``) and decode the adapter's
(``parse.py``), so that both sides of tickcast read one definition. Normalization to
tickcast's model lives in ``parse.py``, never here.

Every server frame is a JSON array of objects tagged by ``ev``; a frame may mix event
types and status messages::

    [{"ev":"status","status":"connected","message":"Connected Successfully"}]
    [{"ev":"T","sym":"AAPL","i":"5096","x":10,"p":161.87,"s":300,"c":[14,41],
      "t":1651684192462,"q":4009402,"z":3},
     {"ev":"Q","sym":"MSFT","bx":4,"bp":114.125,"bs":100,"ax":7,"ap":114.128,"as":160,
      "c":0,"i":[604],"t":1536036818784,"q":50385480,"z":3}]

The same letter means different things per event (Polygon's stocks WebSocket documentation):
``c`` is a list of
conditions in T, one condition in Q and the close price in A/AM; ``z`` is the tape in T/Q
and the average trade size in A/AM; ``i`` is the trade id (a string) in T and a list of
indicators in Q. Each Struct below types its own letters.

Fields that a valid message may lack are optional (``None``, omitted when encoding);
the fields tickcast needs to normalize an event are required, so a message without
them fails to decode (and becomes a dead letter). Sizes and volumes are ``int | float``:
the spec says integers, and a float is accepted rather than dead-lettered.
"""

from __future__ import annotations

import msgspec


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="ev"):
    """Base of every server message; ``ev`` (the tag) names its type."""

    @property
    def ev(self) -> str:
        """The wire's ``ev`` value: "status", "T", "Q", "A", "AM", "LULD" or "NOI"."""
        return str(self.__struct_config__.tag)


class Status(Message, tag="status", frozen=True, kw_only=True):
    """A connection, auth or subscription status, or an error.

    ``status`` is "connected", "auth_success", "auth_failed", "auth_timeout", "success",
    "max_connections", "error", ... (see ``parse.classify``); ``message`` is for humans,
    except that subscription acks carry the param ("subscribed to: T.AAPL").
    """

    status: str
    message: str = ""


class TradeEvent(Message, tag="T", frozen=True, kw_only=True):
    """T: one trade.

    Attributes:
        sym: ticker. i: trade id (a string). x: exchange id. p: price. s: size in shares.
        ds: the size as a decimal string when it is fractional (Massive addition).
        c: trade conditions (a list of ints). t: SIP time (the spec says Unix ms).
        q: sequence number, increasing and unique per ticker, not always consecutive.
        z: tape (1 NYSE, 2 AMEX, 3 Nasdaq). trfi, trft: TRF id and time.
    """

    sym: str
    i: str = ""
    x: int | None = None
    p: float
    s: int | float
    ds: str | None = None
    c: list[int] | None = None
    t: int
    q: int | None = None
    z: int | None = None
    trfi: int | None = None
    trft: int | None = None


class QuoteEvent(Message, tag="Q", frozen=True, kw_only=True):
    """Q: the NBBO.

    Attributes:
        sym: ticker. bx, ax: bid and ask exchange ids. bp, ap: bid and ask prices.
        bs, as_ (wire ``as``): bid and ask sizes, documented as round lots ("a bid size of
            2 means 200 shares"). c: quote condition (one int). i: indicators (list of int).
        t: SIP time (ms). q: sequence number (resets each session). z: tape.
    """

    sym: str
    bx: int | None = None
    bp: float
    bs: int | float
    ax: int | None = None
    ap: float
    as_: int | float = msgspec.field(name="as")
    c: int | None = None
    i: list[int] | None = None
    t: int
    q: int | None = None
    z: int | None = None
    trfi: int | None = None
    trft: int | None = None


class AggregateEvent(Message, frozen=True, kw_only=True):
    """A and AM: an aggregate bar (the base of ``SecondAgg`` and ``MinuteAgg``).

    Attributes:
        sym: ticker. v: volume in the window. av: the day's accumulated volume.
        op: the day's official open. vw: the window's VWAP. o, c, h, l: open, close,
            high, low. a: the day's VWAP. z: the average trade size in the window.
        s, e: window start and end (Unix ms). otc: an OTC ticker (omitted when false).
        dv, dav: volume and accumulated volume as decimal strings (fractional shares).
    """

    sym: str
    v: int | float
    av: int | float | None = None
    op: float | None = None
    vw: float | None = None
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the wire's name
    a: float | None = None
    z: int | float | None = None
    s: int
    e: int
    otc: bool | None = None
    dv: str | None = None
    dav: str | None = None


class SecondAgg(AggregateEvent, tag="A", frozen=True):
    """A: the aggregate of one second."""


class MinuteAgg(AggregateEvent, tag="AM", frozen=True):
    """AM: the aggregate of one minute."""


class LimitUpLimitDown(Message, tag="LULD", frozen=True, kw_only=True):
    """LULD: price bands. The ticker is in ``T``; ``t`` came in µs in the spec's example.

    Attributes:
        T: ticker. h, l: upper and lower band. i: indicators. z: tape. t: time. q: seq.
    """

    T: str
    h: float | None = None
    l: float | None = None  # noqa: E741 - the wire's name
    i: list[int] | None = None
    z: int | None = None
    t: int
    q: int | None = None


class Imbalance(Message, tag="NOI", frozen=True, kw_only=True):
    """NOI: a net order imbalance. The ticker is in ``T``; ``t`` came in ns in the example.

    Attributes:
        T: ticker. t: time. at: auction time (hhmm). a: auction type. i: symbol sequence.
        x: exchange id. o: imbalance quantity. p: paired quantity. b: book clearing price.
    """

    T: str
    t: int
    at: int | None = None
    a: str | None = None
    i: int | None = None
    x: int | None = None
    o: int | float | None = None
    p: int | float | None = None
    b: float | None = None


#: Every message a stocks frame may carry, decoded by its ``ev`` tag.
ServerMessage = (
    Status | TradeEvent | QuoteEvent | SecondAgg | MinuteAgg | LimitUpLimitDown | Imbalance
)

#: The ``ev`` values of ``ServerMessage``.
KNOWN_EVENTS = frozenset({"status", "T", "Q", "A", "AM", "LULD", "NOI"})


class Action(msgspec.Struct, frozen=True):
    """What a client sends: ``{"action":"auth","params":"<KEY>"}``, or ``subscribe`` /
    ``unsubscribe`` with a comma-separated ``EV.SYMBOL`` list (``EV.*`` for all)."""

    action: str
    params: str = ""
