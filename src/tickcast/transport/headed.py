"""HeadedConnection: a ``Connection`` that heads each published item per subscription.

Per-subscription heads (``HeadedConnection``): the hub shares one item per wire per
update, but a protocol whose every message names the client's own subscription (STOMP's
``subscription`` header) needs one message per subscription of the topic. A connection
given ``heads`` turns each published item (one with a ``topic``) into that connection's
own items (``heads(item)``: each item with its head, and a tag naming the subscription)
and queues each under a conflation key joined with its tag, so the subscriptions of one
topic never replace each other's messages. Snapshots and replays queued through the
connection get the same treatment; replies (no topic) are queued as they are. When
``heads`` also has ``forgotten()``, it is asked before each pass over
the session's output: after an unsubscribe it returns the test of a queued item meant
for a subscription that is gone, and those items are discarded, reliable ones too, so
none is written after the unsubscribe. When ``heads`` has ``rates()``, it is asked
then too, after that: ``(key, tag, max_rate)`` for each subscription whose rate was set
(or lifted, None) since, applied with ``limit_rate`` to the joined key, so that a rate
is a subscription's own (STOMP's ``max-rate``). The plain ``Connection`` has no such
step: other fronts' hot path is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tickcast.protocols.wire import Encoded
from tickcast.transport.connection import Connection

#: A connection's own items for one item published on a topic: each with its own head
#: before the same payload, and a tag (the subscription) its conflation key is joined with.
Heads = Callable[[Encoded], Sequence[tuple[Encoded, str]]]


class HeadedConnection(Connection):
    """A ``Connection`` that heads each published item per subscription (module
    docstring): ``heads(item)`` gives this connection's items for it, each queued under
    the item's conflation key joined with its tag (``"<key>\\n<tag>"``). An item with no
    topic (a reply) is queued as it is. When ``heads`` also has ``keyed(item, key)``, the
    fan-out goes through it instead: the same items, each with its joined key (None for
    a None key), which a heads that plans per topic builds once rather than per delivery.
    Such a heads may also offer its ``plans`` (a topic key -> a plan that ``keyed``
    made, dropped by the heads whenever it would give other items): a delivery whose
    topic has a plan for the same conflation key (``plan.key is key``) is queued from it
    here, without a call into the heads. A plan has ``targets`` (``(slot, joined key)``
    per item; ``slot.put(item)`` is the item headed, ``slot.item``/``slot.headed`` the
    last one put), ``slot``/``joined`` (the one target of a plan of one, else None), and
    ``last`` (set to each delivered item's payload).

    Args:
        heads: the connection's items for one published item (``Heads``).
        **kwargs: as ``Connection``'s.
    """

    __slots__ = ("forgotten", "heads", "keyed", "plans", "rates")

    def __init__(self, *, heads: Heads, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heads = heads
        # ``heads.keyed(item, key)``, when it has one: the items with their keys joined
        # already (a heads that plans per topic saves building the joined key and the
        # tag per delivery); else ``heads(item)`` and the keys joined here
        self.keyed: Callable[[Encoded, str | None], Sequence[tuple[Encoded, str | None]]] | None = (
            getattr(heads, "keyed", None)
        )
        # ``heads.plans``, with ``keyed``: a topic key -> its plan, read here first (below)
        self.plans: dict[str, Any] | None = getattr(heads, "plans", None) if self.keyed else None
        self.forgotten: Callable[[], Callable[[Encoded], bool] | None] | None = getattr(
            heads, "forgotten", None
        )
        self.rates: Callable[[], Sequence[tuple[str, str, float | None]]] | None = getattr(
            heads, "rates", None
        )

    def _apply(self) -> None:
        forgotten = self.forgotten
        if forgotten is not None:
            stale = forgotten()
            if stale is not None:
                self.outbox.discard_where(stale)
        rates = self.rates
        if rates is not None:  # before the commands: a rate counts from the snapshot
            for key, tag, max_rate in rates():
                self.limit_rate(f"{key}\n{tag}", max_rate)
        super()._apply()

    def deliver(self, item: Encoded, key: str | None, now: float) -> None:
        if not item.topic or self.closing:
            Connection.deliver(self, item, key, now)
            return
        plans = self.plans
        if plans is not None:
            plan = plans.get(item.topic)
            if plan is not None and plan.key is key:
                plan.last = item.payload
                slot = plan.slot
                if slot is not None:  # one subscription of the topic: the usual case
                    headed = slot.headed if slot.item is item else slot.put(item)
                    Connection.deliver(self, headed, plan.joined, now)
                    return
                for slot, joined in plan.targets:
                    Connection.deliver(self, slot.put(item), joined, now)
                return
        keyed = self.keyed
        if keyed is not None:
            for headed, joined in keyed(item, key):
                Connection.deliver(self, headed, joined, now)
            return
        for headed, tag in self.heads(item):
            Connection.deliver(self, headed, None if key is None else f"{key}\n{tag}", now)
