"""``tickcast users``, ``tickcast keys`` and ``tickcast demo``: accounts from the command line.

``users create NAME [--role operator]``, ``users set-role NAME ROLE`` and ``users list``
manage accounts and their roles ("user", the default, or "operator": who may read the
monitoring streams).

Rules: every command migrates the database first (a new SQLite file gets its schema),
does its work in one transaction and disposes of its engine. An API key is printed once,
when it is minted, on stdout and alone on its line (so ``KEY=$(tickcast keys create
--user ada)`` works); what a human should read goes to stderr. The database keeps only
the key's public prefix and the SHA-256 of its secret (``auth.credentials``), so a lost
key is revoked and replaced, never shown again. Refusals (a taken username, an unknown
user or key) are one line on stderr and exit 1; nothing else goes wrong quietly.

Exit codes: 0 done, 1 refused (see the message), 2 bad usage.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, TextIO, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from tickcast.auth.credentials import (
    API_KEY_PREFIX,
    PREFIX_CHARS,
    InvalidCredentials,
    NewKey,
    check_permissions,
    looks_like_api_key,
    new_api_key,
    parse_api_key,
)
from tickcast.config.settings import Settings
from tickcast.demo import DEMO_KEY_NAME, DEMO_USERNAME, DemoAccount, demo_token_hint, seed_demo
from tickcast.errors import TickcastError
from tickcast.storage import migrate
from tickcast.storage.engine import make_engine
from tickcast.storage.errors import Conflict, NotFound
from tickcast.storage.records import ROLES, ApiKey, User
from tickcast.storage.repositories import ApiKeys, Users

#: Longest username (the ``users.username`` column).
MAX_USERNAME_CHARS = 64
#: Longest API key label (the ``api_keys.name`` column).
MAX_LABEL_CHARS = 100
DEFAULT_LABEL = "default"

T = TypeVar("T")


class Refused(TickcastError):
    """A command the database or the rules refuse: a taken name, an unknown user or key."""


# -- the operations (async, reusable, raise Refused or ValueError)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The migrated database of ``settings``, disposed of on exit."""
    engine = make_engine(settings.database_url)
    try:
        await migrate.upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


def check_username(username: str) -> str:
    """``username`` if it can name an account (printable, no spaces, 1-64 characters).

    Raises:
        ValueError: it cannot (tokens carry the name; a space or control character would
            only cause trouble in logs and URLs).
    """
    if not 1 <= len(username) <= MAX_USERNAME_CHARS:
        raise ValueError(f"a username has 1 to {MAX_USERNAME_CHARS} characters")
    if not username.isprintable() or any(c.isspace() for c in username):
        raise ValueError(f"a username is printable and has no spaces: {username!r}")
    return username


async def create_user(settings: Settings, username: str, role: str = "user") -> User:
    """Create the account ``username`` with ``role`` (``storage.records.ROLES``).

    Raises:
        ValueError: the name is not a valid username, or the role is unknown.
        Refused: the name is taken.
    """
    check_username(username)
    check_role(role)
    async with database(settings) as engine, engine.begin() as conn:
        try:
            return await Users(conn).create(username, role=role)
        except Conflict:
            raise Refused(f"user {username!r} already exists") from None


def check_role(role: str) -> str:
    """``role`` if it is one of ``ROLES``; else ValueError."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    return role


async def set_role(settings: Settings, username: str, role: str) -> tuple[User, str]:
    """Give ``username`` the role ``role``; the user as it is now, and its former role.

    Raises:
        ValueError: the role is unknown.
        Refused: no such user.
    """
    check_role(role)
    async with database(settings) as engine, engine.begin() as conn:
        users = Users(conn)
        user = await _user(users, username)
        return await users.set_role(user.id, role), user.role


async def list_users(settings: Settings) -> list[User]:
    """Every user, by id."""
    async with database(settings) as engine, engine.connect() as conn:
        return await Users(conn).list_all()


def check_label(label: str) -> str:
    """``label`` if it can name an API key (printable, 1-100 characters); else ValueError."""
    if not 1 <= len(label) <= MAX_LABEL_CHARS or not label.isprintable():
        raise ValueError(f"a key label is printable and has 1 to {MAX_LABEL_CHARS} characters")
    return label


async def create_key(
    settings: Settings,
    username: str,
    label: str = DEFAULT_LABEL,
    permissions: Sequence[str] = (),
) -> NewKey:
    """Mint an API key for ``username``, with ``permissions`` (``auth.credentials.
    PERMISSIONS``; none by default); store its prefix and hash, return the whole key.

    The caller shows ``NewKey.token`` once: it cannot be recovered afterwards.

    Raises:
        ValueError: ``label`` is not a valid label, or a permission is unknown.
        Refused: no such user, or the demo user's reserved label (``DEMO_KEY_NAME``).
    """
    check_label(label)
    stored = check_permissions(permissions)
    if username == DEMO_USERNAME and label == DEMO_KEY_NAME:
        # `serve --demo` revokes the demo user's keys with this label on every start: a
        # key made by hand under it would be revoked with them
        raise Refused(
            f"the label {DEMO_KEY_NAME!r} is reserved for the keys `tickcast serve --demo` "
            "mints and revokes for the demo user; choose another label"
        )
    async with database(settings) as engine, engine.begin() as conn:
        user = await _user(Users(conn), username)
        key = new_api_key()
        try:
            await ApiKeys(conn).insert(
                user.id,
                prefix=key.prefix,
                secret_hash=key.secret_hash,
                name=label,
                permissions=stored,
            )
        except Conflict:  # two 72-bit random prefixes collided: never seen, but clear
            raise Refused("key prefix collision; run the command again") from None
    return key


async def list_keys(settings: Settings, username: str) -> list[ApiKey]:
    """The user's keys, revoked ones included, oldest first. Raises Refused (no such user)."""
    async with database(settings) as engine, engine.connect() as conn:
        user = await _user(Users(conn), username)
        return await ApiKeys(conn).list_for_user(user.id)


