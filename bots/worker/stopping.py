"""How a worker leaves the exchange when it stops: every order cancelled until the exchange confirms
none rests, within `exchange.stop_deadline_s`; or, when its lease was lost to a newer worker, only the
orders this life placed, by id (a cancel-all would cancel the new holder's)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bots.core.actions import Action, CancelAll
from bots.core.core import BotCore
from bots.errors import TransientExchangeError
from bots.exchange.base import Exchange
from bots.worker.account import AccountWatch
from bots.worker.calls import ExchangeCalls

__all__ = ["Stopping"]

log = logging.getLogger("mmfleet.worker")
_POLL_S = 0.2  # between two reads of the open orders while cancels settle


class Stopping:
    """One worker's way out; `core` reads its current core, `perform` is how it acts (the cancel-all)."""

    def __init__(
        self,
        name: str,
        symbol: str,
        exchange: Exchange,
        core: Callable[[], BotCore],
        perform: Callable[[Sequence[Action]], Awaitable[int | None]],
        account: AccountWatch,
        calls: ExchangeCalls,
    ) -> None:
        self.name, self.symbol, self.exchange = name, symbol, exchange
        self._core, self._perform, self._account, self._calls = core, perform, account, calls
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
        orders = self._core().orders
        left = sorted(orders.orders) + sorted(orders.cancelling)
        while (remaining := self.left_s()) > 0:
            try:
                await asyncio.wait_for(self._perform([CancelAll()]), remaining)
                resting = await asyncio.wait_for(self.exchange.open_orders(self.symbol), self.left_s())
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
        core = self._core()
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
            extra={"fields": {"bot": self.name, "client_order_ids": own}},
        )
