"""SockJS frames, the JSON of the messages they carry, and each transport's framing.

Rules: pure. What the server sends (bytes, UTF-8)::

    o                     open: the first frame of every session
    h                     heartbeat
    a[<msg>,<msg>...]     messages: an array of JSON strings
    c[<code>,"<reason>"]  close: repeated to every later request of the session

A message is JSON-encoded with the characters a client cannot carry escaped as
``\\uXXXX`` (lower-case hex): controls, U+200C-U+200F, U+2028-U+202F, U+2060-U+206F,
U+FFF0-U+FFFF and lone surrogates (the ranges SockJS's own test suite checks; anything
else goes verbatim). ``encode_message`` does it once; ``array_frame`` takes messages so
encoded, so a body published to many sessions is escaped once and joined per frame.

What the client sends is decoded by ``decode_payload`` (``xhr_send``: a JSON array of
strings) and ``decode_websocket`` (the ``websocket`` transport: an array, or one JSON
string; an empty message is nothing). A payload they refuse raises ``PayloadError``
with the words the suite expects: ``Payload expected.`` (empty, or not an array of
strings) and ``Broken JSON encoding.``; an HTTP driver answers 500 with them, a
websocket driver closes with ``BROKEN_FRAMING``.

Each transport wraps a frame its own way (``Transport.wrap``): ``xhr`` and
``xhr_streaming`` add ``\\n``, ``eventsource`` writes ``data: <frame>\\r\\n\\r\\n``,
``websocket`` sends the bare frame as a text message. A streaming response begins with
its ``prelude`` (``xhr_streaming``: 2048 ``h`` and ``\\n``; ``eventsource``: ``\\r\\n``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple, Protocol

__all__ = [
    "ANOTHER_CONNECTION",
    "BROKEN_FRAMING",
    "BROKEN_JSON",
    "EVENTSOURCE",
    "GO_AWAY",
    "HEARTBEAT",
    "INTERRUPTED",
    "OPEN",
    "PAYLOAD_EXPECTED",
    "TRANSPORTS",
    "WEBSOCKET",
    "XHR",
    "XHR_SEND",
    "XHR_STREAMING",
    "Carrier",
    "EscapeMemo",
    "PayloadError",
    "Transport",
    "array_frame",
    "close_frame",
    "decode_payload",
    "decode_websocket",
    "encode_message",
    "message_frame",
]

OPEN: Final = b"o"
HEARTBEAT: Final = b"h"

#: What the server escapes beyond plain JSON (after ``json.dumps``, which already
#: escapes the C0 controls): the ranges a browser or proxy mangles, and lone surrogates
#: (a Python string may hold one, decoded from a client's ``\\ud800``; UTF-8 cannot).
_ESCAPE: Final = re.compile(
    "[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff\ud800-\udfff]"
)


#: What needs any escaping at all (``json.dumps``'s: quote, backslash, the C0 controls;
#: and ``_ESCAPE``'s): text without it is its own JSON string, quotes aside.
_NEEDS: Final = re.compile(
    '["\\\\\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff\ud800-\udfff]'
)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def encode_message(text: str) -> bytes:
    """``text`` as one JSON string (quotes included), escaped as SockJS requires, in
    UTF-8: what ``array_frame`` joins. Encode a shared body once and reuse it. Text
    with nothing to escape is quoted as it is (no ``json.dumps``)."""
    if _NEEDS.search(text) is None:
        return b'"' + text.encode() + b'"'
    quoted = json.dumps(text, ensure_ascii=False)
    if _ESCAPE.search(quoted) is not None:
        quoted = _ESCAPE.sub(_escape, quoted)
    return quoted.encode()


def _escaped_part(data: bytes) -> bytes | None:
    """``data`` escaped as ``encode_message`` escapes it, without the quotes; None when
    it is not UTF-8 on its own (then only the whole message may be decoded, with
    replacement characters). Escaping goes character by character, so the parts of a
    message (a head, a payload), each escaped, join into the message escaped."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    return encode_message(text)[1:-1]


