"""The worker's records, handed to its store thread: order states, bot state, the market record.

Everything here is history or state, not money (fills go through `bots.store.handover`): written with
the store thread's next batch, never on the trading loop. The market record (equity, position
snapshot, features) is the one kind dropped while the store is backed up past its queue limit: the
next second's record replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from bots.core.actions import RecordEnabled, RecordMarket, RecordPeak, RecordRisk
from bots.core.markouts import FillMarkout
from bots.engine.portfolio import Portfolio
from bots.exchange.base import OrderUpdate
from bots.store.ledger import Ledger, position_row
from bots.store.startup import ENABLED_KEY, RISK_KEY
from bots.store.writer import StoreWriter

__all__ = ["BotRecords"]


class BotRecords:
    """One bot's records on its way to the store thread."""

    def __init__(self, store: StoreWriter, bot: str, symbol: str) -> None:
        self._store = store
        self._bot = bot
        self._symbol = symbol

    def orders(self, updates: Sequence[OrderUpdate]) -> None:
        if updates:
            bot, rows = self._bot, list(updates)
            self._store.record(lambda ledger: ledger.record_orders(bot, rows))

    def markouts(self, markouts: Sequence[FillMarkout]) -> None:
        """Each fill's mid moves after it, once its horizons passed."""
        if markouts:
            rows = list(markouts)
            self._store.record(lambda ledger: ledger.record_markouts(rows))

    def state(self, action: RecordRisk | RecordEnabled | RecordPeak) -> None:
        """A risk trip or halt, the operator's switch, or the peak equity re-armed: kept across restarts."""
        bot = self._bot
        if isinstance(action, RecordPeak):
            peak = action.peak_equity_usd
            self._store.record(lambda ledger: ledger.reset_peak_equity(bot, peak))
            return
        value: object
        if isinstance(action, RecordRisk):
            key, value = RISK_KEY, {"breaker_tripped": action.breaker_tripped,
                                    "drawdown_tripped": action.drawdown_tripped,
                                    "other_store": action.other_store}  # fmt: skip
        else:
            key, value = ENABLED_KEY, action.enabled
        self._store.record(lambda ledger: ledger.set_state(bot, key, value))

    def position(self, portfolio: Portfolio, mark: Decimal | None, ts_ns: int) -> bool:
        """A position snapshot, its numbers read now; False when dropped."""
        row = position_row(self._bot, portfolio, mark=mark, ts_ns=ts_ns)
        return self._store.record(lambda ledger: ledger.record_position(row), droppable=True)

    def market(self, record: RecordMarket, portfolio: Portfolio) -> int:
        """Equity (the ledger keeps the peak), the position at the mark, the features; how many of
        them were dropped."""
        bot, symbol = self._bot, self._symbol
        equity, ts_ns, features, book_ts_ns = (
            record.equity_usd,
            record.ts_ns,
            record.features,
            record.book_ts_ns,
        )
        writes: list[Callable[[Ledger], object]] = [
            lambda ledger: ledger.record_equity(bot, symbol, equity, ts_ns=ts_ns)
        ]
        if features is not None:
            writes.append(lambda ledger: ledger.record_features(bot, symbol, book_ts_ns, features))
        dropped = sum(not self._store.record(write, droppable=True) for write in writes)
        return dropped + (not self.position(portfolio, record.mark, ts_ns))
