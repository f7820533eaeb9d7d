"""Load a file of ``bench/`` as a module (bench/ is scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

#: The repository's ``bench/`` folder.
BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench(name: str, relative: str) -> ModuleType:
    """``bench/<relative>`` imported as module ``name`` (registered in ``sys.modules``,
    so that dataclasses and pickling inside it find it)."""
    spec = importlib.util.spec_from_file_location(name, BENCH / relative)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
