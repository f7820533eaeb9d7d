"""Front 3 with the real JavaScript clients: @stomp/stompjs 7 and @stomp/rx-stomp 2 in Node,
over a raw WebSocket (``ws``) and over SockJS (``sockjs-client``), against a real
``tickcast serve`` (docs/stomp.md).

The clients are configured as the seed's Angular analytics service configures rx-stomp
(``reconnectDelay: 5000``, ``heartbeatIncoming``/``heartbeatOutgoing: 10000``,
``webSocketFactory: () => new SockJS(url)``); ``tests/interop/js/client.mjs`` prints every
CONNECTED, MESSAGE and ERROR as a JSON line, and these tests wait for the lines they
need, with deadlines, never for a fixed time.

Node and the packages come from ``tests/interop/js`` (``npm ci`` there; .ci/run does it).
Without ``node`` or ``node_modules`` the tests are skipped, except under ``CI=true``,
where that is a failure.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.accounts import Account, seed
from support.nodejs import JS_DIR, NodeProcess, require_node
from support.server import Server, start_server

CLIENT = JS_DIR / "client.mjs"
#: A restart: the old server stops, a new one starts, the client waits its 5 s
#: reconnectDelay (maybe twice) before it tries again.
RESTART_WAIT_S = 60.0
JWT_SECRET = "an-interop-test-secret-of-at-least-32-bytes-long"
SETTINGS: dict[str, object] = {
    "rate": 400,
    "batch_ms": 50,
    "update_interval_s": 0.2,
    "jwt_secret": JWT_SECRET,
    "log_level": "warning",
}
#: The seeded accounts: ``ana`` holds 10 AAPL bought at 150; ``ben`` holds 5 MSFT.
USERS = {
    "ana": {"Growth": [("AAPL", "buy", "10", "150")]},
    "ben": {"Income": [("MSFT", "buy", "5", "400")]},
}
MARKET = ["/topic/quotes.AAPL", "/topic/trades.AAPL"]
SOCKJS_TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling"]
LIBRARIES = ["stompjs", "rx-stomp"]
Event = dict[str, Any]


class NodeClient(NodeProcess):
    """One ``node client.mjs`` process; its lines are STOMP events."""

    @property
    def events(self) -> list[Event]:
        return self.lines

    def messages(self, destination: str, connection: int | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e["event"] == "message"
            and e["destination"] == destination
            and (connection is None or e["connection"] == connection)
        ]

    def describe(self) -> str:
        kinds = [(e["event"], e.get("destination"), e["connection"]) for e in self.events[-20:]]
        return f"last events: {kinds}; stderr: {self.stderr_path.read_text()[-2000:]}"


@pytest.fixture
def node_client(tmp_path: Path) -> Iterator[Callable[..., NodeClient]]:
    node = require_node("@stomp/rx-stomp")
    started: list[NodeClient] = []

    def start(library: str, url: str, destinations: list[str], **options: Any) -> NodeClient:
        config = {"library": library, "url": url, "destinations": destinations, **options}
        client: NodeClient = NodeClient.spawn(
            node, CLIENT, config, tmp_path / f"node-{len(started)}.stderr"
        )
        started.append(client)
        return client

    try:
        yield start
    finally:
        for client in started:
            client.close()


@dataclass
class World:
    server: Server
    accounts: dict[str, Account]

    @property
    def websocket(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/stomp/websocket"

    @property
    def sockjs(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/stomp"

    def jwt(self, username: str) -> str:
        response = httpx.post(
            f"{self.server.http}/api/auth/token",
            headers={"X-API-Key": self.accounts[username].api_key},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


def seeded(tmp: Path) -> tuple[str, dict[str, Account]]:
    url = f"sqlite+aiosqlite:///{tmp}/interop.db"
    return url, asyncio.run(seed(url, USERS))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("stomp-js")
    url, accounts = seeded(tmp)
    server = start_server(tmp, database_url=url, **SETTINGS)
    try:
        yield World(server, accounts)
    finally:
        server.stop()


# -- what every client must see


def assert_connected(client: NodeClient, connection: int = 1) -> Event:
    connected = client.until(lambda e: e["event"] == "connected" and e["connection"] == connection)
    headers = connected["headers"]
    assert headers["version"] == "1.2"
    assert headers["heart-beat"] == "10000,10000"  # the seed asks 10000,10000: so do we
    assert headers["server"].startswith("tickcast/")
    return connected


def assert_message_headers(message: Event) -> tuple[str, int]:
    """The documented MESSAGE headers; returns (epoch, seq)."""
    headers = message["headers"]
    topic = message["destination"].removeprefix("/topic/")
    epoch, seq = headers["epoch"], int(headers["seq"])
    assert headers["subscription"]
    assert headers["message-id"] == f"{topic}-{epoch}-{seq}"
    assert headers["content-type"] == "application/json"
    return epoch, seq


def assert_quote(body: Any) -> None:
    assert body["symbol"] == "AAPL"
    for name in ("price", "bid", "ask", "volume"):
        assert isinstance(body[name], int | float), body
    assert body["bid"] <= body["ask"]
    assert body["timestamp"].endswith("Z")


def assert_trade(body: Any) -> None:
    assert body["type"] == "trade"
    assert body["symbol"] == "AAPL"
    assert isinstance(body["price"], int | float)
    assert body["price"] > 0
    assert isinstance(body["size"], int | float)
    assert body["size"] > 0
    assert body["trade_id"]


def assert_market_data(client: NodeClient, connection: int = 1) -> str:
    """Quotes and two consecutive trades of AAPL on this connection; returns the epoch."""
    quotes, trades = MARKET

    def enough(_: Event) -> bool:
        return (
            len(client.messages(quotes, connection)) >= 2
            and len(client.messages(trades, connection)) >= 2
        )

    client.until(enough)
    epochs = set()
    for destination in MARKET:
        received = client.messages(destination, connection)
        # one subscription per destination: every MESSAGE names the same one
        assert len({m["headers"]["subscription"] for m in received}) == 1
        for message in received:
            epoch, _ = assert_message_headers(message)
            epochs.add(epoch)
            assert "reset" not in message["headers"]
            (assert_quote if destination == quotes else assert_trade)(message["body"])
    # the two destinations are two subscriptions
    assert (
        client.messages(quotes, connection)[0]["headers"]["subscription"]
        != (client.messages(trades, connection)[0]["headers"]["subscription"])
    )
    seqs = [int(m["headers"]["seq"]) for m in client.messages(trades, connection)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # trades are reliable, in order
    (epoch,) = epochs
    return epoch


# -- market data over the raw WebSocket (/stomp/websocket)


@pytest.mark.parametrize("library", LIBRARIES)
def test_client_over_websocket_reads_quotes_and_trades(
    world: World, node_client: Callable[..., NodeClient], library: str
) -> None:
    client = node_client(library, world.websocket, MARKET)
    assert_connected(client)
    assert_market_data(client)
    assert not [e for e in client.events if e["event"] == "stomp-error"]


# -- market data over SockJS (/stomp), once per transport


@pytest.mark.parametrize("transport", SOCKJS_TRANSPORTS)
@pytest.mark.parametrize("library", LIBRARIES)
def test_client_over_sockjs_reads_quotes_and_trades(
    world: World, node_client: Callable[..., NodeClient], library: str, transport: str
) -> None:
    client = node_client(library, world.sockjs, MARKET, transports=[transport])
    opened = client.until(lambda e: e["event"] == "transport")
    assert opened["transport"] == transport
    assert_connected(client)
    assert_market_data(client)
    assert not [e for e in client.events if e["event"] == "stomp-error"]


def test_rx_stomp_over_sockjs_with_the_seeds_defaults_picks_websocket(
    world: World, node_client: Callable[..., NodeClient]
) -> None:
    """``new SockJS(url)`` with no options, exactly as the seed: the best transport."""
    client = node_client("rx-stomp", world.sockjs, MARKET)
    assert client.until(lambda e: e["event"] == "transport")["transport"] == "websocket"
    assert_connected(client)
    assert_market_data(client)


# -- through a server restart


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Callable[[], World]]:
    """A server of this test's own; calling the fixture's value restarts it on its port
    and database (a new epoch)."""
    url, accounts = seeded(tmp_path)
    servers = [start_server(tmp_path, database_url=url, **SETTINGS)]
    world = World(servers[0], accounts)

    def restart() -> World:
        port = world.server.port
        world.server.stop()
        logs = tmp_path / f"run-{len(servers) + 1}"
        logs.mkdir()
        world.server = start_server(logs, port=port, database_url=url, **SETTINGS)
        servers.append(world.server)
        return world

    restart.world = world  # type: ignore[attr-defined]
    try:
        yield restart
    finally:
        world.server.stop()


def endpoint(world: World, kind: str) -> str:
    return world.websocket if kind == "websocket" else world.sockjs


@pytest.mark.parametrize("kind", ["websocket", "sockjs"])
def test_rx_stomp_reconnects_and_subscribes_again_by_itself_after_a_restart(
    restartable: Callable[[], World], node_client: Callable[..., NodeClient], kind: str
) -> None:
    world: World = restartable.world  # type: ignore[attr-defined]
    client = node_client("rx-stomp", endpoint(world, kind), MARKET)
    assert_connected(client)
    before = assert_market_data(client)
    restartable()
    assert_connected(client, connection=2)
    client.until(lambda e: e["event"] == "message" and e["connection"] == 2, RESTART_WAIT_S)
    after = assert_market_data(client, connection=2)
    assert after != before  # a new server: a new epoch


@pytest.mark.parametrize("kind", ["websocket", "sockjs"])
def test_stompjs_resubscribing_with_resume_headers_gets_a_reset_after_a_restart(
    restartable: Callable[[], World], node_client: Callable[..., NodeClient], kind: str
) -> None:
    """Plain stompjs does not subscribe again: its onConnect does, with resume-epoch and
    resume-seq from the last MESSAGE. Another epoch cannot be resumed: a reset, then live
    trades of the new epoch."""
    world: World = restartable.world  # type: ignore[attr-defined]
    client = node_client("stompjs", endpoint(world, kind), MARKET, resume=True)
    assert_connected(client)
    old_epoch = assert_market_data(client)
    restartable()
    assert_connected(client, connection=2)
    trades = MARKET[1]
    last_seen = client.messages(trades, 1)[-1]["headers"]["seq"]
    client.until(
        lambda e: len(client.messages(trades, 2)) >= 3,
        RESTART_WAIT_S,
    )
    reset, *live = client.messages(trades, 2)
    headers = reset["headers"]
    assert headers["reset"] == "epoch_changed", reset
    assert headers["requested"] == last_seen
    assert headers["epoch"] != old_epoch
    assert reset["body"]["type"] == "reset"
    assert reset["body"]["topic"] == "trades.AAPL"
    assert reset["body"]["reason"] == "epoch_changed"
    for message in live:
        assert "reset" not in message["headers"]
        assert message["headers"]["epoch"] == headers["epoch"]
        assert_trade(message["body"])
    seqs = [int(m["headers"]["seq"]) for m in live]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


# -- the signed-in user's portfolio destinations

POSITIONS = "/topic/position-update"
PNL = "/topic/unrealized-pnl"


def items(body: Any) -> list[Any]:
    """position-update carries one position object or an array of them."""
    return body if isinstance(body, list) else [body]


def credentials(world: World, how: str, username: str) -> dict[str, str]:
    if how == "jwt-passcode":  # as the seed's STOMP clients send them
        return {"login": username, "passcode": world.jwt(username)}
    return {"Authorization": f"Bearer {world.accounts[username].api_key}"}


@pytest.mark.parametrize("how", ["jwt-passcode", "api-key-bearer"])
@pytest.mark.parametrize("kind", ["sockjs", "websocket"])
def test_signed_in_rx_stomp_reads_its_own_positions_and_unrealized_pnl(
    world: World, node_client: Callable[..., NodeClient], kind: str, how: str
) -> None:
    ana, ben = world.accounts["ana"], world.accounts["ben"]
    mine, theirs = ana.portfolios["Growth"], ben.portfolios["Income"]
    client = node_client(
        "rx-stomp",
        endpoint(world, kind),
        [POSITIONS, PNL],
        connectHeaders=credentials(world, how, "ana"),
    )
    assert_connected(client)

    def own_position(event: Event) -> bool:
        if event["event"] != "message" or event["destination"] != POSITIONS:
            return False
        return any(p["id"] == {"portfolioId": mine, "symbol": "AAPL"} for p in items(event["body"]))

    position = next(
        p
        for p in items(client.until(own_position)["body"])
        if p["id"] == {"portfolioId": mine, "symbol": "AAPL"}
    )
    assert float(position["holdings"]) == 10
    assert float(position["totalInvested"]) == 1500  # 10 at 150
    assert float(position["realizedPnl"]) == 0
    assert position["createdAt"]
    assert position["updatedAt"]

    # unrealized P&L is live: it follows AAPL's price
    client.until(lambda _: len(client.messages(PNL)) >= 2)
    for message in client.messages(PNL):
        assert isinstance(message["body"], list)
        for row in message["body"]:
            assert set(row) == {"symbol", "overallUnrealised_Pnl", "portfolio_id"}
            assert row["portfolio_id"] == mine  # only the signed-in user's
            assert math.isfinite(float(row["overallUnrealised_Pnl"]))
    rows = [r for m in client.messages(PNL) for r in m["body"]]
    assert any(r["symbol"] == "AAPL" for r in rows)

    # never another user's portfolio
    for message in client.messages(POSITIONS):
        assert all(p["id"]["portfolioId"] != theirs for p in items(message["body"]))
    assert not [e for e in client.events if e["event"] == "stomp-error"]


@pytest.mark.parametrize("kind", ["websocket", "sockjs"])
@pytest.mark.parametrize("destination", [POSITIONS, PNL])
def test_an_anonymous_subscription_to_a_portfolio_destination_is_refused(
    world: World, node_client: Callable[..., NodeClient], destination: str, kind: str
) -> None:
    """A destination the client may not read: ERROR (docs/stomp.md), and no data. Over
    SockJS too: the ERROR frame reaches the client before the session closes."""
    client = node_client("stompjs", endpoint(world, kind), [destination])
    assert_connected(client)
    error = client.until(lambda e: e["event"] == "stomp-error")
    assert error["headers"]["message"]
    assert not client.messages(destination)


# -- the browser's copies of the libraries

VENDOR = Path(__file__).resolve().parents[2] / "src" / "tickcast" / "web" / "static" / "vendor"
BUNDLES = {
    "sockjs.min.js": "sockjs-client/dist/sockjs.min.js",
    "rxjs.umd.min.js": "rxjs/dist/bundles/rxjs.umd.min.js",
    "stomp.umd.min.js": "@stomp/stompjs/bundles/stomp.umd.min.js",
    "rx-stomp.umd.min.js": "@stomp/rx-stomp/bundles/rx-stomp.umd.min.js",
    # the dashboard's signals panel
    "socket.io.min.js": "socket.io-client/dist/socket.io.min.js",
}


@pytest.mark.parametrize("vendored", sorted(BUNDLES))
def test_the_analytics_pages_bundles_are_the_packages_tested_here(vendored: str) -> None:
    """static/vendor/ holds the very builds of the locked versions (vendor/README.md)."""
    require_node(BUNDLES[vendored].split("/dist/")[0].split("/bundles/")[0])
    installed = JS_DIR / "node_modules" / BUNDLES[vendored]
    assert (VENDOR / vendored).read_bytes() == installed.read_bytes()
    licence = {
        "sockjs": "sockjs-client",
        "rxjs": "rxjs",
        "stomp": "stompjs",
        "rx-stomp": "rx-stomp",
        "socket": "socket.io-client",
    }
    assert (VENDOR / f"{licence[vendored.split('.')[0]]}.LICENSE").is_file()
