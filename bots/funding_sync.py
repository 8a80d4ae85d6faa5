"""Funding for one bot worker: the venue's payments into the ledger, then into the core; its rate into
the core (the funding skew) and the metrics.

The worker asks on its timer (`sync`), at most every `poll_interval_s`. Like fills, a payment is
committed to the ledger before the core hears of it, by the bot's store thread (never SQL on the
loop): a batch of payments and the cursor after it in one transaction (`FundingLog.record_funding` is
idempotent on the payment id, so one read twice counts once), so a crash before the commit reads the
batch again and loses nothing. The loop waits for that commit only `commit_wait_s`: a stalled database
holds the booking (and the next poll) back, never the trading; a later `sync` books what was
committed. The core answers each payment with a `RecordFunding`,
which the worker publishes (`BotMetrics.publish_funding`). A refusal of a funding request (a venue
without the endpoint, say) is counted and logged, and tried again at the next poll: funding never
stops the trading.
"""

from __future__ import annotations

import asyncio
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
COMMIT_WAIT_S = 0.05  # how long a poll waits for its payments' commit before the loop goes on


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
        commit_wait_s: float = COMMIT_WAIT_S,
    ) -> None:
        """`cursor`: the stored one (`StoredBot.funding_cursor`), read with the rest at start."""
        self.bot, self.symbol = bot, symbol
        self.exchange, self.store, self.metrics = exchange, store, metrics
        self.poll_interval_s = poll_interval_s
        self.cursor = cursor
        self.commit_wait_s = commit_wait_s
        self._next_poll_s = float("-inf")
        # payments handed to the store thread, with the cursor after them, booked once committed
        self._committing: tuple[asyncio.Future[list[FundingPayment]], str | None] | None = None

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
        returns the core's records of them (of payments committed since the last call, too)."""
        if self._committing is not None:
            return self._booked(core)  # no new poll before the last one's payments are committed
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
        committing = self.store.call(record)
        self._committing = committing, moved
        await asyncio.wait([committing], timeout=self.commit_wait_s)
        return self._booked(core)

    async def settle(self, core: BotCore) -> list[Action]:
        """At a stop: wait for the payments' commit under way, and book them."""
        if self._committing is not None:
            await asyncio.wait([self._committing[0]])
        return self._booked(core)

    def _booked(self, core: BotCore) -> list[Action]:
        """The core books the payments whose commit is confirmed; [] while it is under way. A refused
        commit is logged and its payments read again at the next poll (the cursor did not move)."""
        if self._committing is None or not self._committing[0].done():
            return []
        committing, moved = self._committing
        self._committing = None
        error = committing.exception()
        if error is not None:
            log.error("funding not committed", extra={"fields": {"bot": self.bot, "error": str(error)}})
            return []
        if moved is not None:
            self.cursor = moved
        actions: list[Action] = []
        for payment in committing.result():
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
