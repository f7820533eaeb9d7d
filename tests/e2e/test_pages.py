"""The browser pages end to end: a real `tickcast serve`, a real headless Chromium.

Each test starts its own gateway (simulator at 200 ticks/s, 50 ms batches, asset and
portfolio updates every 0.2 s) on a SQLite file seeded with one user, an API key and a
portfolio of 10 AAPL, then drives `/realtime/dashboard/` or `/realtime/test/` as a user
would. Every wait is for a condition with a timeout, never a fixed sleep. Screenshots
land in ``artifacts/screenshots/`` (see conftest.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from e2e.conftest import PORTFOLIO, USERNAME, Gateway, PageLog, dashboard_state
from tickcast.auth.credentials import issue_token

DEFAULT_SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "SPY", "BTC/USDT", "ETH/USDT"]
Screenshot = Callable[[Page, str], Path]


def open_dashboard(page: Page, gateway: Gateway, query: str = "") -> None:
    page.goto(f"{gateway.http}/realtime/dashboard/{query}")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")


def updates(page: Page, selector: str) -> int:
    """How many live updates the dashboard has painted into an element."""
    return int(page.locator(selector).get_attribute("data-updates") or 0)


def wait_for_more_updates(page: Page, selector: str, more: int, timeout_ms: int = 10_000) -> None:
    floor = updates(page, selector) + more
    page.wait_for_function(
        "([selector, floor]) => Number(document.querySelector(selector)?.dataset.updates) >= floor",
        arg=[selector, floor],
        timeout=timeout_ms,
    )


def sparkline_drawn(page: Page, symbol: str) -> bool:
    drawn: bool = page.evaluate(
        """(symbol) => {
            const canvas = document.querySelector(`tr[data-symbol="${symbol}"] canvas`);
            const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
            return pixels.data.some((value, i) => i % 4 === 3 && value > 0);
        }""",
        symbol,
    )
    return drawn


def sign_in(page: Page, api_key: str) -> None:
    page.fill("#api-key", api_key)
    page.click("#signin button[type=submit]")
    expect(page.locator("#status")).to_have_text(re.compile("signed in"))
    expect(page.locator("#username")).to_have_text(USERNAME)


# -- the dashboard


def test_dashboard_connects_and_shows_prices_that_move(
    gateway: Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    open_dashboard(page, gateway)
    expect(page.locator("#status")).to_have_text("connected")
    rows = page.locator("#quotes tbody tr")
    expect(rows).to_have_count(len(DEFAULT_SYMBOLS))
    for symbol in DEFAULT_SYMBOLS:
        expect(page.locator(f'tr[data-symbol="{symbol}"]')).to_have_class("live")

    price = page.locator('tr[data-symbol="AAPL"] td.price')
    expect(price).to_have_text(re.compile(r"^[\d,]+\.\d\d$"))
    first = price.get_attribute("data-value")
    assert first is not None
    expect(price).not_to_have_attribute("data-value", first, timeout=10_000)
    for cell in ("change", "change-percent", "high", "low", "volume"):
        expect(page.locator(f'tr[data-symbol="AAPL"] td.{cell}')).not_to_have_text("—")
    page.wait_for_function(
        "() => document.querySelector('tr[data-symbol=\"AAPL\"] td.price')"
        ".classList.contains('flash-up') || document.querySelector("
        "'tr[data-symbol=\"AAPL\"] td.price').classList.contains('flash-down')"
    )
    wait_for_more_updates(page, 'tr[data-symbol="AAPL"]', 2)
    assert sparkline_drawn(page, "AAPL")
    screenshot(page, "live")

    assert page_log.errors == []
    # nothing from anywhere else: no CDN, no fonts, no analytics
    assert page_log.requests
    assert all(url.startswith(gateway.http) for url in page_log.requests), page_log.requests


def test_dashboard_symbols_come_from_the_query(gateway: Gateway, page: Page) -> None:
    open_dashboard(page, gateway, "?symbols=msft,%20BTC/USDT,NOPE,bad%20symbol!")
    symbols = page.locator("#quotes tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.symbol)"
    )
    assert symbols == ["MSFT", "BTC/USDT", "NOPE"]
    expect(page.locator('tr[data-symbol="BTC/USDT"]')).to_have_class("live")
    expect(page.locator('tr[data-symbol="NOPE"]')).to_have_class("unknown")


def test_signed_in_dashboard_shows_portfolio_value_that_follows_a_transaction(
    gateway: Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    open_dashboard(page, gateway)
    api_key = gateway.account.api_key
    sign_in(page, api_key)

    card = page.locator(f'[data-portfolio-id="{gateway.portfolio_id}"]')
    expect(card.locator(".name")).to_have_text(PORTFOLIO)
    total = card.locator(".total-value")
    expect(total).to_have_text(re.compile(r"^\$[\d,]+\.\d\d$"))
    for field in ("daily-change", "daily-change-percent", "unrealized-pnl", "realized-pnl"):
        expect(card.locator(f".{field}")).not_to_have_text("—")
    selector = f'[data-portfolio-id="{gateway.portfolio_id}"]'
    wait_for_more_updates(page, selector, 2)  # live: it moves with AAPL
    # the key is exchanged for a token and not kept anywhere
    assert page.input_value("#api-key") == ""
    stored = page.evaluate("() => JSON.stringify([{...sessionStorage}, {...localStorage}])")
    assert api_key not in stored
    assert "access_token" not in stored
    screenshot(page, "signed-in")

    before = float(total.get_attribute("data-value") or "nan")
    assert 10 * 100 < before < 10 * 1000  # 10 AAPL
    response = httpx.post(
        f"{gateway.http}/api/portfolios/{gateway.portfolio_id}/transactions",
        json={"symbol": "MSFT", "side": "buy", "quantity": "100", "price": "400"},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    # 100 MSFT: tens of thousands more, far beyond what AAPL's moves could do
    page.wait_for_function(
        "([selector, floor]) => Number(document.querySelector(selector)?.dataset.value) > floor",
        arg=[f"{selector} .total-value", before + 20_000],
    )
    expect(card.locator(".unrealized-pnl")).not_to_have_text("—")
    screenshot(page, "after-transaction")
    assert page_log.errors == []


def test_sign_in_with_a_wrong_key_says_why_and_stays_anonymous(
    gateway: Gateway, page: Page, screenshot: Screenshot
) -> None:
    open_dashboard(page, gateway)
    page.fill("#api-key", "tc_AAAAAAAAAAAA_" + "x" * 43)
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("Sign-in failed")
    expect(page.locator("#status")).to_have_text("connected")
    expect(page.locator("#portfolios article")).to_have_count(0)
    screenshot(page, "refused")


def test_a_refused_token_signs_out_and_the_dashboard_carries_on_anonymously(
    gateway: Gateway, page: Page, screenshot: Screenshot
) -> None:
    forged = issue_token(gateway.account.user_id, USERNAME, "f" * 40, time.time(), 3600)
    page.goto(f"{gateway.http}/realtime/dashboard/?token={forged}")
    # the server closes with 3500; the page drops the token and reconnects without it
    expect(page.locator("#signin-error")).to_contain_text("Signed out")
    expect(page.locator("#status")).to_have_text("connected")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator('tr[data-symbol="AAPL"]')).to_have_class("live")
    assert page.evaluate("() => sessionStorage.getItem('tickcast.token')") is None
    screenshot(page, "signed-out")


def test_the_client_backs_off_with_full_jitter_and_paints_once_per_frame(
    gateway: Gateway, page: Page
) -> None:
    """The browser client's pure parts, run in the browser from the served module."""
    page.goto(f"{gateway.http}/realtime/test/")
    result = page.evaluate(
        """async () => {
            const m = await import("/static/tickcast.js");
            const top = (attempt) => m.backoffDelay(attempt, 500, 30000, () => 0.999999);
            const frames = [];
            const batches = [];
            const batcher = new m.FrameBatcher(
                (batch) => batches.push([...batch.entries()]), (paint) => frames.push(paint));
            batcher.put("AAPL", 1);
            batcher.put("AAPL", 2);
            batcher.put("MSFT", 3);
            const scheduled = frames.length;
            frames[0]();
            batcher.put("AAPL", 4);
            frames[1]();
            return {
                ceilings: [0, 1, 2, 3, 6, 7, 50].map(top),
                floor: m.backoffDelay(5, 500, 30000, () => 0),
                terminal: [1000, 1001, 1006, 1008, 1011, 1013, 3001, 3002, 3008, 3500, 3501,
                           3502, 3503, 3504, 4000].filter(m.isTerminalClose),
                scheduled,
                batches,
            };
        }"""
    )
    assert result["ceilings"] == [499, 999, 1999, 3999, 29999, 29999, 29999]
    assert result["floor"] == 0
    # as closecodes.py advises: 1000 and 35xx stop, 1001/1006/1011/1013/30xx/4000 retry
    assert result["terminal"] == [1000, 1008, 3500, 3501, 3502, 3503, 3504]
    # one paint per frame, with the latest value per key
    assert result["scheduled"] == 1
    assert result["batches"] == [[["AAPL", 2], ["MSFT", 3]], [["AAPL", 4]]]


