"""Real JavaScript clients in Node, driven from a test.

A script under ``tests/interop/js`` takes its configuration as one JSON argument and
prints what it sees as JSON lines on stdout; closing its stdin tells it to stop. A test
waits for the lines it needs (``until``), with a deadline, never for a fixed time.

Node and the packages come from ``tests/interop/js`` (``npm ci`` there; .ci/run does it).
Without ``node`` or the package a test needs, the test is skipped, except under
``CI=true``, where that is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parents[1] / "interop" / "js"
#: How long a line is waited for unless a test says otherwise.
WAIT_S = 20.0

Line = dict[str, Any]


def require_node(package: str) -> str:
    """``node``, with ``package`` installed under ``tests/interop/js``; a skip when either
    is missing, or a failure under CI=true."""
    node = shutil.which("node")
    missing = (
        "node is not on PATH"
        if node is None
        else "tests/interop/js/node_modules is missing (run npm ci there)"
        if not (JS_DIR / "node_modules" / package).is_dir()
        else None
    )
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}: CI must provide it (.ci/run)")
        pytest.skip(missing)
    assert node is not None
    return node


class NodeProcess:
    """One ``node <script> <config>`` process and the JSON lines it has printed so far."""

    def __init__(self, proc: subprocess.Popen[str], stderr_path: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self.lines: list[Line] = []
        self._queue: queue.Queue[Line | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def spawn(cls, node: str, script: Path, config: dict[str, Any], stderr_path: Path) -> Any:
        """Start ``script`` with ``config``; its stderr goes to ``stderr_path``."""
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                [node, str(script), json.dumps(config)],
                cwd=JS_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        return cls(proc, stderr_path)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self._queue.put(json.loads(line))
        self._queue.put(None)  # the process has ended

    def until(self, predicate: Callable[[Line], bool], timeout: float = WAIT_S) -> Line:
        """The first line, new or already seen, that satisfies ``predicate``."""
        for line in self.lines:
            if predicate(line):
                return line
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"the client ended; {self.describe()}")
            self.lines.append(line)
            if predicate(line):
                return line
        raise TimeoutError(f"no matching line in {timeout} s; {self.describe()}")

    def describe(self) -> str:
        return f"last lines: {self.lines[-10:]}; stderr: {self.stderr_path.read_text()[-2000:]}"

    def close(self) -> None:
        """Close stdin: the client stops and exits (killed if it does not)."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
