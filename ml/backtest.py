"""Backtests: a recorded or synthetic market through the bot's own engine and paper fill model.

Per market step, in the order a live bot meets it: order actions whose latency has elapsed reach the
fill model (placements, cancels), the fill model sees the new book and then the step's trades (fills
go to a `Portfolio`), then `QuoteEngine.on_book` decides, `diff_orders` turns that into cancels and
post-only placements, and those are sent: they act `latency_ms` later, at the first market event at or
after that time (the fill model meanwhile sees the book as of their arrival). A circuit-breaker close
is a reduce-only taker order at the far end of the visible book, sent with the same latency, as the
worker does. Nothing here copies the engine or the fill model: `QuoteEngine`, `diff_orders`,
`PaperFillModel` and `Portfolio` are the bot's own.

PnL is decomposed exactly (Decimal) over the fills, each with the mid of the book in force when it
filled: spread capture `sum(sign*(mid_f - price)*size)`, inventory PnL `q_T*mark - sum(sign*size*mid_f)`
(what the held inventory earned or lost as the mid moved), maker rebates and taker fees; the four sum
to the portfolio's equity change at the final mid. Sweeps over parameters: `ml.sweep`; files and
plots: `ml.report`.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

from bots.engine.orders import OpenOrder, diff_orders
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import Inventory, QuoteEngine
from bots.engine.types import DesiredOrder, Side
from bots.exchange.base import BookUpdate, Fill, OrderRequest, OrderStatus, Trade
from bots.exchange.factory import BUILTIN_START_PRICES
from bots.exchange.paper import PaperFillModel
from bots.exchange.sim import SimMarket, Step, read_recording
from ml.report import (
    BacktestResult,
    BacktestStats,
    EquityCurve,
    PnLBreakdown,
    max_drawdown,
    progress_bar,
    sharpe_ratio,
)
from settings.models import BotSettings

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "BacktestStats",
    "EquityCurve",
    "MarketSource",
    "PnLBreakdown",
    "RecordedMarket",
    "SyntheticMarket",
    "run_backtest",
]

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000
_SYNTHETIC_START_NS = 1_704_067_200 * _NS_PER_S  # 2024-01-01T00:00:00Z: a backtest is reproducible
_PROGRESS_EVERY = 2_048  # events between progress-bar updates
_ZERO = Decimal(0)
_TWO = Decimal(2)


# -- market sources ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SyntheticMarket:
    """`seconds` of the sim market of the bot's settings (`settings.sim`), seeded with `seed`."""

    seconds: float
    seed: int = 0

    def count(self, settings: BotSettings) -> int:
        return max(0, round(self.seconds / settings.sim.book_interval_s))

    def steps(self, settings: BotSettings) -> Iterator[Step]:
        sim = settings.sim
        market = SimMarket(
            settings.symbol,
            settings.spec,
            seed=self.seed,
            s0=sim.start_price or BUILTIN_START_PRICES.get(settings.symbol, 100.0),
            dt_s=sim.book_interval_s,
            sigma=sim.sigma,
            start_ns=_SYNTHETIC_START_NS,
            trade_intensity_a=sim.trade_intensity_a,
            trade_decay_k=sim.trade_decay_k,
        )
        return market.steps(self.count(settings))


@dataclass(frozen=True, slots=True)
class RecordedMarket:
    """A recording (`mmfleet record`, `write_recording`): the steps of the bot's symbol, in file order."""

    path: Path

    def count(self, settings: BotSettings) -> int | None:
        return None  # unknown without reading the file twice

    def steps(self, settings: BotSettings) -> Iterator[Step]:
        return read_recording(self.path, symbol=settings.symbol)


