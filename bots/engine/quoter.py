"""One bot's quoting brain: book event in, desired orders out. Stateful (indicators), but no I/O, no clock.

Per event: volatility and regime update in O(1), the model's reservation price and spread, the spread
floor, inventory skew, the grid with boost and entry anchor, then risk: state, reduce-only, limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bots.engine import avellaneda
from bots.engine.indicators import LogReturnVolatility
from bots.engine.quoting import build_quotes, entry_anchor, lots_for_notional
from bots.engine.regime import RegimeTracker, RegimeView
from bots.engine.risk import RiskState, assess, clamp_to_limit, inventory_skew, keep_reducing
from bots.engine.types import Book, DesiredOrder, Signal, TradingState
from settings.models import BotSettings

__all__ = ["Inventory", "QuoteDecision", "QuoteEngine"]

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Inventory:
    """What the bot holds, as the ledger says: position in base units, money in USD."""

    position_base: float = 0.0
    entry_price: float = math.nan
    unrealized_pnl_usd: float = 0.0
    equity_usd: float = 0.0
    peak_equity_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class QuoteDecision:
    """The engine's answer to one book event, with everything a metric or a log line needs."""

    orders: tuple[DesiredOrder, ...]
    state: TradingState
    close_position: bool
    reasons: tuple[str, ...]
    mid: float = math.nan
    reservation_price: float = math.nan
    spread_pct: float = math.nan
    sigma: float = math.nan
    gamma: float = math.nan
    kappa: float = math.nan
    signal: Signal = Signal.NEUTRAL
    latched: Signal = Signal.NEUTRAL


