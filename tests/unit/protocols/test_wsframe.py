"""Server frame headers (RFC 6455, 5.2), checked byte by byte and with websockets' parser."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from tickcast.protocols.wsframe import OP_BINARY, OP_TEXT, frame_header, text_frame


def parse(data: bytes) -> tuple[Frame, bytes]:
    """Parse one unmasked frame with websockets' sans-I/O parser; also return leftovers."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    frame = done.value.value
    assert isinstance(frame, Frame)
    return frame, bytes(reader.buffer)


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (1, b"\x81\x01"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (2**32 + 5, b"\x81\x7f\x00\x00\x00\x01\x00\x00\x00\x05"),
    ],
)
def test_text_header_uses_the_shortest_length_encoding(length: int, header: bytes) -> None:
    assert frame_header(length) == header
    assert frame_header(length, OP_TEXT) == header


def test_binary_header_sets_the_binary_opcode() -> None:
    assert frame_header(3, OP_BINARY) == b"\x82\x03"
    assert frame_header(70000, OP_BINARY)[:2] == b"\x82\x7f"


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_text_frame_parses_back_as_one_final_unmasked_text_frame(length: int) -> None:
    payload = bytes(ord("a") + i % 26 for i in range(length))
    frame, rest = parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT
    assert frame.fin is True
    assert (frame.rsv1, frame.rsv2, frame.rsv3) == (False, False, False)
    assert frame.data == payload
    assert rest == b""


@pytest.mark.parametrize("length", [0, 125, 126, 65536])
def test_binary_header_plus_payload_parses_back_as_a_binary_frame(length: int) -> None:
    payload = bytes(i % 256 for i in range(length))
    frame, rest = parse(frame_header(length, OP_BINARY) + payload)
    assert frame.opcode is Opcode.BINARY
    assert frame.fin is True
    assert frame.data == payload
    assert rest == b""


def test_text_frame_keeps_utf8_payload_bytes() -> None:
    payload = '{"symbol":"ÄPFEL","note":"✓"}'.encode()
    frame, _ = parse(text_frame(payload))
    assert frame.data.decode() == '{"symbol":"ÄPFEL","note":"✓"}'