def test_the_client_drops_a_silent_socket_resubscribes_and_stops_on_1008(
    gateway: Gateway, page: Page
) -> None:
    """The shared client against a scripted WebSocket: one that opens and then says
    nothing (a half-open connection), then one that is refused with 1008."""
    page.goto(f"{gateway.http}/realtime/test/")
    result = page.evaluate(
        """async () => {
            const m = await import("/static/tickcast.js");
            const until = async (check, ms = 3000) => {
                const end = Date.now() + ms;
                while (!check()) {
                    if (Date.now() > end) throw new Error("timed out: " + check);
                    await new Promise((r) => setTimeout(r, 10));
                }
            };
            const sockets = [];
            class ScriptedSocket {
                constructor(url) {
                    this.url = url;
                    this.readyState = 0;
                    this.sent = [];
                    this.closedWith = null;
                    sockets.push(this);
                    const hello = { type: "connection", data: { status: "connected",
                        connection_id: `c${sockets.length}`, authenticated: true, user_id: 1 } };
                    setTimeout(() => {
                        this.readyState = 1;
                        this.onmessage({ data: JSON.stringify(hello) });
                    }, 0);
                }
                send(text) { this.sent.push(JSON.parse(text)); }
                close(code) { this.readyState = 3; this.closedWith = code; }
            }
            const client = new m.TickcastClient({
                url: "ws://gateway.invalid/ws/realtime/", token: "a.jwt", WebSocket: ScriptedSocket,
                pingIntervalMs: 100, backoffBaseMs: 10, backoffCapMs: 20,
            });
            const subscribed = (socket) => socket.sent
                .filter((msg) => msg.type.startsWith("subscribe_"))
                .map((msg) => msg.type + ":" + (msg.data.symbol ?? msg.data.portfolio_id));
            client.subscribeAsset("aapl", () => {});
            const off = client.subscribeAsset("MSFT", () => {});
            client.subscribePortfolio(7, () => {});
            client.start();
            await until(() => sockets.length === 1 && subscribed(sockets[0]).length === 3);
            off();  // the last MSFT listener: unsubscribed on the wire
            await until(() => sockets[0].sent.some((msg) => msg.type === "unsubscribe_asset"));
            // silence: a ping goes unanswered, the socket is dropped, a new one resubscribes
            await until(() => sockets.length === 2 && subscribed(sockets[1]).length === 2);
            await until(() => client.status.state === "connected");
            const afterSilence = {
                pinged: sockets[0].sent.some((msg) => msg.type === "ping"),
                closedWith: sockets[0].closedWith,
                resubscribed: subscribed(sockets[1]),
                reconnects: client.status.reconnects,
                url: sockets[1].url,
            };
            // refused (bad credentials): no retry
            sockets[1].onclose({ code: 1008, reason: "Invalid token" });
            await new Promise((r) => setTimeout(r, 200));
            return { ...afterSilence, refused: client.status, sockets: sockets.length };
        }"""
    )
    assert result["pinged"] is True
    assert result["closedWith"] == 4000
    assert result["resubscribed"] == ["subscribe_asset:AAPL", "subscribe_portfolio:7"]
    assert result["reconnects"] == 1
    assert result["url"] == "ws://gateway.invalid/ws/realtime/?token=a.jwt"
    assert result["refused"] == {"state": "closed", "code": 1008, "reason": "Invalid token"}
    assert result["sockets"] == 2


