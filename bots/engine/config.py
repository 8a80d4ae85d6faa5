"""What the engine reads: its own frozen configuration, built by the settings layer.

The engine sees numbers only - no credentials, paths or exchange details - so these types hold
exactly the knobs of the strategy, the regime filters and the risk limits, plus the instrument's tick,
lot and minimum size. `settings.models.BotSettings.engine_config` builds one from validated settings;
the engine does not import `settings`. Compiled by mypyc: the engine reads these fields on every
book event, and a compiled class makes each read a native one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bots.engine import pickling

__all__ = ["EngineConfig", "FilterConfig", "GridConfig", "QuoteModel", "RegimeConfig", "RiskLimits"]

QuoteModel = Literal["avellaneda", "glft"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterConfig:
    """Parameters of the regime filters: indicator windows (in ticks) and signal thresholds."""

    bollinger_window: int
    bollinger_num_std: float
    rsi_period: int
    rsi_oversold: float
    rsi_overbought: float
    adx_period: int
    adx_threshold: float
    atr_period: int
    atr_breakout_mult: float
    chop_period: int
    chop_trend_threshold: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RegimeConfig:
    """The regime filter (`regime.FILTERS` name and parameters) and when a latched signal releases."""

    trend_strategy: str
    filters: FilterConfig
    latch_release_rsi_buy: float
    latch_release_rsi_sell: float


@dataclass(frozen=True, slots=True, kw_only=True)
class GridConfig:
    """Grid layers per side and their spacing, and the signal boost (fractions of mid)."""

    layers: int
    spacing_pct: float
    signal_boost: bool
    boost_offsets_pct: tuple[float, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskLimits:
    """Position, loss and drawdown limits, the inventory skew and how old a book may be."""

    max_position_usd: float
    max_loss_usd: float
    max_drawdown_pct: float
    inventory_skew_factor: float
    max_book_age_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """One engine's configuration: the instrument, the quoting model and its pieces.

    Prices and sizes are floats inside the model: `tick` and `lot` in quote and base currency,
    `min_lots` the exchange's minimum order size in lots. Units as in `settings.models`.
    """

    tick: float
    lot: float
    min_lots: int
    model: QuoteModel
    gamma: float
    kappa: float
    horizon_s: float
    glft_intensity_a: float
    spread_floor_pct: float
    order_size_usd: float
    volatility_window_ticks: int
    entry_anchor_mode: bool
    loss_tolerance_neutral_pct: float
    loss_tolerance_signal_pct: float
    grid: GridConfig
    regime: RegimeConfig
    risk: RiskLimits
    funding_horizon_s: float = 0.0  # funding skew: the holding time whose funding the centre prices; 0 off


pickling.register(EngineConfig, FilterConfig, GridConfig, RegimeConfig, RiskLimits)
