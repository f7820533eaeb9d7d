"""``tickcast serve --workers N``: N gateway processes on one host:port, and their supervisor.

Each worker is a whole gateway (``cli.main.serve``) that binds its own listening socket
with ``SO_REUSEPORT``: the kernel spreads new connections over the workers by a hash of
each connection's addresses, and a worker that dies takes only its own connections with
it. The workers are nodes of one cluster, so they need a bus they all reach: ``--workers
2`` with ``memory://`` is refused.

Rules:
    - The pure part decides: the argument checks (``check``), the node ids (``base_node_id``,
      ``worker_node_id``), what each worker is given (``worker_settings``), whether and when
      a worker that ended is started again (``Restarts``) and the parent's exit status
      (``exit_status``). It reads no clock and starts no process.
    - The driver (``Supervisor``, ``supervise``) does what must happen once before the
      workers start (migrate the database: N workers migrating at once would race; seed
      the demo; choose the JWT key every worker verifies with), starts them, forwards the
      stop signals, restarts a worker that died, and exits 0 when every worker drained.
    - A worker exits by ``sys.exit(serve(...))``: its exit code is ``serve``'s.

Why ``multiprocessing`` (the ``spawn`` method) rather than ``python -m tickcast serve``
in a subprocess: a worker is handed the parent's ``Settings``, already loaded and
validated, with its node id and the shared JWT key filled in (through a pipe, not the
environment, where ``/proc/<pid>/environ`` would show the key), so nothing is parsed
twice and no flag has to be written back into an argument list (argparse accepts
abbreviated and ``--flag=value`` forms: rebuilding them is where drift creeps in).
``spawn``, not ``fork``: each worker is a fresh interpreter, with none of the parent's
threads, locks or event-loop state. ``Process.sentinel`` lets the parent wait for any
worker to end, or a signal to arrive, in one ``wait`` call, without polling.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Final

from pydantic import SecretStr

from tickcast.bus.registry import backend_of
from tickcast.config.settings import Settings
from tickcast.errors import ConfigError
from tickcast.retry import Backoff

log = logging.getLogger("tickcast.workers")

#: The longest node id the settings accept (``Settings.node_id``'s ``max_length``).
MAX_NODE_ID_CHARS: Final = 200
#: Seconds between two SIGTERMs to a worker that is still draining: a signal that reached
#: a worker while it was starting (before its handlers were in place) may have been lost.
RESEND_STOP_S: Final = 5.0
#: Seconds a worker may take to drain after the first SIGTERM, beyond its own graceful
#: shutdown (``close_timeout_s`` + 1); then it is killed and the parent exits 1.
DRAIN_MARGIN_S: Final = 60.0


# -- the pure part


def check(workers: int, bus_url: str) -> None:
    """Refuse a ``--workers`` and ``--bus`` combination that cannot work.

    Raises:
        ConfigError: ``workers`` < 1; ``bus_url``'s scheme names no bus; or more than one
            worker on the in-process bus, which the workers could not share.
    """
    backend = backend_of(bus_url)
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more, not {workers}")
    if workers > 1 and backend == "memory":
        raise ConfigError(
            f"--workers {workers} needs a bus shared by the workers: "
            "--bus redis://... or --bus nats://..."
        )


def base_node_id(node_id: str | None, hostname: str, port: int) -> str:
    """The node id the workers' ids are made from: ``node_id``, else ``<hostname>:<port>``."""
    return node_id if node_id is not None else f"{hostname}:{port}"


def worker_node_id(base: str, index: int) -> str:
    """Worker ``index``'s node id (1-based): ``<base>-w<index>``.

    Raises:
        ConfigError: the id is longer than the settings accept.
    """
    node_id = f"{base}-w{index}"
    if len(node_id) > MAX_NODE_ID_CHARS:
        raise ConfigError(f"--node-id: too long for a worker's id ({MAX_NODE_ID_CHARS} at most)")
    return node_id


def worker_settings(settings: Settings, node_id: str, jwt_secret: str | None) -> Settings:
    """What one worker serves with: ``settings``, its own node id and, when ``settings``
    has no JWT key, the one key every worker shares (a token one worker issued must
    verify on every other)."""
    update: dict[str, object] = {"node_id": node_id}
    if settings.jwt_secret is None and jwt_secret is not None:
        update["jwt_secret"] = SecretStr(jwt_secret)
    return settings.model_copy(update=update)


