"""One backtest's event loop: a market step in, the bot's engine, fill model and portfolio through it.

Per market step, in the order a live bot meets it: order actions whose latency has elapsed reach the
fill model (placements, cancels), the fill model sees the new book and then the step's trades (fills
go to a `Portfolio`), then `QuoteEngine.on_book` decides, `diff_orders` turns that into cancels and
post-only placements, and those are sent: they act `latency_ms` later, at the first market event at or
after that time (the fill model meanwhile sees the book as of their arrival). A circuit-breaker close
is a reduce-only taker order at the far end of the visible book, sent with the same latency, as the
worker does. Nothing here copies the engine or the fill model: `QuoteEngine`, `diff_orders`,
`PaperFillModel` and `Portfolio` are the bot's own. Compiled by mypyc with them (`make native`): this is
the per-event path of every backtest, sweep and tuner run.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from bots.engine import pickling
from bots.engine.orders import OpenOrder, OrderKeys, diff_orders, order_keys
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import Inventory, QuoteEngine
from bots.engine.types import DesiredOrder, Side
from bots.exchange.events import BookLevel, BookUpdate, Fill, OrderRequest, OrderStatus, Trade
from bots.exchange.paper import PaperFillModel
from settings.models import BotSettings

__all__ = ["BacktestConfig", "BacktestLoop"]

_NS_PER_MS: Final = 1_000_000
_ZERO: Final = Decimal(0)
_TWO: Final = Decimal(2)


# -- configuration -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestConfig:
    """How to run: order-entry latency, the fill model's seed (touch fills), Sharpe sampling."""

    latency_ms: float = 0.0
    seed: int = 0
    sharpe_interval_s: float = 60.0

    def __post_init__(self) -> None:
        if not (self.latency_ms >= 0 and self.sharpe_interval_s > 0):
            raise ValueError("need latency_ms >= 0 and sharpe_interval_s > 0")


