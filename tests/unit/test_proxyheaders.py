"""ProxyHeaders: one rewrite of the ASGI scope, before anything else reads it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tickcast.auth.forwarded import TrustedProxies
from tickcast.web.proxyheaders import PEER, ProxyHeaders


def scope(kind: str, *headers: tuple[bytes, bytes], peer: str = "10.0.0.5") -> dict[str, Any]:
    return {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "client": (peer, 51000),
        "headers": [(b"host", b"inner:8000"), *headers],
    }


async def seen_by_the_app(middleware_proxies: TrustedProxies, request: dict[str, Any]) -> Any:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    await ProxyHeaders(app, middleware_proxies)(request, None, None)  # type: ignore[arg-type]
    return seen[0]


async def test_a_trusted_proxy_rewrites_client_scheme_and_host() -> None:
    request = scope(
        "websocket",
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"markets.example.com"),
    )
    seen = await seen_by_the_app(TrustedProxies(["10.0.0.0/8"]), request)
    assert seen["client"] == ("203.0.113.7", 0)
    assert seen["scheme"] == "wss"
    assert (b"host", b"markets.example.com") in seen["headers"]
    assert (b"host", b"inner:8000") not in seen["headers"]
    assert seen[PEER] == ("10.0.0.5", 51000)
    assert request["client"] == ("10.0.0.5", 51000)  # the server's own scope is untouched


async def test_an_untrusted_peer_passes_through_and_is_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    middleware_proxies = TrustedProxies(["192.0.2.1"])
    spoofed = scope("http", (b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https"))
    with caplog.at_level(logging.WARNING, logger="tickcast.web.proxyheaders"):
        seen = await seen_by_the_app(middleware_proxies, spoofed)
        middleware = ProxyHeaders(lambda *a: None, middleware_proxies)  # type: ignore[arg-type,return-value]
        middleware.resolve(spoofed)
        middleware.resolve(spoofed)
    assert seen is spoofed
    assert caplog.text.count("forwarding headers from 10.0.0.5 ignored") == 2  # once each


async def test_lifespan_and_scopes_without_a_client_pass_through() -> None:
    lifespan = {"type": "lifespan"}
    everyone = TrustedProxies(["0.0.0.0/1", "128.0.0.0/1"])
    assert await seen_by_the_app(everyone, lifespan) is lifespan
    anonymous = {"type": "http", "headers": []}
    assert await seen_by_the_app(everyone, anonymous) is anonymous
