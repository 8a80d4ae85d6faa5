"""One backtest's event loop: the bot's own core (`bots.core.core.BotCore`) driven through the paper fill
model with order latency, as the worker drives it through an exchange.

Per market step, in the order a live bot meets it: order actions whose latency has elapsed reach the
fill model (placements, cancels; their acknowledgements return to the core), the fill model sees the
new book and then the step's trades (fills go to the core), then the core decides on the book and its
actions are sent: they act `latency_ms` later, at the first market event at or after that time (the
fill model meanwhile sees the book as of their arrival). A timer event follows every
`strategy.refresh_interval_s` of market time, as in the worker; with `ml.regime_enabled` its market
record feeds the regime model, whose probabilities return to the core as an event. Nothing here
decides: the core does. Funding (`settings.sim.funding`, `bots.exchange.sim.funding`) settles on the
core's position at each funding time the market passes, at the exact mid of the last two-sided book,
as a funding event to the core; its rate (which moves once a market minute) reaches the core at the
timer event after it moved (the funding skew's input). Compiled by mypyc (`make native`): this is the
per-event path of every backtest, sweep and tuner run.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Final, Protocol

from bots.core.actions import Action, Cancel, CancelAll, Place, RecordFunding, RecordMarket
from bots.core.core import BotCore
from bots.core.orders import OrderIds
from bots.engine import pickling
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import QuoteEngine
from bots.exchange.events import (
    BookLevel,
    BookUpdate,
    Fill,
    FundingPayment,
    FundingRate,
    OrderRequest,
    OrderStatus,
    Trade,
)
from bots.exchange.paper import PaperFillModel
from bots.exchange.sim.funding import FundingParams, FundingProcess
from bots.store.ledger import FeatureRow
from settings.models import BotSettings

__all__ = ["BacktestConfig", "BacktestLoop", "RegimeInference"]

_NS_PER_MS: Final = 1_000_000
_ZERO: Final = Decimal(0)
_TWO: Final = Decimal(2)
_ALL: Final = ""  # the client order id of a cancel-all in flight


class RegimeInference(Protocol):
    """Regime probabilities from recorded feature rows (`ml.live_regime.LiveRegime`)."""

    def observe(self, row: FeatureRow) -> None: ...

    def probabilities(self, now_s: float) -> dict[str, float] | None: ...


# -- configuration -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestConfig:
    """How to run: order-entry latency, the fill model's seed (touch fills), Sharpe sampling, and the
    queue-position fill model (on by default: a trade fills what rests only after the visible size
    ahead of it; off: the bot's `paper.queue_model` decides)."""

    latency_ms: float = 0.0
    seed: int = 0
    sharpe_interval_s: float = 60.0
    queue_model: bool = True

    def __post_init__(self) -> None:
        if not (self.latency_ms >= 0 and self.sharpe_interval_s > 0):
            raise ValueError("need latency_ms >= 0 and sharpe_interval_s > 0")


# -- the loop ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class BacktestLoop:
    """The bot core, the fill model and the orders in flight of one run. `regime` (with
    `ml.regime_enabled`) answers probabilities at `model_time_s`, the wall-clock time a model's age is
    judged at (the run's start: a backtest replays the past with today's model)."""

    settings: BotSettings
    config: BacktestConfig
    regime: RegimeInference | None = None
    model_time_s: float = 0.0
    model: PaperFillModel = field(init=False)
    core: BotCore = field(init=False)
    inflight: deque[tuple[int, str, OrderRequest | None]] = field(default_factory=deque)
    fills: list[Fill] = field(default_factory=list)
    fill_mids: list[Decimal] = field(default_factory=list)
    funding: list[FundingPayment] = field(default_factory=list)
    funding_process: FundingProcess | None = None  # started at the first book's time
    funding_next_ns: int = 0  # the next funding time (0 before the first book)
    filled_orders: set[str] = field(default_factory=set)
    placed: int = 0
    accepted: int = 0
    cancelled: int = 0
    rejected: int = 0
    latency_ns: int = 0
    timer_ns: int = 0  # market time of the last timer event
    refresh_ns: int = 0
    mid_bid: BookLevel | None = None  # best bid and ask of the last two-sided book
    mid_ask: BookLevel | None = None
    symbol: str = ""
    tick: Decimal = _ZERO
    lot: Decimal = _ZERO

    def __post_init__(self) -> None:
        settings = self.settings
        paper = settings.paper
        if self.config.queue_model and not paper.queue_model:
            paper = paper.model_copy(update={"queue_model": True})
        self.model = PaperFillModel(
            settings.spec, paper, random.Random(self.config.seed), fill_id_prefix="bt-"
        )
        regime = settings.ml.regime_enabled and self.regime is not None
        # markouts come from the run's mid curve afterwards (`bots.engine.markouts.markouts_at`): the same
        # figures as the core's streaming ones, at no cost per event
        core_config = replace(
            settings.core_config(keep_order_log=False, record_market=regime), record_markouts=False
        )
        portfolio = Portfolio(symbol=settings.symbol, starting_balance=settings.paper.starting_balance_usd)
        self.core = BotCore(core_config, QuoteEngine(settings.engine_config()), portfolio, OrderIds(0, 0, 0))
        if not regime:
            self.regime = None
        self.latency_ns = round(self.config.latency_ms * _NS_PER_MS)
        self.refresh_ns = core_config.refresh_interval_ns
        self.symbol = settings.symbol
        self.tick, self.lot = core_config.tick_size, core_config.lot_size

    @property
    def portfolio(self) -> Portfolio:
        return self.core.portfolio

    # -- one market step ---------------------------------------------------------------------------
    def step(self, book: BookUpdate, trades: list[Trade]) -> float:
        """Process one step; returns the mid it quoted on (nan on a book that is not quotable)."""
        ts_ns = book.ts_ns
        if ts_ns >= self.funding_next_ns:
            self.settle_funding(ts_ns)
        if self.inflight:
            self.arrive(ts_ns)
        if book.bids and book.asks:
            self.mid_bid = book.bids[0]
            self.mid_ask = book.asks[0]
        core, model = self.core, self.model
        fills = model.on_book(book)
        for trade in trades:
            fills += model.on_trade(trade)
            core.on_trade(trade)
        if fills:
            self.book_fills(fills)
        actions = core.on_book(book, ts_ns)
        if actions:
            self.perform(actions, ts_ns)
        if ts_ns - self.timer_ns >= self.refresh_ns:
            self.timer_ns = ts_ns
            self.funding_rate(ts_ns)
            actions = core.on_timer(ts_ns)
            if actions:
                self.perform(actions, ts_ns)
        return book.top().mid

    # -- funding ---------------------------------------------------------------------------------------
    def settle_funding(self, ts_ns: int) -> None:
        """The funding times passed by `ts_ns`: each settles the core's position at the last mid (a flat
        position pays nothing and gets no payment, as on GRVT)."""
        process = self.funding_process
        if process is None:
            process = self.funding_process = FundingProcess(
                FundingParams.from_settings(self.settings.sim.funding), seed=self.config.seed, start_ns=ts_ns
            )
            self.funding_rate(ts_ns)
        for settlement in process.advance(ts_ns):
            position, mark = self.portfolio.position, self.mid()
            if position == 0 or mark == 0:
                continue
            payment_id = f"bt-funding-{settlement.ts_ns}"
            payment = FundingPayment.settled(
                payment_id, self.symbol, settlement.ts_ns, position, mark, settlement.rate
            )
            for action in self.core.on_funding(payment):
                if isinstance(action, RecordFunding):
                    self.funding.append(action.payment)
        self.funding_next_ns = process.next_funding_ns

    def funding_rate(self, ts_ns: int) -> None:
        """The funding rate at `ts_ns`, to the core when it moved (the skew reads it)."""
        process = self.funding_process
        if process is None:
            return
        process.advance(ts_ns)  # no funding time can pass here: step() settles them first
        known = self.core.funding_rate
        if known is None or known.ts_ns != process.ts_ns:
            rate = FundingRate(self.symbol, process.ts_ns, process.decimal_rate(), process.interval_s)
            self.core.on_funding_rate(rate)

    # -- the core's actions: sent now, acting `latency` later --------------------------------------
    def perform(self, actions: list[Action], ts_ns: int) -> None:
        for action in actions:
            if isinstance(action, Place):
                self.placed += 1
                request = OrderRequest(
                    self.symbol,
                    action.side,
                    self.tick * action.price_ticks,
                    self.lot * action.size_lots,
                    action.client_order_id,
                    post_only=action.post_only,
                    reduce_only=action.reduce_only,
                )
                self.inflight.append((ts_ns + self.latency_ns, action.client_order_id, request))
            elif isinstance(action, Cancel):
                self.inflight.append((ts_ns + self.latency_ns, action.client_order_id, None))
            elif isinstance(action, CancelAll):
                self.inflight.append((ts_ns + self.latency_ns, _ALL, None))
            elif isinstance(action, RecordMarket):
                self.regime_event(action)

    def regime_event(self, record: RecordMarket) -> None:
        """The market record feeds the regime model; its probabilities return to the core."""
        regime = self.regime
        if regime is None or record.features is None:
            return
        regime.observe(FeatureRow(self.core.config.name, self.symbol, record.book_ts_ns, record.features))
        self.core.on_regime(regime.probabilities(self.model_time_s))

    def arrive(self, ts_ns: int) -> None:
        """Order actions whose latency has elapsed by `ts_ns` reach the fill model, in sending order."""
        inflight, model, core = self.inflight, self.model, self.core
        while inflight and inflight[0][0] <= ts_ns:
            arrive, cid, request = inflight.popleft()
            if request is None:
                if cid == _ALL:
                    self.cancelled += len(model.cancel_all())
                    core.on_all_cancelled()
                    continue
                if model.cancel(cid) is not None:
                    self.cancelled += 1
                core.on_cancelled(cid)
                continue
            if request.reduce_only:
                self.close(request, arrive)
                continue
            update = model.submit(request, arrive, model.book)
            if update.status is OrderStatus.REJECTED:
                self.rejected += 1
                core.on_rejected(cid)
            else:
                self.accepted += 1
                actions = core.on_placed(cid, update)
                if actions:
                    self.perform(actions, arrive)

    def close(self, request: OrderRequest, ts_ns: int) -> None:
        """A reduce-only taker order, refused like the paper exchange does when it would grow the
        position; what the book could not take rests until the core's cancel arrives."""
        cid = request.client_order_id
        position = self.portfolio.position
        if not (position * request.side.sign < 0 and request.size <= abs(position)):
            self.rejected += 1
            self.core.on_rejected(cid)
            return
        update = self.model.submit(request, ts_ns, self.model.book)
        if update.status is OrderStatus.REJECTED:
            self.rejected += 1
            self.core.on_rejected(cid)
            return
        self.accepted += 1
        taken, self.model.immediate_fills = self.model.immediate_fills, []
        self.book_fills(taken)
        actions = self.core.on_placed(cid, update)
        if actions:
            self.perform(actions, ts_ns)

    def book_fills(self, fills: list[Fill]) -> None:
        core = self.core
        mid = self.mid()
        for fill in fills:
            core.on_fill(fill)
            self.fills.append(fill)
            self.fill_mids.append(mid)
            self.filled_orders.add(fill.client_order_id)

    def mid(self) -> Decimal:
        """The exact mid of the last two-sided book (0 before one): the mark of fills and of the end."""
        bid, ask = self.mid_bid, self.mid_ask
        if bid is None or ask is None:
            return _ZERO
        return (bid.price + ask.price) / _TWO


pickling.register(BacktestConfig)
