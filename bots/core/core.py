"""The bot core: events in, actions out. Synchronous, no I/O, no clock, no asyncio.

It owns the quote engine, the portfolio, the resting orders, the risk trips, the signal latch (inside
the engine) and the blending of gamma/kappa from regime probabilities. Its only clock is the time the
events carry: a book's receipt time, a timer's. The live/paper/sim worker and every backtest, sweep
and tuner check drive this same object, and perform its actions (`bots.core.actions`) through an
exchange or a fill model; what came of them returns as events:

    book        -> on_book      -> cancels and post-only placements (the diff), a close, a risk record
    public trade-> on_trade        (counted: the recorded trade intensity; with `kappa: auto`, its depth
                                   from the mid feeds the A exp(-kappa delta) fit, refitted per timer)
    fill        -> on_fill         (committed by the driver first: a fill counts once it is durable)
    funding     -> on_funding   -> a funding record (a payment on our position: cash and PnL move)
    funding rate-> on_funding_rate (the funding skew's input)
    ack/reject  -> on_placed / on_rejected / on_cancelled / on_all_cancelled
    timer       -> on_timer     -> a quiet market's requote (stale data cancels all), the records
    regime      -> on_regime       (probabilities from `ml`'s inference on the recorded features,
                                   smoothed over time here: `bots.core.blend.smooth`)
    command     -> start / stop / reconfigure

Compiled by mypyc with the engine (`make native`): `on_book` is the per-event path of every backtest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from bots.core.actions import (
    Action,
    Cancel,
    CancelAll,
    Place,
    RecordEnabled,
    RecordFunding,
    RecordMarket,
    RecordMarkouts,
    RecordOrders,
    RecordPeak,
    RecordRisk,
)
from bots.core.blend import blend, smooth
from bots.core.config import CoreConfig
from bots.core.features import market_features
from bots.core.markouts import FillMarkouts
from bots.core.orders import OrderIds, RestingOrders
from bots.engine.intensity import IntensityEstimate, IntensityEstimator
from bots.engine.orders import OpenOrder, diff_orders
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import Inventory, QuoteDecision, QuoteEngine
from bots.engine.risk import RiskState
from bots.engine.types import DesiredOrder, Side
from bots.exchange.events import BookUpdate, Fill, FundingPayment, FundingRate, OrderUpdate, Trade

__all__ = ["BotCore", "JournalEntry"]

JournalEntry = tuple[str, tuple[object, ...], list[Action]]  # (method, its arguments, the actions)
_NAN: Final = math.nan
_TWO: Final = Decimal(2)
_ONE: Final = Decimal(1)


class BotCore:
    """One bot's decisions on one symbol. Drivers call the `on_*` methods in event order and perform
    the actions each returns, in order (cancels before placements)."""

    def __init__(
        self,
        config: CoreConfig,
        engine: QuoteEngine,
        portfolio: Portfolio,
        ids: OrderIds,
        *,
        enabled: bool = True,
        peak_equity: float = _NAN,
    ) -> None:
        self.config = config
        self.engine = engine
        self.portfolio = portfolio
        self.ids = ids
        self.orders = RestingOrders(config.symbol, config.keep_order_log)
        self.enabled = enabled
        self.position = 0.0  # float mirrors of the portfolio for the per-event path
        self.entry = _NAN
        self.cash = 0.0
        self._mirror_portfolio()
        self.peak = self.cash if math.isnan(peak_equity) else peak_equity
        self.inventory = Inventory()
        self.last_book: BookUpdate | None = None
        self.last_decision: QuoteDecision | None = None
        self.probabilities: dict[str, float] | None = None  # smoothed; None: no model answers
        self.regime_ns = 0  # event time of the last probabilities
        self.funding_rate: FundingRate | None = None  # the venue's newest, None before one
        self.decided_ns = 0  # event time of the last decision
        self.recorded_ns = 0  # event time of the last record
        self.now_ns = 0  # the newest event time seen
        self.trades = 0  # public trades since the last record (its trade intensity)
        self.trades_since_ns = 0  # exchange time that count started; 0 before the first record
        self.intensity: IntensityEstimator | None = None  # the fit behind kappa/A auto
        self.fitted: IntensityEstimate | None = None  # its latest answer (None: the fallback values)
        self.trade_ns = 0  # exchange time of the newest public trade
        self._mid = _NAN  # the mid of the newest quotable book: trade depths are measured from it
        self.close_requested = False  # an operator's stop-and-close, until flat or out of attempts
        self.close_attempts_left = 0
        self.other_store: str | None = None  # why another store's orders keep us from quoting
        self.closing: str | None = None  # the client order id of the close in flight
        self.risk_recorded = self._risk_key()
        self.journal: list[JournalEntry] | None = None  # every event and its actions, when a test asks
        self.markouts = FillMarkouts(config.name)
        self._tick = self._lot = Decimal(0)
        self._tolerance = self._layer_tolerance = 0.0
        self._refresh_ns = self._record_ns = 0
        self._record_markouts = True
        self._read(config)

    def _read(self, config: CoreConfig) -> None:
        """The config values every event reads, into plain attributes (compiled: native fields)."""
        self.config = config
        self._tick = config.tick_size
        self._lot = config.lot_size
        self._tolerance = config.price_tolerance_pct
        self._layer_tolerance = config.price_tolerance_per_layer_pct
        self._refresh_ns = config.refresh_interval_ns
        self._record_ns = config.record_interval_ns
        estimator = self.intensity
        if not config.fits_intensity:
            self.intensity = self.fitted = None
        elif estimator is None or estimator.config != config.intensity:
            self.intensity = IntensityEstimator(config.intensity)
            self.fitted = None
        self._record_markouts = config.record_markouts

    # ----- market events -------------------------------------------------------------------------

    def on_book(self, book: BookUpdate, received_ns: int) -> list[Action]:
        """A new book, received at `received_ns` (the worker's clock; a backtest's book time)."""
        self.last_book = book
        self.now_ns = received_ns
        actions = self._decide(book, received_ns)
        if self._record_markouts and self.markouts.pending:  # a backtest: off, one native test per book
            self._markouts(book.ts_ns, actions)
        if self.journal is not None:
            self.journal.append(("on_book", (book, received_ns), actions))
        return actions

    def on_trade(self, trade: Trade) -> None:
        self.trades += 1
        estimator = self.intensity
        if estimator is not None:
            mid = self._mid
            if mid > 0.0:
                estimator.add(trade.ts_ns, abs(float(trade.price) - mid) / mid)
            self.trade_ns = max(self.trade_ns, trade.ts_ns)
        if self.journal is not None:
            self.journal.append(("on_trade", (trade,), []))

    def on_fill(self, fill: Fill) -> None:
        """A fill of ours, already durable where the driver keeps money records; its markouts come due
        on the books after it (unless the config leaves them to the driver: a backtest's batch form)."""
        if self._record_markouts:
            book, decision = self.last_book, self.last_decision
            if book is not None and decision is not None:
                self.markouts.add(fill, book.ts_ns, decision.mid)
            else:
                self.markouts.add(fill, 0, _NAN)
        self.portfolio.apply(fill)
        self._mirror_portfolio()
        self.orders.fill(fill, self._lot)
        if self.journal is not None:
            self.journal.append(("on_fill", (fill,), []))

    def on_funding(self, payment: FundingPayment) -> list[Action]:
        """A funding payment on our position (already durable where the driver keeps money records):
        into cash and the funding component of PnL."""
        self.portfolio.apply_funding(payment)
        self._mirror_portfolio()
        actions: list[Action] = [RecordFunding(payment, self.portfolio.funding)]
        if self.journal is not None:
            self.journal.append(("on_funding", (payment,), actions))
        return actions

    def on_funding_rate(self, rate: FundingRate) -> None:
        """The venue's current funding rate: the funding skew uses it from the next decision."""
        self.funding_rate = rate
        self.engine.funding_rate_per_s = rate.rate_per_s
        if self.journal is not None:
            self.journal.append(("on_funding_rate", (rate,), []))

    # ----- what became of our requests -----------------------------------------------------------

    def on_placed(self, client_order_id: str, update: OrderUpdate) -> list[Action]:
        """The exchange accepted a placement. A close is immediate-or-cancel: what rests is cancelled."""
        actions: list[Action] = []
        if client_order_id != self.closing:
            self.orders.acknowledged(client_order_id, update)
        else:
            if self.orders.keep_log:
                self.orders.log.append(update)
            if update.status.is_final:
                self.closing = None
            else:
                actions.append(Cancel(client_order_id))
        if self.journal is not None:
            self.journal.append(("on_placed", (client_order_id, update), actions))
        return actions

    def on_rejected(self, client_order_id: str) -> None:
        if self.journal is not None:
            self.journal.append(("on_rejected", (client_order_id,), []))
        if client_order_id == self.closing:
            self.closing = None
        self.orders.drop(client_order_id)

    def on_cancelled(self, client_order_id: str) -> None:
        """A cancel we sent was done (or the order was already gone)."""
        if self.journal is not None:
            self.journal.append(("on_cancelled", (client_order_id,), []))
        self.orders.cancelled(client_order_id, self.now_ns)
        if client_order_id == self.closing:
            self.closing = None

    def on_cancel_failed(self, client_order_id: str) -> None:
        """A cancel that did not go through (the call kept failing): the order counts as resting
        again, and the next decision sees it."""
        if self.journal is not None:
            self.journal.append(("on_cancel_failed", (client_order_id,), []))
        self.orders.cancel_failed(client_order_id)
        if client_order_id == self.closing:
            self.closing = None

    def on_not_sent(self, client_order_id: str) -> None:
        """A placement the driver dropped unsent (a cancel before it in the same decision failed)."""
        if self.journal is not None:
            self.journal.append(("on_not_sent", (client_order_id,), []))
        self.orders.drop(client_order_id)

    def on_send_failed(self, client_order_id: str) -> None:
        """A placement whose fate is unknown (the call kept failing): a quote stays tracked until the
        diff or a reconciliation settles it; a close is no longer waited for."""
        if self.journal is not None:
            self.journal.append(("on_send_failed", (client_order_id,), []))
        if client_order_id == self.closing:
            self.closing = None

    def on_order_gone(self, client_order_id: str) -> None:
        """The exchange no longer has an order we tracked (found by reconciliation)."""
        self.on_rejected(client_order_id)

    def on_all_cancelled(self) -> None:
        """A cancel-all was done: nothing of ours rests."""
        if self.journal is not None:
            self.journal.append(("on_all_cancelled", (), []))
        for cid in [*self.orders.orders, *self.orders.cancelling]:
            self.orders.cancelled(cid, self.now_ns)
        self.closing = None

    # ----- time ----------------------------------------------------------------------------------

    def on_timer(self, now_ns: int) -> list[Action]:
        """A quiet market is requoted (on stale data that cancels every order); records are due."""
        self.now_ns = now_ns
        actions: list[Action] = []
        book = self.last_book
        if book is not None and now_ns - self.decided_ns >= self._refresh_ns:
            actions = self._decide(book, now_ns)
        if now_ns - self.recorded_ns >= self._record_ns:
            self.recorded_ns = now_ns
            self._records(now_ns, actions)
        if self.intensity is not None and book is not None:
            self._refit(book.ts_ns)
        if self.journal is not None:
            self.journal.append(("on_timer", (now_ns,), actions))
        return actions

    def _refit(self, book_ts_ns: int) -> None:
        """The intensity fit as of the newest exchange time seen; applies from the next decision."""
        estimator = self.intensity
        if estimator is not None:
            self.fitted = estimator.fit(max(book_ts_ns, self.trade_ns))
            self._blend()

    # ----- the regime model and the operator -----------------------------------------------------

    def on_regime(self, probabilities: Mapping[str, float] | None) -> None:
        """Regime probabilities (None: no usable model), smoothed with time constant
        `regime_smoothing_ns` of event time; the blend applies from the next decision."""
        tau = self.config.regime_smoothing_ns
        if probabilities is None or tau == 0:
            self.probabilities = dict(probabilities) if probabilities is not None else None
        else:
            dt = self.now_ns - self.regime_ns
            weight = -math.expm1(-dt / tau) if dt > 0 else 0.0
            self.probabilities = smooth(self.probabilities, probabilities, weight)
        self.regime_ns = self.now_ns
        self._blend()
        if self.journal is not None:
            self.journal.append(
                ("on_regime", (dict(probabilities) if probabilities is not None else None,), [])
            )

    def start(self) -> list[Action]:
        """An operator's start: trading enabled. A halt stays (`halt_reason`): only `reset_risk` lifts it."""
        self.enabled = True
        return [RecordEnabled(True)]

    def reset_risk(self) -> list[Action]:
        """An operator's reset of the halts: risk trips cleared, the peak equity re-armed at the equity
        now (else the drawdown from the old peak trips again at once), the other-store latch lifted
        (the driver checks the exchange again before the next decision)."""
        self.engine.risk_state = RiskState()
        self.other_store = None
        mark = self.mark()
        equity = self.portfolio.cash if mark is None else self.portfolio.equity(mark)
        self.peak = float(equity)
        actions: list[Action] = [RecordPeak(equity)]
        self._record_risk(actions)
        return actions

    def halt_reason(self) -> str | None:
        """Why the core will not quote even when enabled; None when nothing is latched."""
        state = self.engine.risk_state
        if self.other_store is not None:
            return self.other_store
        limits = self.engine.config.risk
        if state.drawdown_tripped:
            return (f"drawdown halt: equity fell {limits.max_drawdown_pct:.2%} or more below its peak"
                    f" {self.peak:.2f} USD (positions closed)")  # fmt: skip
        if state.breaker_tripped:
            return f"circuit breaker: unrealized loss beyond risk.max_loss_usd {limits.max_loss_usd:.2f} USD"
        return None

    def restore_halts(self, risk: RiskState, other_store: str | None) -> None:
        """The halts the driver kept across a restart (already recorded: nothing to record again)."""
        self.engine.risk_state = risk
        self.other_store = other_store
        self.risk_recorded = self._risk_key()

    def on_other_store(self, reason: str) -> None:
        """Orders of another store rest on our symbol and account: quote nothing until an operator's
        `reset_risk` (the next decision cancels our orders by id, never a cancel-all, which would
        cancel theirs, and records the halt)."""
        self.other_store = reason
        if self.journal is not None:
            self.journal.append(("on_other_store", (reason,), []))

    def stop(self, *, close: bool = False) -> list[Action]:
        """An operator's stop: no quotes, every order cancelled; with `close`, flatten with reduce-only
        taker orders on the next books, each sized from the fills known by then (up to `close_attempts`)."""
        self.enabled = False
        if close:
            self.close_requested = True
            self.close_attempts_left = self.config.close_attempts
        return [RecordEnabled(False), CancelAll()]

    def reconfigure(self, config: CoreConfig, engine: QuoteEngine) -> None:
        """New settings between two decisions (`engine` already carries the warmed-up indicators)."""
        if (config.name, config.symbol) != (self.config.name, self.config.symbol):
            raise ValueError("a core's name and symbol never change")
        self._read(config)
        self.engine = engine
        self._blend()

    def seed(self, mid: float, ts_ns: int) -> None:
        """Warm the indicators up with a recorded mid (no warm-up wait after a restart)."""
        self.engine.observe(mid, ts_ns, self.position == 0.0)

    def observe_peak(self, peak_equity: float) -> None:
        """The ledger's peak equity (it keeps the highest of every record)."""
        self.peak = max(self.peak, peak_equity)

    # ----- what the core knows -------------------------------------------------------------------

    def mark(self) -> Decimal | None:
        """The mid of the newest two-sided book, exact; None before one."""
        book = self.last_book
        if book is None or not book.bids or not book.asks:
            return None
        return (book.bids[0].price + book.asks[0].price) / _TWO

    def open_orders(self) -> list[OpenOrder]:
        return self.orders.open_orders()

    # ----- the decision --------------------------------------------------------------------------

    def _decide(self, book: BookUpdate, now_ns: int) -> list[Action]:
        """Engine, diff against what rests, the close when due; cancels first, then placements."""
        top = book.top()
        mid = top.mid
        if self.intensity is not None and top.is_quotable():
            self._mid = mid
        position = self.position
        cash = self.cash
        if not math.isnan(mid):
            unrealized = position * (mid - self.entry) if position else 0.0
            equity = cash + unrealized
            self.peak = max(self.peak, equity)
        else:
            unrealized = 0.0
            equity = cash
        inventory = Inventory(position, self.entry, unrealized, equity, self.peak)
        self.inventory = inventory
        decision = self.engine.on_book(top, inventory, now_ns)
        self.last_decision = decision
        self.decided_ns = now_ns
        quoting = self.enabled and self.other_store is None
        desired: list[DesiredOrder] = list(decision.orders) if quoting else []
        orders = self.orders
        diff = diff_orders(
            orders.open_orders(),
            desired,
            self._tolerance,
            orders.keys(),
            decision.max_bid_ticks,
            decision.min_ask_ticks,
            self._layer_tolerance,
        )
        actions: list[Action] = []
        for cid in diff.cancels:
            orders.cancel_sent(cid)
            actions.append(Cancel(cid))
        for want in diff.places:
            actions.append(self._place(want, now_ns))
        if self.risk_recorded != self._risk_key():
            self._record_risk(actions)
        if decision.close_position or self.close_requested:
            self._close(actions)
        return actions

    def _place(self, want: DesiredOrder, now_ns: int) -> Place:
        cid = self.ids.next()
        price_ticks, size_lots = want.price_ticks, want.size_lots
        self.orders.sent(
            OpenOrder(cid, want.side, price_ticks, size_lots),
            self._tick * price_ticks,
            self._lot * size_lots,
            now_ns,
        )
        return Place(cid, want.side, price_ticks, size_lots)

    def _close(self, actions: list[Action]) -> None:
        """A reduce-only order that takes liquidity, priced up to `close_slippage` beyond the touch of
        the newest book (rounded toward the book: still marketable); one in flight at a time."""
        position = self.portfolio.position
        lots = round(abs(position) / self._lot)
        if lots == 0:
            self.close_requested = False
            return
        book = self.last_book
        if self.closing is not None or book is None or not book.bids or not book.asks:
            return
        if self.close_requested and not self.close_attempts_left:
            self.close_requested = False
            return
        slippage = self.config.close_slippage
        if position > 0:
            side, limit = Side.SELL, book.bids[0].price * (_ONE - slippage)
        else:
            side, limit = Side.BUY, book.asks[0].price * (_ONE + slippage)
        cid = self.ids.next()
        self.closing = cid
        if self.close_requested:
            self.close_attempts_left -= 1
        actions.append(Place(cid, side, int(limit / self._tick), lots, post_only=False, reduce_only=True))

    def _markouts(self, ts_ns: int, actions: list[Action]) -> None:
        """The newest decision's mid (a two-sided book's) to the pending markouts; those due recorded."""
        decision = self.last_decision
        if decision is None or math.isnan(decision.mid):
            return
        done = self.markouts.on_mid(ts_ns, decision.mid)
        if done:
            actions.append(RecordMarkouts(tuple(done)))

    def _risk_key(self) -> tuple[bool, bool, str | None]:
        state = self.engine.risk_state
        return state.breaker_tripped, state.drawdown_tripped, self.other_store

    def _record_risk(self, actions: list[Action]) -> None:
        key = self._risk_key()
        if key != self.risk_recorded:
            self.risk_recorded = key
            actions.append(RecordRisk(key[0], key[1], key[2]))

    def _records(self, now_ns: int, actions: list[Action]) -> None:
        """Order states since the last record; equity and position at the mark; the market features."""
        if self.orders.log:
            actions.append(RecordOrders(self.orders.take_log()))
        mark = self.mark()
        book = self.last_book
        if mark is None or book is None or not self.config.record_market:
            return
        features = None
        decision = self.last_decision
        if decision is not None:
            # Public trades per second of exchange time since the last record (sim speed cannot inflate it).
            since, self.trades_since_ns = self.trades_since_ns, book.ts_ns
            trades, self.trades = self.trades, 0
            intensity = trades * 1e9 / (book.ts_ns - since) if 0 < since < book.ts_ns else None
            features = market_features(book, decision, intensity)
        actions.append(RecordMarket(now_ns, mark, self.portfolio.equity(mark), book.ts_ns, features))

    def _blend(self) -> None:
        """gamma, kappa and A for the next decision: the configured ones, kappa and A from the
        intensity fit when auto (and fitted), then blended by regime when a model answers."""
        config = self.config
        kappa, intensity_a = config.kappa, config.intensity_a
        fitted = self.fitted
        if fitted is not None:
            if config.kappa_auto:
                kappa = fitted.kappa
            if config.intensity_a_auto:
                intensity_a = fitted.intensity_a
        gamma = config.gamma
        probabilities = self.probabilities
        if config.regime_enabled and probabilities is not None:
            gamma, kappa = blend(
                probabilities, config.regime_params, default_gamma=gamma, default_kappa=kappa
            )
        self.engine.set_model(gamma, kappa, intensity_a)

    def _mirror_portfolio(self) -> None:
        portfolio = self.portfolio
        self.position = float(portfolio.position)
        self.entry = float(portfolio.avg_entry) if portfolio.position else _NAN
        self.cash = float(portfolio.cash)
