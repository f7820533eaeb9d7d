"""The bus contract (bus/base.py), one suite run against every backend: memory (buses on
one shared ``MemoryBroker``), redis (the machine's Redis on 6379) and nats (the
machine's NATS on 4222, with JetStream).

Every test works under a random prefix of its own (subjects and lease names), and
removes the lease keys or buckets it made: the shared servers are never flushed or
stopped. The fault tests stop and restart a private ``redis-server`` or ``nats-server``
on a free port (memory: ``disconnect()`` / ``reconnect()``). Every wait is for a
condition, with a generous bound; the only sleeps let a lease's TTL pass. Under
``CI=true`` a server that cannot be reached (or a missing ``redis-server`` /
``nats-server``) fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from redis.asyncio import Redis

from support.natsserver import PrivateNats
from support.redis import PrivateRedis
from support.server import free_port
from tickcast.bus.base import MAX_MESSAGE_BYTES, Bus, BusError, Lease
from tickcast.bus.memory import MemoryBroker, MemoryBus
from tickcast.bus.nats import NatsBus, lease_bucket
from tickcast.bus.redis import RedisBus

SHARED_REDIS = "redis://127.0.0.1:6379/0"
SHARED_NATS = "nats://127.0.0.1:4222"
#: The longest any condition is waited for (a busy 2-core machine included).
WAIT_S = 30.0
#: A lease's TTL in the tests that let one expire.
SHORT_TTL_S = 1.0

BACKENDS = ["memory", "redis", "nats"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must provide it (.ci/run)")
    pytest.skip(reason)


async def wait_for(condition: Callable[[], bool], what: str, limit_s: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_expired(bus: Bus, name: str) -> None:
    """Wait (bounded) until nobody holds ``name``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while await bus.holder(name) is not None:
        if loop.time() > deadline:
            raise AssertionError(f"lease {name} did not expire within {WAIT_S} s")
        await asyncio.sleep(0.05)


@dataclass
class Engine:
    """One backend for one test: buses on it, and the names the test used."""

    kind: str
    url: str
    prefix: str = field(default_factory=lambda: f"tickcast-test-bus-{secrets.token_hex(6)}")
    broker: MemoryBroker = field(default_factory=MemoryBroker)
    buses: list[Bus] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)

    async def bus(self) -> Bus:
        """A started bus on this engine (closed at the end of the test)."""
        bus: Bus
        if self.kind == "memory":
            bus = MemoryBus(self.broker)
        elif self.kind == "redis":
            bus = RedisBus(self.url)
        else:
            bus = NatsBus(self.url)
        await bus.start()
        self.buses.append(bus)
        return bus

    def subject(self, tail: str = "s") -> str:
        return f"{self.prefix}.{tail}"

    def lease(self, tail: str = "lease") -> str:
        name = f"{self.prefix}.{tail}"
        self.leases.append(name)
        return name

    async def check(self) -> None:
        if self.kind == "redis":
            client = Redis.from_url(self.url, socket_connect_timeout=5)
            try:
                await client.ping()
            except Exception as exc:
                _unavailable(f"Redis at {self.url} is unreachable: {exc!r}")
            finally:
                await client.aclose()
        elif self.kind == "nats":
            try:
                nc = await nats.connect(self.url, connect_timeout=5, allow_reconnect=False)
            except Exception as exc:
                _unavailable(f"NATS at {self.url} is unreachable: {exc!r}")
            try:
                await nc.jetstream().account_info()
            except Exception as exc:
                _unavailable(f"NATS at {self.url} has no JetStream: {exc!r}")
            finally:
                await nc.close()

    async def cleanup(self) -> None:
        for bus in self.buses:
            await bus.aclose()
        if not self.leases:
            return
        if self.kind == "redis":
            client = Redis.from_url(self.url, socket_connect_timeout=5)
            try:
                await client.delete(*self.leases, *(f"{name}:token" for name in self.leases))
            finally:
                await client.aclose()
        elif self.kind == "nats":
            nc = await nats.connect(self.url, connect_timeout=5, allow_reconnect=False)
            try:
                js = nc.jetstream()
                for name in self.leases:
                    with contextlib.suppress(nats.js.errors.NotFoundError):
                        await js.delete_key_value(lease_bucket(name))
            finally:
                await nc.close()


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[Engine]:
    kind: str = request.param
    env = Engine(kind, {"memory": "memory://", "redis": SHARED_REDIS, "nats": SHARED_NATS}[kind])
    await env.check()
    try:
        yield env
    finally:
        await env.cleanup()


