"""The fast path's handshake (``transport/handshake.py``) against websockets' own: a
request it takes is one websockets answers with a 101, and its 101 is byte for byte the
one websockets builds once uvicorn has completed it; every request websockets refuses,
at each of its limits and checks, is left to websockets (``check`` gives None)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from websockets import http11
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from tickcast.transport import handshake

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example
BASE: list[tuple[bytes, bytes]] = [
    (b"host", b"127.0.0.1:8000"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
]
#: what uvicorn adds to a 101: the server's default headers (Date, Server)
DEFAULTS = [(b"date", b"Sat, 05 Dec 2026 21:00:00 GMT"), (b"server", b"uvicorn")]


def _factories() -> list[ServerPerMessageDeflateFactory]:
    """permessage-deflate as uvicorn configures it (tickcast's ``permessage_deflate``)."""
    return [
        ServerPerMessageDeflateFactory(
            server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
        )
    ]


def _websockets(
    target: bytes, headers: list[tuple[bytes, bytes]], deflate: bool
) -> tuple[Request | None, Response, ServerProtocol]:
    """websockets' answer to the head as uvicorn rebuilds it, before uvicorn edits it."""
    conn = ServerProtocol(
        extensions=_factories() if deflate else [],
        max_size=65536,
        logger=logging.getLogger("test"),
    )
    conn.receive_data(handshake.request_head(b"GET", target, headers))
    events = conn.events_received()
    if not events:  # refused while reading it (431, 414), or unreadable: uvicorn's 400
        sent = b"".join(conn.data_to_send())
        status = int(sent[9:12]) if sent else 400
        return None, conn.reject(status, ""), conn
    (request,) = events
    assert isinstance(request, Request)
    return request, conn.accept(request), conn


def _uvicorns_101(response: Response, extra: list[tuple[bytes, bytes]], sub: str | None) -> bytes:
    """uvicorn's accept: the Date dropped, its default headers and the app's set, the
    app's subprotocol last."""
    del response.headers["Date"]
    for name, value in DEFAULTS + extra:
        response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")
    if sub:
        response.headers["Sec-WebSocket-Protocol"] = sub
    return response.serialize()


def _same_as_websockets(
    headers: list[tuple[bytes, bytes]],
    *,
    target: bytes = b"/ws/market/feed?seq=1",
    deflate: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
    sub: str | None = None,
) -> handshake.Accepted:
    accepted = handshake.check(b"GET", target, headers, _factories() if deflate else [])
    assert accepted is not None, "a plain handshake takes the fast path"
    _, response, conn = _websockets(target, headers, deflate)
    assert response.status_code == 101
    extra = extra or []
    lines = handshake.header_lines(DEFAULTS) + handshake.header_lines(extra)
    assert handshake.response(accepted, lines, sub) == _uvicorns_101(response, extra, sub)
    assert [_params(e) for e in accepted.extensions] == [_params(e) for e in conn.extensions]
    return accepted


def _params(extension: Any) -> tuple[type, dict[str, Any]]:
    """An extension's type and negotiated parameters (not its zlib objects)."""
    params = {k: v for k, v in vars(extension).items() if not k.endswith(("encoder", "decoder"))}
    return type(extension), params


def _refused_by_websockets(
    headers: list[tuple[bytes, bytes]], *, method: bytes = b"GET", target: bytes = b"/ws"
) -> None:
    """Left to websockets, which refuses it."""
    assert handshake.check(method, target, headers, _factories()) is None
    if method == b"GET":
        _, response, _ = _websockets(target, headers, deflate=True)
        assert response.status_code != 101


def test_the_accept_key_is_the_rfcs() -> None:
    assert handshake.accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_plain_handshake_is_answered_as_websockets_and_uvicorn_answer_it() -> None:
    accepted = _same_as_websockets(BASE)
    assert accepted.extensions == []
    assert accepted.extensions_header is None
    assert accepted.subprotocols == []


@pytest.mark.parametrize(
    "headers",
    [
        [(b"connection", b"keep-alive, Upgrade")],  # Firefox
        [(b"connection", b"keep-alive"), (b"connection", b"upgrade")],
        [(b"origin", b"https://example.com"), (b"user-agent", b"Mozilla/5.0 \xe9t\xe9")],
        [(b"content-length", b"0"), (b"content-length", b"0")],
        [(b"x-empty", b"")],
        [(b"upgrade", b"WebSocket")],
    ],
    ids=[
        "keep-alive-upgrade",
        "two-connection-headers",
        "origin-and-latin1",
        "zero-body",
        "empty",
        "case",
    ],
)
def test_browser_handshakes_are_answered_as_websockets_answers_them(
    headers: list[tuple[bytes, bytes]],
) -> None:
    names = {name for name, _ in headers}
    _same_as_websockets([h for h in BASE if h[0] not in names] + headers)


def test_the_apps_headers_and_subprotocol_follow_the_servers() -> None:
    headers = [*BASE, (b"sec-websocket-protocol", b"v12.stomp, v11.stomp")]
    accepted = _same_as_websockets(headers, extra=[(b"X-Trace", b"abc")], sub="v12.stomp")
    assert accepted.subprotocols == ["v12.stomp", "v11.stomp"]


@pytest.mark.parametrize(
    "offer",
    [
        b"permessage-deflate",
        b"permessage-deflate; client_max_window_bits",
        b"permessage-deflate; server_max_window_bits=10; client_no_context_takeover",
        b"permessage-deflate; server_max_window_bits=15",
        b"permessage-deflate; server_no_context_takeover, permessage-deflate",
        b"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=9",
        b"permessage-deflate; unknown=1",  # declined: no extension, still a 101
        b"permessage-deflate; server_max_window_bits=7",  # invalid value: declined
    ],
)
def test_permessage_deflate_is_negotiated_as_websockets_negotiates_it(offer: bytes) -> None:
    headers = [*BASE, (b"sec-websocket-extensions", offer)]
    accepted = _same_as_websockets(headers, deflate=True)
    plain = _same_as_websockets(headers, deflate=False)  # off: the offer is not even read
    assert plain.extensions == []
    assert plain.extensions_header is None
    assert accepted.extensions or b"unknown" in offer or b"=7" in offer


def test_the_header_count_is_websockets_limit() -> None:
    room = http11.MAX_NUM_HEADERS - len(BASE)
    filler = [(b"x-h%d" % i, b"v") for i in range(room)]
    _same_as_websockets(BASE + filler)  # exactly the limit
    over = [*BASE, *filler, (b"x-one-more", b"v")]
    assert handshake.check(b"GET", b"/ws", over, []) is None
    _, response, _ = _websockets(b"/ws", over, deflate=False)
    assert response.status_code == 431


def test_a_header_line_is_at_most_websockets_line_length() -> None:
    name = b"x-long"
    fits = http11.MAX_LINE_LENGTH - len(name) - len(b": \r\n")
    _same_as_websockets([*BASE, (name, b"v" * fits)])
    over = [*BASE, (name, b"v" * (fits + 1))]
    assert handshake.check(b"GET", b"/ws", over, []) is None
    _, response, _ = _websockets(b"/ws", over, deflate=False)
    assert response.status_code == 431


def test_the_request_line_is_at_most_websockets_line_length() -> None:
    fits = b"/" + b"a" * (http11.MAX_LINE_LENGTH - len(b"GET / HTTP/1.1\r\n"))
    _same_as_websockets(BASE, target=fits)
    over = fits + b"a"
    assert handshake.check(b"GET", over, BASE, []) is None
    _, response, _ = _websockets(over, BASE, deflate=False)
    assert response.status_code == 414


@pytest.mark.parametrize(
    "headers",
    [
        [(b"transfer-encoding", b"chunked")],
        [(b"content-length", b"5")],
        [(b"content-length", b"0"), (b"content-length", b"1")],
        [(b"sec-websocket-key", b"c2hvcnQ=")],  # 5 bytes
        [(b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ")],  # unpadded
        [(b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="), (b"sec-websocket-key", KEY)],
        [(b"sec-websocket-version", b"8")],
        [(b"sec-websocket-version", b"13"), (b"sec-websocket-version", b"13")],
        [(b"origin", b"https://a.example"), (b"origin", b"https://b.example")],
        [(b"connection", b"keep-alive")],
        [(b"connection", b"Upgrade"), (b"connection", b"bad value;")],
        [(b"connection", b",,")],
        [(b"upgrade", b"websocket"), (b"upgrade", b"websocket")],
        [(b"upgrade", b"websocket, h2c")],
        [(b"sec-websocket-protocol", b"chat;v=1")],
        [(b"sec-websocket-extensions", b"permessage-deflate;;")],
        [(b"x-bad", b"a\x00b")],
        [(b"x-bad name", b"v")],
    ],
)
def test_a_request_websockets_refuses_is_left_to_it(headers: list[tuple[bytes, bytes]]) -> None:
    names = {name for name, _ in headers}
    request = [h for h in BASE if h[0] not in names] + headers
    if names & {b"transfer-encoding", b"content-length", b"x-bad", b"x-bad name"}:
        # not a request websockets reads: uvicorn answers 400
        assert handshake.check(b"GET", b"/ws", request, _factories()) is None
        request_read, _, _ = _websockets(b"/ws", request, deflate=True)
        assert request_read is None
        return
    _refused_by_websockets(request)


@pytest.mark.parametrize(
    ("method", "target"),
    [(b"POST", b"/ws"), (b"GET", b"/caf\xc3\xa9"), (b"GET", b"/a b")],
)
def test_a_request_line_websockets_refuses_is_left_to_it(method: bytes, target: bytes) -> None:
    assert handshake.check(method, target, BASE, []) is None


def test_values_with_blanks_around_them_are_left_to_websockets() -> None:
    """websockets strips them, httptools only on the right: the scope's headers would
    differ, so such a request is websockets' (which accepts it)."""
    request = [*BASE, (b"x-padded", b"\tvalue")]
    assert handshake.check(b"GET", b"/ws", request, []) is None
    _, response, _ = _websockets(b"/ws", request, deflate=False)
    assert response.status_code == 101


def test_the_default_header_lines_are_lower_cased_as_uvicorn_does() -> None:
    assert handshake.header_lines([(b"X-Caf\xc9", b"1")]) == b"x-caf\xe9: 1\r\n"


def test_the_rebuilt_head_is_uvicorns() -> None:
    assert handshake.request_head(b"GET", b"/ws?a=1", [(b"host", b"h")]) == (
        b"GET /ws?a=1 HTTP/1.1\r\nhost: h\r\n\r\n"
    )


def test_headers_of_the_response_are_websockets_order() -> None:
    accepted = handshake.Accepted(b"acc", b"permessage-deflate", [], [])
    response = handshake.response(accepted, b"date: d\r\n", "chat")
    parsed = Headers()
    lines = response.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
    for line in lines[1:-2]:
        name, _, value = line.partition(b": ")
        parsed[name.decode()] = value.decode()
    assert list(parsed.raw_items()) == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", "acc"),
        ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ("date", "d"),
        ("Sec-WebSocket-Protocol", "chat"),
    ]
    assert response.endswith(b"\r\n\r\n")
