"""The local exchange's instruments and their public market data (instruments, book, tickers, trades).

Each instrument is a GRVT perpetual with tick and lot from `settings.models.BUILTIN_INSTRUMENTS`, an
instrument hash built like GRVT's, a seeded `SimMarket` and the `InstrumentBook` of client orders. The
book shown to clients is the synthetic levels with the client orders added.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bots.exchange.base import BookUpdate
from bots.exchange.sim.funding import FundingParams, FundingProcess
from bots.exchange.sim.market import SimMarket
from bots.venues.grvt.server.book import InstrumentBook
from bots.venues.grvt.server.config import CURRENCY_IDS, GrvtSimConfig
from bots.venues.grvt.server.funding import FundingBook, rate_percent
from bots.venues.grvt.server.signing import instrument_hash
from bots.venues.grvt.server.wire import GrvtApiError, fmt, str_list
from settings.models import BUILTIN_INSTRUMENTS, InstrumentSpec

__all__ = ["Instrument", "MarketData", "build_instruments", "instrument_payload", "ticker_payload"]

TRADES_KEPT = 1000
_QUOTE_DECIMALS = 6  # USDT


@dataclass(eq=False)
class Instrument:
    """One perpetual: its rules, synthetic market, client book and recent public trades."""

    name: str
    base: str
    quote: str
    spec: InstrumentSpec
    hash: str
    market: SimMarket
    book: InstrumentBook
    create_time_ns: int
    funding: FundingBook
    last: BookUpdate | None = None
    trades: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRADES_KEPT))

    @property
    def mark(self) -> Decimal:
        """The mid of the synthetic book (mark and index price of the sim)."""
        if self.last is None or not self.last.bids or not self.last.asks:
            return Decimal(repr(self.market.mid)).quantize(self.spec.tick_size)
        return (self.last.bids[0].price + self.last.asks[0].price) / 2

    def matches_filter(
        self, kinds: list[str] | None, bases: list[str] | None, quotes: list[str] | None
    ) -> bool:
        return (
            (kinds is None or "PERPETUAL" in kinds)
            and (bases is None or self.base in bases)
            and (quotes is None or self.quote in quotes)
        )


def build_instruments(
    config: GrvtSimConfig, now_ns: int, next_trade_id: Callable[[], str]
) -> dict[str, Instrument]:
    """The configured instruments, each market stepped once so that a book exists from the start."""
    instruments: dict[str, Instrument] = {}
    for i, name in enumerate(config.instruments):
        base, quote, _ = name.split("_")
        spec = BUILTIN_INSTRUMENTS[name]
        market = SimMarket(
            name,
            spec,
            seed=config.seed + i,
            s0=config.start_prices.get(name, 100.0),
            dt_s=config.dt_s,
            start_ns=now_ns,
            **dict(config.market_params),
        )
        asset_id = instrument_hash(CURRENCY_IDS[base], CURRENCY_IDS[quote])
        book = InstrumentBook(name, spec.lot_size, next_trade_id)
        rate = FundingProcess(
            FundingParams(**dict(config.funding_params)), seed=config.seed + i, start_ns=now_ns
        )
        funding = FundingBook(name, rate)
        instrument = Instrument(name, base, quote, spec, asset_id, market, book, now_ns, funding)
        instrument.last = market.step()[0]
        instruments[name] = instrument
    return instruments


def instrument_payload(instrument: Instrument, base_decimals: int) -> dict[str, Any]:
    spec = instrument.spec
    return {
        "instrument": instrument.name,
        "instrument_hash": instrument.hash,
        "base": instrument.base,
        "quote": instrument.quote,
        "kind": "PERPETUAL",
        "venues": ["ORDERBOOK"],
        "settlement_period": "PERPETUAL",
        "base_decimals": base_decimals,
        "quote_decimals": _QUOTE_DECIMALS,
        "tick_size": fmt(spec.tick_size),
        "min_size": fmt(spec.effective_min_size),
        "create_time": str(instrument.create_time_ns),
        "max_position_size": fmt(spec.lot_size * 1_000_000),
    }


def ticker_payload(instrument: Instrument, now_ns: int, *, mini: bool) -> dict[str, Any]:
    """`MiniTicker` (`mini`) or `Ticker` of the synthetic market."""
    book = instrument.last
    mark = instrument.mark
    last = instrument.trades[-1] if instrument.trades else None
    bid = book.bids[0] if book is not None and book.bids else None
    ask = book.asks[0] if book is not None and book.asks else None
    ticker: dict[str, Any] = {
        "event_time": str(now_ns),
        "instrument": instrument.name,
        "mark_price": fmt(mark),
        "index_price": fmt(mark),
        "last_price": last["price"] if last else fmt(mark),
        "last_size": last["size"] if last else "0",
        "mid_price": fmt(mark),
        "best_bid_price": fmt(bid.price) if bid else "0",
        "best_bid_size": fmt(bid.size) if bid else "0",
        "best_ask_price": fmt(ask.price) if ask else "0",
        "best_ask_size": fmt(ask.size) if ask else "0",
    }
    if mini:
        return ticker
    prices = [Decimal(t["price"]) for t in instrument.trades] or [mark]
    return ticker | {
        "funding_rate_8h_curr": rate_percent(instrument.funding.current()),
        "funding_rate_8h_avg": rate_percent(instrument.funding.average_8h(now_ns)),
        "interest_rate": "0",
        "forward_price": "0",
        "high_price": fmt(max(prices)),
        "low_price": fmt(min(prices)),
        "open_price": fmt(prices[0]),
        "open_interest": "0",
        "long_short_ratio": "1",
    }


class MarketData:
    """The public endpoints: each takes the request body and returns the reply body."""

    def __init__(
        self, instruments: Mapping[str, Instrument], base_decimals: int, clock: Callable[[], int]
    ) -> None:
        self._instruments = instruments
        self._base_decimals = base_decimals
        self._clock = clock

    def of(self, body: Mapping[str, Any]) -> Instrument:
        """The request's `instrument`, else error 3000."""
        instrument = self._instruments.get(body.get("instrument") or "")
        if instrument is None:
            raise GrvtApiError(3000)
        return instrument

    def instrument(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"result": instrument_payload(self.of(body), self._base_decimals)}

    def instruments(self, body: Mapping[str, Any]) -> dict[str, Any]:
        kinds, bases, quotes = str_list(body, "kind"), str_list(body, "base"), str_list(body, "quote")
        limit = int(body.get("limit") or 1000)
        found = [i for i in self._instruments.values() if i.matches_filter(kinds, bases, quotes)][:limit]
        return {"result": [instrument_payload(i, self._base_decimals) for i in found]}

    def book_payload(self, instrument: Instrument, depth: int) -> dict[str, Any]:
        bids, asks = instrument.book.levels(instrument.last, depth)
        return {
            "event_time": str(self._clock()),
            "instrument": instrument.name,
            "bids": [{"price": fmt(p), "size": fmt(s), "num_orders": n} for p, s, n in bids],
            "asks": [{"price": fmt(p), "size": fmt(s), "num_orders": n} for p, s, n in asks],
        }

    def book(self, body: Mapping[str, Any]) -> dict[str, Any]:
        depth = body.get("depth") or 10
        if not isinstance(depth, int) or depth <= 0:
            raise GrvtApiError(1003, "depth must be a positive integer")
        return {"result": self.book_payload(self.of(body), min(depth, 500))}

    def ticker(self, body: Mapping[str, Any], *, mini: bool) -> dict[str, Any]:
        return {"result": ticker_payload(self.of(body), self._clock(), mini=mini)}

    def trades(self, body: Mapping[str, Any]) -> dict[str, Any]:
        trades = self.of(body).trades
        limit = max(1, min(int(body.get("limit") or 500), TRADES_KEPT))
        return {"result": list(reversed(trades))[:limit]}
