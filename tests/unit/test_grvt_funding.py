"""The funding rate of GRVT's ticker as the market-data feed records it: a fraction per 8 h interval
with its time, passed on only when it changes; a malformed rate is dropped (never a NaN in a
recording)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, cast

from bots.exchange.events import FundingRate
from bots.venues.grvt.data import _MarketFeed
from bots.venues.grvt.funding import FUNDING_INTERVAL_S, parse_funding_rate

SYMBOL = "BTC_USDT_Perp"


def test_the_tickers_current_rate_in_percentage_points_is_a_fraction_per_interval() -> None:
    ticker = {"event_time": "1700000000000000001", "instrument": SYMBOL, "funding_rate_8h_curr": "-0.0125"}
    expected = FundingRate(SYMBOL, 1_700_000_000_000_000_001, Decimal("-0.000125"), 28_800.0)
    assert parse_funding_rate(ticker, SYMBOL) == expected
    assert parse_funding_rate({"event_time": "1", "mark_price": "1"}, SYMBOL) is None  # a mini ticker


def test_the_feed_passes_a_rate_on_when_it_changes_and_drops_a_malformed_one() -> None:
    async def main() -> list[object]:
        feed = _MarketFeed(cast(Any, None), SYMBOL, 500, 10, steps=True, funding=True)  # no socket used
        seen: list[object] = []
        for ts, rate in [
            (1, "0.01"),
            (2, "0.01"),
            (3, "NaN"),
            (4, "sNaN"),
            (5, "abc"),
            (6, "0.02"),
            (7, "0.02"),
        ]:
            await feed._on_ticker({"feed": {"event_time": str(ts), "funding_rate_8h_curr": rate}})
            if feed._step_ready.is_set():
                seen.append(await feed.next_step())
                feed._step_ready.clear()
        return seen

    assert asyncio.run(main()) == [
        FundingRate(SYMBOL, 1, Decimal("0.0001"), FUNDING_INTERVAL_S),
        FundingRate(SYMBOL, 6, Decimal("0.0002"), FUNDING_INTERVAL_S),
    ]
