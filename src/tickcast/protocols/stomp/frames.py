"""STOMP 1.2 frames: an incremental parser and the serializers, as bytes.

Rules: pure. ``FrameParser.feed(data)`` takes whatever a transport delivered (a
WebSocket message, a SockJS string, part of either) and returns the complete frames it
now holds; the rest waits for the next call. What it accepts:

- ``COMMAND EOL *(name:value EOL) EOL body NUL *(EOL)``, an EOL being LF or CR LF;
  several frames in one call and one frame over several calls;
- bare EOLs between frames: heart-beats (``heartbeats`` counts them);
- a ``content-length`` body: exactly that many octets (NUL included), then the NUL;
  without one, the body ends at the first NUL;
- header names and values escaped (``\\r``, ``\\n``, ``\\c``, ``\\\\``) and decoded, except
  on CONNECT, STOMP and CONNECTED, and except when ``unescape`` is off (STOMP 1.0); an
  undefined escape is a ``MalformedFrame``; a header line is split at its first colon
  (a 1.0 client's unescaped CONNECT values may hold colons);
- a repeated header: the first one wins (``Frame.headers`` holds the first);
- ``Limits``: the frame's size, its header count and a header line's length; a breach
  is a ``FrameTooLarge``, raised as soon as it is certain (a client cannot make the
  parser buffer more than ``max_frame_bytes`` plus one read).

After an error the parser is spent: the session answers ERROR and closes.

With ``hold_after_connect``, ``feed`` stops after the first CONNECT or STOMP frame and
keeps the rest buffered (``held``): the frames after it are parsed by the next ``feed``
(``b""`` will do), once the caller has set ``unescape`` for the version CONNECT
negotiated. The hold applies once.

Serializers: ``encode_frame`` (any frame, headers escaped unless told), and the MESSAGE
in two parts (``message_head`` + ``message_payload``) so that a published update's body
and common headers are built once and each subscriber gets only its own head::

    head     MESSAGE EOL subscription:<id> EOL [ack:<value> EOL]
    payload  destination:... EOL message-id:... EOL content-type:... EOL
             content-length:N EOL [epoch:... EOL seq:... EOL] EOL body NUL

The command line must come first and the header order is free, so head + payload is one
valid frame (``protocols.wire.Encoded.headed`` puts them in one WebSocket message).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, NamedTuple

from tickcast.closecodes import CloseCode
from tickcast.errors import InvalidMessage, LimitExceeded

__all__ = [
    "CLIENT_COMMANDS",
    "DEFAULT_LIMITS",
    "MAX_MESSAGE_HEADER",
    "Frame",
    "FrameParser",
    "FrameTooLarge",
    "Limits",
    "MalformedFrame",
    "StompFrameError",
    "encode_frame",
    "error_frame",
    "escape",
    "message_head",
    "message_payload",
    "unescape",
]

CLIENT_COMMANDS: Final = frozenset(
    {
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "ACK",
        "NACK",
        "DISCONNECT",
        "CONNECT",
        "STOMP",
    }
)
#: Frames whose headers are never escaped (backward compatibility with STOMP 1.0).
UNESCAPED_COMMANDS: Final = frozenset({"CONNECT", "STOMP", "CONNECTED"})


class StompFrameError(Exception):
    """Base of the parser's errors: ``code`` is the close code the session closes with;
    ``frames`` the frames the same ``feed`` call completed before the error (to be
    handled first: a RECEIPT owed before the ERROR)."""

    code: CloseCode = CloseCode.PROTOCOL_ERROR
    frames: list[Frame]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.frames = []


class MalformedFrame(StompFrameError, InvalidMessage):
    """Not a STOMP frame (no command, a header without a colon, a bad escape, no NUL
    after a ``content-length`` body, not UTF-8)."""

    code = CloseCode.PROTOCOL_ERROR


class FrameTooLarge(StompFrameError, LimitExceeded):
    """Over a ``Limits`` bound."""

    code = CloseCode.MESSAGE_TOO_BIG


class Limits(NamedTuple):
    """What one client frame may hold.

    Attributes:
        max_frame_bytes: the whole frame (command, headers and body); a client sends
            small frames (SUBSCRIBE, ACK...), so the default is modest.
        max_headers: header lines in one frame.
        max_header_line: octets of one header line (or the command line), EOL excluded.
    """

    max_frame_bytes: int = 64 * 1024
    max_headers: int = 64
    max_header_line: int = 4096


#: The default limits.
DEFAULT_LIMITS: Final = Limits()


class Frame(NamedTuple):
    """One frame: ``headers`` maps each name to its first value (decoded)."""

    command: str
    headers: dict[str, str]
    body: bytes = b""


# -- escaping

_DECODE: Final = {"r": "\r", "n": "\n", "c": ":", "\\": "\\"}
_ENCODE: Final = str.maketrans({"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"})


def unescape(text: str) -> str:
    """Decode a header name or value; an undefined escape is a ``MalformedFrame``."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        decoded = _DECODE.get(text[i + 1 : i + 2])
        if decoded is None:
            raise MalformedFrame(f"undefined escape sequence {text[i : i + 2]!r} in a header")
        out.append(decoded)
        i += 2
    return "".join(out)