# -- messages ----------------------------------------------------------------------------


async def test_a_publish_reaches_every_subscribed_bus_including_the_publishers_own(
    engine: Engine,
) -> None:
    a, b, c = await engine.bus(), await engine.bus(), await engine.bus()
    subject = engine.subject()
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    await a.subscribe(subject, got_a.append)
    await b.subscribe(subject, got_b.append)
    await a.publish(subject, b"one")
    await c.publish(subject, b"two")
    await wait_for(lambda: len(got_a) == 2 and len(got_b) == 2, "both messages on both buses")
    # two publishers: each one's order is kept, not an order between them
    assert sorted(got_a) == sorted(got_b) == [b"one", b"two"]


async def test_order_is_kept_per_subject_for_1000_messages(engine: Engine) -> None:
    publisher, subscriber = await engine.bus(), await engine.bus()
    subject = engine.subject()
    got: list[bytes] = []
    await subscriber.subscribe(subject, got.append)
    sent = [str(i).encode() for i in range(1000)]
    for data in sent:
        await publisher.publish(subject, data)
    await wait_for(lambda: len(got) >= len(sent), "1000 messages")
    assert got == sent


async def test_publish_many_keeps_the_order_across_calls_and_subjects(engine: Engine) -> None:
    publisher, subscriber = await engine.bus(), await engine.bus()
    one, two = engine.subject("one"), engine.subject("two")
    got: dict[str, list[bytes]] = {one: [], two: []}
    await subscriber.subscribe(one, got[one].append)
    await subscriber.subscribe(two, got[two].append)
    sent = [(one if i % 3 else two, str(i).encode()) for i in range(600)]
    for start in range(0, len(sent), 200):
        await publisher.publish_many(sent[start : start + 200])
    await wait_for(lambda: sum(map(len, got.values())) >= len(sent), "600 messages")
    for subject in (one, two):
        assert got[subject] == [data for s, data in sent if s == subject]
    with pytest.raises(BusError):
        await publisher.publish_many([(one, b"x" * (MAX_MESSAGE_BYTES + 1))])


async def test_unsubscribe_stops_delivery(engine: Engine) -> None:
    publisher, subscriber = await engine.bus(), await engine.bus()
    gone, marker = engine.subject("gone"), engine.subject("marker")
    got: list[bytes] = []
    marks: list[bytes] = []
    await subscriber.subscribe(gone, got.append)
    await subscriber.subscribe(marker, marks.append)
    await publisher.publish(gone, b"before")
    await wait_for(lambda: got == [b"before"], "the first message")
    await subscriber.unsubscribe(gone)
    await subscriber.unsubscribe(engine.subject("never-subscribed"))  # nothing
    await publisher.publish(gone, b"after")
    await publisher.publish(marker, b"mark")
    await wait_for(lambda: marks == [b"mark"], "the marker published after")
    assert got == [b"before"]


async def test_a_second_subscribe_replaces_the_handler(engine: Engine) -> None:
    bus = await engine.bus()
    subject = engine.subject()
    first: list[bytes] = []
    second: list[bytes] = []
    await bus.subscribe(subject, first.append)
    await bus.subscribe(subject, second.append)
    await bus.publish(subject, b"x")
    await bus.publish(subject, b"y")
    await wait_for(lambda: second == [b"x", b"y"], "both messages on the second handler")
    assert first == []


async def test_a_handler_that_raises_does_not_stop_the_next_message(engine: Engine) -> None:
    bus = await engine.bus()
    subject = engine.subject()
    got: list[bytes] = []

    def handler(data: bytes) -> None:
        got.append(data)
        if data == b"boom":
            raise RuntimeError("a handler's bug")

    await bus.subscribe(subject, handler)
    await bus.publish(subject, b"boom")
    await bus.publish(subject, b"next")
    await wait_for(lambda: got == [b"boom", b"next"], "the message after the failure")