def shown(prefix: str) -> str:
    """How a key is named to people: ``tc_<prefix>``, the start of the key itself.

    (A bare prefix may start with ``-``, which a command line would take for an option.)
    """
    return f"{API_KEY_PREFIX}{prefix}"


def prefix_of(key: str) -> str:
    """The prefix in ``tc_<prefix>``, in a whole key, or ``key`` itself (a bare prefix).

    Raises:
        Refused: ``key`` starts with ``tc_`` but is neither of the first two forms.
    """
    if not looks_like_api_key(key):
        return key
    if len(key) == len(API_KEY_PREFIX) + PREFIX_CHARS:
        return key[len(API_KEY_PREFIX) :]
    try:
        return parse_api_key(key)[0]
    except InvalidCredentials:
        raise Refused(
            f"not an API key or a key prefix (tc_ and {PREFIX_CHARS} characters)"
        ) from None


async def revoke_key(settings: Settings, key: str) -> tuple[ApiKey, User]:
    """Revoke a key, named as ``prefix_of`` reads it; the key as it was, and its owner.

    Revoking twice is allowed (and says so: ``ApiKey.revoked`` is already True).

    Raises:
        Refused: no key has this prefix.
    """
    prefix = prefix_of(key)
    async with database(settings) as engine, engine.begin() as conn:
        keys = ApiKeys(conn)
        try:
            found = await keys.find_by_prefix(prefix)
        except NotFound:
            raise Refused(f"no API key {shown(prefix)}") from None
        await keys.revoke(found.id)
        owner = await Users(conn).by_id(found.user_id)
    return found, owner


async def _user(users: Users, username: str) -> User:
    try:
        return await users.by_name(username)
    except NotFound:
        raise Refused(
            f"no user {username!r} (create it with `tickcast users create {username}`)"
        ) from None


# -- the commands (sync, print, return an exit code)


def run_users(
    settings: Settings,
    action: str,
    username: str = "",
    *,
    role: str = "user",
    out: TextIO | None = None,
) -> int:
    """``tickcast users create NAME [--role ROLE]``, ``users set-role NAME ROLE``,
    ``users list``."""
    out = out or sys.stdout
    if action == "list":
        users = _run(list_users(settings), "users list")
        if users is None:
            return 1
        _print_users(users, out)
        return 0
    if action not in ("create", "set-role"):
        return _usage(f"users: unknown action {action!r} (known: create, set-role, list)")
    try:
        check_role(role)
        if action == "create":
            check_username(username)
    except ValueError as exc:
        return _usage(f"users {action}: {exc}")
    if action == "set-role":
        changed = _run(set_role(settings, username, role), "users set-role")
        if changed is None:
            return 1
        now, before = changed
        same = " (it already was)" if before == now.role else f" (was {before})"
        print(f"user {now.username!r} is now {now.role}{same}", file=out)
        return 0
    created = _run(create_user(settings, username, role), "users create")
    if created is None:
        return 1
    shown_role = f", role {created.role}" if created.role != "user" else ""
    print(f"created user {created.username!r} (id {created.id}{shown_role})", file=out)
    return 0


