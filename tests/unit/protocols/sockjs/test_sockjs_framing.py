"""SockJS frames, message escaping and client payloads (written from the cases of the
protocol's own test suite, sockjs-protocol 0.3.3)."""

from __future__ import annotations

import json
import re

import pytest

from tickcast.protocols.sockjs.framing import (
    ANOTHER_CONNECTION,
    BROKEN_JSON,
    EVENTSOURCE,
    GO_AWAY,
    INTERRUPTED,
    PAYLOAD_EXPECTED,
    TRANSPORTS,
    WEBSOCKET,
    XHR,
    XHR_SEND,
    XHR_STREAMING,
    EscapeMemo,
    PayloadError,
    array_frame,
    close_frame,
    decode_payload,
    decode_websocket,
    encode_message,
    message_frame,
)

# The characters a server must send as \uXXXX (above U+00FF, as the suite checks them).
SERVER_ESCAPED = re.compile("[\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff]")


def test_close_frames_read_as_the_suite_expects() -> None:
    assert GO_AWAY == b'c[3000,"Go away!"]'
    assert ANOTHER_CONNECTION == b'c[2010,"Another connection still open"]'
    assert INTERRUPTED == b'c[1002,"Connection interrupted"]'
    assert close_frame(3001, 'say "no"') == b'c[3001,"say \\"no\\""]'


def test_an_array_frame_holds_json_strings() -> None:
    assert message_frame(["a"]) == b'a["a"]'
    assert message_frame(["a", "b\nc"]) == b'a["a","b\\nc"]'
    assert message_frame([]) == b"a[]"


def test_a_body_encoded_once_is_joined_as_it_is() -> None:
    body = encode_message("MESSAGE\ndestination:/topic/x\n\n{}\x00")
    assert body == b'"MESSAGE\\ndestination:/topic/x\\n\\n{}\\u0000"'
    assert array_frame([body, body]) == b"a[" + body + b"," + body + b"]"
    assert json.loads(array_frame([body])[1:]) == ["MESSAGE\ndestination:/topic/x\n\n{}\x00"]


def test_the_server_escapes_every_character_the_suite_lists_and_no_other() -> None:
    chars = [chr(i) for i in range(255, 0xD800)] + [chr(i) for i in range(0xE000, 0x10000)]
    must = "".join(c for c in chars if SERVER_ESCAPED.match(c))
    expected = '"' + "".join(f"\\u{ord(c):04x}" for c in must) + '"'
    assert encode_message(must) == expected.encode()
    # Everything else above U+00FF goes verbatim (UTF-8).
    verbatim = "".join(c for c in chars if not SERVER_ESCAPED.match(c))
    assert encode_message(verbatim) == ('"' + verbatim + '"').encode()


def test_lone_surrogates_are_escaped_and_pairs_go_verbatim() -> None:
    lone = json.loads('"\\ud800x\\udfff"')
    assert encode_message(lone) == b'"\\ud800x\\udfff"'
    assert json.loads(encode_message(lone)) == lone
    assert encode_message("\U0001f600") == '"\U0001f600"'.encode()


def test_controls_are_escaped() -> None:
    assert encode_message("  \x00\n\r ") == b'"  \\u0000\\n\\r "'
    assert encode_message("\x1f") == b'"\\u001f"'


def test_xhr_send_takes_an_array_of_strings() -> None:
    assert decode_payload('["a"]') == ["a"]
    assert decode_payload(b'["a","b"]') == ["a", "b"]
    assert decode_payload("[]") == []


def test_xhr_send_decodes_what_the_client_escapes() -> None:
    sent = '["\\u2028\\ufeff\\u0000\\u00ad\\u0600\\ufff0\\ud83d\\ude00\\"\\\\"]'
    assert decode_payload(sent) == ['\u2028\ufeff\x00\u00ad\u0600\ufff0\U0001f600"\\']


@pytest.mark.parametrize("body", ['["x', "[", "{", "x", b"\xff\xfe"])
def test_broken_json_is_refused_in_the_suites_words(body: str | bytes) -> None:
    with pytest.raises(PayloadError) as refused:
        decode_payload(body)
    assert refused.value.message == BROKEN_JSON == "Broken JSON encoding."


