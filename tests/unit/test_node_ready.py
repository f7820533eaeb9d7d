"""Readiness: market data has arrived and a provider feeds the hub (not merely a status)."""

from __future__ import annotations

import asyncio

from tickcast.config.settings import Settings
from tickcast.model.market import Quote
from tickcast.node import Node
from tickcast.providers.base import Provider, Sink


class Mute(Provider):
    """Connects and subscribes, then says nothing (a closed market, a dead feed)."""

    name = "mute"

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset({"AAPL"})

    async def run(self, sink: Sink) -> None:
        sink.state("subscribed")
        await asyncio.Event().wait()


class Talks(Mute):
    name = "talks"

    async def run(self, sink: Sink) -> None:
        sink.state("subscribed")
        while True:
            sink([Quote("AAPL", 1.0, 1.1, 1.0, 1.0, 1.05, 0.0, 1.0, "talks")])
            await asyncio.sleep(0.01)


async def wait_until(condition: object, wait_s: float = 5.0) -> None:
    async with asyncio.timeout(wait_s):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_status_messages_alone_do_not_make_the_node_ready() -> None:
    node = Node(Settings(), providers=[Mute()])
    await node.start()
    try:
        await wait_until(lambda: node.supervisor.active == "mute")
        await asyncio.sleep(0.05)
        assert node.stats.feed_transitions >= 2  # statuses were published
        assert not node.ready
    finally:
        await node.aclose()


async def test_market_data_makes_it_ready() -> None:
    node = Node(Settings(), providers=[Talks()])
    await node.start()
    try:
        await wait_until(lambda: node.ready)
    finally:
        await node.aclose()
    assert not node.ready  # closed: no provider feeds it any more
