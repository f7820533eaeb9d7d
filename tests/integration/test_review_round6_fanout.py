"""Review round 6 of issue 15's fan-out features over real sockets: a rate per
subscription (the market feed's ``max_rate``, STOMP's ``max-rate``, Socket.IO's and the
realtime front's ``max_rate``), degrade before disconnecting, and latency stamps.

Each test pins, from a client's side, behaviour checked to be right (the refusal's words
were three pages' stale text when the round began).

The gateway runs in the test's event loop on a silent feed (``support.inloop``): the
test publishes every update, so what a client must get is known exactly.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import socketio
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from support.inloop import Gateway, running_gateway

WAIT_S = 20.0
DOCS = Path(__file__).resolve().parents[2] / "docs"
#: how every refusal of a bad rate words the rule (docs/market-feed.md, and the server)
RULE_RE = re.compile(r"must\s+be\s+(a\s+number\s+of\s+messages\s+per\s+second[^`\"]*)[`\"]")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path) as running:
        yield running


def documented_rules(doc: str) -> set[str]:
    """Every wording of the rate rule that ``doc`` gives a refusal (whitespace joined)."""
    text = (DOCS / doc).read_text()
    return {" ".join(m.group(1).split()) for m in RULE_RE.finditer(text)}


def rule_of(message: str) -> str:
    """The rule a refusal the server sent states (what follows ``must be``)."""
    return message.split("must be ", 1)[1]


async def realtime_refusal(gateway: Gateway) -> str:
    async with connect(gateway.realtime) as ws:
        bad = {"type": "subscribe_asset", "data": {"symbol": "AAPL", "max_rate": 0}}
        await ws.send(json.dumps(bad))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
            if message.get("type") == "error":
                return str(message["data"]["message"])


async def socketio_refusal(gateway: Gateway) -> str:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(gateway.http, transports=["websocket"], wait_timeout=WAIT_S)
    try:
        selection = {"symbols": ["AAPL"], "channels": ["quotes"], "max_rate": 0}
        answer = await client.call("subscribe", selection, timeout=WAIT_S)
        return str(answer["error"])
    finally:
        await client.disconnect()


async def stomp_refusal(gateway: Gateway) -> str:
    async with connect(gateway.stomp, subprotocols=[Subprotocol("v12.stomp")]) as ws:
        await ws.send("CONNECT\naccept-version:1.2\nhost:x\n\n\x00")
        assert str(await asyncio.wait_for(ws.recv(), WAIT_S)).startswith("CONNECTED")
        await ws.send("SUBSCRIBE\nid:0\ndestination:/topic/quotes.AAPL\nmax-rate:0\n\n\x00")
        while True:
            frame = str(await asyncio.wait_for(ws.recv(), WAIT_S))
            if frame.startswith("ERROR"):
                head = frame.split("\n\n", 1)[0]
                return next(h for h in head.split("\n") if h.startswith("message:"))[8:]


REFUSALS = {
    "realtime.md": realtime_refusal,
    "socketio.md": socketio_refusal,
    "stomp.md": stomp_refusal,
}


@pytest.mark.parametrize("doc", sorted(REFUSALS))
async def test_a_bad_rate_is_refused_in_the_words_each_front_documents(
    gateway: Gateway, doc: str
) -> None:
    sent = rule_of(await REFUSALS[doc](gateway))
    # the market feed's page and the server agree
    assert documented_rules("market-feed.md") == {sent}
    assert documented_rules(doc) == {sent}, doc
