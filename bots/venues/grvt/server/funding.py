"""Perpetual funding on the local GRVT exchange: each instrument's rate follows the sim's funding
process (`bots.exchange.sim.funding`, clocked by the instrument's market time) and settles on every
open position at each funding time, moving the sub-account's USDT balance.

GRVT's shapes and units, as grvt-pysdk reads them (`pysdk.grvt_raw_types`):
- rates are in percentage points (`"0.01"` is 0.01% of notional per interval);
- `full/v1/funding` (public, `ApiFundingRateRequest`: instrument, start_time, end_time, limit, cursor)
  answers `FundingRate` rows, newest first: instrument, funding_rate, funding_time (ns), mark_price,
  funding_rate_8_h_avg; the ticker's `funding_rate_8h_curr` is the rate now, `funding_rate_8h_avg` the
  mean of the settlements of the last 8 h;
- `full/v1/funding_payment_history` (private, `ApiFundingPaymentHistoryRequest`: sub_account_id,
  instrument, start_time, end_time, limit, cursor) answers `FundingPayment` rows, newest first:
  event_time, sub_account_id, instrument, currency, amount, tx_id, where `amount` is positive when the
  account paid and negative when it received (the SDK's words). A long pays `size * mark * rate` under
  a positive rate, a short receives it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from bots.exchange.sim.funding import FundingProcess, Settlement
from bots.venues.grvt.server.wire import ZERO, fmt

__all__ = ["FundingBook", "page", "payments_page", "rate_percent"]

_HUNDRED: Final = Decimal(100)
_NS_PER_S: Final = 1_000_000_000
_AVG_WINDOW_NS: Final = 8 * 3600 * _NS_PER_S
_KEPT: Final = 10_000


def rate_percent(rate: Decimal) -> str:
    """A rate (fraction per interval) in GRVT's percentage points."""
    return fmt(rate * _HUNDRED)


def page(rows: list[dict[str, Any]], body: Mapping[str, Any], time_key: str) -> dict[str, Any]:
    """Rows (newest first) within the request's start_time/end_time, one page of `limit` from `cursor`
    (an offset, as the fill history's)."""
    start, end = int(body.get("start_time") or 0), int(body.get("end_time") or 2**63)
    found = [row for row in rows if start <= int(row[time_key]) <= end]
    offset = int(body.get("cursor") or 0)
    limit = max(1, min(int(body.get("limit") or 500), 1000))
    more = offset + limit < len(found)
    return {"result": found[offset : offset + limit], "next": str(offset + limit) if more else ""}


class FundingBook:
    """One instrument's funding: its rate process and the rates it settled (newest last)."""

    def __init__(self, instrument: str, process: FundingProcess) -> None:
        self.instrument = instrument
        self.process = process
        self.history: deque[dict[str, Any]] = deque(maxlen=_KEPT)

    def current(self) -> Decimal:
        return self.process.decimal_rate()

    def average_8h(self, now_ns: int) -> Decimal:
        """Mean of the rates settled in the 8 h before `now_ns`; the current rate before any."""
        since = now_ns - _AVG_WINDOW_NS
        rates = [Decimal(r["funding_rate"]) for r in self.history if int(r["funding_time"]) > since]
        return sum(rates, ZERO) / len(rates) / _HUNDRED if rates else self.current()

    def advance(self, ts_ns: int) -> list[Settlement]:
        """Move the rate to market time `ts_ns`; the funding times that passed."""
        return self.process.advance(ts_ns)

    def settled(self, settlement: Settlement, mark: Decimal) -> None:
        """Keep a settled rate for the `funding` endpoint."""
        self.history.append(
            {
                "instrument": self.instrument,
                "funding_rate": rate_percent(settlement.rate),
                "funding_time": str(settlement.ts_ns),
                "mark_price": fmt(mark),
                "funding_rate_8_h_avg": rate_percent(self.average_8h(settlement.ts_ns)),
            }
        )

    def rates(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The `funding` endpoint's reply."""
        return page(list(reversed(self.history)), body, "funding_time")


def payments_page(payments: Iterable[dict[str, Any]], body: Mapping[str, Any]) -> dict[str, Any]:
    """The `funding_payment_history` reply over a sub-account's payments (oldest first)."""
    instrument = body.get("instrument")
    rows = [p for p in reversed(list(payments)) if not instrument or p["instrument"] == instrument]
    return page(rows, body, "event_time")
