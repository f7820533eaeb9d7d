"""The operations page (``/operations/``) end to end: a real `tickcast serve` and a real
headless Chromium.

The page opens one monitoring socket per panel (``/ws/alerts``, ``/ws/metrics``,
``/ws/pipeline``, ``/ws/telemetry``, ``/ws/dlq``) with the signed-in user's JWT as
``?token=``. An operator sees every panel fill and keep updating (the server ticks every
0.5 s here, and its disk alert threshold is 1 %, so a disk alert is open); a user without
the operator role, or nobody, sees the server's refusal. The fallback: with the
monitoring sockets through a gate (conftest.SocketGate) that refuses them, the panels
keep updating by polling ``/api/monitoring/...``, then return to live once the gate
opens. Every wait is for a condition with a timeout.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from e2e.conftest import OPERATOR, USERNAME, Front4Gateway, PageLog, SocketGate

Screenshot = Callable[[Page, str], Path]
PANELS = ["alerts", "metrics", "pipeline", "telemetry", "dlq"]
MONITORING_SOCKETS = re.compile(r"/ws/(alerts|metrics|pipeline|telemetry|dlq)\b")
#: The back-off's cap (stream.js) plus a start, polls and a busy machine's slack.
RETURN_TIMEOUT_MS = 40_000


def sign_in(page: Page, api_key: str) -> None:
    page.fill("#api-key", api_key)
    page.click("#signin button[type=submit]")
    expect(page.locator("#account")).to_be_visible()


def open_as(page: Page, gateway: Front4Gateway, username: str) -> None:
    page.goto(f"{gateway.http}/operations/")
    sign_in(page, gateway.accounts[username].api_key)
    expect(page.locator("#username")).to_have_text(username)
    expect(page.locator("#role")).to_have_text("(operator)" if username == OPERATOR else "(user)")


def updates(page: Page, panel: str) -> int:
    return int(page.locator(f"#{panel}-panel").get_attribute("data-updates") or 0)


def wait_for_updates(
    page: Page, panel: str, more: int, source: str, timeout_ms: int = 20_000
) -> None:
    """Wait until the panel was painted `more` more times, the last from `source`."""
    page.wait_for_function(
        """([selector, floor, source]) => {
            const panel = document.querySelector(selector);
            return Number(panel.dataset.updates) >= floor && panel.dataset.source === source;
        }""",
        arg=[f"#{panel}-panel", updates(page, panel) + more, source],
        timeout=timeout_ms,
    )


def modes(page: Page) -> dict[str, str | None]:
    return {
        name: page.locator(f"#{name}-panel .mode").get_attribute("data-mode") for name in PANELS
    }


def test_an_operator_sees_alerts_metrics_pipeline_and_telemetry_live(
    front4_gateway: Front4Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    open_as(page, front4_gateway, OPERATOR)
    expect(page.locator("#status")).to_have_attribute("data-mode", "live")
    for name in PANELS:
        expect(page.locator(f"#{name}-panel .mode")).to_have_attribute("data-mode", "live")
    expect(page.locator("#refusal")).to_be_hidden()

    # alerts: the disk alert is open (threshold 1 %), open ones first
    open_alerts = page.locator("#alerts tbody tr.alert.open")
    expect(open_alerts.first).to_be_visible()
    severities = page.locator("#alerts tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.severity, r.classList.contains('resolved')])"
    )
    assert all(s in {"CRITICAL", "HIGH", "MEDIUM", "LOW"} for s, _ in severities), severities
    resolved_flags = [resolved for _, resolved in severities]
    assert resolved_flags == sorted(resolved_flags), "open alerts come first"
    expect(page.locator("#alerts tbody")).to_contain_text(re.compile("disk", re.IGNORECASE))

    # metrics: every gauge filled, and new samples keep coming over the socket
    for metric in ("cpu", "memory", "disk"):
        expect(page.locator(f'[data-metric="{metric}"] .value')).to_have_text(
            re.compile(r"^\d+(\.\d)?%$")
        )
    expect(page.locator('[data-metric="network"] .in')).to_have_text(re.compile(r"\d"))
    wait_for_updates(page, "metrics", 2, "ws")

    # the pipeline: the simulator feeds the gateway
    simulator = page.locator('#providers tr[data-provider="simulator"]')
    expect(simulator).to_be_visible()
    expect(page.locator("#hub")).to_contain_text("Outbox depth")
    # telemetry: connections per front, with a total
    expect(page.locator('#connections tr[data-front="total"]')).to_be_visible()
    expect(page.locator("#telemetry")).to_contain_text("Latency p99")
    wait_for_updates(page, "telemetry", 1, "ws")
    screenshot(page, "operator")

    assert page_log.errors == []
    assert all(url.startswith(front4_gateway.http) for url in page_log.requests), [
        url for url in page_log.requests if not url.startswith(front4_gateway.http)
    ]


def test_the_operations_page_shows_the_refusal_to_a_non_operator_and_to_nobody(
    front4_gateway: Front4Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    page.goto(f"{front4_gateway.http}/operations/")
    refusal = page.locator("#refusal")
    # nobody signed in: authentication required (3503), every panel refused
    expect(refusal).to_be_visible()
    expect(refusal).to_have_attribute("data-code", "3503")
    expect(refusal).to_contain_text("Sign in with an operator's API key")
    expect(page.locator("#status")).to_have_attribute("data-mode", "closed")
    screenshot(page, "anonymous")

    # a user without the operator role: forbidden (3504), in the server's words
    sign_in(page, front4_gateway.accounts[USERNAME].api_key)
    expect(refusal).to_have_attribute("data-code", "3504")
    expect(refusal).to_contain_text("operator role")
    expect(page.locator("#role")).to_have_text("(user)")
    for name in PANELS:
        expect(page.locator(f"#{name}-panel .mode")).to_have_attribute("data-mode", "closed")
    expect(page.locator("#alerts tbody tr")).to_have_count(0)
    assert page.locator("#metrics-panel").get_attribute("data-updates") is None
    screenshot(page, "not-operator")

    # the same tab as the operator: the panels fill
    page.click("#signout")
    open_as(page, front4_gateway, OPERATOR)
    expect(page.locator("#status")).to_have_attribute("data-mode", "live")
    expect(refusal).to_be_hidden()
    assert page_log.errors == []


def test_the_operations_page_polls_while_the_websockets_are_blocked_then_returns_live(
    front4_gateway: Front4Gateway, page: Page, page_log: PageLog, screenshot: Screenshot
) -> None:
    gate = SocketGate(page.context, MONITORING_SOCKETS)
    open_as(page, front4_gateway, OPERATOR)
    expect(page.locator("#status")).to_have_attribute("data-mode", "live")
    wait_for_updates(page, "metrics", 1, "ws")

    # blocked: every socket drops, every new attempt is refused before it opens
    gate.block()
    expect(page.locator("#status")).to_have_attribute("data-mode", "polling")
    for name in PANELS:
        expect(page.locator(f"#{name}-panel .mode")).to_have_attribute("data-mode", "polling")
    # metrics change at every tick: each poll brings a new sample
    wait_for_updates(page, "metrics", 2, "poll")
    wait_for_updates(page, "telemetry", 1, "poll")
    expect(page.locator("#alerts tbody tr.alert.open").first).to_be_visible()
    # no dead letters come: each poll after the first is a 304 (If-None-Match), painted once
    page.wait_for_function("() => window.tickcast.feeds.get('dlq').counts.notModified >= 1")
    assert page.evaluate("() => window.tickcast.feeds.get('dlq').counts.poll") == 1
    assert gate.refused >= 1
    screenshot(page, "polling")

    # open again: each panel's next attempt connects, and polling stops
    gate.unblock()
    expect(page.locator("#status")).to_have_attribute(
        "data-mode", "live", timeout=RETURN_TIMEOUT_MS
    )
    assert set(modes(page).values()) == {"live"}
    wait_for_updates(page, "metrics", 2, "ws")
    screenshot(page, "live-again")
    assert page_log.errors == []
