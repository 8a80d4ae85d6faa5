"""The funding rate in GRVT's ticker (`parse_funding`): exact, with its time; absent from a mini ticker;
a malformed rate is an ExchangeError (the feed drops that message), never a NaN in a recording."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bots.errors import ExchangeError
from bots.exchange.funding import FundingSample
from bots.venues.grvt.parse import parse_funding

SYMBOL = "BTC_USDT_Perp"


def test_the_tickers_current_rate_is_the_sample() -> None:
    ticker = {"event_time": "1700000000000000001", "instrument": SYMBOL, "funding_rate_8h_curr": "-0.0125"}
    assert parse_funding(ticker, "other") == FundingSample(
        SYMBOL, 1_700_000_000_000_000_001, Decimal("-0.0125")
    )


def test_a_ticker_without_funding_has_no_sample() -> None:
    assert parse_funding({"event_time": "1", "instrument": SYMBOL, "mark_price": "1"}, SYMBOL) is None


@pytest.mark.parametrize("rate", ["abc", "NaN", "Infinity", "-inf", ""])
def test_a_malformed_rate_is_an_exchange_error(rate: str) -> None:
    with pytest.raises(ExchangeError, match="funding rate"):
        parse_funding({"event_time": "1", "funding_rate_8h_curr": rate}, SYMBOL)
