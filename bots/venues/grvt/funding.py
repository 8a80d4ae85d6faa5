"""GRVT perpetual funding as grvt-pysdk requests and parses it: the rate from the ticker.

- Rate: `Ticker.funding_rate_8h_curr` (`full/v1/ticker`, the `ticker.s` stream), in percentage points
  per 8 h funding interval (`"0.01"` is 0.01%). GRVT settles funding every 8 h; the SDK's types (0.2.1)
  carry no interval, so `FUNDING_INTERVAL_S` is that. Positive: longs pay shorts.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from bots.exchange.funding import FundingRate
from bots.venues.grvt.parse import _decimal, _ns

__all__ = ["FUNDING_INTERVAL_S", "parse_funding_rate"]

FUNDING_INTERVAL_S: Final = 8 * 3600.0
_PERCENT: Final = Decimal(100)


def parse_funding_rate(ticker: Mapping[str, Any] | None, symbol: str) -> FundingRate | None:
    """The current rate of a ticker, as a fraction per interval; None when the ticker has none."""
    value = (ticker or {}).get("funding_rate_8h_curr")
    if value is None or value == "":
        return None
    rate = _decimal(value, "funding rate") / _PERCENT
    return FundingRate(symbol, _ns((ticker or {}).get("event_time") or 0), rate, FUNDING_INTERVAL_S)
