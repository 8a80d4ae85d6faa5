"""The asyncio main loop of one bot: book in, quotes out, fills into the ledger, metrics out.

Data flow per book event: fills first (durable in the ledger before they move the position), then the
engine's desired orders, then the diff against resting orders, then exchange calls. A timer recomputes
when the market is quiet (and cancels everything when data goes stale); a control task applies
commands and config versions between two quote cycles.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from functools import partial
from typing import TypeVar

from bots.control import WorkerExit, merged_settings, poll_control
from bots.engine.orders import OrderDiff, diff_orders
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import Inventory, QuoteDecision, QuoteEngine
from bots.engine.risk import RiskState
from bots.engine.types import DesiredOrder, Side
from bots.errors import Rejected, TransientExchangeError
from bots.exchange.base import BookUpdate, Exchange, Fill, OrderRequest
from bots.exchange.reconcile import Reconciling
from bots.metrics import BotMetrics
from bots.order_book import RestingOrders, _Resting
from bots.records import market_features, seed_from_history
from bots.regime_blend import RegimeBlend
from bots.retry import Backoff, error_kind, retrying
from bots.store import FeatureRow, Ledger
from settings.models import BotSettings

__all__ = ["BotWorker", "WorkerExit"]

log = logging.getLogger("mmfleet.worker")
T = TypeVar("T")

_NS_PER_S = 1_000_000_000
ENABLED_KEY = "trading_enabled"
_CLOSE_ATTEMPTS = 5
_CLOSE_SLIPPAGE = Decimal("0.01")  # a close may pay up to 1% beyond the touch, never more
RISK_KEY = "risk_state"


class BotWorker:
    """One bot on one symbol. Owns its engine, portfolio and resting orders; the exchange is injected."""

    def __init__(
        self,
        settings: BotSettings,
        exchange: Exchange,
        ledger: Ledger,
        metrics: BotMetrics,
        *,
        backoff: Backoff | None = None,
        reload_settings: Callable[[], BotSettings] | None = None,
    ) -> None:
        self.settings = settings
        self.exchange = exchange
        self.ledger = ledger
        self.metrics = metrics
        self.backoff = backoff or Backoff()
        self.reload_settings = reload_settings
        self.name = settings.name
        self.symbol = settings.symbol
        self.engine = QuoteEngine(settings.engine_config())
        self.portfolio = Portfolio(symbol=self.symbol, starting_balance=settings.paper.starting_balance_usd)
        self.orders = RestingOrders(self.name)  # what rests, our client order ids, the order log
        self.enabled = True
        self.peak_equity = Decimal(0)
        self.config_version = "file"
        self.last_book: BookUpdate | None = None
        self.last_decision: QuoteDecision | None = None
        self.started_ns = time.time_ns()
        self._cursor: str | None = None
        self._exit = WorkerExit.STOPPED
        self._stop = asyncio.Event()
        self._errors_in_a_row = 0
        self._persisted_risk: dict[str, bool] = {}
        self._last_quote_at = 0.0
        self._trades = 0  # public trades since the last feature record (its trade_intensity)
        self._trades_since_ns = 0  # exchange time that count started; 0 before the first record
        self.regime = RegimeBlend(settings)
        self._tick = settings.spec.tick_size
        self._lot = settings.spec.lot_size

    @property
    def resting(self) -> dict[str, _Resting]:
        return self.orders.resting

    # ----- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild state from the ledger, reconcile with the exchange, seed the indicators."""
        self.portfolio = self.ledger.restore_portfolio(
            self.name, self.symbol, self.settings.paper.starting_balance_usd
        )
        self._cursor = self.ledger.fill_cursor(self.name)
        self.enabled = bool(self.ledger.get_state(self.name, ENABLED_KEY, True))
        tripped = self.ledger.get_state(self.name, RISK_KEY, {}) or {}
        self.engine.risk_state = RiskState(**tripped)
        peak = self.ledger.peak_equity(self.name)
        self.peak_equity = peak if peak is not None else self.portfolio.cash
        applied = self.ledger.applied_config(self.name)
        if applied is not None:  # a rollout applied before this restart still holds
            self.apply_settings(merged_settings(self.settings, applied.config), str(applied.version))
        await self._sync_fills()
        await self._reconcile(starting=True)  # orders of a previous life, fills missed while down
        self._seed_indicators()
        self.metrics.set_config_version(self.config_version)
        self.metrics.max_position_usd.set(self.settings.risk.max_position_usd)
        log.info(
            "started",
            extra={
                "fields": {
                    "bot": self.name,
                    "position": str(self.portfolio.position),
                    "enabled": self.enabled,
                }
            },
        )

    def request_stop(self, exit_as: WorkerExit = WorkerExit.STOPPED) -> None:
        self._exit = exit_as
        self._stop.set()

    async def run(self) -> WorkerExit:
        """Trade until stopped; always leaves no order of ours resting."""
        await self.start()
        tasks = [
            asyncio.create_task(self._market_loop(), name="market"),
            asyncio.create_task(self._timer_loop(), name="timer"),
            asyncio.create_task(self._control_loop(), name="control"),
            asyncio.create_task(self._trade_loop(), name="trades"),
        ]
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
            await self.shutdown()
        return self._exit

    async def shutdown(self) -> None:
        """Cancel everything, take the last fills, persist a snapshot."""
        try:
            await self.cancel_everything()
            await self._sync_fills()
        finally:
            self._flush_orders()
            self.ledger.snapshot_position(self.name, self.portfolio, mark=self._mark())
            self._publish_orders()
            log.info(
                "stopped", extra={"fields": {"bot": self.name, "position": str(self.portfolio.position)}}
            )

    # ----- loops -----------------------------------------------------------------------------------

    async def _market_loop(self) -> None:
        async for update in self.exchange.stream_books(self.symbol):
            self.last_book = update
            self.metrics.last_book_ns = update.ts_ns
            await self._sync_fills()
            await self.quote(update)

    async def _trade_loop(self) -> None:
        """Count public trades for the recorded `trade_intensity`; the stream ending does not stop us."""
        async for _ in self.exchange.stream_trades(self.symbol):
            self._trades += 1
        await self._stop.wait()

    async def _timer_loop(self) -> None:
        """Quiet-market refresh, stale-data cancel, equity and feature records, lock heartbeat."""
        interval = self.settings.strategy.refresh_interval_s
        last_record = 0.0
        while True:
            await asyncio.sleep(interval)
            exchange = self.exchange
            if isinstance(exchange, Reconciling) and exchange.needs_reconcile:
                await self._reconcile(starting=False)  # after a reconnect or a call that may have happened
            quiet = time.monotonic() - self._last_quote_at >= interval
            if self.last_book is not None and quiet:  # a busy market already requotes on every book
                await self._sync_fills()
                await self.quote(self.last_book)
            now = time.monotonic()
            if now - last_record >= 1.0:
                last_record = now
                self._record()

    async def _control_loop(self) -> None:
        while True:
            await poll_control(self)
            await asyncio.sleep(0.25)

    # ----- quoting ---------------------------------------------------------------------------------

    def _mark(self) -> Decimal | None:
        if self.last_book is None or not self.last_book.bids or not self.last_book.asks:
            return None
        return (self.last_book.bids[0].price + self.last_book.asks[0].price) / 2

    def inventory(self, mark: Decimal) -> Inventory:
        entry = self.portfolio.entry_price
        equity = self.portfolio.equity(mark)
        self.peak_equity = max(self.peak_equity, equity)
        return Inventory(
            position_base=float(self.portfolio.position),
            entry_price=float(entry) if entry is not None else math.nan,
            unrealized_pnl_usd=float(self.portfolio.unrealized_pnl(mark)),
            equity_usd=float(equity),
            peak_equity_usd=float(self.peak_equity),
        )

    async def quote(self, update: BookUpdate) -> None:
        """One quote cycle on `update`: engine, diff, exchange calls, metrics."""
        started = time.perf_counter()
        self._last_quote_at = time.monotonic()
        book = update.top()
        mark = self._mark()
        inventory = self.inventory(mark) if mark is not None else Inventory()
        decision = self.engine.on_book(book, inventory, time.time_ns())
        desired: list[DesiredOrder] = list(decision.orders) if self.enabled else []
        diff = diff_orders(self.orders.open_orders(), desired, self.settings.strategy.price_tolerance_pct)
        self.metrics.tick_to_quote_seconds.observe(time.perf_counter() - started)
        self.last_decision = decision
        await self._execute(diff)
        self._persist_risk()
        if decision.close_position and self.portfolio.position != 0:
            await self.close_position(update)
        self._publish(decision, inventory)

    async def _execute(self, diff: OrderDiff) -> None:
        for coid in diff.cancels:
            await self._call(partial(self.exchange.cancel_order, self.symbol, coid))
            self._forget(coid)
        for want in diff.places:
            await self._place(want)

    def _forget(self, coid: str) -> None:
        self.orders.forget(coid)
        self.metrics.orders_cancelled.inc()

    async def _place(
        self, want: DesiredOrder, *, post_only: bool = True, reduce_only: bool = False
    ) -> str | None:
        """Place one order; its client order id, or None when it was rejected or could not be sent."""
        request = OrderRequest(
            symbol=self.symbol,
            side=want.side,
            price=self._tick * want.price_ticks,
            size=self._lot * want.size_lots,
            client_order_id=self.orders.next_coid(),
            post_only=post_only,
            reduce_only=reduce_only,
        )
        self.orders.sent(request, want)  # known before the call: a timeout may still have placed it
        try:
            update = await retrying(
                lambda: self.exchange.place_order(request), policy=self.backoff, on_error=self._count_error
            )
        except Rejected as exc:
            self.orders.drop(request.client_order_id)
            self.metrics.reject(exc.reason)
            log.info("rejected", extra={"fields": {"bot": self.name, "reason": exc.reason}})
            return None
        except TransientExchangeError:
            self._errors_in_a_row += 1
            return None
        self._errors_in_a_row = 0
        self.orders.acknowledged(request.client_order_id, update)
        self.metrics.orders_placed.inc()
        return request.client_order_id

    async def close_position(self, update: BookUpdate) -> None:
        """Flatten with reduce-only orders that take liquidity, priced up to `_CLOSE_SLIPPAGE` beyond the
        best price on the far side of a fresh book; what a thin book leaves is cancelled and retried."""
        book: BookUpdate | None = update
        for _ in range(_CLOSE_ATTEMPTS):
            await self._sync_fills()  # the position must include every fill before we size the close
            lots = round(abs(self.portfolio.position) / self._lot)
            if lots == 0 or book is None or not book.bids or not book.asks:
                break
            if self.portfolio.position > 0:
                side, limit = Side.SELL, book.bids[0].price * (1 - _CLOSE_SLIPPAGE)
            else:
                side, limit = Side.BUY, book.asks[0].price * (1 + _CLOSE_SLIPPAGE)
            price = int(limit / self._tick)  # rounds toward the book: still marketable
            coid = await self._place(DesiredOrder(side, price, lots, 0), post_only=False, reduce_only=True)
            await self._sync_fills()
            if coid is not None and coid in self.resting:
                await self._call(partial(self.exchange.cancel_order, self.symbol, coid))
                self._forget(coid)
            book = await self._call(partial(self.exchange.book, self.symbol))
        log.info(
            "closed position", extra={"fields": {"bot": self.name, "position": str(self.portfolio.position)}}
        )

    async def cancel_everything(self) -> None:
        await self._call(lambda: self.exchange.cancel_all(self.symbol))
        for coid in list(self.resting):
            self._forget(coid)

    # ----- fills and exchange calls ---------------------------------------------------------------

    async def _sync_fills(self) -> None:
        """New fills: into the ledger (committed) first, then into the portfolio and metrics."""
        result = await self._call(lambda: self.exchange.fills_since(self.symbol, self._cursor))
        if result is not None:
            self._book_fills(*result)

    def _book_fills(self, fills: Sequence[Fill], cursor: str | None) -> None:
        """Each fill committed before it counts; the cursor advances only after the whole batch, so a
        crash in between re-reads the batch and the ledger's idempotency drops what it already has."""
        for fill in fills:
            if self.ledger.record_fill(self.name, fill):
                self._apply_fill(fill)
        if cursor is not None and cursor != self._cursor:
            self._cursor = cursor
            self.ledger.set_fill_cursor(self.name, cursor)

    def _apply_fill(self, fill: Fill) -> None:
        self.portfolio.apply(fill)
        self.metrics.fills[fill.side].inc()
        self.metrics.fill_volume_usd.inc(float(fill.notional))
        if fill.fee < 0:
            self.metrics.maker_rebate_usd.inc(float(-fill.fee))
        self.orders.fill(fill, self._lot)

    async def _reconcile(self, *, starting: bool) -> None:
        """Agree with the exchange: missed fills, vanished orders, our orphans, and the position.

        Exchanges that cannot tell (sim, paper: a fresh in-process book) just get a cancel-all at start.
        An order with our bot tag that we do not track is ours from an earlier life: always cancelled.
        """
        if not isinstance(self.exchange, Reconciling):
            if starting:
                await self._call(lambda: self.exchange.cancel_all(self.symbol))
            return
        known = set() if starting else set(self.resting)
        exchange = self.exchange
        report = await self._call(lambda: exchange.reconcile(known, self._cursor))
        if report is None:
            return
        self._book_fills(report.fills, report.cursor)
        for coid in report.missing_client_order_ids:
            self.orders.drop(coid)
        for order in report.unknown_orders:
            coid = order.client_order_id
            if self.orders.is_ours(coid) and coid not in report.cancelled_unknown:
                await self._call(partial(self.exchange.cancel_order, self.symbol, coid))
        adjustment = report.adjustment_fill(self.portfolio.position, fill_id_prefix=f"reconcile-{self.name}")
        if adjustment is not None and self.ledger.record_fill(self.name, adjustment):
            log.warning(
                "position adjusted to the exchange's",
                extra={
                    "fields": {"bot": self.name, "size": str(adjustment.size), "side": adjustment.side.value}
                },
            )
            self._apply_fill(adjustment)

    def _count_error(self, exc: TransientExchangeError) -> None:
        self.metrics.error(error_kind(exc))
        log.warning("exchange error, retrying", extra={"fields": {"bot": self.name, "error": str(exc)}})

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """An exchange call with retries; None when it still fails (counted, logged, loop goes on)."""
        try:
            result = await retrying(call, policy=self.backoff, on_error=self._count_error)
        except TransientExchangeError:
            self._errors_in_a_row += 1
            return None
        self._errors_in_a_row = 0
        return result

    def readiness(self) -> str | None:
        """None when fit to trade: fresh market data and a reachable exchange; else the reason."""
        if self.last_book is None:
            return "no market data yet"
        age_s = (time.time_ns() - self.last_book.ts_ns) / _NS_PER_S
        if age_s > self.settings.risk.max_book_age_s:
            return f"market data {age_s:.1f}s old"
        if self._errors_in_a_row:
            return f"exchange failing ({self._errors_in_a_row} calls in a row)"
        return None

    # ----- records and metrics ---------------------------------------------------------------------

    def _persist_risk(self) -> None:
        state = self.engine.risk_state
        wanted = {"breaker_tripped": state.breaker_tripped, "drawdown_tripped": state.drawdown_tripped}
        if wanted != self._persisted_risk:
            self.ledger.set_state(self.name, RISK_KEY, wanted)
            self._persisted_risk = wanted

    def _flush_orders(self) -> None:
        """Order states go to the ledger in one transaction per second: they are history, not money
        (fills are written one by one, durably, before they count)."""
        self.ledger.record_orders(self.name, self.orders.take_log())

    def _record(self) -> None:
        """Once a second: equity (the ledger keeps the peak), position snapshot, market features."""
        self._flush_orders()
        mark = self._mark()
        if mark is None:
            return
        now = time.time_ns()
        self.peak_equity = max(self.peak_equity, self.ledger.record_equity(
            self.name, self.symbol, self.portfolio.equity(mark), ts_ns=now
        ))  # fmt: skip
        self.ledger.snapshot_position(self.name, self.portfolio, mark=mark, ts_ns=now)
        decision, book = self.last_decision, self.last_book
        if decision is None or book is None:
            return
        # Trades per second of exchange time since the last record (sim speed does not inflate it).
        since, self._trades_since_ns = self._trades_since_ns, book.ts_ns
        trades, self._trades = self._trades, 0
        intensity = trades * 1e9 / (book.ts_ns - since) if 0 < since < book.ts_ns else None
        features = market_features(book, decision, intensity)
        if features is None:
            return
        self.ledger.record_features(self.name, self.symbol, book.ts_ns, features)
        self.regime.observe(FeatureRow(self.name, self.symbol, book.ts_ns, features))
        if self.settings.ml.regime_enabled:
            self._blend_parameters()

    def _blend_parameters(self) -> None:
        """Once a second: hot-reload a newer model version, then quote with the regime-blended gamma/kappa."""
        gamma, kappa, probabilities, adopted = self.regime.parameters(self.settings, time.time())
        if adopted:
            self.metrics.set_model_version(str(self.regime.models.version))
        for name, child in self.metrics.regime_probability.items():
            child.set((probabilities or {}).get(name, 0.0))
        self.engine.gamma, self.engine.kappa = gamma, kappa

    def _seed_indicators(self) -> None:
        ticks = seed_from_history(
            self.engine, self.regime, self.ledger,
            symbol=self.symbol, bot=self.name, flat=self.portfolio.position == 0, now_ns=time.time_ns(),
        )  # fmt: skip
        if ticks:
            log.info("indicators seeded", extra={"fields": {"bot": self.name, "ticks": ticks}})

    def _publish(self, decision: QuoteDecision, inventory: Inventory) -> None:
        self.metrics.publish_cycle(
            decision,
            inventory,
            self.portfolio,
            gamma=self.engine.gamma,
            kappa=self.engine.kappa,
            breaker_tripped=self.engine.risk_state.breaker_tripped,
            enabled=self.enabled,
            tick=float(self._tick),
        )
        self._publish_orders()

    def _publish_orders(self) -> None:
        self.metrics.publish_open_orders(self.orders.sides())

    # ----- control ---------------------------------------------------------------------------------

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self.ledger.set_state(self.name, ENABLED_KEY, enabled)
        if enabled:
            self.engine.risk_state = RiskState()  # an operator's start clears the trips
            self._persist_risk()

    def apply_settings(self, settings: BotSettings, version: str) -> None:
        """Swap settings between two cycles; warmed-up indicators survive when their windows are equal."""
        if settings.instrument is None:  # live: keep the tick and lot the exchange gave at start
            settings = settings.model_copy(update={"instrument": self.settings.instrument})
        self.regime.reconfigure(self.settings, settings)
        self.settings = settings
        self.engine = self.engine.reconfigured(settings.engine_config())
        self.config_version = version
        self.metrics.set_config_version(version)
        self.metrics.max_position_usd.set(settings.risk.max_position_usd)
        log.info("config applied", extra={"fields": {"bot": self.name, "version": version}})