class QuoteEngine:
    """Avellaneda-Stoikov (or GLFT) quoting with grid, regime filter, latch and risk, for one symbol."""

    __slots__ = (
        "_dt_s",
        "_last_ts_ns",
        "_lot",
        "_min_lots",
        "_regime",
        "_tick",
        "_vol",
        "gamma",
        "kappa",
        "risk_state",
        "settings",
    )

    def __init__(self, settings: BotSettings) -> None:
        self.settings = settings
        spec = settings.spec
        self._tick = float(spec.tick_size)
        self._lot = float(spec.lot_size)
        self._min_lots = math.ceil(spec.effective_min_size / spec.lot_size)
        self._vol = LogReturnVolatility(settings.strategy.volatility_window_ticks)
        self._regime = RegimeTracker(settings.strategy)
        self._dt_s = math.nan  # smoothed seconds between book events, to scale per-tick sigma
        self._last_ts_ns = 0
        self.gamma = settings.strategy.gamma
        self.kappa = settings.strategy.kappa
        self.risk_state = RiskState()

    def reconfigured(self, settings: BotSettings) -> QuoteEngine:
        """An engine on new settings that keeps the warmed-up indicators when their parameters are equal."""
        engine = QuoteEngine(settings)
        old, new = self.settings.strategy, settings.strategy
        if old.volatility_window_ticks == new.volatility_window_ticks:
            engine._vol, engine._dt_s, engine._last_ts_ns = self._vol, self._dt_s, self._last_ts_ns
        if (old.trend_strategy, old.filters) == (new.trend_strategy, new.filters):
            engine._regime = self._regime
        engine.risk_state = self.risk_state
        return engine

    def sigma(self) -> float:
        """Volatility of log returns per sqrt(second); nan until the window is full."""
        per_tick = self._vol.value
        if not self._dt_s > 0:
            return math.nan
        return per_tick / math.sqrt(self._dt_s)

    def observe(self, mid: float, ts_ns: int, position_is_flat: bool = True) -> RegimeView:
        """Feed one mid price to the indicators (also used to seed them from history)."""
        if self._last_ts_ns and ts_ns > self._last_ts_ns:
            dt = (ts_ns - self._last_ts_ns) / _NS_PER_S
            alpha = 2.0 / (self.settings.strategy.volatility_window_ticks + 1)
            self._dt_s = dt if math.isnan(self._dt_s) else self._dt_s + alpha * (dt - self._dt_s)
        self._last_ts_ns = ts_ns
        self._vol.update(mid)
        return self._regime.update(mid, position_is_flat)

    def on_book(self, book: Book, inventory: Inventory, now_ns: int) -> QuoteDecision:
        """Desired orders for this book; none on a stale, crossed, empty or NaN book."""
        strategy = self.settings.strategy
        risk = self.settings.risk
        if not book.is_quotable():
            return self._no_quotes("book not quotable (crossed, empty or NaN)")
        if now_ns - book.ts_ns > risk.max_book_age_s * _NS_PER_S:
            return self._no_quotes(f"book older than {risk.max_book_age_s}s: stale")
        mid = book.mid
        position_lots = round(inventory.position_base / self._lot)
        view = self.observe(mid, book.ts_ns, position_lots == 0)
        reasons: list[str] = []
        sigma = self.sigma()
        if math.isnan(sigma):
            reasons.append("volatility warming up: sigma taken as 0")
            sigma = 0.0

        position_usd = inventory.position_base * mid
        q = position_usd / strategy.order_size_usd
        gamma, kappa = self.gamma, self.kappa
        if strategy.model == "glft":
            half = avellaneda.glft_half_spread(gamma, sigma, kappa, strategy.glft_intensity_a)
            reservation = 1.0 - avellaneda.glft_skew(gamma, sigma, kappa, strategy.glft_intensity_a) * q
            model_spread = 2.0 * half
        else:
            reservation = avellaneda.reservation_price(1.0, q, gamma, sigma, strategy.horizon_s)
            model_spread = avellaneda.optimal_spread(gamma, sigma, strategy.horizon_s, kappa)
        spread = max(model_spread, strategy.spread_pct)  # spread_pct is a floor, never a cap
        half_spread = 0.5 * spread
        skew = inventory_skew(position_usd, risk.max_position_usd, risk.inventory_skew_factor)
        center = mid * (reservation - skew * half_spread)

        verdict = assess(
            risk,
            self.risk_state,
            position_usd,
            inventory.unrealized_pnl_usd,
            inventory.equity_usd,
            inventory.peak_equity_usd,
        )
        self.risk_state = verdict.risk_state
        reasons.extend(verdict.reasons)
        orders: list[DesiredOrder] = []
        size_lots = lots_for_notional(strategy.order_size_usd, mid, self._lot)
        if size_lots < self._min_lots:
            reasons.append(f"order_size_usd {strategy.order_size_usd} is below the minimum size")
        elif verdict.state is not TradingState.HALTED:
            tolerance = (
                strategy.loss_tolerance_signal_pct
                if view.latched is not Signal.NEUTRAL
                else strategy.loss_tolerance_neutral_pct
            )
            anchor = (
                entry_anchor(position_lots, inventory.entry_price, tolerance, self._tick)
                if strategy.entry_anchor_mode
                else None
            )
            orders = build_quotes(
                strategy=strategy,
                mid=mid,
                center=center,
                half_spread=half_spread,
                tick=self._tick,
                size_lots=size_lots,
                best_bid_ticks=round(book.bid_price / self._tick),
                best_ask_ticks=round(book.ask_price / self._tick),
                signal=view.latched,
                anchor=anchor,
            )
            reducing = verdict.state is TradingState.REDUCING
            if reducing:
                orders = keep_reducing(orders, position_lots)
            max_lots = math.floor(risk.max_position_usd / mid / self._lot + 1e-9)
            orders = clamp_to_limit(orders, position_lots, max_lots, reducing)
        return QuoteDecision(
            orders=tuple(orders),
            state=verdict.state,
            close_position=verdict.close_position,
            reasons=tuple(reasons),
            mid=mid,
            reservation_price=mid * reservation,
            spread_pct=spread,
            sigma=sigma,
            gamma=gamma,
            kappa=kappa,
            signal=view.raw,
            latched=view.latched,
        )

    def _no_quotes(self, reason: str) -> QuoteDecision:
        """Bad market data: want no orders resting, but leave the risk state as it was."""
        tripped = self.risk_state.breaker_tripped or self.risk_state.drawdown_tripped
        state = TradingState.HALTED if tripped else TradingState.ACTIVE
        return QuoteDecision(orders=(), state=state, close_position=False, reasons=(reason,))
