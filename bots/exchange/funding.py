"""A perpetual's funding rate as a venue publishes it, beside books and trades in the market data a
recording keeps.

The same type as the funding branch's `bots.exchange.events.FundingRate` (same name, fields and sign
convention): where both exist, this module gives way to that one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["FundingRate"]


@dataclass(frozen=True, slots=True)
class FundingRate:
    """A perpetual's funding rate: `rate` is the fraction of the position's notional paid per funding
    interval (`interval_s`), at `ts_ns`. Sign convention (GRVT's, every venue's): a positive rate means
    longs pay shorts, a negative one shorts pay longs."""

    symbol: str
    ts_ns: int
    rate: Decimal
    interval_s: float

    @property
    def rate_per_s(self) -> float:
        """The rate as a fraction of notional per second (what a holding-time cost multiplies)."""
        return float(self.rate) / self.interval_s
