"""The bot's Prometheus metrics: DESIGN's vocabulary, prefix `mmfleet_`, labels bot/symbol/mode.

Each worker owns a `CollectorRegistry` (one bot per process; tests may build several side by side).
Label children are created once at start, so the hot loop only calls `.set()`/`.inc()`. Market data
age is computed at scrape time by a collector, so it is never stale itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bots.core.markouts import FillMarkout
from bots.engine.markouts import MARKOUT_HORIZONS_S
from bots.engine.portfolio import Portfolio
from bots.engine.quoter import Inventory, QuoteDecision
from bots.engine.risk import drawdown_ratio
from bots.engine.types import OrderKind, Side, Signal, TradingState
from bots.errors import RejectReason

__all__ = [
    "MARKOUT_BPS_BUCKETS",
    "MARKOUT_USD_BUCKETS",
    "REGIMES",
    "TICK_TO_QUOTE_BUCKETS",
    "BotMetrics",
    "CycleState",
    "horizon_label",
]

disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series double the exposition and no dashboard uses them

# 10 us .. 100 ms, roughly x2.5 per bucket.
TICK_TO_QUOTE_BUCKETS: Final = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 1e-1,
)  # fmt: skip
# Markouts are signed (negative: the mid went against us), so the buckets are too, finer near zero.
MARKOUT_BPS_BUCKETS: Final = (
    -50.0,
    -20.0,
    -10.0,
    -5.0,
    -2.0,
    -1.0,
    -0.5,
    0.0,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    50.0,
)
MARKOUT_USD_BUCKETS: Final = (
    -100.0, -30.0, -10.0, -3.0, -1.0, -0.3, -0.1, 0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0,
)  # fmt: skip
REGIMES: Final = ("trending", "ranging", "volatile")
ERROR_KINDS: Final = ("unavailable", "timeout", "rate_limited", "rejected", "other")
LABELS: Final = ("bot", "symbol", "mode")


def horizon_label(horizon_s: float) -> str:
    """A markout horizon as its metric label: "1s", "10s", "60s"."""
    return f"{horizon_s:g}s"


class _MarketDataAge(Collector):
    """`mmfleet_market_data_age_seconds` read at scrape time from the last book's exchange timestamp."""

    def __init__(self, labels: tuple[str, str, str], last_book_ns: Callable[[], int]) -> None:
        self._labels = list(labels)
        self._last_book_ns = last_book_ns

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "mmfleet_market_data_age_seconds", "Seconds since the last order book event.", labels=LABELS
        )
        last = self._last_book_ns()
        age = max(0.0, (time.time_ns() - last) / 1e9) if last else float("inf")
        family.add_metric(self._labels, age)
        yield family


@dataclass(frozen=True, slots=True)
class CycleState:
    """What a scrape reads of the bot beside its last decision: the worker builds it when asked, from
    objects the loop replaces rather than changes (the inventory) or single attributes (atomic reads)."""

    inventory: Inventory
    portfolio: Portfolio
    gamma: float
    kappa: float
    breaker_tripped: bool
    enabled: bool
    tick: float
    intensity_a: float
    intensity_fitted: bool


@dataclass(frozen=True, slots=True)
class _Cycle:
    """The last quote cycle as one scrape reads it."""

    decision: QuoteDecision
    now: CycleState

    @property
    def state(self) -> TradingState:
        return self.decision.state if self.now.enabled else TradingState.HALTED

    def in_state(self, state: TradingState) -> float:
        return float(self.state is state)

    def latched(self, signal: Signal) -> float:
        return float(self.decision.latched is signal)

    def quote_price(self, side: Side, kind: OrderKind, layer: int) -> float:
        """The desired price of that quote; NaN when the cycle wants none there."""
        for order in self.decision.orders if self.now.enabled else ():
            if order.side is side and order.kind is kind and order.layer == layer:
                return order.price_ticks * self.now.tick
        return math.nan


def _drawdown(now: CycleState) -> float:
    return drawdown_ratio(now.inventory.equity_usd, now.inventory.peak_equity_usd)


