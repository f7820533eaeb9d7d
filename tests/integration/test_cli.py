"""The `tickcast` command as a newcomer meets it: `serve --help` and `serve`'s flags.

`serve --help` lists every endpoint the gateway answers; the list is checked against the
routes of the application that `serve` runs, both ways, so that it stays true when an
endpoint is added or removed. `serve --database-url` means what it means for the other
commands: the accounts a `tickcast users`/`keys` command wrote are the ones the
gateway serves.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
from starlette.routing import BaseRoute, Mount, WebSocketRoute

from support.server import start_server
from tickcast.app import build_app
from tickcast.config.settings import Settings
from tickcast.fronts.socketio import SocketIOEndpoint

#: One endpoint line of `serve --help`: method (or WS), then the path.
ENDPOINT_LINE = re.compile(r"^ {2}(GET|POST|PUT|PATCH|DELETE|WS|SOCKJS|SIO) +(/\S*)", re.MULTILINE)


def tickcast(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command line (``python -m tickcast``), as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "tickcast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route; a mount of files is ``GET <prefix>/...``."""
    for route in routes:
        if isinstance(route, Mount):
            inner = getattr(route.app, "routes", None)
            if inner is None:  # static files: a whole prefix
                yield "GET", f"{prefix}{route.path}/..."
            else:
                yield from walk(inner, prefix + route.path)
        elif isinstance(route, WebSocketRoute):
            yield "WS", prefix + route.path
        else:
            methods = getattr(route, "methods", None) or {"GET"}
            path = getattr(route, "path", "")
            yield from ((m, prefix + path) for m in sorted(methods - {"HEAD"}))


def served_endpoints(tmp_path: Path) -> set[tuple[str, str]]:
    """Every endpoint of the application `serve` runs, the test-only echo included."""
    settings = Settings(
        test_echo=True,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/routes.db",
        jwt_secret="a-test-secret-of-at-least-32-bytes-long",
    )
    app = build_app(settings)
    found = set(walk(app.app.routes))
    found |= {("WS", path) for path in app.fronts}
    found |= {
        ("SIO" if isinstance(mount, SocketIOEndpoint) else "SOCKJS", f"{prefix}/...")
        for prefix, _, mount in app.mounts
    }
    return found


def covered(endpoint: tuple[str, str], listed: set[tuple[str, str]]) -> bool:
    method, path = endpoint
    if endpoint in listed:
        return True
    # "/static/..." stands for every file mount under /static
    return any(
        m == method and p.endswith("/...") and (path + "/").startswith(p[:-3]) for m, p in listed
    )


def test_serve_help_lists_every_http_and_websocket_endpoint(tmp_path: Path) -> None:
    result = tickcast("serve", "--help")
    assert result.returncode == 0, result.stderr
    listed = set(ENDPOINT_LINE.findall(result.stdout))
    served = served_endpoints(tmp_path)

    missing = sorted(e for e in served if not covered(e, listed))
    assert missing == [], f"served but not in `serve --help`: {missing}"
    stale = sorted(e for e in listed if not any(covered(s, {e}) for s in served))
    assert stale == [], f"in `serve --help` but not served: {stale}"
    # the ones a newcomer looks for first, by name
    for path in ("/", "/realtime/dashboard/", "/api/docs", "/metrics", "/ws/realtime/"):
        assert re.search(rf"^ {{2}}\w+ +{re.escape(path)} ", result.stdout, re.MULTILINE), path
    assert "--database-url" in result.stdout


def test_serve_takes_database_url_as_the_account_commands_do(tmp_path: Path) -> None:
    """Accounts written with `users create`/`keys create --database-url X` are served by
    `serve --database-url X`, even with TICKCAST_DATABASE_URL naming another database
    (flags win over the environment)."""
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    url = f"sqlite+aiosqlite:///{chosen}/accounts.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    created = tickcast("users", "create", "ada", "--database-url", url, env=env)
    assert created.returncode == 0, created.stderr
    minted = tickcast("keys", "create", "--user", "ada", "--database-url", url, env=env)
    assert minted.returncode == 0, minted.stderr
    key = minted.stdout.strip()

    # start_server sets TICKCAST_DATABASE_URL to <tmp_path>/tickcast.db: the flag must win
    srv = start_server(tmp_path, args=["--database-url", url])
    try:
        me = httpx.get(f"{srv.http}/api/me", headers={"X-API-Key": key}, timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "ada"
    finally:
        srv.stop()
    assert not (tmp_path / "tickcast.db").exists(), "the environment's database was not used"


def test_serve_refuses_a_bad_database_url_with_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    result = subprocess.run(
        [sys.executable, "-m", "tickcast", "serve", "--port", "0", "--database-url", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "database_url is not a database URL" in result.stderr
    assert not list(tmp_path.iterdir()), "nothing was created"


def test_serve_says_in_one_line_that_the_bus_cannot_be_reached(tmp_path: Path) -> None:
    # a port nobody listens on: bound, then closed
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickcast",
            "serve",
            "--port",
            "0",
            "--database-url",
            f"sqlite:///{tmp_path / 'bus.db'}",
            "--bus",
            f"redis://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tickcast serve: cannot start: cannot reach the Redis bus at 127.0.0.1:")
    assert "Traceback" not in result.stderr