def escape(text: str) -> str:
    """Encode a header name or value (the reverse of ``unescape``)."""
    return text.translate(_ENCODE)


# -- parsing


class _Head(NamedTuple):
    """A frame whose command and headers are read; ``end`` is where its body starts."""

    command: str
    headers: dict[str, str]
    end: int
    length: int | None


class FrameParser:
    """Frames out of a byte stream, incrementally (see the module docstring).

    Attributes:
        limits: the bounds of one frame.
        unescape: decode header escapes (STOMP 1.1 and 1.2); off for 1.0.
        heartbeats: bare EOLs seen between frames so far.
        hold_after_connect: stop after the first CONNECT or STOMP frame (once).
        held: the last ``feed`` stopped there, and may have left frames buffered.
    """

    __slots__ = (
        "_buffer",
        "_head",
        "_scan",
        "heartbeats",
        "held",
        "hold_after_connect",
        "limits",
        "unescape",
    )

    def __init__(
        self,
        limits: Limits = DEFAULT_LIMITS,
        *,
        unescape: bool = True,
        hold_after_connect: bool = False,
    ) -> None:
        self.limits = limits
        self.unescape = unescape
        self.hold_after_connect = hold_after_connect
        self.held = False
        self.heartbeats = 0
        self._buffer = bytearray()
        self._head: _Head | None = None  # the headers of the frame being read, once read
        self._scan = 0  # where the NUL search of a body without content-length resumes

    @property
    def pending(self) -> int:
        """Octets buffered: part of a frame (0 between frames)."""
        return len(self._buffer)

    def feed(self, data: bytes | str) -> list[Frame]:
        """Add ``data``; the frames it completes, in order.

        Raises:
            MalformedFrame: not STOMP.
            FrameTooLarge: over a limit.
        """
        if isinstance(data, str):
            data = data.encode()
        self._buffer += data
        self.held = False
        frames: list[Frame] = []
        try:
            while True:
                frame = self._next()
                if frame is None:
                    return frames
                frames.append(frame)
                if self.hold_after_connect and frame.command in ("CONNECT", "STOMP"):
                    self.hold_after_connect = False
                    self.held = True
                    return frames
        except StompFrameError as exc:
            exc.frames = frames
            raise

    def _next(self) -> Frame | None:
        buffer = self._buffer
        if self._head is None:
            # heart-beats: bare EOLs between frames
            start = 0
            size = len(buffer)
            while start < size:
                if buffer[start] == 0x0A:
                    start += 1
                elif buffer[start] == 0x0D and start + 1 < size and buffer[start + 1] == 0x0A:
                    start += 2
                else:
                    break
                self.heartbeats += 1
            if start:
                del buffer[:start]
            if not buffer or buffer == b"\r":
                return None
            self._head = self._read_head()
            if self._head is None:
                return None
        return self._read_body(self._head)

    def _read_head(self) -> _Head | None:
        buffer = self._buffer
        limits = self.limits
        lines: list[bytes] = []
        pos = 0
        while True:
            eol = buffer.find(b"\n", pos, pos + limits.max_header_line + 2)
            if eol < 0:
                if len(buffer) - pos > limits.max_header_line + 1:
                    raise FrameTooLarge(f"header line over {limits.max_header_line} octets")
                if len(buffer) > limits.max_frame_bytes:
                    raise FrameTooLarge(f"frame over {limits.max_frame_bytes} octets")
                return None
            line = bytes(buffer[pos:eol])
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > limits.max_header_line:
                raise FrameTooLarge(f"header line over {limits.max_header_line} octets")
            pos = eol + 1
            if pos > limits.max_frame_bytes:
                raise FrameTooLarge(f"frame over {limits.max_frame_bytes} octets")
            if not line and lines:
                break
            lines.append(line)
            if len(lines) > limits.max_headers + 1:
                raise FrameTooLarge(f"more than {limits.max_headers} headers")
        command = _text(lines[0])
        if not (command.isascii() and command.isalpha()):
            raise MalformedFrame(f"not a STOMP command: {command[:40]!r}")
        escaped = self.unescape and command not in UNESCAPED_COMMANDS
        headers: dict[str, str] = {}
        for raw in lines[1:]:
            name, colon, value = _text(raw).partition(":")
            if not colon or not name:
                raise MalformedFrame(f"a {command} header is not name:value")
            if escaped:
                name, value = unescape(name), unescape(value)
            headers.setdefault(name, value)  # the first of a repeated header wins
        length: int | None = None
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit() or not declared.isascii():
                raise MalformedFrame(f"content-length is not a number: {declared[:20]!r}")
            length = int(declared)
            if pos + length + 1 > limits.max_frame_bytes:
                raise FrameTooLarge(f"frame over {limits.max_frame_bytes} octets")
        self._scan = pos
        return _Head(command, headers, pos, length)

    def _read_body(self, head: _Head) -> Frame | None:
        buffer = self._buffer
        limits = self.limits
        if head.length is not None:
            end = head.end + head.length
            if len(buffer) <= end:
                return None
            if buffer[end] != 0:
                raise MalformedFrame("no NUL after the content-length body")
        else:
            end = buffer.find(b"\0", self._scan)
            if end < 0:
                if len(buffer) >= limits.max_frame_bytes:
                    raise FrameTooLarge(f"frame over {limits.max_frame_bytes} octets")
                self._scan = len(buffer)
                return None
            if end + 1 > limits.max_frame_bytes:
                raise FrameTooLarge(f"frame over {limits.max_frame_bytes} octets")
        body = bytes(buffer[head.end : end])
        del buffer[: end + 1]
        self._head = None
        self._scan = 0
        return Frame(head.command, head.headers, body)


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise MalformedFrame("a command or header is not UTF-8") from None


