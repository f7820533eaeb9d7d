"""The landing page (``/``) and the API docs (``/api/docs``), end to end.

A real `tickcast serve` and Debian's headless Chromium, as in test_pages.py, with one
difference: the browser reaches the gateway by a host name of its own
(``gateway.test``, mapped to 127.0.0.1 inside Chromium), so that what the pages compute
from the host the browser used is seen to come from that host, and so that Swagger UI's
"localhost" exceptions (it shows no public validator badge for 127.0.0.1) do not apply.
Nothing may be requested from any other host: there is no internet here, and a page
that needs it is broken for every user without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from e2e.conftest import CHROMIUM, Gateway, PageLog, require_chromium
from tickcast.web import pages

Screenshot = Callable[[Page, str], Path]
HOST = "gateway.test"
MONITORING = ("alerts", "metrics", "pipeline", "telemetry", "dlq")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium that resolves ``gateway.test`` to 127.0.0.1 (and nothing else)."""
    require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", f"--host-resolver-rules=MAP {HOST} 127.0.0.1"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def origin(gateway: Gateway) -> str:
    return f"http://{HOST}:{gateway.server.port}"


def assert_only_own_host(page_log: PageLog, gateway: Gateway) -> None:
    assert page_log.requests
    own = urlsplit(origin(gateway)).netloc
    elsewhere = [url for url in page_log.requests if urlsplit(url).netloc != own]
    assert elsewhere == [], elsewhere
    assert page_log.errors == []  # a CSP violation is a console error


# -- the landing page


def test_landing_page_links_every_page_and_endpoint_of_the_gateway(
    gateway: Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    page.goto(f"{origin(gateway)}/")
    expect(page).to_have_title("tickcast")
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "connected")  # GET /ready said 200
    expect(status).to_contain_text("ready · feed: simulator")

    links = page.locator("a[href]").evaluate_all("links => links.map(a => a.href)")
    paths = {urlsplit(link).path for link in links}
    assert {
        "/realtime/dashboard/",
        "/analytics/",
        "/operations/",
        "/api/leaderboard",
        "/realtime/test/",
        "/api/docs",
        "/api/openapi.json",
        "/health",
        "/ready",
        "/metrics",
        "/feed",
        "/feed/dead-letters",
        "/realtime/websocket-info/",
        "/realtime/status/",
    } <= paths
    # every link stays on the gateway, and every one of them answers
    assert all(link.startswith(origin(gateway) + "/") for link in links), links
    with httpx.Client(base_url=gateway.http, timeout=10) as http:
        for path in sorted(paths):
            assert http.get(path).status_code == 200, path

    # the WebSocket endpoints, for the host the browser used, and they connect
    ws_urls = page.locator("code.ws-url").all_inner_texts()
    port = gateway.server.port
    assert ws_urls == [
        f"ws://{HOST}:{port}/ws/market/feed",
        f"ws://{HOST}:{port}/ws/realtime/",
        f"ws://{HOST}:{port}/stomp/websocket",
        f"ws://{HOST}:{port}/ws/updates",
        f"ws://{HOST}:{port}/ws/top?n=10",
        f"ws://{HOST}:{port}/ws/around?portfolio_id=1&window=5",
        *(f"ws://{HOST}:{port}/ws/{name}" for name in MONITORING),
    ]
    opened = page.evaluate(
        """(urls) => Promise.all(urls.map((url) => new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => { ws.close(); resolve(url); };
            ws.onerror = () => resolve(`failed: ${url}`);
        })))""",
        ws_urls,
    )
    assert opened == ws_urls
    # SockJS's and Socket.IO's URLs are http ones: SockJS's /info answers, and an
    # Engine.IO handshake opens a session at Socket.IO's
    sockjs_url, socketio_url = page.locator("code.http-url").all_inner_texts()
    assert sockjs_url == f"http://{HOST}:{port}/stomp"
    assert socketio_url == f"http://{HOST}:{port}/socket.io/"
    with httpx.Client(base_url=gateway.http, timeout=10) as http:
        assert http.get("/stomp/info").json()["websocket"] is True
        handshake = http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert handshake.text.startswith('0{"sid":')
    screenshot(page, "home")
    assert_only_own_host(page_log, gateway)


def test_landing_page_websocket_urls_follow_the_scheme_and_the_path_prefix(
    gateway: Gateway, page: Page
) -> None:
    """Behind a TLS proxy that mounts the gateway under a prefix: wss:// and the prefix."""
    page.goto(f"{origin(gateway)}/")
    urls = page.evaluate(
        """async () => {
            const m = await import("./static/tickcast.js");
            return [
                m.webSocketUrl("ws/market/feed", "https://markets.example/gw/"),
                m.webSocketUrl("ws/realtime/", "http://10.1.2.3:8080/"),
                m.realtimeUrl("https://markets.example/"),
            ];
        }"""
    )
    assert urls == [
        "wss://markets.example/gw/ws/market/feed",
        "ws://10.1.2.3:8080/ws/realtime/",
        "wss://markets.example/ws/realtime/",
    ]