MarketSource = SyntheticMarket | RecordedMarket


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
class _Loop:
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
    mid: Decimal = _ZERO
    position: float = 0.0
    entry: float = math.nan
    cash: float = 0.0
    peak: float = 0.0

    def __post_init__(self) -> None:
        settings = self.settings
        self.model = PaperFillModel(
            settings.spec, settings.paper, random.Random(self.config.seed), fill_id_prefix="bt-"
        )
        self.engine = QuoteEngine(settings)
        self.portfolio = Portfolio(
            symbol=settings.symbol, starting_balance=settings.paper.starting_balance_usd
        )
        self.cash = self.peak = float(self.portfolio.cash)
        self.latency_ns = round(self.config.latency_ms * _NS_PER_MS)

    # -- orders: sent now, acting `latency` later --------------------------------------------------
    def send(self, ts_ns: int, cid: str, request: OrderRequest | None) -> None:
        """Send a placement (`request`) or a cancel (None) of `cid`; it acts `latency_ms` later."""
        self.inflight.append((ts_ns + self.latency_ns, cid, request))

    def place(self, want: DesiredOrder, ts_ns: int, *, post_only: bool = True) -> None:
        spec = self.settings.spec
        self.placed += 1
        cid = f"bt-{self.placed}"
        request = OrderRequest(
            self.settings.symbol,
            want.side,
            spec.tick_size * want.price_ticks,
            spec.lot_size * want.size_lots,
            cid,
            post_only=post_only,
            reduce_only=not post_only,
        )
        if post_only:
            self.opens[cid] = OpenOrder(cid, want.side, want.price_ticks, want.size_lots)
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
        portfolio, lot = self.portfolio, self.settings.spec.lot_size
        for fill in fills:
            portfolio.apply(fill)
            self.fills.append(fill)
            self.fill_mids.append(self.mid)
            cid = fill.client_order_id
            self.filled_orders.add(cid)
            have = self.opens.get(cid)
            if have is not None:
                left = have.size_lots - round(fill.size / lot)
                if left > 0:
                    self.opens[cid] = OpenOrder(cid, have.side, have.price_ticks, left)
                else:
                    del self.opens[cid]
        self.position = float(portfolio.position)
        self.entry = float(portfolio.avg_entry) if portfolio.position else math.nan
        self.cash = float(portfolio.cash)

    # -- one market step ---------------------------------------------------------------------------
    def step(self, book: BookUpdate, trades: list[Trade]) -> float:
        """Process one step; returns the mid it quoted on (nan on a book that is not quotable)."""
        ts_ns = book.ts_ns
        if self.inflight:
            self.arrive(ts_ns)
        if book.bids and book.asks:
            self.mid = (book.bids[0].price + book.asks[0].price) / _TWO
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
        tolerance = self.settings.strategy.price_tolerance_pct
        diff = diff_orders(list(self.opens.values()), list(decision.orders), tolerance)
        for cid in diff.cancels:
            del self.opens[cid]
            self.send(ts_ns, cid, None)
        for want in diff.places:
            self.place(want, ts_ns)
        if decision.close_position and position and not self.closing:
            self.send_close(book, ts_ns)
        return mid

    def send_close(self, book: BookUpdate, ts_ns: int) -> None:
        position = self.portfolio.position
        lots = round(abs(position) / self.settings.spec.lot_size)
        levels = book.bids if position > 0 else book.asks
        if lots == 0 or not levels:
            return
        side = Side.SELL if position > 0 else Side.BUY
        price_ticks = int(levels[-1].price / self.settings.spec.tick_size)
        self.closing = True
        self.place(DesiredOrder(side, price_ticks, lots, 0), ts_ns, post_only=False)


def run_backtest(
    settings: BotSettings,
    market: MarketSource,
    config: BacktestConfig | None = None,
    *,
    progress: bool = False,
) -> BacktestResult:
    """Replay `market` through the bot of `settings`; a rich progress bar when `progress`."""
    config = config or BacktestConfig()
    loop = _Loop(settings, config)
    ts: list[int] = []
    mids: list[float] = []
    positions: list[float] = []
    equities: list[float] = []
    events = 0
    bar = progress_bar("backtest", market.count(settings)) if progress else None
    try:
        for book, trades in market.steps(settings):
            mid = loop.step(book, trades)
            events += 1
            if not math.isnan(mid):
                ts.append(book.ts_ns)
                mids.append(mid)
                positions.append(loop.position)
                equities.append(loop.cash + (loop.position * (mid - loop.entry) if loop.position else 0.0))
            if bar is not None and events % _PROGRESS_EVERY == 0:
                bar(events)
    finally:
        if bar is not None:
            bar(-events)
    curve = EquityCurve(
        np.asarray(ts, dtype=np.int64),
        np.asarray(mids, dtype=np.float64),
        np.asarray(positions, dtype=np.float64),
        np.asarray(equities, dtype=np.float64),
    )
    return _result(loop, curve, events)


def _result(loop: _Loop, curve: EquityCurve, events: int) -> BacktestResult:
    fills, mids = loop.fills, loop.fill_mids
    spread = inventory = rebates = taker = volume = _ZERO
    for fill, mid in zip(fills, mids, strict=True):
        sign = fill.side.sign
        spread += sign * (mid - fill.price) * fill.size
        inventory -= sign * fill.size * mid
        volume += fill.price * fill.size
        if fill.is_taker:
            taker += fill.fee
        else:
            rebates -= fill.fee
    portfolio = loop.portfolio
    mark = loop.mid
    inventory += portfolio.position * mark
    breakdown = PnLBreakdown(spread, inventory, rebates, taker)
    total = portfolio.equity(mark) - portfolio.starting_balance
    seconds = (curve.ts_ns[-1] - curve.ts_ns[0]) / _NS_PER_S if len(curve.ts_ns) > 1 else 0.0
    drawdown_usd, drawdown_pct = max_drawdown(curve.equity)
    stats = BacktestStats(
        events=events,
        seconds=float(seconds),
        fills=len(fills),
        orders_placed=loop.accepted,
        orders_filled=len(loop.filled_orders),
        orders_cancelled=loop.cancelled,
        orders_rejected=loop.rejected,
        fill_rate=len(loop.filled_orders) / loop.accepted if loop.accepted else 0.0,
        volume_usd=float(volume),
        total_pnl_usd=float(total),
        spread_capture_usd=float(spread),
        inventory_pnl_usd=float(inventory),
        rebates_usd=float(rebates),
        taker_fees_usd=float(taker),
        sharpe=sharpe_ratio(
            curve.ts_ns, curve.equity, loop.config.sharpe_interval_s, float(portfolio.starting_balance)
        ),
        max_drawdown_usd=drawdown_usd,
        max_drawdown_pct=drawdown_pct,
        final_position=float(portfolio.position),
        mean_abs_position_usd=float(np.mean(np.abs(curve.position * curve.mid))) if len(curve.mid) else 0.0,
    )
    return BacktestResult(
        loop.settings,
        loop.config,
        stats,
        breakdown,
        fills,
        mids,
        curve,
        portfolio.starting_balance,
        mark,
        portfolio.position,
        total,
    )