def test_dashboard_reconnects_and_resubscribes_after_a_server_restart(
    gateway: Gateway, page: Page, screenshot: Screenshot
) -> None:
    # signed in by the URL (as `tickcast demo` prints it): the key leaves the address bar
    open_dashboard(page, gateway, f"?token={gateway.account.api_key}")
    expect(page.locator("#status")).to_have_text(re.compile("signed in"))
    assert "token=" not in page.url
    portfolio = f'[data-portfolio-id="{gateway.portfolio_id}"]'
    aapl = 'tr[data-symbol="AAPL"]'
    wait_for_more_updates(page, portfolio, 1)
    assert dashboard_state(page)["reconnects"] == 0  # signing in is not a reconnect

    gateway.server.stop()
    expect(page.locator("#status")).to_have_attribute(
        "data-state", re.compile("^(reconnecting|offline)$")
    )
    expect(page.locator(aapl)).to_have_class("stale")
    screenshot(page, "server-down")

    gateway.restart()
    # the backoff is capped at 30 s, but a few seconds' outage is a few attempts
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=20_000)
    state = dashboard_state(page)
    assert state["reconnects"] == 1
    assert state["authenticated"] is True
    # everything resubscribed: quotes and the portfolio flow again on the new server
    wait_for_more_updates(page, aapl, 2)
    wait_for_more_updates(page, portfolio, 2)
    expect(page.locator(aapl)).to_have_class("live")
    # the signals panel's Socket.IO client is back too (its own back-off, up to 5 s)
    expect(page.locator("#signals-connection")).to_have_attribute(
        "data-state", "connected", timeout=30_000
    )
    # and the leaderboard panel's /ws/top (its own back-off, up to 10 s)
    expect(page.locator("#leaderboard-mode")).to_have_attribute("data-mode", "live", timeout=30_000)
    status = httpx.get(f"{gateway.http}/realtime/status/", timeout=5).json()["global_stats"]
    assert status["fronts"]["realtime"]["connections"] == 1  # the dashboard's client
    assert status["fronts"]["socketio"]["connections"] == 1  # its signals panel
    assert status["fronts"]["leaderboard"]["connections"] == 1  # its leaderboard panel
    assert status["total_connections"] == 3
    assert status["asset_subscriptions"] == len(DEFAULT_SYMBOLS)
    assert status["portfolio_subscriptions"] == 1
    screenshot(page, "reconnected")


