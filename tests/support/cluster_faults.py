"""Cluster fault tests' helpers: nodes started off the event loop, ``/cluster`` and
``/ready`` read without blocking it, a resuming feed client that checks what it gets,
and a spy on an in-process emulator's per-key connection claims.

Rules: everything that waits is async and polls a condition with a deadline (the test's
loop may also run a TCP proxy or an emulator that a blocking wait would starve).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from support.server import Server, start_server
from tickcast.emulators.base import EmulatorServer

#: The longest any condition without a bound of its own is waited for.
WAIT_S = 60.0


def require(binary: str) -> str:
    """The path of ``binary``; a skip when it is missing (a failure under ``CI=true``)."""
    path = shutil.which(binary)
    if path is None:
        reason = f"{binary} is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must provide it (.ci/run)")
        pytest.skip(reason)
    return path


async def start_node(tmp_path: Path, node_id: str, **settings: object) -> Server:
    """``start_server`` off the loop (it waits for ``/ready`` with blocking sleeps)."""
    return await asyncio.to_thread(start_server, tmp_path, node_id=node_id, **settings)


async def stop_node(server: Server) -> int:
    return await asyncio.to_thread(server.stop)


async def cluster_view(server: Server) -> dict[str, Any] | None:
    """``GET /cluster`` of ``server``; None when it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            answer = await http.get(f"{server.http}/cluster")
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


async def ready_status(server: Server) -> int | None:
    """``GET /ready``'s status code; None when it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(f"{server.http}/ready")).status_code
    except httpx.HTTPError:
        return None


async def until(condition: Callable[[], Any], what: str, limit_s: float = WAIT_S) -> Any:
    """Poll ``condition`` (sync or async) until it gives a truthy value; fail after
    ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {limit_s:.1f} s: {what}")
        await asyncio.sleep(0.05)


async def formed(nodes: dict[str, Server]) -> str | None:
    """The leader's id once every node lists every other, names the same leader, and
    is ready; else None."""
    leaders = set()
    for server in nodes.values():
        view = await cluster_view(server)
        if view is None or not view.get("ready"):
            return None
        if not set(nodes) <= {n["node"] for n in view["nodes"]}:
            return None
        leaders.add(view["leader"])
    if len(leaders) != 1:
        return None
    (leader,) = leaders
    return leader if leader in nodes else None


# -- a resuming feed client


