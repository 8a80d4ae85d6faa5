"""The bot's account and symbol as it shares them with the world (live venues): another mmfleet store's
orders there halt the core; an order of ours that nothing tracks (a placement whose reply was lost) is
cancelled; a stop or cancel-all spares another store's orders once they were seen."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from functools import partial

from bots.core.orders import owner_of
from bots.exchange.base import OrderUpdate
from bots.worker.calls import ExchangeCalls
from bots.worker.context import BotContext

__all__ = ["AccountWatch"]

log = logging.getLogger("mmfleet.worker")


class AccountWatch:
    """Looks at the symbol's open orders for one worker, through its retried exchange calls."""

    def __init__(self, bot: BotContext, calls: ExchangeCalls) -> None:
        self.bot, self._calls = bot, calls
        self.checked = 0.0  # monotonic time of the last full look at the open orders
        self._sent: tuple[int, int] | None = None  # the first and newest client order id this life sent

    def sent(self, client_order_id: str) -> None:
        """A placement goes out: ids grow within a life, so their span says what this life sent."""
        cid = int(client_order_id)
        self._sent = (cid, cid) if self._sent is None else (self._sent[0], cid)

    async def look(self) -> None:
        """Read the symbol's open orders: another store's halt us (`check`), ours that nothing tracks
        are cancelled (`cancel_untracked`)."""
        self.checked = time.monotonic()
        resting = await self._calls.call(partial(self.bot.exchange.open_orders, self.bot.symbol))
        if resting is not None:
            self.check(resting)
            await self.cancel_untracked(resting)

    def check(self, resting: Iterable[OrderUpdate]) -> None:
        """A full look at the symbol's resting orders: how many are another store's (the gauge the
        alert watches), and the halt when there are any."""
        self.checked = time.monotonic()
        ids = self.bot.core().ids
        theirs = sorted(o.client_order_id for o in resting if ids.is_other_stores(o.client_order_id))
        self.bot.metrics.other_store_orders.set(len(theirs))
        if theirs:
            self.halt(theirs)

    def halt(self, theirs: Sequence[str]) -> None:
        """Orders of another mmfleet store (another data directory or database) rest on our account and
        symbol (`theirs`, from a look at the open orders or an order stream): the worker lease guards one
        store only, so two stores would quote against each other. The core stops quoting until an
        operator's `reset-risk`, with one ERROR naming their orders."""
        core = self.bot.core()
        if core.other_store is not None:
            return
        ids = core.ids
        stores = sorted({f"{owner.store:04x}" for cid in theirs if (owner := owner_of(cid)) is not None})
        reason = (f"orders of another mmfleet store (store {', '.join(stores)}; this one is"
                  f" {ids.owner.store:04x}) rest on this account's {self.bot.symbol}")  # fmt: skip
        log.error(
            f"halted: {reason}; two stores must not trade one account and symbol. Stop the other store's"
            " bot, then `mmfleet ctl reset-risk`",
            extra={"fields": {"bot": self.bot.name, "symbol": self.bot.symbol, "client_order_ids": theirs}},
        )
        core.on_other_store(reason)

    async def cancel_untracked(self, resting: Iterable[OrderUpdate]) -> None:
        """Cancel, by id, the orders this life sent that rest while the core no longer tracks them: a
        placement whose reply never came (a timeout), booked by the exchange after the core let it go (a
        reconciliation found it missing, or its cancel found nothing yet). The core wants none of them.
        Never an id this life did not send: an earlier life's are the reconciliation's, and a new lease
        holder's (the same store and bot, later ids) are not ours to touch."""
        sent = self._sent
        if sent is None:
            return
        core = self.bot.core()
        untracked = [
            cid
            for order in resting
            if core.ids.is_ours(cid := order.client_order_id)
            and sent[0] <= int(cid) <= sent[1]
            and cid not in core.orders
            and cid != core.closing
        ]
        for cid in untracked:
            log.warning(
                "an order of ours rests untracked (its placement's reply was lost): cancelling it",
                extra={"fields": {"bot": self.bot.name, "client_order_id": cid}},
            )
            if await self._calls.cancel(cid):
                self.bot.metrics.orders_cancelled.inc()

    def may_cancel(self, order: OrderUpdate) -> bool:
        """Whether a stop or a cancel-all may cancel `order`: any order on the symbol, except once another
        store's orders have been seen; then only our store's."""
        core = self.bot.core()
        if core.other_store is None:
            return True
        owner = owner_of(order.client_order_id)
        return owner is not None and owner.store == core.ids.owner.store

    async def cancel_all(self) -> int:
        """The exchange's cancel-all on the symbol; once another store shares it, our store's orders
        one by one instead (theirs stay). How many rested before."""
        if self.bot.core().other_store is None:
            return await self.bot.exchange.cancel_all(self.bot.symbol)
        ours = [o for o in await self.bot.exchange.open_orders(self.bot.symbol) if self.may_cancel(o)]
        for order in ours:
            await self.bot.exchange.cancel_order(self.bot.symbol, order.client_order_id)
        return len(ours)
