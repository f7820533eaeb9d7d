"""What goes on the wire: ``Encoded`` items (payload, and its frame built once) and the
``Codec`` that makes a payload from an envelope.

Rules: pure. The hub encodes each update once per wire format and hands the same
``Encoded`` to every subscriber of that wire; the protocol sessions build their replies
(pongs, errors, acknowledgements) as ``Encoded`` too, so a reply and a published update
are the same kind of item in a client's outbox. This module sits in the wire layer
(``protocols``) so that sessions build items without importing the hub.

A per-subscriber ``head`` may precede the shared body (a STOMP ``subscription`` header,
say): ``headed`` gives an item with its own head and frame around the same payload
object, so the body is still encoded once. ``topic`` names the topic a published item
belongs to (the hub stamps it; a reply has none), so that a connection that heads its
items per subscription knows whose they are.
"""

from __future__ import annotations

from collections.abc import Callable

from tickcast.model.envelope import Envelope
from tickcast.protocols.wsframe import OP_BINARY, OP_TEXT, frame_header

#: Encodes an envelope into one wire format's payload (UTF-8 JSON text for now).
Codec = Callable[[Envelope], bytes]


class Encoded:
    """One update in one wire format: the payload, and its WebSocket frame built once.

    ``control`` marks replies (pong, subscribed, errors) that must stay a frame of their
    own, never an element of an array frame. ``ts`` is the event time (epoch seconds)
    for latency metrics; 0 for control replies. ``head`` (empty unless ``headed``) goes
    on the wire before ``payload``, in the same message; ``size`` is that message's
    length in bytes (what the item costs in an outbox, counted once per item rather than
    once per subscriber). ``topic`` is the key of the topic the hub published it on
    (``str(Topic)``), empty for a reply.
    """

    __slots__ = ("_frame", "binary", "control", "head", "payload", "size", "topic", "ts")

    def __init__(
        self,
        payload: bytes,
        *,
        control: bool = False,
        ts: float = 0.0,
        binary: bool = False,
        head: bytes = b"",
        topic: str = "",
    ) -> None:
        self.payload = payload
        self.control = control
        self.ts = ts
        self.binary = binary
        self.head = head
        self.topic = topic
        self.size = len(head) + len(payload) if head else len(payload)
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        """The complete WebSocket frame (text, or binary when ``binary``): a header,
        then ``head`` and ``payload`` as one message."""
        frame = self._frame
        if frame is None:
            opcode = OP_BINARY if self.binary else OP_TEXT
            head = self.head
            if head:
                size = len(head) + len(self.payload)
                frame = self._frame = b"".join((frame_header(size, opcode), head, self.payload))
            else:
                frame = self._frame = frame_header(len(self.payload), opcode) + self.payload
        return frame

    @property
    def message(self) -> bytes:
        """The message's bytes without a frame header: ``head`` then ``payload`` (for a
        socket that frames, or an array frame's element)."""
        head = self.head
        return head + self.payload if head else self.payload

    def headed(self, head: bytes) -> Encoded:
        """This item with its own ``head`` (and frame) before the same payload object."""
        return Encoded(
            self.payload,
            control=self.control,
            ts=self.ts,
            binary=self.binary,
            head=head,
            topic=self.topic,
        )

    def __repr__(self) -> str:
        if self.head:
            return f"Encoded({self.payload!r}, head={self.head!r})"
        return f"Encoded({self.payload!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Encoded) and other.payload == self.payload and other.head == self.head
        )

    def __hash__(self) -> int:
        return hash((self.head, self.payload)) if self.head else hash(self.payload)
