"""`tickcast serve --workers N`: N gateway processes on one port, under one supervisor.

The pure rules (argument checks, node ids, what each worker is given, restarts, the exit
status) are tested as plain calls. The real runs start `serve --workers 2` with a Redis
bus and tell the workers apart by the kernel's own account: which child process holds
the listening socket, and which one holds the server end of each client connection
(psutil), so the application needs no endpoint that reveals its process. Under
``CI=true`` a missing Redis is a failure, not a skip. Every wait is for a condition,
with generous bounds (a busy 2-core machine).
"""

from __future__ import annotations

import http.client
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr

from support.server import free_port
from tickcast.cli.workers import (
    Restarts,
    base_node_id,
    check,
    exit_status,
    worker_node_id,
    worker_settings,
)
from tickcast.config.settings import Settings
from tickcast.errors import ConfigError
from tickcast.retry import Backoff

REDIS = "redis://127.0.0.1:6379/0"
#: The longest any condition is waited for.
WAIT_S = 120.0
NO_BUS = "--workers 2 needs a bus shared by the workers: --bus redis://... or --bus nats://..."


# -- the pure rules


def test_one_worker_needs_no_bus() -> None:
    check(1, "memory://")


@pytest.mark.parametrize("url", [REDIS, "rediss://h:6380/1", "nats://127.0.0.1:4222"])
def test_several_workers_accept_a_real_bus(url: str) -> None:
    check(4, url)


def test_several_workers_on_the_memory_bus_are_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        check(2, "memory://")
    assert str(refused.value) == NO_BUS


def test_fewer_than_one_worker_is_refused() -> None:
    with pytest.raises(ConfigError, match="--workers must be 1 or more"):
        check(0, REDIS)


def test_an_unknown_bus_scheme_is_refused_whatever_the_workers() -> None:
    with pytest.raises(ConfigError, match="unknown scheme 'http'"):
        check(1, "http://example.com")


def test_node_ids_are_the_base_and_the_worker_number() -> None:
    assert base_node_id(None, "gw7", 8000) == "gw7:8000"
    assert base_node_id("edge", "gw7", 8000) == "edge"
    assert [worker_node_id("edge", k) for k in (1, 2)] == ["edge-w1", "edge-w2"]


def test_a_node_id_too_long_for_a_worker_is_refused() -> None:
    with pytest.raises(ConfigError, match="too long"):
        worker_node_id("n" * 198, 1)


def test_workers_share_one_generated_jwt_key_and_have_their_own_node_id() -> None:
    settings = Settings(bus_url=SecretStr(REDIS))
    shared = "a-generated-key-of-at-least-32-bytes-long"
    one, two = (worker_settings(settings, f"n-w{k}", shared) for k in (1, 2))
    assert (one.node_id, two.node_id) == ("n-w1", "n-w2")
    assert one.jwt_secret is not None
    assert two.jwt_secret is not None
    assert one.jwt_secret.get_secret_value() == two.jwt_secret.get_secret_value() == shared
    assert one.bus_url.get_secret_value() == REDIS


def test_a_configured_jwt_key_is_kept() -> None:
    configured = "the-operator's-own-key-of-32-bytes-or-more"
    settings = Settings(jwt_secret=SecretStr(configured))
    worker = worker_settings(settings, "n-w1", None)
    assert worker.jwt_secret is not None
    assert worker.jwt_secret.get_secret_value() == configured