def test_dashboard_reconnects_at_once_when_the_browser_comes_back_online(
    gateway: Gateway, page: Page, screenshot: Screenshot
) -> None:
    # jitter pinned to its ceiling, so that the next retry is predictably far off
    page.add_init_script("Math.random = () => 0.999;")
    open_dashboard(page, gateway)
    gateway.server.stop()
    # wait for a retry due more than 3 s from now (the fourth attempt's delay is ~4 s)
    page.wait_for_function(
        "() => { const s = window.tickcast.client.status;"
        " return s.state === 'reconnecting' && s.retryAt - Date.now() > 3000; }",
        timeout=15_000,
    )
    gateway.restart()
    page.context.set_offline(True)
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    screenshot(page, "offline")
    page.context.set_offline(False)  # the browser fires "online": reconnect now
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=2_500)
    wait_for_more_updates(page, 'tr[data-symbol="AAPL"]', 1)
    screenshot(page, "back-online")


# -- the test page


def test_test_page_connects_and_round_trips_a_ping(
    gateway: Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    page.goto(f"{gateway.http}/realtime/test/")
    expect(page.locator("#url")).to_have_value(f"ws://127.0.0.1:{gateway.server.port}/ws/realtime/")
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    log = page.locator("#log")
    expect(log.locator("li.in", has_text='"type":"connection"')).to_have_count(1)

    page.fill("#message", '{"type":"ping","data":{}}')
    page.click("#send")
    expect(log.locator("li.out", has_text='{"type":"ping","data":{}}')).to_have_count(1)
    pong = log.locator("li.in", has_text='"type":"pong"')
    expect(pong).to_have_count(1)
    expect(pong.locator("time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))

    # any text at all goes out as is, and the server's answer is shown
    page.fill("#message", "not json")
    page.click("#send")
    expect(log.locator("li.in", has_text="Invalid JSON")).to_have_count(1)
    screenshot(page, "ping-pong")

    page.click("#disconnect")
    expect(page.locator("#status")).to_have_attribute("data-state", "closed")
    expect(page.locator("#send")).to_be_disabled()
    assert page_log.errors == []


def test_test_page_shows_every_frame_of_a_subscription(gateway: Gateway, page: Page) -> None:
    page.goto(f"{gateway.http}/realtime/test/")
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.click("[data-example=subscribe_asset]")
    page.click("#send")
    updates = page.locator("#log li.in", has_text='"type":"asset_update"')
    expect(updates.first).to_contain_text('"symbol":"AAPL"')
    page.wait_for_function(
        "() => document.querySelectorAll('#log li.in').length >= 5", timeout=10_000
    )


# -- HTTP: headers and files (no browser needed)


def test_pages_and_static_files_have_their_types_csp_and_cache_headers(
    gateway: Gateway,
) -> None:
    with httpx.Client(base_url=gateway.http, timeout=5) as http:
        for path in ("/realtime/dashboard/", "/realtime/test/"):
            r = http.get(path)
            assert r.status_code == 200
            assert r.headers["content-type"] == "text/html; charset=utf-8"
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp
            assert "connect-src 'self' ws: wss:" in csp
            assert r.headers["cache-control"] == "no-cache"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert "<script>" not in r.text  # no inline script: only modules from /static
            links = re.findall(r"(?:src|href)=\"([^\"]*)\"", r.text)
            assert links
            assert all(link.startswith("../") for link in links), links  # nothing off-site
        expected = {
            "tickcast.js": "text/javascript; charset=utf-8",
            "dashboard.js": "text/javascript; charset=utf-8",
            "test.js": "text/javascript; charset=utf-8",
            "style.css": "text/css; charset=utf-8",
            "favicon.svg": "image/svg+xml",
        }
        for name, media_type in expected.items():
            r = http.get(f"/static/{name}")
            assert r.status_code == 200, name
            assert r.headers["content-type"] == media_type
            assert r.headers["cache-control"] == "public, max-age=60"
            assert "etag" in r.headers
            if name.endswith((".js", ".css")):
                assert not re.search(r"https?://", r.text), name
        assert http.get("/static/missing.js").status_code == 404
        assert http.get("/static/../pages.py").status_code == 404
        assert http.get("/static/%2e%2e/pages.py").status_code == 404
        r = http.get("/realtime/dashboard")
        assert r.status_code == 307
        assert r.headers["location"].endswith("/realtime/dashboard/")
