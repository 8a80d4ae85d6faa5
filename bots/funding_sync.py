"""Funding for one bot worker: the venue's payments into the ledger, then into the core; its rate into
the core (the funding skew) and the metrics.

The worker asks on its timer (`sync`), at most every `poll_interval_s`. Like fills, a payment is
committed to the ledger before the core hears of it, by the bot's store thread (never SQL on the
loop): a batch of payments and the cursor after it in one transaction (`FundingLog.record_funding` is
idempotent on the payment id, so one read twice counts once), so a crash before the commit reads the
batch again and loses nothing. The core answers each payment with a `RecordFunding`,
which the worker publishes (`BotMetrics.publish_funding`). A refusal of a funding request (a venue
without the endpoint, say) is counted and logged, and tried again at the next poll: funding never
stops the trading.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol, TypeVar, cast

from bots.core.actions import Action
from bots.core.core import BotCore
from bots.errors import ExchangeError
from bots.exchange.base import Exchange, FundingSource
from bots.exchange.events import FundingPayment
from bots.metrics import BotMetrics
from bots.retry import error_kind
from bots.store import Ledger
from bots.store.funding import FUNDING_CURSOR_KEY
from bots.store.writer import StoreWriter

__all__ = ["FundingSync"]

log = logging.getLogger("mmfleet.funding")
T = TypeVar("T")
POLL_INTERVAL_S = 5.0


class ExchangeCall(Protocol):
    """The worker's exchange call with retries: the result, or None when it kept failing."""

    async def __call__(self, call: Callable[[], Awaitable[T]]) -> T | None: ...


class FundingSync:
    """Funding of one bot on one symbol, from an exchange that reports it (`Capabilities.funding`)."""

    def __init__(
        self,
        bot: str,
        symbol: str,
        exchange: FundingSource,
        store: StoreWriter,
        metrics: BotMetrics,
        cursor: str | None,
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        """`cursor`: the stored one (`StoredBot.funding_cursor`), read with the rest at start."""
        self.bot, self.symbol = bot, symbol
        self.exchange, self.store, self.metrics = exchange, store, metrics
        self.poll_interval_s = poll_interval_s
        self.cursor = cursor
        self._next_poll_s = float("-inf")

    @classmethod
    def of(
        cls,
        bot: str,
        symbol: str,
        exchange: Exchange,
        store: StoreWriter,
        metrics: BotMetrics,
        cursor: str | None,
    ) -> FundingSync | None:
        """The funding of an exchange that reports it; None for one that does not."""
        if not exchange.capabilities.funding:
            return None
        return cls(bot, symbol, cast("FundingSource", exchange), store, metrics, cursor)

    async def sync(self, core: BotCore, call: ExchangeCall, now_s: float) -> list[Action]:
        """When due: the current rate to the core, new payments committed and then booked by the core;
        returns the core's records of them."""
        if now_s < self._next_poll_s:
            return []
        self._next_poll_s = now_s + self.poll_interval_s
        exchange, symbol, cursor = self.exchange, self.symbol, self.cursor
        try:
            rate = await call(lambda: exchange.funding_rate(symbol))
            result = await call(lambda: exchange.funding_since(symbol, cursor))
        except ExchangeError as exc:  # transient errors were retried by `call`: this one was refused
            self.metrics.error(error_kind(exc))
            log.warning("funding not read", extra={"fields": {"bot": self.bot, "error": str(exc)}})
            return []
        if rate is not None:
            core.on_funding_rate(rate)
            self.metrics.publish_funding_rate(float(rate.rate), rate.interval_s)
        if result is None:
            return []
        payments, following = result
        if not payments and (following is None or following == self.cursor):
            return []
        moved = following if following is not None and following != self.cursor else None
        record = partial(_record_funding, bot=self.bot, payments=tuple(payments), cursor=moved)
        new = await self.store.call(record)
        if moved is not None:
            self.cursor = moved
        actions: list[Action] = []
        for payment in new:
            actions += core.on_funding(payment)
            log.info(
                "funding",
                extra={"fields": {"bot": self.bot, "amount": str(payment.amount), "id": payment.payment_id}},
            )
        return actions


def _record_funding(
    ledger: Ledger, *, bot: str, payments: Sequence[FundingPayment], cursor: str | None
) -> list[FundingPayment]:
    """On the store thread: the payments and the cursor after them, committed together; the new ones."""
    new = [payment for payment in payments if ledger.record_funding(bot, payment)]
    if cursor is not None:
        ledger.set_state(bot, FUNDING_CURSOR_KEY, cursor)
    return new
