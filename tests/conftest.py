"""Suite-wide fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test that builds a gateway in-process gets its own SQLite file, never the
    working directory's ``tickcast.db`` (tests that need another database set their own)."""
    monkeypatch.setenv("TICKCAST_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/tickcast.db")
