"""The analytics page (``/analytics/``) end to end: rx-stomp over SockJS in a real headless
Chromium against a real `tickcast serve`, as test_pages.py drives the dashboard.

The page loads the vendored UMD builds of sockjs-client, rxjs, @stomp/stompjs and
@stomp/rx-stomp from the gateway, connects to ``/stomp`` with the seed's settings and
shows live quotes; signed in, the user's positions (``/topic/position-update``) and
unrealized P&L (``/topic/unrealized-pnl``). The seeded user holds 10 AAPL bought at 150
in "Growth" (conftest.py). Every wait is for a condition with a timeout.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import PORTFOLIO, USERNAME, Gateway, PageLog
from tickcast.web import pages

Screenshot = Callable[[Page, str], Path]
VENDORED = ["sockjs.min.js", "rxjs.umd.min.js", "stomp.umd.min.js", "rx-stomp.umd.min.js"]
SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA"]


def open_analytics(page: Page, gateway: Gateway, query: str = "") -> None:
    page.goto(f"{gateway.http}/analytics/{query}")
    # SockJS may try a transport, and rx-stomp waits 5 s before another attempt
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=20_000)


def updates(page: Page, selector: str) -> int:
    return int(page.locator(selector).get_attribute("data-updates") or 0)


def wait_for_more_updates(page: Page, selector: str, more: int) -> None:
    floor = updates(page, selector) + more
    page.wait_for_function(
        "([selector, floor]) => Number(document.querySelector(selector)?.dataset.updates) >= floor",
        arg=[selector, floor],
        timeout=15_000,
    )


def sign_in(page: Page, api_key: str) -> None:
    page.fill("#api-key", api_key)
    page.click("#signin button[type=submit]")
    expect(page.locator("#username")).to_have_text(USERNAME)
    expect(page.locator("#status")).to_have_text(re.compile("signed in"), timeout=20_000)


def test_analytics_loads_its_libraries_from_the_gateway_and_shows_live_quotes(
    gateway: Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    open_analytics(page, gateway)
    rows = page.locator("#quotes tbody tr")
    expect(rows).to_have_count(len(SYMBOLS))
    for symbol in SYMBOLS:
        expect(page.locator(f'#quotes tr[data-symbol="{symbol}"]')).to_have_class("live")
    price = page.locator('#quotes tr[data-symbol="AAPL"] td.price')
    expect(price).to_have_text(re.compile(r"^[\d,]+\.\d\d"))
    wait_for_more_updates(page, '#quotes tr[data-symbol="AAPL"]', 2)  # live
    # SockJS picked a transport (websocket, in a browser that has it)
    expect(page.locator("#transport")).to_have_attribute("data-transport", "websocket")
    expect(page.locator('.empty[data-for="positions"]')).to_be_visible()  # not signed in
    screenshot(page, "anonymous")

    # the four libraries came from this gateway, and nothing from anywhere else
    for name in VENDORED:
        assert f"{gateway.http}/static/vendor/{name}" in page_log.requests, name
    assert all(url.startswith(gateway.http) for url in page_log.requests), page_log.requests
    assert page_log.errors == []  # a CSP violation or a library failing to load is one


@pytest.mark.parametrize("transport", ["xhr-streaming", "xhr-polling"])
def test_analytics_over_each_xhr_transport_shows_live_quotes(
    gateway: Gateway, page: Page, page_log: PageLog, transport: str
) -> None:
    open_analytics(page, gateway, f"?transport={transport}&symbols=AAPL,MSFT")
    expect(page.locator("#transport")).to_have_attribute("data-transport", transport)
    expect(page.locator("#quotes tbody tr")).to_have_count(2)
    expect(page.locator('#quotes tr[data-symbol="MSFT"]')).to_have_class("live")
    wait_for_more_updates(page, '#quotes tr[data-symbol="AAPL"]', 2)
    assert page_log.errors == []


def test_signed_in_analytics_shows_the_users_positions_and_live_unrealized_pnl(
    gateway: Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    open_analytics(page, gateway)
    api_key = gateway.account.api_key
    sign_in(page, api_key)

    pid = gateway.portfolio_id
    position = page.locator(f'#positions tr[data-portfolio-id="{pid}"][data-symbol="AAPL"]')
    expect(position.locator(".portfolio")).to_have_text(PORTFOLIO)
    holdings = position.locator(".holdings")
    expect(holdings).to_have_attribute("data-value", re.compile(r"^10(\.0*)?$"))
    expect(position.locator(".holdings")).to_have_text("10")
    expect(position.locator(".invested")).to_have_text("$1,500.00")  # 10 at 150
    expect(position.locator(".realized")).to_have_text("$0.00")
    expect(page.locator("#positions tbody tr")).to_have_count(1)  # only this user's

    pnl = page.locator(f'#pnl tr[data-portfolio-id="{pid}"][data-symbol="AAPL"]')
    expect(pnl.locator(".unrealized")).to_have_text(re.compile(r"^[+-]?\$[\d,]+\.\d\d$"))
    value = float(pnl.locator(".unrealized").get_attribute("data-value") or "nan")
    assert math.isfinite(value)
    expect(page.locator("#pnl-total")).not_to_have_text("—")
    wait_for_more_updates(page, "#pnl", 2)  # live: it follows AAPL's price
    screenshot(page, "signed-in")

    # the key was exchanged for a token and is kept nowhere
    assert page.input_value("#api-key") == ""
    stored = page.evaluate("() => JSON.stringify([{...sessionStorage}, {...localStorage}])")
    assert api_key not in stored
    assert page_log.errors == []


def test_the_dashboards_panel_opens_analytics_signed_in_as_the_same_user(
    gateway: Gateway, page: Page, screenshot: Screenshot
) -> None:
    page.goto(f"{gateway.http}/realtime/dashboard/")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.fill("#api-key", gateway.account.api_key)
    page.click("#signin button[type=submit]")
    expect(page.locator("#username")).to_have_text(USERNAME)
    panel = page.locator("#analytics-panel")
    expect(panel).to_be_visible()
    screenshot(page, "dashboard-panel")
    panel.locator("#analytics-link").click()
    expect(page).to_have_url(f"{gateway.http}/analytics/")
    # the tab's sign-in carries over: no second sign-in
    expect(page.locator("#username")).to_have_text(USERNAME)
    expect(page.locator("#status")).to_have_text(re.compile("signed in"), timeout=20_000)
    own = page.locator(f'#positions tr[data-portfolio-id="{gateway.portfolio_id}"]')
    expect(own).to_have_count(1)


def test_analytics_page_has_the_pages_csp_relative_links_and_a_way_home(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.http, timeout=10) as http:
        response = http.get("/analytics/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["content-security-policy"] == pages.CONTENT_SECURITY_POLICY
        assert "<script>" not in response.text
        links = re.findall(r"(?:src|href)=\"([^\"]*)\"", response.text)
        assert not [link for link in links if "//" in link or link.startswith("/")], links
        targets = {urlsplit(urljoin(f"{gateway.http}/analytics/", link)).path for link in links}
        assert {"/", "/api/docs", "/realtime/dashboard/"} <= targets
        for name in VENDORED:
            asset = http.get(f"/static/vendor/{name}")
            assert asset.status_code == 200
            assert asset.headers["content-type"] == "text/javascript; charset=utf-8"
