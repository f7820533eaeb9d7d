"""End-to-end fixtures: a real gateway seeded with an account, and a real headless Chromium.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright's Python package
(``executable_path``): nothing is downloaded, ever (no ``playwright install``). Without
that binary the browser tests are skipped, except under ``CI=true``, where a missing
browser is a failure: CI must install it.

Screenshots are written under each test's tmp dir and copied to
``artifacts/screenshots/`` at the repository root, named after the test.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from support.accounts import Account, seed
from support.server import Server, start_server
from tickcast.storage.engine import make_engine
from tickcast.storage.repositories import Portfolios, Users

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
JWT_SECRET = "an-end-to-end-test-secret-of-at-least-32-bytes"
#: The seeded account: 10 AAPL bought at 150 in portfolio "Growth".
USERNAME = "e2e"
PORTFOLIO = "Growth"
#: Fast enough that prices visibly move within a second or two.
SERVER_SETTINGS: dict[str, object] = {
    "rate": 200,
    "batch_ms": 50,
    "update_interval_s": 0.2,
    "jwt_secret": JWT_SECRET,
}

expect.set_options(timeout=10_000)


@dataclass
class Gateway:
    """A running server on a seeded database, and who may sign in to it."""

    server: Server
    account: Account
    database_url: str
    tmp_path: Path

    @property
    def http(self) -> str:
        return self.server.http

    @property
    def portfolio_id(self) -> int:
        return self.account.portfolios[PORTFOLIO]

    def restart(self) -> None:
        """Stop the server and start a new one on the same port and database."""
        port = self.server.port
        self.server.stop()
        logs = self.tmp_path / "after-restart"
        logs.mkdir(exist_ok=True)
        # the same port: the browser must find the server again where it was
        self.server = start_server(
            logs, port=port, database_url=self.database_url, **SERVER_SETTINGS
        )


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A fresh server per test (one test restarts it), seeded before it starts: the
    server loads portfolios at start."""
    database_url = f"sqlite+aiosqlite:///{tmp_path}/e2e.db"
    users = {USERNAME: {PORTFOLIO: [("AAPL", "buy", "10", "150")]}}
    # in a thread of its own: Playwright's sync API keeps an event loop running on this one
    with ThreadPoolExecutor(1) as pool:
        accounts = pool.submit(lambda: asyncio.run(seed(database_url, users))).result()
    server = start_server(tmp_path, database_url=database_url, **SERVER_SETTINGS)
    gw = Gateway(server, accounts[USERNAME], database_url, tmp_path)
    try:
        yield gw
    finally:
        gw.server.stop()


def require_chromium() -> None:
    """Skip without Debian's chromium; under CI=true its absence is a failure."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class PageLog:
    """What a page said: console errors, uncaught exceptions, and every request URL."""

    errors: list[str]
    requests: list[str]


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    log = PageLog([], [])

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            log.errors.append(message.text)

    tab.on("console", console)
    tab.on("pageerror", lambda exc: log.errors.append(f"uncaught: {exc}"))
    tab.on("request", lambda req: log.requests.append(req.url))
    request.node.page_log = log
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def page_log(page: Page, request: pytest.FixtureRequest) -> PageLog:
    log: PageLog = request.node.page_log
    return log


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Page, str], Path]:
    """``screenshot(page, "step")`` saves ``<test name>-<step>.png`` under the test's tmp
    dir and copies it to ``artifacts/screenshots/``."""
    name = request.node.name

    def take(page: Page, step: str) -> Path:
        path = tmp_path / "screenshots" / f"{name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, ARTIFACTS / path.name)
        return path

    return take


def dashboard_state(page: Page) -> dict[str, Any]:
    """The dashboard client's status, as the page shows it."""
    state: dict[str, Any] = page.evaluate("() => window.tickcast.client.status")
    return state


# -- Front 4's pages: the leaderboard panel and the operations page

#: A user with the operator role (no portfolio), who may open the operations page.
OPERATOR = "ops"
#: Public portfolios on the leaderboard, by owner; "e2e" also owns a private one.
PUBLIC_PORTFOLIOS = {USERNAME: PORTFOLIO, "alice": "Value", "bob": "Tech"}
PRIVATE_PORTFOLIO = "Private"
#: Quick leaderboard batches and monitoring ticks; a disk alert that is always open (any
#: disk in use is over 1 %).
FRONT4_SETTINGS: dict[str, object] = {
    **SERVER_SETTINGS,
    "leaderboard_window_ms": 100,
    "monitoring_interval_s": 0.5,
    "alert_disk_percent": 1,
}


@dataclass
class Front4Gateway:
    """A running server whose database holds public portfolios and an operator."""

    server: Server
    accounts: dict[str, Account]

    @property
    def http(self) -> str:
        return self.server.http


async def _seed_front4(database_url: str) -> dict[str, Account]:
    users = {
        USERNAME: {
            PORTFOLIO: [("AAPL", "buy", "10", "150")],
            PRIVATE_PORTFOLIO: [("MSFT", "buy", "1", "300")],
        },
        "alice": {"Value": [("MSFT", "buy", "5", "250")]},
        "bob": {"Tech": [("NVDA", "buy", "2", "600")]},
        OPERATOR: {},
    }
    accounts = await seed(database_url, users)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await Users(conn).set_role(accounts[OPERATOR].user_id, "operator")
            for owner, name in PUBLIC_PORTFOLIOS.items():
                await Portfolios(conn).set_public(accounts[owner].portfolios[name], True)
    finally:
        await engine.dispose()
    return accounts


@pytest.fixture
def front4_gateway(tmp_path: Path) -> Iterator[Front4Gateway]:
    """A fresh server on a database with three public portfolios (three owners), one
    private one, and an operator; seeded before it starts."""
    database_url = f"sqlite+aiosqlite:///{tmp_path}/front4.db"
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
        accounts = pool.submit(lambda: asyncio.run(_seed_front4(database_url))).result()
    server = start_server(tmp_path, database_url=database_url, **FRONT4_SETTINGS)
    try:
        yield Front4Gateway(server, accounts)
    finally:
        server.stop()


class SocketGate:
    """The page's WebSockets whose URL matches ``pattern``, through a gate: open, they
    reach the server unchanged; blocked, each is refused before it opens (as by a proxy
    that drops the upgrade: the page sees a close, never an open). ``block()`` also
    drops the ones open now, on both sides (the server's side too: left open, it would
    hold one of the user's connection slots). Set it up before the page connects."""

    def __init__(self, context: BrowserContext, pattern: str | re.Pattern[str]) -> None:
        self.blocked = False
        self.refused = 0
        self.open: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        context.route_web_socket(pattern, self._route)

    def _route(self, ws: WebSocketRoute) -> None:
        if self.blocked:
            self.refused += 1
            ws.close(code=1011, reason="blocked by the test")
            return
        self.open.append((ws, ws.connect_to_server()))

    def block(self) -> None:
        self.blocked = True
        for page_side, server_side in self.open:
            server_side.close(code=1000, reason="blocked by the test")
            page_side.close(code=1011, reason="blocked by the test")
        self.open.clear()

    def unblock(self) -> None:
        self.blocked = False
