"""A private nginx in front of local gateway nodes, run on the shipped deploy/nginx.conf.

The shipped file is used as it is, with three lines rewritten: the upstream's ``server``
lines name the test's ``127.0.0.1`` ports, ``listen`` a free local port, and a test may
add directives to the ``server`` block (a response header saying which node answered).
Everything else, the upgrade map, the timeouts, buffering, the forwarding headers and the
stickiness, is the file that ships, so a test through this proxy tests those directives.

The nginx is the test's own: its prefix, configuration, pid file, logs and temporary
files are in a directory of the test's, it runs in the foreground (``daemon off``) as a
child of the test and is stopped at teardown. The machine's nginx service is never used.

Without an ``nginx`` binary a test is skipped, except under ``CI=true``, where that is a
failure (.ci/run installs Debian's nginx).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.server import free_port

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "nginx.conf"
#: The longest a start or a stop is waited for (a busy 2-core machine included).
TIMEOUT_S = 30.0

_SERVER_LINE = re.compile(r"^([ \t]*)server[ \t]+tickcast-[a-z]+:8000\b([^;\n]*);[ \t]*\n", re.M)
_LISTEN_LINE = re.compile(r"^([ \t]*)listen[ \t]+80;[ \t]*$", re.MULTILINE)
_SERVER_BLOCK = re.compile(r"^server[ \t]*\{[ \t]*$", re.MULTILINE)


def nginx_binary() -> str:
    """The ``nginx`` binary; a skip without one, or a failure under CI=true."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        reason = "nginx is not installed (apt-get install nginx-light)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must provide it (.ci/run)")
        pytest.skip(reason)
    return found


def render_site(
    upstreams: Sequence[int], listen: int, *, extra: Sequence[str] = (), source: Path = SHIPPED
) -> str:
    """The shipped site with the upstream's ``server`` lines naming ``127.0.0.1:<port>``
    for each of ``upstreams``, ``listen`` on ``127.0.0.1:<listen>``, and ``extra``
    directives at the start of the ``server`` block. Raises ``ValueError`` when the
    shipped file no longer has the lines this rewrites (so a change there is seen)."""
    text = source.read_text()
    servers = list(_SERVER_LINE.finditer(text))
    if not servers or not _LISTEN_LINE.search(text) or len(_SERVER_BLOCK.findall(text)) != 1:
        raise ValueError(f"{source}: no 'server tickcast-X:8000', 'listen 80;' or server block")
    indent, options = servers[0].group(1), servers[0].group(2)
    lines = "\n".join(f"{indent}server 127.0.0.1:{port}{options};" for port in upstreams)
    text = (
        text[: servers[0].start()] + lines + "\n" + _SERVER_LINE.sub("", text[servers[0].end() :])
    )
    text = _LISTEN_LINE.sub(lambda m: f"{m.group(1)}listen 127.0.0.1:{listen};", text)
    added = "".join(f"\n    {directive}" for directive in extra)
    return _SERVER_BLOCK.sub(lambda m: m.group(0) + added, text)


def main_config(prefix: Path, site: Path) -> str:
    """A main nginx.conf whose every path is under ``prefix``, including ``site``."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers may read the tmp dir
    temp = "\n".join(
        f"    {name}_temp_path {prefix / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        f"pid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} info;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"    access_log {prefix / 'access.log'};\n"
        f"{temp}\n"
        f"    include {site};\n"
        "}\n"
    )


def write_config(
    prefix: Path, upstreams: Sequence[int], listen: int, *, extra: Sequence[str] = ()
) -> Path:
    """Write the site and the main configuration under ``prefix``; return the main one."""
    prefix.mkdir(parents=True, exist_ok=True)
    site = prefix / "tickcast.conf"
    site.write_text(render_site(upstreams, listen, extra=extra))
    conf = prefix / "nginx.conf"
    conf.write_text(main_config(prefix, site))
    return conf


def check_config(binary: str, prefix: Path, conf: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``conf``."""
    return subprocess.run(
        [binary, "-t", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


@dataclass
class Nginx:
    """A running private nginx."""

    proc: subprocess.Popen[bytes]
    port: int
    prefix: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.prefix / "error.log").read_text(errors="replace")

    def stop(self) -> None:
        """SIGQUIT (finish what is in flight), SIGKILL if it is not gone in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT_S)


def start_nginx(prefix: Path, upstreams: Sequence[int], *, extra: Sequence[str] = ()) -> Nginx:
    """Start nginx on a free port in front of ``upstreams``; return once it accepts."""
    binary = nginx_binary()
    port = free_port()
    conf = write_config(prefix, upstreams, port, extra=extra)
    checked = check_config(binary, prefix, conf)
    assert checked.returncode == 0, checked.stderr
    command = [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    proc = subprocess.Popen(
        [*command, "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nginx = Nginx(proc, port, prefix)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited {proc.returncode}:\n{nginx.log()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return nginx
        time.sleep(0.05)
    nginx.stop()
    raise RuntimeError(f"nginx not listening in {TIMEOUT_S} s:\n{nginx.log()}")


@contextlib.contextmanager
def running_nginx(
    prefix: Path, upstreams: Sequence[int], *, extra: Sequence[str] = ()
) -> Iterator[Nginx]:
    """``start_nginx``, stopped on exit."""
    nginx = start_nginx(prefix, upstreams, extra=extra)
    try:
        yield nginx
    finally:
        nginx.stop()
