"""Review findings for Front 5 (Socket.IO) that need no server: what the project
declares against what its code relies on.

Each test reproduced one defect found in review (it failed before the fix) and now guards
against its return."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from tickcast.fronts import socketio as front

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

#: python-engineio's first release with disconnect reasons (``AsyncServer.reason``, the
#: ``reason`` argument of the disconnect handlers): 4.11.0. python-socketio's first
#: release requiring it: 5.12.0 (5.11.x accepts python-engineio 4.8).
ENGINEIO_WITH_REASONS = Version("4.11.0")
SOCKETIO_WITH_REASONS = Version("5.12.0")


def _floor(name: str) -> Version | None:
    """The lowest version of ``name`` the project's runtime dependencies allow."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.name == name:
            lows = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
            return max(lows) if lows else None
    return None


def test_the_front_uses_engineio_disconnect_reasons() -> None:
    """What makes the floor matter: the front reads ``eio.reason`` and takes a reason."""
    source = inspect.getsource(front)
    assert "eio.reason.SERVER_DISCONNECT" in source
    assert "async def _handle_eio_disconnect(self, eio_sid: str, reason" in source


def test_the_declared_floor_installs_what_the_front_relies_on() -> None:
    engineio = _floor("python-engineio")
    socketio = _floor("python-socketio")
    assert (engineio is not None and engineio >= ENGINEIO_WITH_REASONS) or (
        socketio is not None and socketio >= SOCKETIO_WITH_REASONS
    ), f"python-socketio>={socketio}, python-engineio>={engineio}"
