"""Members: the nodes of the cluster, as their heartbeats tell (pure).

Rules: a node is a member from its first heartbeat until it says it is leaving or is
not heard from for ``expiry_s`` (three heartbeats). What the members report is summed
for the cluster's statistics and its per-user connection counts; a node's own figures
are read live by the caller, never from its own (older) heartbeat. Times are monotonic
seconds, passed in.
"""

from __future__ import annotations

from typing import NamedTuple

from tickcast.bus.wire import Heartbeat


class Member(NamedTuple):
    heartbeat: Heartbeat
    seen: float  # monotonic time of the last heartbeat
    users: dict[str, int]  # the latest counts (a Users message may be newer)


class Members:
    """The other nodes.

    Args:
        me: this node's id (its own heartbeats are ignored).
        expiry_s: silence after which a node has left.
    """

    __slots__ = ("_members", "expiry_s", "me")

    def __init__(self, me: str, expiry_s: float) -> None:
        self.me = me
        self.expiry_s = expiry_s
        self._members: dict[str, Member] = {}

    def heard(self, heartbeat: Heartbeat, now: float) -> bool:
        """Record ``heartbeat``; True when its node was not a member."""
        if heartbeat.node == self.me:
            return False
        old = self._members.get(heartbeat.node)
        users = dict(heartbeat.users)
        if heartbeat.users_partial and old is not None:
            users = old.users  # the counts came (and come) in Users messages
        self._members[heartbeat.node] = Member(heartbeat, now, users)
        return old is None

    def users(self, node: str, counts: dict[str, int]) -> None:
        """``node`` now has ``counts`` connections of those users (0: none)."""
        member = self._members.get(node)
        if member is None or node == self.me:
            return
        for user, n in counts.items():
            if n > 0:
                member.users[user] = n
            else:
                member.users.pop(user, None)

    def left(self, node: str) -> bool:
        """``node`` said it is leaving; True when it was a member."""
        return self._members.pop(node, None) is not None

    def expire(self, now: float) -> list[str]:
        """Forget the nodes silent for ``expiry_s``; their ids."""
        gone = [n for n, m in self._members.items() if now - m.seen >= self.expiry_s]
        for node in gone:
            del self._members[node]
        return gone

    def __contains__(self, node: object) -> bool:
        return node in self._members

    def __len__(self) -> int:
        return len(self._members)

    def others(self) -> list[Member]:
        """The other members, by node id."""
        return [self._members[n] for n in sorted(self._members)]

    def connections_of(self, user: str) -> int:
        """``user``'s connections on the other nodes."""
        return sum(m.users.get(user, 0) for m in self._members.values())
