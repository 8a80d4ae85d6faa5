"""How a worker leaves the exchange when it stops: every order cancelled until the exchange confirms
none rests, within `exchange.stop_deadline_s`; or, when its lease was lost to a newer worker, only the
orders this life placed, by id (a cancel-all would cancel the new holder's)."""

from __future__ import annotations

import asyncio
import logging
import time

from bots.core.actions import CancelAll
from bots.errors import TransientExchangeError
from bots.worker.account import AccountWatch
from bots.worker.calls import ExchangeCalls
from bots.worker.context import BotContext

__all__ = ["Stopping"]

log = logging.getLogger("mmfleet.worker")
_POLL_S = 0.2  # between two reads of the open orders while cancels settle


class Stopping:
    """One worker's way out."""

    def __init__(self, bot: BotContext, account: AccountWatch, calls: ExchangeCalls) -> None:
        self.bot, self._account, self._calls = bot, account, calls
        self._deadline = 0.0  # monotonic time the stop must be done by

    def begin(self, deadline_s: float) -> None:
        """The stop starts: it must be done within `deadline_s`."""
        self._deadline = time.monotonic() + deadline_s

    def left_s(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    async def flatten(self) -> list[str]:
        """Cancel-all and read back the open orders until none rests, before the deadline (a retry or a
        Retry-After that would pass it is cut short). What is still resting then, by client order id
        (ours and, the cancel-all being per symbol, any other: only our store's once another store's
        were seen); [] once the exchange says none."""
        orders = self.bot.core().orders
        left = sorted(orders.orders) + sorted(orders.cancelling)
        while (remaining := self.left_s()) > 0:
            try:
                await asyncio.wait_for(self.bot.perform([CancelAll()]), remaining)
                resting = await asyncio.wait_for(
                    self.bot.exchange.open_orders(self.bot.symbol), self.left_s()
                )
            except (TimeoutError, TransientExchangeError):
                await asyncio.sleep(min(_POLL_S, self.left_s()))
                continue
            left = sorted(order.client_order_id for order in resting if self._account.may_cancel(order))
            if not left:
                return []
            await asyncio.sleep(min(_POLL_S, self.left_s()))
        return left

    async def cancel_own(self) -> None:
        """The lease is lost: cancel, by id, every order this life placed (before the deadline)."""
        core = self.bot.core()
        own = [*core.orders.orders, *core.orders.cancelling]
        if core.closing is not None:
            own.append(core.closing)
        for client_order_id in own:
            try:
                await asyncio.wait_for(self._calls.cancel(client_order_id), self.left_s())
            except TimeoutError:
                break
        log.error(
            "lost the worker lease: cancelled this life's orders by id and stopped",
            extra={"fields": {"bot": self.bot.name, "client_order_ids": own}},
        )
