"""SockJS URLs, /info and the header policy (written from the cases of the protocol's
own test suite, sockjs-protocol 0.3.3)."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime

import pytest

from tickcast.protocols.sockjs.framing import EVENTSOURCE, WEBSOCKET, XHR, XHR_SEND, XHR_STREAMING
from tickcast.protocols.sockjs.urls import (
    GREETING,
    INFO,
    NO_CACHE,
    RAW_WEBSOCKET,
    ROOT,
    SessionPath,
    Static,
    allowed_methods,
    cors_headers,
    greeting_headers,
    info_body,
    info_headers,
    jsessionid_header,
    options_headers,
    origin_allowed,
    parse,
    transport_headers,
)

P = "/stomp"


def allowed(origin: str) -> bool:
    return origin in {"https://app.example", "null"}


def test_the_greeting() -> None:
    assert GREETING == b"Welcome to SockJS!\n"
    assert parse(P, P) is ROOT
    assert parse(P + "/", P) is ROOT
    assert greeting_headers() == [("Content-Type", "text/plain; charset=UTF-8")]


@pytest.mark.parametrize("suffix", ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"])
def test_other_short_paths_are_not_found(suffix: str) -> None:
    assert parse(P + suffix, P) is None


def test_paths_outside_the_prefix_are_not_found() -> None:
    assert parse("/stompx/info", P) is None
    assert parse("/other", P) is None


def test_info_and_the_raw_websocket() -> None:
    assert parse(P + "/info", P) is INFO
    assert parse(P + "/websocket", P) is RAW_WEBSOCKET


@pytest.mark.parametrize(
    ("server", "session"), [("a", "a"), ("_", "_"), ("1", "1"), ("abc_i-j%20", "abc_i-j ")]
)
def test_any_server_and_session_segments_are_taken(server: str, session: str) -> None:
    route = parse(f"{P}/{server}/{session}/xhr", P)
    assert route == SessionPath(server, session, XHR)


@pytest.mark.parametrize("middle", ["//", "/a./a", "/a/a.", "/./.", "/", "///", "/a/.b"])
def test_empty_or_dotted_segments_are_not_found(middle: str) -> None:
    for transport in ("xhr", "xhr_send", "xhr_streaming", "websocket"):
        assert parse(f"{P}{middle}/{transport}", P) is None


def test_each_transport_is_found_and_unserved_ones_are_not() -> None:
    names = {
        "xhr": XHR,
        "xhr_send": XHR_SEND,
        "xhr_streaming": XHR_STREAMING,
        "eventsource": EVENTSOURCE,
        "websocket": WEBSOCKET,
    }
    for name, transport in names.items():
        route = parse(f"{P}/000/abc/{name}", P)
        assert isinstance(route, SessionPath)
        assert route.transport is transport
    for name in ("jsonp", "jsonp_send", "htmlfile", "xhr/", "XHR", ""):
        assert parse(f"{P}/000/abc/{name}", P) is None
    assert parse(f"{P}/000/abc/xhr/more", P) is None


def test_allowed_methods() -> None:
    assert allowed_methods(INFO) == ("OPTIONS", "GET")
    assert allowed_methods(ROOT) == ("GET",)
    assert allowed_methods(SessionPath("a", "b", XHR_SEND)) == ("OPTIONS", "POST")
    assert allowed_methods(SessionPath("a", "b", WEBSOCKET)) == ("GET",)
    assert allowed_methods(SessionPath("a", "b", EVENTSOURCE)) == ("GET",)


def test_the_info_body() -> None:
    body = json.loads(info_body(websocket=True, cookie_needed=False, entropy=4_000_000_000))
    assert body == {
        "websocket": True,
        "origins": ["*:*"],
        "cookie_needed": False,
        "entropy": 4_000_000_000,
    }
    assert (
        json.loads(info_body(websocket=False, cookie_needed=True, entropy=0))["websocket"] is False
    )
    for bad in (-1, 2**32):
        with pytest.raises(ValueError, match="32-bit"):
            info_body(websocket=True, cookie_needed=False, entropy=bad)


def test_info_is_json_never_cached_with_cors_and_no_cookie() -> None:
    headers = dict(info_headers("https://app.example", allowed))
    assert headers["Content-Type"] == "application/json; charset=UTF-8"
    assert headers["Cache-Control"] == NO_CACHE[1]
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Set-Cookie" not in headers
    assert "Expires" not in headers


def test_an_allowed_origin_is_echoed_with_credentials() -> None:
    headers = dict(cors_headers("https://app.example", allowed, "a, b, c"))
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Vary"] == "Origin"
    assert headers["Access-Control-Allow-Headers"] == "a, b, c"
    for request_headers in ("", None):
        no_extra = dict(cors_headers("https://app.example", allowed, request_headers))
        assert "Access-Control-Allow-Headers" not in no_extra


def test_no_origin_gets_a_star_and_null_is_an_origin_like_any_other() -> None:
    assert dict(cors_headers(None, allowed)) == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Credentials": "true",
    }
    assert dict(cors_headers("null", allowed))["Access-Control-Allow-Origin"] == "null"
    assert cors_headers("null", lambda origin: False) == []


def test_a_foreign_origin_gets_no_grant_and_is_not_served() -> None:
    assert cors_headers("https://evil.example", allowed, "a") == []
    assert not origin_allowed("https://evil.example", allowed)
    assert origin_allowed("https://app.example", allowed)
    assert origin_allowed(None, allowed)


@pytest.mark.parametrize(
    ("route", "methods"),
    [(INFO, "OPTIONS, GET"), (SessionPath("abc", "abc", XHR), "OPTIONS, POST")],
)
@pytest.mark.parametrize("origin", [None, "https://app.example", "null"])
def test_options_answers_are_cacheable_for_a_year(
    route: Static | SessionPath, methods: str, origin: str | None
) -> None:
    wall = 1_700_000_000.0
    headers = dict(options_headers(route, origin, allowed, wall))
    assert headers["Access-Control-Allow-Methods"] == methods
    assert headers["Cache-Control"] == "public, max-age=31536000"
    assert int(headers["Access-Control-Max-Age"]) == 31_536_000
    expires = parsedate_to_datetime(headers["Expires"]).timestamp()
    assert expires == wall + 31_536_000
    assert headers["Access-Control-Allow-Origin"] == (origin or "*")
    assert headers["Access-Control-Allow-Credentials"] == "true"


def test_options_from_a_foreign_origin_grants_nothing() -> None:
    headers = dict(options_headers(INFO, "https://evil.example", allowed, 0.0))
    assert "Access-Control-Allow-Origin" not in headers
    assert "Access-Control-Allow-Credentials" not in headers


def test_transport_headers_are_never_cached_and_carry_cors() -> None:
    headers = transport_headers(XHR, "https://app.example", allowed)
    assert ("Content-Type", "application/javascript; charset=UTF-8") in headers
    assert NO_CACHE in headers
    assert ("Access-Control-Allow-Origin", "https://app.example") in headers
    assert not any(name == "Set-Cookie" for name, _ in headers)
    sent = dict(transport_headers(XHR_SEND, None, allowed))
    assert sent["Content-Type"] == "text/plain; charset=UTF-8"
    assert dict(transport_headers(EVENTSOURCE, None, allowed))["Content-Type"] == (
        "text/event-stream; charset=UTF-8"
    )
    assert transport_headers(WEBSOCKET, None, allowed) == []
    foreign = dict(transport_headers(XHR_STREAMING, "https://evil.example", allowed))
    assert "Access-Control-Allow-Origin" not in foreign


def test_the_jsessionid_cookie_when_configured() -> None:
    assert jsessionid_header(None) == ("Set-Cookie", "JSESSIONID=dummy; path=/")
    assert jsessionid_header("a=1; JSESSIONID=abcdef") == (
        "Set-Cookie",
        "JSESSIONID=abcdef; path=/",
    )
    assert jsessionid_header("JSESSIONID=bad value") == ("Set-Cookie", "JSESSIONID=dummy; path=/")
    headers = dict(transport_headers(XHR, None, allowed, cookie_needed=True))
    assert headers["Set-Cookie"] == "JSESSIONID=dummy; path=/"
