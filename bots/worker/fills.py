"""Our fills from the exchange to the core, through the ledger: a fill counts only once its commit is
confirmed by the store thread, so a crash loses none and the trading loop never waits on the database
for long. Past `store.max_unconfirmed_fills` waiting for a stalled database, quoting halts (every
order cancelled) and resumes by itself once they are committed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from bots.core.actions import CancelAll
from bots.exchange.base import Fill
from bots.store.handover import FillHandover
from bots.store.writer import StoreWriter
from bots.worker.calls import ExchangeCalls
from bots.worker.context import BotContext

__all__ = ["FillSync"]

log = logging.getLogger("mmfleet.worker")

# A decision waits this long for the commit of the fills it just handed over (a commit takes
# milliseconds), so it sees the position they make; a stalled database does not hold it longer.
_FILL_COMMIT_WAIT_S = 0.05


class FillSync:
    """One worker's fills: read from the exchange after `cursor`, handed to the store thread, applied to
    the core once committed; `on_committed` wakes the worker's consumer when the store thread confirms
    a batch."""

    def __init__(
        self, bot: BotContext, store: StoreWriter, calls: ExchangeCalls, on_committed: Callable[[], None]
    ) -> None:
        self.bot, self._calls = bot, calls
        self.handover = FillHandover(store, on_committed)
        self.cursor: str | None = None  # the exchange's fill cursor after the last fill handed over
        self.halted = False  # quoting halted: fills wait for a stalled database

    async def sync(self, *, wait: bool = False) -> None:
        """New fills handed to the store thread; with `wait`, every handed fill is committed and applied
        on return (a close, a reconciliation and a stop need the position they make)."""
        result = await self._calls.call(lambda: self.bot.exchange.fills_since(self.bot.symbol, self.cursor))
        if result is not None:
            await self.book(*result)
        if wait:
            await self.settle()
        elif self.handover.waiting:
            await self.handover.answered(_FILL_COMMIT_WAIT_S)
            self.apply_committed()

    async def settle(self) -> None:
        """Every fill handed over committed and applied."""
        for fill in await self.handover.settle():
            self.apply(fill)
        self._resume_if_settled()

    async def book(self, fills: Sequence[Fill], cursor: str | None) -> None:
        """Fills and the cursor after them go to the store thread in one transaction; each counts when
        its commit is confirmed (`apply_committed`). The stored cursor moves only with the commit, so a
        crash before it re-reads the batch and the ledger's idempotency drops what it already has."""
        if not fills and (cursor is None or cursor == self.cursor):
            return
        if cursor is not None:
            self.cursor = cursor
        self.handover.hand(fills, cursor)
        if self.handover.unconfirmed > self.bot.settings().store.max_unconfirmed_fills and not self.halted:
            await self._halt()

    def apply_committed(self) -> bool:
        """Apply the fills whose commit is confirmed; whether there were any."""
        fills = self.handover.committed()
        for fill in fills:
            self.apply(fill)
        self._resume_if_settled()
        return bool(fills)

    def apply(self, fill: Fill) -> None:
        """A committed fill to the core and the fill metrics."""
        self.bot.core().on_fill(fill)
        self.bot.metrics.fills[fill.side].inc()
        self.bot.metrics.fill_volume_usd.inc(float(fill.notional))
        if fill.fee < 0:
            self.bot.metrics.maker_rebate_usd.inc(float(-fill.fee))

    async def _halt(self) -> None:
        """Fills wait for a stalled database past the bound: no quoting (every order cancelled) until
        the store thread has committed them all."""
        self.halted = True
        self.bot.metrics.store_halted.set(1)
        log.error(
            "halted: fills wait for the ledger; quoting resumes once they are committed",
            extra={"fields": {"bot": self.bot.name, "unconfirmed_fills": self.handover.unconfirmed}},
        )
        await self.bot.perform([CancelAll()])

    def _resume_if_settled(self) -> None:
        if self.halted and not self.handover.unconfirmed:
            self.halted = False
            self.bot.metrics.store_halted.set(0)
            log.warning("resumed: every waiting fill is committed", extra={"fields": {"bot": self.bot.name}})
