"""STOMP frames: the incremental parser and the serializers, from the STOMP 1.2
specification's framing rules (our own cases). Pure: bytes in, frames out."""

from __future__ import annotations

import pytest

from tickcast.closecodes import CloseCode
from tickcast.errors import InvalidMessage, LimitExceeded
from tickcast.protocols.stomp.frames import (
    Frame,
    FrameParser,
    FrameTooLarge,
    Limits,
    MalformedFrame,
    encode_frame,
    escape,
    message_head,
    message_payload,
    unescape,
)


def parse_all(data: bytes | str, **kw: object) -> list[Frame]:
    return FrameParser(**kw).feed(data)  # type: ignore[arg-type]


def test_one_frame_with_lf_and_one_with_crlf() -> None:
    [a] = parse_all(b"SUBSCRIBE\nid:0\ndestination:/topic/a\n\n\x00")
    [b] = parse_all(b"SUBSCRIBE\r\nid:0\r\ndestination:/topic/a\r\n\r\n\x00")
    assert a == b == Frame("SUBSCRIBE", {"id": "0", "destination": "/topic/a"}, b"")


def test_text_and_bytes_are_the_same_stream() -> None:
    assert parse_all("ACK\nid:é\n\n\x00") == parse_all("ACK\nid:é\n\n\x00".encode())


def test_several_frames_in_one_message_with_heartbeats_between() -> None:
    parser = FrameParser()
    data = b"\n\r\nACK\nid:1\n\n\x00\n\nACK\nid:2\n\n\x00\r\n\nNACK\nid:3\n\n\x00"
    frames = parser.feed(data)
    assert [(f.command, f.headers["id"]) for f in frames] == [
        ("ACK", "1"),
        ("ACK", "2"),
        ("NACK", "3"),
    ]
    assert parser.heartbeats == 6
    assert parser.pending == 0


def test_bare_heartbeats_give_no_frame() -> None:
    parser = FrameParser()
    assert parser.feed("\n") == []
    assert parser.feed("\r") == []  # half a CRLF waits
    assert parser.feed("\n\n") == []
    assert parser.heartbeats == 3
    assert parser.pending == 0


def test_one_frame_split_anywhere_gives_the_same_frame() -> None:
    data = b"SEND\r\ndestination:/q\r\ncontent-length:5\r\n\r\na\x00b\x00c\x00\n"
    whole = parse_all(data)
    assert whole == [Frame("SEND", {"destination": "/q", "content-length": "5"}, b"a\x00b\x00c")]
    for cut in range(1, len(data)):
        parser = FrameParser()
        assert parser.feed(data[:cut]) + parser.feed(data[cut:]) == whole, cut
    parser = FrameParser()
    frames = [f for byte in data for f in parser.feed(bytes([byte]))]
    assert frames == whole


def test_content_length_body_may_hold_nul_and_must_end_with_one() -> None:
    [frame] = parse_all(b"SEND\ncontent-length:3\n\n\x00\x00\x00\x00")
    assert frame.body == b"\x00\x00\x00"
    with pytest.raises(MalformedFrame, match="no NUL"):
        parse_all(b"SEND\ncontent-length:2\n\nabc\x00")


def test_a_body_without_content_length_ends_at_the_first_nul() -> None:
    frames = parse_all(b"SEND\n\nhello\x00ACK\nid:1\n\n\x00")
    assert [f.body for f in frames] == [b"hello", b""]


def test_escapes_are_decoded_except_on_connect_and_stomp() -> None:
    [frame] = parse_all(b"SUBSCRIBE\nid:a\\cb\\\\c\\nd\\re\nna\\cme:v\n\n\x00")
    assert frame.headers == {"id": "a:b\\c\nd\re", "na:me": "v"}
    for command in (b"CONNECT", b"STOMP"):
        [frame] = parse_all(command + b"\nlogin:a\\cb\npasscode:x:y\n\n\x00")
        assert frame.headers == {"login": "a\\cb", "passcode": "x:y"}


def test_escapes_stay_as_sent_when_unescaping_is_off() -> None:
    [frame] = parse_all(b"SUBSCRIBE\nid:a\\tb\n\n\x00", unescape=False)
    assert frame.headers["id"] == "a\\tb"


@pytest.mark.parametrize("value", [b"a\\tb", b"a\\", b"\\x", b"\\C"])
def test_an_undefined_escape_is_a_protocol_error(value: bytes) -> None:
    with pytest.raises(MalformedFrame, match="escape") as caught:
        parse_all(b"SUBSCRIBE\nid:" + value + b"\n\n\x00")
    assert caught.value.code is CloseCode.PROTOCOL_ERROR
    assert isinstance(caught.value, InvalidMessage)


def test_escape_and_unescape_round_trip() -> None:
    for text in ["plain", "a:b", "back\\slash", "line\nfeed", "cr\rhere", "\\c literal", ":\\:\n"]:
        encoded = escape(text)
        assert "\n" not in encoded
        assert "\r" not in encoded
        assert ":" not in encoded
        assert unescape(encoded) == text


