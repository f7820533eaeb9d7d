"""Closes: the one owner of each symbol's previous close, exact.

Rules: pure (no clock, no database: the service reads and writes the asset table and
tells this object what it found and what it wrote). Two things make a close:

- the **asset table** (``previous_close``, written by ``tickcast update-prices
  --historical`` or ``tickcast demo``), read at start and every refresh (``load``);
- a **new UTC day** the gateway sees (``observe``): the last price before it closes the
  day. Such a close is *unstored* until the service has written it to the table
  (``unstored``, then ``stored``); meanwhile a refresh never replaces it with the
  table's older one. One the table cannot hold (past NUMERIC(28, 10): ``stored(...,
  kept=...)``) stays in memory, and the table's is not taken for it, until the next
  close observed.

Once written, the table is the truth: a close written there later (a historical update)
replaces the observed one at the next refresh. The asset board (``assets.py``, which
decides references and days) and the portfolio book (``book.py``, which values against
the reference) are given closes from here only, by the service, so that every channel
(``GET /api/assets``, ``asset_update``, ``positions_update``, ``portfolio_update``)
measures a daily change against the same number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType


class Closes:
    """A previous close per symbol (Decimal), and which of them the table lacks."""

    __slots__ = ("_closes", "_kept", "_unstored")

    def __init__(self) -> None:
        self._closes: dict[str, Decimal] = {}
        self._unstored: dict[str, Decimal] = {}
        self._kept: set[str] = set()

    def get(self, symbol: str) -> Decimal | None:
        """The previous close of ``symbol``, None when unknown."""
        return self._closes.get(symbol)

    @property
    def all(self) -> Mapping[str, Decimal]:
        """Every known close (a read-only live view)."""
        return MappingProxyType(self._closes)

    def load(self, stored: Mapping[str, Decimal | None]) -> set[str]:
        """Take the asset table's closes; return the symbols whose close changed.

        A symbol with an unstored observed close keeps it (the table is behind), and so
        does one the table cannot hold; a null in the table forgets nothing (the table
        never learnt the close).
        """
        changed: set[str] = set()
        for symbol, close in stored.items():
            if close is None or symbol in self._unstored or symbol in self._kept:
                continue
            if self._closes.get(symbol) != close:
                self._closes[symbol] = close
                changed.add(symbol)
        return changed

    def observe(self, symbol: str, close: Decimal) -> bool:
        """A close the gateway saw made (a new day); True when it changed the close.

        It stays unstored until ``stored`` says the table has it.
        """
        if self._closes.get(symbol) == close and symbol not in self._unstored:
            return False
        self._kept.discard(symbol)
        self._closes[symbol] = close
        self._unstored[symbol] = close
        return True

    def unstored(self) -> dict[str, Decimal]:
        """The observed closes the table does not have yet (a copy)."""
        return dict(self._unstored)

    def stored(self, written: Mapping[str, Decimal], kept: Iterable[str] = ()) -> None:
        """``written`` is in the table now (or cannot be: a symbol the table lacks);
        the closes of ``kept`` (among ``written``) are too large for it, and stay in
        memory only.

        A close observed again since the write stays unstored.
        """
        kept = set(kept)
        for symbol, close in written.items():
            if self._unstored.get(symbol) == close:
                del self._unstored[symbol]
                if symbol in kept:
                    self._kept.add(symbol)