def _print_users(users: list[User], out: TextIO) -> None:
    if not users:
        print("no users", file=out)
        return
    rows = [("ID", "USERNAME", "ROLE", "CREATED")]
    for u in users:
        rows.append((str(u.id), u.username, u.role, u.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


def run_keys(
    settings: Settings,
    action: str,
    *,
    user: str | None = None,
    label: str = DEFAULT_LABEL,
    prefix: str | None = None,
    permissions: Sequence[str] = (),
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``tickcast keys create --user NAME [--label L] [--permission P]...``, ``keys list
    --user NAME``, ``keys revoke PREFIX``."""
    out, err = out or sys.stdout, err or sys.stderr
    if action in ("create", "list") and not user:
        return _usage(f"keys {action}: --user is required")
    user = user or ""
    if action == "create":
        try:
            check_label(label)
            check_permissions(permissions)
        except ValueError as exc:
            return _usage(f"keys create: {exc}")
        key = _run(create_key(settings, user, label, permissions), "keys create")
        if key is None:
            return 1
        print(key.token, file=out)
        out.flush()
        allowed = f", allowed: {' '.join(sorted(set(permissions)))}" if permissions else ""
        print(
            f"API key {shown(key.prefix)}... ({label!r}{allowed}) for user {user!r}. "
            "Copy it now: it "
            "cannot be shown again (the database keeps only its prefix and a hash of its "
            "secret).",
            file=err,
        )
        return 0
    if action == "list":
        keys = _run(list_keys(settings, user), "keys list")
        if keys is None:
            return 1
        _print_keys(keys, out)
        return 0
    if action == "revoke":
        if not prefix:
            return _usage("keys revoke: give the key's prefix (tc_ and 12 characters)")
        revoked = _run(revoke_key(settings, prefix), "keys revoke")
        if revoked is None:
            return 1
        key_, owner = revoked
        already = " (it already was)" if key_.revoked else ""
        revoked_key = shown(key_.prefix)
        print(f"revoked API key {revoked_key} of user {owner.username!r}{already}", file=out)
        return 0
    return _usage(f"keys: unknown action {action!r} (known: create, list, revoke)")


def run_demo(settings: Settings, *, new_key: bool = False, out: TextIO | None = None) -> int:
    """``tickcast demo [--new-key]``: seed the demo account; print how to open the dashboard."""
    out = out or sys.stdout
    account = _run(_seed(settings, new_key), "demo")
    if account is None:
        return 1
    state = "created" if account.user_created else "found"
    seeded = ", ".join(account.seeded) if account.seeded else "none (already there)"
    print(f"demo user {account.username!r}: {state}; portfolios seeded: {seeded}", file=out)
    if account.api_key is not None:
        print(f"API key (shown once): {account.api_key}", file=out)
    print(demo_token_hint(account, settings.host, settings.port), file=out)
    print("Start the gateway with `tickcast serve`, then open the URL above.", file=out)
    return 0


def prepare_demo(settings: Settings) -> str:
    """For ``serve --demo``, before the gateway starts: seed the demo account and mint a
    fresh demo API key (a key cannot be shown twice, and each start must print a URL
    that works); return the lines to log. The demo keys of earlier starts are revoked
    (``tickcast keys list --user demo`` shows them as such), so one demo key is valid.

    Raises:
        Refused: the database cannot be used (the message says why).
    """
    try:
        account = asyncio.run(_seed(settings, new_key=True))
    except (OSError, OperationalError) as exc:
        raise Refused(f"cannot seed the demo account: {exc}") from exc
    return demo_token_hint(account, settings.host, settings.port)


async def _seed(settings: Settings, new_key: bool) -> DemoAccount:
    engine = make_engine(settings.database_url)
    try:
        return await seed_demo(engine, new_key=new_key)
    finally:
        await engine.dispose()


def _print_keys(keys: list[ApiKey], out: TextIO) -> None:
    if not keys:
        print("no API keys", file=out)
        return
    rows = [("KEY", "LABEL", "CREATED", "LAST USED", "STATUS", "PERMISSIONS")]
    for k in keys:
        rows.append(
            (
                shown(k.prefix),
                k.name,
                k.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                k.last_used_at.strftime("%Y-%m-%dT%H:%M:%SZ") if k.last_used_at else "never",
                "revoked" if k.revoked else "active",
                k.permissions or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


def _run(work: Coroutine[Any, Any, T], command: str) -> T | None:
    """Run ``work``; None after printing why it was refused or could not run."""
    try:
        return asyncio.run(work)
    except Refused as exc:
        print(f"tickcast {command}: {exc}", file=sys.stderr)
    except (OSError, OperationalError) as exc:
        print(f"tickcast {command}: cannot use the database: {exc}", file=sys.stderr)
    return None


def _usage(message: str) -> int:
    print(f"tickcast {message}", file=sys.stderr)
    return 2
