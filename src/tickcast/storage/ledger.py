"""CashTransactions: the cash ledger (deposits and withdrawals), a repository like those
of ``repositories.py``, whose rules and SQL helpers it shares (imported on purpose).

The balance itself is the portfolio's row (``Portfolios.set_cash``, under the lock of
``Portfolios.get_for_update``); this table says how it got there.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from tickcast.storage.records import CashKind, CashTransaction
from tickcast.storage.repositories import _all, _at, _fields_of, _refusals
from tickcast.storage.tables import cash_transactions, to_amount


class CashTransactions:
    """The ``cash_transactions`` table: deposits and withdrawals, append-only."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def insert(
        self,
        portfolio_id: int,
        *,
        kind: CashKind,
        amount: Decimal,
        executed_at: datetime,
        transaction_id: int | None = None,
    ) -> CashTransaction:
        """Record a deposit or a withdrawal (the caller has updated the balance).

        Args:
            transaction_id: the buy an automatic deposit paid for; None otherwise.

        Raises:
            ValueError: ``kind`` is not deposit or withdrawal, or ``amount`` is not > 0.
            NotFound: no such portfolio or transaction.
        """
        kind = CashKind(kind)
        amount = to_amount(amount)
        if amount <= 0:
            raise ValueError(f"a cash transaction's amount must be > 0, not {amount}")
        stmt = (
            cash_transactions.insert()
            .values(
                portfolio_id=portfolio_id,
                kind=kind.value,
                amount=amount,
                executed_at=_at(executed_at),
                transaction_id=transaction_id,
            )
            .returning(cash_transactions)
        )
        async with _refusals(self._conn, f"{kind.value} of portfolio {portfolio_id}"):
            row = (await self._conn.execute(stmt)).mappings().one()
        return _cash_transaction(row)

    async def list_for_portfolio(
        self, portfolio_id: int, *, limit: int | None = None
    ) -> list[CashTransaction]:
        """The portfolio's deposits and withdrawals, newest first; at most ``limit``
        (None = all)."""
        stmt = (
            select(cash_transactions)
            .where(cash_transactions.c.portfolio_id == portfolio_id)
            .order_by(cash_transactions.c.executed_at.desc(), cash_transactions.c.id.desc())
            .limit(limit)
        )
        return [_cash_transaction(row) for row in await _all(self._conn, stmt)]


def _cash_transaction(row: RowMapping) -> CashTransaction:
    return CashTransaction(**{**_fields_of(CashTransaction, row), "kind": CashKind(row["kind"])})
