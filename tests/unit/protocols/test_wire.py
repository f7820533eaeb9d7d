"""Encoded: a payload and its WebSocket frame, built once; a per-subscriber head before a
shared body."""

from __future__ import annotations

from tickcast.protocols.wire import Encoded
from tickcast.protocols.wsframe import OP_BINARY, OP_TEXT, frame_header


def test_encoded_frame_is_header_plus_payload_and_built_once() -> None:
    text = Encoded(b'{"x":1}')
    assert text.frame == frame_header(7, OP_TEXT) + b'{"x":1}'
    assert text.frame is text.frame
    binary = Encoded(b"\x00" * 200, binary=True)
    assert binary.frame == frame_header(200, OP_BINARY) + b"\x00" * 200


def test_encoded_equality_is_by_payload() -> None:
    assert Encoded(b"x", control=True) == Encoded(b"x")
    assert hash(Encoded(b"x")) == hash(Encoded(b"x"))
    assert Encoded(b"x") != Encoded(b"y")
    assert Encoded(b"x") != b"x"
    assert repr(Encoded(b"x")) == "Encoded(b'x')"


def test_without_a_head_the_message_is_the_payload_itself() -> None:
    item = Encoded(b'{"x":1}')
    assert item.head == b""
    assert item.message is item.payload
    assert item.size == 7


def test_a_headed_item_shares_the_body_and_frames_head_then_body() -> None:
    body = b'{"price":1.5}' * 20  # 260 bytes: the frame header's 16-bit length form
    shared = Encoded(body, ts=1.25)
    head = b"MESSAGE\nsubscription:sub-1\n\n"
    one = shared.headed(head)
    assert one.payload is shared.payload  # the body is not copied or encoded again
    assert (one.head, one.ts, one.control, one.binary) == (head, 1.25, False, False)
    assert one.frame == frame_header(len(head) + len(body), OP_TEXT) + head + body
    assert one.frame is one.frame  # built once
    assert one.message == head + body
    assert one.size == len(head) + len(body)
    assert shared.frame == frame_header(len(body), OP_TEXT) + body  # the shared item keeps its own
    control = Encoded(b"\x01\x02", control=True, binary=True).headed(b"h")
    assert (control.control, control.binary) == (True, True)
    assert control.frame == frame_header(3, OP_BINARY) + b"h\x01\x02"


def test_headed_items_are_equal_only_with_the_same_head() -> None:
    body = Encoded(b"x")
    assert body.headed(b"a") == Encoded(b"x", head=b"a")
    assert hash(body.headed(b"a")) == hash(Encoded(b"x", head=b"a"))
    assert body.headed(b"a") != body.headed(b"b")
    assert body.headed(b"a") != body
    assert repr(body.headed(b"a")) == "Encoded(b'x', head=b'a')"