def test_landing_page_says_when_the_gateway_is_unreachable_and_when_it_is_back(
    gateway: Gateway, page: Page, screenshot: Screenshot
) -> None:
    page.goto(f"{origin(gateway)}/")
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "connected")
    gateway.server.stop()
    page.evaluate("async () => (await import('./static/index.js')).check()")
    expect(status).to_have_attribute("data-state", "closed")
    expect(status).to_have_text("gateway unreachable")
    screenshot(page, "unreachable")
    gateway.restart()  # same port: the page keeps asking until the gateway is ready
    expect(status).to_have_attribute("data-state", "connected", timeout=20_000)
    expect(status).to_contain_text("ready")


# -- the API docs


def operations(openapi: dict[str, object]) -> list[tuple[str, str]]:
    paths = openapi["paths"]
    assert isinstance(paths, dict)
    return [(method.upper(), path) for path, item in paths.items() for method in item]


def test_api_docs_render_every_operation_with_nothing_from_another_host(
    gateway: Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    openapi = httpx.get(f"{gateway.http}/api/openapi.json", timeout=10).json()
    expected = operations(openapi)
    assert ("GET", "/assets") in expected

    page.goto(f"{origin(gateway)}/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text(openapi["info"]["title"])
    blocks = page.locator(".opblock")
    expect(blocks).to_have_count(len(expected))
    shown = blocks.evaluate_all(
        """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent,
            b.querySelector('.opblock-summary-path').dataset.path])"""
    )
    assert sorted(map(tuple, shown)) == sorted(expected)
    screenshot(page, "operations")

    # try one: the call goes to this gateway and its answer is shown
    assets = page.locator(".opblock-get", has=page.locator('[data-path="/assets"]'))
    assets.locator(".opblock-summary").click()
    assets.get_by_role("button", name="Try it out").click()
    assets.get_by_role("button", name="Execute").click()
    live = assets.locator(".live-responses-table tr.response")
    expect(live.locator(".response-col_status")).to_have_text("200")
    expect(live.locator(".response-col_description")).to_contain_text('"symbol": "AAPL"')
    screenshot(page, "tried")
    assert f"{origin(gateway)}/api/assets" in page_log.requests
    assert_only_own_host(page_log, gateway)


def test_api_docs_page_and_assets_are_served_by_the_gateway(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.http, timeout=10) as http:
        r = http.get("/api/docs")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.headers["content-security-policy"] == pages.API_DOCS_CONTENT_SECURITY_POLICY
        assert "<script>" not in r.text  # no inline script
        links = re.findall(r"(?:src|href)=\"([^\"]*)\"", r.text)
        assert links
        assert not [link for link in links if "//" in link or link.startswith("/")], links
        for link in links:
            asset = http.get(urljoin(f"{gateway.http}/api/docs", link))
            assert asset.status_code == 200, link
        bundle = http.get("/static/swagger-ui/swagger-ui-bundle.js")
        assert bundle.headers["content-type"] == "text/javascript; charset=utf-8"
        assert bundle.headers["cache-control"] == "public, max-age=60"
        assert http.get("/static/swagger-ui/swagger-ui.css").status_code == 200
        # ReDoc is off (one docs page; ReDoc's bundle would want inline styles and workers)
        assert http.get("/api/redoc").status_code == 404
        assert http.get("/api/docs/oauth2-redirect").status_code == 404


def test_landing_page_has_the_pages_csp_and_relative_links(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.http, timeout=10) as http:
        r = http.get("/")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.headers["content-security-policy"] == pages.CONTENT_SECURITY_POLICY
        assert r.headers["cache-control"] == "no-cache"
        assert "<script>" not in r.text
        links = re.findall(r"(?:src|href)=\"([^\"]*)\"", r.text)
        # relative, so that a proxy may serve the gateway under a path prefix
        assert not [link for link in links if "//" in link or link.startswith("/")], links
        assert http.head("/").status_code == 200


def test_every_page_links_back_to_the_landing_page(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.http, timeout=10) as http:
        for page_path in ("/realtime/dashboard/", "/realtime/test/", "/api/docs"):
            html = http.get(page_path).text
            links = re.findall(r"<a href=\"([^\"]*)\"", html)
            targets = {urlsplit(urljoin(f"{gateway.http}{page_path}", link)).path for link in links}
            assert "/" in targets, (page_path, links)
            assert "/api/docs" in targets or page_path == "/api/docs", (page_path, links)
