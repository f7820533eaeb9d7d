"""The dashboard's leaderboard panel end to end: a real `tickcast serve` on a database
with three public portfolios (three owners) and a private one, and a real headless
Chromium.

The panel reads ``/ws/top?n=10`` (``top-performers``, at once and when the top changes)
and, while that socket cannot connect, polls ``/api/leaderboard/top?n=10`` with
If-None-Match. The fallback is seen by putting the page's ``/ws/top`` through a gate
(conftest.SocketGate, Playwright's ``route_web_socket``): blocked, every attempt is
refused before it opens, and the panel keeps updating by polling; open again, the next
attempt connects and the panel is live. Every wait is for a condition with a timeout.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from e2e.conftest import (
    PORTFOLIO,
    PRIVATE_PORTFOLIO,
    PUBLIC_PORTFOLIOS,
    USERNAME,
    Front4Gateway,
    PageLog,
    SocketGate,
)

Screenshot = Callable[[Page, str], Path]
#: The back-off's cap (stream.js) plus a start, polls and a busy machine's slack.
RETURN_TIMEOUT_MS = 40_000
PERCENT = re.compile(r"^[+-]?\d+\.\d\d%$")
MONEY = re.compile(r"^[+-]?\$[\d,]+\.\d\d$")


def updates(page: Page) -> int:
    return int(page.locator("#leaderboard").get_attribute("data-updates") or 0)


def wait_for_updates(page: Page, more: int, source: str, timeout_ms: int = 20_000) -> None:
    """Wait until the table was painted `more` more times, the last from `source`."""
    page.wait_for_function(
        """([floor, source]) => {
            const table = document.querySelector('#leaderboard');
            return Number(table.dataset.updates) >= floor && table.dataset.source === source;
        }""",
        arg=[updates(page) + more, source],
        timeout=timeout_ms,
    )


def test_the_leaderboard_panel_shows_the_public_portfolios_live(
    front4_gateway: Front4Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    page.goto(f"{front4_gateway.http}/realtime/dashboard/")
    panel = page.locator("#leaderboard-panel")
    expect(panel.locator("#leaderboard-mode")).to_have_attribute("data-mode", "live")
    rows = panel.locator("#leaderboard tbody tr")
    expect(rows).to_have_count(len(PUBLIC_PORTFOLIOS))  # the private one is not there
    assert page.locator("#leaderboard").get_attribute("data-source") == "ws"

    shown = rows.evaluate_all(
        """rows => rows.map(r => ({
            rank: r.querySelector('.rank').textContent,
            name: r.querySelector('.name').textContent,
            owner: r.querySelector('.owner').textContent,
            move: r.querySelector('.move').textContent,
            ret: r.querySelector('.return').textContent,
            value: r.querySelector('.total-value').textContent,
            change: r.querySelector('.daily-change').textContent,
        }))"""
    )
    assert [row["rank"] for row in shown] == ["1", "2", "3"]
    assert {(row["owner"], row["name"]) for row in shown} == set(PUBLIC_PORTFOLIOS.items())
    assert PRIVATE_PORTFOLIO not in {row["name"] for row in shown}
    for row in shown:
        assert PERCENT.match(row["ret"]), row
        assert MONEY.match(row["value"]), row
        assert MONEY.match(row["change"]), row
        assert re.match(r"^(new|–|▲\d+|▼\d+)$", row["move"]), row
    # the return decides the order: best first
    returns = [float(row["ret"].rstrip("%")) for row in shown]
    assert returns == sorted(returns, reverse=True)

    # live: prices move, values follow, the top is sent again
    wait_for_updates(page, 2, "ws")
    screenshot(page, "leaderboard")

    # signed in as the owner of a public portfolio: the ranks around it, it marked
    around = panel.locator("#leaderboard-around")
    expect(around).to_be_hidden()
    page.fill("#api-key", front4_gateway.accounts[USERNAME].api_key)
    page.click("#signin button[type=submit]")
    expect(around).to_be_visible()
    expect(around.locator(".around-name")).to_have_text(PORTFOLIO)
    expect(around.locator(".badge")).to_have_attribute("data-mode", "live")
    expect(around.locator("tbody tr")).to_have_count(len(PUBLIC_PORTFOLIOS))  # window 2
    mine = around.locator("tbody tr.mine")
    expect(mine).to_have_count(1)
    expect(mine.locator(".name")).to_have_text(PORTFOLIO)
    expect(mine.locator(".owner")).to_have_text(USERNAME)
    expect(panel.locator("#leaderboard-mode")).to_have_attribute("data-mode", "live")
    screenshot(page, "around-mine")

    # the movement column, from previous_rank
    moves = page.evaluate(
        """async () => {
            const { movement } = await import("../../static/leaderboard.js");
            return [
                movement({ rank: 1, previous_rank: 3 }),
                movement({ rank: 4, previous_rank: 2 }),
                movement({ rank: 2, previous_rank: 2 }),
                movement({ rank: 5, previous_rank: null }),
            ].map(([cls, text]) => [cls, text]);
        }"""
    )
    assert moves == [["up", "▲2"], ["down", "▼2"], ["flat", "–"], ["new", "new"]]

    assert page_log.errors == []
    assert all(url.startswith(front4_gateway.http) for url in page_log.requests), [
        url for url in page_log.requests if not url.startswith(front4_gateway.http)
    ]


def test_the_leaderboard_panel_polls_while_its_websocket_is_blocked_then_returns_live(
    front4_gateway: Front4Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    gate = SocketGate(page.context, re.compile(r"/ws/top\b"))
    page.goto(f"{front4_gateway.http}/realtime/dashboard/")
    mode = page.locator("#leaderboard-mode")
    expect(mode).to_have_attribute("data-mode", "live")
    expect(page.locator("#leaderboard tbody tr")).to_have_count(len(PUBLIC_PORTFOLIOS))

    # blocked: the open socket drops, every new attempt is refused before it opens
    gate.block()
    expect(mode).to_have_attribute("data-mode", "polling")
    expect(mode).to_have_text("polling")
    wait_for_updates(page, 2, "poll")  # the board changes, the polls bring it
    expect(page.locator("#leaderboard tbody tr")).to_have_count(len(PUBLIC_PORTFOLIOS))
    page.wait_for_function(
        "() => window.tickcast.leaderboard.feed.counts.poll >= 2"
        " && window.tickcast.leaderboard.feed.attempt >= 1"
    )
    assert gate.refused >= 1  # it kept trying the socket meanwhile
    screenshot(page, "polling")

    # the route fails too: offline, and both are still tried; it answers again: polling
    page.route("**/api/leaderboard/top*", lambda route: route.abort())
    expect(mode).to_have_attribute("data-mode", "offline")
    expect(page.locator("#leaderboard tbody tr")).to_have_count(len(PUBLIC_PORTFOLIOS))
    page.unroute("**/api/leaderboard/top*")
    expect(mode).to_have_attribute("data-mode", "polling")

    # open again: the next attempt connects; polling stops
    gate.unblock()
    expect(mode).to_have_attribute("data-mode", "live", timeout=RETURN_TIMEOUT_MS)
    wait_for_updates(page, 1, "ws")
    polls = page.evaluate("() => window.tickcast.leaderboard.feed.counts.poll")
    wait_for_updates(page, 2, "ws")
    assert page.evaluate("() => window.tickcast.leaderboard.feed.counts.poll") == polls
    screenshot(page, "live-again")
    # Chromium reports each aborted poll; nothing else went wrong
    assert set(page_log.errors) <= {"Failed to load resource: net::ERR_FAILED"}
