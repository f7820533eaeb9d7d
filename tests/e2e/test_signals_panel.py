"""The dashboard's signals panel end to end: the vendored socket.io-client in a real
headless Chromium against a real `tickcast serve`.

The panel loads the history over HTTP (``GET /api/signals``), then connects to the
Socket.IO front (``/socket.io/``) and shows each ``new_signal`` and each worker's
``status_update``. A producer publishes with ``POST /api/signals`` (a key with the
``publish:signals`` permission). After a disconnect the panel reconnects with the last
signal id it holds and the server replays what it missed, in order. The engine is off
here so that only the test's signals show. Every wait is for a condition with a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import SERVER_SETTINGS, PageLog
from support.accounts import Account, seed
from support.server import Server, start_server

Screenshot = Callable[[Page, str], Path]
PRODUCER = "producer"


def payload(n: int, symbol: str = "BTC/USDT", side: str = "BUY") -> dict[str, object]:
    return {
        "type": "QUANTUM_CIPHER",
        "signal": side,
        "price": 162.5 + n,
        "symbol": symbol,
        "timeframe": "1m",
        "timestamp": f"2026-12-05T10:00:{n:02d}.000Z",
        "id": f"e2e-{n}",
    }


@pytest.fixture
def producer_gateway(tmp_path: Path) -> Iterator[tuple[Server, Account]]:
    """A server whose database holds a producer allowed to publish signals."""
    database_url = f"sqlite+aiosqlite:///{tmp_path}/signals.db"
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
        accounts = pool.submit(
            lambda: asyncio.run(
                seed(database_url, {PRODUCER: {}}, permissions={PRODUCER: "publish:signals"})
            )
        ).result()
    server = start_server(
        tmp_path, database_url=database_url, signals_engine=False, **SERVER_SETTINGS
    )
    try:
        yield server, accounts[PRODUCER]
    finally:
        server.stop()


def publish(server: Server, producer: Account, body: dict[str, object]) -> None:
    answer = httpx.post(
        f"{server.http}/api/signals",
        json=body,
        headers={"Authorization": f"Bearer {producer.api_key}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text


def shown_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#signals tbody tr", "rows => rows.map(r => r.dataset.id)"
    )
    return ids


def test_the_signals_panel_shows_history_live_signals_statuses_and_catches_up(
    producer_gateway: tuple[Server, Account],
    page: Page,
    page_log: PageLog,
    screenshot: Screenshot,
) -> None:
    server, producer = producer_gateway
    publish(server, producer, payload(1, "ETH/USDT", "SELL"))  # before the page: history
    page.goto(f"{server.http}/realtime/dashboard/")
    panel = page.locator("#signals-panel")
    expect(panel.locator("#signals-connection")).to_have_attribute("data-state", "connected")
    expect(panel.locator("#signals tbody tr")).to_have_count(1)
    assert shown_ids(page) == ["e2e-1"]

    # live: new rows on top, BUY and SELL told apart
    publish(server, producer, payload(2))
    expect(panel.locator("#signals tbody tr")).to_have_count(2)
    assert shown_ids(page) == ["e2e-2", "e2e-1"]
    first = panel.locator("#signals tbody tr").first
    expect(first).to_contain_text("BTC/USDT")
    expect(first).to_contain_text("QUANTUM_CIPHER")
    expect(first.locator("td.up")).to_have_text("BUY")

    # the workers' statuses: each worker's current state arrives on connect
    monitor = panel.locator('#signal-workers [data-service="SignalMonitorWorker"]')
    expect(monitor).to_have_attribute("data-status", "active")
    expect(monitor).to_contain_text("SignalMonitorWorker: active")

    # away, then back: the server replays what the panel missed, in order, once each
    page.evaluate("() => window.tickcast.signals.socket.disconnect()")
    expect(panel.locator("#signals-connection")).to_have_attribute("data-state", "reconnecting")
    publish(server, producer, payload(3))
    publish(server, producer, payload(4, "SOL/USDT", "SELL"))
    page.evaluate("() => window.tickcast.signals.socket.connect()")
    expect(panel.locator("#signals-connection")).to_have_attribute("data-state", "connected")
    expect(panel.locator("#signals tbody tr")).to_have_count(4)
    assert shown_ids(page) == ["e2e-4", "e2e-3", "e2e-2", "e2e-1"]
    screenshot(page, "signals")

    assert page_log.errors == []
    host = server.http
    assert all(url.startswith((host, "data:")) for url in page_log.requests), [
        url for url in page_log.requests if not url.startswith(host)
    ]
