"""The WebSocket opening handshake of tickcast's uvicorn protocol, from the request head
httptools parsed already to the 101's bytes. Pure: no asyncio, no socket, no clock.

uvicorn's WebSocket protocol has websockets parse the head again (rebuilt as bytes from
httptools' parse), check it (``ServerProtocol.accept``), build a ``Response`` with a
``Date`` header that uvicorn then deletes, and serialize it. For a request websockets
would accept, this module gives the same answer from the parsed head:

- ``check``: whether websockets would answer the request with a 101, and what it would
  negotiate. It states the checks of websockets' ``Request.parse`` (at most
  ``MAX_NUM_HEADERS`` header lines of at most ``MAX_LINE_LENGTH`` bytes, a request line
  of at most as many, an ASCII target, header names that are tokens and values of
  visible characters, no ``Transfer-Encoding``, no ``Content-Length`` but 0) and of its
  ``ServerProtocol.process_request`` (``GET``; a ``Connection`` with ``upgrade``; one
  ``Upgrade: websocket``; one ``Sec-WebSocket-Key`` of 16 bytes in base64; one
  ``Sec-WebSocket-Version: 13``; at most one ``Origin``; well-formed
  ``Sec-WebSocket-Protocol`` and ``Sec-WebSocket-Extensions`` headers), and negotiates
  the extensions with websockets' own header grammar and extension factories, in
  websockets' order. Anything else gives None: the caller then hands the request to
  websockets, which answers it as before (a refusal is websockets', byte for byte). The
  checks only decide which of the two answers a request; they may be stricter than
  websockets (a value with surrounding blanks goes to websockets), never looser.
- ``response``: the 101 as websockets serializes it once uvicorn has replaced its
  ``Date`` by the server's default headers and the app's (``header_lines``;
  ``HeaderLines`` keeps the server's, remade only when uvicorn's list changes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Final, NamedTuple

from websockets import http11
from websockets.exceptions import InvalidHandshake, NegotiationError
from websockets.extensions import Extension, ServerExtensionFactory
from websockets.headers import (
    build_extension,
    parse_connection,
    parse_extension,
    parse_subprotocol,
)
from websockets.typing import ExtensionHeader

#: RFC 6455 section 1.3: appended to the client's key for the accept value.
GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: A header name: an RFC 9110 token (websockets' ``_token_re``).
_TOKEN: Final = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+").fullmatch
#: A header value as websockets keeps it (``_value_re``: HTAB, SP, VCHAR, obs-text) that
#: neither starts nor ends with a blank (websockets strips them; httptools' value is
#: right-stripped only, so a value with blanks around it is left to websockets).
_VALUE: Final = re.compile(
    rb"(?:[\x21-\x7e\x80-\xff](?:[\x09\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
).fullmatch

#: ``GET `` + the target + `` HTTP/1.1\r\n``: the request line websockets reads (uvicorn
#: rebuilds it with HTTP/1.1 whatever the client sent).
_REQUEST_LINE_EXTRA: Final = len(b"GET  HTTP/1.1\r\n")
#: ``name: value\r\n``: a header line as websockets reads it.
_HEADER_LINE_EXTRA: Final = len(b": \r\n")

_HEAD: Final = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: "
)


class Accepted(NamedTuple):
    """A handshake request websockets would accept, and what it negotiated."""

    #: the ``Sec-WebSocket-Accept`` value
    accept: bytes
    #: the ``Sec-WebSocket-Extensions`` value of the 101 (None: no extension)
    extensions_header: bytes | None
    #: the negotiated extensions, for the connection's frames
    extensions: list[Extension]
    #: the subprotocols offered, as uvicorn lists them in the ASGI scope
    subprotocols: list[str]


def accept_key(key: bytes) -> bytes:
    """RFC 6455 section 4.2.2: base64(SHA-1(key + GUID))."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def check(
    method: bytes,
    target: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    factories: Sequence[ServerExtensionFactory] | None,
) -> Accepted | None:
    """The 101 websockets would answer this request head with (``headers`` as httptools
    gives them: one pair per line, in order), or None for any request websockets would
    refuse, or that this function does not take (the caller then hands it to websockets).
    ``factories``: the server's extensions, in order of preference."""
    max_line = http11.MAX_LINE_LENGTH
    if (
        method != b"GET"
        or len(target) + _REQUEST_LINE_EXTRA > max_line
        or not target.isascii()
        or b" " in target
        or len(headers) > http11.MAX_NUM_HEADERS
    ):
        return None
    key: bytes | None = None
    version: bytes | None = None
    keys = versions = origins = upgrades = 0
    connection_upgrade = False
    offers: list[bytes] = []
    protocols: list[bytes] = []
    for raw_name, value in headers:
        if (
            len(raw_name) + len(value) + _HEADER_LINE_EXTRA > max_line
            or _TOKEN(raw_name) is None
            or _VALUE(value) is None
        ):
            return None
        name = raw_name.lower()
        if name == b"connection":
            lists = _lists_upgrade(value)
            if lists is None:
                return None
            connection_upgrade = connection_upgrade or lists
        elif name == b"upgrade":
            upgrades += 1
            if value.lower() != b"websocket":
                return None
        elif name == b"sec-websocket-key":
            keys += 1
            key = value
        elif name == b"sec-websocket-version":
            versions += 1
            version = value
        elif name == b"origin":
            origins += 1
        elif name == b"sec-websocket-extensions":
            offers.append(value)
        elif name == b"sec-websocket-protocol":
            protocols.append(value)
        elif name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return None
    if not (connection_upgrade and upgrades == 1 and keys == 1 and versions == 1):
        return None
    if version != b"13" or origins > 1 or key is None or not _valid_key(key):
        return None
    for value in protocols:
        if not _well_formed(parse_subprotocol, value):
            return None
    negotiated = negotiate(offers, factories)
    if negotiated is None:
        return None
    header, extensions = negotiated
    subprotocols = [
        token.strip() for value in protocols for token in value.decode("latin-1").split(",")
    ]
    return Accepted(accept_key(key), header, extensions, subprotocols)


