"""The worker's records, handed to its store thread: order states, bot state, the market record.

Everything here is history or state, not money (fills go through `bots.store.handover`): written with
the store thread's next batch, never on the trading loop. Order states, equity points, position
snapshots and features are rows of a kind (`Appender`): a batch writes each kind with one statement.
The market record (equity, position snapshot, features) is the one kind dropped while the store is
backed up past its queue limit: the next second's record replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from bots.core.actions import RecordEnabled, RecordMarket, RecordPeak, RecordRisk
from bots.core.markouts import FillMarkout
from bots.engine.portfolio import Portfolio
from bots.exchange.base import OrderUpdate
from bots.store.ledger import Ledger, position_row
from bots.store.startup import ENABLED_KEY, RISK_KEY
from bots.store.writer import StoreWriter

__all__ = ["BotRecords"]


@dataclass(frozen=True, slots=True, eq=False)
class _Rows:
    """Rows that one ledger method writes for a whole batch; it remembers nothing."""

    write_rows: Callable[[Ledger, list[Any]], object]

    def write(self, ledger: Ledger, rows: list[Any]) -> None:
        self.write_rows(ledger, rows)

    def rolled_back(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _PeakReset:
    peak: Decimal


class _Equity:
    """Equity points (equity, ts_ns) and peak resets, in order. The bot's store thread is the only
    writer of its peak: it remembers the one it wrote, so a point does not read it back."""

    def __init__(self, bot: str, symbol: str) -> None:
        self._bot, self._symbol = bot, symbol
        self._peak: Decimal | None = None  # as committed (or about to be); None: read it

    def write(self, ledger: Ledger, rows: list[tuple[Decimal, int] | _PeakReset]) -> None:
        points: list[tuple[Decimal, int]] = []
        for row in rows:
            if isinstance(row, _PeakReset):
                self._points(ledger, points)
                ledger.reset_peak_equity(self._bot, row.peak)
                self._peak = row.peak
            else:
                points.append(row)
        self._points(ledger, points)

    def _points(self, ledger: Ledger, points: list[tuple[Decimal, int]]) -> None:
        if points:
            self._peak = ledger.record_equities(self._bot, self._symbol, points, known_peak=self._peak)
            points.clear()

    def rolled_back(self) -> None:
        self._peak = None


class BotRecords:
    """One bot's records on their way to the store thread."""

    def __init__(self, store: StoreWriter, bot: str, symbol: str) -> None:
        self._store = store
        self._bot = bot
        self._orders = _Rows(partial(_record_orders, bot=bot))
        self._positions = _Rows(Ledger.record_positions)
        self._features = _Rows(partial(_record_features, bot=bot, symbol=symbol))
        self._equity = _Equity(bot, symbol)

    def orders(self, updates: Sequence[OrderUpdate]) -> None:
        if updates:
            self._store.append(self._orders, updates)

    def markouts(self, markouts: Sequence[FillMarkout]) -> None:
        """Each fill's mid moves after it, once its horizons passed."""
        if markouts:
            rows = list(markouts)
            self._store.record(lambda ledger: ledger.record_markouts(rows))

    def state(self, action: RecordRisk | RecordEnabled | RecordPeak) -> None:
        """A risk trip or halt, the operator's switch, or the peak equity re-armed: kept across restarts."""
        bot = self._bot
        if isinstance(action, RecordPeak):
            self._store.append(self._equity, [_PeakReset(action.peak_equity_usd)])
            return
        value: object
        if isinstance(action, RecordRisk):
            key, value = RISK_KEY, {"breaker_tripped": action.breaker_tripped,
                                    "drawdown_tripped": action.drawdown_tripped,
                                    "other_store": action.other_store}  # fmt: skip
        else:
            key, value = ENABLED_KEY, action.enabled
        # at once, synced: a halt must hold across a crash right after it
        self._store.record(lambda ledger: ledger.set_state(bot, key, value), urgent=True)

    def position(self, portfolio: Portfolio, mark: Decimal | None, ts_ns: int) -> bool:
        """A position snapshot, its numbers read now; False when dropped."""
        row = position_row(self._bot, portfolio, mark=mark, ts_ns=ts_ns)
        return self._store.append(self._positions, [row], droppable=True)

    def market(self, record: RecordMarket, portfolio: Portfolio) -> int:
        """Equity (the ledger keeps the peak), the position at the mark, the features; how many of
        them were dropped."""
        append = self._store.append
        dropped = int(not append(self._equity, [(record.equity_usd, record.ts_ns)], droppable=True))
        if record.features is not None:
            dropped += not append(self._features, [(record.book_ts_ns, record.features)], droppable=True)
        return dropped + (not self.position(portfolio, record.mark, record.ts_ns))


def _record_orders(ledger: Ledger, rows: list[OrderUpdate], *, bot: str) -> None:
    ledger.record_orders(bot, rows)


def _record_features(
    ledger: Ledger, rows: list[tuple[int, Mapping[str, float | None]]], *, bot: str, symbol: str
) -> None:
    ledger.record_feature_rows(bot, symbol, rows)
