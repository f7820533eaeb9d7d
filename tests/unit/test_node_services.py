"""Services the composition root hands to the node start and stop with it."""

from __future__ import annotations

import asyncio

from tickcast.config.settings import Settings
from tickcast.node import Node
from tickcast.providers.base import Provider, Sink


class Mute(Provider):
    name = "mute"

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset({"AAPL"})

    async def run(self, sink: Sink) -> None:
        await asyncio.Event().wait()


class Service:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def aclose(self) -> None:
        self.log.append(f"stop {self.name}")


async def test_added_services_start_in_order_and_stop_in_reverse() -> None:
    node = Node(Settings(), providers=[Mute()])
    log: list[str] = []
    node.add_service(Service("a", log))
    node.add_service(Service("b", log))
    await node.start()
    assert log == ["start a", "start b"]
    await node.aclose()
    assert log == ["start a", "start b", "stop b", "stop a"]


def test_a_bare_node_has_no_service_and_no_tap() -> None:
    node = Node(Settings(), providers=[Mute()])
    assert node.services == []
    assert node.publisher.taps == ()
    assert not hasattr(node, "portfolios")  # the composition root adds it (app.py)
    node.pumps.close()


class StartsTheFeed:
    """A service that starts the feed while the node closes (a cluster node that wins the
    lease as it stops)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.started_on_close: bool | None = None

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        self.node.start_feed()
        self.started_on_close = self.node._tasks is not None


async def test_a_closing_node_never_starts_its_feed_again() -> None:
    node = Node(Settings(), providers=[Mute()])
    node.feed_gated = True  # as under a cluster: the lease starts the feed
    service = StartsTheFeed(node)
    node.add_service(service)
    await node.start()
    await node.aclose()
    assert service.started_on_close is False
    assert node._tasks is None