def _lists_upgrade(value: bytes) -> bool | None:
    """Whether a ``Connection`` value lists ``upgrade`` (websockets' test), None if it is
    malformed (websockets parses every ``Connection`` header, and answers 400)."""
    if value.lower() == b"upgrade":
        return True
    try:
        options = parse_connection(value.decode("latin-1"))
    except InvalidHandshake:
        return None
    return any(option.lower() == "upgrade" for option in options)


def _well_formed(parse: Callable[[str], object], value: bytes) -> bool:
    """``value`` parses with websockets' header grammar ``parse``."""
    try:
        parse(value.decode("latin-1"))
    except InvalidHandshake:
        return False
    return True


def _valid_key(key: bytes) -> bool:
    """websockets' test of a ``Sec-WebSocket-Key``: 16 bytes in strict base64."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False


def negotiate(
    offers: Sequence[bytes], factories: Sequence[ServerExtensionFactory] | None
) -> tuple[bytes | None, list[Extension]] | None:
    """websockets' ``ServerProtocol.process_extensions``: each extension the client
    offers (``Sec-WebSocket-Extensions`` values), in its order, accepted by the first
    factory that takes its parameters; the 101's header value and the extensions. None
    if an offer is malformed (websockets answers 400)."""
    if not offers or not factories:
        return None, []  # websockets reads no offer when it has no extension
    try:
        parsed: list[ExtensionHeader] = [
            item for value in offers for item in parse_extension(value.decode("latin-1"))
        ]
    except InvalidHandshake:
        return None
    answers: list[ExtensionHeader] = []
    accepted: list[Extension] = []
    for name, params in parsed:
        for factory in factories:
            if factory.name != name:
                continue
            try:
                answer, extension = factory.process_request_params(params, accepted)
            except NegotiationError:
                continue
            answers.append((name, answer))
            accepted.append(extension)
            break
    if not answers:
        return None, accepted
    return build_extension(answers).encode("iso-8859-1"), accepted


def header_lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Response header lines as the 101 carries them: the name lower-cased as uvicorn
    does it (decoded as Latin-1), each line as websockets serializes it."""
    return b"".join(
        name.decode("latin-1").lower().encode("latin-1") + b": " + value + b"\r\n"
        for name, value in headers
    )


def response(accepted: Accepted, lines: bytes, subprotocol: str | None) -> bytes:
    """The 101: websockets' headers (without ``Date``), then ``lines`` (the server's and
    the app's, ``header_lines``), then the app's subprotocol, if any."""
    parts = [_HEAD, accepted.accept, b"\r\n"]
    if accepted.extensions_header is not None:
        parts += [b"Sec-WebSocket-Extensions: ", accepted.extensions_header, b"\r\n"]
    parts.append(lines)
    if subprotocol:
        parts += [b"Sec-WebSocket-Protocol: ", subprotocol.encode("iso-8859-1"), b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)


def request_head(method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The request head as uvicorn rebuilds it for websockets to parse (HTTP/1.1 whatever
    the client sent; one line per header, as httptools gave it)."""
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += [name, b": ", value, b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines)


class HeaderLines:
    """The server's default headers (``server_state.default_headers``, a new list when
    its ``Date`` changes, once a second) as the 101's header lines, made once per list."""

    __slots__ = ("_headers", "_lines")

    def __init__(self) -> None:
        self._headers: list[tuple[bytes, bytes]] | None = None
        self._lines = b""

    def __call__(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        if headers is not self._headers:
            self._lines = header_lines(headers)
            self._headers = headers
        return self._lines
