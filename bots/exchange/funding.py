"""A perpetual's funding rate as a venue publishes it: a value of its own beside books and trades.

Why not in `bots.exchange.events`: that module is compiled (mypyc) for the per-event path, and a funding
sample arrives a few times a minute at most; recordings and the market-data feed carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["FundingSample"]


@dataclass(frozen=True, slots=True)
class FundingSample:
    """The funding rate of `symbol` in force at `ts_ns` (exchange time, nanoseconds), in percentage
    points per funding interval as GRVT states it (its ticker's `funding_rate_8h_curr`: 0.01 means
    0.01% of the position's notional per 8 hours, paid by longs when positive)."""

    symbol: str
    ts_ns: int
    rate_pct: Decimal
