"""The front contract (``fronts/base.py``, ``fronts/registry.py``), proven from outside.

``ShoutFront`` is written here, against the contracts only (``FrontSpec``,
``FrontContext``, ``Opened``, the ``Session`` protocol) and registered here: nothing
outside this module knows it. A real ``tickcast serve`` process (uvicorn, the real
guard and driver) registers it at start (``start_server(setup=...)``) and serves it with
everything a front gets from the contract: origin refusal, the rate limit and the close.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Iterable, Iterator
from types import MappingProxyType

import pytest
import websockets
from starlette.types import Scope

from support.accounts import Account, seed
from support.handshake import close_refusal
from support.server import Server, start_server
from support.wsclient import closed_code
from tickcast.auth.credentials import Principal
from tickcast.clock import Now
from tickcast.closecodes import CloseCode
from tickcast.config.settings import Settings
from tickcast.fronts import registry
from tickcast.fronts import stomp as stomp_front
from tickcast.fronts.base import FrontContext, FrontSpec, Opened
from tickcast.model.envelope import Envelope
from tickcast.model.topic import Topic
from tickcast.protocols.base import (
    Authenticate,
    Authenticated,
    Command,
    Refused,
    Reply,
    Subscribe,
    SubscribeChannel,
    UnsubscribeChannel,
)
from tickcast.protocols.wire import Encoded

ORIGIN = "https://app.example"
SHOUT = "/ws/shout"
#: One message per 1000 s: the burst is all a test gets, whatever the timing.
BURST = 3


class ShoutSession:
    """Each text comes back in capitals; ``bye`` closes normally; ``auth <token>``
    authenticates (the front checks it and answers); ``sub <topic>``, ``all <channel>``
    and ``none <channel>`` subscribe to a topic, to a whole channel, and drop it."""

    def __init__(self, user_id: int | None) -> None:
        self.close_reason: CloseCode | None = None
        self._frames: list[Encoded] = [Encoded(f"HELLO {user_id}".encode(), control=True)]
        self._commands: list[Command] = []

    @property
    def topics(self) -> Collection[Topic]:
        return ()

    def receive_text(self, data: str, now: Now) -> None:
        if data == "bye":
            self.close_reason = CloseCode.NORMAL
            return
        verb, _, rest = data.partition(" ")
        if verb == "auth":
            self._commands.append(Authenticate(rest))
            return
        if verb == "sub":
            self._commands.append(Subscribe((Topic.parse(rest),)))
            return
        if verb == "all":
            self._commands.append(SubscribeChannel(rest))
            return
        if verb == "none":
            self._commands.append(UnsubscribeChannel(rest))
            return
        self._frames.append(Encoded(data.upper().encode(), control=True))

    def receive_bytes(self, data: bytes, now: Now) -> None:
        self.send_error("text only", now)

    def handle_timer(self, now: Now) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def frames_to_send(self) -> list[Encoded]:
        frames, self._frames = self._frames, []
        return frames

    def commands_received(self) -> list[Command]:
        commands, self._commands = self._commands, []
        return commands

    def answer(self, reply: Reply, now: Now) -> None:
        if isinstance(reply, Authenticated):
            self._frames.append(Encoded(f"WELCOME {reply.user_id}".encode(), control=True))
        elif isinstance(reply, Refused):
            self.send_error(reply.message, now)
            self.close_reason = reply.code

    def send_error(self, message: str, now: Now) -> None:
        self._frames.append(Encoded(json.dumps({"error": message}).encode(), control=True))

    def release(self, topics: Iterable[Topic]) -> None:
        pass


def shout_topic(envelope: Envelope) -> bytes:
    """The shout wire: an update is its topic's name."""
    return str(envelope.topic).encode()


SHOUT_CODECS = MappingProxyType({"shout": shout_topic})


