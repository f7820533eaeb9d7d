"""Suite-wide fixtures, and a watchdog for a test that does not end."""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

#: A test still running after this long gets every thread's stack and every pending
#: asyncio task's stack written to its captured stderr, shown with its failure when
#: pytest-timeout (``timeout`` in pyproject.toml, later) then fails it: a test that
#: hangs says where, instead of stopping the suite with no clue.
WATCHDOG_S = float(os.environ.get("TICKCAST_TEST_WATCHDOG_S", "300"))


def _dump_stacks() -> None:
    fd = 2
    os.write(fd, b"\n=== watchdog: the test is still running; thread stacks ===\n")
    faulthandler.dump_traceback(fd, all_threads=True)
    os.write(fd, b"=== watchdog: pending asyncio tasks ===\n")
    with os.fdopen(os.dup(fd), "w") as out:
        for task in [o for o in gc.get_objects() if isinstance(o, asyncio.Task)]:
            if not task.done():
                print(repr(task), file=out)
                task.print_stack(limit=40, file=out)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    timer = threading.Timer(WATCHDOG_S, _dump_stacks)
    timer.daemon = True
    timer.start()
    try:
        return (yield)
    finally:
        timer.cancel()


@pytest.fixture(autouse=True)
def private_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test that builds a gateway in-process gets its own SQLite file, never the
    working directory's ``tickcast.db`` (tests that need another database set their own)."""
    monkeypatch.setenv("TICKCAST_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/tickcast.db")
