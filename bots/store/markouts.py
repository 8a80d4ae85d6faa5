"""Markouts in the ledger: one row per fill and horizon, written when the horizon passes.

Recording is idempotent on (bot, fill_id, horizon): a fill heard of twice and marked out twice is kept
once. The figures are the model's floats (`bots.engine.markouts`); the USD one is stored as Money,
rounded to 1e-12 so that a float's last digit does not pass for a cent's fraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, select

from bots.core.markouts import FillMarkout
from bots.engine.types import Side
from bots.store.db import LedgerBase
from bots.store.schema import fill_markouts

__all__ = ["MarkoutLog"]

_USD_PLACES = 12


def _markout(row: Row[Any]) -> FillMarkout:
    return FillMarkout(
        row.bot,
        row.symbol,
        row.fill_id,
        Side(row.side),
        row.price,
        row.size,
        row.fill_ts_ns,
        row.horizon_s,
        row.markout_bps,
        float(row.markout_usd),
    )


class MarkoutLog(LedgerBase):
    """The ledger's markouts."""

    def record_markouts(self, markouts: Sequence[FillMarkout]) -> int:
        """Append markouts in one transaction; returns how many were new."""
        if not markouts:
            return 0
        now = self._now()
        written = 0
        with self._begin() as connection:
            for markout in markouts:
                values = {
                    "bot": markout.bot,
                    "symbol": markout.symbol,
                    "fill_id": markout.fill_id,
                    "side": markout.side.value,
                    "price": markout.price,
                    "size": markout.size,
                    "fill_ts_ns": markout.fill_ts_ns,
                    "horizon_s": markout.horizon_s,
                    "markout_usd": Decimal(repr(round(markout.usd, _USD_PLACES))),
                    "markout_bps": markout.bps,
                    "recorded_at_ns": now,
                }
                keys = ("bot", "fill_id", "horizon_s")
                written += self._insert_ignore(connection, fill_markouts, values, keys)
        return written

    def markouts(
        self,
        bot: str,
        *,
        since_ts_ns: int | None = None,
        until_ts_ns: int | None = None,
        symbol: str | None = None,
    ) -> list[FillMarkout]:
        """The bot's markouts of fills made within [since, until), by fill time, then as recorded."""
        table = fill_markouts
        query = select(table).where(table.c.bot == bot).order_by(table.c.fill_ts_ns, table.c.id)
        if since_ts_ns is not None:
            query = query.where(table.c.fill_ts_ns >= since_ts_ns)
        if until_ts_ns is not None:
            query = query.where(table.c.fill_ts_ns < until_ts_ns)
        if symbol is not None:
            query = query.where(table.c.symbol == symbol)
        with self._begin() as connection:
            return [_markout(row) for row in connection.execute(query)]
