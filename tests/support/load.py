"""Load on the machine: busy processes, for tests that must hold on a busy machine."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def cpu_load(processes: int | None = None) -> Iterator[None]:
    """Keep ``processes`` CPU-bound processes running (default: one per core)."""
    count = processes if processes is not None else os.cpu_count() or 2
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
