"""Agreeing with the exchange (where it can tell: live venues): fills missed while away, orders that
vanished, our orphans from an earlier life, and the position. At start, and whenever the exchange asks
(after a reconnect, or a call that may or may not have happened)."""

from __future__ import annotations

import logging
from typing import cast

from bots.core.actions import CancelAll
from bots.exchange.reconcile import Reconciling
from bots.store.writer import StoreWriter
from bots.worker.account import AccountWatch
from bots.worker.calls import ExchangeCalls
from bots.worker.context import BotContext
from bots.worker.fills import FillSync

__all__ = ["Reconciler"]

log = logging.getLogger("mmfleet.worker")


class Reconciler:
    """One worker's reconciliations with its exchange."""

    def __init__(
        self,
        bot: BotContext,
        store: StoreWriter,
        calls: ExchangeCalls,
        account: AccountWatch,
        fills: FillSync,
    ) -> None:
        self.bot, self._store, self._calls, self._account, self._fills = bot, store, calls, account, fills

    @property
    def exchange(self) -> Reconciling | None:
        """The exchange as one that reconciles, when its capabilities say so (None: sim, paper)."""
        exchange = self.bot.exchange
        return cast("Reconciling", exchange) if exchange.capabilities.reconciles else None

    async def reconcile(self, *, starting: bool) -> None:
        """Agree with the exchange: missed fills, vanished orders, our orphans, and the position.

        Exchanges that cannot tell (sim, paper: a fresh in-process book) just get a cancel-all at start.
        An order with our store's and bot's tags that we do not track is ours from an earlier life:
        always cancelled. Another store's orders are never touched: they halt us.
        """
        bot, exchange = self.bot, self.exchange
        if exchange is None:
            if starting:
                await bot.perform([CancelAll()])
            return
        core = bot.core()
        known = set() if starting else {*core.orders.orders, *core.orders.cancelling}
        spare = core.ids.is_other_stores
        fills = self._fills
        report = await self._calls.call(lambda: exchange.reconcile(known, fills.cursor, spare=spare))
        if report is None:
            return
        self._account.check(report.open_orders)
        await fills.book(report.fills, report.cursor)
        await fills.settle()  # the position below must include them
        for coid in report.missing_client_order_ids:
            core.on_order_gone(coid)
        for order in report.unknown_orders:
            coid = order.client_order_id
            if core.ids.is_ours(coid) and coid not in report.cancelled_unknown:
                await self._calls.cancel(coid)
        adjustment = report.adjustment_fill(core.portfolio.position, fill_id_prefix=f"reconcile-{bot.name}")
        if adjustment is not None and await self._store.commit_fills([adjustment], None):
            fields = {"bot": bot.name, "size": str(adjustment.size), "side": adjustment.side.value}
            log.warning("position adjusted to the exchange's", extra={"fields": fields})
            fills.apply(adjustment)
