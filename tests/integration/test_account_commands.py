"""The account and price commands: `tickcast users`, `keys`, `update-prices`, `demo`.

Each behaviour is checked twice where it can be: in-process, by calling the command's
``run_*`` function with Settings on a fresh SQLite file, and as a real process
(``python -m tickcast ...``). The process tests skip only while ``tickcast users`` is not
yet a command of the CLI. The database is then read back with the repositories: what
the commands print is checked against what they stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from support.server import free_port
from tickcast.auth.credentials import hash_secret, parse_api_key, verify_secret
from tickcast.cli.accounts import prepare_demo, run_demo, run_keys, run_users
from tickcast.cli.prices import run_update_prices, simulate_daily_closes
from tickcast.config.settings import Settings
from tickcast.demo import (
    DEMO_KEY_NAME,
    DEMO_PORTFOLIOS,
    dashboard_url,
    demo_token_hint,
    reference_prices,
    seed_demo,
)
from tickcast.model.market import Quote
from tickcast.providers.calendar import AlwaysOpen
from tickcast.providers.replay.record import Recorder
from tickcast.providers.simulator.market import DEFAULT_SYMBOLS
from tickcast.storage.engine import make_engine
from tickcast.storage.records import ApiKey, Asset, AssetKind, Position, Transaction
from tickcast.storage.repositories import (
    ApiKeys,
    Assets,
    Portfolios,
    Positions,
    Transactions,
    Users,
)

T = TypeVar("T")


# -- helpers


def url_for(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def settings_for(path: Path, **overrides: Any) -> Settings:
    """Settings on the SQLite file ``path``: the simulator, fast enough to price quickly."""
    return Settings(database_url=url_for(path), rate=overrides.pop("rate", 500.0), **overrides)


def read(path: Path, query: Callable[[AsyncConnection], Coroutine[Any, Any, T]]) -> T:
    """Run ``query`` on a connection to the SQLite file ``path``."""

    async def main() -> T:
        engine = make_engine(url_for(path))
        try:
            async with engine.connect() as conn:
                return await query(conn)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def all_assets(path: Path) -> dict[str, Asset]:
    async def query(conn: AsyncConnection) -> dict[str, Asset]:
        return {a.symbol: a for a in await Assets(conn).list_all()}

    return read(path, query)


def key_by_prefix(path: Path, prefix: str) -> ApiKey:
    async def query(conn: AsyncConnection) -> ApiKey:
        return await ApiKeys(conn).find_by_prefix(prefix)

    return read(path, query)


def authenticates(path: Path, token: str) -> str | None:
    """The username ``token`` authenticates as, checked as the gateway checks it."""
    prefix, secret = parse_api_key(token)

    async def query(conn: AsyncConnection) -> str | None:
        key = await ApiKeys(conn).find_by_prefix(prefix)
        if key.revoked or not verify_secret(secret, key.secret_hash):
            return None
        return (await Users(conn).by_id(key.user_id)).username

    return read(path, query)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_replay(path: Path, symbols: tuple[str, ...], quotes: dict[str, float]) -> None:
    """A recording whose universe is ``symbols`` but that prices only ``quotes``."""
    with path.open("wb") as file:
        recorder = Recorder(file, "simulator", symbols, clock=lambda: 1_700_000_000.0)
        recorder(
            [
                Quote(s, p - 0.01, p + 0.01, 100, 100, p, 1000, 1_700_000_000.0, "simulator")
                for s, p in quotes.items()
            ]
        )
        recorder.close()


# -- users and keys, in-process


def test_user_create_twice_refuses_the_second_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path / "db.sqlite")
    assert run_users(settings, "create", "ada") == 0
    assert "created user 'ada'" in capsys.readouterr().out

    assert run_users(settings, "create", "ada") == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == "tickcast users create: user 'ada' already exists"
    assert "Traceback" not in captured.err


def test_user_create_refuses_a_name_with_spaces_as_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path / "db.sqlite")
    assert run_users(settings, "create", "ada lovelace") == 2
    assert "no spaces" in capsys.readouterr().err
    assert not (tmp_path / "db.sqlite").exists()


def test_key_create_prints_once_a_key_that_authenticates_and_stores_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    settings = settings_for(db)
    assert run_users(settings, "create", "ada") == 0
    capsys.readouterr()

    assert run_keys(settings, "create", user="ada", label="laptop") == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert len(captured.out.splitlines()) == 1  # the key alone on stdout
    prefix, secret = parse_api_key(token)
    assert "cannot be shown again" in captured.err
    assert secret not in captured.err

    stored = key_by_prefix(db, prefix)
    assert stored.name == "laptop"
    assert stored.secret_hash == hash_secret(secret)
    assert secret not in db.read_bytes().decode("latin-1")
    assert authenticates(db, token) == "ada"
    assert authenticates(db, token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_key_create_for_an_unknown_user_exits_1_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path / "db.sqlite")
    assert run_keys(settings, "create", user="nobody") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no user 'nobody'" in captured.err
    assert "tickcast users create nobody" in captured.err


def test_keys_list_shows_prefixes_and_revoke_stops_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    settings = settings_for(db)
    run_users(settings, "create", "ada")
    capsys.readouterr()
    run_keys(settings, "create", user="ada")
    token = capsys.readouterr().out.strip()
    prefix, secret = parse_api_key(token)

    assert run_keys(settings, "list", user="ada") == 0
    listing = capsys.readouterr().out
    assert prefix in listing
    assert "active" in listing
    assert secret not in listing

    assert f"tc_{prefix}" in listing  # named as the key starts, never by its secret

    assert run_keys(settings, "revoke", prefix=f"tc_{prefix}") == 0
    assert f"revoked API key tc_{prefix} of user 'ada'" in capsys.readouterr().out
    assert authenticates(db, token) is None
    assert run_keys(settings, "list", user="ada") == 0
    assert "revoked" in capsys.readouterr().out
    # the bare prefix and the whole key name it too; revoking again says so
    assert run_keys(settings, "revoke", prefix=prefix) == 0
    assert "(it already was)" in capsys.readouterr().out
    assert run_keys(settings, "revoke", prefix=token) == 0
    capsys.readouterr()

    assert run_keys(settings, "revoke", prefix="nosuchprefix") == 1
    assert "no API key tc_nosuchprefix" in capsys.readouterr().err
    assert run_keys(settings, "revoke", prefix="tc_short") == 1
    assert "not an API key or a key prefix" in capsys.readouterr().err


# -- update-prices, in-process


def test_update_prices_writes_a_price_for_every_symbol_of_the_universe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    before = datetime.now(UTC)
    assert run_update_prices(settings_for(db)) == 0

    assets = all_assets(db)
    assert sorted(assets) == sorted(DEFAULT_SYMBOLS)
    for symbol, asset in assets.items():
        assert asset.last_price > 0
        assert asset.kind is (AssetKind.CRYPTO if "/" in symbol else AssetKind.STOCK)
        assert asset.previous_close is None
        assert asset.updated_at >= before
    # The simulator starts at its default prices: the first ones lie close to them.
    assert abs(assets["AAPL"].last_price - Decimal(190)) < 5
    out = capsys.readouterr().out
    assert "wrote 9 asset prices (9 new assets)" in out


def test_update_prices_of_some_symbols_updates_only_them_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.sqlite"
    assert run_update_prices(settings_for(db), ["aapl", "btc/usdt"]) == 0
    first = all_assets(db)
    assert sorted(first) == ["AAPL", "BTC/USDT"]

    assert run_update_prices(settings_for(db, seed=7), ["AAPL"]) == 0
    second = all_assets(db)
    assert second["BTC/USDT"] == first["BTC/USDT"]
    assert second["AAPL"].updated_at > first["AAPL"].updated_at


def test_update_prices_of_an_unknown_symbol_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    assert run_update_prices(settings_for(db), ["AAPL", "NOPE"]) == 2
    assert "not in the feed's universe: NOPE" in capsys.readouterr().err
    assert not db.exists()


def test_dry_run_prints_the_table_and_creates_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    assert run_update_prices(settings_for(db), dry_run=True) == 0
    out = capsys.readouterr().out
    assert "would write 9 asset prices (9 new assets) [dry run: nothing written]" in out
    for symbol in DEFAULT_SYMBOLS:
        assert symbol in out
    assert "insert" in out
    assert list(tmp_path.iterdir()) == []


def test_dry_run_leaves_an_existing_database_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    assert run_update_prices(settings_for(db), ["AAPL", "MSFT"]) == 0
    before, digest = all_assets(db), file_digest(db)
    capsys.readouterr()

    assert run_update_prices(settings_for(db, seed=99), historical_days=3, dry_run=True) == 0
    out = capsys.readouterr().out
    assert "would write 9 asset prices (7 new assets)" in out
    assert all_assets(db) == before
    assert file_digest(db) == digest


def test_historical_days_sets_previous_close_to_the_last_days_close(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    assert run_update_prices(settings_for(db), historical_days=5) == 0
    assets = all_assets(db)
    assert sorted(assets) == sorted(DEFAULT_SYMBOLS)
    for asset in assets.values():
        assert asset.previous_close is not None
        assert asset.previous_close > 0
        # one day of a random walk: within a few tens of percent of the live price
        assert abs(asset.previous_close / asset.last_price - 1) < Decimal("0.5")
    assert "5-DAY CLOSES" in capsys.readouterr().out

    # A later live update keeps the previous close.
    assert run_update_prices(settings_for(db), ["AAPL"]) == 0
    assert all_assets(db)["AAPL"].previous_close == assets["AAPL"].previous_close


def test_simulated_history_has_one_close_per_complete_day_and_is_deterministic() -> None:
    now = datetime(2024, 3, 7, 15, 30, tzinfo=UTC).timestamp()

    def run() -> tuple[dict[str, list[tuple[Any, float]]], dict[str, float]]:
        return simulate_daily_closes(
            ("AAPL", "BTC/USDT"), seed=1, calendar=AlwaysOpen(), days=5, now=now
        )

    closes, at_now = run()
    assert [day.isoformat() for day, _ in closes["AAPL"]] == [
        "2024-03-02",
        "2024-03-03",
        "2024-03-04",
        "2024-03-05",
        "2024-03-06",
    ]
    assert len(closes["BTC/USDT"]) == 5
    assert set(at_now) == {"AAPL", "BTC/USDT"}
    assert run() == (closes, at_now)


@pytest.mark.parametrize("feed", ["alpaca", "polygon,simulator"])
def test_historical_with_a_vendor_feed_exits_2_before_running_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], feed: str
) -> None:
    db = tmp_path / "db.sqlite"
    started = time.monotonic()
    assert run_update_prices(settings_for(db, feed=feed), historical_days=5) == 2
    assert time.monotonic() - started < 5  # refused at once, no connection tried
    err = capsys.readouterr().err
    assert "--historical works with the simulator feed only" in err
    assert "no history (REST) client" in err
    assert not db.exists()


def test_symbols_without_a_price_are_named_and_the_others_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    recording = tmp_path / "day.jsonl"
    write_replay(recording, ("AAPL", "MSFT"), {"AAPL": 191.25})
    settings = settings_for(
        db, feed="replay", replay_file=recording, replay_speed=1000, replay_loop=True
    )

    assert run_update_prices(settings, timeout_s=1.0) == 1
    assert "no price within 1 s for: MSFT" in capsys.readouterr().err
    assets = all_assets(db)
    assert sorted(assets) == ["AAPL"]
    assert assets["AAPL"].last_price == Decimal("191.25")


def test_a_feed_that_ends_without_prices_exits_1_and_touches_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    recording = tmp_path / "quiet.jsonl"
    write_replay(recording, ("AAPL",), {})
    settings = settings_for(db, feed="replay", replay_file=recording, replay_speed=0)

    assert run_update_prices(settings, timeout_s=1.0) == 1
    captured = capsys.readouterr()
    assert "the feed ended without a price for: AAPL" in captured.err
    assert "wrote" not in captured.out
    assert not db.exists()


# -- the demo


def expected_positions(prices: dict[str, Decimal]) -> dict[str, dict[str, Decimal]]:
    """quantity, cost basis and realized P&L per symbol of each demo portfolio, by hand."""
    aapl1, aapl2 = prices["AAPL"] * Decimal("0.88"), prices["AAPL"] * Decimal("0.95")
    nvda_buy, nvda_sell = prices["NVDA"] * Decimal("0.80"), prices["NVDA"] * Decimal("1.04")
    cents = Decimal("0.01")
    aapl1, aapl2 = aapl1.quantize(cents), aapl2.quantize(cents)
    nvda_buy, nvda_sell = nvda_buy.quantize(cents), nvda_sell.quantize(cents)
    return {
        "AAPL": {"quantity": Decimal(60), "cost": 40 * aapl1 + 20 * aapl2, "realized": Decimal(0)},
        "NVDA": {
            "quantity": Decimal(35),
            "cost": 35 * nvda_buy,
            "realized": 25 * (nvda_sell - nvda_buy),
        },
        "MSFT": {"quantity": Decimal(15)},
        "BTC/USDT": {"quantity": Decimal("0.5")},
        "ETH/USDT": {"quantity": Decimal("4.2")},
        "SPY": {"quantity": Decimal(35)},
    }


async def demo_state(
    conn: AsyncConnection,
) -> tuple[int, list[int], dict[str, Position], list[Transaction], list[ApiKey]]:
    user = await Users(conn).by_name("demo")
    books = await Portfolios(conn).list_for_owner(user.id)
    positions: dict[str, Position] = {}
    history: list[Transaction] = []
    for book in books:
        for p in await Positions(conn).list_for_portfolio(book.id):
            positions[p.symbol] = p
        history.extend(await Transactions(conn).list_for_portfolio(book.id))
    keys = await ApiKeys(conn).list_for_user(user.id)
    return user.id, [b.id for b in books], positions, history, keys


def test_seed_demo_twice_is_idempotent_with_exact_positions(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    prices = reference_prices(["AAPL", "MSFT", "NVDA", "BTC/USDT", "ETH/USDT", "SPY"])

    async def seed(new_key: bool = False) -> Any:
        engine = make_engine(url_for(db))
        try:
            return await seed_demo(engine, new_key=new_key)
        finally:
            await engine.dispose()

    first = asyncio.run(seed())
    assert first.user_created
    assert first.seeded == ("Tech Growth", "Crypto", "Index")
    assert first.api_key is not None
    assert authenticates(db, first.api_key) == "demo"
    user_id, ids, positions, history, keys = read(db, demo_state)
    assert (user_id, tuple(ids)) == (first.user_id, first.portfolio_ids)
    assert len(ids) == len(DEMO_PORTFOLIOS)
    assert len(history) == sum(len(trades) for _, trades in DEMO_PORTFOLIOS)
    assert len(keys) == 1

    for symbol, expected in expected_positions(prices).items():
        position = positions[symbol]
        assert position.quantity == expected["quantity"], symbol
        if "cost" in expected:
            assert position.cost_basis == expected["cost"], symbol
            assert position.realized_pnl == expected["realized"], symbol
    assert positions["NVDA"].realized_pnl > 0  # the partial sell made money
    # Trades lie in the past, oldest first per portfolio as listed.
    assert all(t.executed_at < datetime.now(UTC) - timedelta(days=4) for t in history)

    second = asyncio.run(seed())
    assert not second.user_created
    assert second.seeded == ()
    assert second.api_key is None
    assert (second.user_id, second.portfolio_ids) == (first.user_id, first.portfolio_ids)
    assert read(db, demo_state) == (user_id, ids, positions, history, keys)

    third = asyncio.run(seed(new_key=True))
    assert third.api_key is not None
    assert third.api_key != first.api_key
    assert authenticates(db, third.api_key) == "demo"
    assert authenticates(db, first.api_key) is None  # one valid demo key: the newest
    assert len(read(db, demo_state)[4]) == 2


def test_every_serve_demo_revokes_the_demo_keys_it_printed_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve --demo` mints a key on every start (issue 8: the old ones stayed valid)."""
    db = tmp_path / "db.sqlite"
    settings = settings_for(db)

    def token_of(hint: str) -> str:
        line = next(x for x in hint.splitlines() if x.startswith("Live dashboard: "))
        return line.split("?token=", 1)[1]

    first = token_of(prepare_demo(settings))
    assert run_keys(settings, "create", user="demo", label="ci") == 0  # made by hand
    own = capsys.readouterr().out.strip()
    second = token_of(prepare_demo(settings))
    third = token_of(prepare_demo(settings))
    assert authenticates(db, third) == "demo"
    assert authenticates(db, first) is None
    assert authenticates(db, second) is None
    assert authenticates(db, own) == "demo"  # not a demo key: left alone
    assert run_keys(settings, "list", user="demo") == 0
    listing = capsys.readouterr().out
    rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
    assert "revoked" in rows[f"tc_{parse_api_key(first)[0]}"]
    assert "revoked" in rows[f"tc_{parse_api_key(second)[0]}"]
    assert "active" in rows[f"tc_{parse_api_key(third)[0]}"]
    assert "active" in rows[f"tc_{parse_api_key(own)[0]}"]


