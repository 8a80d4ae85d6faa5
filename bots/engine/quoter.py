"""One bot's quoting brain: book event in, desired orders out. Stateful (indicators), but no I/O, no clock.

Per event, in the order the strategy reads: volatility and regime update in O(1); the model's
reservation price and spread (`avellaneda`, built for the current gamma and kappa); the spread floor
and the inventory skew around the quote centre; the risk state (`risk.assess`); then the post-only
price limits, the entry anchor, the grid and the signal boost (`quoting`); last the position limit
per side (`risk.order_room`, `within_limit`). Each step is a small typed function in a module mypyc
compiles, so composing them costs C calls.

Funding skew (off unless `funding_horizon_s > 0`): a perpetual's funding is a carry on the position,
like a drift of `-rate_per_s` in A-S's reservation price (a long loses `rate * mark` per interval when
the rate is positive). The reservation price moves by `-funding_rate_per_s * funding_horizon_s` (a
fraction of mid: the funding a position held that long would pay), so under a positive rate the quotes
lean short (bids further, asks nearer) and under a negative one long.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

from bots.engine import pickling
from bots.engine.avellaneda import AvellanedaStoikov, Glft, QuotingModel
from bots.engine.config import EngineConfig
from bots.engine.indicators import LogReturnVolatility
from bots.engine.quoting import (
    boost,
    entry_anchor,
    floored_spread,
    grid,
    grid_steps,
    lots_for_notional,
    nearest_int,
    post_only_limits,
    quote_center,
)
from bots.engine.regime import RegimeTracker, RegimeView
from bots.engine.risk import RiskState, assess, inventory_skew, order_room, within_limit
from bots.engine.types import Book, DesiredOrder, Signal, TradingState

__all__ = ["Inventory", "QuoteDecision", "QuoteEngine"]

_NS_PER_S: Final = 1_000_000_000
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
    max_bid_ticks: int  # the highest bid and lowest ask any order may rest at (post-only behind the
    min_ask_ticks: int  # touch, the entry anchor): -1 when no order is wanted
    model_spread_pct: float  # the model's spread before the floor: the floor binds when it is below it

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
        max_bid_ticks: int = -1,
        min_ask_ticks: int = -1,
        model_spread_pct: float = math.nan,
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
        self.max_bid_ticks = max_bid_ticks
        self.min_ask_ticks = min_ask_ticks
        self.model_spread_pct = model_spread_pct

    @property
    def floor_binds(self) -> bool:
        """The spread floor (`spread_pct`), not the model, set the quoted spread."""
        return self.spread_pct > self.model_spread_pct


class QuoteEngine:
    """Avellaneda-Stoikov (or GLFT) quoting with grid, regime filter, latch and risk, for one symbol.

    The configuration is fixed for the engine's life (`reconfigured` builds the next one); gamma,
    kappa and the intensity A may move between events (the regime blend, the intensity fit and the
    tuner set them: `set_model`).
    """

    __slots__ = (
        "_boost_offsets",
        "_config",
        "_dt_s",
        "_intensity_a",
        "_last_ts_ns",
        "_max_age_ns",
        "_model",
        "_regime",
        "_signals",
        "_smoothing",
        "_steps",
        "_vol",
        "funding_rate_per_s",
        "risk_state",
    )

    def __init__(self, config: EngineConfig) -> None:
        self._config = config
        self._intensity_a = config.glft_intensity_a
        self._model = self._new_model(config.gamma, config.kappa)
        self._max_age_ns = config.risk.max_book_age_s * _NS_PER_S
        self._steps = grid_steps(config.grid.layers, config.grid.spacing_pct)
        self._boost_offsets = config.grid.boost_offsets_pct if config.grid.signal_boost else ()
        self._smoothing = 2.0 / (config.volatility_window_ticks + 1)  # of the time between book events
        self._vol = LogReturnVolatility(config.volatility_window_ticks)
        self._regime = RegimeTracker(config.regime)
        self._dt_s = math.nan  # smoothed seconds between book events, to scale per-tick sigma
        self._last_ts_ns = 0
        self._signals: tuple[Signal, Signal] = (_NEUTRAL, _NEUTRAL)  # (raw, latched) of the newest book
        self.funding_rate_per_s = 0.0  # the venue's funding rate per second (positive: longs pay)
        self.risk_state = RiskState()

    @property
    def config(self) -> EngineConfig:
        """Read-only: a new configuration goes through `reconfigured`."""
        return self._config

    def _new_model(self, gamma: float, kappa: float) -> QuotingModel:
        """The configured model for `gamma` and `kappa` (it computes what depends on them alone once)."""
        if self._config.model == "glft":
            return Glft(gamma, kappa, self._intensity_a)
        return AvellanedaStoikov(gamma, kappa)

    @property
    def gamma(self) -> float:
        return self._model.gamma

    @gamma.setter
    def gamma(self, gamma: float) -> None:
        self._model = self._new_model(gamma, self._model.kappa)

    @property
    def kappa(self) -> float:
        return self._model.kappa

    @kappa.setter
    def kappa(self, kappa: float) -> None:
        self._model = self._new_model(self._model.gamma, kappa)

    @property
    def intensity_a(self) -> float:
        """The arrival intensity A the GLFT model uses (A-S does not need it)."""
        return self._intensity_a

    def set_model(self, gamma: float, kappa: float, intensity_a: float) -> None:
        """New model parameters from the next decision; the model is rebuilt only when one changed."""
        model = self._model
        if gamma != model.gamma or kappa != model.kappa or intensity_a != self._intensity_a:
            self._intensity_a = intensity_a
            self._model = self._new_model(gamma, kappa)

    def reconfigured(self, config: EngineConfig) -> QuoteEngine:
        """An engine on `config` that keeps the warmed-up indicators when their parameters are equal,
        and the latched risk trips."""
        engine = QuoteEngine(config)
        old = self._config
        if old.volatility_window_ticks == config.volatility_window_ticks:
            engine._vol, engine._dt_s, engine._last_ts_ns = self._vol, self._dt_s, self._last_ts_ns
        if old.regime == config.regime:
            engine._regime, engine._signals = self._regime, self._signals
        engine.risk_state = self.risk_state
        engine.funding_rate_per_s = self.funding_rate_per_s
        return engine

    def sigma(self) -> float:
        """Volatility of log returns per sqrt(second); nan until the window is full."""
        dt_s = self._dt_s
        if not dt_s > 0:
            return math.nan
        return self._vol.value / math.sqrt(dt_s)

    def _advance(self, mid: float, ts_ns: int) -> None:
        """The clock (smoothed time between events) and the volatility, one mid on."""
        last = self._last_ts_ns
        if last and ts_ns > last:
            dt = (ts_ns - last) / _NS_PER_S
            dt_s = self._dt_s
            self._dt_s = dt if math.isnan(dt_s) else dt_s + self._smoothing * (dt - dt_s)
        self._last_ts_ns = ts_ns
        self._vol.update(mid)

    def observe(self, mid: float, ts_ns: int, position_is_flat: bool = True) -> RegimeView:
        """Feed one mid price to the indicators (also used to seed them from history)."""
        self._advance(mid, ts_ns)
        return self._regime.update(mid, position_is_flat)

    def on_book(self, book: Book, inventory: Inventory, now_ns: int) -> QuoteDecision:
        """Desired orders for this book; none on a stale, crossed, empty or NaN book."""
        config = self._config
        if not book.is_quotable():
            return self._no_quotes("book not quotable (crossed, empty or NaN)")
        if now_ns - book.ts_ns > self._max_age_ns:
            return self._no_quotes(f"book older than {config.risk.max_book_age_s}s: stale")
        mid = book.mid
        position_base = inventory.position_base
        position_lots = nearest_int(position_base / config.lot)
        if book.ts_ns > self._last_ts_ns:  # a new book; the same one again (a timer's requote) moves nothing
            self._advance(mid, book.ts_ns)
            self._signals = self._regime.step(mid, position_lots == 0)
        raw, latched = self._signals
        sigma = self.sigma()
        reasons: tuple[str, ...] = ()
        if math.isnan(sigma):
            reasons = _WARMING_UP
            sigma = 0.0

        # the model in fractions of mid (s = 1), for the inventory q in order sizes
        model = self._model
        position_usd = position_base * mid
        q = position_usd / config.order_size_usd
        reservation = model.reservation_price(1.0, q, sigma, config.horizon_s)
        reservation -= self.funding_rate_per_s * config.funding_horizon_s  # funding skew (0 when off)
        model_spread = model.spread(sigma, config.horizon_s)
        spread = floored_spread(model_spread, config.spread_floor_pct)
        half_spread = 0.5 * spread
        limits = config.risk
        skew = inventory_skew(position_usd, limits.max_position_usd, limits.inventory_skew_factor)
        center = quote_center(mid, reservation, skew, half_spread)

        verdict = assess(
            limits,
            self.risk_state,
            position_usd,
            inventory.unrealized_pnl_usd,
            inventory.equity_usd,
            inventory.peak_equity_usd,
        )
        self.risk_state = verdict.risk_state
        state = verdict.state
        if verdict.reasons:
            reasons += verdict.reasons

        orders: tuple[DesiredOrder, ...] = ()
        max_bid = min_ask = -1
        size_lots = lots_for_notional(config.order_size_usd, mid, config.lot)
        if size_lots < config.min_lots:
            reasons += (f"order_size_usd {config.order_size_usd} is below the minimum size",)
        elif state is not _HALTED:
            max_bid, min_ask = self._price_limits(book, inventory, position_lots, latched)
            orders = self._orders(
                book, position_lots, center, half_spread, size_lots, latched, state, max_bid, min_ask
            )
        return QuoteDecision(
            orders,
            state,
            verdict.close_position,
            reasons,
            mid,
            mid * reservation,
            spread,
            sigma,
            model.gamma,
            model.kappa,
            raw,
            latched,
            max_bid,
            min_ask,
            model_spread,
        )

    def _price_limits(
        self, book: Book, inventory: Inventory, position_lots: int, latched: Signal
    ) -> tuple[int, int]:
        """(max_bid, min_ask) in ticks: post-only behind the touch, tightened by the entry anchor."""
        config = self._config
        tick = config.tick
        max_bid, min_ask = post_only_limits(book.bid_price, book.ask_price, tick)
        if config.entry_anchor_mode:
            tolerance = (
                config.loss_tolerance_signal_pct
                if latched is not _NEUTRAL
                else config.loss_tolerance_neutral_pct
            )
            max_bid, min_ask = entry_anchor(
                max_bid, min_ask, position_lots, inventory.entry_price, tolerance, tick
            )
        return max_bid, min_ask

    def _orders(
        self,
        book: Book,
        position_lots: int,
        center: float,
        half_spread: float,
        size_lots: int,
        latched: Signal,
        state: TradingState,
        max_bid: int,
        min_ask: int,
    ) -> tuple[DesiredOrder, ...]:
        """The grid and boost inside the price limits, trimmed to the position limit: bids best
        first, then asks best first."""
        config = self._config
        tick = config.tick
        mid = book.mid
        bids, asks = grid(mid, center, half_spread, tick, size_lots, max_bid, min_ask, self._steps)
        if self._boost_offsets:
            bids, asks = boost(
                bids, asks, mid, tick, size_lots, max_bid, min_ask, latched, self._boost_offsets
            )
        max_lots = lots_for_notional(config.risk.max_position_usd, mid, config.lot)
        bid_room, ask_room = order_room(position_lots, max_lots, state is _REDUCING)
        bids = within_limit(bids, size_lots, bid_room)
        bids.extend(within_limit(asks, size_lots, ask_room))
        return tuple(bids)

    def _no_quotes(self, reason: str) -> QuoteDecision:
        """Bad market data: want no orders resting, but leave the risk state as it was."""
        tripped = self.risk_state.breaker_tripped or self.risk_state.drawdown_tripped
        state = TradingState.HALTED if tripped else TradingState.ACTIVE
        return QuoteDecision(orders=(), state=state, close_position=False, reasons=(reason,))


pickling.register(Inventory, QuoteDecision)
