"""The worker's exchange calls: retried with backoff (`bots.retry`), each failure counted by kind and
logged, and the calls failing in a row counted (the bot is not ready while the exchange fails)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bots.errors import TransientExchangeError
from bots.retry import Backoff, error_kind, retrying
from bots.worker.context import BotContext

__all__ = ["ExchangeCalls"]

log = logging.getLogger("mmfleet.worker")
T = TypeVar("T")


class ExchangeCalls:
    """Retried calls to one worker's exchange on its symbol."""

    def __init__(self, bot: BotContext, backoff: Backoff) -> None:
        self.bot, self.backoff = bot, backoff
        self.failing_in_a_row = 0

    async def retried(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call` with retries; raises what still fails (a transient error counts one more failure in a
        row; a rejection is an answer, not a failure)."""
        try:
            result = await retrying(call, policy=self.backoff, on_error=self._count)
        except TransientExchangeError:
            self.failing_in_a_row += 1
            raise
        self.failing_in_a_row = 0
        return result

    async def call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """`call` with retries; None when it still fails (counted, logged: the loop goes on)."""
        try:
            return await self.retried(call)
        except TransientExchangeError:
            return None

    async def cancel(self, client_order_id: str) -> bool:
        """Cancel one order with retries; False when the call kept failing (it may still rest)."""
        try:
            await self.retried(lambda: self.bot.exchange.cancel_order(self.bot.symbol, client_order_id))
        except TransientExchangeError:
            return False
        return True

    def _count(self, exc: TransientExchangeError) -> None:
        self.bot.metrics.error(error_kind(exc))
        log.warning("exchange error, retrying", extra={"fields": {"bot": self.bot.name, "error": str(exc)}})