async def test_a_message_of_max_message_bytes_goes_through_and_a_longer_one_is_refused(
    engine: Engine,
) -> None:
    publisher, subscriber = await engine.bus(), await engine.bus()
    subject = engine.subject()
    got: list[bytes] = []
    await subscriber.subscribe(subject, got.append)
    big = secrets.token_bytes(MAX_MESSAGE_BYTES)
    await publisher.publish(subject, big)
    await wait_for(lambda: len(got) == 1, "the largest message")
    assert got == [big]
    with pytest.raises(BusError):
        await publisher.publish(subject, big + b"!")


# -- leases ------------------------------------------------------------------------------


async def test_a_lease_is_held_by_one_bus_at_a_time_and_holder_reports_it(
    engine: Engine,
) -> None:
    a, b = await engine.bus(), await engine.bus()
    name = engine.lease()
    assert await b.holder(name) is None
    lease = await a.acquire(name, "node-a", 30)
    assert lease is not None
    assert (lease.name, lease.holder) == (name, "node-a")
    assert await b.acquire(name, "node-b", 30) is None
    assert await a.acquire(name, "node-a", 30) is None  # held, even by the same holder
    assert await b.holder(name) == lease
    assert await a.holder(name) == lease


async def test_the_token_grows_across_grants_after_release_and_after_expiry(
    engine: Engine,
) -> None:
    a, b = await engine.bus(), await engine.bus()
    name = engine.lease()
    first = await a.acquire(name, "node-a", 30)
    assert first is not None
    await a.release(first)
    assert await b.holder(name) is None
    second = await b.acquire(name, "node-b", SHORT_TTL_S)
    assert second is not None
    assert second.token > first.token
    await wait_expired(a, name)
    third = await a.acquire(name, "node-a", 30)
    assert third is not None
    assert third.token > second.token


async def test_renew_keeps_the_lease_past_its_first_ttl(engine: Engine) -> None:
    a, b = await engine.bus(), await engine.bus()
    name = engine.lease()
    lease = await a.acquire(name, "node-a", 3.0)
    assert lease is not None
    assert await a.renew(lease, 60)
    await asyncio.sleep(4.0)  # the first TTL passes (not a synchronization)
    assert await b.holder(name) == lease
    assert await b.acquire(name, "node-b", 30) is None
    assert await a.renew(lease, 60)
    assert await b.holder(name) == lease


async def test_renew_says_false_after_expiry(engine: Engine) -> None:
    bus = await engine.bus()
    name = engine.lease()
    lease = await bus.acquire(name, "node-a", SHORT_TTL_S)
    assert lease is not None
    await wait_expired(bus, name)
    assert not await bus.renew(lease, 30)
    assert await bus.holder(name) is None


async def test_renew_says_false_once_another_holder_took_it(engine: Engine) -> None:
    a, b = await engine.bus(), await engine.bus()
    name = engine.lease()
    old = await a.acquire(name, "node-a", SHORT_TTL_S)
    assert old is not None
    await wait_expired(b, name)
    new = await b.acquire(name, "node-b", 30)
    assert new is not None
    assert not await a.renew(old, 30)
    await a.release(old)  # the old holder's release does nothing either
    assert await a.holder(name) == new


async def test_release_by_a_non_holder_does_nothing(engine: Engine) -> None:
    a, b = await engine.bus(), await engine.bus()
    name = engine.lease()
    lease = await a.acquire(name, "node-a", 30)
    assert lease is not None
    await b.release(Lease(name, "node-b", lease.token))
    await b.release(Lease(name, "node-a", lease.token + 1))
    await b.release(Lease(engine.lease("other"), "node-a", lease.token))
    assert await b.holder(name) == lease
    await a.release(lease)
    assert await b.holder(name) is None
    await a.release(lease)  # released already: nothing


