"""The demo account: a user, an API key and three portfolios, so that a first
``tickcast serve --demo`` shows a live dashboard with something in it.

Rules:
    - Idempotent. A second run finds the user ``demo`` and reuses it, mints a new API key
      only when asked (``new_key=True``; the first run always mints one, since a key can
      never be shown again), and never duplicates a portfolio or its trades: a demo
      portfolio that already holds positions is left as it is.
    - One live demo key. Minting a demo key revokes the demo keys minted before it (those
      labelled ``DEMO_KEY_NAME``), in the same transaction, so that every ``serve
      --demo`` leaves exactly one valid demo key, the one it printed; keys made for the
      demo user with ``tickcast keys create`` are left alone. Reusing the old key is not
      possible: the database keeps only its hash, and the URL must carry the key itself.
    - Positions follow the real accounting: every trade goes through
      ``PortfolioService.record_transaction`` on a service built on the same engine, so a
      demo position is exactly what a client recording the same trades would get.
    - Prices are the simulator's own starting prices (``reference_prices``), so the demo
      values look like the market ``serve`` then simulates: trades were made below it
      (unrealized gains) and one partial sell realized a profit.
    - Each demo portfolio opens with a deposit, the day before its first trade, of what
      its buys cost plus about 10 % (``opening_deposit``): its buys need no automatic
      deposit, and it holds some cash besides the proceeds of its sells. The demo symbols that
      have no previous close get the reference price as one, so daily changes show from
      the first tick; ``tickcast update-prices --historical --days N`` writes a
      simulated one instead.
    - The public leaderboard has players: ``LEADERBOARD_PLAYERS`` users (``trader01``,
      ``trader02``...), each with one public portfolio of a few demo symbols bought at
      prices drawn around the reference (a fixed seed: the same every run), so that the
      board ranks a few dozen portfolios and moves with the simulated market. Idempotent
      likewise: a player whose portfolio holds positions is left as it is.
    - Call ``seed_demo`` before the gateway's own PortfolioService starts (in ``serve
      --demo``: before ``Node.start``): that service loads portfolios from the database
      once, at start.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from tickcast.auth.credentials import NewKey, new_api_key
from tickcast.hub.publisher import Discard
from tickcast.model.market import Quote
from tickcast.portfolio.service import PortfolioService
from tickcast.portfolio.valuation import Side
from tickcast.providers.calendar import AlwaysOpen
from tickcast.providers.simulator.market import MarketSimulator, SimulatorConfig, is_crypto
from tickcast.storage import migrate
from tickcast.storage.errors import Conflict, NotFound
from tickcast.storage.ledger import CashTransactions
from tickcast.storage.records import Asset, AssetKind, User
from tickcast.storage.repositories import ApiKeys, Assets, Positions, Users

DEMO_USERNAME: Final = "demo"
#: The name (label) of the API keys the demo mints.
DEMO_KEY_NAME: Final = "demo"
#: Where the realtime front's live dashboard is served (Front 2).
DASHBOARD_PATH: Final = "/realtime/dashboard/"

_CENT: Final = Decimal("0.01")
_MICRO: Final = Decimal("0.000001")
#: A demo portfolio's opening deposit: its buys' cost, plus this share, in thousands.
_SPARE: Final = Decimal("1.1")
_THOUSAND: Final = Decimal(1000)
#: Users with a public portfolio on the demo's leaderboard (``trader01``...).
LEADERBOARD_PLAYERS: Final = 36


@dataclass(frozen=True, slots=True)
class DemoTrade:
    """One trade of a demo portfolio.

    Attributes:
        symbol: what was traded.
        side: buy or sell.
        quantity: units, exact.
        price_factor: the trade price as a multiple of the symbol's reference price.
        days_ago: when it was executed, before the seeding.
    """

    symbol: str
    side: Side
    quantity: Decimal
    price_factor: Decimal
    days_ago: int


def _trade(symbol: str, side: Side, quantity: str, factor: str, days_ago: int) -> DemoTrade:
    return DemoTrade(symbol, side, Decimal(quantity), Decimal(factor), days_ago)


_BUY, _SELL = Side.BUY, Side.SELL

#: The demo portfolios, by name, with their trades in the order they are recorded.
DEMO_PORTFOLIOS: Final[tuple[tuple[str, tuple[DemoTrade, ...]], ...]] = (
    (
        "Tech Growth",
        (
            _trade("AAPL", _BUY, "40", "0.88", 60),
            _trade("MSFT", _BUY, "15", "0.92", 45),
            _trade("NVDA", _BUY, "60", "0.80", 40),
            _trade("AAPL", _BUY, "20", "0.95", 20),
            _trade("NVDA", _SELL, "25", "1.04", 5),  # the partial sell: realized P&L
        ),
    ),
    (
        "Crypto",
        (
            _trade("BTC/USDT", _BUY, "0.35", "0.85", 50),
            _trade("ETH/USDT", _BUY, "4.2", "0.90", 30),
            _trade("BTC/USDT", _BUY, "0.15", "0.97", 10),
        ),
    ),
    (
        "Index",
        (
            _trade("SPY", _BUY, "25", "0.94", 90),
            _trade("SPY", _BUY, "10", "0.99", 15),
        ),
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoAccount:
    """What ``seed_demo`` set up (or found).

    Attributes:
        username: the demo user's name.
        user_id: its id.
        api_key: the full key minted by this run, to show once; None when this run
            reused the user without minting one (the database keeps only hashes).
        portfolio_ids: the demo portfolios' ids, in ``DEMO_PORTFOLIOS`` order.
        user_created: whether this run created the user.
        seeded: the names of the portfolios whose trades this run recorded.
        players: the leaderboard players whose public portfolio this run seeded.
    """

    username: str
    user_id: int
    api_key: str | None
    portfolio_ids: tuple[int, ...]
    user_created: bool
    seeded: tuple[str, ...]
    players: int = 0


def demo_symbols() -> tuple[str, ...]:
    """Every symbol the demo portfolios trade, in first-traded order."""
    seen = dict.fromkeys(t.symbol for _, trades in DEMO_PORTFOLIOS for t in trades)
    return tuple(seen)


def reference_prices(symbols: Iterable[str], *, seed: int = 42) -> dict[str, Decimal]:
    """The simulator's starting price of each symbol, to the cent.

    The simulator starts every known symbol at its default price (AAPL 190, BTC/USDT
    65000...) and seeds one for any other name; this runs it (no clock: a pure
    ``MarketSimulator`` at a fixed start) just long enough for every symbol to quote,
    and takes the mid of the first quote, which lies within a spread of that price
    (to the cent; to 1e-6 below 1).
    """
    wanted = tuple(dict.fromkeys(symbols))
    if not wanted:
        return {}
    rate = 10_000.0  # ticks/s: the first quotes come a fraction of a millisecond in
    simulator = MarketSimulator(
        SimulatorConfig(symbols=wanted, seed=seed, rate=rate, book_depth=1, max_backlog_s=None),
        AlwaysOpen(),
        start_ts=0.0,
    )
    prices: dict[str, Decimal] = {}
    step = 0.01
    now = 0.0
    while len(prices) < len(wanted):  # every tick picks a symbol at random: all come
        now += step
        for event in simulator.advance(now):
            if type(event) is Quote and event.symbol not in prices:
                mid = (Decimal(repr(event.bid)) + Decimal(repr(event.ask))) / 2
                prices[event.symbol] = _money(mid)
    return {symbol: prices[symbol] for symbol in wanted}


def opening_deposit(trades: Iterable[DemoTrade], reference: Mapping[str, Decimal]) -> Decimal:
    """What a demo portfolio deposits first: its buys' cost plus 10 %, rounded up to a
    thousand (the buys at their ``_money`` prices, as ``seed_demo`` records them)."""
    cost = sum(
        (
            t.quantity * _money(reference[t.symbol] * t.price_factor)
            for t in trades
            if t.side is Side.BUY
        ),
        Decimal(0),
    )
    return (cost * _SPARE / _THOUSAND).to_integral_value(ROUND_CEILING) * _THOUSAND


def _money(price: Decimal) -> Decimal:
    """A price as a market quotes it: to the cent, or to 1e-6 below 1."""
    return price.quantize(_CENT if price >= 1 else _MICRO)


async def seed_demo(
    engine: AsyncEngine,
    *,
    new_key: bool = False,
    prices: Mapping[str, Decimal] | None = None,
    now: datetime | None = None,
) -> DemoAccount:
    """Create (or find) the demo user, its API key and portfolios; see the module rules.

    Args:
        engine: the database; migrated here first.
        new_key: mint an API key even if the demo user already exists (and revoke the
            demo keys minted before).
        prices: reference price per demo symbol; default ``reference_prices``.
        now: the seeding time (aware); trades are dated before it. Default: now, UTC.

    Raises:
        KeyError: ``prices`` lacks a demo symbol.
    """
    at = now or datetime.now(UTC)
    symbols = demo_symbols()
    reference = dict(prices) if prices is not None else reference_prices(symbols)
    missing = [s for s in symbols if s not in reference]
    if missing:
        raise KeyError(f"no reference price for {', '.join(missing)}")

    await migrate.upgrade(engine)
    user, created = await _demo_user(engine, at)
    key: NewKey | None = None
    if created or new_key:
        key = new_api_key()
        async with engine.begin() as conn:
            keys = ApiKeys(conn)
            for old in await keys.list_for_user(user.id):
                if old.name == DEMO_KEY_NAME and not old.revoked:
                    await keys.revoke(old.id)
            await keys.insert(
                user.id, prefix=key.prefix, secret_hash=key.secret_hash, name=DEMO_KEY_NAME, at=at
            )
    await _seed_assets(engine, {s: reference[s] for s in symbols}, at)

    # What the service publishes goes nowhere: nothing listens to this throwaway service.
    service = PortfolioService(engine, Discard())
    await service.start()
    ids: list[int] = []
    seeded: list[str] = []
    try:
        owned = {p.name: p for p in service.portfolios_of(user.id)}
        for name, trades in DEMO_PORTFOLIOS:
            portfolio = owned.get(name)
            if portfolio is None:
                portfolio = await service.create_portfolio(user.id, name)
            ids.append(portfolio.id)
            async with engine.connect() as conn:
                held = await Positions(conn).list_for_portfolio(portfolio.id)
                funded = await CashTransactions(conn).list_for_portfolio(portfolio.id, limit=1)
            if held:
                continue  # seeded by an earlier run (or traded since): leave it alone
            if not funded:  # (an earlier run may have stopped between deposit and trades)
                opened = at - timedelta(days=max(t.days_ago for t in trades) + 1)
                await service.deposit(portfolio.id, opening_deposit(trades, reference), opened)
            for trade in trades:
                price = _money(reference[trade.symbol] * trade.price_factor)
                await service.record_transaction(
                    portfolio.id,
                    trade.symbol,
                    trade.side,
                    trade.quantity,
                    price,
                    executed_at=at - timedelta(days=trade.days_ago),
                )
            seeded.append(name)
        players = await _seed_players(service, reference, at)
    finally:
        await service.aclose()
    return DemoAccount(
        username=user.username,
        user_id=user.id,
        api_key=key.token if key is not None else None,
        portfolio_ids=tuple(ids),
        user_created=created,
        seeded=tuple(seeded),
        players=players,
    )


def player_trades(index: int, reference: Mapping[str, Decimal]) -> tuple[DemoTrade, ...]:
    """The buys of leaderboard player ``index`` (1-based): two to four demo symbols, each
    bought 5 to 60 days ago at 0.75 to 1.15 times its reference price (so that returns
    spread from about -13 % to +33 %), 1,000 to 10,000 worth of each (crypto in
    thousandths, shares whole). Deterministic."""
    rng = random.Random(f"tickcast-demo-player-{index}")
    symbols = demo_symbols()
    budget = Decimal(rng.randint(2, 20) * 500)
    trades = []
    for symbol in rng.sample(symbols, rng.randint(2, min(4, len(symbols)))):
        factor = Decimal(rng.randint(75, 115)) / 100
        price = _money(reference[symbol] * factor)
        quantity = (budget / price).quantize(Decimal("0.001") if price > budget else Decimal(1))
        quantity = max(quantity, Decimal("0.001"))
        trades.append(DemoTrade(symbol, Side.BUY, quantity, factor, rng.randint(5, 60)))
    return tuple(trades)


async def _seed_players(
    service: PortfolioService, reference: Mapping[str, Decimal], at: datetime
) -> int:
    """The leaderboard's players (module rules); returns how many were seeded now."""
    seeded = 0
    for index in range(1, LEADERBOARD_PLAYERS + 1):
        user, _ = await _user(service.engine, f"trader{index:02d}", at)
        mine = service.portfolios_of(user.id)
        portfolio = mine[0] if mine else None
        if portfolio is None:
            portfolio = await service.create_portfolio(user.id, f"Fund {index:02d}", public=True)
        async with service.engine.connect() as conn:
            if await Positions(conn).list_for_portfolio(portfolio.id):
                continue
        trades = player_trades(index, reference)
        opened = at - timedelta(days=max(t.days_ago for t in trades) + 1)
        await service.deposit(portfolio.id, opening_deposit(trades, reference), opened)
        for trade in trades:
            await service.record_transaction(
                portfolio.id,
                trade.symbol,
                trade.side,
                trade.quantity,
                _money(reference[trade.symbol] * trade.price_factor),
                executed_at=at - timedelta(days=trade.days_ago),
            )
        seeded += 1
    return seeded