class ShoutFront(FrontSpec):
    name = "shout"
    paths = (SHOUT,)
    codecs = SHOUT_CODECS
    guarded = True
    first_message_auth = True

    def open(self, scope: Scope, principal: Principal, ctx: FrontContext) -> Opened:
        return Opened(ShoutSession(principal.user_id), wire="shout")


def shout(settings: Settings) -> ShoutFront:
    return ShoutFront()


def register_shout() -> None:
    """The front's whole registration (run in the server process by ``setup``)."""
    registry.register("shout", shout)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Account]]:
    tmp = tmp_path_factory.mktemp("fronts")
    database_url = f"sqlite+aiosqlite:///{tmp}/fronts.db"
    accounts = asyncio.run(seed(database_url, {"dana": {}}))
    srv = start_server(
        tmp,
        database_url=database_url,
        setup="contract.test_fronts:register_shout",
        test_echo=True,
        allowed_origins=ORIGIN,
        rate_limit_per_s=0.001,
        rate_limit_burst=BURST,
    )
    yield srv, accounts["dana"]
    srv.stop()


@pytest.fixture(scope="module")
def server(world: tuple[Server, Account]) -> Server:
    return world[0]


def url(server: Server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def recv(ws: websockets.ClientConnection) -> str:
    return str(await asyncio.wait_for(ws.recv(), 10))


async def test_a_front_written_only_against_the_contracts_serves_clients(server: Server) -> None:
    shout_url = url(server, SHOUT)
    # admission: an Origin off the allow-list is refused (1008) before any data
    code, _, messages = await close_refusal(shout_url, "https://evil.example")
    assert (code, messages) == (1008, [])

    # echo, in capitals, to an allowed browser
    async with websockets.connect(shout_url, origin=ORIGIN) as ws:  # type: ignore[arg-type]
        assert await recv(ws) == "HELLO None"  # anonymous
        await ws.send("hello")
        assert await recv(ws) == "HELLO"
        # the session decides to close: the endpoint closes with its code
        await ws.send("bye")
        assert await closed_code(ws) == 1000

    # the rate limit wraps the session: the burst, then the session's own error, then
    # a flood is closed 3002
    async with websockets.connect(shout_url) as ws:
        assert await recv(ws) == "HELLO None"
        for i in range(BURST):
            await ws.send(f"m{i}")
        assert [await recv(ws) for _ in range(BURST)] == [f"M{i}" for i in range(BURST)]
        await ws.send("one too many")
        assert json.loads(await recv(ws))["error"].startswith("Too many messages")
        for _ in range(10):  # RateLimit's close_after: ten refused in a row is a flood
            await ws.send("flood")
        assert await closed_code(ws) == 3002

    # the client closes: the server answers
    async with websockets.connect(shout_url) as ws:
        assert await recv(ws) == "HELLO None"
    assert ws.close_code == 1000


async def test_the_contract_authenticates_by_first_message(world: tuple[Server, Account]) -> None:
    server, dana = world
    async with websockets.connect(url(server, SHOUT)) as ws:
        assert await recv(ws) == "HELLO None"
        await ws.send(f"auth {dana.api_key}")
        assert await recv(ws) == f"WELCOME {dana.user_id}"
        await ws.send("still here")
        assert await recv(ws) == "STILL HERE"
    async with websockets.connect(url(server, SHOUT)) as ws:
        assert await recv(ws) == "HELLO None"
        await ws.send("auth tc_not_a_key")
        assert "error" in json.loads(await recv(ws))
        assert await closed_code(ws) == 3500


async def next_update(ws: websockets.ClientConnection) -> str:
    """The next update (a topic's name), skipping nothing else: the front sends only
    updates and replies, and the test reads replies where it expects them."""
    return await recv(ws)


@pytest.fixture(scope="module")
def roomy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shout front at the default message rate (the other server allows a burst of 3)."""
    tmp = tmp_path_factory.mktemp("roomy")
    srv = start_server(tmp, setup="contract.test_fronts:register_shout")
    yield srv
    srv.stop()


async def test_channel_wide_subscriptions_and_who_may_read(roomy_server: Server) -> None:
    async with websockets.connect(url(roomy_server, SHOUT)) as ws:
        assert await recv(ws) == "HELLO None"
        # a channel the registry does not know, an owner's channel whole, an owner's
        # topic: each refused in the session's own words; the connection stays usable
        await ws.send("all nosuch")
        assert json.loads(await recv(ws)) == {"error": "Unknown channel 'nosuch'"}
        await ws.send("all portfolio")
        refused = json.loads(await recv(ws))
        assert refused == {"error": "Not allowed to read every topic of 'portfolio'"}
        await ws.send("sub portfolio.1")
        assert json.loads(await recv(ws)) == {"error": "Not allowed to read portfolio.1"}
        await ws.send("sub assets.AAPL")  # authenticated readers only
        assert json.loads(await recv(ws)) == {"error": "Not allowed to read assets.AAPL"}

        # every quote, of every symbol, present and future
        await ws.send("all quotes")
        seen: set[str] = set()
        while len(seen) < 2:
            update = await next_update(ws)
            assert update.startswith("quotes."), update
            seen.add(update)

        # one of its topics as well would overlap: refused, the channel stays
        await ws.send("sub quotes.AAPL")
        while (message := await recv(ws)).startswith("quotes."):
            pass
        assert "held channel-wide" in json.loads(message)["error"]

        # dropped: then the exact topic is allowed, and only it arrives
        await ws.send("none quotes")
        await ws.send("sub quotes.MSFT")
        await ws.send("ping")
        while (message := await recv(ws)) != "PING":
            assert message.startswith("quotes."), message
        for _ in range(3):
            assert await next_update(ws) == "quotes.MSFT"


@pytest.fixture
def shout_registered() -> Iterator[None]:
    register_shout()
    try:
        yield
    finally:
        registry.unregister("shout")


@pytest.mark.usefixtures("shout_registered")
async def test_every_registered_front_serves_its_paths(server: Server) -> None:
    specs = registry.specs(Settings(test_echo=True))
    assert {spec.name for spec in specs} >= {"echo", "shout"}
    for spec in specs:
        for path in spec.paths:
            async with websockets.connect(url(server, path), origin=ORIGIN) as ws:  # type: ignore[arg-type]
                await ws.ping()
            assert ws.close_code == 1000, path


def test_the_market_feed_is_a_registered_front_always_served() -> None:
    specs = {spec.name: spec for spec in registry.specs(Settings())}
    market = specs["market_feed"]
    assert market.paths == ("/ws/market/feed",)
    assert market.guarded
    assert not market.first_message_auth


def test_stomp_over_websocket_is_built_by_the_app_and_always_served() -> None:
    # given the portfolio service (its per-user destinations), so not in the registry
    assert "stomp" not in registry.names()
    stomp = stomp_front.spec(Settings(allow_anonymous=False))
    assert stomp.paths == ("/stomp/websocket",)
    assert stomp.guarded
    assert stomp.first_message_auth  # CONNECT carries the credentials
    assert getattr(stomp, "allow_anonymous", None) is False  # the settings' policy
    assert stomp.subprotocol({"subprotocols": ["v11.stomp", "v12.stomp"]}) == "v12.stomp"


def test_a_disabled_front_is_not_listed() -> None:
    assert "echo" in registry.names()
    assert "echo" not in {spec.name for spec in registry.specs(Settings())}


@pytest.mark.usefixtures("shout_registered")
def test_a_name_is_registered_once() -> None:
    register_shout()  # the same factory again: nothing changes
    with pytest.raises(ValueError, match="already registered"):
        registry.register("shout", lambda settings: ShoutFront())
    assert registry.names().count("shout") == 1


def test_a_spec_answers_to_its_registered_name() -> None:
    registry.register("loud", shout)
    try:
        with pytest.raises(ValueError, match="calls itself 'shout'"):
            registry.specs(Settings())
    finally:
        registry.unregister("loud")
