"""The README and docs/ as a newcomer reads them: run as written, and standing on their own.

The README's account example is run with bash, as written, against a real server that
`make serve` would have seeded with the demo account first (so that a new user's first
portfolio is not id 1). Only the port (a free one instead of 8000) and the path of the
virtualenv (this interpreter's) are substituted. The other checks read the text:
every relative link points at a file of the repository, nothing points into the
project's private notes, every `tickcast` command is named, every example server has a
port of its own, and the first `make serve` says what it is installing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.server import free_port, start_server
from tickcast.cli.main import build_parser
from tickcast.demo import LEADERBOARD_PLAYERS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
#: The folder of notes beside the repository, which is not part of the product, and the
#: names of its files (split so that this file does not name them itself).
PRIVATE_NOTES = "/".join(["", "shared", ""])
PRIVATE_NAMES = re.compile(
    "("
    + "|".join(["MISSION", "DESIGN", "STYLE", "RELIABILITY", "PROVIDERS", "PROTOCOLS"])
    + r")\.md"
)
FENCED = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def shell_blocks(text: str) -> list[str]:
    return [body for lang, body in FENCED.findall(text) if lang in ("sh", "bash", "")]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing: CI must provide it")
        pytest.skip(f"{tool} is missing")
    return path


def json_documents(text: str) -> list[Any]:
    """The JSON values printed one after the other (curl adds no newline)."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        value, i = decoder.raw_decode(text, i)
        found.append(value)
    return found


