"""Each process numbers its streams under a new epoch: a restart never reuses one."""

from __future__ import annotations

from tickcast.config.settings import Settings
from tickcast.model.market import Trade
from tickcast.node import Node
from tickcast.providers.base import Provider, Sink


class Idle(Provider):
    name = "idle"

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset({"AAPL"})

    async def run(self, sink: Sink) -> None:  # never run here
        raise AssertionError


async def test_every_node_numbers_under_a_new_epoch() -> None:
    """Two nodes built one after the other (a restart) stamp seq 1 under two epochs."""
    nodes = [Node(Settings(), providers=[Idle()]) for _ in range(2)]
    try:
        stamped = [
            node.hub.sequencer.stamp([Trade("AAPL", 1.0, 1.0, 0.0, "x", "t1")], 0.0)[0]
            for node in nodes
        ]
        assert [e.seq for e in stamped] == [1, 1]
        assert stamped[0].epoch != stamped[1].epoch
        assert all(e.epoch == node.hub.epoch for e, node in zip(stamped, nodes, strict=True))
    finally:
        for node in nodes:
            node.pumps.close()
            await node.engine.dispose()