@pytest.mark.parametrize("body", ["", b"", '"a"', "{}", "1", "null", "[1]", '["a", null]'])
def test_an_empty_or_non_array_payload_is_refused(body: str | bytes) -> None:
    with pytest.raises(PayloadError) as refused:
        decode_payload(body)
    assert refused.value.message == PAYLOAD_EXPECTED == "Payload expected."


def test_websocket_messages_are_an_array_or_one_string() -> None:
    assert decode_websocket('["a","b"]') == ["a", "b"]
    assert decode_websocket('"a"') == ["a"]
    assert decode_websocket("") == []
    assert decode_websocket("[]") == []


@pytest.mark.parametrize("data", ['["a', "{}", "1", "[1]", "null"])
def test_a_broken_websocket_message_is_refused(data: str) -> None:
    with pytest.raises(PayloadError) as refused:
        decode_websocket(data)
    assert refused.value.message == BROKEN_JSON


def test_each_transport_frames_as_the_suite_reads_it() -> None:
    assert XHR.wrap(b"o") == b"o\n"
    assert XHR_STREAMING.wrap(b'a["x"]') == b'a["x"]\n'
    assert XHR_STREAMING.prelude == b"h" * 2048 + b"\n"
    assert EVENTSOURCE.wrap(b'a["x"]') == b'data: a["x"]\r\n\r\n'
    assert EVENTSOURCE.prelude == b"\r\n"
    assert WEBSOCKET.wrap(b"o") == b"o"
    assert WEBSOCKET.prelude == b""
    assert not XHR_SEND.receiving
    assert set(TRANSPORTS) == {"xhr", "xhr_send", "xhr_streaming", "eventsource", "websocket"}
    assert XHR.content_type == "application/javascript; charset=UTF-8"
    assert XHR_SEND.content_type == "text/plain; charset=UTF-8"


def _reference(text: str) -> bytes:
    """What ``encode_message`` must give: ``json.dumps`` and SockJS's escapes (the
    written-out rule, without the shortcut for text that needs none)."""
    quoted = json.dumps(text, ensure_ascii=False)
    return re.sub(
        "[\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff\ud800-\udfff]",
        lambda m: f"\\u{ord(m.group()):04x}",
        quoted,
    ).encode()


@pytest.mark.parametrize(
    "text",
    ["", "plain", "caf\u00e9 \U0001f600", "\x7f", "a\u200bb", 'say "x"', "a\\b", "\x00", "\u2028"],
)
def test_a_message_is_json_with_the_sockjs_escapes_whether_it_needs_any_or_none(text: str) -> None:
    assert encode_message(text) == _reference(text)


class _Item:
    """A carrier as the STOMP front makes them: a head per subscription before the
    update's payload, one payload object shared by every head."""

    def __init__(self, payload: bytes, head: bytes = b"", topic: str = "quotes.X") -> None:
        self.payload, self.head, self.topic = payload, head, topic

    @property
    def message(self) -> bytes:
        return self.head + self.payload


def test_a_headed_message_is_escaped_as_the_whole_message_would_be() -> None:
    memo = EscapeMemo()
    payload = 'destination:/x\n\n{"note":"a\u2028b \u00e9"}\x00'.encode()
    for head in (b"", b"MESSAGE\nsubscription:sub-0\n", "MESSAGE\nsubscription:\u00e9\n".encode()):
        item = _Item(payload, head)
        assert memo.encode(item) == _reference((head + payload).decode())


def test_a_payload_is_escaped_once_whatever_heads_it_goes_out_under() -> None:
    memo = EscapeMemo()
    payload = b'{"bid":1}\x00'
    encoded = memo.encode_batch(
        [_Item(payload, b"MESSAGE\nsubscription:sub-%d\n" % i) for i in range(5)]
    )
    assert [json.loads(e) for e in encoded] == [
        f'MESSAGE\nsubscription:sub-{i}\n{{"bid":1}}\x00' for i in range(5)
    ]
    assert memo.misses == 1


def test_a_message_split_inside_a_character_is_escaped_whole() -> None:
    memo = EscapeMemo()
    whole = "MESSAGE\n\u00e9{}".encode()
    cut = whole.index(b"\xa9")  # the second byte of the e-acute: neither part is UTF-8
    item = _Item(whole[cut:], whole[:cut])
    assert memo.encode(item) == _reference(whole.decode())
    broken = _Item(b"\xff{}", b"MESSAGE\n")
    assert memo.encode(broken) == _reference((b"MESSAGE\n\xff{}").decode(errors="replace"))
