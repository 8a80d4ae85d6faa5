"""One bot's quoting brain: book event in, desired orders out. Stateful (indicators), but no I/O, no clock.

Per event: volatility and regime update in O(1), the model's reservation price and spread, the spread
floor, inventory skew, the grid with boost and entry anchor, then risk: state, reduce-only, limit.

`on_book` runs on every book event, so it is written for speed with the same arithmetic as the pieces
it stands for (`avellaneda`, `risk.assess`, `quoting.entry_anchor`/`build_quotes`, `risk.keep_reducing`/
`clamp_to_limit`): settings are read once into slots at construction (a config change builds a new
engine with `reconfigured`), the model terms that depend only on gamma and kappa are recomputed when
those change, and the common cases (risk all clear, every order within the limit) skip the general code,
which still decides every other case. `tests/unit/test_quoter_fast_path.py` holds it to the pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

from bots.engine import pickling
from bots.engine.indicators import LogReturnVolatility
from bots.engine.quoting import grid_steps, nearest_int, quote_sides
from bots.engine.regime import RegimeTracker, RegimeView
from bots.engine.risk import CLEAR, RiskState, assess, clamp_to_limit, keep_reducing
from bots.engine.types import Book, DesiredOrder, Signal, TradingState
from settings.models import BotSettings

__all__ = ["Inventory", "QuoteDecision", "QuoteEngine"]

_NS_PER_S: Final = 1_000_000_000
_EPS: Final = 1e-9  # as in quoting: guards float division before floor/ceil
_INF: Final = math.inf
_NAN: Final = math.nan
_ACTIVE: Final[TradingState] = TradingState.ACTIVE
_HALTED: Final[TradingState] = TradingState.HALTED
_REDUCING: Final[TradingState] = TradingState.REDUCING
_NEUTRAL: Final[Signal] = Signal.NEUTRAL
_WARMING_UP: Final = ("volatility warming up: sigma taken as 0",)


@mypyc_attr(acyclic=True, free_list_len=1)
@dataclass(slots=True, init=False, unsafe_hash=True)
class Inventory:
    """What the bot holds, as the ledger says: position in base units, money in USD. Built on every
    book event, so the constructor is written out (see `bots.engine.types`); treat it as immutable."""

    position_base: float
    entry_price: float
    unrealized_pnl_usd: float
    equity_usd: float
    peak_equity_usd: float

    def __init__(
        self,
        position_base: float = 0.0,
        entry_price: float = math.nan,
        unrealized_pnl_usd: float = 0.0,
        equity_usd: float = 0.0,
        peak_equity_usd: float = 0.0,
    ) -> None:
        self.position_base = position_base
        self.entry_price = entry_price
        self.unrealized_pnl_usd = unrealized_pnl_usd
        self.equity_usd = equity_usd
        self.peak_equity_usd = peak_equity_usd


@mypyc_attr(acyclic=True, free_list_len=1)
@dataclass(slots=True, init=False, unsafe_hash=True)
class QuoteDecision:
    """The engine's answer to one book event, with everything a metric or a log line needs. One per
    book event, so the constructor is written out (see `bots.engine.types`); treat it as immutable."""

    orders: tuple[DesiredOrder, ...]
    state: TradingState
    close_position: bool
    reasons: tuple[str, ...]
    mid: float
    reservation_price: float
    spread_pct: float
    sigma: float
    gamma: float
    kappa: float
    signal: Signal
    latched: Signal

    def __init__(
        self,
        orders: tuple[DesiredOrder, ...],
        state: TradingState,
        close_position: bool,
        reasons: tuple[str, ...],
        mid: float = math.nan,
        reservation_price: float = math.nan,
        spread_pct: float = math.nan,
        sigma: float = math.nan,
        gamma: float = math.nan,
        kappa: float = math.nan,
        signal: Signal = Signal.NEUTRAL,
        latched: Signal = Signal.NEUTRAL,
    ) -> None:
        self.orders = orders
        self.state = state
        self.close_position = close_position
        self.reasons = reasons
        self.mid = mid
        self.reservation_price = reservation_price
        self.spread_pct = spread_pct
        self.sigma = sigma
        self.gamma = gamma
        self.kappa = kappa
        self.signal = signal
        self.latched = latched


class QuoteEngine:
    """Avellaneda-Stoikov (or GLFT) quoting with grid, regime filter, latch and risk, for one symbol."""

    __slots__ = (
        "_alpha",
        "_anchor_mode",
        "_boost_offsets",
        "_dt_s",
        "_gamma",
        "_glft",
        "_glft_base",
        "_glft_omega",
        "_horizon_s",
        "_kappa",
        "_last_ts_ns",
        "_lot",
        "_max_age_ns",
        "_max_drawdown",
        "_max_loss",
        "_max_position_usd",
        "_min_lots",
        "_order_size_usd",
        "_regime",
        "_settings",
        "_skew_factor",
        "_spread_floor",
        "_spread_term",
        "_steps",
        "_tick",
        "_tolerance_neutral",
        "_tolerance_signal",
        "_vol",
        "risk_state",
    )

    def __init__(self, settings: BotSettings) -> None:
        self._configure(settings)
        self._vol = LogReturnVolatility(settings.strategy.volatility_window_ticks)
        self._regime = RegimeTracker(settings.strategy)
        self._dt_s = math.nan  # smoothed seconds between book events, to scale per-tick sigma
        self._last_ts_ns = 0
        self.risk_state = RiskState()

    def _configure(self, settings: BotSettings) -> None:
        """Read everything the per-event path needs from `settings` into slots."""
        self._settings = settings
        spec = settings.spec
        strategy = settings.strategy
        risk = settings.risk
        self._tick = float(spec.tick_size)
        self._lot = float(spec.lot_size)
        self._min_lots = math.ceil(spec.effective_min_size / spec.lot_size)
        self._alpha = 2.0 / (strategy.volatility_window_ticks + 1)
        self._max_age_ns = risk.max_book_age_s * _NS_PER_S
        self._order_size_usd = strategy.order_size_usd
        self._glft = strategy.model == "glft"
        self._horizon_s = strategy.horizon_s
        self._spread_floor = strategy.spread_pct
        self._max_position_usd = risk.max_position_usd
        self._skew_factor = risk.inventory_skew_factor
        self._max_loss = risk.max_loss_usd
        self._max_drawdown = risk.max_drawdown_pct
        self._anchor_mode = strategy.entry_anchor_mode
        self._tolerance_signal = strategy.loss_tolerance_signal_pct
        self._tolerance_neutral = strategy.loss_tolerance_neutral_pct
        self._steps = grid_steps(strategy)
        self._boost_offsets = strategy.boost_offsets_pct if strategy.signal_boost else None
        self._set_model(strategy.gamma, strategy.kappa)

    def _set_model(self, gamma: float, kappa: float) -> None:
        """gamma and kappa, and the model's terms that depend on them alone, computed as `avellaneda` does."""
        self._gamma = gamma
        self._kappa = kappa
        self._spread_term = self._glft_base = self._glft_omega = math.nan
        if self._glft:
            # half spread = ln(1 + gamma/kappa)/gamma + omega/2; skew = omega = sigma * _glft_omega
            intensity_a = self._settings.strategy.glft_intensity_a
            growth = math.exp((1.0 + kappa / gamma) * math.log1p(gamma / kappa))
            self._glft_base = math.log1p(gamma / kappa) / gamma
            self._glft_omega = math.sqrt(gamma / (2.0 * kappa * intensity_a) * growth)
        else:
            # optimal_spread = gamma*sigma^2*tau + _spread_term
            self._spread_term = (2.0 / gamma) * math.log1p(gamma / kappa)

    @property
    def settings(self) -> BotSettings:
        """Read-only: the per-event path holds values read from it; new settings go through `reconfigured`."""
        return self._settings

    @property
    def gamma(self) -> float:
        return self._gamma

    @gamma.setter
    def gamma(self, gamma: float) -> None:
        self._set_model(gamma, self._kappa)

    @property
    def kappa(self) -> float:
        return self._kappa

    @kappa.setter
    def kappa(self, kappa: float) -> None:
        self._set_model(self._gamma, kappa)

    def reconfigured(self, settings: BotSettings) -> QuoteEngine:
        """An engine on new settings that keeps the warmed-up indicators when their parameters are equal."""
        engine = QuoteEngine(settings)
        old, new = self._settings.strategy, settings.strategy
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

    def _advance_clock(self, ts_ns: int) -> None:
        last = self._last_ts_ns
        if last and ts_ns > last:
            dt = (ts_ns - last) / _NS_PER_S
            dt_s = self._dt_s
            self._dt_s = dt if math.isnan(dt_s) else dt_s + self._alpha * (dt - dt_s)
        self._last_ts_ns = ts_ns

    def observe(self, mid: float, ts_ns: int, position_is_flat: bool = True) -> RegimeView:
        """Feed one mid price to the indicators (also used to seed them from history)."""
        self._advance_clock(ts_ns)
        self._vol.update(mid)
        return self._regime.update(mid, position_is_flat)

    def on_book(self, book: Book, inventory: Inventory, now_ns: int) -> QuoteDecision:  # noqa: PLR0915 - inlined hot path
        """Desired orders for this book; none on a stale, crossed, empty or NaN book."""
        bid_price = book.bid_price
        ask_price = book.ask_price
        # Book.is_quotable(), inlined: finite, positive, uncrossed, size on both sides (NaN fails all)
        if not (
            0.0 < bid_price < ask_price < _INF and 0.0 < book.bid_size < _INF and 0.0 < book.ask_size < _INF
        ):
            return self._no_quotes("book not quotable (crossed, empty or NaN)")
        ts_ns = book.ts_ns
        if now_ns - ts_ns > self._max_age_ns:
            return self._no_quotes(f"book older than {self._settings.risk.max_book_age_s}s: stale")
        mid = 0.5 * (bid_price + ask_price)  # Book.mid
        lot = self._lot
        tick = self._tick
        position_base = inventory.position_base
        position_lots = nearest_int(position_base / lot)

        # observe(), without building the RegimeView
        last_ts_ns = self._last_ts_ns
        if last_ts_ns and ts_ns > last_ts_ns:  # _advance_clock
            dt = (ts_ns - last_ts_ns) / _NS_PER_S
            dt_s = self._dt_s
            self._dt_s = dt if math.isnan(dt_s) else dt_s + self._alpha * (dt - dt_s)
        self._last_ts_ns = ts_ns
        self._vol.update(mid)
        raw, latched = self._regime.step(mid, position_lots == 0)

        # sigma()
        dt_s = self._dt_s
        sigma = self._vol.value / math.sqrt(dt_s) if dt_s > 0 else _NAN
        reasons: tuple[str, ...] = ()
        if math.isnan(sigma):
            reasons = _WARMING_UP
            sigma = 0.0

        position_usd = position_base * mid
        q = position_usd / self._order_size_usd
        gamma = self._gamma
        if self._glft:
            omega = sigma * self._glft_omega  # avellaneda.glft_skew
            reservation = 1.0 - omega * q
            model_spread = 2.0 * (self._glft_base + 0.5 * omega)  # 2 * avellaneda.glft_half_spread
        else:
            reservation = 1.0 - q * gamma * sigma * sigma * self._horizon_s  # avellaneda.reservation_price
            model_spread = gamma * sigma * sigma * self._horizon_s + self._spread_term  # .optimal_spread
        spread_floor = self._spread_floor
        spread = spread_floor if spread_floor > model_spread else model_spread  # floor, never a cap
        half_spread = 0.5 * spread
        max_position_usd = self._max_position_usd
        # risk.inventory_skew
        ratio = position_usd / max_position_usd
        ratio = ratio if ratio < 1.0 else 1.0  # min(1.0, ratio), NaN included
        skew = self._skew_factor * (ratio if ratio > -1.0 else -1.0)  # max(-1.0, ratio)
        center = mid * (reservation - skew * half_spread)

        # risk.assess: the common case (no trip latched or due, within the limit) is ACTIVE with nothing
        # to say; anything else goes through assess itself
        risk_state = self.risk_state
        equity = inventory.equity_usd
        peak = inventory.peak_equity_usd
        if (
            not risk_state.breaker_tripped
            and not risk_state.drawdown_tripped
            and inventory.unrealized_pnl_usd > -self._max_loss
            and (peak <= 0 or (peak - equity) / peak < self._max_drawdown)
            and self._max_drawdown > 0.0
            and abs(position_usd) < max_position_usd
        ):
            state = _ACTIVE
            close_position = False
            self.risk_state = CLEAR  # what assess carries on in this case
        else:
            verdict = assess(
                self._settings.risk,
                risk_state,
                position_usd,
                inventory.unrealized_pnl_usd,
                equity,
                peak,
            )
            self.risk_state = verdict.risk_state
            state = verdict.state
            close_position = verdict.close_position
            reasons += verdict.reasons

        orders: tuple[DesiredOrder, ...] = ()
        size_lots = math.floor(self._order_size_usd / mid / lot + _EPS)  # quoting.lots_for_notional
        if size_lots < self._min_lots:
            reasons += (f"order_size_usd {self._order_size_usd} is below the minimum size",)
        elif state is not _HALTED:
            max_bid = nearest_int(ask_price / tick) - 1  # post-only: a bid at the best ask would take
            min_ask = nearest_int(bid_price / tick) + 1
            entry_price = inventory.entry_price
            if self._anchor_mode and position_lots != 0 and entry_price > 0:  # quoting.entry_anchor
                tolerance = self._tolerance_signal if latched is not _NEUTRAL else self._tolerance_neutral
                if position_lots > 0:
                    anchor_bid = math.floor(entry_price / tick + _EPS)
                    anchor_ask = math.ceil(entry_price * (1 - tolerance) / tick - _EPS)
                else:
                    anchor_bid = math.floor(entry_price * (1 + tolerance) / tick + _EPS)
                    anchor_ask = math.ceil(entry_price / tick - _EPS)
                max_bid = max_bid if max_bid <= anchor_bid else anchor_bid  # min()
                min_ask = min_ask if min_ask >= anchor_ask else anchor_ask  # max()
            bids, asks = quote_sides(
                mid,
                center,
                half_spread,
                tick,
                size_lots,
                max_bid,
                min_ask,
                latched,
                self._steps,
                self._boost_offsets,
            )
            max_lots = math.floor(max_position_usd / mid / lot + 1e-9)
            if state is _REDUCING:
                bids.extend(asks)
                kept = clamp_to_limit(keep_reducing(bids, position_lots), position_lots, max_lots, True)
                orders = tuple(kept)
            elif (
                len(bids) * size_lots <= max_lots - position_lots
                and len(asks) * size_lots <= max_lots + position_lots
            ):
                # clamp_to_limit's "everything fits" case: every order is size_lots
                bids.extend(asks)
                orders = tuple(bids)
            else:
                bids.extend(asks)
                orders = tuple(clamp_to_limit(bids, position_lots, max_lots, False))
        return QuoteDecision(
            orders,
            state,
            close_position,
            reasons,
            mid,
            mid * reservation,
            spread,
            sigma,
            gamma,
            self._kappa,
            raw,
            latched,
        )

    def _no_quotes(self, reason: str) -> QuoteDecision:
        """Bad market data: want no orders resting, but leave the risk state as it was."""
        tripped = self.risk_state.breaker_tripped or self.risk_state.drawdown_tripped
        state = TradingState.HALTED if tripped else TradingState.ACTIVE
        return QuoteDecision(orders=(), state=state, close_position=False, reasons=(reason,))


pickling.register(Inventory, QuoteDecision)