class Carrier(Protocol):
    """What ``EscapeMemo`` escapes: an object carrying one message (an ``Encoded``): its
    ``head`` (empty, or what goes before the payload: a STOMP front's per-subscription
    lines) and ``payload``, and the key of the topic it was published on (empty for a
    reply, which no other session shares)."""

    @property
    def head(self) -> bytes: ...

    @property
    def payload(self) -> bytes: ...

    @property
    def message(self) -> bytes: ...

    @property
    def topic(self) -> str: ...


class EscapeMemo:
    """``encode_message`` once per shared object: what a message published to many
    sessions (one object handed to each) is escaped to, remembered by the object's
    identity. Fan-out hands one update to every subscriber before the next, so the last
    ``limit`` objects are enough; past it the memo starts again.

    A headed message (a STOMP MESSAGE: the subscription's head before the update's
    payload) is escaped by parts: the payload once per update, however many heads it
    goes out under (one headed object per head, all sharing the payload object), and
    each head once (heads are few: one per subscription id and destination). ``misses``
    counts the payloads escaped (the rest were hits).
    """

    __slots__ = ("_heads", "_memo", "_payloads", "limit", "misses")

    def __init__(self, limit: int = 4096) -> None:
        self._memo: dict[int, tuple[object, bytes]] = {}
        #: by the payload object's identity (held, so that its id is not reused)
        self._payloads: dict[int, tuple[bytes, bytes | None]] = {}
        self._heads: dict[bytes, bytes | None] = {}
        self.limit = limit
        self.misses = 0

    def encode(self, shared: Carrier) -> bytes:
        """``shared.message`` (UTF-8) as ``encode_message`` gives it: the one made for
        ``shared`` already, or a new one."""
        memo = self._memo
        hit = memo.get(id(shared))
        if hit is not None and hit[0] is shared:
            return hit[1]
        encoded = self._compose(shared)
        if len(memo) >= self.limit:
            memo.clear()
        memo[id(shared)] = (shared, encoded)  # holding it keeps its id from being reused
        return encoded

    def _compose(self, shared: Carrier) -> bytes:
        payload = shared.payload
        payloads = self._payloads
        known = payloads.get(id(payload))
        if known is not None and known[0] is payload:
            body = known[1]
        else:
            self.misses += 1
            body = _escaped_part(payload)
            if len(payloads) >= self.limit:
                payloads.clear()
            payloads[id(payload)] = (payload, body)
        head = shared.head
        if body is not None and head:
            heads = self._heads
            if head in heads:
                escaped = heads[head]
            else:
                escaped = _escaped_part(head)
                if len(heads) >= self.limit:
                    heads.clear()
                heads[head] = escaped
            if escaped is not None:
                return b'"' + escaped + body + b'"'
        elif body is not None:
            return b'"' + body + b'"'
        # a part that is not UTF-8 by itself: the whole message, decoded with replacements
        return encode_message(shared.message.decode(errors="replace"))

    def encode_batch(self, batch: Iterable[Carrier]) -> list[bytes]:
        """Each of ``batch`` as ``encode_message`` gives it: a published one (with a
        ``topic``) through the memo (``encode``), a reply as it comes."""
        memo = self._memo
        out: list[bytes] = []
        for shared in batch:
            if not shared.topic:
                out.append(encode_message(shared.message.decode(errors="replace")))
                continue
            hit = memo.get(id(shared))
            out.append(hit[1] if hit is not None and hit[0] is shared else self.encode(shared))
        return out

    def __len__(self) -> int:
        return len(self._memo)


def array_frame(encoded: Sequence[bytes]) -> bytes:
    """The ``a`` frame of messages already encoded by ``encode_message``."""
    return b"a[" + b",".join(encoded) + b"]"


def message_frame(messages: Iterable[str]) -> bytes:
    """The ``a`` frame of plain messages (each encoded here)."""
    return array_frame([encode_message(m) for m in messages])


def close_frame(code: int, reason: str) -> bytes:
    """The ``c`` frame: ``c[<code>,"<reason>"]``."""
    return b"c[%d,%s]" % (code, encode_message(reason))


