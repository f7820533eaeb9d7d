"""Server-to-client WebSocket frame headers (RFC 6455, section 5.2).

Rules: pure. Server frames are never masked, so a whole frame is a header plus the
payload, and one pre-built frame can be written to every subscriber unchanged. Only
used when no extension (permessage-deflate) was negotiated on the connection.
"""

from __future__ import annotations

import struct

OP_TEXT = 0x1
OP_BINARY = 0x2

_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def frame_header(length: int, opcode: int = OP_TEXT) -> bytes:
    """The header of a final, unmasked data frame carrying ``length`` payload bytes."""
    first = 0x80 | opcode
    if length < 126:
        return _SHORT.pack(first, length)
    if length < 1 << 16:
        return _MEDIUM.pack(first, 126, length)
    return _LONG.pack(first, 127, length)


def text_frame(payload: bytes) -> bytes:
    """A complete text frame; ``payload`` must already be UTF-8."""
    return frame_header(len(payload)) + payload