def test_the_demo_key_label_is_reserved_for_the_demo_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key made by hand under the demo keys' label would be revoked by the next
    `serve --demo`: it is refused for the demo user, and free for everyone else."""
    db = tmp_path / "db.sqlite"
    settings = settings_for(db)
    prepare_demo(settings)
    capsys.readouterr()
    assert run_keys(settings, "create", user="demo", label=DEMO_KEY_NAME) == 1
    assert "reserved" in capsys.readouterr().err
    assert run_keys(settings, "list", user="demo") == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2  # header + the demo key
    assert run_users(settings, "create", "kim") == 0
    assert run_keys(settings, "create", user="kim", label=DEMO_KEY_NAME) == 0
    kims = capsys.readouterr().out.strip().splitlines()[-1]
    prepare_demo(settings)  # rotates the demo user's keys only
    assert authenticates(db, kims) == "kim"


def test_seed_demo_gives_its_assets_a_price_and_keeps_a_known_previous_close(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.sqlite"
    assert run_update_prices(settings_for(db), ["AAPL"], historical_days=2) == 0
    close = all_assets(db)["AAPL"].previous_close
    assert close is not None

    assert run_demo(settings_for(db)) == 0
    assets = all_assets(db)
    assert assets["AAPL"].previous_close == close
    for symbol in ("MSFT", "NVDA", "SPY", "BTC/USDT", "ETH/USDT"):
        assert assets[symbol].previous_close == assets[symbol].last_price


def test_demo_command_prints_the_dashboard_url_with_the_key_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    settings = settings_for(db, port=8123)
    assert run_demo(settings) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("Live dashboard: "))
    url = line.removeprefix("Live dashboard: ")
    assert url.startswith("http://127.0.0.1:8123/realtime/dashboard/?token=tc_")
    assert authenticates(db, url.split("token=", 1)[1]) == "demo"

    assert run_demo(settings) == 0
    again = capsys.readouterr().out
    assert "token=" not in again
    assert "tickcast keys create --user demo" in again


def test_dashboard_url_maps_wildcard_addresses_to_loopback() -> None:
    assert dashboard_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/realtime/dashboard/"
    assert dashboard_url("::", 80, "t") == "http://[::1]:80/realtime/dashboard/?token=t"
    assert dashboard_url("fe80::1", 80) == "http://[fe80::1]:80/realtime/dashboard/"
    assert dashboard_url("example.org", 443) == "http://example.org:443/realtime/dashboard/"


def test_demo_token_hint_prefers_the_given_token(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"

    async def seed() -> Any:
        engine = make_engine(url_for(db))
        try:
            return await seed_demo(engine)
        finally:
            await engine.dispose()

    account = asyncio.run(seed())
    hint = demo_token_hint(account, "127.0.0.1", 8000, token="eyJjwt")
    assert "?token=eyJjwt" in hint
    assert account.api_key not in hint


# -- the same, as real processes


def clean_env(db: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TICKCAST_", "ALPACA_", "POLYGON_", "MASSIVE_"))
    }
    env["TICKCAST_DATABASE_URL"] = url_for(db)
    env["TICKCAST_RATE"] = "500"
    return env


def tickcast(db: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickcast", *args],
        env=clean_env(db),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip while the CLI has no `users` command (main.py wires these commands)."""
    db = tmp_path_factory.mktemp("wired") / "db.sqlite"
    if tickcast(db, "users", "--help").returncode != 0:
        pytest.skip("`tickcast users` is not wired into the CLI yet (cli/main.py)")