@dataclass(slots=True)
class _Life:
    started_at: float | None = None
    failures: int = 0


@dataclass(slots=True)
class Restarts:
    """When a worker that ended is started again.

    Rules: a worker that ends while the parent is not stopping died unexpectedly,
    whatever its exit code (a worker only ends on its own when its feed cannot deliver,
    or when something else signalled it): it is started again after
    ``backoff.delay(failures)``, ``failures`` counting its consecutive short lives (ended
    within ``stable_s`` of its start; a longer life starts the count over). While the
    parent is stopping nothing is restarted. There is no last attempt: a gateway that
    cannot start (a database down) keeps trying, at most ``backoff.cap_s`` apart.

    Attributes:
        backoff: the delays, in seconds (capped, full jitter).
        stable_s: a life at least this long, in seconds, is not a failure in a row.
        rng: the jitter's random source.
    """

    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=0.5, cap_s=30.0))
    stable_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    _lives: dict[int, _Life] = field(default_factory=dict)

    def started(self, index: int, now: float) -> None:
        """Worker ``index`` started at ``now`` (monotonic seconds)."""
        self._lives.setdefault(index, _Life()).started_at = now

    def ended(self, index: int, now: float, *, stopping: bool) -> float | None:
        """Worker ``index`` ended at ``now``: when (monotonic seconds) to start it again,
        or None not to."""
        life = self._lives.setdefault(index, _Life())
        lived_s = now - life.started_at if life.started_at is not None else 0.0
        life.started_at = None
        if stopping:
            return None
        if lived_s >= self.stable_s:
            life.failures = 0
        delay = self.backoff.delay(life.failures, self.rng)
        life.failures += 1
        return now + delay


def clean_exit(code: int | None) -> bool:
    """Whether a worker's exit code, once it was told to stop, is a clean drain: 0, or
    killed by that SIGTERM before it had installed its handlers (it served nothing yet,
    so it had nothing to drain)."""
    return code in (0, -signal.SIGTERM)


def exit_status(codes: Iterable[int | None]) -> int:
    """The parent's exit status from each worker's last exit code: 0 when all are clean
    (``clean_exit``), else 1. A worker still waiting to be restarted when the stop came
    has the code it crashed with, so it counts against the status."""
    return 0 if all(clean_exit(code) for code in codes) else 1