async def test_operations_raise_bus_error_after_aclose(engine: Engine) -> None:
    bus = await engine.bus()
    name = engine.lease()
    lease = await bus.acquire(name, "node-a", 30)
    assert lease is not None
    await bus.aclose()
    await bus.aclose()  # idempotent
    assert not bus.connected
    with pytest.raises(BusError):
        await bus.publish(engine.subject(), b"x")
    with pytest.raises(BusError):
        await bus.subscribe(engine.subject(), lambda data: None)
    with pytest.raises(BusError):
        await bus.acquire(name, "node-a", 30)
    with pytest.raises(BusError):
        await bus.renew(lease, 30)
    with pytest.raises(BusError):
        await bus.release(lease)
    with pytest.raises(BusError):
        await bus.holder(name)


# -- losing the engine -------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    server = PrivateRedis(free_port(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    if shutil.which("nats-server") is None:
        _unavailable("nats-server is not installed")
    server = PrivateNats(free_port(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Fault:
    """Takes a bus's engine away and brings it back."""

    bus: Bus
    down: Callable[[], object]
    up: Callable[[], object]


@pytest.fixture(params=BACKENDS)
async def fault(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fault]:
    kind: str = request.param
    if kind == "memory":
        memory = MemoryBus(MemoryBroker())
        await memory.start()
        yield Fault(memory, memory.disconnect, memory.reconnect)
        await memory.aclose()
        return
    tool = "redis-server" if kind == "redis" else "nats-server"
    if shutil.which(tool) is None:
        _unavailable(f"{tool} is not installed")
    server = (PrivateRedis if kind == "redis" else PrivateNats)(free_port(), tmp_path)
    server.start()
    try:
        await server.ready()
        bus: Bus = RedisBus(server.url) if kind == "redis" else NatsBus(server.url)
        await bus.start()

        async def up() -> None:
            server.start()
            await server.ready()

        try:
            yield Fault(bus, server.stop, up)
        finally:
            await bus.aclose()
    finally:
        server.stop()


async def _await(result: object) -> None:
    if asyncio.iscoroutine(result):
        await result


async def test_losing_the_engine_is_reported_and_repaired(fault: Fault) -> None:
    bus = fault.bus
    heard: list[bool] = []
    got: list[bytes] = []
    bus.on_connection(heard.append)
    await bus.subscribe("tickcast-test-bus.fault", got.append)
    await bus.publish("tickcast-test-bus.fault", b"before")
    await wait_for(lambda: got == [b"before"], "the message before")

    await _await(fault.down())
    await wait_for(lambda: heard == [False], "on_connection(False)")
    assert not bus.connected
    with pytest.raises(BusError):
        await bus.publish("tickcast-test-bus.fault", b"lost")
    with pytest.raises(BusError):
        await bus.acquire("tickcast-test-bus.lease", "node-a", 5)

    await _await(fault.up())
    await wait_for(lambda: heard == [False, True], "on_connection(True)")
    assert bus.connected
    await bus.publish("tickcast-test-bus.fault", b"after")
    await wait_for(lambda: got == [b"before", b"after"], "the message after")


async def test_a_killed_redis_pubsub_connection_is_reported_and_repaired(
    private_redis: PrivateRedis,
) -> None:
    private_redis.start()
    await private_redis.ready()
    bus = RedisBus(private_redis.url)
    await bus.start()
    admin = Redis.from_url(private_redis.url)
    try:
        heard: list[bool] = []
        got: list[bytes] = []
        bus.on_connection(heard.append)
        await bus.subscribe("tickcast-test-bus.kill", got.append)
        assert await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        await wait_for(lambda: heard == [False, True], "on_connection(False) then (True)")
        await admin.publish("tickcast-test-bus.kill", b"after")
        await wait_for(lambda: got == [b"after"], "the message after the kill")
    finally:
        await admin.aclose()
        await bus.aclose()


async def test_start_raises_bus_error_when_the_engine_cannot_be_reached() -> None:
    port = free_port()  # nothing listens there
    for bus in (
        RedisBus(f"redis://:hunter2@127.0.0.1:{port}/0"),
        NatsBus(f"nats://127.0.0.1:{port}"),
    ):
        with pytest.raises(BusError) as caught:
            await bus.start()
        assert "hunter2" not in str(caught.value)
        assert not bus.connected