async def _demo_user(engine: AsyncEngine, at: datetime) -> tuple[User, bool]:
    """The demo user and whether it was created now (a concurrent creator wins cleanly)."""
    return await _user(engine, DEMO_USERNAME, at)


async def _user(engine: AsyncEngine, username: str, at: datetime) -> tuple[User, bool]:
    """The user ``username`` and whether it was created now."""
    async with engine.begin() as conn:
        try:
            return await Users(conn).by_name(username), False
        except NotFound:
            pass
        try:
            return await Users(conn).create(username, at=at), True
        except Conflict:
            return await Users(conn).by_name(username), False


async def _seed_assets(engine: AsyncEngine, reference: Mapping[str, Decimal], at: datetime) -> None:
    """Give the demo symbols a price and a previous close, never overwriting a known one."""
    async with engine.begin() as conn:
        repo = Assets(conn)
        stored = {a.symbol: a for a in await repo.list_all() if a.symbol in reference}
        new = [
            Asset(
                symbol=symbol,
                name=symbol,
                kind=AssetKind.CRYPTO if is_crypto(symbol) else AssetKind.STOCK,
                last_price=price,
                previous_close=price,
                updated_at=at,
            )
            for symbol, price in reference.items()
            if symbol not in stored
        ]
        await repo.upsert_many(new)
        closes = {
            symbol: (asset.last_price, reference[symbol])
            for symbol, asset in stored.items()
            if asset.previous_close is None
        }
        await repo.update_prices(closes, at=at)