# -- serializing


def encode_frame(
    command: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    escaped: bool = True,
) -> bytes:
    """One frame. Headers are escaped unless ``escaped`` is off or the command is
    CONNECTED (whose values must then hold no CR or LF); a ``content-length`` is the
    caller's to give (``error_frame`` and ``message_payload`` do)."""
    escaping = escaped and command not in UNESCAPED_COMMANDS
    lines = [command]
    for name, value in headers:
        if escaping:
            lines.append(f"{escape(name)}:{escape(value)}")
        else:
            if "\n" in value or "\r" in value:
                raise ValueError(f"an unescaped header holds an EOL: {name}")
            lines.append(f"{name}:{value}")
    lines.append("")
    return "\n".join(lines).encode() + b"\n" + body + b"\0"


#: An ERROR's ``message`` header is cut to this many characters (the body has the whole
#: text).
MAX_MESSAGE_HEADER: Final = 200


def error_frame(
    message: str,
    *,
    escaped: bool,
    slashes: bool = False,
    receipt: str | None = None,
    versions: str | None = None,
) -> bytes:
    """ERROR: ``message`` on one line and cut to ``MAX_MESSAGE_HEADER`` characters as its
    ``message`` header (its backslashes made slashes with ``slashes``: for a client that
    reads no escapes yet, none to misread), then ``version`` (``versions``, when a
    negotiation failed) and ``receipt-id`` when given, and the whole text as its body."""
    short = " ".join(message.split())[:MAX_MESSAGE_HEADER]
    if slashes:
        short = short.replace("\\", "/")
    headers = [("message", short)]
    if versions is not None:
        headers.append(("version", versions))
    if receipt is not None:
        headers.append(("receipt-id", receipt))
    body = message.encode()
    headers += [("content-type", "text/plain"), ("content-length", str(len(body)))]
    return encode_frame("ERROR", headers, body, escaped=escaped)


def message_head(subscription: str, ack: str | None = None, *, escaped: bool = True) -> bytes:
    """The per-subscriber start of a MESSAGE: the command and ``subscription`` (plus
    ``ack`` for a subscription that is not ``ack:auto``); ``escaped`` False for STOMP
    1.0, which has no header escaping (the id goes back exactly as the client sent it)."""
    code = escape if escaped else str
    head = f"MESSAGE\nsubscription:{code(subscription)}\n"
    if ack is not None:
        head += f"ack:{code(ack)}\n"
    return head.encode()


def message_payload(
    destination: str,
    message_id: str,
    body: bytes,
    content_type: str = "application/json",
    extra: Iterable[tuple[str, str]] = (),
) -> bytes:
    """The shared rest of a MESSAGE: its common headers (``extra`` after the standard
    ones), the blank line, ``body`` and the NUL."""
    lines = [
        f"destination:{escape(destination)}",
        f"message-id:{escape(message_id)}",
        f"content-type:{escape(content_type)}",
        f"content-length:{len(body)}",
    ]
    lines.extend(f"{escape(name)}:{escape(value)}" for name, value in extra)
    lines.append("\n")
    return "\n".join(lines).encode() + body + b"\0"
