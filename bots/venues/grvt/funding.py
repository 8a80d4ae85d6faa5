"""GRVT perpetual funding as grvt-pysdk requests and parses it: the rate from the ticker, our payments
from the funding payment history.

- Rate: `Ticker.funding_rate_8h_curr` (`full/v1/ticker`, what `fetch_ticker` returns, and the `ticker.s`
  stream a recording reads), in percentage points per 8 h funding interval (`"0.01"` is 0.01%). GRVT
  settles funding every 8 h; the SDK's types (0.2.1) carry no interval, so `FUNDING_INTERVAL_S` is
  that. Positive: longs pay shorts.
- Payments: `full/v1/funding_payment_history` on the trade-data host (`ApiFundingPaymentHistoryRequest`:
  sub_account_id, instrument, start_time, end_time, limit, cursor; the ccxt clients have no method for
  it, the raw clients' `funding_payment_history_v1` posts the same body), answered `FundingPayment`
  rows newest first (event_time, sub_account_id, instrument, currency, amount, tx_id) and `next`.
  GRVT's `amount` is positive when the account paid; ours (`FundingPayment.amount`) is the cash that
  came in, so the sign flips here, and only here.
- Paper mode (`GrvtFundingClock`): the rates GRVT settled (`full/v1/funding`, public, what
  `fetch_funding_rate_history` reads: funding_rate, funding_time, mark_price, newest first), polled, so
  that the paper exchange settles its simulated position as GRVT would have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

import aiohttp
import pysdk.grvt_ccxt_env as ccxt_env

from bots.exchange.events import FundingPayment, FundingRate
from bots.exchange.sim.funding import Settlement
from bots.venues.grvt.endpoints import base_url_override
from bots.venues.grvt.parse import _decimal, _ns, decode_cursor, encode_cursor

__all__ = [
    "FUNDING_INTERVAL_S",
    "GrvtFundingClock",
    "funding_history_path",
    "new_payments",
    "parse_funding_payment",
    "parse_funding_rate",
]

FUNDING_INTERVAL_S: Final = 8 * 3600.0
_PERCENT: Final = Decimal(100)
_RATES_READ: Final = 20  # settled rates read per poll, newest first
log = logging.getLogger("mmfleet.grvt")


def funding_history_path(env: ccxt_env.GrvtEnv) -> str:
    """The funding payment history endpoint on the trade-data host. Looked up on the module at call
    time, as the SDK does, so that `endpoints.base_url_override` applies."""
    host = ccxt_env.get_grvt_endpoint_domains(env.value)[ccxt_env.GrvtEndpointType.TRADE_DATA]
    return f"{host}/full/v1/funding_payment_history"


def parse_funding_rate(ticker: Mapping[str, Any] | None, symbol: str) -> FundingRate | None:
    """The current rate of a ticker, as a fraction per interval; None when the ticker has none."""
    value = (ticker or {}).get("funding_rate_8h_curr")
    if value is None or value == "":
        return None
    rate = _decimal(value, "funding rate") / _PERCENT
    return FundingRate(symbol, _ns((ticker or {}).get("event_time") or 0), rate, FUNDING_INTERVAL_S)


def parse_funding_payment(row: Mapping[str, Any]) -> FundingPayment:
    """One payment; its id is `<instrument>:<event time>:<tx_id>` (a tx id may be a trade's)."""
    instrument, ts_ns = str(row.get("instrument", "")), _ns(row.get("event_time"))
    return FundingPayment(
        f"{instrument}:{ts_ns}:{row.get('tx_id', '')}",
        instrument,
        ts_ns,
        -_decimal(row.get("amount"), "funding amount"),  # GRVT: positive when paid
    )


def new_payments(
    rows: Iterable[Mapping[str, Any]], symbol: str, cursor: str | None
) -> tuple[list[FundingPayment], str | None]:
    """The payments of `symbol` after `cursor` (newest event time and the ids at it, as the fills'
    cursor), oldest first, and the cursor after them."""
    last_ns, last_ids = decode_cursor(cursor)
    unique = {p.payment_id: p for p in map(parse_funding_payment, rows) if p.symbol == symbol}
    new = sorted(
        (
            p
            for p in unique.values()
            if p.ts_ns > last_ns or (p.ts_ns == last_ns and p.payment_id not in last_ids)
        ),
        key=lambda p: (p.ts_ns, p.payment_id),
    )
    if not new:
        return [], cursor
    newest = new[-1].ts_ns
    at_newest = {p.payment_id for p in new if p.ts_ns == newest} | (last_ids if newest == last_ns else set())
    return new, encode_cursor(newest, at_newest)


class GrvtFundingClock:
    """Paper mode's funding (a `bots.exchange.sim.funding.FundingClock`): GRVT's settled rates, read
    every `poll_s` from the public `full/v1/funding`; each one settled after the clock started is due
    once the paper market reaches its funding time, at GRVT's mark price then. The current rate is the
    newest settled one. A failed read is logged and tried again at the next poll."""

    interval_s = FUNDING_INTERVAL_S

    def __init__(
        self, symbol: str, *, env: str = "testnet", base_url: str | None = None, poll_s: float = 10.0
    ) -> None:
        self.symbol = symbol
        self.env = ccxt_env.GrvtEnv(env)
        self.base_url = base_url
        self.poll_s = poll_s
        self.ts_ns = 0
        self._rate = Decimal(0)
        self._seen_ns: int | None = None  # the newest funding time read; None before the first read
        self._due: list[Settlement] = []

    def advance(self, ts_ns: int) -> list[Settlement]:
        due = [s for s in self._due if s.ts_ns <= ts_ns]
        if due:
            self._due = [s for s in self._due if s.ts_ns > ts_ns]
        return due

    def decimal_rate(self) -> Decimal:
        return self._rate

    def on_rates(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Settled rates as GRVT lists them: the newest sets the current rate; those after the first
        read (and after every one already read) become due."""
        settled = sorted(
            (
                Settlement(
                    _ns(row.get("funding_time")),
                    _decimal(row.get("funding_rate"), "funding rate") / _PERCENT,
                    _decimal(row.get("mark_price"), "mark price"),
                )
                for row in rows
                if row.get("instrument", self.symbol) == self.symbol
            ),
            key=lambda s: s.ts_ns,
        )
        if not settled:
            return
        if self._seen_ns is not None:
            self._due += [s for s in settled if s.ts_ns > self._seen_ns]
        self._seen_ns = max(settled[-1].ts_ns, self._seen_ns or 0)
        self._rate, self.ts_ns = settled[-1].rate, settled[-1].ts_ns

    async def run(self) -> None:
        """Read the settled rates every `poll_s` until cancelled."""
        body = {"instrument": self.symbol, "limit": _RATES_READ}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0)) as session:
            while True:
                try:
                    with base_url_override(self.base_url):
                        url = ccxt_env.get_grvt_endpoint(self.env, "GET_FUNDING")
                    async with session.post(url, json=body) as reply:
                        data = await reply.json(content_type=None)
                    self.on_rates((data or {}).get("result") or [])
                except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError) as exc:
                    log.warning("GRVT funding rates not read", extra={"fields": {"error": repr(exc)}})
                await asyncio.sleep(self.poll_s)