@dataclass
class FeedClient:
    """A raw ``?seq=1`` client of one node's market feed that subscribes to the trades
    of ``symbols`` (and the feed's status), reconnects by itself when closed, and
    resumes every trades topic from the last ``(epoch, seq)`` it holds.

    It checks as it reads: on each trades topic, every trade is the next seq of the
    epoch it holds; a new epoch (or a jump) is accepted only through a ``reset``. What
    breaks that rule is a ``violation`` (a silent hole).
    """

    url: str
    symbols: tuple[str, ...] = ("AAPL", "MSFT")
    status: bool = True
    #: A first subscription's position ``seq`` 0 is taken as "not known" (the next
    #: trade sets it): a follower that joined mid-epoch says 0 for a topic it has seen
    #: nothing on yet, whatever the leader's numbering is (a defect, see
    #: test_cluster_faults.py); False checks it strictly.
    unsure_zero: bool = True
    unsure: set[str] = field(default_factory=set)
    unsure_jumps: list[str] = field(default_factory=list)
    #: the positions the first ``subscribed`` reply announced, as they came
    announced: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: topics whose position the node could not know (left out of ``subscribed``): the
    #: first trade on each says where it is
    unknown: set[str] = field(default_factory=set)
    positions: dict[str, tuple[str, int]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    resets: list[dict[str, Any]] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    trades: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    connections: int = 0
    journal: list[str] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _ws: ClientConnection | None = None
    _stopped: bool = False

    @property
    def topics(self) -> list[str]:
        return [f"trades.{s}" for s in self.symbols]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"feed-client {self.url}")

    async def stop(self) -> None:
        self._stopped = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def count(self, epoch: str | None = None) -> int:
        """Trades received (in ``epoch`` when given), every topic."""
        return sum(
            1 for seen in self.trades.values() for e, _ in seen if epoch is None or e == epoch
        )

    def epochs(self) -> set[str]:
        return {e for e, _ in self.positions.values()}

    async def _run(self) -> None:
        while not self._stopped:
            try:
                async with connect(f"{self.url}?seq=1", open_timeout=5) as ws:
                    self._ws = ws
                    self.connections += 1
                    await self._subscribe(ws)
                    async for raw in ws:
                        self._receive(json.loads(raw))
                    if not self._stopped:
                        self.closes.append(ws.close_code)
            except ConnectionClosed as exc:
                if not self._stopped:
                    self.closes.append(exc.rcvd.code if exc.rcvd is not None else None)
            except (OSError, TimeoutError, Exception):
                await asyncio.sleep(0.1)  # the node is not there yet: retry
            finally:
                self._ws = None

    async def _subscribe(self, ws: ClientConnection) -> None:
        request: dict[str, Any] = {
            "action": "subscribe",
            "symbols": list(self.symbols),
            "channels": ["trades"],
        }
        resume = {t: {"epoch": e, "seq": s} for t, (e, s) in self.positions.items()}
        if resume:
            request["resume"] = resume
        self._resumed = dict(self.positions)
        await ws.send(json.dumps(request))
        if self.status:
            status = {"action": "subscribe", "symbols": ["FEED"], "channels": ["status"]}
            await ws.send(json.dumps(status))

    def _receive(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        topic = message.get("topic")
        if kind in ("subscribed", "reset") or len(self.journal) < 400:
            where = f"{message.get('epoch', '')}/{message.get('seq', '')}"
            self.journal.append(f"#{self.connections} {kind} {topic} {where} {message}"[:300])
        if kind == "subscribed":
            told = message.get("positions") or {}
            for name in self.topics:
                if name not in told and name not in self.positions:
                    self.unknown.add(name)
            for name, where in told.items():
                # a resumed topic starts from its replay or reset, not from here
                if name in self.topics and name not in self.positions:
                    self.announced[name] = (where["epoch"], where["seq"])
                    self.positions[name] = (where["epoch"], where["seq"])
                    if self.unsure_zero and where["seq"] == 0:
                        self.unsure.add(name)
        elif kind == "reset" and topic in self.topics:
            self.resets.append(message)
            requested = self._resumed.get(topic)
            if requested is not None and message.get("requested") != requested[1]:
                self.violations.append(f"reset {message} answers no resume of ours")
            self.positions[topic] = (message["epoch"], message["seq"])
            if self.unsure_zero and message["seq"] == 0:
                self.unsure.add(topic)
        elif kind == "trade" and topic in self.topics:
            epoch, seq = message["epoch"], message["seq"]
            self.trades.setdefault(topic, []).append((epoch, seq))
            held = self.positions.get(topic)
            if held is None and topic in self.unknown:
                self.unknown.discard(topic)  # its first message says where it is
                held = (epoch, seq - 1)
            if topic in self.unsure:
                self.unsure.discard(topic)
                if held is not None and held[0] == epoch and seq != held[1] + 1:
                    self.unsure_jumps.append(f"{topic}: {epoch} seq {held[1]} -> {seq}")
                    held = (epoch, seq - 1)
            if held is None:
                self.violations.append(f"{topic}: {epoch}/{seq} before any position")
            elif held[0] != epoch:
                self.violations.append(
                    f"{topic}: epoch {held[0]}/{held[1]} -> {epoch}/{seq} silently"
                )
            elif seq != held[1] + 1:
                self.violations.append(
                    f"{topic}: {epoch} seq {held[1]} -> {seq} (#{self.connections})"
                )
            self.positions[topic] = (epoch, seq)
        elif kind == "status" and topic == "status.FEED":
            self.statuses.append(message)


# -- an emulator's connection claims, watched


@dataclass
class ClaimSpy:
    """Counts an in-process emulator's connection claims per key, as they happen: the
    most held at once, and the refusals (Alpaca's 406)."""

    held: dict[str, int] = field(default_factory=dict)
    peak: int = 0
    granted: int = 0
    refused: list[float] = field(default_factory=list)

    @classmethod
    def on(cls, server: EmulatorServer) -> ClaimSpy:
        spy = cls()
        claim, release = server.claim, server.release

        def claiming(key: str) -> bool:
            ok = claim(key)
            if ok:
                spy.granted += 1
                spy.held[key] = spy.held.get(key, 0) + 1
                spy.peak = max(spy.peak, spy.held[key])
            else:
                spy.refused.append(time.monotonic())
            return ok

        def releasing(key: str) -> None:
            release(key)
            spy.held[key] = spy.held.get(key, 0) - 1

        server.claim = claiming  # type: ignore[method-assign]
        server.release = releasing  # type: ignore[method-assign]
        return spy