def test_a_repeated_header_keeps_the_first_value() -> None:
    [frame] = parse_all(b"SUBSCRIBE\nid:first\nid:second\n\n\x00")
    assert frame.headers["id"] == "first"


def test_header_values_are_neither_trimmed_nor_padded() -> None:
    [frame] = parse_all(b"SUBSCRIBE\nid: padded \n\n\x00")
    assert frame.headers["id"] == " padded "


@pytest.mark.parametrize(
    "data",
    [
        b"SUBSCRIBE\nno colon here\n\n\x00",
        b"SUBSCRIBE\n:empty name\n\n\x00",
        b'{"action":"ping"}\n\n\x00',
        b"\x00\n\n\x00",
        b"SUB\xffSCRIBE\n\n\x00",
        b"SEND\ncontent-length:x\n\n\x00",
    ],
)
def test_malformed_frames(data: bytes) -> None:
    with pytest.raises(MalformedFrame):
        parse_all(data)


LIMITS = Limits(max_frame_bytes=200, max_headers=3, max_header_line=40)


def test_too_many_headers() -> None:
    ok = b"ACK\na:1\nb:2\nc:3\n\n\x00"
    assert parse_all(ok, limits=LIMITS)
    with pytest.raises(FrameTooLarge, match="headers") as caught:
        parse_all(b"ACK\na:1\nb:2\nc:3\nd:4\n\n\x00", limits=LIMITS)
    assert caught.value.code is CloseCode.MESSAGE_TOO_BIG
    assert isinstance(caught.value, LimitExceeded)


def test_a_header_line_too_long_is_refused_before_its_eol_comes() -> None:
    parser = FrameParser(LIMITS)
    assert parser.feed(b"ACK\nid:" + b"x" * 37 + b"\r\n\n\x00")  # 40 octets: the limit
    with pytest.raises(FrameTooLarge, match="header line"):
        parser.feed(b"ACK\nid:" + b"x" * 60)  # no EOL yet: refused all the same


def test_a_frame_too_large_is_refused_while_it_streams() -> None:
    parser = FrameParser(LIMITS)
    parser.feed(b"SEND\n\n")
    fed = 0
    with pytest.raises(FrameTooLarge, match="frame over 200"):  # noqa: PT012 (fed as it streams)
        for _ in range(10):
            fed += 1
            parser.feed(b"x" * 30)
    assert fed == 7  # refused once the buffer passed 200 octets, not after all of it


def test_a_content_length_over_the_limit_is_refused_at_once() -> None:
    with pytest.raises(FrameTooLarge, match="frame over 200"):
        parse_all(b"SEND\ncontent-length:500\n\n", limits=LIMITS)


def test_frames_before_an_error_are_kept_on_it() -> None:
    with pytest.raises(MalformedFrame) as caught:
        parse_all(b"ACK\nid:1\n\n\x00ACK\nid:\\t\n\n\x00")
    assert [f.headers["id"] for f in caught.value.frames] == ["1"]


def test_encode_frame_escapes_and_round_trips() -> None:
    headers = [("receipt-id", "r:1\n"), ("message", "a\\b")]
    data = encode_frame("RECEIPT", headers)
    assert data == b"RECEIPT\nreceipt-id:r\\c1\\n\nmessage:a\\\\b\n\n\x00"
    assert parse_all(data) == [Frame("RECEIPT", dict(headers), b"")]


def test_connected_is_not_escaped() -> None:
    data = encode_frame("CONNECTED", [("server", "tickcast/1:2")])
    assert data == b"CONNECTED\nserver:tickcast/1:2\n\n\x00"
    with pytest.raises(ValueError, match="EOL"):
        encode_frame("CONNECTED", [("server", "a\nb")])


def test_escaping_can_be_turned_off_for_stomp_1_0() -> None:
    assert (
        encode_frame("ERROR", [("message", "a:b")], escaped=False) == b"ERROR\nmessage:a:b\n\n\x00"
    )


def test_a_message_is_a_head_and_a_shared_payload_that_make_one_valid_frame() -> None:
    body = b'{"price":1.5,"note":"a\x00b"}'
    payload = message_payload("/topic/trades.A:B", "m-1", body, extra=[("seq", "7")])
    heads = [message_head("sub-0"), message_head("sub:1", ack="m-1")]
    assert heads[0] == b"MESSAGE\nsubscription:sub-0\n"
    for head, expected in zip(heads, ["sub-0", "sub:1"], strict=True):
        [frame] = parse_all(head + payload)
        assert frame.command == "MESSAGE"
        assert frame.headers["subscription"] == expected
        assert frame.headers["destination"] == "/topic/trades.A:B"
        assert frame.headers["message-id"] == "m-1"
        assert frame.headers["content-type"] == "application/json"
        assert frame.headers["content-length"] == str(len(body))
        assert frame.headers["seq"] == "7"
        assert frame.body == body
    [acked] = parse_all(heads[1] + payload)
    assert acked.headers["ack"] == "m-1"