#: The application closed the session (the suite's ``/close`` service says this).
GO_AWAY: Final = close_frame(3000, "Go away!")
#: To a second receiving request while one is attached.
ANOTHER_CONNECTION: Final = close_frame(2010, "Another connection still open")
#: The receiving request went away mid-response (sockjs-node forgets the session
#: instead, which the suite accepts too; ``SockJSSession.abort`` does that).
INTERRUPTED: Final = close_frame(1002, "Connection interrupted")

#: The websocket close (code, reason) for a message that is not JSON.
BROKEN_FRAMING: Final = (3000, "Broken framing.")

PAYLOAD_EXPECTED: Final = "Payload expected."
BROKEN_JSON: Final = "Broken JSON encoding."


class PayloadError(ValueError):
    """A client payload refused; ``message`` is what the client is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise PayloadError(BROKEN_JSON) from None


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise PayloadError(PAYLOAD_EXPECTED)
    return value


def decode_payload(body: bytes | str) -> list[str]:
    """The messages of an ``xhr_send`` body: a JSON array of strings (``[]`` is none).

    Raises:
        PayloadError: ``Payload expected.`` for an empty body or JSON that is not an
            array of strings; ``Broken JSON encoding.`` for text that is not JSON (or
            bytes that are not UTF-8).
    """
    text = _text(body)
    if not text:
        raise PayloadError(PAYLOAD_EXPECTED)
    try:
        value = json.loads(text)
    except ValueError:
        raise PayloadError(BROKEN_JSON) from None
    return _strings(value)


def decode_websocket(data: bytes | str) -> list[str]:
    """The messages of one ``websocket`` transport message: an array of strings, or
    one JSON string; an empty message (and ``[]``) is none.

    Raises:
        PayloadError: ``Broken JSON encoding.`` for anything else; the driver closes the
            websocket with ``BROKEN_FRAMING``.
    """
    text = _text(data)
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        raise PayloadError(BROKEN_JSON) from None
    if isinstance(value, str):
        return [value]
    try:
        return _strings(value)
    except PayloadError:
        raise PayloadError(BROKEN_JSON) from None


class Transport(NamedTuple):
    """One SockJS transport, as data.

    Attributes:
        name: the last path segment (``xhr``, ``xhr_streaming``, ...).
        method: the HTTP method that uses it (OPTIONS aside).
        receiving: it carries frames to the client (``xhr_send`` only posts).
        streaming: many frames per response (else one frame, then the response ends).
        limited: the response ends after ``response_limit`` bytes of frames.
        prelude: written first on every response of this transport.
        head: before each frame.
        tail: after each frame.
        content_type: of its HTTP response (None for the websocket).
    """

    name: str
    method: str
    receiving: bool
    streaming: bool
    limited: bool
    prelude: bytes
    head: bytes
    tail: bytes
    content_type: str | None

    def wrap(self, frame: bytes) -> bytes:
        """``frame`` as this transport writes it."""
        head, tail = self.head, self.tail
        if head:
            return head + frame + tail
        return frame + tail if tail else frame


_JS: Final = "application/javascript; charset=UTF-8"

XHR: Final = Transport("xhr", "POST", True, False, False, b"", b"", b"\n", _JS)
XHR_STREAMING: Final = Transport(
    "xhr_streaming", "POST", True, True, True, b"h" * 2048 + b"\n", b"", b"\n", _JS
)
EVENTSOURCE: Final = Transport(
    "eventsource",
    "GET",
    True,
    True,
    True,
    b"\r\n",
    b"data: ",
    b"\r\n\r\n",
    "text/event-stream; charset=UTF-8",
)
WEBSOCKET: Final = Transport("websocket", "GET", True, True, False, b"", b"", b"", None)
XHR_SEND: Final = Transport(
    "xhr_send", "POST", False, False, False, b"", b"", b"", "text/plain; charset=UTF-8"
)

#: The transports served, by path segment (no jsonp, htmlfile or iframe ones).
TRANSPORTS: Final = {t.name: t for t in (XHR, XHR_STREAMING, EVENTSOURCE, WEBSOCKET, XHR_SEND)}
