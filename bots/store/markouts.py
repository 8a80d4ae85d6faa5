"""Markouts in the ledger: one row per fill and horizon, written when the horizon passes.

Recording is idempotent on (bot, fill_id, horizon): a restart that hears of a fill again and marks it
out again changes nothing. The USD figure is stored exactly (it is money); the bps one as a float.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select

from bots.core.markouts import Markout
from bots.engine.types import Side
from bots.store.db import LedgerBase
from bots.store.schema import fill_markouts

__all__ = ["MarkoutLog"]


def _markout(row: Row[Any]) -> Markout:
    return Markout(
        row.bot,
        row.symbol,
        row.fill_id,
        Side(row.side),
        row.size,
        row.fill_ts_ns,
        row.horizon_s,
        row.mid_at_fill,
        row.mid_after,
    )


class MarkoutLog(LedgerBase):
    """The ledger's markouts."""

    def record_markouts(self, markouts: Sequence[Markout]) -> int:
        """Append markouts in one transaction; returns how many were new."""
        if not markouts:
            return 0
        now = self._now()
        written = 0
        with self._engine.begin() as connection:
            for markout in markouts:
                values = {
                    "bot": markout.bot,
                    "symbol": markout.symbol,
                    "fill_id": markout.fill_id,
                    "side": markout.side.value,
                    "size": markout.size,
                    "fill_ts_ns": markout.fill_ts_ns,
                    "horizon_s": markout.horizon_s,
                    "mid_at_fill": markout.mid_at_fill,
                    "mid_after": markout.mid_after,
                    "markout_usd": markout.usd,
                    "markout_bps": float(markout.bps),
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
    ) -> list[Markout]:
        """The bot's markouts of fills made within [since, until), by fill time then horizon."""
        table = fill_markouts
        query = select(table).where(table.c.bot == bot).order_by(table.c.fill_ts_ns, table.c.id)
        if since_ts_ns is not None:
            query = query.where(table.c.fill_ts_ns >= since_ts_ns)
        if until_ts_ns is not None:
            query = query.where(table.c.fill_ts_ns < until_ts_ns)
        if symbol is not None:
            query = query.where(table.c.symbol == symbol)
        with self._engine.begin() as connection:
            return [_markout(row) for row in connection.execute(query)]