def run_after_make_serve(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as a README reader would, against a server seeded as `make serve`
    does (the demo account first), its URLs and `.venv/bin/` pointed at this one."""
    database_url = f"sqlite+aiosqlite:///{tmp_path}/tickcast.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    env["TICKCAST_DATABASE_URL"] = database_url
    # what `make serve` does first: the demo account (three portfolios) before anything
    demo = subprocess.run(
        [sys.executable, "-m", "tickcast", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    srv = start_server(tmp_path, database_url=database_url)
    try:
        script = script.replace("127.0.0.1:8000", f"127.0.0.1:{srv.port}").replace(
            ".venv/bin/", f"{Path(sys.executable).parent}/"
        )
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        srv.stop()
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result


def test_readme_account_example_runs_as_written_after_make_serve(tmp_path: Path) -> None:
    need("curl")
    block = next(b for b in shell_blocks(README.read_text()) if "tickcast users create" in b)
    result = run_after_make_serve(tmp_path, block)
    said, _, answers = result.stdout.partition("{")
    # the demo user is id 1, then the leaderboard's players
    assert said.strip() == f"created user 'ada' (id {2 + LEADERBOARD_PLAYERS})"
    recorded, portfolio = json_documents("{" + answers)
    assert "transaction" in recorded, recorded  # not {"detail": "Portfolio 1 not found"}
    portfolio_id = recorded["transaction"]["portfolio_id"]
    assert portfolio_id > 3, "ada's portfolio comes after the demo's three"
    assert recorded["position"]["symbol"] == "AAPL"
    assert recorded["position"]["quantity"] == "10"
    assert portfolio["id"] == portfolio_id
    assert portfolio["name"] == "Growth"
    assert [p["symbol"] for p in portfolio["positions"]] == ["AAPL"]


def test_example_servers_take_ports_of_their_own() -> None:
    """`make serve` holds 8000: a second `tickcast serve` on 8000 exits with a bind error.
    Checked: every code span of the README, and the shell blocks of docs/."""
    examples = [(README.name, README.read_text())]
    examples += [(path.name, "\n".join(shell_blocks(path.read_text()))) for path in DOCS]
    for name, code in examples:
        text = code.replace("\\\n", " ")  # join continued shell lines
        for match in re.finditer(r"tickcast serve(?P<args>[^`\n#]*)", text):
            args = match["args"].strip()
            if not args or args.startswith("--help"):
                continue  # prose naming the command, or its help
            port = re.search(r"--port (\d+)", args)
            assert port is not None, f"{name}: `tickcast serve {args}` has no --port"
            assert port[1] != "8000", f"{name}: `tickcast serve {args}` takes 8000"


def test_readme_names_every_command() -> None:
    subcommands = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    choices = list(subcommands.choices)
    assert "serve" in choices
    text = README.read_text()
    missing = [name for name in choices if f"tickcast {name}" not in text]
    assert missing == [], f"commands the README never names: {missing}"


def _names_private_notes(text: str) -> bool:
    return PRIVATE_NOTES in text or PRIVATE_NAMES.search(text) is not None


def test_product_docs_stand_on_their_own() -> None:
    """Every relative link of the README and docs/ is a file of this repository, and
    nothing in the product (docs, code, tests, bench) points into the private notes."""
    for path in [README, *DOCS]:
        for target in LINK.findall(path.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            resolved = (path.parent / target.split("#")[0]).resolve()
            assert resolved.is_relative_to(ROOT), f"{path.name} links outside: {target}"
            assert resolved.exists(), f"{path.name} links a missing file: {target}"
    offenders = []
    for folder in ("src", "docs", "tests", "bench"):
        for path in (ROOT / folder).rglob("*"):
            text = path.suffix in (".py", ".md", ".js", ".html", ".toml") and path.is_file()
            if text and _names_private_notes(path.read_text(errors="replace")):
                offenders.append(str(path.relative_to(ROOT)))
    for path in (README, ROOT / "Makefile", ROOT / "pyproject.toml"):
        if _names_private_notes(path.read_text()):
            offenders.append(path.name)
    assert offenders == []


def test_the_first_make_serve_says_what_it_installs() -> None:
    """The first `make serve` spends a minute in pip: each step is announced, and pip's
    own progress is not silenced for the install of tickcast and its dependencies."""
    make = need("make")
    dry_run = subprocess.run(
        [make, "-n", "-B", "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    install = next(i for i, line in enumerate(dry_run) if re.search(r"pip install .*-e \.$", line))
    assert "--quiet" not in dry_run[install], dry_run[install]
    assert " -q" not in dry_run[install], dry_run[install]
    said = [line for line in dry_run[:install] if line.startswith("echo ")]
    assert any("installing tickcast and its dependencies" in line for line in said), dry_run
    assert any("creating the virtual environment" in line for line in said), dry_run


def test_readme_front_4_examples_run_as_written_after_the_account_example(
    tmp_path: Path,
) -> None:
    """The leaderboard's and the monitoring's examples, run after the account example
    (they use its `KEY` and `PORTFOLIO`), against a server seeded as `make serve` does."""
    need("curl")
    blocks = shell_blocks(README.read_text())
    account = next(b for b in blocks if "tickcast users create ada" in b)
    board = next(b for b in blocks if "/api/leaderboard/top" in b)
    monitoring = next(b for b in blocks if "--role operator" in b)
    script = "\n".join((account, "echo '<<account>>'", board, monitoring))
    result = run_after_make_serve(tmp_path, script)
    after = result.stdout.split("<<account>>", 1)[1]
    board_said, _, monitoring_said = after.partition("created user 'olga'")
    opted, top = json_documents(board_said)
    monitoring_said = monitoring_said.partition("\n")[2]  # after "(id N)"
    alerts, metrics = json_documents(monitoring_said)
    assert opted["public"] is True
    assert top["type"] == "top-performers"
    assert len(top["data"]) == 3
    assert [entry["rank"] for entry in top["data"]] == [1, 2, 3]
    assert isinstance(alerts, list)
    assert {"timestamp", "cpu", "memory", "disk", "network"} <= metrics.keys()


def test_readme_scale_out_example_runs_as_written(tmp_path: Path) -> None:
    """Two nodes over the machine's Redis: the follower is ready, names the leader, and
    leads once the leader has stopped (its own ports and bus prefix, so that it runs
    beside anything else)."""
    need("curl")
    need("openssl")
    from support.redis import require_redis  # the suite's rule: CI must have Redis

    require_redis()
    block = next(b for b in shell_blocks(README.read_text()) if "--node-id a" in b)
    ports = {"8004": str(free_port()), "8005": str(free_port())}
    script = block.replace("--bus-prefix demo", f"--bus-prefix readme-{os.getpid()}")
    for old, new in ports.items():
        script = script.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}").replace(
            f"--port {old}", f"--port {new}"
        )
    script = script.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKCAST_")}
    env["TICKCAST_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/tickcast.db"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    docs = json_documents(result.stdout)
    ready = [d for d in docs if "ready" in d and "providers" in d]
    before, after = [d for d in docs if "leader" in d]
    assert ready[-1]["ready"] is True
    assert (before["node"], before["leader"]) == ("b", "a")
    assert {n["node"] for n in before["nodes"]} == {"a", "b"}
    assert (after["node"], after["leader"]) == ("b", "b")
    assert after["epoch"] != before["epoch"]
