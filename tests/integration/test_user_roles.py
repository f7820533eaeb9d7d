"""`tickcast users create NAME --role`, `users set-role` and `users list` (in-process),
and the role an API key carries to the gateway (docs/monitoring.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickcast.cli.accounts import run_users
from tickcast.cli.main import build_parser
from tickcast.config.settings import Settings


def settings_for(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db")


def test_users_create_with_a_role_set_role_and_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path)
    assert run_users(settings, "create", "olga", role="operator") == 0
    assert capsys.readouterr().out.strip() == "created user 'olga' (id 1, role operator)"
    assert run_users(settings, "create", "uma") == 0
    assert capsys.readouterr().out.strip() == "created user 'uma' (id 2)"
    assert run_users(settings, "set-role", "uma", role="operator") == 0
    assert capsys.readouterr().out.strip() == "user 'uma' is now operator (was user)"
    assert run_users(settings, "set-role", "uma", role="operator") == 0
    assert "(it already was)" in capsys.readouterr().out
    assert run_users(settings, "set-role", "olga", role="user") == 0
    capsys.readouterr()
    assert run_users(settings, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "USERNAME", "ROLE", "CREATED"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["1", "olga", "user"],
        ["2", "uma", "operator"],
    ]


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(tmp_path)
    assert run_users(settings, "list") == 0
    assert capsys.readouterr().out.strip() == "no users"
    assert run_users(settings, "set-role", "nobody", role="operator") == 1
    assert "no user 'nobody'" in capsys.readouterr().err
    assert run_users(settings, "create", "x", role="admin") == 2
    assert "unknown role 'admin'" in capsys.readouterr().err


def test_the_command_line_parses_roles() -> None:
    parser = build_parser()
    args = parser.parse_args(["users", "create", "olga", "--role", "operator"])
    assert (args.users_action, args.username, args.role) == ("create", "olga", "operator")
    args = parser.parse_args(["users", "set-role", "uma", "user"])
    assert (args.users_action, args.username, args.role) == ("set-role", "uma", "user")
    assert parser.parse_args(["users", "list"]).users_action == "list"
    with pytest.raises(SystemExit):
        parser.parse_args(["users", "create", "x", "--role", "admin"])
