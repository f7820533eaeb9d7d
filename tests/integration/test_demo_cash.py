"""The demo portfolios' cash: an opening deposit covers their buys, so none needs an
automatic deposit, and their value is what was put in plus their P&L."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tickcast.demo import DEMO_PORTFOLIOS, opening_deposit, reference_prices, seed_demo
from tickcast.hub.publisher import Discard
from tickcast.portfolio.service import PortfolioService
from tickcast.storage.engine import make_engine
from tickcast.storage.ledger import CashTransactions
from tickcast.storage.records import CashKind
from tickcast.storage.repositories import Transactions

NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def test_the_opening_deposit_covers_the_buys_with_some_spare() -> None:
    prices = {"SPY": Decimal("500"), "AAPL": Decimal("190")}
    index = dict(DEMO_PORTFOLIOS)["Index"]  # SPY 25 @ 0.94 and 10 @ 0.99
    # 25 x 470 + 10 x 495 = 16700; + 10 % = 18370 -> 19000
    assert opening_deposit(index, prices) == Decimal(19000)


async def test_demo_portfolios_open_with_a_deposit_and_hold_cash(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/demo.db")
    try:
        prices = reference_prices(["AAPL", "MSFT", "NVDA", "BTC/USDT", "ETH/USDT", "SPY"])
        account = await seed_demo(engine, prices=prices, now=NOW)
        again = await seed_demo(engine, prices=prices, now=NOW)  # idempotent: no 2nd deposit
        assert again.seeded == ()
        service = PortfolioService(engine, Discard(), interval_s=3600)
        await service.start()
        try:
            for pid, (name, trades) in zip(account.portfolio_ids, DEMO_PORTFOLIOS, strict=True):
                async with engine.connect() as conn:
                    [opening] = await CashTransactions(conn).list_for_portfolio(pid)
                    first_trade = (await Transactions(conn).list_for_portfolio(pid))[-1]
                assert (opening.kind, opening.transaction_id) == (CashKind.DEPOSIT, None), name
                assert opening.amount == opening_deposit(trades, prices)
                assert opening.executed_at < first_trade.executed_at
                value = service.book.valuation(pid, positions=False)
                assert value.net_deposits == opening.amount
                assert value.cash > 0, name
                if any(t.side == "sell" for t in trades):
                    assert value.realized_pnl > 0, name
                else:
                    assert value.realized_pnl == 0, name
                assert value.total_value == (
                    value.net_deposits + value.unrealized_pnl + value.realized_pnl
                )
        finally:
            await service.aclose()
    finally:
        await engine.dispose()