# -- the driver


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` with ``SO_REUSEPORT`` (and
    ``SO_REUSEADDR``, as uvicorn sets), not yet listening (the server listens on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _work(settings: Settings) -> None:
    """A worker process's entry point (importable: ``spawn`` finds it by name)."""
    from tickcast.cli.main import serve

    _stop_with_parent()
    try:
        sock = reuse_port_socket(settings.host, settings.port)
    except OSError as exc:
        print(
            f"tickcast serve: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        sys.exit(1)
    sys.exit(serve(settings, sock=sock))


def _stop_with_parent() -> None:
    """On Linux, have the kernel send this worker SIGTERM when the supervisor dies (even
    by SIGKILL), so that no worker is left serving without one; elsewhere, nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    supervisor = multiprocessing.parent_process()
    if supervisor is not None and os.getppid() != supervisor.pid:  # it died before that
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Starts ``len(settings_of)`` workers, restarts those that die, stops them all on
    SIGTERM or SIGINT and returns the exit status (``exit_status``).

    Both stop signals are forwarded as SIGTERM: a terminal's Ctrl-C has already sent
    SIGINT to the workers (one process group), and a second SIGINT would make uvicorn
    cut the drain short.
    """

    def __init__(
        self, settings_of: list[Settings], restarts: Restarts | None = None, *, drain_s: float
    ) -> None:
        self._settings_of = settings_of
        self._restarts = restarts or Restarts()
        self._drain_s = drain_s
        self._context = multiprocessing.get_context("spawn")
        self._running: dict[int, BaseProcess] = {}
        self._due: dict[int, float] = {}  # worker index -> when to start it again
        self._codes: dict[int, int | None] = {}
        self._signalled = False

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            return self._loop(wake_r)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(wake_r)
            os.close(wake_w)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signalled = True  # the wakeup fd ends the wait; the loop does the rest

    def _loop(self, wake_r: int) -> int:
        for index in range(1, len(self._settings_of) + 1):
            self._start(index)
        stop_at: float | None = None
        resend_at = 0.0
        killed = False
        while True:
            now = time.monotonic()
            if self._signalled and stop_at is None:
                log.info("stopping: %d worker(s) draining", len(self._running))
                stop_at, self._due = now, {}
            if not self._running and (stop_at is not None or not self._due):
                break
            if stop_at is not None and now >= resend_at:
                self._signal_all(signal.SIGTERM)
                resend_at = now + RESEND_STOP_S
            if stop_at is not None and not killed and now >= stop_at + self._drain_s:
                killed = True
                log.error("workers still running %.0f s after the stop: killed", self._drain_s)
                self._signal_all(signal.SIGKILL)
            for index, at in list(self._due.items()):
                if at <= now:
                    del self._due[index]
                    self._start(index)
            deadlines = [*self._due.values()]
            if stop_at is not None:
                deadlines += [resend_at] if killed else [resend_at, stop_at + self._drain_s]
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            sentinels = {p.sentinel: i for i, p in self._running.items()}
            ready = wait([*sentinels, wake_r], timeout)
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            for key in ready:
                if key in sentinels:
                    self._ended(sentinels[key], stopping=stop_at is not None)
        return exit_status(self._codes.values())

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=_work, args=(self._settings_of[index - 1],), name=f"tickcast-w{index}"
        )
        process.start()
        self._running[index] = process
        self._restarts.started(index, time.monotonic())
        log.info("worker %d started (pid %s)", index, process.pid)

    def _ended(self, index: int, *, stopping: bool) -> None:
        process = self._running.pop(index)
        process.join()
        code = self._codes[index] = process.exitcode
        again = self._restarts.ended(index, time.monotonic(), stopping=stopping)
        if again is None:
            log.info("worker %d (pid %s) ended, exit code %s", index, process.pid, code)
            return
        self._due[index] = again
        log.error(
            "worker %d (pid %s) died unexpectedly, exit code %s: restarting in %.1f s",
            index,
            process.pid,
            code,
            max(0.0, again - time.monotonic()),
        )

    def _signal_all(self, signum: int) -> None:
        for process in self._running.values():
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)


def supervise(settings: Settings, workers: int, *, demo: bool = False) -> int:
    """``tickcast serve --workers N`` (N > 1): prepare once, then run the workers.

    Returns:
        0 when every worker drained after SIGTERM or SIGINT; 1 when the database cannot
        be prepared, the address is taken, or a worker did not drain cleanly.
    """
    from tickcast.auth.credentials import new_jwt_secret
    from tickcast.cli.main import demo_settings
    from tickcast.observability.logs import configure_logging

    check(workers, settings.bus_url.get_secret_value())
    configure_logging(settings.log_level, settings.log_format)
    try:  # fail at once, not N times over and again, when the address is taken
        reuse_port_socket(settings.host, settings.port).close()
    except OSError as exc:
        print(
            f"tickcast serve: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    if not _prepare_database(settings, demo=demo):
        return 1
    if demo:
        settings = demo_settings(settings)
    base = base_node_id(settings.node_id, socket.gethostname(), settings.port)
    secret = new_jwt_secret() if settings.jwt_secret is None else None
    settings_of = [
        worker_settings(settings, worker_node_id(base, k), secret) for k in range(1, workers + 1)
    ]
    supervisor = Supervisor(settings_of, drain_s=settings.close_timeout_s + 1 + DRAIN_MARGIN_S)
    return supervisor.run()


def _prepare_database(settings: Settings, *, demo: bool) -> bool:
    """Migrate the database once (and seed the demo, which migrates first), before any
    worker starts; print why not and return False when it cannot be done."""
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from tickcast.cli.accounts import Refused, database, prepare_demo

    if demo:
        try:
            hint = prepare_demo(settings)
        except Refused as exc:
            print(f"tickcast serve: {exc}", file=sys.stderr)
            return False
        print(hint, file=sys.stderr, flush=True)  # printed, not logged: see cli.main.serve
        return True

    async def migrate() -> None:
        async with database(settings):
            pass

    try:
        asyncio.run(migrate())
    except (OSError, SQLAlchemyError) as exc:
        print(f"tickcast serve: cannot migrate the database: {exc}", file=sys.stderr)
        return False
    return True
