"""Build the compiled load client (bench/cclient/loadclient.c) from source with gcc.

The binary is never committed: it is built on first use into a cache directory
(``$TICKCAST_BENCH_CACHE``, else ``$XDG_CACHE_HOME/tickcast-bench``, else
``~/.cache/tickcast-bench``), named by a hash of the source and the flags, so an edit
rebuilds it and nothing is downloaded. ``binary()`` returns its path; ``available()``
says whether gcc is there to build it.

    python bench/cclient/build.py            # build (if needed) and print the path
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = {"loadclient": HERE / "loadclient.c", "sender": HERE / "sender.c"}
CFLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-march=native"]
LIBS = ["-lm"]


class BuildError(RuntimeError):
    """gcc is missing or the source did not compile."""


def cache_dir() -> Path:
    env = os.environ.get("TICKCAST_BENCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tickcast-bench"


def available() -> bool:
    """True if gcc is on PATH (the only thing a build needs)."""
    return shutil.which("gcc") is not None


def binary(name: str = "loadclient", cache: Path | None = None) -> Path:
    """The built program ``name`` (``loadclient`` or ``sender``), compiled if needed."""
    src = SOURCES[name]
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("gcc not found: the compiled load client cannot be built")
    text = src.read_bytes()
    digest = hashlib.sha256(text + " ".join(CFLAGS + LIBS).encode()).hexdigest()[:16]
    out_dir = cache or cache_dir()
    out = out_dir / f"{name}-{digest}"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    proc = subprocess.run(
        [gcc, *CFLAGS, "-o", str(tmp), str(src), *LIBS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"gcc failed on {src.name}:\n{proc.stderr[-4000:]}")
    tmp.replace(out)  # atomic: a concurrent build of the same source lands the same file
    return out


if __name__ == "__main__":
    print(binary(sys.argv[1] if len(sys.argv) > 1 else "loadclient"))