class Ceiling(random.Random):
    """A random source that always draws the top of the range: the back-off's ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_a_worker_that_dies_is_restarted_after_a_growing_back_off() -> None:
    restarts = Restarts(backoff=Backoff(base_s=1.0, cap_s=4.0), stable_s=60.0, rng=Ceiling())
    restarts.started(1, now=0.0)
    delays = []
    now = 10.0
    for _ in range(4):
        at = restarts.ended(1, now, stopping=False)
        assert at is not None
        delays.append(at - now)
        restarts.started(1, at)
        now = at + 1.0  # dies again one second after each start
    assert delays == [1.0, 2.0, 4.0, 4.0]


def test_a_long_life_starts_the_back_off_over() -> None:
    restarts = Restarts(backoff=Backoff(base_s=1.0, cap_s=30.0), stable_s=60.0, rng=Ceiling())
    restarts.started(2, now=0.0)
    assert restarts.ended(2, 5.0, stopping=False) == 6.0
    restarts.started(2, 6.0)
    assert restarts.ended(2, 7.0, stopping=False) == 9.0
    restarts.started(2, 9.0)
    assert restarts.ended(2, 100.0, stopping=False) == 101.0  # lived 91 s: first failure again


def test_nothing_is_restarted_while_stopping() -> None:
    restarts = Restarts()
    restarts.started(1, now=0.0)
    assert restarts.ended(1, 1.0, stopping=True) is None


def test_the_exit_status_is_0_only_when_every_worker_drained() -> None:
    assert exit_status([0, 0]) == 0
    assert exit_status([0, -signal.SIGTERM]) == 0  # stopped before it served anything
    assert exit_status([0, 1]) == 1
    assert exit_status([0, -signal.SIGKILL]) == 1


# -- the command line


def tickcast(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    env["TICKCAST_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/tickcast.db"
    return subprocess.run(
        [sys.executable, "-m", "tickcast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_serve_with_two_workers_and_no_bus_exits_2_with_the_reason(tmp_path: Path) -> None:
    done = tickcast("serve", "--workers", "2", "--port", str(free_port()), tmp_path=tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"tickcast: {NO_BUS}\n"
    assert not (tmp_path / "tickcast.db").exists()  # refused before anything was done


def test_serve_with_an_unknown_bus_scheme_exits_2_in_one_line(tmp_path: Path) -> None:
    done = tickcast("serve", "--bus", "kafka://127.0.0.1:9092", tmp_path=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "unknown scheme 'kafka'" in done.stderr


def test_serve_help_documents_the_cluster_flags(tmp_path: Path) -> None:
    done = tickcast("serve", "--help", tmp_path=tmp_path)
    assert done.returncode == 0
    for flag in ("--bus URL", "--bus-prefix", "--node-id", "--workers N"):
        assert flag in done.stdout


# -- real runs


def redis_available() -> None:
    import redis

    client = redis.Redis.from_url(REDIS, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis at {REDIS} is not available: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        client.close()


def wait_for(condition: Callable[[], bool], what: str, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}:\n{log()}")
        time.sleep(0.1)


@dataclass
class Pool:
    """A `serve --workers 2` parent process and what the kernel says of its children."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> dict[int, psutil.Process]:
        """The parent's children that listen on the port, by pid."""
        found = {}
        for child in psutil.Process(self.proc.pid).children():
            try:
                conns = child.net_connections("tcp")
            except psutil.Error:  # it just ended
                continue
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in conns):
                found[child.pid] = child
        return found

    def owner(self, client_port: int) -> int | None:
        """The worker holding the server end of the connection from ``client_port``."""
        for pid, worker in self.workers().items():
            try:
                conns = worker.net_connections("tcp")
            except psutil.Error:
                continue
            if any(c.raddr and c.raddr.port == client_port for c in conns):
                return pid
        return None

    def health(self) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status
        finally:
            conn.close()


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    redis_available()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    env["TICKCAST_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/tickcast.db"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tickcast", "serve", "--workers", "2"),
                *("--bus", REDIS, "--bus-prefix", f"tickcast-test-{secrets.token_hex(6)}"),
                *("--port", str(port)),
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = Pool(proc, port, log_path)
    try:
        wait_for(lambda: len(running.workers()) == 2, "two workers listening", running.log)
        yield running
    finally:
        if proc.poll() is None:  # a failed test: leave nothing behind
            children = psutil.Process(proc.pid).children()
            proc.kill()
            for child in children:
                child.kill()
            proc.wait(timeout=30)


def stop(pool: Pool) -> int:
    pool.proc.send_signal(signal.SIGTERM)
    try:
        return pool.proc.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the parent did not stop in {WAIT_S} s:\n{pool.log()}") from None


def test_connections_land_on_every_worker_and_sigterm_drains_them_all(pool: Pool) -> None:
    workers = pool.workers()
    conns = []
    try:
        for _ in range(20):  # each a new TCP connection: the kernel picks a worker for it
            conn = http.client.HTTPConnection("127.0.0.1", pool.port, timeout=10)
            conn.request("GET", "/health")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
            conns.append(conn)  # kept open, so that its server end can be found
        owners: dict[int, int | None] = {}

        def attributed() -> bool:
            for conn in conns:
                port = conn.sock.getsockname()[1]
                if owners.get(port) is None:
                    owners[port] = pool.owner(port)
            return None not in owners.values()

        wait_for(attributed, "every connection's worker", pool.log)
        assert set(owners.values()) == set(workers)
    finally:
        for conn in conns:
            conn.close()

    assert stop(pool) == 0, pool.log()
    assert not any(worker.is_running() for worker in workers.values())
    assert pool.log().count("ended, exit code 0") == 2


def test_a_worker_killed_with_sigkill_is_replaced(pool: Pool) -> None:
    first = pool.workers()
    victim = min(first)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        now = pool.workers()
        return len(now) == 2 and victim not in now

    wait_for(replaced, "a new worker in the killed one's place", pool.log)
    assert not first[victim].is_running()
    assert "died unexpectedly, exit code -9" in pool.log()
    assert pool.health() == 200

    survivors = pool.workers()
    assert stop(pool) == 0, pool.log()
    assert not any(worker.is_running() for worker in survivors.values())


def test_workers_stop_when_the_supervisor_is_killed(pool: Pool) -> None:
    workers = pool.workers()
    pool.proc.kill()
    pool.proc.wait(timeout=WAIT_S)
    _, alive = psutil.wait_procs(list(workers.values()), timeout=WAIT_S)
    assert not alive, pool.log()