def dashboard_url(host: str, port: int, token: str | None = None) -> str:
    """The live dashboard's URL on a gateway listening on ``host:port``.

    A wildcard listen address (``0.0.0.0``, ``::``) becomes the loopback address a local
    browser can open; ``token`` is carried as ``?token=`` (the realtime front reads it
    there; access logs redact it).
    """
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    url = f"http://{host}:{port}{DASHBOARD_PATH}"
    return f"{url}?token={token}" if token else url


def demo_token_hint(account: DemoAccount, host: str, port: int, token: str | None = None) -> str:
    """The lines ``serve --demo`` and ``tickcast demo`` print: how to open the dashboard.

    Args:
        account: what ``seed_demo`` returned.
        host, port: where the gateway listens.
        token: a credential for the demo user (an API key or a JWT); default: the API
            key this seeding minted, if it minted one.
    """
    token = token or account.api_key
    ids = ", ".join(str(i) for i in account.portfolio_ids)
    lines = [f"Demo user {account.username!r} (id {account.user_id}), portfolios {ids}."]
    if token is not None:
        lines.append(f"Live dashboard: {dashboard_url(host, port, token)}")
        if token == account.api_key:
            lines.append(
                "That URL holds the demo's API key: it is shown only now (the database "
                "keeps a hash)."
            )
    else:
        lines.append(
            f"Live dashboard: {dashboard_url(host, port)} (sign in with a demo API key: "
            f"`tickcast keys create --user {account.username}` or `tickcast demo --new-key`)"
        )
    return "\n".join(lines)