# -- the loop ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class BacktestLoop:
    """The engine, the fill model and the portfolio of one run, with the orders in flight."""

    settings: BotSettings
    config: BacktestConfig
    model: PaperFillModel = field(init=False)
    engine: QuoteEngine = field(init=False)
    portfolio: Portfolio = field(init=False)
    opens: dict[str, OpenOrder] = field(default_factory=dict)  # what the bot believes is resting
    inflight: deque[tuple[int, str, OrderRequest | None]] = field(default_factory=deque)
    fills: list[Fill] = field(default_factory=list)
    fill_mids: list[Decimal] = field(default_factory=list)
    filled_orders: set[str] = field(default_factory=set)
    placed: int = 0
    accepted: int = 0
    cancelled: int = 0
    rejected: int = 0
    closing: bool = False
    latency_ns: int = 0
    mid_bid: BookLevel | None = None  # best bid and ask of the last two-sided book
    mid_ask: BookLevel | None = None
    open_list: list[OpenOrder] | None = None  # `opens` as diff_orders takes them; None after a change
    open_keys: OrderKeys | None = None  # order_keys(open_list)
    tolerance: float = 0.0  # settings read once: a pydantic attribute costs on every event
    symbol: str = ""
    tick: Decimal = _ZERO
    lot: Decimal = _ZERO
    position: float = 0.0
    entry: float = math.nan
    cash: float = 0.0
    peak: float = 0.0

    def __post_init__(self) -> None:
        settings = self.settings
        self.model = PaperFillModel(
            settings.spec, settings.paper, random.Random(self.config.seed), fill_id_prefix="bt-"
        )
        self.engine = QuoteEngine(settings.engine_config())
        self.portfolio = Portfolio(
            symbol=settings.symbol, starting_balance=settings.paper.starting_balance_usd
        )
        self.cash = self.peak = float(self.portfolio.cash)
        self.latency_ns = round(self.config.latency_ms * _NS_PER_MS)
        self.tolerance = settings.strategy.price_tolerance_pct
        self.symbol = settings.symbol
        self.tick, self.lot = settings.spec.tick_size, settings.spec.lot_size

    # -- orders: sent now, acting `latency` later --------------------------------------------------
    def send(self, ts_ns: int, cid: str, request: OrderRequest | None) -> None:
        """Send a placement (`request`) or a cancel (None) of `cid`; it acts `latency_ms` later."""
        self.inflight.append((ts_ns + self.latency_ns, cid, request))

    def place(self, want: DesiredOrder, ts_ns: int, *, post_only: bool = True) -> None:
        self.placed += 1
        cid = f"bt-{self.placed}"
        request = OrderRequest(
            self.symbol,
            want.side,
            self.tick * want.price_ticks,
            self.lot * want.size_lots,
            cid,
            post_only=post_only,
            reduce_only=not post_only,
        )
        if post_only:
            self.opens[cid] = OpenOrder(cid, want.side, want.price_ticks, want.size_lots)
            self.open_list = None
        self.send(ts_ns, cid, request)

    def arrive(self, ts_ns: int) -> None:
        """Order actions whose latency has elapsed by `ts_ns` reach the fill model, in sending order."""
        inflight, model = self.inflight, self.model
        while inflight and inflight[0][0] <= ts_ns:
            arrive, cid, request = inflight.popleft()
            if request is None:
                if model.cancel(cid) is not None:
                    self.cancelled += 1
                continue
            if request.reduce_only:
                self.close(request, arrive)
                continue
            if model.submit(request, arrive, model.book).status is OrderStatus.REJECTED:
                self.rejected += 1
                self.opens.pop(cid, None)
                self.open_list = None
            else:
                self.accepted += 1

    def close(self, request: OrderRequest, ts_ns: int) -> None:
        """A reduce-only taker order, refused like the paper exchange does when it would grow the
        position; what the book could not take is cancelled at once (as the worker does)."""
        self.closing = False
        position = self.portfolio.position
        if not (position * request.side.sign < 0 and request.size <= abs(position)):
            self.rejected += 1
            return
        update = self.model.submit(request, ts_ns, self.model.book)
        if update.status is OrderStatus.REJECTED:
            self.rejected += 1
            return
        self.accepted += 1
        taken, self.model.immediate_fills = self.model.immediate_fills, []
        self.book_fills(taken)
        self.model.cancel(request.client_order_id)

    def book_fills(self, fills: list[Fill]) -> None:
        if not fills:
            return
        portfolio, lot = self.portfolio, self.lot
        for fill in fills:
            portfolio.apply(fill)
            self.fills.append(fill)
            self.fill_mids.append(self.mid())
            cid = fill.client_order_id
            self.filled_orders.add(cid)
            have = self.opens.get(cid)
            if have is not None:
                self.open_list = None
                left = have.size_lots - round(fill.size / lot)
                if left > 0:
                    self.opens[cid] = OpenOrder(cid, have.side, have.price_ticks, left)
                else:
                    del self.opens[cid]
        self.position = float(portfolio.position)
        self.entry = float(portfolio.avg_entry) if portfolio.position else math.nan
        self.cash = float(portfolio.cash)

    def mid(self) -> Decimal:
        """The exact mid of the last two-sided book (0 before one): the mark of fills and of the end."""
        bid, ask = self.mid_bid, self.mid_ask
        if bid is None or ask is None:
            return _ZERO
        return (bid.price + ask.price) / _TWO

    # -- one market step ---------------------------------------------------------------------------
    def step(self, book: BookUpdate, trades: list[Trade]) -> float:
        """Process one step; returns the mid it quoted on (nan on a book that is not quotable)."""
        ts_ns = book.ts_ns
        if self.inflight:
            self.arrive(ts_ns)
        if book.bids and book.asks:
            self.mid_bid = book.bids[0]
            self.mid_ask = book.asks[0]
        model = self.model
        fills = model.on_book(book)
        for trade in trades:
            fills += model.on_trade(trade)
        self.book_fills(fills)

        top = book.top()
        mid = top.mid
        position = self.position
        unrealized = position * (mid - self.entry) if position else 0.0
        equity = self.cash + unrealized
        self.peak = max(self.peak, equity)
        decision = self.engine.on_book(
            top, Inventory(position, self.entry, unrealized, equity, self.peak), ts_ns
        )
        opens = self.open_list
        if opens is None:
            opens = self.open_list = list(self.opens.values())
            self.open_keys = order_keys(opens)
        diff = diff_orders(opens, list(decision.orders), self.tolerance, self.open_keys)
        for cid in diff.cancels:
            del self.opens[cid]
            self.open_list = None
            self.send(ts_ns, cid, None)
        for want in diff.places:
            self.place(want, ts_ns)
        if decision.close_position and position and not self.closing:
            self.send_close(book, ts_ns)
        return mid

    def send_close(self, book: BookUpdate, ts_ns: int) -> None:
        position = self.portfolio.position
        lots = round(abs(position) / self.lot)
        levels = book.bids if position > 0 else book.asks
        if lots == 0 or not levels:
            return
        side = Side.SELL if position > 0 else Side.BUY
        price_ticks = int(levels[-1].price / self.tick)
        self.closing = True
        self.place(DesiredOrder(side, price_ticks, lots, 0), ts_ns, post_only=False)


pickling.register(BacktestConfig)
