"""Funding payments in the ledger: one row per payment settled on a bot's position, their own entries
beside the fills (table `funding_payments`).

A payment is durable when `record_funding` returns, and recording is idempotent on (bot, payment_id):
a venue may report a payment twice (a page read again after a restart) and the second copy changes
nothing, so a bot books a payment into its portfolio only when it was new. A restart replays the
payments with the fills (`Ledger.restore_portfolio`). The exchange cursor after the last payments is
kept in the bot's state under `FUNDING_CURSOR_KEY`, beside the fill cursor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select

from bots.exchange.events import FundingPayment
from bots.store.db import LedgerBase
from bots.store.schema import MONEY_SCALE, funding_payments

__all__ = ["FUNDING_CURSOR_KEY", "FundingLog"]

FUNDING_CURSOR_KEY = "funding_cursor"


def _payment(row: Row[Any]) -> FundingPayment:
    return FundingPayment(row.payment_id, row.symbol, row.ts_ns, row.amount, row.rate, row.position, row.mark)


def _check_scale(payment: FundingPayment) -> None:
    # The database keeps 18 decimal places; a finer amount would not replay to the same cash.
    for name in ("amount", "rate", "position", "mark"):
        value = getattr(payment, name)
        if value is None:
            continue
        exponent = value.as_tuple().exponent
        if not value.is_finite() or not isinstance(exponent, int) or exponent < -MONEY_SCALE:
            raise ValueError(
                f"funding {payment.payment_id}: {name}={value} must be finite, at most {MONEY_SCALE} decimals"
            )


class FundingLog(LedgerBase):
    """The ledger's funding payments (a part of `bots.store.ledger.Ledger`)."""

    def record_funding(self, bot: str, payment: FundingPayment) -> bool:
        """Append a payment in one committed transaction; False when this bot already has its
        payment_id (nothing was written)."""
        _check_scale(payment)
        values = {
            "bot": bot,
            "symbol": payment.symbol,
            "payment_id": payment.payment_id,
            "ts_ns": payment.ts_ns,
            "amount": payment.amount,
            "rate": payment.rate,
            "position": payment.position,
            "mark": payment.mark,
            "recorded_at_ns": self._now(),
        }
        with self._begin() as connection:
            return self._insert_ignore(connection, funding_payments, values, ("bot", "payment_id"))

    def funding_payments(
        self,
        bot: str,
        *,
        symbol: str | None = None,
        since_ts_ns: int | None = None,
        until_ts_ns: int | None = None,
    ) -> list[FundingPayment]:
        """The bot's payments in recording order, optionally of one symbol and within
        [since_ts_ns, until_ts_ns)."""
        table = funding_payments
        query = select(table).where(table.c.bot == bot).order_by(table.c.id)
        if symbol is not None:
            query = query.where(table.c.symbol == symbol)
        if since_ts_ns is not None:
            query = query.where(table.c.ts_ns >= since_ts_ns)
        if until_ts_ns is not None:
            query = query.where(table.c.ts_ns < until_ts_ns)
        with self._begin() as connection:
            return [_payment(row) for row in connection.execute(query)]