@pytest.mark.usefixtures("wired")
def test_process_user_and_key_commands(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    first = tickcast(db, "users", "create", "ada")
    assert first.returncode == 0, first.stderr
    second = tickcast(db, "users", "create", "ada")
    assert second.returncode == 1
    assert "user 'ada' already exists" in second.stderr
    assert "Traceback" not in second.stderr

    key = tickcast(db, "keys", "create", "--user", "ada", "--label", "ci")
    assert key.returncode == 0, key.stderr
    token = key.stdout.strip()
    assert "cannot be shown again" in key.stderr
    assert authenticates(db, token) == "ada"

    listing = tickcast(db, "keys", "list", "--user", "ada")
    assert listing.returncode == 0
    prefix, _ = parse_api_key(token)
    assert prefix in listing.stdout
    revoke = tickcast(db, "keys", "revoke", f"tc_{prefix}")
    assert revoke.returncode == 0, revoke.stderr
    assert authenticates(db, token) is None

    unknown = tickcast(db, "keys", "create", "--user", "bob")
    assert unknown.returncode == 1
    assert "no user 'bob'" in unknown.stderr


@pytest.mark.usefixtures("wired")
def test_process_update_prices(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    dry = tickcast(db, "update-prices", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "[dry run: nothing written]" in dry.stdout
    assert not db.exists()

    live = tickcast(db, "update-prices", "--symbols", "AAPL,BTC/USDT")
    assert live.returncode == 0, live.stderr
    assert sorted(all_assets(db)) == ["AAPL", "BTC/USDT"]

    history = tickcast(db, "update-prices", "--historical", "--days", "5")
    assert history.returncode == 0, history.stderr
    assets = all_assets(db)
    assert sorted(assets) == sorted(DEFAULT_SYMBOLS)
    assert all(a.previous_close is not None for a in assets.values())

    digest = file_digest(db)
    again = tickcast(db, "update-prices", "--historical", "--days", "5", "--dry-run")
    assert again.returncode == 0, again.stderr
    assert all_assets(db) == assets
    assert file_digest(db) == digest

    vendor = tickcast(db, "update-prices", "--historical", "--days", "5", "--feed", "alpaca")
    assert vendor.returncode == 2
    assert "--historical works with the simulator feed only" in vendor.stderr


@pytest.mark.usefixtures("wired")
def test_process_demo_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    first = tickcast(db, "demo")
    assert first.returncode == 0, first.stderr
    assert "portfolios seeded: Tech Growth, Crypto, Index" in first.stdout
    state = read(db, demo_state)
    second = tickcast(db, "demo")
    assert second.returncode == 0, second.stderr
    assert "portfolios seeded: none (already there)" in second.stdout
    assert read(db, demo_state) == state
    fresh = tickcast(db, "demo", "--new-key")
    assert fresh.returncode == 0, fresh.stderr
    assert "token=tc_" in fresh.stdout


def test_process_serve_demo_prints_a_working_dashboard_url(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    if "--demo" not in tickcast(db, "serve", "--help").stdout:
        pytest.skip("`tickcast serve --demo` is not wired into the CLI yet (cli/main.py)")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tickcast", "serve", "--demo", "--port", str(free_port())],
            env=clean_env(db),
            stdout=out,
            stderr=out,
        )
        try:
            deadline = time.monotonic() + 30
            while "Uvicorn running" not in log.read_text(errors="replace"):
                assert proc.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = log.read_text(errors="replace")
    url = next(x for x in text.splitlines() if x.startswith("Live dashboard: "))
    token = url.split("?token=", 1)[1]
    assert authenticates(db, token) == "demo"
    assert "portfolios loaded portfolios=3" in text  # the gateway sees the demo portfolios
