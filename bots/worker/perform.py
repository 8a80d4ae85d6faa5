"""The core's actions performed one after the other through the exchange and the store thread, each
outcome fed back to the core as an event: an order placed, rejected or never answered; a cancel done or
failed; records handed to the store thread; the regime model fed the features recorded."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence

from bots.core.actions import (
    Action,
    Cancel,
    CancelAll,
    Place,
    RecordEnabled,
    RecordFunding,
    RecordMarket,
    RecordMarkouts,
    RecordOrders,
    RecordPeak,
    RecordRisk,
)
from bots.errors import Rejected, RejectReason, TransientExchangeError
from bots.exchange.base import OrderRequest
from bots.retry import Backoff
from bots.store import FeatureRow
from bots.store.records import BotRecords
from bots.worker.account import AccountWatch
from bots.worker.calls import ExchangeCalls
from bots.worker.context import BotContext
from bots.worker.fills import FillSync
from bots.worker.ports import RegimeSource

__all__ = ["Performer"]

log = logging.getLogger("mmfleet.worker")

_CREDENTIALS_REFUSED = frozenset({RejectReason.UNAUTHORIZED, RejectReason.BAD_SIGNATURE})
_HALT_AFTER_REFUSALS = 5
_REFUSAL_BACKOFF = Backoff(base_s=0.5, max_s=10.0)


class Performer:
    """One worker's hands."""

    def __init__(
        self,
        bot: BotContext,
        records: BotRecords,
        regime: RegimeSource | None,
        *,
        calls: ExchangeCalls,
        account: AccountWatch,
        fills: FillSync,
    ) -> None:
        self.bot, self.records, self.regime = bot, records, regime
        self._calls, self._account, self._fills = calls, account, fills
        self._refusals_in_a_row = 0  # orders refused for their credentials, in a row
        self._rng = random.Random()

    async def perform(self, actions: Sequence[Action]) -> int | None:
        """Each action in order, its outcome fed back to the core; after a close, the fills it took."""
        core = self.bot.core()
        cancelled: int | None = None
        took_liquidity = cancel_failed = False
        for action in actions:
            if isinstance(action, Cancel):
                if await self._calls.cancel(action.client_order_id):
                    core.on_cancelled(action.client_order_id)
                    self.bot.metrics.orders_cancelled.inc()
                else:
                    core.on_cancel_failed(action.client_order_id)
                    cancel_failed = True
            elif isinstance(action, Place):
                # what it replaces may still rest (the next decision sees both); or the bot was stopped
                # while this decision went out: no quote leaves after that
                if cancel_failed or (action.post_only and not core.enabled):
                    core.on_not_sent(action.client_order_id)
                    continue
                await self._place(action)
                took_liquidity = took_liquidity or not action.post_only
            elif isinstance(action, CancelAll):
                tracked = len(core.orders)
                count = await self._calls.call(self._account.cancel_all)
                core.on_all_cancelled()
                self.bot.metrics.orders_cancelled.inc(tracked)
                cancelled = count if count is not None else tracked
            elif isinstance(action, RecordMarket):
                self._record_market(action)
            elif isinstance(action, RecordOrders):
                self.records.orders(action.updates)
            elif isinstance(action, RecordMarkouts):
                self.records.markouts(action.markouts)
                self.bot.metrics.observe_markouts(action.markouts)
            elif isinstance(action, RecordRisk | RecordEnabled | RecordPeak):
                self.records.state(action)
            elif isinstance(action, RecordFunding):  # committed before the core booked it
                self.bot.metrics.publish_funding(float(action.payment.amount), float(action.funding_usd))
        if took_liquidity:  # the position must include what a close took before the next decision
            await self._fills.sync(wait=True)
        return cancelled

    async def _credentials_refused(self, reason: str) -> None:
        """The exchange refuses our orders' credentials or signature (a wrong key): each refusal in a
        row waits longer (full jitter, doubling); the `_HALT_AFTER_REFUSALS`-th stops trading, every
        order cancelled, with an ERROR saying why. An operator's `start` resumes once the key is fixed."""
        self._refusals_in_a_row += 1
        if self._refusals_in_a_row < _HALT_AFTER_REFUSALS:
            await asyncio.sleep(_REFUSAL_BACKOFF.delay_s(self._refusals_in_a_row - 1, self._rng))
            return
        log.error(
            "halted: the exchange refuses our orders' credentials; fix the key, then `mmfleet ctl start`",
            extra={"fields": {"bot": self.bot.name, "reason": reason, "in_a_row": self._refusals_in_a_row}},
        )
        self._refusals_in_a_row = 0
        await self.perform(self.bot.core().stop())

    async def _place(self, action: Place) -> None:
        cid, core = action.client_order_id, self.bot.core()
        self._account.sent(cid)
        spec = self.bot.settings().spec
        request = OrderRequest(
            symbol=self.bot.symbol,
            side=action.side,
            price=spec.tick_size * action.price_ticks,
            size=spec.lot_size * action.size_lots,
            client_order_id=cid,
            post_only=action.post_only,
            reduce_only=action.reduce_only,
        )
        try:
            update = await self._calls.retried(lambda: self.bot.exchange.place_order(request))
        except Rejected as exc:
            core.on_rejected(cid)
            self.bot.metrics.reject(exc.reason)
            log.info("rejected", extra={"fields": {"bot": self.bot.name, "reason": exc.reason}})
            if exc.reason in _CREDENTIALS_REFUSED:
                await self._credentials_refused(exc.reason)
            return
        except TransientExchangeError:  # maybe placed: the next diff, a reconciliation or a look decides
            core.on_send_failed(cid)
            return
        self._refusals_in_a_row = 0
        self.bot.metrics.orders_placed.inc()
        await self.perform(core.on_placed(cid, update))

    def _record_market(self, record: RecordMarket) -> None:
        """Equity, position and features to the store thread (the core keeps the same peak the ledger
        does); the features feed the regime model, whose probabilities return to the core."""
        core = self.bot.core()
        core.observe_peak(float(record.equity_usd))
        self.bot.metrics.store_records_dropped.inc(self.records.market(record, core.portfolio))
        if record.features is None or self.regime is None or not self.bot.settings().ml.regime_enabled:
            return
        self.regime.observe(FeatureRow(self.bot.name, self.bot.symbol, record.book_ts_ns, record.features))
        now_s = time.time()
        core.on_regime(self.regime.probabilities(now_s))
        self.bot.metrics.publish_regime(core.probabilities, loaded=self.regime.loaded(now_s))
