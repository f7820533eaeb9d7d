"""Front 5 with the real JavaScript client: socket.io-client 4 in Node, as the seed's
React front end uses it (``io(url, options)``), against the real server (uvicorn with
tickcast's protocol classes, in a thread of this process, so that a test publishes
signals through the node's publisher as the signal service does; docs/socketio.md).

``tests/interop/js/socketio_client.mjs`` prints every connect, event, acknowledgement,
connect_error, upgrade and disconnect as a JSON line; these tests wait for the lines
they need, with deadlines, never for a fixed time.

Node and the packages come from ``tests/interop/js`` (``npm ci`` there; .ci/run does it).
Without ``node`` or ``node_modules`` the tests are skipped, except under ``CI=true``,
where that is a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.accounts import Account, seed
from support.inprocess import InProcessServer
from support.nodejs import JS_DIR, NodeProcess, require_node
from tickcast.config.settings import Settings
from tickcast.model.signal import Signal, WorkerStatus

CLIENT = JS_DIR / "socketio_client.mjs"
ORIGIN = "http://good.example"
Line = dict[str, Any]


class NodeClient(NodeProcess):
    """One ``node socketio_client.mjs`` process; its lines are connects, events,
    acknowledgements, connect errors, upgrades and disconnects."""

    def events(self, name: str) -> list[Any]:
        return [
            line["body"] for line in self.lines if line["kind"] == "event" and line["name"] == name
        ]


def spawn(node: str, config: dict[str, Any], stderr_path: Path) -> NodeClient:
    """``socketio_client.mjs`` with ``config`` (``url``, ``transports``, options)."""
    client: NodeClient = NodeClient.spawn(node, CLIENT, config, stderr_path)
    return client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessServer, Account]]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('socketio-js')}/tickcast.db"
    accounts = asyncio.run(seed(url, {"ana": {}}))
    settings = Settings(
        database_url=url,
        rate=200,
        batch_ms=20,
        allowed_origins=(ORIGIN,),
        log_level="warning",
        socketio_ping_interval_s=2.0,
        socketio_ping_timeout_s=5.0,
    )
    srv = InProcessServer(settings).start()
    yield srv, accounts["ana"]
    srv.stop()


@pytest.fixture
def node_client(
    tmp_path: Path, world: tuple[InProcessServer, Account]
) -> Iterator[Callable[..., NodeClient]]:
    node = require_node("socket.io-client")
    started: list[NodeClient] = []

    def start(transports: list[str], **options: Any) -> NodeClient:
        options.setdefault("extraHeaders", {"Origin": ORIGIN})
        config = {"url": world[0].url, "transports": transports, **options}
        client = spawn(node, config, tmp_path / f"node-{len(started)}.stderr")
        started.append(client)
        return client

    try:
        yield start
    finally:
        for client in started:
            client.close()


def signal(n: int, symbol: str = "BTC/USDT") -> Signal:
    return Signal(
        "QUANTUM_CIPHER", "BUY", 162.5, symbol, "1m", "2026-01-02T03:04:05.000Z", f"js-{n}", "test"
    )


def seed_shape(sig: Signal) -> dict[str, Any]:
    return {f: getattr(sig, f) for f in sig.__struct_fields__}


def is_event(name: str) -> Callable[[Line], bool]:
    return lambda line: line["kind"] == "event" and line["name"] == name


@pytest.mark.parametrize(
    ("transports", "final"),
    [(["websocket"], "websocket"), (["polling"], "polling"), (["polling", "websocket"], None)],
    ids=["websocket", "polling", "upgrade"],
)
def test_welcome_new_signal_and_status_update(
    world: tuple[InProcessServer, Account],
    node_client: Callable[..., NodeClient],
    transports: list[str],
    final: str | None,
) -> None:
    srv = world[0]
    client = node_client(transports)
    opened = client.until(lambda line: line["kind"] == "open")
    assert opened["transport"] == transports[0]
    connected = client.until(lambda line: line["kind"] == "connect")
    welcome = client.until(is_event("welcome"))
    first = next(line for line in client.lines if line["kind"] == "event")
    assert first == welcome  # the first event
    assert client.events("welcome") == [welcome["body"]]  # once
    assert client.lines.index(welcome) > client.lines.index(connected)
    assert isinstance(welcome["body"]["message"], str)
    if final is None:  # polling first, then the upgrade
        assert client.until(lambda line: line["kind"] == "upgrade")["transport"] == "websocket"
    sig = signal(hash(tuple(transports)) & 0xFFFF)
    srv.publish([sig])
    # a message of this test's own: a client is sent each worker's current status on
    # connect, which an earlier test of the module may have set
    message = f"listening ({'+'.join(transports)})"
    srv.publish([WorkerStatus("SignalMonitorWorker", "active", message)])
    ours = {"service": "SignalMonitorWorker", "status": "active", "message": message}
    # the signal service's own statuses come too (each worker's current state on
    # connect, then each change): the one published here is among them
    client.until(lambda line: is_event("status_update")(line) and line["body"] == ours)
    assert client.events("new_signal") == [seed_shape(sig)]
    assert ours in client.events("status_update")


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
def test_connect_error_carries_the_refusal(
    node_client: Callable[..., NodeClient], transports: list[str]
) -> None:
    bad_token = node_client(transports, auth={"token": "tc_nope_nope"})
    refused = bad_token.until(lambda line: line["kind"] == "connect_error")
    assert refused["message"].startswith("Invalid API key")
    foreign = node_client(transports, extraHeaders={"Origin": "http://evil.example"})
    refused = foreign.until(lambda line: line["kind"] == "connect_error")
    assert "origin" in refused["message"].lower()


def test_a_token_in_auth_and_a_subscription_with_its_ack(
    world: tuple[InProcessServer, Account], node_client: Callable[..., NodeClient]
) -> None:
    srv, ana = world
    selection = {"symbols": ["AAPL"], "channels": ["signals"]}
    client = node_client(
        ["websocket"], auth={"token": ana.api_key}, emit=[["subscribe", selection]]
    )
    ack = client.until(lambda line: line["kind"] == "ack")
    assert ack["body"] == {**selection, "types": None}
    srv.publish([signal(9001, "MSFT"), signal(9002, "AAPL")])
    client.until(is_event("new_signal"))
    assert client.events("new_signal") == [seed_shape(signal(9002, "AAPL"))]