class BotMetrics:
    """Every metric of one bot, label children resolved at construction. What a quote cycle knows is
    read at scrape time (`publish_decision` only keeps the decision): a book event sets no gauge."""

    def __init__(  # noqa: PLR0915  # one statement per metric
        self, registry: CollectorRegistry, bot: str, symbol: str, mode: str, grid_layers: int
    ) -> None:
        self.registry = registry
        self.last_book_ns = 0
        base = (bot, symbol, mode)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"mmfleet_{name}", doc, LABELS, registry=registry)

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(f"mmfleet_{name}", doc, (*LABELS, *extra), registry=registry)

        self.position_base = gauge("position_base", "Position in base currency (negative = short).").labels(
            *base
        )
        self.position_usd = gauge("position_usd", "Position marked at mid, USD.").labels(*base)
        self.max_position_usd = gauge(
            "max_position_usd", "risk.max_position_usd in use: the largest |position|, USD (0 = unset)."
        ).labels(*base)
        self.equity_usd = gauge("equity_usd", "Cash plus position marked at mid, USD.").labels(*base)
        self.peak_equity_usd = gauge("peak_equity_usd", "Highest equity seen, USD.").labels(*base)
        self.drawdown_ratio = gauge("drawdown_ratio", "Fraction of equity lost from the peak.").labels(*base)
        self.realized_pnl_usd = gauge("realized_pnl_usd", "Realized PnL (average cost), USD.").labels(*base)
        self.unrealized_pnl_usd = gauge("unrealized_pnl_usd", "Unrealized PnL at mid, USD.").labels(*base)
        self.grid_profit_usd = gauge("grid_profit_usd", "FIFO grid profit of closing fills, USD.").labels(
            *base
        )
        self.mid_price = gauge("mid_price", "Order book mid price.").labels(*base)
        self.reservation_price = gauge("reservation_price", "A-S reservation price.").labels(*base)
        self.optimal_spread = gauge("optimal_spread", "Quoted total spread, fraction of mid.").labels(*base)
        self.volatility = gauge("volatility", "Sigma of log returns per sqrt(second).").labels(*base)
        self.gamma = gauge("gamma", "Risk aversion in use.").labels(*base)
        self.kappa = gauge("kappa", "Order book liquidity in use.").labels(*base)
        quote_price = Gauge(
            "mmfleet_quote_price", "Desired quote price per side and layer (NaN when none).",
            (*LABELS, "side", "layer", "kind"), registry=registry,
        )  # fmt: skip
        self.quote_price = {
            (side, kind, layer): quote_price.labels(*base, side.value, str(layer), kind.value)
            for side in Side
            for kind in OrderKind
            for layer in range(grid_layers if kind is OrderKind.GRID else 2)
        }
        self.model_spread = gauge(
            "model_spread", "The model's total spread before the spread_pct floor, fraction of mid."
        ).labels(*base)
        self.spread_floor_binding = gauge(
            "spread_floor_binding", "1 while the spread_pct floor, not the model, sets the quoted spread."
        ).labels(*base)
        self.intensity_a = gauge(
            "intensity_a", "Arrival intensity A in use (trades per second per side at the mid)."
        ).labels(*base)
        self.intensity_fitted = gauge(
            "intensity_fitted", "1 while kappa/A come from the fit of recent trades (auto), 0 otherwise."
        ).labels(*base)
        # Absent, not 0, while no model answers: a 0 would read as "certainly not this regime".
        self._regime_probability = Gauge(
            "mmfleet_regime_probability",
            "Regime probability the gamma/kappa blend uses (the smoothed posterior); absent without a model.",
            (*LABELS, "regime"),
            registry=registry,
        )
        self._regimes_shown: set[str] = set()
        self.regime_model_loaded = gauge(
            "regime_model_loaded", "1 while a usable regime model is loaded (ml.regime_enabled), else 0."
        ).labels(*base)
        latched = Gauge(
            "mmfleet_signal_latched",
            "1 while a signal is latched on this side.",
            (*LABELS, "side"),
            registry=registry,
        )
        self.signal_latched = {
            signal: latched.labels(*base, signal.value) for signal in (Signal.BUY, Signal.SELL)
        }
        orders_open = Gauge("mmfleet_orders_open", "Resting orders.", (*LABELS, "side"), registry=registry)
        self.orders_open = {side: orders_open.labels(*base, side.value) for side in Side}
        self.orders_placed = counter("orders_placed", "Orders accepted by the exchange.").labels(*base)
        self.orders_cancelled = counter("orders_cancelled", "Orders cancelled.").labels(*base)
        self._orders_rejected = counter("orders_rejected", "Orders rejected, by reason.", ("reason",))
        self.orders_rejected = {r: self._orders_rejected.labels(*base, r) for r in RejectReason}
        fills = counter("fills", "Fills received.", ("side",))
        self.fills = {side: fills.labels(*base, side.value) for side in Side}
        self.fill_volume_usd = counter("fill_volume_usd", "Filled notional, USD.").labels(*base)
        self.maker_rebate_usd = counter("maker_rebate_usd", "Maker rebates received, USD.").labels(*base)
        self.store_queue_writes = gauge(
            "store_queue_writes", "Writes waiting for the bot's store thread (fills, records, acks)."
        ).labels(*base)
        self.store_unconfirmed_fills = gauge(
            "store_unconfirmed_fills", "Fills handed to the store thread, not committed yet (not applied)."
        ).labels(*base)
        self.store_records_dropped = counter(
            "store_records_dropped_total", "Market records dropped while the store queue was full."
        ).labels(*base)
        self.store_halted = gauge(
            "store_halted", "1 while quoting is halted because fills wait for the ledger past the bound."
        ).labels(*base)
        self.funding_paid_usd = counter(
            "funding_paid_usd", "Funding paid on the position, USD (longs pay shorts at a positive rate)."
        ).labels(*base)
        self.funding_received_usd = counter(
            "funding_received_usd", "Funding received on the position, USD."
        ).labels(*base)
        self.funding_pnl_usd = gauge(
            "funding_pnl_usd", "Funding received minus paid over the ledger's history, USD."
        ).labels(*base)
        self.funding_rate = gauge(
            "funding_rate", "The venue's funding rate per interval, fraction of notional (> 0: longs pay)."
        ).labels(*base)
        self.funding_interval_seconds = gauge(
            "funding_interval_seconds", "Seconds between funding settlements of the symbol."
        ).labels(*base)
        self.tick_to_quote_seconds = Histogram(
            "mmfleet_tick_to_quote_seconds", "Book event in to desired orders out.", LABELS,
            buckets=TICK_TO_QUOTE_BUCKETS, registry=registry,
        ).labels(*base)  # fmt: skip
        markout_labels = (*LABELS, "side", "horizon")
        markout_bps = Histogram(
            "mmfleet_fill_markout_bps", "Mid move after each fill, signed for us (negative: against us).",
            markout_labels, buckets=MARKOUT_BPS_BUCKETS, registry=registry,
        )  # fmt: skip
        markout_usd = Histogram(
            "mmfleet_fill_markout_usd", "Mid move after each fill times its size, signed for us, USD.",
            markout_labels, buckets=MARKOUT_USD_BUCKETS, registry=registry,
        )  # fmt: skip
        # prometheus_client exposes no `_sum` for a histogram with negative buckets: the sum is its own gauge
        markout_pnl = Gauge(
            "mmfleet_markout_pnl_usd", "Sum of the fills' markouts since the bot started (signed for us).",
            markout_labels, registry=registry,
        )  # fmt: skip
        self.fill_markout = {
            (side, horizon): (
                markout_bps.labels(*base, side.value, horizon_label(horizon)),
                markout_usd.labels(*base, side.value, horizon_label(horizon)),
                markout_pnl.labels(*base, side.value, horizon_label(horizon)),
            )
            for side in Side
            for horizon in MARKOUT_HORIZONS_S
        }
        errors = counter("exchange_errors", "Exchange errors, by kind.", ("kind",))
        self.exchange_errors = {k: errors.labels(*base, k) for k in ERROR_KINDS}
        self.circuit_breaker_tripped = gauge(
            "circuit_breaker_tripped", "1 when the max-loss breaker tripped."
        ).labels(*base)
        self.trading_enabled = gauge("trading_enabled", "1 when the bot may place orders.").labels(*base)
        self.other_store_orders = gauge(
            "other_store_orders",
            "Orders of another mmfleet store resting on this bot's account and symbol at the last look"
            " (any: the bot halts until reset-risk).",
        ).labels(*base)
        self.trading_state = Gauge(
            "mmfleet_trading_state", "1 for the current trading state.", (*LABELS, "state"), registry=registry
        )
        self._state_children = {s: self.trading_state.labels(*base, s.value) for s in TradingState}
        self._config_info = Gauge(
            "mmfleet_config_info", "Config version in use (value 1).", (*LABELS, "version"), registry=registry
        )
        self._model_info = Gauge(
            "mmfleet_model_info",
            "Regime model version in use (value 1).",
            (*LABELS, "version"),
            registry=registry,
        )
        self._base = base
        self.set_config_version("none")
        self.set_model_version("none")
        registry.register(_MarketDataAge(base, lambda: self.last_book_ns))
        self._decision: QuoteDecision | None = None
        self._read_cycle: Callable[[], CycleState] | None = None
        self._priced: QuoteDecision | None = None  # the last decision with a mid
        self._spread: QuoteDecision | None = None  # the last decision with a model spread
        self._open = (0, 0)  # resting buys, sells
        self._read_at_scrape()

    def _read_at_scrape(self) -> None:
        """Bind the cycle's gauges to the last decision (`publish_decision`) and the bot's state as
        `watch_cycle` reads it."""

        def cycle(child: Gauge, read: Callable[[_Cycle], float], idle: float = 0.0) -> None:
            child.set_function(lambda: read(c) if (c := self._scraped()) is not None else idle)

        def now(child: Gauge, read: Callable[[CycleState], float]) -> None:
            cycle(child, lambda c: read(c.now))

        def priced(child: Gauge, read: Callable[[QuoteDecision], float]) -> None:
            child.set_function(lambda: read(d) if (d := self._priced) is not None else 0.0)

        def spread(child: Gauge, read: Callable[[QuoteDecision], float]) -> None:
            child.set_function(lambda: read(d) if (d := self._spread) is not None else 0.0)

        def position_usd(c: _Cycle) -> float:
            mid = c.decision.mid
            return c.now.inventory.position_base * mid if not math.isnan(mid) else 0.0

        now(self.position_base, lambda n: n.inventory.position_base)
        cycle(self.position_usd, position_usd)
        now(self.equity_usd, lambda n: n.inventory.equity_usd)
        now(self.peak_equity_usd, lambda n: n.inventory.peak_equity_usd)
        now(
            self.drawdown_ratio, lambda n: drawdown_ratio(n.inventory.equity_usd, n.inventory.peak_equity_usd)
        )
        now(self.realized_pnl_usd, lambda n: float(n.portfolio.realized_pnl))
        now(self.unrealized_pnl_usd, lambda n: n.inventory.unrealized_pnl_usd)
        now(self.grid_profit_usd, lambda n: float(n.portfolio.grid_profit))
        now(self.gamma, lambda n: n.gamma)
        now(self.kappa, lambda n: n.kappa)
        now(self.circuit_breaker_tripped, lambda n: float(n.breaker_tripped))
        now(self.intensity_a, lambda n: n.intensity_a)
        now(self.intensity_fitted, lambda n: float(n.intensity_fitted))
        cycle(self.trading_enabled, lambda c: float(c.now.enabled and c.state is not TradingState.HALTED))
        priced(self.mid_price, lambda d: d.mid)
        priced(self.reservation_price, lambda d: d.reservation_price)
        priced(self.optimal_spread, lambda d: d.spread_pct)
        priced(self.volatility, lambda d: d.sigma)
        spread(self.model_spread, lambda d: d.model_spread_pct)
        spread(self.spread_floor_binding, lambda d: float(d.floor_binds))
        for signal, child in self.signal_latched.items():
            cycle(child, partial(_Cycle.latched, signal=signal))
        for state, child in self._state_children.items():
            cycle(child, partial(_Cycle.in_state, state=state))
        for (side, kind, layer), child in self.quote_price.items():
            cycle(child, partial(_Cycle.quote_price, side=side, kind=kind, layer=layer), idle=math.nan)
        self.orders_open[Side.BUY].set_function(lambda: self._open[0])
        self.orders_open[Side.SELL].set_function(lambda: self._open[1])

    def reject(self, reason: RejectReason) -> None:
        """Count a rejection; the reasons are a closed set, so the label set stays bounded."""
        self.orders_rejected[reason].inc()

    def observe_markouts(self, markouts: Iterable[FillMarkout]) -> None:
        """Each markout into its side's and horizon's histograms (bps and USD) and running sum (USD)."""
        for markout in markouts:
            children = self.fill_markout.get((markout.side, markout.horizon_s))
            if children is not None:
                children[0].observe(markout.bps)
                children[1].observe(markout.usd)
                children[2].inc(markout.usd)

    def error(self, kind: str) -> None:
        self.exchange_errors.get(kind, self.exchange_errors["other"]).inc()

    def watch_store(self, depth: Callable[[], int], unconfirmed_fills: Callable[[], int]) -> None:
        """The store thread's backlog, read at scrape time."""
        self.store_queue_writes.set_function(depth)
        self.store_unconfirmed_fills.set_function(unconfirmed_fills)

    def set_config_version(self, version: str) -> None:
        self._config_info.clear()
        self._config_info.labels(*self._base, version).set(1.0)

    def set_model_version(self, version: str) -> None:
        self._model_info.clear()
        self._model_info.labels(*self._base, version).set(1.0)

    def publish_regime(self, probabilities: Mapping[str, float] | None, *, loaded: bool) -> None:
        """The blend's regime probabilities: a series per known regime, none at all without them."""
        self.regime_model_loaded.set(1.0 if loaded else 0.0)
        family, base, shown = self._regime_probability, self._base, self._regimes_shown
        for name in REGIMES:
            p = probabilities.get(name) if probabilities is not None else None
            if p is not None:
                family.labels(*base, name).set(p)
                shown.add(name)
            elif name in shown:
                family.remove(*base, name)
                shown.discard(name)

    def watch_cycle(self, read: Callable[[], CycleState]) -> None:
        """How a scrape reads the bot's state beside its last decision (the worker's, from its core)."""
        self._read_cycle = read

    def publish_decision(self, decision: QuoteDecision) -> None:
        """The last quote cycle's decision, kept for the scrape: the gauges read it when Prometheus
        asks (every few seconds), not on every book event. Prices stay at the last decision that had a
        mid, the model spread at the last one that had one."""
        self._decision = decision
        if not math.isnan(decision.mid):
            self._priced = decision
        if not math.isnan(decision.model_spread_pct):
            self._spread = decision

    def _scraped(self) -> _Cycle | None:
        decision, read = self._decision, self._read_cycle
        return _Cycle(decision, read()) if decision is not None and read is not None else None

    def publish_funding(self, amount_usd: float, funding_pnl_usd: float) -> None:
        """One funding payment booked (`amount_usd` > 0 received, < 0 paid) and the funding total."""
        if amount_usd < 0:
            self.funding_paid_usd.inc(-amount_usd)
        elif amount_usd > 0:
            self.funding_received_usd.inc(amount_usd)
        self.funding_pnl_usd.set(funding_pnl_usd)

    def publish_funding_rate(self, rate: float, interval_s: float) -> None:
        self.funding_rate.set(rate)
        self.funding_interval_seconds.set(interval_s)

    def publish_open_orders(self, sides: Iterable[Side]) -> None:
        """The resting orders per side, read at scrape time."""
        buys = sells = 0
        for side in sides:
            if side is Side.BUY:
                buys += 1
            else:
                sells += 1
        self._open = (buys, sells)
